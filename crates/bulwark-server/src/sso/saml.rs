//! The SAML 2.0 service provider: per-connection SP metadata, SP-initiated sign-in (an
//! `AuthnRequest` over HTTP-Redirect, its ID bound to the browser by a sealed `__Host-`
//! cookie) and the assertion consumer service (HTTP-POST), where `bulwark_saml` verifies the
//! response before anything of it is used. IdP-initiated sign-in is off unless the connection
//! allows it. See ADR 0018.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bulwark_core::CoreError;
use bulwark_core::model::SsoConnection;
use bulwark_core::sso::{Asserted, Mapping};
use bulwark_crypto::xml::RsaDecryptionKey;
use bulwark_saml::{Algorithms, AuthnRequest, Expected, Refusal, Signed, SigningKey, SpMetadata};
use bulwark_types::{ConnectionId, Email};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Failure, Flow, SKEW_SECS, StartQuery};
use crate::error::{ApiError, Problem};
use crate::extract::AuditContext;
use crate::state::AppState;

/// The cookie that binds a SAML sign-in in flight to the browser. `SameSite=None`: the
/// identity provider's page posts the response to us, a cross-site request.
pub const FLOW_COOKIE: &str = "__Host-bulwark_saml";

/// `AuthnContextClassRef` values that say the person passed more than one factor, by default.
pub const MFA_CONTEXTS: [&str; 4] = [
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "http://schemas.microsoft.com/claims/multipleauthn",
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
];

/// Which element the identity provider must sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignedPart {
    /// The assertion or the response (each signature present must verify).
    Either,
    /// The assertion.
    Assertion,
    /// The response.
    Response,
    /// Both.
    Both,
}

impl From<SignedPart> for Signed {
    fn from(p: SignedPart) -> Self {
        match p {
            SignedPart::Either => Self::Either,
            SignedPart::Assertion => Self::Assertion,
            SignedPart::Response => Self::Response,
            SignedPart::Both => Self::Both,
        }
    }
}

/// Which attributes carry what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeNames {
    /// The email attribute; absent: the NameID, when it is an email address.
    #[schema(min_length = 1, max_length = 256)]
    pub email: Option<String>,
    /// The groups attribute (multi-valued; default `groups`).
    #[schema(min_length = 1, max_length = 256)]
    pub groups: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        Self {
            email: None,
            groups: "groups".into(),
        }
    }
}

/// A SAML connection's stored settings (the SP's decryption key is a vault credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    /// The IdP's entity id (the issuer its assertions must name).
    pub idp_entity_id: String,
    /// Where `AuthnRequest`s go (HTTP-Redirect binding).
    pub sso_url: String,
    /// The IdP's signing certificates, base64 DER: one, or two during a rollover.
    pub certificates: Vec<String>,
    /// Where the metadata was fetched from, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// This SP's entity id (default: the connection's metadata URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_entity_id: Option<String>,
    /// Which element must be signed.
    pub signed: SignedPart,
    /// Whether a response to no request (IdP-initiated sign-in) is accepted.
    pub allow_idp_initiated: bool,
    /// Whether RSA-SHA1 and SHA-1 digests are accepted.
    pub allow_sha1: bool,
    /// Attribute names.
    pub attributes: AttributeNames,
    /// Whether the IdP's emails count as verified (linking and the domain rules need it).
    pub email_verified: bool,
    /// `AuthnContextClassRef` values that count as MFA.
    pub mfa_contexts: Vec<String>,
    /// Who the IdP may make, and how.
    pub mapping: Mapping,
    /// The SP's certificate (base64 DER) for encrypted assertions; its key is the connection's
    /// vault credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate: Option<String>,
}

impl SamlSettings {
    /// The keys of the IdP's certificates (checked when stored).
    #[must_use]
    pub fn keys(&self) -> Vec<SigningKey> {
        self.certificates
            .iter()
            .filter_map(|c| STANDARD.decode(c).ok())
            .filter_map(|der| SigningKey::from_certificate(&der).ok())
            .collect()
    }
}

