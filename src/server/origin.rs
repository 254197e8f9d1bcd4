//! Which browser origins may open a dashboard socket (`/v1/live`, docs/protocol.md §3).
//!
//! A request without `Origin` (not a browser) passes. A browser's `Origin` must be one the
//! operator configured (`server.allowed_origins`, or the origin of `alerts.dashboard_url`),
//! or the hub's own page reached by address: `scheme://Host` where Host is an IP address
//! or `localhost`. A Host that is any other name is never trusted by itself: a page on a
//! name the attacker controls can point that name at the hub (DNS rebinding) and would
//! then send matching `Origin` and `Host`; an address or `localhost` cannot be re-pointed.

use std::net::IpAddr;

/// What an `Origin` is compared with.
pub struct Origins<'a> {
    /// `https` when the hub serves TLS itself, else `http`.
    pub scheme: &'a str,
    pub allowed: &'a [String],
    /// `alerts.dashboard_url` (empty when unset).
    pub dashboard_url: &'a str,
}

impl Origins<'_> {
    /// Whether a browser page at `origin` may open a socket sent to `host` (the `Host`
    /// header).
    pub fn allow(&self, origin: &str, host: &str) -> bool {
        let same = |o: &str| o.trim_end_matches('/').eq_ignore_ascii_case(origin);
        self.allowed.iter().any(|o| same(o))
            || (!self.dashboard_url.is_empty() && same(origin_of(self.dashboard_url)))
            || (is_address_or_localhost(host) && same(&format!("{}://{host}", self.scheme)))
    }
}

/// `scheme://authority` of a URL (what a browser sends as its `Origin`).
fn origin_of(url: &str) -> &str {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let end = rest
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme.len() + 3 + i);
    &url[..end]
}

/// Whether `host` (`name[:port]`, `[v6]:port`) names an IP address or `localhost`.
fn is_address_or_localhost(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origins<'a>(allowed: &'a [String], dashboard_url: &'a str) -> Origins<'a> {
        Origins {
            scheme: "http",
            allowed,
            dashboard_url,
        }
    }

    #[test]
    fn the_hub_reached_by_address_or_localhost_is_its_own_origin() {
        let o = origins(&[], "");
        for host in [
            "127.0.0.1:8080",
            "192.168.1.5:8080",
            "[::1]:8080",
            "localhost:8080",
        ] {
            assert!(o.allow(&format!("http://{host}"), host), "{host}");
            assert!(!o.allow(&format!("https://{host}"), host), "{host}: scheme");
        }
        assert!(!o.allow("http://127.0.0.1:9090", "127.0.0.1:8080"), "port");
    }

    #[test]
    fn a_name_must_be_configured_even_when_origin_and_host_agree() {
        let o = origins(&[], "");
        assert!(!o.allow("http://evil.example:8080", "evil.example:8080"));
        let allowed = ["https://hub.example.com".to_owned()];
        let o = origins(&allowed, "");
        assert!(o.allow("https://hub.example.com", "hub.example.com"));
        assert!(o.allow("HTTPS://HUB.example.com", "127.0.0.1:8080"));
        let o = origins(&[], "https://wall.example.com/dash/?x=1");
        assert!(o.allow("https://wall.example.com", "10.0.0.2:8080"));
        assert!(!o.allow("https://wall.example.com.evil", "10.0.0.2:8080"));
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(origin_of("https://a.b:8443/x/y?z"), "https://a.b:8443");
        assert_eq!(origin_of("http://a.b"), "http://a.b");
        assert_eq!(origin_of("http://a.b#f"), "http://a.b");
    }

    proptest! {
        /// An origin on a name is allowed only when configured, whatever the Host says.
        #[test]
        fn unconfigured_names_never_pass(name in "[a-z]{1,12}\\.[a-z]{2,6}", port in 1u16..) {
            let host = format!("{name}:{port}");
            let o = origins(&[], "");
            let origin = format!("http://{host}");
            prop_assert!(!o.allow(&origin, &host));
        }
    }
}
