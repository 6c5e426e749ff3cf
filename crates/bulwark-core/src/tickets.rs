//! Pushing a record (an event of the org's audit log) to a ticket tracker: GitHub Issues
//! (`POST /repos/{owner}/{repo}/issues`) or Jira Cloud/Data Center (REST v3
//! `POST /rest/api/3/issue`), authenticated with a vault credential.
//!
//! The operator names the fields that go out; [`prepare`] builds exactly the request that
//! [`crate::vault::use_value`] and the egress client then send, so the preview shows the bytes
//! of the push. Every push, succeeded or failed, is audited (`ticket.pushed`).

use bulwark_audit::event::{Outcome, Payload, Result_};
use bulwark_authz::Action;
use bulwark_types::{Clock, CredentialId};
use serde_json::{Map, Value, json};

use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::ports::Store;
use crate::vault::destination_allowed;
use crate::{CoreError, StoreError};

/// The fields of an event an operator may send.
pub const FIELDS: [&str; 8] = [
    "id", "time", "action", "actor", "resource", "outcome", "data", "context",
];
/// The longest title.
pub const MAX_TITLE_CHARS: usize = 200;

fn invalid(field: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::Validation {
        field,
        message: message.into(),
    }
}

/// Where a ticket goes.
#[derive(Debug, Clone)]
pub enum Tracker {
    /// GitHub Issues.
    GitHub {
        /// `https://api.github.com`, or a GitHub Enterprise Server's `https://host/api/v3`.
        api_url: url::Url,
        /// `owner/repo`.
        repository: String,
    },
    /// Jira (REST v3).
    Jira {
        /// The site, e.g. `https://acme.atlassian.net`.
        site: url::Url,
        /// The project key, e.g. `SEC`.
        project: String,
        /// The issue type name, e.g. `Task`.
        issue_type: String,
    },
}

impl Tracker {
    /// `github` or `jira`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::GitHub { .. } => "github",
            Self::Jira { .. } => "jira",
        }
    }
}

/// What to push.
pub struct TicketRequest {
    /// The tracker.
    pub tracker: Tracker,
    /// The credential that authenticates (`bearer_token`, or `basic_password` holding
    /// `user:token`).
    pub credential: CredentialId,
    /// The record: the sequence number of an event in the org's audit log.
    pub audit_seq: u64,
    /// Which fields of the event go out (at least one).
    pub fields: Vec<String>,
    /// The ticket title; by default `Bulwark audit event <seq>` (with its type when `action`
    /// is a chosen field).
    pub title: Option<String>,
}

/// The request a push sends, all but the credential.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The tracker.
    pub tracker: &'static str,
    /// Where the POST goes.
    pub url: url::Url,
    /// Headers other than `Authorization`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Value,
    /// The credential and how it is sent (`Bearer` or `Basic`).
    pub credential: CredentialId,
    /// `bearer` or `basic`.
    pub auth: &'static str,
    /// `audit:<seq>`.
    pub record: String,
    /// The fields sent.
    pub fields: Vec<String>,
}

