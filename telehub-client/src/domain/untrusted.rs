//! Untrusted text on its way into a log line: [`untrusted`] caps its length and escapes
//! its control characters, so a device name, a header, an `Origin`, a topic or an echoed
//! input cannot make a log line huge or forge another line (a newline, an escape
//! sequence). One helper, used wherever a value someone else chose reaches `tracing`.

use std::fmt;

/// The most characters of one untrusted value a log line holds; the rest is counted.
pub const MAX_LOGGED_CHARS: usize = 200;

/// A value someone else chose, as a log line may show it (see [`untrusted`]).
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(&'a str);

/// Wraps `text` for a log line: at most [`MAX_LOGGED_CHARS`] characters, control
/// characters written as escapes (`\n`, `\u{1b}`), and `…(N more bytes)` when cut.
pub fn untrusted(text: &str) -> Untrusted<'_> {
    Untrusted(text)
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == MAX_LOGGED_CHARS {
                return write!(f, "…({} more bytes)", self.0.len() - i);
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl Untrusted<'_> {
    /// The capped text as an owned string (for a detail that is logged later).
    pub fn to_capped(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_text_is_kept_as_it_is() {
        assert_eq!(untrusted("boiler-1 ü").to_string(), "boiler-1 ü");
    }

    #[test]
    fn control_characters_are_escaped() {
        let s = untrusted("a\nINFO forged\u{1b}[31m\r").to_string();
        assert_eq!(s, "a\\nINFO forged\\u{1b}[31m\\r");
        assert!(!s.contains('\n') && !s.contains('\u{1b}'));
    }

    #[test]
    fn long_text_is_cut_and_the_rest_counted() {
        let long = "x".repeat(100_000);
        let s = untrusted(&long).to_string();
        assert!(s.starts_with(&"x".repeat(MAX_LOGGED_CHARS)));
        assert!(s.ends_with(&format!("…({} more bytes)", 100_000 - MAX_LOGGED_CHARS)));
        assert!(s.len() < 300);
    }

    proptest::proptest! {
        #[test]
        fn never_longer_than_the_cap_and_never_a_control_character(text in ".{0,600}") {
            let s = untrusted(&text).to_string();
            proptest::prop_assert!(!s.chars().any(char::is_control));
            // An escape is at most 10 characters (`\u{10ffff}`), the tail note ~30.
            proptest::prop_assert!(s.chars().count() <= MAX_LOGGED_CHARS * 10 + 30);
        }
    }
}
