//! Device and sensor names and units: the identifier rules of the contract (protocol.md §1, protocol.md §2).

use std::fmt;
use std::sync::Arc;

/// Why a name or unit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} characters long; at most 64 are allowed")]
    TooLong(usize),
    #[error("must start with a letter or digit")]
    BadStart,
    #[error("contains {0:?}; only letters, digits and . _ : - are allowed")]
    BadChar(char),
    #[error("unit is {0} characters long; at most 16 are allowed")]
    UnitTooLong(usize),
    #[error("unit contains a control character")]
    UnitControl,
}

/// `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`
fn check_name(s: &str) -> Result<(), NameError> {
    let mut chars = s.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if !first.is_ascii_alphanumeric() {
        return Err(if is_name_char(first) {
            NameError::BadStart
        } else {
            NameError::BadChar(first)
        });
    }
    if let Some(c) = chars.find(|c| !is_name_char(*c)) {
        return Err(NameError::BadChar(c));
    }
    if s.len() > 64 {
        return Err(NameError::TooLong(s.len()));
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(Arc<str>);

        impl $ty {
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check_name(s)?;
                Ok(Self(Arc::from(s)))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        // Hash and Eq agree with `str`'s, so maps keyed by names can be searched by `&str`.
        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A device name: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`.
    DeviceName
);
name_type!(
    /// A sensor name: the same rule as device names.
    SensorName
);

/// A unit of measurement: at most 16 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Unit(Arc<str>);

impl Unit {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let n = s.chars().count();
        if n > 16 {
            return Err(NameError::UnitTooLong(n));
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::UnitControl);
        }
        Ok(Self(Arc::from(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_contract_examples() {
        for ok in ["boiler-1", "a", "A.b_c:d-e", &"x".repeat(64)] {
            assert!(DeviceName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        assert_eq!(DeviceName::parse(""), Err(NameError::Empty));
        assert_eq!(DeviceName::parse("-a"), Err(NameError::BadStart));
        assert_eq!(DeviceName::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(DeviceName::parse("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(
            DeviceName::parse(&"x".repeat(65)),
            Err(NameError::TooLong(65))
        );
        assert_eq!(SensorName::parse("tempé"), Err(NameError::BadChar('é')));
    }

    proptest! {
        #[test]
        fn parse_agrees_with_the_contract_regex(s in "\\PC{0,70}") {
            let re_ok = {
                let b = s.as_bytes();
                !b.is_empty() && b.len() <= 64 && b[0].is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
            };
            prop_assert_eq!(DeviceName::parse(&s).is_ok(), re_ok);
        }

        #[test]
        fn valid_names_round_trip(s in "[A-Za-z0-9][A-Za-z0-9._:-]{0,63}") {
            let n = SensorName::parse(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
        }
    }
}
