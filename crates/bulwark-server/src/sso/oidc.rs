//! The OpenID Connect relying party: authorization code flow with PKCE (S256), `state` and
//! `nonce` bound to the browser by a sealed `__Host-` cookie, ID tokens checked by the
//! `openidconnect` crate (signature under an algorithm allowlist, `iss`, `aud`, `exp`, `nonce`)
//! and here (`iat`/`nbf` skew, `azp`, `at_hash`, `email_verified`), and back-channel logout.
//!
//! Every request to a provider goes through [`super::Sso::egress`]: default-deny to the
//! operator's `sso.idp_hosts`, no private addresses unless `[egress]` opens them, no redirects.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bulwark_core::CoreError;
use bulwark_core::model::SsoConnection;
use bulwark_core::sso::{self as core_sso, Asserted};
use bulwark_types::{ConnectionId, Email};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AccessTokenHash, ClientId, EmptyAdditionalClaims, IdToken, IdTokenVerifier,
    IssuerUrl, Nonce, ProviderMetadataWithLogout,
};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{AuthMethod, Cached, Failure, Flow, OidcSettings, SKEW_SECS, StartQuery};
use crate::egress::SendError;
use crate::error::{ApiError, Problem};
use crate::extract::AuditContext;
use crate::state::AppState;

type Token = IdToken<
    EmptyAdditionalClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The signing algorithms accepted from a provider: never `none`, never an HMAC.
pub const ALGORITHMS: [CoreJwsSigningAlgorithm; 4] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// `amr` values that say the person passed more than one factor (RFC 8176).
const MFA_AMR: [&str; 4] = ["mfa", "otp", "hwk", "sc"];

/// A provider's discovery document and keys.
pub struct Provider {
    /// The discovery document (issuer checked equal to the connection's).
    pub metadata: ProviderMetadataWithLogout,
    /// Its keys.
    pub jwks: CoreJsonWebKeySet,
}

/// Why a provider could not be reached or understood.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed (refused by egress, timeout, network).
    #[error("{0}")]
    Send(#[from] SendError),
    /// The answer is not a discovery document or key set for this issuer.
    #[error("{0}")]
    Invalid(String),
}

impl AppState {
    /// A request through the identity-provider egress client, as `openidconnect` makes them.
    async fn idp_http(
        &self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, SendError> {
        let (parts, body) = request.into_parts();
        let url = url::Url::parse(&parts.uri.to_string())
            .map_err(|_| SendError::Failed("not a URL".into()))?;
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
            .map_err(|_| SendError::Failed("method".into()))?;
        let (answer, answer_headers) = self.sso.egress.send(method, &url, &pairs, body).await?;
        if answer.truncated {
            return Err(SendError::Failed("the answer is too large".into()));
        }
        let mut response = http::Response::builder().status(answer.status);
        if let Some(ct) = answer_headers.get(header::CONTENT_TYPE) {
            response = response.header(header::CONTENT_TYPE, ct.as_bytes());
        }
        response
            .body(answer.body)
            .map_err(|_| SendError::Failed("answer".into()))
    }
}

/// `openidconnect`'s HTTP client: the identity-provider egress client (a named type with a
/// boxed `Send` future, so handlers that await it stay `Send`).
struct IdpClient<'a>(&'a AppState);

impl<'c> openidconnect::AsyncHttpClient<'c> for IdpClient<'_> {
    type Error = SendError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<openidconnect::HttpResponse, SendError>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.0.idp_http(request))
    }
}

/// Fetches `issuer`'s discovery document and keys (the document's `issuer` must equal it).
///
/// # Errors
/// [`FetchError`].
pub async fn discover(state: &AppState, issuer: &str) -> Result<Provider, FetchError> {
    let issuer =
        IssuerUrl::new(issuer.to_owned()).map_err(|e| FetchError::Invalid(e.to_string()))?;
    let client = IdpClient(state);
    let metadata = ProviderMetadataWithLogout::discover_async(issuer, &client)
        .await
        .map_err(|e| match e {
            openidconnect::DiscoveryError::Request(e) => FetchError::Send(e),
            other => FetchError::Invalid(other.to_string()),
        })?;
    if metadata.token_endpoint().is_none() {
        return Err(FetchError::Invalid(
            "the discovery document names no token endpoint".into(),
        ));
    }
    let jwks = metadata.jwks().clone();
    Ok(Provider { metadata, jwks })
}

