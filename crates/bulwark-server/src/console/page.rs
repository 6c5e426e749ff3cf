//! What every console page shares: the frame around it (who is signed in, the org switcher, the
//! navigation, the CSRF token for its forms), form parsing with clear errors, short notices
//! after a redirect, and the page that keeps a form whose session ended.

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use bulwark_core::authz::Authorized;
use bulwark_types::{OrgId, Role};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::auth::{self as authn, Signed};
use crate::decide;
use crate::error::ApiError;
use crate::state::AppState;

/// An org in the switcher.
pub struct OrgLink {
    /// `org_…`
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// The signed-in user's role there.
    pub role: Role,
}

/// The frame of a signed-in page.
pub struct Chrome {
    /// The signed-in user's email.
    pub email: String,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
    /// Every org the user belongs to.
    pub orgs: Vec<OrgLink>,
    /// The org this page is about, if any.
    pub org: Option<OrgLink>,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// A notice to show (from a fixed list: never text from the request).
    pub notice: &'static str,
    /// The server runs in development mode (`[server] mode`): every page says so.
    pub development: bool,
}

impl Chrome {
    /// The frame for `signed`, on a page about `org` (already decided by the page's extractor).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn new(
        state: &AppState,
        signed: &Signed,
        org: Option<OrgId>,
        nav: &'static str,
    ) -> Result<Self, ApiError> {
        let me = decide::account(state, signed)?;
        let orgs: Vec<OrgLink> = bulwark_core::account::orgs(&*state.store, &me)
            .await?
            .into_iter()
            .map(|(o, role)| OrgLink {
                id: o.id,
                name: o.name.to_string(),
                role,
            })
            .collect();
        let org = org.and_then(|id| {
            orgs.iter().find(|o| o.id == id).map(|o| OrgLink {
                id: o.id,
                name: o.name.clone(),
                role: o.role,
            })
        });
        Ok(Self {
            email: signed.session.email.to_string(),
            csrf: authn::csrf_token(&state.macs, &signed.session),
            orgs,
            org,
            nav,
            notice: "",
            development: state.config.server.mode() == crate::config::Mode::Development,
        })
    }

    /// With the notice named `code` (see [`notice_text`]).
    #[must_use]
    pub fn with_notice(mut self, code: Option<&str>) -> Self {
        self.notice = code.map(notice_text).unwrap_or_default();
        self
    }

    /// The org's id as text (empty without one), for links.
    #[must_use]
    pub fn org_id(&self) -> String {
        self.org
            .as_ref()
            .map(|o| o.id.to_string())
            .unwrap_or_default()
    }

    /// Whether the user's role in this page's org is one of `roles` (for hiding controls the
    /// decision would refuse anyway; the decision is what enforces).
    #[must_use]
    pub fn role_in(&self, roles: &[&str]) -> bool {
        self.org
            .as_ref()
            .is_some_and(|o| roles.contains(&o.role.as_str()))
    }
}

/// The text of a notice shown after a redirect (`?done=<code>`); unknown codes show nothing.
#[must_use]
pub fn notice_text(code: &str) -> &'static str {
    match code {
        "signed_out" => "You are signed out.",
        "invited" => "Invitation sent.",
        "role_changed" => "Role changed.",
        "member_removed" => "Member removed; their sessions in this org ended.",
        "team_created" => "Team created.",
        "team_deleted" => "Team deleted.",
        "team_changed" => "Team membership changed.",
        "policies_saved" => "Policies saved.",
        "key_revoked" => "Key revoked. Calls with it now fail.",
        "credential_saved" => "Credential saved. Its value is sealed and will not be shown.",
        "credential_deleted" => "Credential deleted.",
        "endpoint_deleted" => "Endpoint deleted.",
        "endpoint_saved" => "Endpoint saved.",
        "resent" => "Delivery queued again.",
        "replayed" => "Messages queued again for this endpoint.",
        "license_activated" => "License activated.",
        "session_revoked" => "Session revoked.",
        "sessions_revoked" => "Every other session is signed out.",
        "password_changed" => "Password changed; your other sessions were signed out.",
        "mfa_removed" => "Authenticator removed and every session signed out. Sign in again.",
        "retention_saved" => "Retention saved.",
        "invitation_revoked" => "Invitation revoked.",
        "org_policy_saved" => "Sign-in rules saved.",
        "password_reset" => "Password changed. Sign in with the new one.",
        "reset_sent" => "If that address has an account, a reset link is on its way.",
        "email_verified" => "Email address verified.",
        "setup_done" => "Setup is complete. Sign in as the owner.",
        "invitation_accepted" => "Invitation accepted. Sign in to continue.",
        _ => "",
    }
}

