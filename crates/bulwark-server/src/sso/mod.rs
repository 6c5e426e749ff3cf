//! Enterprise single sign-on, the protocol side (issue 21): what a connection's stored settings
//! are, the browser-bound state of a sign-in in flight, and the OpenID Connect relying party
//! ([`oidc`]). What a verified sign-in does (linking, provisioning, roles, the session) is
//! `bulwark_core::sso`, the same for every protocol.

pub mod oidc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_core::sso::Mapping;
use bulwark_crypto::SecretBox;
use bulwark_types::ConnectionId;
use serde::{Deserialize, Serialize};

use crate::egress::Egress;

/// The cookie that binds a sign-in in flight to the browser that started it.
pub const FLOW_COOKIE: &str = "__Host-bulwark_sso";
/// How long a sign-in may take at the identity provider.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long discovery documents and keys are kept.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);
/// How often at most the keys of one connection are fetched again because a token named a key
/// they lack (a rotation at the provider).
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The clock skew allowed on token times.
pub const SKEW_SECS: i64 = 60;

/// How Bulwark authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A JWT signed with Bulwark's own key for the connection (ES256); the provider is given
    /// its public key (`GET /v1/sso/oidc/{connection}/jwks`).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The registered name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Which claims carry what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    /// The email claim (default `email`).
    #[schema(min_length = 1, max_length = 100)]
    pub email: String,
    /// The groups claim: an array of strings (default `groups`).
    #[schema(min_length = 1, max_length = 100)]
    pub groups: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            email: "email".into(),
            groups: "groups".into(),
        }
    }
}

/// An OpenID Connect connection's stored settings (no secret: that is a vault credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider's ID tokens name it (pinned: never a template).
    pub issuer: String,
    /// Bulwark's client id at the provider.
    pub client_id: String,
    /// How Bulwark authenticates to the token endpoint.
    pub auth_method: AuthMethod,
    /// Scopes asked for (`openid` always first).
    pub scopes: Vec<String>,
    /// Claim names.
    pub claims: ClaimNames,
    /// Who the provider may make, and how.
    pub mapping: Mapping,
    /// `private_key_jwt`: the public half of Bulwark's key (a JWK), its private half sealed in
    /// the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_jwk: Option<serde_json::Value>,
}

/// The sign-in in flight, sealed into [`FLOW_COOKIE`].
#[derive(Serialize, Deserialize)]
pub struct Flow {
    /// The connection it was started for.
    pub connection: ConnectionId,
    /// The `state` sent (compared with the one that comes back).
    pub state: String,
    /// The `nonce` sent (compared with the ID token's).
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// Where to go after sign-in (a path on this server).
    pub return_to: String,
    /// When it stops being accepted, Unix seconds.
    pub expires: i64,
}

/// One connection's provider facts, cached.
pub struct Cached<T> {
    /// The facts.
    pub value: Arc<T>,
    /// When fetched.
    pub at: Instant,
    /// The connection's `updated_ms` when fetched (a change of settings drops it).
    pub version: i64,
}

/// The single sign-on service of the server: its egress client (identity-provider hosts only),
/// caches, and the key that seals flows.
pub struct Sso {
    /// Calls to identity providers.
    pub egress: Egress,
    flow_key: SecretBox,
    /// OpenID providers' discovery documents and keys, by connection.
    pub providers: Mutex<HashMap<ConnectionId, Cached<oidc::Provider>>>,
    /// When each connection's keys were last fetched again for an unknown `kid`.
    pub refreshed: Mutex<HashMap<ConnectionId, Instant>>,
}

impl Sso {
    /// The service over `egress` with the flow key `flow_key`.
    #[must_use]
    pub fn new(egress: Egress, flow_key: SecretBox) -> Self {
        Self {
            egress,
            flow_key,
            providers: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(HashMap::new()),
        }
    }

    /// The flow sealed for its cookie.
    ///
    /// # Errors
    /// A crypto failure.
    pub fn seal(&self, flow: &Flow) -> Result<String, bulwark_core::CoreError> {
        let json = serde_json::to_vec(flow).map_err(|_| bulwark_core::CoreError::Crypto)?;
        let sealed = self
            .flow_key
            .seal(&json, b"bulwark sso flow v1")
            .map_err(|_| bulwark_core::CoreError::Crypto)?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The flow in a cookie value, if it opens (sealed by this deployment, unaltered).
    #[must_use]
    pub fn open(&self, value: &str) -> Option<Flow> {
        let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
        let json = self.flow_key.open(&sealed, b"bulwark sso flow v1").ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// `Set-Cookie` for a flow.
#[must_use]
pub fn flow_cookie(value: &str) -> String {
    format!(
        "{FLOW_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        FLOW_TTL.as_secs()
    )
}

/// `Set-Cookie` that drops the flow.
#[must_use]
pub fn clear_flow_cookie() -> String {
    format!("{FLOW_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// 32 random bytes, base64url.
///
/// # Errors
/// The RNG failed.
pub fn random_token() -> Result<String, bulwark_core::CoreError> {
    let bytes: [u8; 32] =
        bulwark_crypto::random_bytes().map_err(|_| bulwark_core::CoreError::Crypto)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `path` may be returned to after sign-in: a path on this server (`/…`, not `//…`)
/// of printable ASCII without a backslash or space (percent-encode anything else), at most 512
/// bytes.
#[must_use]
pub fn safe_return(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && path.len() <= 512
}
