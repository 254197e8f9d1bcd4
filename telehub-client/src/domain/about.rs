//! What an operator says about a device (docs/http-api.md "Devices"): a description and a
//! location, each checked once here so the API, the CLI and storage agree on the rules.

use serde::{Deserialize, Serialize};

/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// The longest location name, in characters.
pub const MAX_LOCATION_NAME_CHARS: usize = 128;

/// Why a description or location was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AboutError {
    #[error("description: at most {MAX_DESCRIPTION_CHARS} characters, no control characters")]
    Description,
    #[error("location name: 1 to {MAX_LOCATION_NAME_CHARS} characters, no control characters")]
    LocationName,
    #[error(
        "location: lat must be within -90..90 and lon within -180..180, and both given or neither"
    )]
    Coordinates,
    #[error("location: give lat and lon, a name, or both")]
    EmptyLocation,
    #[error(
        "location {0:?}: give LAT,LON (52.52,13.40), a name (\"Hall 3\"), or a JSON object {{\"lat\", \"lon\", \"name\"}}"
    )]
    LocationText(String),
}

/// A device's free-text description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub fn parse(s: &str) -> Result<Self, AboutError> {
        if s.chars().count() > MAX_DESCRIPTION_CHARS || s.chars().any(char::is_control) {
            return Err(AboutError::Description);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a device is: coordinates (WGS 84 degrees), a name, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Location {
    /// Checks a location as it arrived (an API body, a stored row).
    pub fn check(self) -> Result<Self, AboutError> {
        match (self.lat, self.lon) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => {}
            (None, None) => {}
            _ => return Err(AboutError::Coordinates),
        }
        if let Some(name) = &self.name {
            let n = name.chars().count();
            if n == 0 || n > MAX_LOCATION_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(AboutError::LocationName);
            }
        }
        if self.lat.is_none() && self.name.is_none() {
            return Err(AboutError::EmptyLocation);
        }
        Ok(self)
    }

    /// The command line's form: `LAT,LON`, a JSON object, or else a name.
    pub fn parse_arg(s: &str) -> Result<Self, AboutError> {
        let s = s.trim();
        if s.starts_with('{') {
            let loc: Self =
                serde_json::from_str(s).map_err(|_| AboutError::LocationText(s.to_owned()))?;
            return loc.check();
        }
        if let Some((a, b)) = s.split_once(',')
            && let (Ok(lat), Ok(lon)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>())
        {
            return Self {
                lat: Some(lat),
                lon: Some(lon),
                name: None,
            }
            .check();
        }
        Self {
            lat: None,
            lon: None,
            name: Some(s.to_owned()),
        }
        .check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_location_argument_is_coordinates_a_name_or_json() {
        let l = Location::parse_arg("52.52, 13.40").unwrap();
        assert_eq!((l.lat, l.lon, l.name), (Some(52.52), Some(13.40), None));
        let l = Location::parse_arg("Hall 3, press line").unwrap();
        assert_eq!(l.name.as_deref(), Some("Hall 3, press line"));
        let l = Location::parse_arg(r#"{"lat": 1, "lon": 2, "name": "roof"}"#).unwrap();
        assert_eq!(
            (l.lat, l.lon, l.name.as_deref()),
            (Some(1.0), Some(2.0), Some("roof"))
        );
    }

    #[test]
    fn bad_locations_are_refused_with_the_rule() {
        assert_eq!(Location::parse_arg("91,0"), Err(AboutError::Coordinates));
        assert_eq!(
            Location::parse_arg(r#"{"lat": 1}"#),
            Err(AboutError::Coordinates)
        );
        assert_eq!(Location::parse_arg("{}"), Err(AboutError::EmptyLocation));
        assert!(matches!(
            Location::parse_arg("{nope"),
            Err(AboutError::LocationText(_))
        ));
        assert_eq!(
            Location::parse_arg("a\u{7}b"),
            Err(AboutError::LocationName)
        );
        assert_eq!(
            Location::parse_arg(&"x".repeat(MAX_LOCATION_NAME_CHARS + 1)),
            Err(AboutError::LocationName)
        );
    }

    #[test]
    fn descriptions_are_bounded_and_printable() {
        assert!(Description::parse(&"é".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        assert!(Description::parse(&"é".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
        assert!(Description::parse("line\nbreak").is_err());
    }

    proptest! {
        #[test]
        fn an_accepted_location_round_trips_through_json(arg in "\\PC{0,200}") {
            if let Ok(l) = Location::parse_arg(&arg) {
                let json = serde_json::to_string(&l).unwrap();
                let back: Location = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(back.check(), Ok(l));
            }
        }
    }
}
