//! An org's single sign-on: connections to its identity providers, the email domains it
//! claims, its sign-in rules; home-realm discovery; an operator's confirmation of a domain
//! claim. The sign-in itself is [`crate::sso::oidc`] and [`crate::sso::saml`]; the SAML
//! half of a connection's settings is [`super::sso_saml`].

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulwark_authz::Action;
use bulwark_core::CoreError;
use bulwark_core::authz::Target;
use bulwark_core::model::{SsoConnection, SsoDomain, SsoSettings};
use bulwark_core::sso::{self, ConnectionChange, Mapping, NewConnection};
use bulwark_types::{ConnectionId, Email, OrgId, Role, TeamId};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::sso_saml::{self, SamlIn, SamlOut, SamlPatch};
use crate::auth::Signed;
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, act};
use crate::sso::oidc;
use crate::sso::saml::{self as saml_sp, SamlSettings};
use crate::sso::{AuthMethod, ClaimNames, OidcSettings};
use crate::state::AppState;

fn connection_of(raw: &str) -> Result<ConnectionId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// Who an identity provider may make, and how.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingBody {
    /// Create an account and membership on a first sign-in (default true).
    #[serde(default = "yes")]
    pub jit: bool,
    /// The role of someone no group maps (default `member`); owner and admin are given only to
    /// the org's admin emails, anyone else gets `member`.
    #[serde(default = "member")]
    #[schema(value_type = String, pattern = "^(owner|admin|member|auditor)$")]
    pub default_role: String,
    /// Bind a first sign-in to an existing account with the same verified email in one of the
    /// org's verified domains (default false).
    #[serde(default)]
    pub allow_linking: bool,
    /// Group → role (`owner`, `admin`, `member`, `auditor`); the highest wins. When set, an
    /// existing member's role follows it at every sign-in.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub group_roles: BTreeMap<String, String>,
    /// Group → team id (`team_…`): membership follows the group at every sign-in.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub group_teams: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn member() -> String {
    "member".into()
}

impl Default for MappingBody {
    fn default() -> Self {
        Self::from(&Mapping::default())
    }
}

impl From<&Mapping> for MappingBody {
    fn from(m: &Mapping) -> Self {
        Self {
            jit: m.jit,
            default_role: m.default_role.as_str().into(),
            allow_linking: m.allow_linking,
            group_roles: m
                .group_roles
                .iter()
                .map(|(g, r)| (g.clone(), r.as_str().to_owned()))
                .collect(),
            group_teams: m
                .group_teams
                .iter()
                .map(|(g, t)| (g.clone(), t.to_string()))
                .collect(),
        }
    }
}

impl MappingBody {
    fn parse(self) -> Result<Mapping, ApiError> {
        let role = |pointer: &str, raw: &str| {
            raw.parse::<Role>().map_err(|_| {
                ApiError::invalid_field(pointer, "must be owner, admin, member or auditor")
            })
        };
        let mut group_roles = BTreeMap::new();
        for (group, raw) in self.group_roles {
            group_roles.insert(group, role("/mapping/group_roles", &raw)?);
        }
        let mut group_teams = BTreeMap::new();
        for (group, raw) in self.group_teams {
            let team: TeamId = raw.parse().map_err(|_| {
                ApiError::invalid_field("/mapping/group_teams", "must map groups to team ids")
            })?;
            group_teams.insert(group, team);
        }
        Ok(Mapping {
            jit: self.jit,
            default_role: role("/mapping/default_role", &self.default_role)?,
            allow_linking: self.allow_linking,
            group_roles,
            group_teams,
        })
    }
}