/// Renders `page` as an HTML response.
pub fn html(page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => ApiError::internal(format!("template: {e}")).into_response(),
    }
}

/// Renders `page` with `status`.
pub fn html_status(status: StatusCode, page: &impl Template) -> Response {
    let mut res = html(page);
    if res.status() == StatusCode::OK {
        *res.status_mut() = status;
    }
    res
}

/// A `303 See Other` to `to` (after a form post).
#[must_use]
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A console form: parsed from `application/x-www-form-urlencoded` into `T`; a missing,
/// duplicated or malformed field is a 422 naming it, a body of another type a 415.
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the form as application/x-www-form-urlencoded",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the form is larger than the configured limit",
                )
            })?;
        if !decodes_as_utf8(&bytes) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_form",
                "the form is not valid UTF-8",
            ));
        }
        serde_urlencoded_from(&bytes).map(Self)
    }
}

/// Whether every name and value of a form decodes (`+` and `%XX`) to valid UTF-8: the form
/// parser would otherwise replace bad bytes silently.
fn decodes_as_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&').all(|pair| {
        pair.split(|b| *b == b'=').all(|part| {
            let mut out = Vec::with_capacity(part.len());
            let mut bytes = part.iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'+' => out.push(b' '),
                    b'%' => {
                        let rest = bytes.as_slice();
                        let byte = rest
                            .get(..2)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok());
                        match byte {
                            Some(byte) => {
                                out.push(byte);
                                bytes.nth(1);
                            }
                            None => out.push(b'%'),
                        }
                    }
                    b => out.push(b),
                }
            }
            std::str::from_utf8(&out).is_ok()
        })
    })
}

fn serde_urlencoded_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        let reason: String = e.to_string().chars().take(200).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_form",
            format!("the form is not valid: {reason}"),
        )
    })
}

/// Reads the stable code of a problem answer and gives the answer back unchanged.
pub async fn peek_code(res: Response) -> (Response, String) {
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_default();
    (Response::from_parts(parts, Body::from(bytes)), code)
}

/// The sign-in page shown in place of a form whose session had ended.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Where to go after signing in.
    pub next: String,
    /// The email to prefill.
    pub email: String,
    /// An error to show.
    pub error: &'static str,
    /// A notice to show.
    pub notice: &'static str,
    /// The form to offer again after signing in: its action and fields (no secrets).
    pub resume_action: String,
    /// The kept fields.
    pub kept: Vec<(String, String)>,
}

/// 401 with the sign-in page that keeps the form posted to `action`.
#[must_use]
pub fn session_expired(action: &str, kept: Vec<(String, String)>) -> Response {
    let page = LoginPage {
        next: String::new(),
        email: String::new(),
        error: "Your session ended before the form was sent; nothing was changed. Sign in again to send it.",
        notice: "",
        resume_action: crate::console::errors::safe_next(action)
            .unwrap_or_default()
            .to_owned(),
        kept,
    };
    let mut res = html_status(StatusCode::UNAUTHORIZED, &page);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A time as the console shows it: UTC text that the script turns into the browser's locale,
/// with the UTC value on hover.
pub struct When(pub OffsetDateTime);

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

impl When {
    /// RFC 3339, for the `datetime` attribute.
    #[must_use]
    pub fn iso(&self) -> String {
        self.0
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// The decision for a page section that not every role may see: `None` when refused.
///
/// # Errors
/// Storage failures.
pub async fn may(
    state: &AppState,
    signed: &Signed,
    org: OrgId,
    action: bulwark_authz::Action,
) -> Result<Option<Authorized>, ApiError> {
    match decide::org(state, signed, org, action, bulwark_core::authz::Target::Org).await {
        Ok(a) => Ok(Some(a)),
        Err(e) if e.status() == StatusCode::FORBIDDEN => Ok(None),
        Err(e) => Err(e),
    }
}
