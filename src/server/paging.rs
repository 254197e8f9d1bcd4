//! Key-set pages of the list endpoints whose answer is a bare JSON array (`GET
//! /v1/devices`, `/v1/alert-rules`, `/v1/alerts`, `/v1/alerts/events`, `/v1/silences`;
//! docs/http-api.md "Pages"). `?limit=N` answers at most N entries, in key order, and a
//! `Link: <…&cursor=C>; rel="next"` header (RFC 8288) when more follow; the body keeps
//! its shape. A cursor is opaque to clients: the key of the last entry given (a device
//! name, an id, …) as base64url JSON, so a page never repeats or skips an entry because
//! another was added or removed before it. `limit` is bounded by `[limits] max_page_size`.

use super::ApiError;
use axum::Json;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The longest cursor read (a device name's key is well under it).
const MAX_CURSOR_CHARS: usize = 1024;

/// What a request asked of a list: at most `limit` entries, those after `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest<K> {
    pub limit: Option<usize>,
    pub after: Option<K>,
}

impl<K: Ord + Serialize + DeserializeOwned> PageRequest<K> {
    /// Reads `limit` (1 to `max`) and `cursor` from a query string; other parameters are
    /// the caller's. `default`: the limit when none is given (`None`: the whole list).
    pub fn from_query(
        query: Option<&str>,
        max: usize,
        default: Option<usize>,
    ) -> Result<Self, ApiError> {
        let mut req = Self {
            limit: default,
            after: None,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => {
                    req.limit = Some(v.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(
                        || {
                            ApiError::bad_request(format!(
                                "limit: expected a whole number from 1 to {max} (limits.max_page_size)"
                            ))
                        },
                    )?)
                }
                "cursor" => req.after = Some(decode_cursor(&v)?),
                _ => {}
            }
        }
        Ok(req)
    }

    /// Whether the caller asked for a page rather than the whole list.
    pub fn paged(&self) -> bool {
        self.limit.is_some() || self.after.is_some()
    }

    /// The page of `items` this request asks for. `items` may hold entries at or before
    /// the cursor, and more than `limit`; when paged they are put in key order first.
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> K) -> Page<T> {
        if !self.paged() {
            return Page { items, next: None };
        }
        if let Some(after) = &self.after {
            items.retain(|t| key(t) > *after);
        }
        items.sort_by_key(&key);
        let next = match self.limit {
            Some(n) if items.len() > n => {
                items.truncate(n);
                items.last().map(|t| encode_cursor(&key(t)))
            }
            _ => None,
        };
        Page { items, next }
    }
}

/// One page and the cursor of the next, if more follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// The JSON array, with a `Link` to the next page (the request's own path and
    /// parameters, without `token` and with the new `cursor`).
    pub fn respond(self, uri: &Uri) -> Response {
        let mut res = Json(self.items).into_response();
        if let Some(cursor) = self.next {
            let link = format!("<{}>; rel=\"next\"", next_url(uri, &cursor));
            if let Ok(v) = HeaderValue::from_str(&link) {
                res.headers_mut().insert(header::LINK, v);
            }
        }
        res
    }
}

/// `uri` with `cursor` set to `cursor`; a `token` parameter is left out (the client
/// authenticates the next request as it did this one, and the link may be logged).
pub fn next_url(uri: &Uri, cursor: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k != "cursor" && k != "token" {
            q.append_pair(&k, &v);
        }
    }
    q.append_pair("cursor", cursor);
    format!("{}?{}", uri.path(), q.finish())
}

/// A key as an opaque cursor.
pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("a key serializes"))
}

fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "cursor: not a cursor this list gave out; start again without `cursor` and follow the Link header",
        )
    };
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(q: &str) -> Result<PageRequest<String>, ApiError> {
        PageRequest::from_query(Some(q), 100, None)
    }

    #[test]
    fn limits_outside_the_bound_and_foreign_cursors_are_refused() {
        for q in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=x",
            "cursor=%%%",
            "cursor=e30",
        ] {
            let e = req(q).unwrap_err();
            assert_eq!(e.kind.as_str(), "bad_request", "{q}");
        }
        let id: Result<PageRequest<i64>, _> =
            PageRequest::from_query(Some(&format!("cursor={}", encode_cursor(&"a"))), 9, None);
        assert!(id.is_err(), "a name cursor is not an id cursor");
    }

    #[test]
    fn no_limit_gives_the_whole_list_as_it_came() {
        let p = req("label=a:b")
            .unwrap()
            .page(vec!["b", "a"], |s| s.to_string());
        assert_eq!((p.items, p.next), (vec!["b", "a"], None));
    }

    #[test]
    fn the_link_keeps_the_other_parameters_and_drops_the_token() {
        let uri: Uri = "/v1/devices?label=site%3Aa&token=secret&limit=2&cursor=old"
            .parse()
            .unwrap();
        assert_eq!(
            next_url(&uri, "Im4i"),
            "/v1/devices?label=site%3Aa&limit=2&cursor=Im4i"
        );
    }

    proptest! {
        /// Pages followed to the end give every entry once, in order, whatever was
        /// inserted between two pages (inserted entries after the cursor show up too).
        #[test]
        fn pages_concatenate_to_the_list(
            names in proptest::collection::btree_set("[a-z0-9]{1,6}", 0..40),
            added in proptest::collection::vec("[a-z0-9]{1,6}", 0..10),
            limit in 1usize..7,
        ) {
            let mut all: Vec<String> = names.iter().cloned().collect();
            let mut added = added.into_iter();
            let mut seen: Vec<String> = Vec::new();
            let mut q = format!("limit={limit}");
            loop {
                let page = req(&q).unwrap().page(all.clone(), |s| s.clone());
                prop_assert!(page.items.len() <= limit);
                seen.extend(page.items);
                if let Some(a) = added.next().filter(|a| !all.contains(a)) {
                    all.push(a);
                }
                match page.next {
                    Some(c) => q = format!("limit={limit}&cursor={c}"),
                    None => break,
                }
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, &seen, "in order, no duplicates");
            // Every entry present from the start was seen (one added behind the cursor is not).
            for n in &names { prop_assert!(seen.contains(n), "{} missing", n); }
            for s in &seen { prop_assert!(all.contains(s)); }
        }
    }
}