/// The URL of a connection's SP metadata (also its default entity id).
#[must_use]
pub fn metadata_uri(base: &url::Url, id: ConnectionId) -> String {
    format!(
        "{}/v1/sso/saml/{id}/metadata",
        base.as_str().trim_end_matches('/')
    )
}

/// The assertion consumer service URL of a connection.
#[must_use]
pub fn acs_uri(base: &url::Url, id: ConnectionId) -> String {
    format!(
        "{}/v1/sso/saml/{id}/acs",
        base.as_str().trim_end_matches('/')
    )
}

/// The SP entity id of a connection.
#[must_use]
pub fn sp_entity_id(base: &url::Url, id: ConnectionId, settings: &SamlSettings) -> String {
    settings
        .sp_entity_id
        .clone()
        .unwrap_or_else(|| metadata_uri(base, id))
}

/// A new key pair for encrypted assertions: its PKCS#8 (to seal) and a self-signed
/// certificate (base64 DER) for the SP metadata.
///
/// # Errors
/// Key generation or signing failed.
pub fn new_encryption_key(id: ConnectionId) -> Result<(Zeroizing<Vec<u8>>, String), CoreError> {
    let (_, pkcs8) = RsaDecryptionKey::generate().map_err(|_| CoreError::Crypto)?;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice());
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
        .map_err(|_| CoreError::Crypto)?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|_| CoreError::Crypto)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("Bulwark SAML SP {id}"));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&pair).map_err(|_| CoreError::Crypto)?;
    Ok((pkcs8, STANDARD.encode(cert.der())))
}

/// A SAML connection by id, with its settings.
async fn load(state: &AppState, raw: &str) -> Result<(SsoConnection, SamlSettings), ApiError> {
    super::load_connection(state, raw, "saml").await
}

/// This service provider's metadata for the connection, for the identity provider.
#[utoipa::path(get, path = "/v1/sso/saml/{connection}/metadata", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`")),
    responses(
        (status = 200, description = "SAML 2.0 SP metadata: entity id, ACS (HTTP-POST), the encryption certificate", content_type = "application/samlmetadata+xml", body = String),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`sso_not_configured`"),
    ))]
pub(crate) async fn metadata(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (connection, settings) = load(&state, &raw).await?;
    let base = super::oidc::public_base(&state)?;
    let certificate = settings
        .encryption_certificate
        .as_deref()
        .and_then(|c| STANDARD.decode(c).ok());
    let xml = SpMetadata {
        entity_id: &sp_entity_id(&base, connection.id, &settings),
        acs_url: &acs_uri(&base, connection.id),
        encryption_certificate: certificate.as_deref(),
        want_assertions_signed: matches!(settings.signed, SignedPart::Assertion | SignedPart::Both),
    }
    .xml();
    let mut response = xml.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    Ok(response)
}

/// `Set-Cookie` for a SAML flow.
fn flow_cookie(value: &str) -> String {
    format!(
        "{FLOW_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=None; Max-Age={}",
        super::FLOW_TTL.as_secs()
    )
}

/// `Set-Cookie` that drops the SAML flow.
fn clear_flow_cookie() -> String {
    format!("{FLOW_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0")
}