/// An OpenID Connect connection's settings.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcIn {
    /// The issuer exactly as its ID tokens name it (pinned; for Entra ID the tenant's own,
    /// `https://login.microsoftonline.com/<tenant>/v2.0`). Its host must be in the operator's
    /// `sso.idp_hosts`; its discovery document is fetched now.
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub issuer: String,
    /// Bulwark's client id at the provider.
    #[schema(min_length = 1, max_length = 255)]
    pub client_id: String,
    /// How Bulwark authenticates to the token endpoint (default `client_secret_basic`).
    #[serde(default = "basic")]
    pub auth_method: AuthMethod,
    /// The client secret (`client_secret_basic`, `client_secret_post`); sealed in the vault,
    /// never shown again. Not for `private_key_jwt`: Bulwark makes a key pair and shows its
    /// public key.
    #[schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 1024)]
    pub client_secret: Option<SecretString>,
    /// Scopes (default `openid email profile`); `openid` is required.
    #[schema(max_items = 20)]
    pub scopes: Option<Vec<String>>,
    /// Claim names (defaults `email`, `groups`).
    pub claims: Option<ClaimNames>,
}

fn basic() -> AuthMethod {
    AuthMethod::ClientSecretBasic
}

/// A connection to add: exactly one of `oidc`, `saml`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionIn {
    /// Unique in the org.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The OpenID Connect settings.
    pub oidc: Option<OidcIn>,
    /// The SAML 2.0 settings.
    pub saml: Option<SamlIn>,
    /// Who the provider may make (default: just-in-time members, no linking).
    #[serde(default)]
    pub mapping: MappingBody,
}

/// A change to a connection: what is present is replaced.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    /// New name.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// Accept sign-ins through it.
    pub enabled: Option<bool>,
    /// New mapping (whole).
    pub mapping: Option<MappingBody>,
    /// New issuer (its discovery document is fetched again).
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub issuer: Option<String>,
    /// New client id.
    #[schema(min_length = 1, max_length = 255)]
    pub client_id: Option<String>,
    /// New scopes (`openid` required).
    #[schema(max_items = 20)]
    pub scopes: Option<Vec<String>>,
    /// New claim names.
    pub claims: Option<ClaimNames>,
    /// SAML settings to change (SAML connections only).
    pub saml: Option<SamlPatch>,
}

/// A new secret for a connection.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    /// The new client secret (secret methods); absent for `private_key_jwt`, which gets a new
    /// key pair, and for SAML, which gets a new encryption key pair and certificate.
    #[schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 1024)]
    pub client_secret: Option<SecretString>,
}

/// An OpenID Connect connection's settings as shown (never its secret).
#[derive(Serialize, utoipa::ToSchema)]
pub struct OidcOut {
    /// The pinned issuer.
    pub issuer: String,
    /// Bulwark's client id.
    pub client_id: String,
    /// Token endpoint authentication.
    pub auth_method: AuthMethod,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Claim names.
    pub claims: ClaimNames,
    /// The redirect URI to register at the provider (exact).
    pub redirect_uri: Option<String>,
    /// The back-channel logout URI to register at the provider.
    pub backchannel_logout_uri: Option<String>,
    /// The post-logout redirect URI to register at the provider (RP-initiated logout).
    pub post_logout_redirect_uri: Option<String>,
    /// `private_key_jwt`: Bulwark's public key set URL, for the provider.
    pub jwks_uri: Option<String>,
    /// `private_key_jwt`: the public key itself (a JWK).
    #[schema(value_type = Option<Object>)]
    pub public_jwk: Option<serde_json::Value>,
}

/// A connection.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionOut {
    /// `sso_…`
    #[schema(value_type = String)]
    pub id: ConnectionId,
    /// Its name.
    pub name: String,
    /// `oidc` or `saml`.
    pub protocol: String,
    /// Whether sign-ins are accepted.
    pub enabled: bool,
    /// Whether a secret (or key pair) is sealed in the vault for it.
    pub has_secret: bool,
    /// The sign-in URL (`GET`; add `?return_to=/path`).
    pub start_url: Option<String>,
    /// The OpenID Connect settings (`oidc` connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcOut>,
    /// The SAML settings (`saml` connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saml: Option<SamlOut>,
    /// The mapping.
    pub mapping: MappingBody,
    /// When created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    /// When last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: time::OffsetDateTime,
}

