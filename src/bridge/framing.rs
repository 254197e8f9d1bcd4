//! Cuts the serial byte stream into lines: a line may arrive over several reads,
//! several lines in one read; an over-long line (noise, wrong baud rate, missing
//! line endings) is dropped up to the next `\n` with a short excerpt kept for the log.

use crate::protocol::serial::MAX_LINE_BYTES;

/// Bytes of a bad line shown in the log.
pub const EXCERPT_BYTES: usize = 40;

/// What the framer found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A complete line, without its `\n` (a `\r` before it is kept for the parser).
    Line(&'a [u8]),
    /// A line longer than the limit, dropped; `head` is its beginning.
    TooLong { len: usize, head: &'a [u8] },
}

/// The partial line between reads. Holds at most `MAX_LINE_BYTES + 1` bytes.
#[derive(Debug, Default)]
pub struct LineFramer {
    partial: Vec<u8>,
    /// Bytes of the current over-long line seen so far (its head stays in `partial`).
    overflow: Option<usize>,
}

/// `MAX_LINE_BYTES` plus a `\r` before the `\n`.
const LIMIT: usize = MAX_LINE_BYTES + 1;

impl LineFramer {
    pub fn new() -> Self {
        Self {
            partial: Vec::with_capacity(LIMIT),
            overflow: None,
        }
    }

    /// Feeds one read's bytes; calls `emit` for every line completed by them.
    pub fn push(&mut self, mut chunk: &[u8], mut emit: impl FnMut(Framed<'_>)) {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&chunk[..nl], &chunk[nl + 1..]);
            chunk = rest;
            if let Some(seen) = self.overflow.take() {
                emit(Framed::TooLong {
                    len: seen + head.len(),
                    head: &self.partial,
                });
                self.partial.clear();
            } else if self.partial.is_empty() {
                // The common case: the whole line is in this read, no copy.
                match head.len() {
                    n if n <= LIMIT => emit(Framed::Line(head)),
                    n => emit(Framed::TooLong {
                        len: n,
                        head: &head[..EXCERPT_BYTES],
                    }),
                }
            } else if self.partial.len() + head.len() <= LIMIT {
                self.partial.extend_from_slice(head);
                emit(Framed::Line(&self.partial));
                self.partial.clear();
            } else {
                let len = self.partial.len() + head.len();
                self.partial.truncate(EXCERPT_BYTES);
                emit(Framed::TooLong {
                    len,
                    head: &self.partial,
                });
                self.partial.clear();
            }
        }
        self.keep_partial(chunk);
    }

    fn keep_partial(&mut self, rest: &[u8]) {
        if let Some(seen) = &mut self.overflow {
            *seen += rest.len();
        } else if self.partial.len() + rest.len() <= LIMIT {
            self.partial.extend_from_slice(rest);
        } else {
            let seen = self.partial.len() + rest.len();
            let room = EXCERPT_BYTES.saturating_sub(self.partial.len());
            self.partial.truncate(EXCERPT_BYTES);
            self.partial
                .extend_from_slice(&rest[..room.min(rest.len())]);
            self.overflow = Some(seen);
        }
    }

    /// Forgets a partial line (the port closed mid-line); returns its length.
    pub fn reset(&mut self) -> usize {
        let n = self.overflow.take().unwrap_or(self.partial.len());
        self.partial.clear();
        n
    }
}

/// Up to [`EXCERPT_BYTES`] bytes, escaped so that noise prints safely on one line.
pub fn excerpt(bytes: &[u8]) -> String {
    let mut s: String = bytes
        .iter()
        .take(EXCERPT_BYTES)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > EXCERPT_BYTES {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq)]
    enum Out {
        Line(Vec<u8>),
        TooLong(usize),
    }

    fn feed(f: &mut LineFramer, chunks: &[&[u8]]) -> Vec<Out> {
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |x| {
                out.push(match x {
                    Framed::Line(l) => Out::Line(l.to_vec()),
                    Framed::TooLong { len, head } => {
                        assert!(head.len() <= EXCERPT_BYTES);
                        Out::TooLong(len)
                    }
                })
            });
        }
        out
    }

    #[test]
    fn joins_a_line_split_across_reads_and_splits_lines_in_one_read() {
        let mut f = LineFramer::new();
        let out = feed(&mut f, &[b"a=1\r\nb=", b"2", b"\nc=3\nd"]);
        assert_eq!(
            out,
            [
                Out::Line(b"a=1\r".to_vec()),
                Out::Line(b"b=2".to_vec()),
                Out::Line(b"c=3".to_vec())
            ]
        );
        assert_eq!(f.reset(), 1);
        assert_eq!(feed(&mut f, &[b"e=5\n"]), [Out::Line(b"e=5".to_vec())]);
    }

    #[test]
    fn drops_an_over_long_line_up_to_the_next_newline_and_carries_on() {
        let mut f = LineFramer::new();
        let noise = vec![b'x'; 300];
        let out = feed(&mut f, &[&noise, &noise, &noise, b"tail\nok=1\n"]);
        assert_eq!(
            out,
            [Out::TooLong(904), Out::Line(b"ok=1".to_vec())],
            "one report per long line"
        );
        let mut one = vec![b'y'; 600];
        one.extend_from_slice(b"\nok=2\n");
        assert_eq!(
            feed(&mut f, &[&one]),
            [Out::TooLong(600), Out::Line(b"ok=2".to_vec())]
        );
        let exact = [vec![b'z'; LIMIT], b"\n".to_vec()].concat();
        assert_eq!(feed(&mut f, &[&exact[..100], &exact[100..]]).len(), 1);
    }

    #[test]
    fn excerpts_escape_noise() {
        assert_eq!(excerpt(b"a=1\xff\x00"), "a=1\\xff\\x00");
        assert!(excerpt(&[b'q'; 100]).ends_with('…'));
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..3000),
            cuts in proptest::collection::vec(0usize..3000, 0..20),
        ) {
            let whole = feed(&mut LineFramer::new(), &[&data]);
            let mut cuts: Vec<_> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[prev..c]);
                prev = c;
            }
            prop_assert_eq!(feed(&mut LineFramer::new(), &chunks), whole);
        }
    }
}
