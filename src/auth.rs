//! Tokens and principals (docs/protocol.md §1): generating secrets, hashing them for storage,
//! and what an authenticated caller may do.
//!
//! May use: `domain`.

use crate::domain::DeviceName;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The role a token grants.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Device,
    Viewer,
    /// A viewer that may also send and cancel commands (docs/commands.md).
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Device => "device",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "device" => Some(Role::Device),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A device known to storage: its row id and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRef {
    pub id: i64,
    pub name: DeviceName,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A device; `gateway_for` lists the other devices it may publish for.
    Device {
        token_id: i64,
        device: DeviceRef,
        gateway_for: HashMap<DeviceName, DeviceRef>,
    },
    Viewer {
        token_id: i64,
    },
    Operator {
        token_id: i64,
    },
    Admin {
        token_id: i64,
    },
}

impl Principal {
    pub fn token_id(&self) -> i64 {
        match self {
            Principal::Device { token_id, .. }
            | Principal::Viewer { token_id }
            | Principal::Operator { token_id }
            | Principal::Admin { token_id } => *token_id,
        }
    }
    pub fn role(&self) -> Role {
        match self {
            Principal::Device { .. } => Role::Device,
            Principal::Viewer { .. } => Role::Viewer,
            Principal::Operator { .. } => Role::Operator,
            Principal::Admin { .. } => Role::Admin,
        }
    }
    /// Viewers, operators and admins may read history and the live feed.
    pub fn can_view(&self) -> bool {
        !matches!(self, Principal::Device { .. })
    }
    /// Operators and admins may send and cancel commands (docs/commands.md).
    pub fn can_operate(&self) -> bool {
        matches!(self, Principal::Operator { .. } | Principal::Admin { .. })
    }
}

/// A new secret token (192 random bits, URL-safe) and the hash that is stored.
pub fn new_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!(
        "th_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a token. Tokens carry 192 random bits, so a fast hash is enough:
/// lookups go by hash, and the secret itself is never stored or compared.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_consistently() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.len() >= 32 + 3);
        assert_eq!(hash_token(&a), ha);
    }

    #[test]
    fn an_operator_views_and_operates_and_an_admin_does_all_an_operator_does() {
        for role in [Role::Device, Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        let p = |role| match role {
            Role::Viewer => Principal::Viewer { token_id: 1 },
            Role::Operator => Principal::Operator { token_id: 1 },
            _ => Principal::Admin { token_id: 1 },
        };
        assert!(!p(Role::Viewer).can_operate() && p(Role::Viewer).can_view());
        assert!(p(Role::Operator).can_operate() && p(Role::Operator).can_view());
        assert!(p(Role::Admin).can_operate() && p(Role::Admin).can_view());
    }
}
