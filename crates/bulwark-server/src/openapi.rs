//! The API description: what each handler's `utoipa` attribute says, completed with what every
//! operation shares because the request path gives it, so that no attribute can forget it.
//!
//! - Security: the session cookie (with the CSRF header on every method but `GET`, `HEAD` and
//!   `OPTIONS`) on every route outside [`decide::PUBLIC`]; a handler that also takes an API key
//!   (`auth::Caller`) or only a key (`auth::KeyOnly`) says so in its own `security(…)`. The
//!   router walk checks both against the server's answers.
//! - Errors: every error body is `application/problem+json` with the `Problem` schema.
//! - Statuses the shared path can answer, whatever the handler: 400 (malformed request, body
//!   or query), 401 and 403 (session, CSRF, policy, MFA, read-only mode), 404 (a path id that
//!   does not name a resource the caller may see), 408, 413, 415 and 422 (a body that is late,
//!   too large, not JSON, or not valid), 429 (an API key's rate limit or the wrong-key
//!   throttle), 500 and 503 (the database unreachable). A handler declares what only it
//!   answers (409, 410, 502, …).
//! - Input rules the derive cannot state ([`rules`]): the shared plain-text rule of names and
//!   the closed lists the code keeps as constants (roles, scopes, kinds), taken from those
//!   constants so that the description follows the code.

use bulwark_core::model::{MfaRequirement, SignatureScheme};
use bulwark_types::{CredentialId, OrgId, PLAIN_TEXT_PATTERN, Role, TeamId};
use serde_json::{Map, Value, json};

use crate::auth::SESSION_COOKIE;
use crate::decide::PUBLIC;
use crate::error::PROBLEM_JSON;

/// Operations that never read the database (no 503).
const NO_STORE: &[&str] = &["/healthz", "/v1/openapi.json", "/.well-known/security.txt"];

/// Methods that change nothing, and so need no CSRF token.
const SAFE: &[&str] = &["get", "head", "options"];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Completes the generated document in place (see the module docs).
pub fn complete(doc: &mut Value) {
    schemes(doc);
    for (schema, property, keywords) in rules() {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        if let Some(target) = doc.pointer_mut(&pointer) {
            merge(target, keywords);
        }
    }
    for (schema, keywords) in schema_rules() {
        if let Some(target) = doc.pointer_mut(&format!("/components/schemas/{schema}")) {
            merge(target, keywords);
        }
    }
    for (path, name, keywords) in parameter_rules() {
        let Some(params) = doc
            .pointer_mut(&format!("/paths/{}/get/parameters", escape(path)))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["name"] == name) {
            if let Some(schema) = param.get_mut("schema") {
                merge(schema, keywords.clone());
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Some(op) = op.as_object_mut() {
                operation(path, method, op);
            }
        }
    }
}

