//! What an operator or a device sends about a configuration, checked once at the edge:
//! the desired document (a JSON object of at most 16 KiB, protocol.md §14), `If-Match`,
//! and the command line's `--set KEY=VALUE` edits. Shared by the HTTP API and the CLI,
//! so both refuse the same things with the same words.

use super::ConfigError;
use crate::commands::request::kind_of;
use crate::protocol::commands::MAX_CONFIG_BYTES;
use serde_json::{Map, Value as Json};

/// The document's JSON text, when it is within [`MAX_CONFIG_BYTES`].
pub fn checked_text(doc: &Map<String, Json>) -> Result<String, ConfigError> {
    let text = serde_json::to_string(doc).expect("a JSON object serializes");
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge(format!(
            "desired: {} bytes; at most {MAX_CONFIG_BYTES} (16 KiB)",
            text.len()
        )));
    }
    Ok(text)
}

/// A JSON value that must be the desired document: an object of at most 16 KiB.
pub fn desired_of(v: Json) -> Result<Map<String, Json>, ConfigError> {
    match v {
        Json::Object(m) => {
            checked_text(&m)?;
            Ok(m)
        }
        other => Err(ConfigError::Invalid(format!(
            "desired: expected a JSON object, got {}",
            kind_of(&other)
        ))),
    }
}

/// `PUT /v1/devices/NAME/config`'s body: `{"desired": {…}}`.
pub fn parse_body(text: &str) -> Result<Map<String, Json>, ConfigError> {
    let v: Json = serde_json::from_str(text)
        .map_err(|e| ConfigError::Invalid(format!("invalid JSON: {e}")))?;
    let Json::Object(mut obj) = v else {
        return Err(ConfigError::Invalid("expected {\"desired\": {…}}".into()));
    };
    let desired = obj
        .remove("desired")
        .ok_or_else(|| ConfigError::Invalid("desired: missing; send {\"desired\": {…}}".into()))?;
    if let Some(k) = obj.keys().next() {
        return Err(ConfigError::Invalid(format!(
            "unknown field `{}`; expected desired",
            k.chars().take(32).collect::<String>()
        )));
    }
    desired_of(desired)
}

/// `If-Match: "3"` (also `3` and the weak `W/"3"`): the version the writer read.
pub fn parse_if_match(header: &str) -> Result<u64, ConfigError> {
    let h = header.trim();
    let h = h.strip_prefix("W/").unwrap_or(h);
    let h = h
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or(h);
    h.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "If-Match: {:?}; expected the version read, e.g. \"3\"",
            header.chars().take(32).collect::<String>()
        ))
    })
}

/// `KEY=VALUE` edits applied to `doc`: VALUE is JSON when it parses as JSON (`10`,
/// `true`, `"text"`, `{"a": 1}`), else the text itself.
pub fn apply_sets(
    mut doc: Map<String, Json>,
    sets: &[String],
) -> Result<Map<String, Json>, ConfigError> {
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--set {:?}: expected KEY=VALUE (e.g. interval_s=10)",
                s.chars().take(40).collect::<String>()
            ))
        })?;
        if k.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--set {:?}: the key is empty",
                s.chars().take(40).collect::<String>()
            )));
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.to_owned()));
        doc.insert(k.to_owned(), value);
    }
    checked_text(&doc)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_body_is_an_object_of_at_most_16_kib() {
        let d = parse_body(r#"{"desired": {"interval_s": 10}}"#).unwrap();
        assert_eq!(Json::Object(d), json!({"interval_s": 10}));
        assert!(matches!(
            parse_body(r#"{"desired": [1]}"#),
            Err(ConfigError::Invalid(m)) if m.contains("an array")
        ));
        assert!(
            matches!(parse_body(r#"{"desired": {}, "x": 1}"#), Err(ConfigError::Invalid(m)) if m.contains("`x`"))
        );
        assert!(matches!(parse_body("{}"), Err(ConfigError::Invalid(m)) if m.contains("missing")));
        let big = json!({"desired": {"s": "x".repeat(MAX_CONFIG_BYTES)}}).to_string();
        assert!(matches!(parse_body(&big), Err(ConfigError::TooLarge(_))));
    }

    #[test]
    fn if_match_takes_the_quoted_version() {
        assert_eq!(parse_if_match("\"3\"").unwrap(), 3);
        assert_eq!(parse_if_match("W/\"3\"").unwrap(), 3);
        assert_eq!(parse_if_match(" 12 ").unwrap(), 12);
        assert!(parse_if_match("\"x\"").is_err());
        assert!(parse_if_match("*").is_err());
    }

    #[test]
    fn sets_parse_json_values_or_keep_text() {
        let d = apply_sets(
            Map::new(),
            &[
                "interval_s=10".into(),
                "mode=eco".into(),
                "on=true".into(),
                "t={\"a\":1}".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            Json::Object(d),
            json!({"interval_s": 10, "mode": "eco", "on": true, "t": {"a": 1}})
        );
        assert!(apply_sets(Map::new(), &["novalue".into()]).is_err());
        assert!(apply_sets(Map::new(), &["=1".into()]).is_err());
    }

    proptest! {
        #[test]
        fn if_match_round_trips_any_version(v in any::<u64>()) {
            prop_assert_eq!(parse_if_match(&format!("\"{v}\"")).unwrap(), v);
        }

        #[test]
        fn a_set_stores_its_value_under_its_key(k in "[a-z_]{1,20}", v in "\\PC{0,40}") {
            let d = apply_sets(Map::new(), &[format!("{k}={v}")]).unwrap();
            let expected = serde_json::from_str(&v).unwrap_or(Json::String(v.clone()));
            prop_assert_eq!(d.get(&k), Some(&expected));
        }

        #[test]
        fn any_body_is_parsed_or_refused_without_panic(s in "\\PC{0,200}") {
            let _ = parse_body(&s);
        }
    }
}