/// Starts a sign-in through a SAML identity provider: sets the flow cookie and sends the
/// browser to the IdP with an `AuthnRequest` (303, HTTP-Redirect binding).
#[utoipa::path(get, path = "/v1/sso/saml/{connection}/start", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`"), StartQuery),
    responses(
        (status = 303, description = "To the IdP's single sign-on URL with `SAMLRequest`; sets the `__Host-bulwark_saml` cookie"),
        (status = 403, body = Problem, description = "`sso_connection_disabled`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`sso_not_configured`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/return_to`)"),
    ))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let return_to = super::return_to(query)?;
    let (connection, settings) = load(&state, &raw).await?;
    if !connection.enabled {
        return Err(CoreError::SsoRefused {
            code: "sso_connection_disabled",
            secret: false,
        }
        .into());
    }
    let base = super::oidc::public_base(&state)?;
    // An NCName: a letter or `_` first.
    let request_id = format!("_{}", super::random_token()?);
    let now = time::OffsetDateTime::now_utc();
    let instant = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| CoreError::Bug("a time does not format"))?;
    let request = AuthnRequest {
        id: &request_id,
        issue_instant: &instant,
        destination: &settings.sso_url,
        acs_url: &acs_uri(&base, connection.id),
        sp_entity_id: &sp_entity_id(&base, connection.id, &settings),
    };
    let flow = Flow {
        connection: connection.id,
        state: request_id.clone(),
        nonce: String::new(),
        verifier: String::new(),
        return_to,
        expires: now.unix_timestamp() + i64::try_from(super::FLOW_TTL.as_secs()).unwrap_or(600),
    };
    let mut url = url::Url::parse(&settings.sso_url)
        .map_err(|_| CoreError::Bug("a stored SAML SSO URL does not parse"))?;
    url.query_pairs_mut()
        .append_pair("SAMLRequest", &request.redirect_value());
    let cookie = flow_cookie(&state.sso.seal(&flow)?);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What the identity provider's page posts (HTTP-POST binding).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct AcsForm {
    /// The base64 `Response` (at most 1 MiB decoded).
    #[serde(rename = "SAMLResponse")]
    #[schema(max_length = 1_400_000)]
    pub saml_response: String,
    /// For an IdP-initiated sign-in, a path on this server to go to (else ignored).
    #[serde(rename = "RelayState")]
    #[schema(max_length = 512)]
    pub relay_state: Option<String>,
}