async fn fetch_keys(
    state: &AppState,
    provider: &Provider,
) -> Result<CoreJsonWebKeySet, FetchError> {
    let client = IdpClient(state);
    CoreJsonWebKeySet::fetch_async(provider.metadata.jwks_uri(), &client)
        .await
        .map_err(|e| match e {
            openidconnect::DiscoveryError::Request(e) => FetchError::Send(e),
            other => FetchError::Invalid(other.to_string()),
        })
}

/// The connection's provider, from the cache when fresh (and of the same settings).
async fn provider(
    state: &AppState,
    connection: &SsoConnection,
    settings: &OidcSettings,
) -> Result<Arc<Provider>, FetchError> {
    let cached = state.sso.providers.lock().ok().and_then(|m| {
        m.get(&connection.id)
            .filter(|c| c.version == connection.updated_ms && c.at.elapsed() < super::CACHE_TTL)
            .map(|c| Arc::clone(&c.value))
    });
    if let Some(p) = cached {
        return Ok(p);
    }
    Ok(remember(
        state,
        connection,
        discover(state, &settings.issuer).await?,
    ))
}

/// Caches `provider` for `connection` (its settings' version) and hands it back.
fn remember(state: &AppState, connection: &SsoConnection, provider: Provider) -> Arc<Provider> {
    let fresh = Arc::new(provider);
    if let Ok(mut m) = state.sso.providers.lock() {
        m.insert(
            connection.id,
            Cached {
                value: Arc::clone(&fresh),
                at: Instant::now(),
                version: connection.updated_ms,
            },
        );
    }
    fresh
}

/// Fetches the keys again after a token named one they lack, at most every
/// [`super::REFRESH_EVERY`] per connection; `None` when it is too soon.
async fn refreshed(
    state: &AppState,
    connection: &SsoConnection,
    current: &Provider,
) -> Result<Option<Arc<Provider>>, FetchError> {
    {
        let Ok(mut last) = state.sso.refreshed.lock() else {
            return Ok(None);
        };
        if last
            .get(&connection.id)
            .is_some_and(|at| at.elapsed() < super::REFRESH_EVERY)
        {
            return Ok(None);
        }
        last.insert(connection.id, Instant::now());
    }
    let jwks = fetch_keys(state, current).await?;
    let metadata = current.metadata.clone();
    Ok(Some(remember(
        state,
        connection,
        Provider { metadata, jwks },
    )))
}

/// The redirect URI of a connection (exact; registered at the provider).
#[must_use]
pub fn redirect_uri(base: &url::Url, id: ConnectionId) -> String {
    format!(
        "{}/v1/sso/oidc/{id}/callback",
        base.as_str().trim_end_matches('/')
    )
}

/// The back-channel logout URI of a connection.
#[must_use]
pub fn logout_uri(base: &url::Url, id: ConnectionId) -> String {
    format!(
        "{}/v1/sso/oidc/{id}/backchannel-logout",
        base.as_str().trim_end_matches('/')
    )
}

/// A OIDC connection by id, with its settings.
async fn load(state: &AppState, raw: &str) -> Result<(SsoConnection, OidcSettings), ApiError> {
    super::load_connection(state, raw, "oidc").await
}

/// The configured public base URL, or `409 sso_not_configured`.
///
/// # Errors
/// When `sso.public_url` is not set.
pub(crate) fn public_base(state: &AppState) -> Result<url::Url, ApiError> {
    state.config.sso.base().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "sso_not_configured",
            "single sign-on needs `sso.public_url` in the server's configuration",
        )
    })
}

