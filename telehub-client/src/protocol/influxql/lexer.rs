//! InfluxQL tokens: identifiers (bare or `"quoted"`), `'strings'`, numbers, duration
//! literals (`10s`, `1795255200000ms`, `1h30m`), operators and punctuation. Regexes
//! (`/…/`) are read only where the parser expects one ([`Lexer::regex`]), since `/`
//! is also division. Pure; each token carries its byte position for error messages.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare identifier or keyword, as written.
    Ident(String),
    /// A `"double-quoted"` identifier, unescaped.
    Quoted(String),
    /// A `'single-quoted'` string, unescaped.
    Str(String),
    Int(i64),
    Float(f64),
    /// A duration literal, in nanoseconds.
    Duration(i64),
    Punct(&'static str),
    Eof,
}

impl Tok {
    /// How InfluxDB's messages show a found token (capped: it is the caller's text).
    pub fn shown(&self) -> String {
        let s = match self {
            Tok::Ident(s) | Tok::Quoted(s) | Tok::Str(s) => s.clone(),
            Tok::Int(i) => i.to_string(),
            Tok::Float(f) => f.to_string(),
            Tok::Duration(d) => format!("{d}ns"),
            Tok::Punct(p) => (*p).to_owned(),
            Tok::Eof => "EOF".to_owned(),
        };
        super::cap(&s)
    }

    /// Whether this is the keyword `kw` (upper case), in any case.
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

const PUNCT: [&str; 18] = [
    "=~", "!~", "!=", "<>", "<=", ">=", "=", "<", ">", ",", "(", ")", ";", "+", "-", "*", "/", ".",
];

/// Nanoseconds per duration unit, longest spelling first.
const UNITS: [(&str, i64); 9] = [
    ("ns", 1),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("u", 1_000),
    ("µ", 1_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];
const WEEK_NS: i64 = 7 * 86_400_000_000_000;

pub struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// Byte position of the next token (after white space and comments).
    pub fn position(&mut self) -> usize {
        self.skip_space();
        self.pos
    }

    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The next token and its position, without consuming it.
    pub fn peek(&mut self) -> Result<(Tok, usize), ParseError> {
        let save = self.pos;
        let t = self.next();
        self.pos = save;
        t
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[start..];
        let Some(c) = rest.chars().next() else {
            // InfluxDB places the end one character past the text's last.
            return Ok((Tok::Eof, start + 1));
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let n = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            self.pos += n;
            Tok::Ident(rest[..n].to_owned())
        } else if c == '"' || c == '\'' {
            let s = self.quoted(c)?;
            if c == '"' {
                Tok::Quoted(s)
            } else {
                Tok::Str(s)
            }
        } else if c.is_ascii_digit()
            || (c == '.' && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
        {
            self.number()?
        } else if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            self.pos += p.len();
            Tok::Punct(p)
        } else {
            return Err(ParseError::at(
                self.text,
                start,
                format!("found {}, expected a statement", super::cap(&c.to_string())),
            ));
        };
        Ok((tok, start))
    }

    /// `/pattern/` (a `\/` inside stands for `/`), or `None` when the next token is not one.
    pub fn regex(&mut self) -> Result<Option<String>, ParseError> {
        self.skip_space();
        let start = self.pos;
        if !self.text[start..].starts_with('/') {
            return Ok(None);
        }
        let mut out = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '/' => {
                    self.pos = start + 1 + i + 1;
                    return Ok(Some(out));
                }
                '\\' => match chars.next() {
                    Some((_, '/')) => out.push('/'),
                    Some((_, c)) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(ParseError::at(
            self.text,
            start,
            "found unterminated regex, expected /".to_owned(),
        ))
    }

    fn skip_space(&mut self) {
        loop {
            let rest = &self.text[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with("/*") {
                self.pos += trimmed.find("*/").map_or(trimmed.len(), |i| i + 2);
            } else {
                return;
            }
        }
    }

    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.pos = start + 1 + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                '\n' => break,
                c => out.push(c),
            }
        }
        let what = if quote == '"' { "identifier" } else { "string" };
        Err(ParseError::at(
            self.text,
            start,
            format!("found unterminated {what}, expected {quote}"),
        ))
    }

    /// An integer, a float, or a duration literal (digits followed by units).
    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let rest = &self.text[start..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let after = &rest[digits..];
        let bad = |what: &str| ParseError::at(self.text, start, format!("unable to parse {what}"));
        if after.starts_with('.')
            || after.starts_with(['e', 'E'])
                && after[1..].starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
        {
            let n = rest
                .char_indices()
                .skip(digits)
                .find(|&(i, c)| {
                    !(c.is_ascii_digit()
                        || c == '.'
                        || c == 'e'
                        || c == 'E'
                        || ((c == '-' || c == '+') && rest[..i].ends_with(['e', 'E'])))
                })
                .map_or(rest.len(), |(i, _)| i);
            self.pos += n;
            return rest[..n].parse().map(Tok::Float).map_err(|_| bad("number"));
        }
        if unit(after).is_none() {
            self.pos += digits;
            return rest[..digits]
                .parse()
                .map(Tok::Int)
                .map_err(|_| bad("integer"));
        }
        // A duration: one or more `<digits><unit>` groups (`1h30m`).
        let mut total: i64 = 0;
        let mut rest = rest;
        loop {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let Some((len, per)) = (digits > 0).then(|| unit(&rest[digits..])).flatten() else {
                break;
            };
            let n: i64 = rest[..digits].parse().map_err(|_| bad("duration"))?;
            total = n
                .checked_mul(per)
                .and_then(|d| total.checked_add(d))
                .ok_or_else(|| bad("duration"))?;
            self.pos += digits + len;
            rest = &rest[digits + len..];
        }
        Ok(Tok::Duration(total))
    }
}

/// The duration unit `s` starts with (not followed by more identifier characters), as
/// (its length, nanoseconds).
fn unit(s: &str) -> Option<(usize, i64)> {
    let (len, per) = UNITS
        .iter()
        .find(|(u, _)| s.starts_with(u))
        .map(|(u, n)| (u.len(), *n))
        .or_else(|| s.starts_with('w').then_some((1, WEEK_NS)))?;
    let next = s[len..].chars().next();
    match next {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => None,
        _ => Some((len, per)),
    }
}