/// The assertion consumer service: verifies the posted response (signature, structure,
/// issuer, audience, recipient, times, `InResponseTo` against this browser's flow, the
/// assertion not seen before), then signs the person in (`bulwark_core::sso::sign_in`) and
/// sends the browser on with its session cookies (303).
#[utoipa::path(post, path = "/v1/sso/saml/{connection}/acs", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`")),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: to the `return_to` path with the session cookies (`stage` may be `mfa_pending`)"),
        (status = 403, body = Problem, description = "A refusal with its code: `sso_saml_malformed`, `sso_saml_structure`, `sso_saml_algorithm`, `sso_saml_signature`, `sso_saml_decrypt`, `sso_saml_status`, `sso_saml_issuer`, `sso_saml_audience`, `sso_saml_destination`, `sso_saml_in_response_to`, `sso_saml_unsolicited`, `sso_saml_expired`, `sso_saml_subject`, `sso_saml_replayed`, `sso_email_missing`, `sso_email_unverified`, `sso_email_domain`, `sso_link_refused`, `sso_jit_disabled`, `sso_connection_disabled`, `account_disabled`, `license_*`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`sso_not_configured`"),
        (status = 413, body = Problem, description = "`payload_too_large`"),
        (status = 429, body = Problem, description = "`throttled`"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`: the connection's decryption key could not be used"),
    ))]
pub(crate) async fn acs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    AuditContext(context): AuditContext,
    headers: HeaderMap,
    form: Result<axum::Form<AcsForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let (connection, settings) = load(&state, &raw).await?;
    let base = super::oidc::public_base(&state)?;
    let check = verify(
        &state,
        &connection,
        &settings,
        &base,
        &headers,
        form.ok().map(|f| f.0),
    );
    super::complete(
        &state,
        &connection,
        &settings.mapping,
        "saml",
        context,
        clear_flow_cookie(),
        check,
    )
    .await
}

fn refused(r: Refusal) -> Failure {
    Failure::Refused(r.code())
}

/// Everything between the posted form and a verified assertion.
async fn verify(
    state: &AppState,
    connection: &SsoConnection,
    settings: &SamlSettings,
    base: &url::Url,
    headers: &HeaderMap,
    form: Option<AcsForm>,
) -> Result<(Asserted, String), Failure> {
    let form = form.ok_or(refused(Refusal::Malformed))?;
    let xml = bulwark_saml::decode(&form.saml_response).map_err(refused)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // The request this browser made through this connection, if any (single use).
    let flow = super::cookie(headers, FLOW_COOKIE)
        .and_then(|v| state.sso.open(v))
        .filter(|f| f.connection == connection.id && f.expires >= now);
    let acs_url = acs_uri(base, connection.id);
    let decryption = match (connection.secret_id, xml_is_encrypted(&xml)) {
        (Some(secret), true) => {
            let pkcs8 = bulwark_core::vault::use_value(
                &*state.store,
                &*state.clock,
                &*state.vault,
                connection.org,
                secret,
                &acs_url,
                "sso_saml_decrypt",
            )
            .await
            .map_err(|e| Failure::Unavailable(format!("the connection's decryption key: {e}")))?;
            Some(
                RsaDecryptionKey::from_pkcs8(&pkcs8)
                    .map_err(|_| Failure::Unavailable("the connection's decryption key".into()))?,
            )
        }
        _ => None,
    };
    let keys = settings.keys();
    let sp_entity_id = sp_entity_id(base, connection.id, settings);
    let expected = Expected {
        idp_entity_id: &settings.idp_entity_id,
        keys: &keys,
        signed: settings.signed.into(),
        algorithms: Algorithms {
            allow_sha1: settings.allow_sha1,
        },
        sp_entity_id: &sp_entity_id,
        acs_url: &acs_url,
        request_id: flow.as_ref().map(|f| f.state.as_str()),
        allow_unsolicited: settings.allow_idp_initiated,
        decryption_key: decryption.as_ref(),
        now,
        skew: SKEW_SECS,
    };
    let assertion = bulwark_saml::verify_response(&xml, &expected).map_err(refused)?;
    let once = |kind: &str, value: &str| {
        format!(
            "saml-{kind}:{}:{}",
            connection.id,
            URL_SAFE_NO_PAD.encode(bulwark_crypto::sha256(value.as_bytes()))
        )
    };
    if let Some(flow) = &flow {
        let fresh = state
            .store
            .sso_use_once(
                &once("request", &flow.state),
                (flow.expires + 60) * 1000,
                now * 1000,
            )
            .await
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        if !fresh {
            return Err(refused(Refusal::InResponseTo));
        }
    }
    let until = assertion.expires.max(now) + SKEW_SECS;
    let fresh = state
        .store
        .sso_use_once(&once("assertion", &assertion.id), until * 1000, now * 1000)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    if !fresh {
        return Err(Failure::Refused("sso_saml_replayed"));
    }
    let return_to = match flow {
        Some(f) => f.return_to,
        None => form
            .relay_state
            .filter(|r| super::safe_return(r))
            .unwrap_or_else(|| "/".into()),
    };
    Ok((asserted(settings, &assertion)?, return_to))
}

/// Whether the response carries an encrypted assertion (then the key is opened, audited).
fn xml_is_encrypted(xml: &[u8]) -> bool {
    xml.windows(b"EncryptedAssertion".len())
        .any(|w| w == b"EncryptedAssertion")
}

fn asserted(settings: &SamlSettings, a: &bulwark_saml::Assertion) -> Result<Asserted, Failure> {
    if a.name_id_format.as_deref() == Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient") {
        // A new value at every sign-in: nothing to bind an account to.
        return Err(refused(Refusal::Subject));
    }
    let email_text = match &settings.attributes.email {
        Some(name) => a.attribute(name).first().cloned(),
        None => Some(a.name_id.clone()),
    };
    let email = email_text.and_then(|e| e.parse::<Email>().ok());
    let groups: Vec<String> = a
        .attribute(&settings.attributes.groups)
        .iter()
        .filter(|g| !g.is_empty() && g.len() <= 256)
        .take(200)
        .cloned()
        .collect();
    let idp_mfa = a
        .authn_context
        .as_deref()
        .is_some_and(|c| settings.mfa_contexts.iter().any(|m| m == c));
    Ok(Asserted {
        method: "saml",
        subject: a.name_id.clone(),
        email,
        email_verified: settings.email_verified,
        groups,
        idp_mfa,
        sid: a.session_index.clone(),
    })
}