/// Starts a sign-in through an OpenID provider: sets the flow cookie and sends the browser to
/// the provider (303).
#[utoipa::path(get, path = "/v1/sso/oidc/{connection}/start", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`"), StartQuery),
    responses(
        (status = 303, description = "To the provider's authorization endpoint; sets the `__Host-bulwark_sso` cookie"),
        (status = 403, body = Problem, description = "`sso_connection_disabled`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`sso_not_configured`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/return_to`)"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`"),
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
    let base = public_base(&state)?;
    let provider = provider(&state, &connection, &settings)
        .await
        .map_err(|e| unavailable(&e))?;
    let flow = Flow {
        connection: connection.id,
        state: super::random_token()?,
        nonce: super::random_token()?,
        verifier: super::random_token()?,
        return_to,
        expires: time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(super::FLOW_TTL.as_secs()).unwrap_or(600),
    };
    let challenge = URL_SAFE_NO_PAD.encode(bulwark_crypto::sha256(flow.verifier.as_bytes()));
    let mut url = provider.metadata.authorization_endpoint().url().clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &settings.client_id)
        .append_pair("redirect_uri", &redirect_uri(&base, connection.id))
        .append_pair("scope", &settings.scopes.join(" "))
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cookie = super::flow_cookie(&state.sso.seal(&flow)?);
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

/// `502 sso_provider_unavailable`, the cause logged (never sent).
pub(crate) fn unavailable(e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "an identity provider could not be reached or understood");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "sso_provider_unavailable",
        "the identity provider could not be reached or answered something unexpected",
    )
}

/// What the provider sends back.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    #[param(max_length = 2048)]
    pub code: Option<String>,
    /// The state Bulwark sent.
    #[param(max_length = 256)]
    pub state: Option<String>,
    /// The issuer (RFC 9207), compared with the connection's when present.
    #[param(max_length = 2048)]
    pub iss: Option<String>,
    /// An error code instead of a code.
    #[param(max_length = 256)]
    pub error: Option<String>,
    /// Its description (ignored).
    #[param(max_length = 2048)]
    pub error_description: Option<String>,
    /// Session state (ignored).
    #[param(max_length = 2048)]
    pub session_state: Option<String>,
}

fn flow_from(headers: &HeaderMap, state: &AppState) -> Option<Flow> {
    super::cookie(headers, super::FLOW_COOKIE).and_then(|value| state.sso.open(value))
}

/// Completes a sign-in through an OpenID provider: checks the state against the flow cookie,
/// exchanges the code (with the PKCE verifier), checks the ID token, then signs the person in
/// (`bulwark_core::sso::sign_in`) and sends the browser on with its session cookies (303).
#[utoipa::path(get, path = "/v1/sso/oidc/{connection}/callback", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`"), CallbackQuery),
    responses(
        (status = 303, description = "Signed in: to the `return_to` path with the session cookies (`stage` may be `mfa_pending`)"),
        (status = 403, body = Problem, description = "A refusal with its code: `sso_state_invalid`, `sso_idp_error`, `sso_issuer_mismatch`, `sso_code_rejected`, `sso_token_signature`, `sso_token_issuer`, `sso_token_audience`, `sso_token_expired`, `sso_nonce_mismatch`, `sso_at_hash_mismatch`, `sso_token_invalid`, `sso_email_missing`, `sso_email_unverified`, `sso_email_domain`, `sso_link_refused`, `sso_jit_disabled`, `sso_connection_disabled`, `account_disabled`, `license_*`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`sso_not_configured`"),
        (status = 429, body = Problem, description = "`throttled`"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`"),
    ))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    AuditContext(context): AuditContext,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (connection, settings) = load(&state, &raw).await?;
    let base = public_base(&state)?;
    let check = verify(
        &state,
        &connection,
        &settings,
        &base,
        &headers,
        query.ok().map(|q| q.0),
    );
    super::complete(
        &state,
        &connection,
        &settings.mapping,
        "oidc",
        context,
        super::clear_flow_cookie(),
        check,
    )
    .await
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Everything between the provider's redirect and a verified assertion.
async fn verify(
    state: &AppState,
    connection: &SsoConnection,
    settings: &OidcSettings,
    base: &url::Url,
    headers: &HeaderMap,
    query: Option<CallbackQuery>,
) -> Result<(Asserted, String), Failure> {
    let query = query.ok_or(Failure::Refused("sso_state_invalid"))?;
    // The state first: nothing of a response is looked at unless this browser started it.
    let flow = flow_from(headers, state).ok_or(Failure::Refused("sso_state_invalid"))?;
    let sent = query.state.as_deref().unwrap_or("");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if flow.connection != connection.id
        || flow.expires < now
        || !bulwark_crypto::constant_time_eq(sent.as_bytes(), flow.state.as_bytes())
    {
        return Err(Failure::Refused("sso_state_invalid"));
    }
    let spent = format!(
        "oidc-state:{}",
        URL_SAFE_NO_PAD.encode(bulwark_crypto::sha256(flow.state.as_bytes()))
    );
    let fresh = state
        .store
        .sso_use_once(&spent, (flow.expires + 60) * 1000, now * 1000)
        .await
        .map_err(|_| Failure::Refused("sso_state_invalid"))?;
    if !fresh {
        return Err(Failure::Refused("sso_state_invalid"));
    }
    if query.error.is_some() {
        return Err(Failure::Refused("sso_idp_error"));
    }
    if let Some(iss) = &query.iss
        && iss != &settings.issuer
    {
        return Err(Failure::Refused("sso_issuer_mismatch"));
    }
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or(Failure::Refused("sso_idp_error"))?;
    let mut provider = provider(state, connection, settings).await?;
    let tokens = exchange(
        state,
        connection,
        settings,
        &provider,
        base,
        &code,
        &flow.verifier,
    )
    .await?;
    let id_token: Token = tokens
        .id_token
        .parse()
        .map_err(|_| Failure::Refused("sso_token_invalid"))?;
    let first = check_token(
        &id_token,
        settings,
        &provider,
        &flow.nonce,
        &tokens.access_token,
    );
    let payload = match first {
        Err(Failure::Refused("sso_token_unknown_key")) => {
            match refreshed(state, connection, &provider).await? {
                Some(p) => {
                    provider = p;
                    check_token(
                        &id_token,
                        settings,
                        &provider,
                        &flow.nonce,
                        &tokens.access_token,
                    )
                }
                None => Err(Failure::Refused("sso_token_signature")),
            }
        }
        other => other,
    }
    .map_err(|f| match f {
        Failure::Refused("sso_token_unknown_key") => Failure::Refused("sso_token_signature"),
        other => other,
    })?;
    Ok((asserted(settings, &payload)?, flow.return_to))
}

struct Tokens {
    id_token: String,
    access_token: String,
}

/// The authorization code exchanged at the token endpoint.
async fn exchange(
    state: &AppState,
    connection: &SsoConnection,
    settings: &OidcSettings,
    provider: &Provider,
    base: &url::Url,
    code: &str,
    verifier: &str,
) -> Result<Tokens, Failure> {
    let endpoint = provider
        .metadata
        .token_endpoint()
        .ok_or_else(|| FetchError::Invalid("no token endpoint".into()))?
        .url()
        .clone();
    let secret_id = connection
        .secret_id
        .ok_or(Failure::Unavailable("the connection has no secret".into()))?;
    let secret = bulwark_core::vault::use_value(
        &*state.store,
        &*state.clock,
        &*state.vault,
        connection.org,
        secret_id,
        endpoint.as_str(),
        "sso_token_exchange",
    )
    .await
    .map_err(|e| FetchError::Invalid(format!("the connection's secret: {e}")))?;
    let redirect = redirect_uri(base, connection.id);
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier.into()),
    ];
    let mut headers: Vec<(&str, String)> = vec![
        ("content-type", "application/x-www-form-urlencoded".into()),
        ("accept", "application/json".into()),
    ];
    let text = || {
        String::from_utf8(secret.to_vec())
            .map_err(|_| Failure::Unavailable("the client secret is not UTF-8".into()))
    };
    match settings.auth_method {
        AuthMethod::ClientSecretBasic => {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = Zeroizing::new(format!("{}:{}", enc(&settings.client_id), enc(&text()?)));
            headers.push((
                "authorization",
                format!("Basic {}", STANDARD.encode(pair.as_bytes())),
            ));
        }
        AuthMethod::ClientSecretPost => {
            form.push(("client_id", settings.client_id.clone()));
            form.push(("client_secret", text()?));
        }
        AuthMethod::PrivateKeyJwt => {
            form.push(("client_id", settings.client_id.clone()));
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push((
                "client_assertion",
                client_assertion(settings, &secret, endpoint.as_str())?,
            ));
        }
    }
    let body = Zeroizing::new(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish(),
    );
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (answer, _) = state
        .sso
        .egress
        .send(
            reqwest::Method::POST,
            &endpoint,
            &pairs,
            body.as_bytes().to_vec(),
        )
        .await
        .map_err(FetchError::from)?;
    if answer.status == 400 || answer.status == 401 {
        return Err(Failure::Refused("sso_code_rejected"));
    }
    if answer.status != 200 || answer.truncated {
        return Err(
            FetchError::Invalid(format!("the token endpoint answered {}", answer.status)).into(),
        );
    }
    let json: Value = serde_json::from_slice(&answer.body)
        .map_err(|_| FetchError::Invalid("the token answer is not JSON".into()))?;
    let id_token = json
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or(Failure::Refused("sso_token_invalid"))?;
    let access_token = json
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(Tokens {
        id_token: id_token.to_owned(),
        access_token: access_token.to_owned(),
    })
}

/// An ES256 client assertion (RFC 7523) signed with the connection's key.
fn client_assertion(
    settings: &OidcSettings,
    pkcs8: &[u8],
    audience: &str,
) -> Result<String, Failure> {
    let bad = || Failure::Unavailable("the connection's key".into());
    let signer = bulwark_crypto::Es256Signer::from_pkcs8(pkcs8).map_err(|_| bad())?;
    let kid = settings
        .public_jwk
        .as_ref()
        .and_then(|j| j.get("kid"))
        .and_then(Value::as_str)
        .unwrap_or("bulwark");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let claims = serde_json::json!({
        "iss": settings.client_id, "sub": settings.client_id, "aud": audience,
        "jti": super::random_token().map_err(|_| bad())?, "iat": now, "exp": now + 60,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer.sign(signing_input.as_bytes()).map_err(|_| bad())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// A new key pair for `private_key_jwt`: the PKCS#8 document (to seal) and its public JWK.
///
/// # Errors
/// The RNG failed.
pub fn new_key_pair() -> Result<(Zeroizing<Vec<u8>>, Value), CoreError> {
    let (signer, pkcs8) = bulwark_crypto::Es256Signer::generate().map_err(|_| CoreError::Crypto)?;
    let (x, y) = signer.public_xy();
    let kid = super::random_token()?.chars().take(16).collect::<String>();
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    });
    Ok((pkcs8, jwk))
}

fn verifier<'a>(
    settings: &OidcSettings,
    provider: &'a Provider,
) -> Result<IdTokenVerifier<'a, CoreJsonWebKey>, Failure> {
    let issuer = IssuerUrl::new(settings.issuer.clone())
        .map_err(|_| Failure::Refused("sso_token_issuer"))?;
    let now = chrono::Utc::now();
    let skew = chrono::Duration::seconds(SKEW_SECS);
    Ok(IdTokenVerifier::new_public_client(
        ClientId::new(settings.client_id.clone()),
        issuer,
        provider.jwks.clone(),
    )
    .set_allowed_algs(ALGORITHMS)
    // `exp` is checked against this time: up to the allowed skew after it.
    .set_time_fn(move || now - skew)
    .set_issue_time_verifier_fn(move |iat| {
        if iat > now + skew {
            Err("issued in the future".into())
        } else {
            Ok(())
        }
    }))
}

/// The verified token's payload, or the refusal code.
fn check_token(
    token: &Token,
    settings: &OidcSettings,
    provider: &Provider,
    nonce: &str,
    access_token: &str,
) -> Result<serde_json::Map<String, Value>, Failure> {
    use openidconnect::{ClaimsVerificationError as E, SignatureVerificationError as S};
    let verifier = verifier(settings, provider)?;
    let claims = token
        .claims(&verifier, &Nonce::new(nonce.to_owned()))
        .map_err(|e| {
            Failure::Refused(match e {
                E::SignatureVerification(S::NoMatchingKey) => "sso_token_unknown_key",
                E::SignatureVerification(_) => "sso_token_signature",
                E::InvalidIssuer(_) => "sso_token_issuer",
                E::InvalidAudience(_) => "sso_token_audience",
                E::Expired(_) => "sso_token_expired",
                E::InvalidNonce(_) => "sso_nonce_mismatch",
                _ => "sso_token_invalid",
            })
        })?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = token
            .signing_alg()
            .map_err(|_| Failure::Refused("sso_token_signature"))?;
        let key = token
            .signing_key(&verifier)
            .map_err(|_| Failure::Refused("sso_token_signature"))?;
        let actual =
            AccessTokenHash::from_token(&AccessToken::new(access_token.to_owned()), alg, key)
                .map_err(|_| Failure::Refused("sso_at_hash_mismatch"))?;
        if !bulwark_crypto::constant_time_eq(actual.as_bytes(), expected.as_bytes()) {
            return Err(Failure::Refused("sso_at_hash_mismatch"));
        }
    }
    // The payload of the token just verified, for the claims the crate does not model.
    let payload = payload_of(token).ok_or(Failure::Refused("sso_token_invalid"))?;
    let now = chrono::Utc::now().timestamp();
    if payload
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + SKEW_SECS)
    {
        return Err(Failure::Refused("sso_token_expired"));
    }
    let audiences = match payload.get("aud") {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    };
    match payload.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != settings.client_id => {
            return Err(Failure::Refused("sso_token_audience"));
        }
        None if audiences > 1 => return Err(Failure::Refused("sso_token_audience")),
        _ => {}
    }
    Ok(payload)
}

/// The claims of a token whose signature was checked, as JSON (for what the crate does not
/// model: groups, `sid`, `nbf`, `azp`, `events`).
fn payload_of(token: &Token) -> Option<serde_json::Map<String, Value>> {
    let text = token.to_string();
    let part = URL_SAFE_NO_PAD.decode(text.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&part).ok()
}

fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

/// What the provider asserted, from the verified payload.
fn asserted(
    settings: &OidcSettings,
    payload: &serde_json::Map<String, Value>,
) -> Result<Asserted, Failure> {
    let subject = payload
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or(Failure::Refused("sso_token_invalid"))?;
    let email = payload
        .get(&settings.claims.email)
        .and_then(Value::as_str)
        .and_then(|e| e.parse::<Email>().ok());
    let groups = match payload.get(&settings.claims.groups) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .take(1000)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let amr: Vec<&str> = match payload.get("amr") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    Ok(Asserted {
        method: "oidc",
        subject: subject.to_owned(),
        email,
        email_verified: truthy(payload.get("email_verified")),
        groups,
        idp_mfa: amr.iter().any(|m| MFA_AMR.contains(m)),
        sid: payload
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Where to send the browser after signing out of Bulwark.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    /// The provider's end-session URL (RP-initiated logout, with `client_id` and
    /// `post_logout_redirect_uri`), when the session was made through a provider that has one;
    /// absent otherwise.
    pub end_session_url: Option<String>,
}

/// The post-logout redirect URI of every connection: Bulwark's sign-in page.
#[must_use]
pub fn post_logout_uri(base: &url::Url) -> String {
    format!("{}/login", base.as_str().trim_end_matches('/'))
}

/// Signs out of Bulwark (exactly as `POST /v1/auth/logout`) and, when the session was made
/// through an OpenID provider that supports RP-initiated logout, answers where to send the
/// browser so the person is signed out there too.
#[utoipa::path(post, path = "/v1/sso/logout", tag = "sso",
    responses(
        (status = 200, body = LoggedOut, description = "Signed out of Bulwark; the cookies are cleared"),
        (status = 401, body = Problem, description = "`unauthenticated`"),
        (status = 403, body = Problem, description = "`csrf_failed`, `cross_site_request`"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    signed: crate::auth::AnyStage,
) -> Result<Response, ApiError> {
    let through = state
        .store
        .sso_session_connection(signed.0.session.id)
        .await
        .map_err(CoreError::from)?;
    let ended = crate::api::v1::auth::logout(State(state.clone()), signed).await?;
    let end_session_url = match through {
        Some(id) => end_session_url(&state, id).await,
        None => None,
    };
    let mut response = axum::Json(LoggedOut { end_session_url }).into_response();
    for c in ended.headers().get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The provider's end-session URL for a connection, if it has one (best effort: a provider that
/// cannot be reached gives none; the Bulwark session has ended either way).
async fn end_session_url(state: &AppState, id: ConnectionId) -> Option<String> {
    let (connection, settings) = load(state, &id.to_string()).await.ok()?;
    let base = state.config.sso.base()?;
    let provider = provider(state, &connection, &settings).await.ok()?;
    let mut url = provider
        .metadata
        .additional_metadata()
        .end_session_endpoint
        .as_ref()?
        .url()
        .clone();
    url.query_pairs_mut()
        .append_pair("client_id", &settings.client_id)
        .append_pair("post_logout_redirect_uri", &post_logout_uri(&base));
    Some(url.to_string())
}

/// A back-channel logout request.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutForm {
    /// The provider's signed logout token.
    #[schema(max_length = 16384)]
    pub logout_token: String,
}

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// OpenID Connect Back-Channel Logout 1.0: a provider's signed logout token ends the Bulwark
/// sessions made through this connection for its subject (`sub`) and/or provider session
/// (`sid`). Called by the provider, not a browser.
#[utoipa::path(post, path = "/v1/sso/oidc/{connection}/backchannel-logout", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`")),
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The sessions it names have ended (none is fine)"),
        (status = 400, body = Problem, description = "`invalid_request`: not a valid logout token for this connection (bad signature, issuer, audience, type, events, a nonce, no `sub` or `sid`, replayed `jti`)"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 502, body = Problem, description = "`sso_provider_unavailable`"),
    ))]
pub(crate) async fn backchannel_logout(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    AuditContext(context): AuditContext,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (connection, settings) = load(&state, &raw).await?;
    let invalid = |why: &str| {
        tracing::info!(why, "a back-channel logout token was refused");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not a valid logout token for this connection",
        )
    };
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| invalid("no logout_token"))?;
    let token: Token = token.parse().map_err(|_| invalid("not a JWT"))?;
    let mut provider = provider(&state, &connection, &settings)
        .await
        .map_err(|e| unavailable(&e))?;
    let no_nonce = |n: Option<&Nonce>| {
        if n.is_some() {
            Err("a logout token carries no nonce".to_owned())
        } else {
            Ok(())
        }
    };
    let check = |provider: &Provider| -> Result<(), &'static str> {
        let verifier = verifier(&settings, provider).map_err(|_| "issuer")?;
        let types = ["logout+jwt", "JWT"].into_iter().filter_map(|t| {
            openidconnect::JsonWebTokenType::new(t.into())
                .normalize()
                .ok()
        });
        let verifier = verifier.set_allowed_jose_types(types);
        match token.claims(&verifier, no_nonce) {
            Ok(_) => Ok(()),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => Err("unknown key"),
            Err(_) => Err("claims"),
        }
    };
    match check(&provider) {
        Ok(()) => {}
        Err("unknown key") => {
            provider = refreshed(&state, &connection, &provider)
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or_else(|| invalid("unknown key"))?;
            check(&provider).map_err(invalid)?;
        }
        Err(why) => return Err(invalid(why)),
    }
    let payload = payload_of(&token).ok_or_else(|| invalid("payload"))?;
    if !payload
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|e| e.contains_key(LOGOUT_EVENT))
    {
        return Err(invalid("events"));
    }
    let jti = payload
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("jti"))?;
    let sub = payload.get("sub").and_then(Value::as_str);
    let sid = payload.get("sid").and_then(Value::as_str);
    if sub.is_none() && sid.is_none() {
        // Back-Channel Logout 1.0 §2.4: a logout token names a subject, a session, or both.
        return Err(invalid("neither sub nor sid"));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let key = format!(
        "oidc-logout:{}:{}",
        connection.id,
        URL_SAFE_NO_PAD.encode(bulwark_crypto::sha256(jti.as_bytes()))
    );
    let exp = payload
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(now + 600);
    if !state
        .store
        .sso_use_once(&key, (exp + SKEW_SECS) * 1000, now * 1000)
        .await
        .map_err(CoreError::from)?
    {
        return Err(invalid("replayed jti"));
    }
    core_sso::logged_out(&*state.store, &*state.clock, &connection, sub, sid, context).await?;
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Bulwark's public key for a `private_key_jwt` connection (a JWK Set), for the provider.
#[utoipa::path(get, path = "/v1/sso/oidc/{connection}/jwks", tag = "sso",
    params(("connection" = String, Path, description = "`sso_…`")),
    responses(
        (status = 200, description = "A JWK Set with the connection's public key", content_type = "application/json", body = Object),
        (status = 404, body = Problem, description = "`not_found`: no such connection, or it does not use `private_key_jwt`"),
    ))]