/// `(component schema, property, JSON Schema keywords)`; keywords under `items` go to the
/// array's items. A test checks that every entry names a property of the document.
fn rules() -> Vec<(&'static str, &'static str, Value)> {
    let plain =
        |max: usize| json!({"minLength": 1, "maxLength": max, "pattern": PLAIN_TEXT_PATTERN});
    let roles = [Role::Owner, Role::Admin, Role::Member, Role::Auditor].map(Role::as_str);
    let mfa = [
        MfaRequirement::None,
        MfaRequirement::Owners,
        MfaRequirement::OwnersAdmins,
        MfaRequirement::Everyone,
    ]
    .map(MfaRequirement::as_str);
    let slug = json!({"minLength": 3, "maxLength": 63, "pattern": "^[a-z](?:-?[a-z0-9])+$"});
    let schemes = [SignatureScheme::Standard, SignatureScheme::Stripe].map(SignatureScheme::as_str);
    let schemes = json!({"enum": schemes});
    // Free text: no control character but the line feed.
    let description = json!({"pattern": "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$"});
    vec![
        ("TeamIn", "name", plain(bulwark_core::access::TEAM_NAME_MAX)),
        ("KeyIn", "name", plain(100)),
        ("KeyIn", "team", id_pattern(TeamId::PREFIX)),
        (
            "KeyIn",
            "scopes",
            json!({"items": {"enum": bulwark_core::apikeys::SCOPES}}),
        ),
        ("SpaceKeyIn", "owner", plain(200)),
        ("SpaceKeyIn", "name", plain(100)),
        (
            "SpaceKeyIn",
            "scopes",
            json!({"items": {"pattern": "^[a-z0-9:._-]{1,64}$"}}),
        ),
        ("CredentialIn", "name", plain(100)),
        (
            "CredentialIn",
            "kind",
            json!({"enum": bulwark_core::vault::KINDS}),
        ),
        (
            "CredentialIn",
            "destinations",
            json!({"items": {"format": "uri", "maxLength": bulwark_core::vault::MAX_DESTINATION_LEN}}),
        ),
        ("NewOrgIn", "name", plain(200)),
        ("NewOrgIn", "slug", slug.clone()),
        ("SetupOrgIn", "name", plain(200)),
        ("SetupOrgIn", "slug", slug),
        ("RoleIn", "role", json!({"enum": roles})),
        ("InviteIn", "role", json!({"enum": roles})),
        ("PolicyBody", "mfa_required", json!({"enum": mfa})),
        ("TicketIn", "tracker", json!({"enum": ["github", "jira"]})),
        (
            "TicketIn",
            "fields",
            json!({"items": {"enum": bulwark_core::tickets::FIELDS}}),
        ),
        (
            "TicketIn",
            "credential_id",
            id_pattern(CredentialId::PREFIX),
        ),
        ("TicketIn", "api_url", json!({"format": "uri"})),
        ("TicketIn", "site", json!({"format": "uri"})),
        ("EndpointIn", "url", json!({"format": "uri"})),
        ("EndpointPatchIn", "url", json!({"format": "uri"})),
        ("EndpointIn", "scheme", schemes.clone()),
        ("EndpointIn", "description", description.clone()),
        ("EndpointPatchIn", "scheme", schemes),
        ("EndpointPatchIn", "description", description),
        ("ConnectionIn", "name", plain(100)),
        ("ConnectionPatch", "name", plain(100)),
        ("OidcIn", "client_id", plain(255)),
        ("ConnectionPatch", "client_id", plain(255)),
        ("OidcIn", "issuer", json!({"format": "uri"})),
        ("ConnectionPatch", "issuer", json!({"format": "uri"})),
        (
            "OidcIn",
            "scopes",
            json!({"items": {"pattern": "^[!#-\\[\\]-~]{1,100}$"}}),
        ),
        (
            "ConnectionPatch",
            "scopes",
            json!({"items": {"pattern": "^[!#-\\[\\]-~]{1,100}$"}}),
        ),
        ("ClaimNames", "email", plain(100)),
        ("ClaimNames", "groups", plain(100)),
        ("DomainVerifyIn", "org", id_pattern(OrgId::PREFIX)),
        ("SamlIn", "sp_entity_id", plain(1024)),
        ("SamlPatch", "sp_entity_id", plain(1024)),
        ("SamlIn", "metadata_url", json!({"format": "uri"})),
        ("SamlPatch", "metadata_url", json!({"format": "uri"})),
        ("SamlIn", "mfa_contexts", json!({"items": plain(256)})),
        ("SamlPatch", "mfa_contexts", json!({"items": plain(256)})),
        ("AttributeNames", "email", plain(256)),
        ("AttributeNames", "groups", plain(256)),
        (
            "SettingsBody",
            "admin_emails",
            json!({"items": {"format": "email", "maxLength": 254}}),
        ),
    ]
}

/// `(component schema, JSON Schema keywords)` for rules across properties.
fn schema_rules() -> Vec<(&'static str, Value)> {
    // Exactly one of two optional properties present and not null.
    let given = |a: &str| json!({"required": [a], "properties": {a: {"not": {"type": "null"}}}});
    let one_of = |a: &str, b: &str| json!({"oneOf": [given(a), given(b)]});
    vec![
        ("ConnectionIn", one_of("oidc", "saml")),
        ("SamlIn", one_of("metadata_xml", "metadata_url")),
        (
            "SamlPatch",
            json!({"not": {"allOf": [given("metadata_xml"), given("metadata_url")]}}),
        ),
    ]
}