fn check_fields(fields: Vec<String>) -> Result<Vec<String>, CoreError> {
    if fields.is_empty() {
        return Err(invalid(
            "/fields",
            format!("name at least one of: {}", FIELDS.join(", ")),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for f in fields {
        if !FIELDS.contains(&f.as_str()) {
            return Err(invalid(
                "/fields",
                format!(
                    "`{}` is not one of: {}",
                    f.chars().take(40).collect::<String>(),
                    FIELDS.join(", ")
                ),
            ));
        }
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

fn check_tracker(t: &Tracker) -> Result<(), CoreError> {
    match t {
        Tracker::GitHub {
            api_url,
            repository,
        } => {
            let ok_part = |s: &str| {
                !s.is_empty()
                    && s.len() <= 100
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    && s != "."
                    && s != ".."
            };
            let valid = repository
                .split_once('/')
                .is_some_and(|(owner, repo)| ok_part(owner) && ok_part(repo));
            if !valid {
                return Err(invalid("/repository", "must be `owner/repo`"));
            }
            check_base("/api_url", api_url)
        }
        Tracker::Jira {
            site,
            project,
            issue_type,
        } => {
            if project.is_empty()
                || project.len() > 50
                || !project
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid(
                    "/project",
                    "must be a Jira project key such as `SEC`",
                ));
            }
            let n = issue_type.chars().count();
            if n == 0 || n > 60 || issue_type.chars().any(char::is_control) {
                return Err(invalid("/issue_type", "must be 1 to 60 characters"));
            }
            check_base("/site", site)
        }
    }
}

fn check_base(field: &'static str, url: &url::Url) -> Result<(), CoreError> {
    if !matches!(url.scheme(), "https" | "http")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            field,
            "must be an https URL (http where the deployment allows it) without credentials, query or fragment",
        ));
    }
    Ok(())
}

/// `base` with `path` appended (keeping any path `base` has, e.g. `/api/v3`).
fn join(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let joined = format!("{}{path}", base.path().trim_end_matches('/'));
    u.set_path(&joined);
    u
}

/// The chosen fields of the event, in the order of [`FIELDS`].
fn chosen(event: &Value, fields: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for f in FIELDS.iter().filter(|f| fields.iter().any(|x| x == *f)) {
        let v = event.get(*f).cloned().unwrap_or(Value::Null);
        out.insert((*f).to_owned(), v);
    }
    out
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds the push for `req` without opening the credential: checks the tracker, the fields,
/// the event (it must exist with its body), and that the credential exists, has a kind that
/// authenticates and may be sent to the tracker.
///
/// # Errors
/// `Validation`, `NotFound` (event or credential), `State` (a pruned event), storage
/// failures.
pub async fn prepare(
    store: &dyn Store,
    authorized: &Authorized,
    req: TicketRequest,
) -> Result<Prepared, CoreError> {
    let org = authorized.org_for(Action::TicketsPush)?;
    check_tracker(&req.tracker)?;
    let fields = check_fields(req.fields)?;
    if let Some(t) = &req.title {
        let n = t.chars().count();
        if n == 0 || n > MAX_TITLE_CHARS || t.chars().any(char::is_control) {
            return Err(invalid(
                "/title",
                format!("must be 1 to {MAX_TITLE_CHARS} characters, without control characters"),
            ));
        }
    }
    let mut read = store.org_read(org).await?;
    let row = read
        .audit_events(req.audit_seq, 1)
        .await?
        .into_iter()
        .find(|r| r.seq == req.audit_seq)
        .ok_or(CoreError::NotFound)?;
    let body = row.body.ok_or(CoreError::State(
        "the event's body was pruned by the audit retention; only its hash is kept",
    ))?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|_| CoreError::Store(StoreError::Corrupt("audit event body".into())))?;
    let credential = read
        .credential(req.credential)
        .await?
        .ok_or(CoreError::NotFound)?;
    let auth = match credential.kind.as_str() {
        "bearer_token" => "bearer",
        "basic_password" => "basic",
        _ => {
            return Err(invalid(
                "/credential_id",
                "must be a `bearer_token` or `basic_password` (`user:token`) credential",
            ));
        }
    };
    let picked = chosen(&event, &fields);
    let title = req.title.unwrap_or_else(|| match picked.get("action") {
        Some(a) => format!("Bulwark audit event {}: {}", req.audit_seq, text_of(a)),
        None => format!("Bulwark audit event {}", req.audit_seq),
    });
    let (url, headers, body) = match &req.tracker {
        Tracker::GitHub {
            api_url,
            repository,
        } => {
            let mut text = String::from("Pushed from Bulwark's audit log.\n\n");
            for (k, v) in &picked {
                text.push_str(&format!("- **{k}**: `{}`\n", text_of(v).replace('`', "'")));
            }
            (
                join(api_url, &format!("/repos/{repository}/issues")),
                vec![
                    ("accept", "application/vnd.github+json".to_owned()),
                    ("x-github-api-version", "2022-11-28".to_owned()),
                ],
                json!({"title": title, "body": text, "labels": ["bulwark"]}),
            )
        }
        Tracker::Jira {
            site,
            project,
            issue_type,
        } => {
            let mut content = vec![json!({"type": "paragraph", "content": [
                {"type": "text", "text": "Pushed from Bulwark's audit log."}
            ]})];
            for (k, v) in &picked {
                content.push(json!({"type": "paragraph", "content": [
                    {"type": "text", "text": format!("{k}: "), "marks": [{"type": "strong"}]},
                    {"type": "text", "text": text_of(v), "marks": [{"type": "code"}]}
                ]}));
            }
            (
                join(site, "/rest/api/3/issue"),
                vec![("accept", "application/json".to_owned())],
                json!({"fields": {
                    "project": {"key": project},
                    "summary": title,
                    "issuetype": {"name": issue_type},
                    "description": {"type": "doc", "version": 1, "content": content},
                    "labels": ["bulwark"],
                }}),
            )
        }
    };
    if !destination_allowed(&credential.destinations, url.as_str()) {
        return Err(invalid(
            "/credential_id",
            "the credential may not be sent to this tracker: add its URL to the credential's destinations",
        ));
    }
    let mut headers = headers;
    headers.push(("content-type", "application/json".to_owned()));
    headers.push(("user-agent", "Bulwark-Tickets/1".to_owned()));
    Ok(Prepared {
        tracker: req.tracker.name(),
        url,
        headers,
        body,
        credential: req.credential,
        auth,
        record: format!("audit:{}", req.audit_seq),
        fields,
    })
}