fn at(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn settings_of(c: &SsoConnection) -> Result<OidcSettings, ApiError> {
    serde_json::from_str(&c.config)
        .map_err(|_| CoreError::Bug("a stored OIDC connection does not parse").into())
}

fn saml_settings_of(c: &SsoConnection) -> Result<SamlSettings, ApiError> {
    serde_json::from_str(&c.config)
        .map_err(|_| CoreError::Bug("a stored SAML connection does not parse").into())
}

fn out(state: &AppState, c: &SsoConnection) -> Result<ConnectionOut, ApiError> {
    let base = state.config.sso.base();
    let root = base
        .as_ref()
        .map(|b| b.as_str().trim_end_matches('/').to_owned());
    let start_url = root
        .as_ref()
        .map(|r| format!("{r}/v1/sso/{}/{}/start", c.protocol, c.id));
    let (mapping, oidc, saml) = if c.protocol == "saml" {
        let s = saml_settings_of(c)?;
        (
            MappingBody::from(&s.mapping),
            None,
            Some(sso_saml::out(state, c.id, s)),
        )
    } else {
        let s = settings_of(c)?;
        let oidc = OidcOut {
            redirect_uri: base.as_ref().map(|b| oidc::redirect_uri(b, c.id)),
            backchannel_logout_uri: base.as_ref().map(|b| oidc::logout_uri(b, c.id)),
            post_logout_redirect_uri: base.as_ref().map(oidc::post_logout_uri),
            jwks_uri: s
                .public_jwk
                .as_ref()
                .and(root.as_ref())
                .map(|r| format!("{r}/v1/sso/oidc/{}/jwks", c.id)),
            public_jwk: s.public_jwk.clone(),
            issuer: s.issuer,
            client_id: s.client_id,
            auth_method: s.auth_method,
            scopes: s.scopes,
            claims: s.claims,
        };
        (MappingBody::from(&s.mapping), Some(oidc), None)
    };
    Ok(ConnectionOut {
        id: c.id,
        name: c.name.clone(),
        protocol: c.protocol.clone(),
        enabled: c.enabled,
        has_secret: c.secret_id.is_some(),
        start_url,
        oidc,
        saml,
        mapping,
        created_at: at(c.created_ms),
        updated_at: at(c.updated_ms),
    })
}

/// The org's connections.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionList {
    /// By name.
    pub connections: Vec<ConnectionOut>,
}

fn scopes(raw: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let scopes = raw.unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    };
    if scopes.len() > 20 || !scopes.iter().all(|s| token(s)) {
        return Err(ApiError::invalid_field(
            "/oidc/scopes",
            "must be at most 20 scope tokens (printable ASCII, no quotes)",
        ));
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ApiError::invalid_field(
            "/oidc/scopes",
            "must include `openid`",
        ));
    }
    let mut ordered = vec!["openid".to_owned()];
    ordered.extend(scopes.into_iter().filter(|s| s != "openid"));
    ordered.dedup();
    Ok(ordered)
}

fn claim_names(raw: Option<ClaimNames>) -> Result<ClaimNames, ApiError> {
    let claims = raw.unwrap_or_default();
    let ok = |s: &str| !s.is_empty() && s.len() <= 100 && bulwark_types::is_plain_text(s, 100);
    if ok(&claims.email) && ok(&claims.groups) {
        Ok(claims)
    } else {
        Err(ApiError::invalid_field(
            "/oidc/claims",
            "claim names must be 1 to 100 characters",
        ))
    }
}

fn client_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > 255 || !bulwark_types::is_plain_text(raw, 255) {
        return Err(ApiError::invalid_field(
            "/oidc/client_id",
            "must be 1 to 255 characters of plain text",
        ));
    }
    Ok(raw.to_owned())
}

fn config_json(s: &OidcSettings) -> Result<String, ApiError> {
    serde_json::to_string(s).map_err(|_| CoreError::Bug("OIDC settings do not serialize").into())
}

/// The secret to seal and the public JWK (for `private_key_jwt`), checked against the method.
fn secret_for(
    method: AuthMethod,
    secret: Option<SecretString>,
    pointer: &str,
) -> Result<(Zeroizing<Vec<u8>>, Option<serde_json::Value>), ApiError> {
    match (method, secret) {
        (AuthMethod::PrivateKeyJwt, None) => {
            let (pkcs8, jwk) = oidc::new_key_pair()?;
            Ok((pkcs8, Some(jwk)))
        }
        (AuthMethod::PrivateKeyJwt, Some(_)) => Err(ApiError::invalid_field(
            pointer,
            "is not used with private_key_jwt: Bulwark makes the key pair",
        )),
        (_, Some(s)) if !s.expose_secret().is_empty() && s.expose_secret().len() <= 1024 => {
            Ok((Zeroizing::new(s.expose_secret().as_bytes().to_vec()), None))
        }
        (_, _) => Err(ApiError::invalid_field(
            pointer,
            "is required (1 to 1024 bytes) for client_secret_basic and client_secret_post",
        )),
    }
}

