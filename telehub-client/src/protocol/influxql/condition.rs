//! `WHERE` expressions: comparisons of `time`, tags and fields, combined with `AND`,
//! `OR` and parentheses, into [`Condition`]s. Times: `now()`, RFC 3339 strings, integers
//! (nanoseconds) and duration literals (`1795255200000ms`: since the epoch), each with
//! `+`/`-` durations.

use super::ParseError;
use super::ast::*;
use super::lexer::Tok;
use super::parser::Parser;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// One side of a comparison.
enum Operand {
    Key(String),
    Str(String),
    Number(f64),
    /// An integer or duration literal, plus `+`/`-` durations.
    Int(i64),
    Now(i64),
    /// A string followed by `+`/`-` durations.
    StrPlus(String, i64),
    Regex(String),
}

impl Parser<'_> {
    pub fn condition(&mut self) -> Result<Condition, ParseError> {
        let mut c = self.conjunction()?;
        while self.eat_keyword("OR")? {
            c = Condition::Or(Box::new(c), Box::new(self.conjunction()?));
        }
        Ok(c)
    }

    fn conjunction(&mut self) -> Result<Condition, ParseError> {
        let mut c = self.comparison()?;
        while self.eat_keyword("AND")? {
            c = Condition::And(Box::new(c), Box::new(self.comparison()?));
        }
        Ok(c)
    }

    fn comparison(&mut self) -> Result<Condition, ParseError> {
        let (t, pos) = self.lx.peek()?;
        if t == Tok::Punct("(") {
            self.lx.next()?;
            self.enter(pos)?;
            let c = self.condition()?;
            self.punct(")")?;
            self.depth -= 1;
            return Ok(c);
        }
        let lhs = self.operand()?;
        let (t, op_pos) = self.lx.next()?;
        let op = match t {
            Tok::Punct("=~") => Op::Tag(TagOp::Match),
            Tok::Punct("!~") => Op::Tag(TagOp::NotMatch),
            Tok::Punct("=") => Op::Cmp(Ordering::Eq),
            Tok::Punct("!=" | "<>") => Op::Cmp(Ordering::NotEq),
            Tok::Punct("<") => Op::Cmp(Ordering::Less),
            Tok::Punct("<=") => Op::Cmp(Ordering::LessEq),
            Tok::Punct(">") => Op::Cmp(Ordering::Greater),
            Tok::Punct(">=") => Op::Cmp(Ordering::GreaterEq),
            t => return Err(self.unexpected(t, op_pos, "=, !=, <>, <, <=, >, >=, =~, !~")),
        };
        let rhs_pos = self.lx.position();
        let rhs = match op {
            Op::Tag(_) => Operand::Regex(self.regex()?),
            Op::Cmp(_) => self.operand()?,
        };
        self.classify(lhs, op, rhs, pos, rhs_pos)
    }

    fn classify(
        &self,
        lhs: Operand,
        op: Op,
        rhs: Operand,
        pos: usize,
        rhs_pos: usize,
    ) -> Result<Condition, ParseError> {
        let invalid = |at, what: &str| ParseError::at(self.lx.text(), at, what.to_owned());
        let is_time = |o: &Operand| matches!(o, Operand::Key(k) if k.eq_ignore_ascii_case("time"));
        let (key, op, value, value_pos) = match (lhs, rhs) {
            (l, r) if is_time(&r) && !is_time(&l) => {
                let Op::Cmp(o) = op else {
                    return Err(invalid(
                        pos,
                        "invalid time comparison: use =, !=, <, <=, >, >=",
                    ));
                };
                let at = self
                    .time(l)
                    .ok_or_else(|| invalid(pos, "invalid time expression"))?;
                return Ok(Condition::Time(o.flipped(), at));
            }
            (Operand::Key(k), r) => (k, op, r, rhs_pos),
            _ => {
                return Err(invalid(
                    pos,
                    "invalid condition: expected a tag, field or time on the left",
                ));
            }
        };
        if key.eq_ignore_ascii_case("time") {
            let Op::Cmp(o) = op else {
                return Err(invalid(
                    value_pos,
                    "invalid time comparison: use =, !=, <, <=, >, >=",
                ));
            };
            let at = self.time(value).ok_or_else(|| invalid(value_pos, "invalid time expression: use now() - 6h, an RFC 3339 string or an integer with ms, s, u or ns"))?;
            return Ok(Condition::Time(o, at));
        }
        match (op, value) {
            (Op::Tag(op), Operand::Regex(r)) => Ok(Condition::Tag {
                key,
                op,
                value: TagValue::Regex(r),
            }),
            (Op::Cmp(o @ (Ordering::Eq | Ordering::NotEq)), Operand::Str(s)) => {
                Ok(Condition::Tag {
                    key,
                    op: if o == Ordering::Eq {
                        TagOp::Eq
                    } else {
                        TagOp::NotEq
                    },
                    value: TagValue::Text(s),
                })
            }
            (Op::Cmp(o), Operand::Number(n)) => Ok(Condition::Field {
                key,
                op: o,
                value: n,
            }),
            (Op::Cmp(o), Operand::Int(n)) => Ok(Condition::Field {
                key,
                op: o,
                value: n as f64,
            }),
            _ => Err(invalid(
                value_pos,
                "invalid condition: compare a tag with a 'string' or /regex/, a field with a number",
            )),
        }
    }

    /// A time operand as a [`TimeExpr`], `None` when it is not one.
    fn time(&self, o: Operand) -> Option<TimeExpr> {
        let (base, offset_ns) = match o {
            Operand::Now(off) => (TimeBase::Now, off),
            Operand::Int(n) => (TimeBase::Epoch(n), 0),
            Operand::Str(s) => (TimeBase::Epoch(parse_time(&s)?), 0),
            Operand::StrPlus(s, off) => (TimeBase::Epoch(parse_time(&s)?), off),
            _ => return None,
        };
        Some(TimeExpr { base, offset_ns })
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let (t, pos) = self.lx.next()?;
        let negative = t == Tok::Punct("-");
        let (t, pos) = if negative { self.lx.next()? } else { (t, pos) };
        let sign = if negative { -1 } else { 1 };
        let o = match t {
            Tok::Int(n) => Operand::Int(sign * n),
            Tok::Duration(d) => Operand::Int(sign * d),
            Tok::Float(f) => Operand::Number(sign as f64 * f),
            Tok::Ident(s)
                if !negative && s.eq_ignore_ascii_case("now") && self.eat_punct("(")? =>
            {
                self.punct(")")?;
                Operand::Now(0)
            }
            Tok::Ident(s) | Tok::Quoted(s) if !negative => Operand::Key(s),
            Tok::Str(s) if !negative => Operand::Str(s),
            t => return Err(self.unexpected(t, pos, "identifier, string, number, bool")),
        };
        // `+`/`-` durations after a time.
        let mut o = o;
        loop {
            let sign = match self.peek()? {
                Tok::Punct("+") => 1,
                Tok::Punct("-") => -1,
                _ => return Ok(o),
            };
            if matches!(o, Operand::Key(_) | Operand::Number(_) | Operand::Regex(_)) {
                return Ok(o);
            }
            self.lx.next()?;
            let (t, pos) = self.lx.next()?;
            let d = match t {
                Tok::Duration(d) | Tok::Int(d) => sign * d,
                t => return Err(self.unexpected(t, pos, "duration")),
            };
            o = match o {
                Operand::Int(n) => Operand::Int(n.saturating_add(d)),
                Operand::Now(off) => Operand::Now(off.saturating_add(d)),
                Operand::Str(s) => Operand::StrPlus(s, d),
                Operand::StrPlus(s, off) => Operand::StrPlus(s, off.saturating_add(d)),
                o => o,
            };
        }
    }
}

#[derive(Clone, Copy)]
enum Op {
    Cmp(Ordering),
    Tag(TagOp),
}

/// An RFC 3339 time, or `YYYY-MM-DD[ HH:MM:SS[.f]]` in UTC, as nanoseconds.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })?;
    naive.and_utc().timestamp_nanos_opt()
}
