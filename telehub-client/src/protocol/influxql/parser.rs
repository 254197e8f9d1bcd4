//! Statements by recursive descent over [`Lexer`] tokens; `WHERE` expressions are read by
//! [`super::condition`]. Keywords are matched in any case.

use super::ast::*;
use super::lexer::{Lexer, Tok};
use super::{MAX_DEPTH, ParseError, cap};

const STATEMENTS: &str =
    "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL";

/// Parses a query: statements separated by `;`.
pub fn parse(text: &str) -> Result<Vec<Statement>, ParseError> {
    let mut p = Parser {
        lx: Lexer::new(text),
        depth: 0,
    };
    let mut out = Vec::new();
    loop {
        while p.eat_punct(";")? {}
        if p.peek()? == Tok::Eof {
            break;
        }
        out.push(p.statement()?);
        let (t, pos) = p.lx.peek()?;
        match t {
            Tok::Eof => break,
            Tok::Punct(";") => {}
            t => return Err(p.unexpected(t, pos, "EOF or ;")),
        }
    }
    if out.is_empty() {
        let (t, pos) = p.lx.peek()?;
        return Err(p.unexpected(t, pos, STATEMENTS));
    }
    Ok(out)
}

pub(super) struct Parser<'a> {
    pub lx: Lexer<'a>,
    pub depth: usize,
}