/// The connection a write is about, read in the org the write was decided on.
async fn current_connection(
    state: &AppState,
    authorized: &bulwark_core::authz::Authorized,
    id: ConnectionId,
) -> Result<SsoConnection, ApiError> {
    let mut read = authorized
        .org_reader(&*state.store, Action::SsoWrite)
        .await?;
    read.sso_connection(id)
        .await
        .map_err(CoreError::from)?
        .ok_or_else(ApiError::not_found)
}

/// Lists the org's connections (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/sso/connections", tag = "sso",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = ConnectionList),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoRead>,
) -> Result<Json<ConnectionList>, ApiError> {
    let all = sso::connections(&*state.store, &authorized).await?;
    let connections = all
        .iter()
        .map(|c| out(&state, c))
        .collect::<Result<_, _>>()?;
    Ok(Json(ConnectionList { connections }))
}

/// Adds an OpenID Connect connection (owners). The issuer's discovery document is fetched and
/// checked now; the client secret is sealed in the vault and never shown again; with
/// `private_key_jwt` Bulwark makes a key pair and shows its public key.
#[utoipa::path(post, path = "/v1/orgs/{org}/sso/connections", tag = "sso", request_body = ConnectionIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = ConnectionOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`conflict`: the name is taken; `sso_not_configured`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/name`, `/oidc/issuer`, `/oidc/client_id`, `/oidc/client_secret`, `/oidc/scopes`, `/oidc/claims`, `/mapping`)"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`: the discovery document could not be fetched"),
        (status = 503, body = Problem, description = "`key_provider_unavailable`"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    ValidJson(body): ValidJson<ConnectionIn>,
) -> Result<(StatusCode, Json<ConnectionOut>), ApiError> {
    let base = oidc::public_base(&state)?;
    let mapping = body.mapping.parse()?;
    let o = match (body.oidc, body.saml) {
        (Some(o), None) => o,
        (None, Some(saml)) => {
            return create_saml(&state, &authorized, body.name, saml, mapping, &base).await;
        }
        _ => {
            return Err(ApiError::invalid_field(
                "/oidc",
                "give exactly one of `oidc` and `saml`",
            ));
        }
    };
    let client_id = client_id(&o.client_id)?;
    let scopes = scopes(o.scopes)?;
    let claims = claim_names(o.claims)?;
    let (secret, public_jwk) = secret_for(o.auth_method, o.client_secret, "/oidc/client_secret")?;
    let provider = oidc::check_issuer(&state, &o.issuer).await?;
    let token_endpoint = provider
        .metadata
        .token_endpoint()
        .map(|t| t.url().to_string())
        .unwrap_or_default();
    let settings = OidcSettings {
        issuer: o.issuer.clone(),
        client_id,
        auth_method: o.auth_method,
        scopes,
        claims,
        mapping: mapping.clone(),
        public_jwk,
    };
    let created = sso::create_connection(
        &*state.store,
        &*state.clock,
        &*state.vault,
        &authorized,
        NewConnection {
            id: ConnectionId::new(),
            name: body.name,
            protocol: "oidc",
            config: config_json(&settings)?,
            issuer: o.issuer,
            mapping,
            secret: Some((secret, vec![token_endpoint])),
            auth_method: o.auth_method.as_str().into(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(out(&state, &created)?)))
}

/// Adds a SAML connection: the metadata read (or fetched), the encryption key pair made and
/// sealed.
async fn create_saml(
    state: &AppState,
    authorized: &bulwark_core::authz::Authorized,
    name: String,
    body: SamlIn,
    mapping: Mapping,
    base: &url::Url,
) -> Result<(StatusCode, Json<ConnectionOut>), ApiError> {
    let id = ConnectionId::new();
    let (settings, key) = sso_saml::create(state, id, body, mapping.clone()).await?;
    let created = sso::create_connection(
        &*state.store,
        &*state.clock,
        &*state.vault,
        authorized,
        NewConnection {
            id,
            name,
            protocol: "saml",
            config: sso_saml::config_json(&settings)?,
            issuer: settings.idp_entity_id.clone(),
            mapping,
            secret: key.map(|k| (k, vec![saml_sp::acs_uri(base, id)])),
            auth_method: "saml_encryption_key".into(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(out(state, &created)?)))
}

/// One connection (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/sso/connections/{connection}", tag = "sso",
    params(("org" = String, Path, description = "`org_…`"), ("connection" = String, Path, description = "`sso_…`")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoRead>,
    Path((_, raw)): Path<(String, String)>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let id = connection_of(&raw)?;
    let c = sso::connection(&*state.store, &authorized, id).await?;
    Ok(Json(out(&state, &c)?))
}

/// Changes a connection (owners): what the body names is replaced.
#[utoipa::path(patch, path = "/v1/orgs/{org}/sso/connections/{connection}", tag = "sso", request_body = ConnectionPatch,
    params(("org" = String, Path, description = "`org_…`"), ("connection" = String, Path, description = "`sso_…`")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`conflict`: the name is taken"),
        (status = 422, body = Problem, description = "`validation_failed`"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`"),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    Path((_, raw)): Path<(String, String)>,
    ValidJson(body): ValidJson<ConnectionPatch>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let id = connection_of(&raw)?;
    let current = current_connection(&state, &authorized, id).await?;
    if current.protocol == "saml" {
        return update_saml(&state, &authorized, current, body).await;
    }
    if body.saml.is_some() {
        return Err(ApiError::invalid_field(
            "/saml",
            "is for SAML connections; this one is OpenID Connect",
        ));
    }
    let mut settings = settings_of(&current)?;
    let mut issuer_changed = false;
    if let Some(issuer) = body.issuer {
        oidc::check_issuer(&state, &issuer).await?;
        issuer_changed = issuer != settings.issuer;
        settings.issuer = issuer;
    }
    if let Some(raw) = body.client_id {
        settings.client_id = client_id(&raw)?;
    }
    if body.scopes.is_some() {
        settings.scopes = scopes(body.scopes)?;
    }
    if body.claims.is_some() {
        settings.claims = claim_names(body.claims)?;
    }
    if let Some(m) = body.mapping {
        settings.mapping = m.parse()?;
    }
    let changed = sso::update_connection(
        &*state.store,
        &*state.clock,
        &authorized,
        id,
        ConnectionChange {
            name: body.name.unwrap_or(current.name),
            config: config_json(&settings)?,
            issuer: settings.issuer.clone(),
            mapping: settings.mapping.clone(),
            enabled: body.enabled.unwrap_or(current.enabled),
            issuer_changed,
        },
    )
    .await?;
    Ok(Json(out(&state, &changed)?))
}

/// Changes a SAML connection.
async fn update_saml(
    state: &AppState,
    authorized: &bulwark_core::authz::Authorized,
    current: SsoConnection,
    body: ConnectionPatch,
) -> Result<Json<ConnectionOut>, ApiError> {
    let oidc_field = [
        (body.issuer.is_some(), "/issuer"),
        (body.client_id.is_some(), "/client_id"),
        (body.scopes.is_some(), "/scopes"),
        (body.claims.is_some(), "/claims"),
    ]
    .into_iter()
    .find_map(|(given, field)| given.then_some(field));
    if let Some(field) = oidc_field {
        return Err(ApiError::invalid_field(
            field,
            "is for OpenID Connect connections; this one is SAML",
        ));
    }
    let mut settings = saml_settings_of(&current)?;
    let mut issuer_changed = false;
    if let Some(patch) = body.saml {
        issuer_changed = sso_saml::update(state, &mut settings, patch).await?;
    }
    if let Some(m) = body.mapping {
        settings.mapping = m.parse()?;
    }
    let changed = sso::update_connection(
        &*state.store,
        &*state.clock,
        authorized,
        current.id,
        ConnectionChange {
            name: body.name.unwrap_or(current.name),
            config: sso_saml::config_json(&settings)?,
            issuer: settings.idp_entity_id.clone(),
            mapping: settings.mapping.clone(),
            enabled: body.enabled.unwrap_or(current.enabled),
            issuer_changed,
        },
    )
    .await?;
    Ok(Json(out(state, &changed)?))
}

/// Replaces a SAML connection's encryption key pair and certificate.
async fn rotate_saml(
    state: &AppState,
    authorized: &bulwark_core::authz::Authorized,
    current: SsoConnection,
    body: SecretIn,
) -> Result<Json<ConnectionOut>, ApiError> {
    if body.client_secret.is_some() {
        return Err(ApiError::invalid_field(
            "/client_secret",
            "is not used with SAML: Bulwark makes a new encryption key pair",
        ));
    }
    let base = oidc::public_base(state)?;
    let mut settings = saml_settings_of(&current)?;
    let (key, certificate) = saml_sp::new_encryption_key(current.id)?;
    settings.encryption_certificate = Some(certificate);
    let rotated = sso::rotate_secret(
        &*state.store,
        &*state.clock,
        &*state.vault,
        authorized,
        current.id,
        sso::NewSecret {
            value: key,
            destinations: vec![saml_sp::acs_uri(&base, current.id)],
            config: Some(sso_saml::config_json(&settings)?),
            auth_method: "saml_encryption_key".into(),
        },
    )
    .await?;
    Ok(Json(out(state, &rotated)?))
}

/// Replaces a connection's client secret, or its key pair for `private_key_jwt` (owners). The
/// old one is deleted; the new secret is never shown, the new public key is.
#[utoipa::path(post, path = "/v1/orgs/{org}/sso/connections/{connection}/secret", tag = "sso", request_body = SecretIn,
    params(("org" = String, Path, description = "`org_…`"), ("connection" = String, Path, description = "`sso_…`")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/client_secret`)"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`"),
        (status = 503, body = Problem, description = "`key_provider_unavailable`"),
    ))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    Path((_, raw)): Path<(String, String)>,
    ValidJson(body): ValidJson<SecretIn>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let id = connection_of(&raw)?;
    let current = current_connection(&state, &authorized, id).await?;
    if current.protocol == "saml" {
        return rotate_saml(&state, &authorized, current, body).await;
    }
    let mut settings = settings_of(&current)?;
    let (secret, jwk) = secret_for(settings.auth_method, body.client_secret, "/client_secret")?;
    let provider = oidc::discover(&state, &settings.issuer)
        .await
        .map_err(|e| oidc::unavailable(&e))?;
    let token_endpoint = provider
        .metadata
        .token_endpoint()
        .map(|t| t.url().to_string())
        .unwrap_or_default();
    let config = if jwk.is_some() {
        settings.public_jwk = jwk;
        Some(config_json(&settings)?)
    } else {
        None
    };
    let rotated = sso::rotate_secret(
        &*state.store,
        &*state.clock,
        &*state.vault,
        &authorized,
        id,
        sso::NewSecret {
            value: secret,
            destinations: vec![token_endpoint],
            config,
            auth_method: settings.auth_method.as_str().into(),
        },
    )
    .await?;
    Ok(Json(out(&state, &rotated)?))
}

