//! InfluxQL, the subset the hub's `/query` answers (docs/grafana.md):
//! `SHOW DATABASES | RETENTION POLICIES | MEASUREMENTS | TAG KEYS | TAG VALUES | FIELD
//! KEYS` and `SELECT` with one field or aggregate, `WHERE` over time and tags, `GROUP
//! BY time(…)` and tags, `fill`, `ORDER BY time`, `LIMIT`/`OFFSET`/`SLIMIT`/`SOFFSET`, `tz`.
//!
//! - [`ast`]: the typed statements.
//! - [`lexer`], the tokens;
//! - [`parser`]: statements (recursive descent); [`condition`]: `WHERE` expressions.
//!
//! [`parse`] turns a query's text into statements or one [`ParseError`] worded as
//! InfluxDB words it (`found X, expected Y at line 1, char N`), so clients show it as
//! they would InfluxDB's. It is a parser, not a judge: a function or clause the hub
//! does not answer parses, and the executor refuses it by name. Pure: no I/O.
//!
//! May use: nothing outside this module.

pub mod ast;
mod condition;
pub mod lexer;
mod parser;

pub use ast::*;
pub use parser::parse;

/// Parentheses nest at most this deep (the parser recurses on them).
pub const MAX_DEPTH: usize = 32;

/// A query that does not parse. Shown as InfluxDB shows it, after `error parsing query: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, char {char}")]
pub struct ParseError {
    pub message: String,
    /// Counted from 1.
    pub line: usize,
    /// Counted from 1, in characters.
    pub char: usize,
}

impl ParseError {
    /// `message` at byte `pos` of `text` (past its end: that many bytes past).
    pub fn at(text: &str, pos: usize, message: String) -> Self {
        let past = pos.saturating_sub(text.len());
        let pos = pos.min(text.len());
        let before = text.get(..pos).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1 + past;
        Self {
            message,
            line,
            char: col,
        }
    }
}

/// A caller's text as shown in a message: at most 64 characters.
pub fn cap(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;