/// What the tracker answered, reduced to what the audit log and the caller see.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// Created: the ticket's key (`#12`, `SEC-7`) and web URL.
    Created {
        /// `#<number>` or the Jira key.
        key: String,
        /// Where to see it.
        url: Option<String>,
    },
    /// Refused or unreachable: a reason code for the log.
    Failed(&'static str),
}

/// Reads a tracker's answer to a create.
#[must_use]
pub fn read_answer(p: &Prepared, status: u16, body: &[u8]) -> Pushed {
    if !(200..300).contains(&status) {
        return Pushed::Failed(match status {
            401 | 403 => "tracker_unauthorized",
            404 => "tracker_not_found",
            400 | 422 => "tracker_rejected_request",
            429 => "tracker_rate_limited",
            _ => "tracker_error",
        });
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Pushed::Failed("tracker_answer_unreadable");
    };
    match p.tracker {
        "github" => match v.get("number").and_then(Value::as_u64) {
            Some(n) => Pushed::Created {
                key: format!("#{n}"),
                url: v
                    .get("html_url")
                    .and_then(Value::as_str)
                    .and_then(|u| web_link(u, &p.url)),
            },
            None => Pushed::Failed("tracker_answer_unreadable"),
        },
        _ => match v.get("key").and_then(Value::as_str) {
            Some(key) => {
                let mut site = p.url.clone();
                site.set_path(&format!(
                    "{}/browse/{key}",
                    p.url.path().trim_end_matches("/rest/api/3/issue")
                ));
                Pushed::Created {
                    key: key.to_owned(),
                    url: Some(site.to_string()),
                }
            }
            None => Pushed::Failed("tracker_answer_unreadable"),
        },
    }
}

/// A tracker-supplied link kept only when it is an absolute `https:` URL with a host (`http:`
/// too when the tracker itself is reached over `http:`), so that a tracker's answer can never
/// put a `javascript:` or `data:` URL into the console's link.
fn web_link(link: &str, tracker: &url::Url) -> Option<String> {
    let parsed = url::Url::parse(link).ok()?;
    let scheme_ok =
        parsed.scheme() == "https" || (parsed.scheme() == "http" && tracker.scheme() == "http");
    (scheme_ok && parsed.host_str().is_some_and(|h| !h.is_empty())).then(|| parsed.to_string())
}