pub(crate) async fn jwks(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (_, settings) = load(&state, &raw).await?;
    let jwk = settings.public_jwk.ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(serde_json::json!({ "keys": [jwk] })).into_response())
}

/// Checks that `issuer` may be used: a URL on an allowed provider host, whose discovery
/// document names it exactly.
///
/// # Errors
/// `validation_failed` on `/oidc/issuer`, `sso_provider_unavailable`.
pub async fn check_issuer(state: &AppState, issuer: &str) -> Result<Provider, ApiError> {
    let url = url::Url::parse(issuer)
        .map_err(|_| ApiError::invalid_field("/oidc/issuer", "must be an absolute URL"))?;
    if url.query().is_some() || url.fragment().is_some() || url.host_str().is_none() {
        return Err(ApiError::invalid_field(
            "/oidc/issuer",
            "must be a URL with a host and no query or fragment",
        ));
    }
    if issuer.contains('{') {
        return Err(ApiError::invalid_field(
            "/oidc/issuer",
            "is a template: configure the tenant's own issuer (Entra: https://login.microsoftonline.com/<tenant id>/v2.0)",
        ));
    }
    if state.config.sso.idp_hosts.is_empty() {
        return Err(ApiError::invalid_field(
            "/oidc/issuer",
            "is not an allowed identity-provider host: the operator lists none in `sso.idp_hosts`",
        ));
    }
    if let Err(e) = bulwark_core::egress::check_url(&url, state.sso.egress.policy()) {
        return Err(ApiError::invalid_field(
            "/oidc/issuer",
            format!(
                "is not an allowed identity-provider host ({e}); the operator lists them in `sso.idp_hosts`"
            ),
        ));
    }
    discover(state, issuer).await.map_err(|e| match e {
        FetchError::Invalid(why) => ApiError::invalid_field(
            "/oidc/issuer",
            format!("the provider's discovery document is not usable: {why}"),
        ),
        e @ FetchError::Send(_) => unavailable(&e),
    })
}
