//! Schemathesis (PyPI), a property-based API fuzzer independent of ours, reads the server's own
//! `/v1/openapi.json` and runs every operation against a live server on each engine three ways:
//! anonymously, as a signed-in owner (session cookie and CSRF token), and with an API key of
//! every scope. Every check (`--checks all`) must pass: no 5xx; statuses, content types, headers and
//! bodies as the document declares them; data the schema allows is accepted and data it forbids
//! is refused; an unsupported method gets 405 with `Allow`; no operation ignores its declared
//! authentication. A failure prints Schemathesis's own report (with a `curl` to reproduce).

use std::path::Path;
use std::process::Output;

use bulwark_testkit::{Backend, on_both_engines, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

/// Test cases per operation and phase: enough to reach every keyword of every schema in a few
/// minutes on two cores; the seed makes a failure reproducible.
const MAX_EXAMPLES: &str = "12";
const SEED: &str = "20261206";

/// Operations the signed-in run leaves out because a valid request ends or weakens the very
/// session the run is using (they are fuzzed anonymously, and their valid paths have their own
/// tests: `auth`, `reauth`, `identity`).
const ENDS_THE_SESSION: &[&str] = &[
    "^/v1/auth/logout$",
    "^/v1/sso/logout$",
    "^/v1/auth/sessions/",
    "DELETE ^/v1/auth/sessions$",
    "^/v1/auth/password$",
    "^/v1/auth/mfa/",
    "^/v1/orgs/\\{org\\}/members/\\{user\\}/sessions$",
    "^/v1/orgs/\\{org\\}/policy$",
];

/// Operations whose schema-valid input can still be refused with 422, because the rule depends
/// on the server's state or is one JSON Schema cannot state, with the reason. Everything else
/// the server refuses, the description refuses too.
const STATE_DEPENDENT_422: &[(&str, &str)] = &[
    (
        "^/v1/orgs$",
        "the new org's owner must already have an account",
    ),
    (
        "^/v1/orgs/\\{org\\}/keys$",
        "`team` must name a team of this org",
    ),
    (
        "^/v1/orgs/\\{org\\}/tickets/",
        "the credential must exist and allow the tracker's URL; GitHub needs `repository`, Jira `site` and `project`",
    ),
    (
        "^/v1/orgs/\\{org\\}/webhooks/endpoints",
        "the URL must pass the egress rules (https, a public address); event types must be in the catalog; a replay's range at most 31 days",
    ),
    (
        "^/v1/orgs/\\{org\\}/webhooks/messages$",
        "an Idempotency-Key already used with a different message is refused",
    ),
    (
        "^/v1/license$",
        "a license must be signed by a trusted key, for this deployment",
    ),
    (
        "^/v1/orgs/\\{org\\}/audit/",
        "a cursor must be one this server issued; proofs need positions inside the log",
    ),
    (
        "^/v1/orgs/\\{org\\}/authz/policies$",
        "the policies must be valid Cedar",
    ),
    (
        "^/v1/(auth/signup|auth/password|auth/password/reset|invitations/accept|setup)$",
        "a new password must pass the password policy (not breached, not the email)",
    ),
];

/// Every status Schemathesis accepts by default for valid input, and 422.
const ACCEPTED_OR_422: &str = r#"["2xx", "3xx", 401, 403, 404, 409, 422, 429, "5xx"]"#;

/// The parts of the configuration every run shares (see the module docs); `auth` adds the
/// credentials of a run.
fn config(org: &str, auth: &str, exclude: &[&str]) -> String {
    let mut text = format!(
        r#"
suppress-health-check = ["all"]
request-timeout = 10
# One worker: Hypothesis's source inspection is not thread-safe (a "recursion depth
# mismatch" error under two).
workers = 1

[generation]
# The run's own credentials only: no generated cookie or Authorization header beside them.
with-security-parameters = false
codec = "ascii"
allow-x00 = false

[auth]
auto-signup = false

[parameters]
org = "{org}"

{auth}
"#
    );
    // Setup happens once: afterwards every request to it, valid or not, is 410.
    text.push_str(
        "\n[[operations]]\ninclude-path = '/v1/setup'\n\
         checks.positive_data_acceptance.expected-statuses = [\"2xx\", 401, 403, 409, 410, 422, 429]\n\
         checks.negative_data_rejection.expected-statuses = [400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 428, 429]\n",
    );
    for (path, _why) in STATE_DEPENDENT_422 {
        text.push_str(&format!(
            "\n[[operations]]\ninclude-path-regex = '{path}'\n\
             checks.positive_data_acceptance.expected-statuses = {ACCEPTED_OR_422}\n"
        ));
    }
    // An entry is a path pattern, or `METHOD pattern` for one operation of a path.
    for entry in exclude {
        let (method, path) = match entry.split_once(' ') {
            Some((method, path)) => (format!("include-method = '{method}'\n"), path),
            None => (String::new(), *entry),
        };
        text.push_str(&format!(
            "\n[[operations]]\n{method}include-path-regex = '{path}'\nenabled = false\n"
        ));
    }
    text
}

/// Runs Schemathesis with `config` against the server at `base`: its report when a check
/// failed.
async fn schemathesis(dir: &Path, name: &str, base: &str, config: String) -> Option<String> {
    let python = std::env::var("BULWARK_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, config).unwrap();
    let schema = format!("{base}/v1/openapi.json");
    let args: Vec<String> = [
        "-m",
        "schemathesis.cli",
        "--config-file",
        file.to_str().unwrap(),
        "run",
        &schema,
        // Every check (Schemathesis 4 enables them all by default; said here so that a
        // future default cannot drop one silently).
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--no-shrink",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let cwd = dir.to_owned();
    let out: Output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .args(&args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .expect("Schemathesis needs the test Python (scripts/test installs it)")
    })
    .await
    .unwrap();
    (!out.status.success()).then(|| {
        format!(
            "Schemathesis ({name}) found failures:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn schemathesis_finds_nothing(backend: Backend) {
    // The throttles stay on but far away: one fuzzer sends thousands of wrong keys and
    // sign-ins from one address, and a 429 would end each probe before the check it aims at.
    let app = spawn_app_with(backend, |c| {
        c.webhooks.deliver = false;
        c.throttle.address_free_failures = 1_000_000;
        c.throttle.unauthenticated_per_minute = 1_000_000;
    })
    .await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let issued = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "fuzz", "scopes": bulwark_core::apikeys::SCOPES}),
        )
        .await;
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.unwrap();
    let key = issued["key"].as_str().unwrap();
    let session = owner
        .cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let base = app.url("");
    let base = base.trim_end_matches('/');
    let mut failures = Vec::new();
    failures.extend(schemathesis(dir.path(), "anonymous", base, config(&org, "", &[])).await);
    failures.extend(
        schemathesis(
            dir.path(),
            "api-key",
            base,
            config(
                &org,
                &format!("[auth.openapi.api_key]\nbearer = \"{key}\"\n"),
                &[],
            ),
        )
        .await,
    );
    failures.extend(schemathesis(
        dir.path(),
        "session",
        base,
        config(
            &org,
            &format!(
                "[auth.openapi.session]\napi_key = \"{session}\"\n\n[auth.openapi.csrf]\napi_key = \"{}\"\n",
                owner.csrf
            ),
            ENDS_THE_SESSION,
        ),
    )
    .await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The signed-in run ended nothing: the owner's session still works.
    let res = app.get_as(&owner, "/v1/auth/session").await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

on_both_engines!(schemathesis_finds_nothing);