/// Records a push (`ticket.pushed`), its outcome a success with the ticket key or a failure
/// with the reason.
///
/// # Errors
/// Storage failures.
pub async fn record(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    p: &Prepared,
    outcome: &Pushed,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::TicketsPush)?;
    let (ticket, failure) = match outcome {
        Pushed::Created { key, .. } => (Some(key.clone()), None),
        Pushed::Failed(reason) => (None, Some(*reason)),
    };
    let mut destination = p.url.clone();
    destination.set_query(None);
    let payload = Payload::TicketPushed {
        tracker: p.tracker.into(),
        destination: destination.to_string(),
        record: p.record.clone(),
        fields: p.fields.clone(),
        ticket,
    };
    let mut draft = Draft::success(payload, "ticket", p.record.clone(), authorized.context());
    if let Some(reason) = failure {
        draft.outcome = Outcome {
            result: Result_::Failure,
            reason: Some(reason.into()),
        };
    }
    let mut tx = store.org(org).await?;
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ASVS V1.2.2: the link the console shows comes from the tracker's answer; only http(s)
    /// URLs with a host survive, whatever the tracker answers.
    #[test]
    fn a_tracker_answer_cannot_smuggle_a_script_url_into_the_link() {
        let api = url::Url::parse("https://api.github.com/repos/a/b/issues").unwrap();
        for evil in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(document.cookie)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "//evil.example/x",
            "http://github.com/a/b/issues/1",
            "",
        ] {
            assert_eq!(web_link(evil, &api), None, "{evil}");
        }
        assert_eq!(
            web_link("https://github.com/a/b/issues/1", &api).as_deref(),
            Some("https://github.com/a/b/issues/1")
        );
        let local = url::Url::parse("http://127.0.0.1:9000/repos/a/b/issues").unwrap();
        assert!(web_link("http://127.0.0.1:9000/a/b/issues/1", &local).is_some());
        assert_eq!(web_link("javascript:alert(1)", &local), None);
    }

    #[test]
    fn paths_join_under_the_base() {
        let base = url::Url::parse("https://ghe.example.com/api/v3/").unwrap();
        assert_eq!(
            join(&base, "/repos/a/b/issues").as_str(),
            "https://ghe.example.com/api/v3/repos/a/b/issues"
        );
        let site = url::Url::parse("https://acme.atlassian.net").unwrap();
        assert_eq!(
            join(&site, "/rest/api/3/issue").as_str(),
            "https://acme.atlassian.net/rest/api/3/issue"
        );
    }

    #[test]
    fn only_chosen_fields_go_out() {
        let event = json!({"id": "evt_1", "action": "a.b", "context": {"ip": "10.0.0.1"}, "data": {"x": 1}});
        let picked = chosen(&event, &["data".into(), "action".into()]);
        assert_eq!(picked.keys().collect::<Vec<_>>(), ["action", "data"]);
        assert!(check_fields(vec!["password".into()]).is_err());
        assert!(check_fields(vec![]).is_err());
    }

    #[test]
    fn tracker_settings_are_checked() {
        let gh = |repo: &str| Tracker::GitHub {
            api_url: url::Url::parse("https://api.github.com").unwrap(),
            repository: repo.into(),
        };
        assert!(check_tracker(&gh("acme/security")).is_ok());
        for bad in ["acme", "acme/", "/x", "a/b/c", "a/..", "a/b?c", "a b/c"] {
            assert!(check_tracker(&gh(bad)).is_err(), "{bad}");
        }
        let jira = |p: &str| Tracker::Jira {
            site: url::Url::parse("https://acme.atlassian.net").unwrap(),
            project: p.into(),
            issue_type: "Task".into(),
        };
        assert!(check_tracker(&jira("SEC")).is_ok());
        assert!(check_tracker(&jira("sec")).is_err());
    }
}
