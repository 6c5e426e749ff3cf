//! Enterprise single sign-on, the protocol side (issue 21): what a connection's stored settings
//! are, the browser-bound state of a sign-in in flight, and the OpenID Connect relying party
//! ([`oidc`]). What a verified sign-in does (linking, provisioning, roles, the session) is
//! `bulwark_core::sso`, the same for every protocol.

pub mod oidc;
pub mod saml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_core::sso::Mapping;
use bulwark_crypto::SecretBox;
use bulwark_types::ConnectionId;
use serde::{Deserialize, Serialize};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bulwark_audit::event::Context;
use bulwark_core::CoreError;
use bulwark_core::model::SsoConnection;
use bulwark_core::sso::{self as core_sso, Asserted, SignInDeps};
use bulwark_core::throttle::{self, Attempt, Keys};

use crate::egress::Egress;
use crate::error::ApiError;
use crate::state::AppState;

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

/// Why a protocol check did not produce an assertion.
pub enum Failure {
    /// Refused with this code (audited).
    Refused(&'static str),
    /// The identity provider or the connection's secret could not be used (logged, audited as
    /// `sso_provider_unavailable`).
    Unavailable(String),
}

/// The value of cookie `name` in `headers`.
#[must_use]
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The end of every sign-in through an identity provider, whatever the protocol: `check` (the
/// protocol's verification, giving the assertion and where to go) runs under the sign-in
/// throttle of the client's address; a refusal is audited in the connection's org with its
/// code; then `bulwark_core::sso::sign_in` decides, and the browser is sent on (303) with its
/// session cookies, the flow cookie `clear` dropped.
///
/// # Errors
/// The refusal (403 with its code), `throttled`, `sso_provider_unavailable`, storage failures.
pub async fn complete(
    state: &AppState,
    connection: &SsoConnection,
    mapping: &Mapping,
    method: &'static str,
    context: Context,
    clear: String,
    check: impl Future<Output = Result<(Asserted, String), Failure>>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        keys: Keys::address_only(context.source_ip.as_deref()),
        session: None,
        method,
        subject: "unknown".into(),
        context: context.clone(),
    };
    let (store, clock) = (&*state.store, &*state.clock);
    let audited = async {
        match check.await {
            Ok(v) => Ok(v),
            Err(Failure::Refused(code)) => {
                Err(
                    core_sso::refused(store, clock, connection.org, method, code, context.clone())
                        .await,
                )
            }
            Err(Failure::Unavailable(e)) => {
                tracing::warn!(error = %e, "an identity provider failed during a sign-in");
                let code = "sso_provider_unavailable";
                drop(
                    core_sso::refused(store, clock, connection.org, method, code, context.clone())
                        .await,
                );
                Err(CoreError::Unavailable)
            }
        }
    };
    let verified =
        throttle::guard_then(store, clock, &state.throttle, attempt, audited, |_| true).await;
    let (asserted, return_to) = match verified {
        Ok(v) => v,
        Err(CoreError::Unavailable) => return Err(oidc::unavailable(&"during the sign-in")),
        Err(e) => return Err(e.into()),
    };
    let deps = SignInDeps {
        store,
        clock,
        hasher: &state.hasher,
        licensing: &state.licensing,
        policy: state.sessions,
    };
    let signed_in = core_sso::sign_in(&deps, connection, mapping, asserted, context).await?;
    let out = crate::api::v1::auth::describe(state, &signed_in.session);
    let cookies = crate::api::v1::auth::cookies_for(&signed_in, &out);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&return_to) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies.iter().chain([&clear]) {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `return_to`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// A path on this server to go to after sign-in (default `/`); anything else is refused.
    #[param(max_length = 512, pattern = "^/([!-.0-\\[\\]-~][!-\\[\\]-~]*)?$")]
    pub return_to: Option<String>,
}

/// The `return_to` of a start, checked.
///
/// # Errors
/// `validation_failed` on `/return_to`.
pub fn return_to(
    query: Result<axum::extract::Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<String, ApiError> {
    let axum::extract::Query(query) = query
        .map_err(|_| ApiError::invalid_field("/return_to", "must be a path on this server"))?;
    let return_to = query.return_to.unwrap_or_else(|| "/".into());
    if !safe_return(&return_to) {
        return Err(ApiError::invalid_field(
            "/return_to",
            "must be a path on this server (starting with a single `/`)",
        ));
    }
    Ok(return_to)
}

/// A connection of `protocol` by id, with its settings (the public routes: the id is in the
/// URL). An id that does not parse, is unknown or names another protocol is `404 not_found`.
pub(crate) async fn load_connection<T: serde::de::DeserializeOwned>(
    state: &AppState,
    raw: &str,
    protocol: &str,
) -> Result<(SsoConnection, T), ApiError> {
    let id: ConnectionId = raw.parse().map_err(|_| ApiError::not_found())?;
    let org = state
        .store
        .sso_connection_org(id)
        .await
        .map_err(CoreError::from)?
        .ok_or_else(ApiError::not_found)?;
    let mut read = state.store.org_read(org).await.map_err(CoreError::from)?;
    let connection = read
        .sso_connection(id)
        .await
        .map_err(CoreError::from)?
        .filter(|c| c.protocol == protocol)
        .ok_or_else(ApiError::not_found)?;
    let settings = serde_json::from_str(&connection.config)
        .map_err(|_| CoreError::Bug("a stored SSO connection does not parse"))?;
    Ok((connection, settings))
}
