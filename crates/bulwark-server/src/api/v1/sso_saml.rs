//! The SAML half of an org's connections: what an owner sends (the IdP's metadata, uploaded
//! or fetched through the identity-provider egress client, and the SP's settings) and what is
//! shown (the values to give the IdP: entity id, ACS URL, metadata URL, encryption
//! certificate).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_core::CoreError;
use bulwark_types::ConnectionId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::sso::saml::{self, AttributeNames, MFA_CONTEXTS, SamlSettings, SignedPart};
use crate::state::AppState;

/// The most signing certificates a connection keeps (the current one and the next, during a
/// rollover).
pub const MAX_CERTIFICATES: usize = 2;
/// The largest IdP metadata document read.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

fn either() -> SignedPart {
    SignedPart::Either
}

fn yes() -> bool {
    true
}

/// A SAML connection's settings.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlIn {
    /// The IdP's metadata XML (exactly one of `metadata_xml`, `metadata_url`): its entity id,
    /// HTTP-Redirect single sign-on URL and signing certificates (at most two) are read.
    #[schema(min_length = 1, max_length = 262_144)]
    pub metadata_xml: Option<String>,
    /// Where to fetch the IdP's metadata (its host must be in the operator's `sso.idp_hosts`).
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub metadata_url: Option<String>,
    /// This SP's entity id (default: the connection's metadata URL).
    #[schema(min_length = 1, max_length = 1024)]
    pub sp_entity_id: Option<String>,
    /// Which element the IdP must sign (default `either`: the response or the assertion; every
    /// signature present must verify).
    #[serde(default = "either")]
    pub signed: SignedPart,
    /// Accept responses to no request (IdP-initiated sign-in; default false: they allow
    /// login CSRF).
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// Accept RSA-SHA1 signatures and SHA-1 digests (default false).
    #[serde(default)]
    pub allow_sha1: bool,
    /// Attribute names (default: the NameID is the email; groups in `groups`).
    pub attributes: Option<AttributeNames>,
    /// Whether the IdP's emails count as verified (default true: the org runs its IdP; the
    /// email must still be in one of the org's verified domains, or invited).
    #[serde(default = "yes")]
    pub email_verified: bool,
    /// `AuthnContextClassRef` values that count as MFA (default: TimeSyncToken,
    /// MobileTwoFactorContract, Entra's multipleauthn, the PAPE multi-factor policy).
    #[schema(max_items = 20)]
    pub mfa_contexts: Option<Vec<String>>,
    /// Make a key pair the IdP may encrypt assertions to (default true); its certificate is in
    /// the SP metadata.
    #[serde(default = "yes")]
    pub encrypted_assertions: bool,
}

/// A change to a SAML connection: what is present is replaced.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlPatch {
    /// New IdP metadata XML (read again; a new entity id drops the identities bound under
    /// the old one).
    #[schema(min_length = 1, max_length = 262_144)]
    pub metadata_xml: Option<String>,
    /// Fetch the IdP metadata again from this URL.
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub metadata_url: Option<String>,
    /// New SP entity id.
    #[schema(min_length = 1, max_length = 1024)]
    pub sp_entity_id: Option<String>,
    /// Which element must be signed.
    pub signed: Option<SignedPart>,
    /// IdP-initiated sign-in.
    pub allow_idp_initiated: Option<bool>,
    /// SHA-1.
    pub allow_sha1: Option<bool>,
    /// Attribute names.
    pub attributes: Option<AttributeNames>,
    /// Whether the IdP's emails count as verified.
    pub email_verified: Option<bool>,
    /// `AuthnContextClassRef` values that count as MFA.
    #[schema(max_items = 20)]
    pub mfa_contexts: Option<Vec<String>>,
}

/// A SAML connection's settings as shown, with what to give the identity provider.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SamlOut {
    /// The IdP's entity id.
    pub idp_entity_id: String,
    /// The IdP's single sign-on URL (HTTP-Redirect).
    pub sso_url: String,
    /// Where the metadata was fetched from.
    pub metadata_url: Option<String>,
    /// SHA-256 fingerprints (hex) of the IdP signing certificates trusted.
    pub certificate_fingerprints: Vec<String>,
    /// This SP's entity id, for the IdP.
    pub sp_entity_id: Option<String>,
    /// The ACS URL (HTTP-POST), for the IdP.
    pub acs_url: Option<String>,
    /// This SP's metadata, for the IdP.
    pub sp_metadata_url: Option<String>,
    /// Which element must be signed.
    pub signed: SignedPart,
    /// IdP-initiated sign-in.
    pub allow_idp_initiated: bool,
    /// SHA-1.
    pub allow_sha1: bool,
    /// Attribute names.
    pub attributes: AttributeNames,
    /// Whether the IdP's emails count as verified.
    pub email_verified: bool,
    /// `AuthnContextClassRef` values that count as MFA.
    pub mfa_contexts: Vec<String>,
    /// The SP's encryption certificate (base64 DER), if assertions may be encrypted.
    pub encryption_certificate: Option<String>,
}