impl Parser<'_> {
    pub fn peek(&mut self) -> Result<Tok, ParseError> {
        Ok(self.lx.peek()?.0)
    }

    pub fn unexpected(&self, found: Tok, pos: usize, expected: &str) -> ParseError {
        ParseError::at(
            self.lx.text(),
            pos,
            format!("found {}, expected {expected}", found.shown()),
        )
    }

    /// Fails unless the next token is the keyword `kw`.
    pub fn keyword(&mut self, kw: &str) -> Result<(), ParseError> {
        let (t, pos) = self.lx.next()?;
        match t.is(kw) {
            true => Ok(()),
            false => Err(self.unexpected(t, pos, kw)),
        }
    }

    pub fn eat_keyword(&mut self, kw: &str) -> Result<bool, ParseError> {
        let hit = self.peek()?.is(kw);
        if hit {
            self.lx.next()?;
        }
        Ok(hit)
    }

    pub fn eat_punct(&mut self, p: &str) -> Result<bool, ParseError> {
        let hit = matches!(self.peek()?, Tok::Punct(q) if q == p);
        if hit {
            self.lx.next()?;
        }
        Ok(hit)
    }

    pub fn punct(&mut self, p: &str) -> Result<(), ParseError> {
        let (t, pos) = self.lx.next()?;
        match t {
            Tok::Punct(q) if q == p => Ok(()),
            t => Err(self.unexpected(t, pos, p)),
        }
    }

    /// An identifier, bare or quoted.
    pub fn ident(&mut self) -> Result<String, ParseError> {
        let (t, pos) = self.lx.next()?;
        match t {
            Tok::Ident(s) | Tok::Quoted(s) => Ok(s),
            t => Err(self.unexpected(t, pos, "identifier")),
        }
    }

    fn unsigned(&mut self) -> Result<u64, ParseError> {
        let (t, pos) = self.lx.next()?;
        match t {
            Tok::Int(n) if n >= 0 => Ok(n as u64),
            t => Err(self.unexpected(t, pos, "integer")),
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let (t, pos) = self.lx.peek()?;
        if t.is("SELECT") {
            self.lx.next()?;
            return Ok(Statement::Select(Box::new(self.select()?)));
        }
        if t.is("SHOW") {
            self.lx.next()?;
            return self.show(pos);
        }
        let other = [
            "DELETE", "CREATE", "DROP", "EXPLAIN", "GRANT", "REVOKE", "ALTER", "SET", "KILL",
        ];
        if other.iter().any(|k| t.is(k)) {
            return self.unsupported(pos);
        }
        Err(self.unexpected(t, pos, STATEMENTS))
    }

    /// Skips to the end of the statement; its first words name it.
    fn unsupported(&mut self, start: usize) -> Result<Statement, ParseError> {
        loop {
            match self.peek()? {
                Tok::Eof | Tok::Punct(";") => break,
                _ => {
                    self.lx.next()?;
                }
            }
        }
        let end = self.lx.position();
        let words: Vec<&str> = self.lx.text()[start..end]
            .split_whitespace()
            .take(3)
            .collect();
        Ok(Statement::Unsupported(cap(&words.join(" ").to_uppercase())))
    }

    fn show(&mut self, start: usize) -> Result<Statement, ParseError> {
        let (t, pos) = self.lx.next()?;
        let stmt = if t.is("DATABASES") {
            Statement::ShowDatabases
        } else if t.is("RETENTION") {
            self.keyword("POLICIES")?;
            self.on()?;
            Statement::ShowRetentionPolicies
        } else if t.is("MEASUREMENTS") {
            self.on()?;
            let with = match self.eat_keyword("WITH")? {
                true => {
                    self.keyword("MEASUREMENT")?;
                    Some(self.measurement_match()?)
                }
                false => None,
            };
            let (limit, offset) = self.limit_offset("LIMIT", "OFFSET")?;
            Statement::ShowMeasurements {
                with,
                limit,
                offset,
            }
        } else if t.is("TAG") {
            let (t, pos) = self.lx.next()?;
            if t.is("KEYS") {
                self.on()?;
                let from = self.from()?;
                Statement::ShowTagKeys { from }
            } else if t.is("VALUES") {
                self.on()?;
                let from = self.from()?;
                self.keyword("WITH")?;
                self.keyword("KEY")?;
                let keys = self.keys()?;
                let condition = match self.eat_keyword("WHERE")? {
                    true => Some(self.condition()?),
                    false => None,
                };
                self.limit_offset("LIMIT", "OFFSET")?;
                Statement::ShowTagValues {
                    from,
                    keys,
                    condition,
                }
            } else {
                return Err(self.unexpected(t, pos, "KEYS, VALUES"));
            }
        } else if t.is("FIELD") {
            self.keyword("KEYS")?;
            self.on()?;
            let from = self.from()?;
            Statement::ShowFieldKeys { from }
        } else if let Tok::Ident(_) = t {
            return self.unsupported(start);
        } else {
            return Err(self.unexpected(t, pos, "DATABASES, RETENTION, MEASUREMENTS, TAG, FIELD"));
        };
        Ok(stmt)
    }

    /// `ON db`, accepted and ignored (the hub has one database).
    fn on(&mut self) -> Result<(), ParseError> {
        if self.eat_keyword("ON")? {
            self.ident()?;
        }
        Ok(())
    }

    /// `=~ /re/` or `= name` after `WITH MEASUREMENT`.
    fn measurement_match(&mut self) -> Result<Source, ParseError> {
        let (t, pos) = self.lx.next()?;
        match t {
            Tok::Punct("=~") => self.regex().map(Source::Regex),
            Tok::Punct("=") => self.ident().map(Source::Name),
            t => Err(self.unexpected(t, pos, "=~, =")),
        }
    }

    pub fn regex(&mut self) -> Result<String, ParseError> {
        match self.lx.regex()? {
            Some(r) => Ok(r),
            None => {
                let (t, pos) = self.lx.next()?;
                Err(self.unexpected(t, pos, "regex"))
            }
        }
    }

    /// `WITH KEY = "k"` or `WITH KEY IN ("a", "b")`.
    fn keys(&mut self) -> Result<Vec<String>, ParseError> {
        let (t, pos) = self.lx.next()?;
        match t {
            Tok::Punct("=") => Ok(vec![self.ident()?]),
            t if t.is("IN") => {
                self.punct("(")?;
                let mut keys = vec![self.ident()?];
                while self.eat_punct(",")? {
                    keys.push(self.ident()?);
                }
                self.punct(")")?;
                Ok(keys)
            }
            t => Err(self.unexpected(t, pos, "=, IN")),
        }
    }

    fn from(&mut self) -> Result<Option<Source>, ParseError> {
        match self.eat_keyword("FROM")? {
            true => self.source().map(Some),
            false => Ok(None),
        }
    }

    /// A measurement: `/regex/`, or a name (`db.rp.name`: the last part).
    fn source(&mut self) -> Result<Source, ParseError> {
        if let Some(r) = self.lx.regex()? {
            return Ok(Source::Regex(r));
        }
        let mut name = self.ident()?;
        for _ in 0..2 {
            if !self.eat_punct(".")? {
                break;
            }
            if let Some(r) = self.lx.regex()? {
                return Ok(Source::Regex(r));
            }
            name = self.ident()?;
        }
        Ok(Source::Name(name))
    }

    /// `LIMIT n` and `OFFSET n` (either, both, in this order).
    fn limit_offset(&mut self, l: &str, o: &str) -> Result<(Option<u64>, Option<u64>), ParseError> {
        let limit = match self.eat_keyword(l)? {
            true => Some(self.unsigned()?),
            false => None,
        };
        let offset = match self.eat_keyword(o)? {
            true => Some(self.unsigned()?),
            false => None,
        };
        Ok((limit, offset))
    }

    fn select(&mut self) -> Result<Select, ParseError> {
        let mut fields = vec![self.field()?];
        while self.eat_punct(",")? {
            fields.push(self.field()?);
        }
        let into = self.eat_keyword("INTO")?;
        if into {
            self.source()?;
        }
        self.keyword("FROM")?;
        let mut from = vec![self.source()?];
        while self.eat_punct(",")? {
            from.push(self.source()?);
        }
        let condition = match self.eat_keyword("WHERE")? {
            true => Some(self.condition()?),
            false => None,
        };
        let group_by = match self.eat_keyword("GROUP")? {
            true => {
                self.keyword("BY")?;
                self.group_by()?
            }
            false => GroupBy::default(),
        };
        let fill = match self.eat_keyword("FILL")? {
            true => Some(self.fill()?),
            false => None,
        };
        let mut descending = false;
        if self.eat_keyword("ORDER")? {
            self.keyword("BY")?;
            let (t, pos) = self.lx.next()?;
            if !matches!(&t, Tok::Ident(s) | Tok::Quoted(s) if s.eq_ignore_ascii_case("time")) {
                return Err(ParseError::at(
                    self.lx.text(),
                    pos,
                    "only ORDER BY time supported at this time".to_owned(),
                ));
            }
            descending = self.eat_keyword("DESC")?;
            if !descending {
                self.eat_keyword("ASC")?;
            }
        }
        let (limit, offset) = self.limit_offset("LIMIT", "OFFSET")?;
        let (slimit, soffset) = self.limit_offset("SLIMIT", "SOFFSET")?;
        let tz = match self.eat_keyword("TZ")? {
            true => {
                self.punct("(")?;
                let (t, pos) = self.lx.next()?;
                let Tok::Str(zone) = t else {
                    return Err(self.unexpected(t, pos, "string"));
                };
                self.punct(")")?;
                Some(zone)
            }
            false => None,
        };
        Ok(Select {
            fields,
            from,
            condition,
            group_by,
            fill,
            descending,
            limit,
            offset,
            slimit,
            soffset,
            tz,
            into,
        })
    }

    fn field(&mut self) -> Result<Field, ParseError> {
        let expr = self.field_sum()?;
        let alias = match self.eat_keyword("AS")? {
            true => Some(self.ident()?),
            false => None,
        };
        Ok(Field { expr, alias })
    }

    fn field_sum(&mut self) -> Result<FieldExpr, ParseError> {
        let mut e = self.field_product()?;
        loop {
            let op = match self.peek()? {
                Tok::Punct("+") => '+',
                Tok::Punct("-") => '-',
                _ => return Ok(e),
            };
            self.lx.next()?;
            e = FieldExpr::Arithmetic(Box::new(e), op, Box::new(self.field_product()?));
        }
    }

    fn field_product(&mut self) -> Result<FieldExpr, ParseError> {
        let mut e = self.field_factor()?;
        loop {
            let op = match self.peek()? {
                Tok::Punct("*") => '*',
                Tok::Punct("/") => '/',
                _ => return Ok(e),
            };
            self.lx.next()?;
            e = FieldExpr::Arithmetic(Box::new(e), op, Box::new(self.field_factor()?));
        }
    }

    fn field_factor(&mut self) -> Result<FieldExpr, ParseError> {
        let (t, pos) = self.lx.next()?;
        let e = match t {
            Tok::Punct("*") => FieldExpr::Wildcard,
            Tok::Int(n) => FieldExpr::Number(n as f64),
            Tok::Float(f) => FieldExpr::Number(f),
            Tok::Punct("(") => {
                self.enter(pos)?;
                let e = self.field_sum()?;
                self.punct(")")?;
                self.depth -= 1;
                e
            }
            Tok::Quoted(s) => FieldExpr::Column(s),
            Tok::Ident(s) if self.eat_punct("(")? => {
                self.enter(pos)?;
                let mut args = Vec::new();
                if !self.eat_punct(")")? {
                    loop {
                        args.push(match self.lx.regex()? {
                            Some(r) => FieldExpr::Column(format!("/{r}/")),
                            None => self.field_sum()?,
                        });
                        if !self.eat_punct(",")? {
                            break;
                        }
                    }
                    self.punct(")")?;
                }
                self.depth -= 1;
                FieldExpr::Call {
                    name: s.to_ascii_lowercase(),
                    args,
                }
            }
            Tok::Ident(s) if !s.eq_ignore_ascii_case("FROM") => FieldExpr::Column(s),
            t => return Err(self.unexpected(t, pos, "identifier, string, number, bool")),
        };
        Ok(e)
    }

    /// One level deeper into parentheses, refused past [`MAX_DEPTH`].
    pub fn enter(&mut self, pos: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::at(
                self.lx.text(),
                pos,
                format!("parentheses nested deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn group_by(&mut self) -> Result<GroupBy, ParseError> {
        let mut g = GroupBy::default();
        loop {
            if let Some(r) = self.lx.regex()? {
                g.tags.push(Dimension::Regex(r));
            } else {
                let (t, pos) = self.lx.next()?;
                match t {
                    Tok::Punct("*") => g.tags.push(Dimension::All),
                    Tok::Ident(s) if s.eq_ignore_ascii_case("time") && self.eat_punct("(")? => {
                        let every_ns = self.duration()?;
                        let offset_ns = match self.eat_punct(",")? {
                            true => {
                                let negative = self.eat_punct("-")?;
                                let d = self.duration()?;
                                if negative { -d } else { d }
                            }
                            false => 0,
                        };
                        self.punct(")")?;
                        if every_ns <= 0 {
                            return Err(ParseError::at(
                                self.lx.text(),
                                pos,
                                "time dimension must have a duration greater than 0".to_owned(),
                            ));
                        }
                        g.time = Some(TimeBuckets {
                            every_ns,
                            offset_ns,
                        });
                    }
                    Tok::Ident(s) | Tok::Quoted(s) => g.tags.push(Dimension::Tag(s)),
                    t => return Err(self.unexpected(t, pos, "identifier, *, regex, time()")),
                }
            }
            if !self.eat_punct(",")? {
                return Ok(g);
            }
        }
    }

    fn duration(&mut self) -> Result<i64, ParseError> {
        let (t, pos) = self.lx.next()?;
        match t {
            Tok::Duration(d) => Ok(d),
            t => Err(self.unexpected(t, pos, "duration")),
        }
    }

    fn fill(&mut self) -> Result<Fill, ParseError> {
        self.punct("(")?;
        let negative = self.eat_punct("-")?;
        let (t, pos) = self.lx.next()?;
        let sign = if negative { -1.0 } else { 1.0 };
        let fill = match t {
            Tok::Int(n) => Fill::Number(sign * n as f64),
            Tok::Float(f) => Fill::Number(sign * f),
            t if !negative && t.is("null") => Fill::Null,
            t if !negative && t.is("none") => Fill::None,
            t if !negative && t.is("previous") => Fill::Previous,
            t if !negative && t.is("linear") => Fill::Linear,
            t => return Err(self.unexpected(t, pos, "null, none, previous, linear, number")),
        };
        self.punct(")")?;
        Ok(fill)
    }
}
