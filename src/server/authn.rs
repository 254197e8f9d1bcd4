//! Request authentication: a token from `Authorization: Bearer` or `?token=`,
//! checked against storage before any handler (or WebSocket upgrade) runs.
//!
//! Owns the token check ([`principal_of`]) and the device-token check ([`DeviceCaller`]),
//! once for every way readings come in: the device socket and `POST /v1/ingest` (as an
//! extractor or from an [`Authenticated`] caller) and the InfluxDB write endpoints (which
//! take their token from other places and answer in InfluxDB's error shape).

use super::{ApiError, HubState};
use crate::auth::{DeviceRef, Principal, hash_token};
use crate::domain::DeviceName;
use crate::storage::StorageError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::collections::HashMap;
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

/// Why a request's token was not accepted. Each endpoint words the answer for its
/// clients (where they put the token, which error shape they read).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    MissingToken,
    #[error("unknown or revoked token")]
    UnknownToken,
    #[error("storage is unavailable; retry later")]
    Storage(#[from] StorageError),
    #[error("this needs a device token; viewer and admin tokens cannot send readings")]
    NotADevice,
}

/// Who `token` is: the one place a token is checked against storage.
pub async fn principal_of(hub: &HubState, token: Option<&str>) -> Result<Principal, AuthError> {
    let token = token.ok_or(AuthError::MissingToken)?;
    hub.store
        .authenticate(&hash_token(token))
        .await?
        .ok_or(AuthError::UnknownToken)
}

impl FromRequestParts<Arc<HubState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<HubState>) -> Result<Self, ApiError> {
        Ok(Authenticated(
            principal_of(hub, token_of(parts).as_deref()).await?,
        ))
    }
}

/// The http-api.md answers: 401 naming where the token goes, storage failures as every HTTP
/// error maps them, 403 for a viewer or admin token on `/v1/ingest` (the one http-api.md
/// endpoint that takes device tokens).
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingToken => ApiError::unauthorized(
                "missing token: send `Authorization: Bearer <token>` or `?token=`",
            ),
            AuthError::UnknownToken => ApiError::unauthorized(e.to_string()),
            AuthError::Storage(e) => e.into(),
            AuthError::NotADevice => ApiError::forbidden(
                "/v1/ingest needs a device token; viewer and admin tokens cannot send readings",
            ),
        }
    }
}

/// A caller with a device token: the device, the token, and the devices it may send
/// readings for (a gateway's).
#[derive(Debug)]
pub struct DeviceCaller {
    pub token_id: i64,
    pub device: DeviceRef,
    pub gateway_for: HashMap<DeviceName, DeviceRef>,
}

impl DeviceCaller {
    /// The device-token check: `token` is known and a device's.
    pub async fn authenticate(hub: &HubState, token: Option<&str>) -> Result<Self, AuthError> {
        Self::of(principal_of(hub, token).await?)
    }

    /// An authenticated caller, who must be a device.
    pub fn of(principal: Principal) -> Result<Self, AuthError> {
        match principal {
            Principal::Device {
                token_id,
                device,
                gateway_for,
            } => Ok(Self {
                token_id,
                device,
                gateway_for,
            }),
            _ => Err(AuthError::NotADevice),
        }
    }
}

/// The device caller of `/v1/ingest`: 401 as [`Authenticated`], 403 for a viewer or
/// admin token.
impl FromRequestParts<Arc<HubState>> for DeviceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<HubState>) -> Result<Self, ApiError> {
        let Authenticated(p) = Authenticated::from_request_parts(parts, hub).await?;
        Ok(Self::of(p)?)
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
    /// A caller allowed to send and cancel commands (operator or admin token, docs/commands.md).
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
