//! The hub's base address as devices and gateways give it (docs/protocol.md §2):
//! `ws[s]://HOST:PORT[/prefix]`, turned into the full `/v1/ingest` URL.

const INGEST_PATH: &str = "/v1/ingest";

/// Why a hub address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hub address {address:?}: {reason}")]
pub struct AddressError {
    pub address: String,
    pub reason: String,
}

/// The ingest URL derived from a hub base address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAddress {
    url: String,
    tls: bool,
}

impl HubAddress {
    /// `ws[s]://HOST:PORT[/prefix]` → `…/v1/ingest`; a URL already ending in
    /// `/v1/ingest` is used as it is. `http(s)://` is taken as `ws(s)://`.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let bad = |reason: &str| AddressError {
            address: s.to_owned(),
            reason: reason.to_owned(),
        };
        let s_trim = s.trim();
        let (scheme, rest) = s_trim
            .split_once("://")
            .ok_or_else(|| bad("expected ws://HOST:PORT or wss://HOST:PORT"))?;
        let (scheme, tls) = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => ("ws", false),
            "wss" | "https" => ("wss", true),
            _ => return Err(bad("the scheme must be ws:// or wss://")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let path = path.trim_end_matches('/');
        let path = if path.ends_with(INGEST_PATH) {
            path.to_owned()
        } else {
            format!("{path}{INGEST_PATH}")
        };
        let url = match query {
            Some(q) => format!("{scheme}://{authority}{path}?{q}"),
            None => format!("{scheme}://{authority}{path}"),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        Ok(Self { url, tls })
    }

    /// The full `ws[s]://…/v1/ingest` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The same hub's HTTP(S) URL for `path` (e.g. `/api/v2/write`) in place of
    /// `/v1/ingest`, any query kept: `ws://h:1/p/v1/ingest` → `http://h:1/p{path}`.
    pub fn http_url(&self, path: &str) -> String {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .expect("parsed URLs have a scheme");
        let scheme = if scheme == "wss" { "https" } else { "http" };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let base = rest.strip_suffix(INGEST_PATH).unwrap_or(rest);
        match query {
            Some(q) => format!("{scheme}://{base}{path}?{q}"),
            None => format!("{scheme}://{base}{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> String {
        HubAddress::parse(s).unwrap().url().to_owned()
    }

    #[test]
    fn the_ingest_path_is_appended_to_a_base_address() {
        assert_eq!(url("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ingest");
        assert_eq!(url("ws://hub:8080/"), "ws://hub:8080/v1/ingest");
        assert_eq!(
            url("wss://hub.example:443/telehub"),
            "wss://hub.example:443/telehub/v1/ingest"
        );
        assert_eq!(
            url("ws://[::1]:9000/v1/ingest"),
            "ws://[::1]:9000/v1/ingest"
        );
        assert_eq!(url("http://h:1?token=x"), "ws://h:1/v1/ingest?token=x");
        assert!(HubAddress::parse("https://h:1").unwrap().is_tls());
        assert!(!HubAddress::parse("ws://h:1").unwrap().is_tls());
    }

    #[test]
    fn http_endpoints_sit_beside_the_ingest_path() {
        let http = |s: &str, path| HubAddress::parse(s).unwrap().http_url(path);
        assert_eq!(http("ws://h:1", "/v1/ingest"), "http://h:1/v1/ingest");
        assert_eq!(
            http("wss://h:443/telehub/v1/ingest", "/api/v2/write"),
            "https://h:443/telehub/api/v2/write"
        );
        assert_eq!(
            http("https://h:1?x=y", "/api/v2/write"),
            "https://h:1/api/v2/write?x=y"
        );
    }

    #[test]
    fn addresses_that_are_not_websocket_urls_are_refused() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://h:1",
            "ws://",
            "ws:///v1/ingest",
            "ws://h h:1",
        ] {
            assert!(HubAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