/// `(path of a GET operation, query parameter, JSON Schema keywords)`.
fn parameter_rules() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "/v1/orgs/{org}/audit/events",
            "outcome",
            json!({"enum": ["success", "failure"]}),
        ),
        (
            "/v1/orgs/{org}/audit/export",
            "format",
            json!({"enum": ["jsonl", "cloudevents"]}),
        ),
        ("/v1/orgs/{org}/keys", "team", id_pattern(TeamId::PREFIX)),
        ("/v1/auth/session", "org", id_pattern(OrgId::PREFIX)),
    ]
}

/// The form of a prefixed id (`team_` and 32 lowercase hex digits), as `bulwark_types` parses it.
fn id_pattern(prefix: &str) -> Value {
    json!({"pattern": format!("^{prefix}_[0-9a-f]{{32}}$")})
}

/// A JSON Pointer token for a path (`/` is `~1`).
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

/// Merges `keywords` into `schema`: `items` into the array's items; an `enum` of an `Option`
/// field (`"type": ["string", "null"]`) keeps `null` allowed.
fn merge(schema: &mut Value, keywords: Value) {
    let Value::Object(keywords) = keywords else {
        return;
    };
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "null"));
    let Some(target) = schema.as_object_mut() else {
        return;
    };
    for (key, mut value) in keywords {
        if key == "items" {
            let items = target.entry("items").or_insert_with(|| json!({}));
            merge(items, value);
            continue;
        }
        if key == "enum"
            && nullable
            && let Some(values) = value.as_array_mut()
        {
            values.push(Value::Null);
        }
        target.insert(key, value);
    }
}

fn schemes(doc: &mut Value) {
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    let components = root
        .entry("components")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(components) = components else {
        return;
    };
    components.insert(
        "securitySchemes".into(),
        json!({
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": SESSION_COOKIE,
                "description": "The session cookie set by `POST /v1/auth/login` (HttpOnly, Secure, SameSite=Lax)."
            },
            "csrf": {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRF-Token",
                "description": "The session's CSRF token (the `csrf_token` of the sign-in answer, also in the `__Host-bulwark_csrf` cookie); required with the session cookie on every method but GET, HEAD and OPTIONS."
            },
            "api_key": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "bwk_…",
                "description": "An org API key (`Authorization: Bearer bwk_…`), on the operations that list it; never together with a session cookie."
            }
        }),
    );
}

fn operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    let public = PUBLIC.contains(&path);
    let has_body = op.contains_key("requestBody");
    let has_path_params = path.contains('{');
    let has_query = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let takes_key = security(public, method, op);

    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for response in responses.values_mut() {
        problem_media_type(response);
    }
    let mut bad_request = vec!["`bad_request` (the request is malformed)"];
    if has_body {
        bad_request.push("`malformed_json`, `unreadable_body`");
    }
    if has_query {
        bad_request.push("`invalid_query`");
    }
    if takes_key {
        bad_request.push("`ambiguous_credentials` (a key and a session cookie)");
    }
    add(responses, "400", &bad_request.join("; "));
    if !public {
        let mut who = "`unauthenticated`: no valid session".to_owned();
        if takes_key {
            who.push_str("; `invalid_api_key`, `api_key_required`");
        }
        add(responses, "401", &who);
        add(
            responses,
            "403",
            "`forbidden` (policy), `mfa_required`, `mfa_enrollment_required`, `sso_required`, `csrf_failed`, `cross_site`, `read_only`",
        );
    } else if has_body {
        add(responses, "403", "`cross_site`: a cross-site request");
    }
    if has_path_params {
        add(
            responses,
            "404",
            "`not_found`: no such resource, or not one the caller may see",
        );
    }
    if has_body {
        add(
            responses,
            "408",
            "`request_timeout`: the body came too slowly",
        );
        add(responses, "413", "`payload_too_large`: over the body limit");
        add(
            responses,
            "415",
            "`unsupported_media_type`: send `Content-Type: application/json`",
        );
        add(
            responses,
            "422",
            "`validation_failed`: a field breaks the schema (`errors` names it)",
        );
    }
    if takes_key {
        add(
            responses,
            "429",
            "`rate_limited` (the key's or its org's rate), `too_many_attempts` (wrong keys from this address)",
        );
    }
    add(responses, "500", "`internal_error`");
    if !NO_STORE.contains(&path) {
        add(responses, "503", "`database_unavailable`: retry later");
    }
    for (status, response) in responses.iter_mut() {
        if status == "429" {
            retry_after(response);
        }
    }
}

