//! Request authentication: a token from `Authorization: Bearer` or `?token=`,
//! checked against storage before any handler (or WebSocket upgrade) runs.

use super::{ApiError, HubState};
use crate::auth::{Principal, hash_token};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

/// The authenticated caller of a request.
pub struct Authenticated(pub Principal);

/// The token a request carries, if any.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let h = h.to_str().ok()?;
        let (scheme, token) = h.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    let query = parts.uri.query()?;
    form_urlencoded_token(query)
}

fn form_urlencoded_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

impl FromRequestParts<Arc<HubState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<HubState>) -> Result<Self, ApiError> {
        let token = token_of(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "missing token: send `Authorization: Bearer <token>` or `?token=`",
            )
        })?;
        match hub.store.authenticate(&hash_token(&token)).await? {
            Some(p) => Ok(Authenticated(p)),
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        }
    }
}

/// An extractor for callers whose principal `$allowed` accepts; any other token is
/// refused with 403 and `$refusal`.
macro_rules! caller_who {
    ($(#[$doc:meta])* $name:ident, $allowed:expr, $refusal:literal) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<Arc<HubState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                hub: &Arc<HubState>,
            ) -> Result<Self, ApiError> {
                let Authenticated(p) = Authenticated::from_request_parts(parts, hub).await?;
                let allowed: fn(&Principal) -> bool = $allowed;
                if !allowed(&p) {
                    return Err(ApiError::forbidden($refusal));
                }
                Ok($name(p))
            }
        }
    };
}

caller_who!(
    /// A caller allowed to read (viewer, operator or admin token).
    Viewer,
    Principal::can_view,
    "this needs a viewer, operator or admin token; device tokens may only send readings"
);
caller_who!(
    /// A caller allowed to send and cancel commands (operator or admin token, contract §13).
    Operator,
    Principal::can_operate,
    "this needs an operator or admin token (`telehub token add NAME --role operator`)"
);
caller_who!(
    /// A caller allowed to manage devices (admin token).
    Admin,
    |p| matches!(p, Principal::Admin { .. }),
    "managing devices needs an admin token (`telehub token add NAME --role admin`)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_query_is_decoded() {
        assert_eq!(
            form_urlencoded_token("a=1&token=th_ab%2Dc").as_deref(),
            Some("th_ab-c")
        );
        assert_eq!(form_urlencoded_token("tokens=x"), None);
    }
}