/// Deletes a connection, the identities bound through it and its secret (owners). Sessions
/// it made run to their end.
#[utoipa::path(delete, path = "/v1/orgs/{org}/sso/connections/{connection}", tag = "sso",
    params(("org" = String, Path, description = "`org_…`"), ("connection" = String, Path, description = "`sso_…`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    Path((_, raw)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = connection_of(&raw)?;
    sso::delete_connection(&*state.store, &*state.clock, &authorized, id).await?;
    if let Ok(mut m) = state.sso.providers.lock() {
        m.remove(&id);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A claimed domain.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DomainOut {
    /// Lower-case ASCII (IDNA).
    pub domain: String,
    /// Whether it routes sign-ins (verified by an operator-org owner).
    pub verified: bool,
    /// Who verified it.
    pub verified_by: Option<String>,
    /// When claimed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
}

impl From<SsoDomain> for DomainOut {
    fn from(d: SsoDomain) -> Self {
        Self {
            verified: d.verified_ms.is_some(),
            verified_by: d.verified_by,
            created_at: at(d.created_ms),
            domain: d.domain,
        }
    }
}

/// The org's domains.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DomainList {
    /// By name.
    pub domains: Vec<DomainOut>,
}

/// A domain to claim.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainIn {
    /// `acme.example` (internationalised names are stored in their `xn--` form).
    #[schema(min_length = 1, max_length = 253, format = Hostname)]
    pub domain: String,
}

/// Lists the org's claimed domains (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/sso/domains", tag = "sso",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = DomainList),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn domains(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoRead>,
) -> Result<Json<DomainList>, ApiError> {
    let all = sso::domains(&*state.store, &authorized).await?;
    Ok(Json(DomainList {
        domains: all.into_iter().map(DomainOut::from).collect(),
    }))
}