/// Sets the operation's security requirements and says whether it takes an API key.
fn security(public: bool, method: &str, op: &mut Map<String, Value>) -> bool {
    if public {
        op.remove("security");
        return false;
    }
    let mut requirements = op
        .remove("security")
        .and_then(|s| s.as_array().cloned())
        .unwrap_or_else(|| vec![json!({"session": []})]);
    let changes = !SAFE.contains(&method);
    let mut takes_key = false;
    for requirement in &mut requirements {
        let Some(requirement) = requirement.as_object_mut() else {
            continue;
        };
        takes_key |= requirement.contains_key("api_key");
        if changes && requirement.contains_key("session") {
            requirement.insert("csrf".into(), json!([]));
        }
    }
    op.insert("security".into(), Value::Array(requirements));
    takes_key
}

/// A `Problem` body is served as `application/problem+json`.
fn problem_media_type(response: &mut Value) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let is_problem = |v: &Value| {
        v.pointer("/schema/$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("/Problem"))
    };
    if let Some(media) = content.remove("application/json") {
        let key = if is_problem(&media) {
            PROBLEM_JSON
        } else {
            "application/json"
        };
        content.insert(key.into(), media);
    }
}

fn add(responses: &mut Map<String, Value>, status: &str, description: &str) {
    responses.entry(status).or_insert_with(|| {
        json!({
            "description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        })
    });
}

fn retry_after(response: &mut Value) {
    if let Some(r) = response.as_object_mut() {
        let headers = r.entry("headers").or_insert_with(|| json!({}));
        if let Some(h) = headers.as_object_mut() {
            h.entry("Retry-After").or_insert_with(|| {
                json!({
                    "description": "Seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 1}
                })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_str(&crate::openapi_json()).unwrap()
    }

    #[test]
    fn every_input_rule_names_a_property_of_the_document() {
        let doc = doc();
        for (schema, property, keywords) in rules() {
            let target = doc
                .pointer(&format!(
                    "/components/schemas/{schema}/properties/{property}"
                ))
                .unwrap_or_else(|| panic!("{schema}.{property} is not in the document"));
            for key in keywords.as_object().unwrap().keys() {
                let found = if key == "items" {
                    target.get("items")
                } else {
                    target.get(key)
                };
                assert!(
                    found.is_some(),
                    "{schema}.{property}: {key} not applied: {target}"
                );
            }
        }
        for (path, name, _) in parameter_rules() {
            let params = doc
                .pointer(&format!("/paths/{}/get/parameters", escape(path)))
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("GET {path} has no parameters"));
            assert!(
                params.iter().any(|p| p["name"] == name),
                "GET {path} ?{name}"
            );
        }
    }

    #[test]
    fn every_error_body_is_a_problem_and_every_problem_is_problem_json() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    let Some(content) = response.get("content").and_then(Value::as_object) else {
                        continue;
                    };
                    let problem = content.contains_key(PROBLEM_JSON);
                    if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                        assert!(problem, "{method} {path} {status} is not a problem");
                    }
                    assert!(
                        !content
                            .get("application/json")
                            .and_then(|m| m.pointer("/schema/$ref"))
                            .and_then(Value::as_str)
                            .is_some_and(|r| r.ends_with("/Problem")),
                        "{method} {path} {status}: a Problem declared as application/json"
                    );
                }
            }
        }
    }

    #[test]
    fn every_protected_operation_names_the_session_and_changes_need_the_csrf_header() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let security = op.get("security").and_then(Value::as_array);
                if PUBLIC.contains(&path.as_str()) {
                    assert!(security.is_none(), "{method} {path} is public");
                    continue;
                }
                let security = security.unwrap_or_else(|| panic!("{method} {path}"));
                assert!(!security.is_empty(), "{method} {path}");
                for requirement in security {
                    let session = requirement.get("session").is_some();
                    let csrf = requirement.get("csrf").is_some();
                    assert_eq!(
                        csrf,
                        session && !SAFE.contains(&method.as_str()),
                        "{method} {path}: {requirement}"
                    );
                }
            }
        }
    }
}