/// The settings as shown.
#[must_use]
pub fn out(state: &AppState, id: ConnectionId, s: SamlSettings) -> SamlOut {
    let base = state.config.sso.base();
    SamlOut {
        certificate_fingerprints: s
            .certificates
            .iter()
            .filter_map(|c| STANDARD.decode(c).ok())
            .map(|der| bulwark_crypto::to_hex(&bulwark_crypto::sha256(&der)))
            .collect(),
        sp_entity_id: base.as_ref().map(|b| saml::sp_entity_id(b, id, &s)),
        acs_url: base.as_ref().map(|b| saml::acs_uri(b, id)),
        sp_metadata_url: base.as_ref().map(|b| saml::metadata_uri(b, id)),
        idp_entity_id: s.idp_entity_id,
        sso_url: s.sso_url,
        metadata_url: s.metadata_url,
        signed: s.signed,
        allow_idp_initiated: s.allow_idp_initiated,
        allow_sha1: s.allow_sha1,
        attributes: s.attributes,
        email_verified: s.email_verified,
        mfa_contexts: s.mfa_contexts,
        encryption_certificate: s.encryption_certificate,
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(field, message)
}

/// The IdP's metadata text: the uploaded XML, or fetched from `url` through the egress client.
async fn metadata_text(
    state: &AppState,
    xml: Option<String>,
    url: Option<&str>,
    pointer: &'static str,
) -> Result<Option<String>, ApiError> {
    match (xml, url) {
        (Some(_), Some(_)) => Err(invalid(
            pointer,
            "give either `metadata_xml` or `metadata_url`, not both",
        )),
        (Some(xml), None) => Ok(Some(xml)),
        (None, None) => Ok(None),
        (None, Some(raw)) => {
            let field = if pointer == "/saml" {
                "/saml/metadata_url"
            } else {
                pointer
            };
            let url = url::Url::parse(raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
                .ok_or_else(|| invalid(field, "must be an absolute http(s) URL"))?;
            if state.config.sso.idp_hosts.is_empty() {
                return Err(invalid(
                    field,
                    "is not an allowed identity-provider host: the operator lists none in `sso.idp_hosts`",
                ));
            }
            if let Err(e) = bulwark_core::egress::check_url(&url, state.sso.egress.policy()) {
                return Err(invalid(
                    field,
                    format!(
                        "is not an allowed identity-provider host ({e}); the operator lists them in `sso.idp_hosts`"
                    ),
                ));
            }
            let (answer, _) = state
                .sso
                .egress
                .send(
                    reqwest::Method::GET,
                    &url,
                    &[("accept", "application/samlmetadata+xml, application/xml")],
                    Vec::new(),
                )
                .await
                .map_err(|e| crate::sso::oidc::unavailable(&e))?;
            if answer.status != 200 || answer.truncated || answer.body.len() > MAX_METADATA_BYTES {
                return Err(crate::sso::oidc::unavailable(&format!(
                    "the metadata URL answered {} ({} bytes{})",
                    answer.status,
                    answer.body.len(),
                    if answer.truncated { ", truncated" } else { "" }
                )));
            }
            String::from_utf8(answer.body)
                .map(Some)
                .map_err(|_| invalid(field, "the metadata is not UTF-8 text"))
        }
    }
}

/// What an IdP's metadata gives a connection.
struct Read {
    entity_id: String,
    sso_url: String,
    certificates: Vec<String>,
}

fn read_metadata(text: &str, pointer: &'static str) -> Result<Read, ApiError> {
    if text.len() > MAX_METADATA_BYTES {
        return Err(invalid(pointer, "the metadata is larger than 256 KiB"));
    }
    let m = bulwark_saml::read_idp_metadata(text)
        .map_err(|why| invalid(pointer, format!("the metadata {why}")))?;
    if m.certificates.len() > MAX_CERTIFICATES {
        return Err(invalid(
            pointer,
            format!("the metadata lists more than {MAX_CERTIFICATES} signing certificates"),
        ));
    }
    let sso = url::Url::parse(&m.sso_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some());
    if sso.is_none() || m.sso_url.len() > 2048 {
        return Err(invalid(
            pointer,
            "the metadata's single sign-on URL is not an absolute http(s) URL",
        ));
    }
    Ok(Read {
        entity_id: m.entity_id,
        sso_url: m.sso_url,
        certificates: m.certificates.iter().map(|c| STANDARD.encode(c)).collect(),
    })
}

fn check_text(value: &str, max: usize, pointer: &'static str) -> Result<(), ApiError> {
    if value.is_empty() || !bulwark_types::is_plain_text(value, max) {
        return Err(invalid(
            pointer,
            format!("must be 1 to {max} characters of plain text"),
        ));
    }
    Ok(())
}

fn check_attributes(a: &AttributeNames) -> Result<(), ApiError> {
    if let Some(email) = &a.email {
        check_text(email, 256, "/saml/attributes/email")?;
    }
    check_text(&a.groups, 256, "/saml/attributes/groups")
}

fn check_contexts(c: &[String]) -> Result<(), ApiError> {
    if c.len() > 20 {
        return Err(invalid("/saml/mfa_contexts", "at most 20 values"));
    }
    for v in c {
        check_text(v, 256, "/saml/mfa_contexts")?;
    }
    Ok(())
}

/// A new connection's settings and, when assertions may be encrypted, the key to seal.
///
/// # Errors
/// `validation_failed` on the field at fault; `sso_provider_unavailable` when the metadata
/// could not be fetched.
pub async fn create(
    state: &AppState,
    id: ConnectionId,
    body: SamlIn,
    mapping: bulwark_core::sso::Mapping,
) -> Result<(SamlSettings, Option<zeroize::Zeroizing<Vec<u8>>>), ApiError> {
    let text = metadata_text(
        state,
        body.metadata_xml,
        body.metadata_url.as_deref(),
        "/saml",
    )
    .await?
    .ok_or_else(|| invalid("/saml", "give `metadata_xml` or `metadata_url`"))?;
    let read = read_metadata(&text, "/saml/metadata_xml")?;
    if let Some(e) = &body.sp_entity_id {
        check_text(e, 1024, "/saml/sp_entity_id")?;
    }
    let attributes = body.attributes.unwrap_or_default();
    check_attributes(&attributes)?;
    let mfa_contexts = body
        .mfa_contexts
        .unwrap_or_else(|| MFA_CONTEXTS.map(str::to_owned).to_vec());
    check_contexts(&mfa_contexts)?;
    let (key, encryption_certificate) = if body.encrypted_assertions {
        let (key, cert) = saml::new_encryption_key(id)?;
        (Some(key), Some(cert))
    } else {
        (None, None)
    };
    let settings = SamlSettings {
        idp_entity_id: read.entity_id,
        sso_url: read.sso_url,
        certificates: read.certificates,
        metadata_url: body.metadata_url,
        sp_entity_id: body.sp_entity_id,
        signed: body.signed,
        allow_idp_initiated: body.allow_idp_initiated,
        allow_sha1: body.allow_sha1,
        attributes,
        email_verified: body.email_verified,
        mfa_contexts,
        mapping,
        encryption_certificate,
    };
    Ok((settings, key))
}

/// Applies a change; whether the IdP's entity id changed.
///
/// # Errors
/// As [`create`].
pub async fn update(
    state: &AppState,
    settings: &mut SamlSettings,
    patch: SamlPatch,
) -> Result<bool, ApiError> {
    let mut changed = false;
    let url = patch.metadata_url.clone();
    if let Some(text) = metadata_text(state, patch.metadata_xml, url.as_deref(), "/saml").await? {
        let read = read_metadata(&text, "/saml/metadata_xml")?;
        changed = read.entity_id != settings.idp_entity_id;
        settings.idp_entity_id = read.entity_id;
        settings.sso_url = read.sso_url;
        settings.certificates = read.certificates;
        settings.metadata_url = url;
    }
    if let Some(e) = patch.sp_entity_id {
        check_text(&e, 1024, "/saml/sp_entity_id")?;
        settings.sp_entity_id = Some(e);
    }
    if let Some(a) = patch.attributes {
        check_attributes(&a)?;
        settings.attributes = a;
    }
    if let Some(c) = patch.mfa_contexts {
        check_contexts(&c)?;
        settings.mfa_contexts = c;
    }
    settings.signed = patch.signed.unwrap_or(settings.signed);
    settings.allow_idp_initiated = patch
        .allow_idp_initiated
        .unwrap_or(settings.allow_idp_initiated);
    settings.allow_sha1 = patch.allow_sha1.unwrap_or(settings.allow_sha1);
    settings.email_verified = patch.email_verified.unwrap_or(settings.email_verified);
    Ok(changed)
}

/// The stored JSON of `s`.
///
/// # Errors
/// Never in practice.
pub fn config_json(s: &SamlSettings) -> Result<String, ApiError> {
    serde_json::to_string(s).map_err(|_| CoreError::Bug("SAML settings do not serialize").into())
}