/// Claims an email domain for the org (owners). It routes sign-ins and allows just-in-time
/// membership only once an owner of the operator org has verified it. A domain another org
/// claimed is refused.
#[utoipa::path(post, path = "/v1/orgs/{org}/sso/domains", tag = "sso", request_body = DomainIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = DomainOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`conflict`: already claimed (by this or another org)"),
        (status = 422, body = Problem, description = "`validation_failed` (`/domain`)"),
    ))]
pub(crate) async fn claim(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    ValidJson(body): ValidJson<DomainIn>,
) -> Result<(StatusCode, Json<DomainOut>), ApiError> {
    let d = sso::claim_domain(&*state.store, &*state.clock, &authorized, &body.domain).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// Drops a domain claim (owners).
#[utoipa::path(delete, path = "/v1/orgs/{org}/sso/domains/{domain}", tag = "sso",
    params(("org" = String, Path, description = "`org_…`"), ("domain" = String, Path, description = "The domain")),
    responses(
        (status = 204, description = "Dropped"),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn unclaim(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    Path((_, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    sso::remove_domain(&*state.store, &*state.clock, &authorized, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An org's domain claim to confirm.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainVerifyIn {
    /// The org that claimed it.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The domain.
    #[schema(min_length = 1, max_length = 253, format = Hostname)]
    pub domain: String,
}

/// Confirms an org's claim of a domain (owners of the operator org): it then routes sign-ins.
/// Recorded in both orgs' audit logs.
#[utoipa::path(post, path = "/v1/sso/domains/verify", tag = "sso", request_body = DomainVerifyIn,
    responses(
        (status = 200, body = DomainOut),
        (status = 401, body = Problem, description = "`unauthenticated`"),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`: the org has not claimed it"),
    ))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<DomainVerifyIn>,
) -> Result<Json<DomainOut>, ApiError> {
    let operator_org = {
        let mut tx = state.store.system().await.map_err(CoreError::from)?;
        tx.license_usage()
            .await
            .map_err(CoreError::from)?
            .operator_org
            .ok_or_else(ApiError::not_found)?
    };
    let operator = decide::org(
        &state,
        &signed,
        operator_org,
        Action::SsoDomainsVerify,
        Target::Org,
    )
    .await?;
    let d = sso::verify_domain(
        &*state.store,
        &*state.clock,
        &operator,
        body.org,
        &body.domain,
    )
    .await?;
    Ok(Json(d.into()))
}

/// The org's single sign-on rules.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// Members must sign in through the org's identity provider; owners keep a break-glass
    /// password sign-in with Bulwark's second factor (audited as `sso.break_glass`).
    pub sso_required: bool,
    /// The only emails that may hold `owner` or `admin` through a single sign-on; anyone else
    /// a group maps to those roles gets the connection's default role.
    #[schema(value_type = Vec<String>, max_items = 100)]
    pub admin_emails: Vec<Email>,
    /// The identity provider's MFA (`amr` `mfa`, `otp`, `hwk`, `sc`) satisfies the org's MFA
    /// policy; when false, Bulwark's own second factor is asked of those who have one.
    pub idp_mfa: bool,
}

impl From<SsoSettings> for SettingsBody {
    fn from(s: SsoSettings) -> Self {
        Self {
            sso_required: s.sso_required,
            admin_emails: s.admin_emails.into_iter().map(Email::from_stored).collect(),
            idp_mfa: s.idp_mfa,
        }
    }
}

/// The org's single sign-on rules (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/sso/settings", tag = "sso",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = SettingsBody),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn settings(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoRead>,
) -> Result<Json<SettingsBody>, ApiError> {
    Ok(Json(
        sso::settings(&*state.store, &authorized).await?.into(),
    ))
}

/// Replaces the org's single sign-on rules (owners).
#[utoipa::path(put, path = "/v1/orgs/{org}/sso/settings", tag = "sso", request_body = SettingsBody,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = SettingsBody),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: `sso_required` with no enabled connection"),
        (status = 422, body = Problem, description = "`validation_failed` (`/admin_emails`)"),
    ))]
pub(crate) async fn set_settings(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::SsoWrite>,
    ValidJson(body): ValidJson<SettingsBody>,
) -> Result<Json<SettingsBody>, ApiError> {
    let s = sso::set_settings(
        &*state.store,
        &*state.clock,
        &authorized,
        body.sso_required,
        &body.admin_emails,
        body.idp_mfa,
    )
    .await?;
    Ok(Json(s.into()))
}

/// Home-realm discovery: an email address.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiscoverQuery {
    /// The work email typed at sign-in.
    #[param(value_type = String, format = Email, max_length = 254)]
    pub email: Email,
}

/// A connection to sign in through.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Discovered {
    /// `sso_…`
    #[schema(value_type = String)]
    pub id: ConnectionId,
    /// Its name.
    pub name: String,
    /// `oidc`.
    pub protocol: String,
    /// Where to send the browser (`GET`).
    pub start_url: String,
}

/// The connections for an email's domain.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DiscoverOut {
    /// The enabled connections of the org whose verified domain this is.
    pub connections: Vec<Discovered>,
}

/// Home-realm discovery: which connections sign in an email address ("sign in with your work
/// email"). Only verified domains route; an unclaimed or unverified domain is `404`.
#[utoipa::path(get, path = "/v1/sso/discover", tag = "sso",
    params(DiscoverQuery),
    responses(
        (status = 200, body = DiscoverOut),
        (status = 404, body = Problem, description = "`sso_not_found`: no single sign-on for this domain"),
        (status = 422, body = Problem, description = "`validation_failed` (`/email`)"),
    ))]
pub(crate) async fn discover(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<DiscoverQuery>,
) -> Result<Json<DiscoverOut>, ApiError> {
    let none = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "sso_not_found",
            "no single sign-on for this email domain: sign in with a password",
        )
    };
    let org = sso::route(&*state.store, &query.email)
        .await?
        .ok_or_else(none)?;
    let base = state.config.sso.base().ok_or_else(none)?;
    let root = base.as_str().trim_end_matches('/').to_owned();
    let mut read = state.store.org_read(org).await.map_err(CoreError::from)?;
    let connections: Vec<Discovered> = read
        .sso_connections()
        .await
        .map_err(CoreError::from)?
        .into_iter()
        .filter(|c| c.enabled)
        .map(|c| Discovered {
            start_url: format!("{root}/v1/sso/{}/{}/start", c.protocol, c.id),
            id: c.id,
            name: c.name,
            protocol: c.protocol,
        })
        .collect();
    if connections.is_empty() {
        return Err(none());
    }
    Ok(Json(DiscoverOut { connections }))
}

/// The single sign-on routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(rotate))
        .routes(routes!(domains, claim))
        .routes(routes!(unclaim))
        .routes(routes!(verify))
        .routes(routes!(settings, set_settings))
        .routes(routes!(discover))
        .routes(routes!(oidc::start))
        .routes(routes!(oidc::callback))
        .routes(routes!(oidc::backchannel_logout))
        .routes(routes!(oidc::jwks))
        .routes(routes!(oidc::logout))
        .routes(routes!(saml_sp::metadata))
        .routes(routes!(saml_sp::start))
        .routes(routes!(saml_sp::acs))
}
