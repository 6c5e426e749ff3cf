//! A documented command is a tested command: every fenced `sh` block of `README.md` and of
//! `docs/` (the directory is walked, never listed here) is either run by a test of this file or
//! listed in [`NOT_RUN`] with the reason; a new block that is neither fails
//! `every_sh_block_in_the_readme_and_docs_is_run_or_listed_with_a_reason`.
//!
//! A block runs command by command: a command is what `sh` reads as one (lines joined by a
//! trailing `\`, an open quote or a here-document). Just before a command runs, the values the
//! docs ask the reader to substitute are filled in from what the earlier commands printed (the
//! server's address, the setup token, the session cookie and CSRF token, a TOTP code, the ids:
//! see [`Values`]); nothing else of the text changes. It runs with `sh -ec` in the reader's
//! directory, the binary's directory first on `PATH`, after the assignments earlier commands made
//! (`S='…'`). It must exit 0, and a `curl` must get a 2xx, or the problem the doc shows (see
//! [`EXPECTED_PROBLEMS`]): the status is read through a `-w` the harness adds to the command it
//! runs, never written in the doc. A failure names the doc, the line, the command as written and
//! as run, and its output.
//!
//! Synopses (`bulwark audit verify FILE --key VKEY …`) are fenced `text`: every subcommand and
//! flag they show must be in the binary's `--help` for that subcommand
//! ([`bulwark_testkit::docs::check_synopses`]; bulwark-bench checks the `bulwark-bench` ones).

use std::path::{Path, PathBuf};

use bulwark_testkit::docs::{Block, blocks, repo};

use crate::harness::{
    BIN, COMMAND_TIMEOUT, Finished, Server, bulwark, get, path_str, request, run, run_with,
    setup_tokens, try_serve_cmd,
};

/// A block: its file (from the repository root) and how its first line starts.
type Key = (&'static str, &'static str);

const README_SETUP: Key = ("README.md", "curl -s localhost:8420/healthz");
const README_SIGN_IN: Key = ("README.md", "curl -si localhost:8420/v1/auth/login");
const README_VAULT: Key = (
    "README.md",
    "curl -s localhost:8420/v1/orgs/org_…/credentials",
);
const README_WEBHOOKS: Key = (
    "README.md",
    "curl -s localhost:8420/v1/orgs/org_…/webhooks/endpoints",
);
const README_LICENSE: Key = ("README.md", "bulwark license status");
const README_POSTGRES: Key = ("README.md", "bulwark migrate");
const AUDIT_EXPORT: Key = ("docs/audit.md", "bulwark audit key");
const BACKUPS_TOUR: Key = (
    "docs/backups.md",
    "bulwark backup keygen --out backup-identity.txt > backup-recipients.txt",
);
const DELETION_TOUR: Key = (
    "docs/deletion.md",
    "bulwark deletion schedule org_… --grace 0",
);
const LICENSING_ISSUE: Key = ("docs/licensing.md", "bulwark license keygen");
const POSTGRES_ROLES: Key = ("docs/postgres.md", "bulwark migrate");
const POSTGRES_SEED_COPY: Key = ("docs/postgres.md", "# as the user that runs Bulwark");
const POSTGRES_RECOVERY: Key = ("docs/postgres.md", "bulwark keys export-recovery");
const VAULT_ROTATION: Key = ("docs/vault.md", "bulwark keys status");
const VAULT_RECOVERY: Key = ("docs/vault.md", "bulwark keys export-recovery");
const TICKETS_CREDENTIALS: Key = ("docs/tickets.md", "# GitHub: a fine-grained token");
const TICKETS_PREVIEW: Key = (
    "docs/tickets.md",
    "curl -s localhost:8420/v1/orgs/org_…/tickets/preview",
);
const WEBHOOKS_IDEMPOTENT: Key = (
    "docs/webhooks.md",
    "curl -s localhost:8420/v1/orgs/org_…/webhooks/messages",
);

const DOCTOR_TOUR: Key = ("docs/doctor.md", "bulwark doctor");

const TOUR: &str = "the_readme_tour_runs_as_written_against_one_server";
const VAULT: &str = "the_vault_md_recovery_kit_restores_the_seed_as_written";
const BACKUPS: &str = "the_backups_md_commands_back_up_verify_and_restore_as_written";
const TICKETS: &str = "the_tickets_md_steps_run_as_written_on_a_licensed_deployment";
const DELETION: &str = "the_deletion_md_commands_purge_certify_and_verify_as_written";
const DOCTOR: &str = "the_doctor_md_commands_check_export_and_verify_as_written";
const POSTGRES: &str = "the_postgres_commands_of_the_readme_and_postgres_md_run_as_written";

/// Every block run here, and the test that runs it.
const RUN: &[(Key, &str)] = &[
    (README_SETUP, TOUR),
    (README_SIGN_IN, TOUR),
    (README_VAULT, TOUR),
    (README_WEBHOOKS, TOUR),
    (README_LICENSE, TOUR),
    (LICENSING_ISSUE, TOUR),
    (VAULT_ROTATION, TOUR),
    (WEBHOOKS_IDEMPOTENT, TOUR),
    (AUDIT_EXPORT, TOUR),
    (VAULT_RECOVERY, VAULT),
    (BACKUPS_TOUR, BACKUPS),
    (DELETION_TOUR, DELETION),
    (DOCTOR_TOUR, DOCTOR),
    (TICKETS_CREDENTIALS, TICKETS),
    (TICKETS_PREVIEW, TICKETS),
    (README_POSTGRES, POSTGRES),
    (POSTGRES_ROLES, POSTGRES),
    (POSTGRES_SEED_COPY, POSTGRES),
    (POSTGRES_RECOVERY, POSTGRES),
];

/// A block not run here: its whole text, why, and what is checked instead.
struct NotRun {
    file: &'static str,
    block: &'static str,
    reason: &'static str,
    check: fn(&str),
}

const NOT_RUN: &[NotRun] = &[
    NotRun {
        file: "docs/deploy.md",
        block: "docker build -f deploy/container/Dockerfile -t bulwark:dev --build-arg BULWARK_COMMIT=\"$(git rev-parse HEAD)\" .\ndocker run --rm --read-only -p 127.0.0.1:8420:8420 -e BULWARK_SERVER__MODE=development bulwark:dev",
        reason: "needs a container engine, which these machines lack; `deploy/check/run` (run by \
                 the check of the block that names it) checks the Dockerfile and .dockerignore",
        check: the_recipes_it_names_exist,
    },
    NotRun {
        file: "docs/deploy.md",
        block: "deploy/compose/make-secrets --host bulwark.example.com\ndocker build -f deploy/container/Dockerfile -t bulwark:dev .\nBULWARK_PUBLIC_HOST=bulwark.example.com docker compose -f deploy/compose.yaml up -d\ndocker compose -f deploy/compose.yaml logs bulwark-2",
        reason: "needs a container engine; `deploy/check/run` runs `make-secrets` and checks the \
                 Compose file",
        check: the_recipes_it_names_exist,
    },
    NotRun {
        file: "docs/deploy.md",
        block: r#"printf '%s\n' "$OWNER_PASSWORD" | docker compose -f deploy/compose.yaml exec -T bulwark-1 \
    bulwark setup --org "Acme Corp" --email owner@acme.example --password-stdin"#,
        reason: "needs a running Compose project; `bulwark setup --password-stdin` itself is run \
                 by the setup tests",
        check: the_recipes_it_names_exist,
    },
    NotRun {
        file: "docs/deploy.md",
        block: r#"(umask 077; printf 'bulwark-seed-v1:%s\n' "$(openssl rand -hex 32)" > seed)
kubectl create namespace bulwark
kubectl -n bulwark create secret generic bulwark-secrets --from-file=seed=seed \
    --from-file=database-url=app-url.txt --from-file=owner-database-url=owner-url.txt
helm install bulwark deploy/helm/bulwark -n bulwark --set existingSecret=bulwark-secrets \
    --set image.repository=registry.example.com/bulwark --set 'http.trustedProxies={10.42.0.0/16}'"#,
        reason: "needs a Kubernetes cluster and Helm; `deploy/check/run` renders the chart with \
                 these values and checks the result",
        check: the_recipes_it_names_exist,
    },
    NotRun {
        file: "docs/deploy.md",
        block: "deploy/check/run",
        reason: "run by this block's check, here, with the test command's Python (yamllint) \
                 and Go",
        check: the_deploy_checks_pass,
    },
    NotRun {
        file: "docs/console.md",
        block: "bulwark audit verify audit-org_….jsonl --key \"$(bulwark audit key --data-dir ./bulwark-data)\"",
        reason: "the file is the console's download: the browser test `console_browser::end_to_end` \
                 downloads it with the session and runs `bulwark audit verify FILE --key KEY` on \
                 it (the key form is run as written in docs/audit.md)",
        check: the_browser_test_verifies_the_console_export,
    },
    NotRun {
        file: "docs/console/README.md",
        block: "BULWARK_UPDATE_DOCS_SCREENSHOTS=1 scripts/test -p bulwark-server -E 'test(/every_page_passes_axe/)'",
        reason: "the command running the browser test that takes the screenshots, in the mode that \
                 rewrites docs/console/",
        check: the_screenshots_come_from_the_axe_test,
    },
    NotRun {
        file: "README.md",
        block: "cargo run --release -- serve",
        reason: "the server the tour runs against: the harness starts the same `serve` of the \
                 built binary itself, on a free port (checked: `cargo run` at the root runs it)",
        check: cargo_run_runs_the_binary_under_test,
    },
    NotRun {
        file: "README.md",
        block: "scripts/test",
        reason: "the command running this test",
        check: scripts_test_runs_the_suite,
    },
    NotRun {
        file: "docs/postgres.md",
        block: "BULWARK_TEST_BLESS=1 scripts/test -p bulwark-store-postgres -E 'test(postgres_md)'",
        reason: "the command running bulwark-store-postgres's test that renders postgres.md's \
                 tables, in the mode that rewrites them",
        check: blessing_is_a_test_of_the_postgres_store,
    },
    NotRun {
        file: "docs/fips.md",
        block: "apt-get install cmake golang-go          # the FIPS module's build needs both\n\
                cargo build --release -p bulwark-cli --features fips",
        reason: "installs system packages and builds AWS-LC's FIPS module (minutes); `scripts/test` \
                 builds and tests bulwark-crypto with `--features fips` (checked: the feature exists)",
        check: the_feature_of_the_build_exists,
    },
];

/// Commands whose `curl` shows an error on purpose, and what the doc says about it: the answer
/// must be a 4xx problem with a `code` and the `request_id`.
const EXPECTED_PROBLEMS: &[(&str, &str, &str)] = &[(
    "README.md",
    r#"-d '{"nope":1}'"#,
    "Every error is application/problem+json with a stable code and the request id",
)];

/// What the harness adds to a `curl` to read the HTTP status (on stderr, past any pipe).
const STATUS: &str = "docs-test-http-status: ";
/// The owner's password in the README.
const OWNER_PASSWORD: &str = "a long passphrase of 15+ chars";
/// The recovery passphrase in the reader's `pass.txt`.
const PASSPHRASE: &str = "a recovery passphrase of some length";
/// Tokens of other services the docs store as credentials: made-up values.
const MADE_UP: &[(&str, &str)] = &[
    ("ghp_…", "ghp_MadeUpForTheDocTestNotARealToken0123"),
    (
        "github_pat_…",
        "github_pat_11MadeUpForTheDocTest_NotARealToken",
    ),
    ("ATATT…", "ATATT3xMadeUpForTheDocTestNotARealToken"),
];

// ---------------------------------------------------------------------------------------------
// The docs' blocks

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

fn is_block(block: &Block, (file, first): Key) -> bool {
    block.file == file && block.info == "sh" && first_line(&block.text).starts_with(first)
}

/// The one `sh` block `key` names.
fn sh_block(key: Key) -> Block {
    let found: Vec<Block> = blocks().into_iter().filter(|b| is_block(b, key)).collect();
    assert_eq!(
        found.len(),
        1,
        "{}: one `sh` block starting `{}`",
        key.0,
        key.1
    );
    found.into_iter().next().unwrap()
}

/// One command of a block.
#[derive(Debug, Clone)]
struct Cmd {
    /// Line of the doc where it starts.
    line: usize,
    /// Its lines as written.
    written: String,
    /// The same without comments: what is filled in and run.
    code: String,
}

/// The commands of a block, as `sh` splits them; blank and comment-only lines are left out.
fn commands(block: &Block) -> Vec<Cmd> {
    let mut found = Vec::new();
    let mut lexer = Lexer::default();
    let (mut start, mut written, mut code) = (0, String::new(), String::new());
    for (i, line) in block.text.lines().enumerate() {
        if written.is_empty() {
            start = block.line + i;
        }
        written.push_str(line);
        written.push('\n');
        let goes_on = lexer.line(line, &mut code);
        code.push('\n');
        if !goes_on {
            if !code.trim().is_empty() {
                found.push(Cmd {
                    line: start,
                    written: written.trim_end().to_owned(),
                    code: code.trim().to_owned(),
                });
            }
            written.clear();
            code.clear();
        }
    }
    assert!(
        code.trim().is_empty(),
        "{}:{start}: the block ends inside a command (an open quote, `\\` or here-document)",
        block.file
    );
    found
}

/// Enough of `sh`'s reading to split commands: quotes, `\`, comments and here-documents.
#[derive(Default)]
struct Lexer {
    quote: Option<char>,
    /// The delimiter of a here-document whose body is being read.
    heredoc: Option<String>,
}

impl Lexer {
    /// Reads `line` into `code` (leaving out a comment); whether the command goes on.
    fn line(&mut self, line: &str, code: &mut String) -> bool {
        if let Some(end) = &self.heredoc {
            code.push_str(line);
            if line == end {
                self.heredoc = None;
                return false;
            }
            return true;
        }
        let chars: Vec<char> = line.chars().collect();
        let (mut i, mut escaped_newline, mut heredoc) = (0, false, None);
        while let Some(&c) = chars.get(i) {
            let next = chars.get(i + 1).copied();
            match self.quote {
                Some('\'') if c == '\'' => self.quote = None,
                Some('"') if c == '"' => self.quote = None,
                Some('"') if c == '\\' => {
                    code.push(c);
                    i += 1;
                    let Some(n) = next else { break };
                    code.push(n);
                    i += 1;
                    continue;
                }
                Some(_) => {}
                None if c == '#'
                    && (i == 0 || chars.get(i - 1).is_some_and(|p| p.is_whitespace())) =>
                {
                    break;
                }
                None if c == '\\' && next.is_none() => escaped_newline = true,
                None if c == '\\' => {
                    code.push(c);
                    code.extend(next);
                    i += 2;
                    continue;
                }
                None if c == '\'' || c == '"' => self.quote = Some(c),
                None if c == '<' && next == Some('<') => {
                    let rest: String = chars.iter().skip(i + 2).collect();
                    let word: String = rest
                        .trim_start_matches('-')
                        .trim_start()
                        .trim_start_matches(['\'', '"'])
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    heredoc = Some(word).filter(|w| !w.is_empty());
                }
                None => {}
            }
            code.push(c);
            i += 1;
        }
        self.heredoc = heredoc;
        escaped_newline || self.quote.is_some() || self.heredoc.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// The values the docs ask the reader to substitute

/// What the run has learned so far, filled into each command just before it runs.
#[derive(Default)]
struct Values {
    /// `localhost:8420`: the test server's address.
    addr: Option<String>,
    /// `bwsetup_…`: the setup token the server printed.
    setup_token: Option<String>,
    /// `bwsess_…`: the session of the latest answer with a `Set-Cookie`.
    session: Option<String>,
    /// `CSRF='…'`: the `csrf_token` of the latest answer with one.
    csrf: Option<String>,
    /// `123456`: a code of the TOTP secret the enrolment answered.
    totp_secret: Option<String>,
    /// `$S2`, `$CSRF2` (environment variables): the session and CSRF token of the answer to the
    /// TOTP confirmation ("ten backup codes (shown once) and a new session cookie and CSRF
    /// token; with those:").
    second_factor: Option<(String, String)>,
    /// `org_…`, `ep_…`, `dep_…`: the first of each printed (setup's org, the endpoint the block
    /// created, the deployment `bulwark license status` printed).
    org: Option<String>,
    endpoint: Option<String>,
    deployment: Option<String>,
    /// `<base64>`: the public key `bulwark license keygen` printed.
    public_key: Option<String>,
    /// `bwk_…`: an API key the harness issued itself.
    api_key: Option<String>,
    /// `cred_…`: the first credential printed (tickets.md's step 2 names its step 1's).
    credential: Option<String>,
    /// `"audit_seq": 42`: an event of the org's log ("a record … by its sequence number").
    audit_seq: Option<u64>,
    /// `/var/lib/bulwark`: a data directory the test prepares.
    data_dir: Option<PathBuf>,
    /// `postgres://…@db…/bulwark`: the owner's and the application role's URLs.
    database: Option<(String, String)>,
    /// Every secret seen, by what it is: none may reach the server's log.
    secrets: Vec<(&'static str, String)>,
}

impl Values {
    /// `code` with every placeholder replaced, or what is missing.
    fn fill(&self, code: &str) -> Result<String, String> {
        let code_of = |secret: &String| {
            let secret = bulwark_crypto::TotpSecret::from_base32(secret).unwrap();
            bulwark_testkit::totp_now(&secret, 0)
        };
        let mut subs = vec![
            ("localhost:8420", self.addr.clone()),
            ("bwsetup_…", self.setup_token.clone()),
            ("bwsess_…", self.session.clone()),
            (
                "CSRF='…'",
                self.csrf.as_ref().map(|c| format!("CSRF='{c}'")),
            ),
            ("123456", self.totp_secret.as_ref().map(code_of)),
            ("org_…", self.org.clone()),
            ("ep_…", self.endpoint.clone()),
            ("dep_…", self.deployment.clone()),
            ("bwk_…", self.api_key.clone()),
            ("cred_…", self.credential.clone()),
            ("<base64>", self.public_key.clone()),
            (
                "/var/lib/bulwark",
                self.data_dir.as_ref().map(|d| d.display().to_string()),
            ),
            (
                "\"audit_seq\": 42",
                self.audit_seq.map(|seq| format!("\"audit_seq\": {seq}")),
            ),
        ];
        subs.extend(MADE_UP.iter().map(|(p, v)| (*p, Some((*v).to_owned()))));
        let mut text = code.to_owned();
        for (placeholder, value) in subs {
            if let Some(filled) = replace_placeholder(&text, placeholder, value.as_deref()) {
                text = filled.ok_or_else(|| {
                    format!(
                        "no value for `{placeholder}` yet: see `Values` for where it comes from"
                    )
                })?;
            }
        }
        let text = self.fill_database_urls(&text)?;
        if text.contains('…') {
            return Err("a placeholder this harness cannot fill: teach `Values` in \
                        crates/bulwark-cli/tests/it/docs.rs where its value comes from"
                .to_owned());
        }
        Ok(text)
    }

    /// `postgres://USER:…@HOST/bulwark` → the application role's URL when USER is that role,
    /// else the owner's.
    fn fill_database_urls(&self, text: &str) -> Result<String, String> {
        let mut filled = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("postgres://") {
            filled.push_str(&rest[..i]);
            let url = rest[i..]
                .split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
                .next()
                .unwrap_or_default();
            if url.contains('…') {
                let (owner, app) = self.database.as_ref().ok_or("no database in this test")?;
                let user = url["postgres://".len()..].split(':').next();
                let app_role = user == Some(bulwark_testkit::pg::APP_ROLE);
                filled.push_str(if app_role { app } else { owner });
            } else {
                filled.push_str(url);
            }
            rest = &rest[i + url.len()..];
        }
        filled.push_str(rest);
        Ok(filled)
    }

    /// Takes what a command printed on standard output.
    fn learn(&mut self, out: &str) {
        const COOKIE: &str = "set-cookie: __Host-bulwark_session=";
        for line in out.lines() {
            if line
                .get(..COOKIE.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(COOKIE))
            {
                let session = line[COOKIE.len()..].split(';').next().unwrap().to_owned();
                self.secrets.push(("session token", session.clone()));
                self.session = Some(session);
            }
            if let Some(key) = line.strip_prefix("public key:") {
                self.public_key.get_or_insert_with(|| key.trim().to_owned());
            }
        }
        if let Some(csrf) = json_field(out, "csrf_token") {
            self.secrets.push(("CSRF token", csrf.clone()));
            self.csrf = Some(csrf);
        }
        if out.contains("\"otpauth_uri\"") {
            let secret = json_field(out, "secret").unwrap();
            self.secrets.push(("TOTP secret", secret.clone()));
            self.totp_secret = Some(secret);
        }
        if let Some(secret) = first_token(out, "whsec_", |c| c != '"') {
            self.secrets.push(("webhook secret", secret));
        }
        if let Some((_, codes)) = out.split_once("\"backup_codes\":[") {
            self.second_factor = self.session.clone().zip(self.csrf.clone());
            let codes = codes.split(']').next().unwrap_or_default();
            for code in codes.split(',') {
                self.secrets
                    .push(("backup code", code.trim_matches('"').to_owned()));
            }
        }
        let id = |c: char| c.is_ascii_alphanumeric();
        for (slot, prefix) in [
            (&mut self.org, "org_"),
            (&mut self.endpoint, "ep_"),
            (&mut self.deployment, "dep_"),
            (&mut self.credential, "cred_"),
        ] {
            if slot.is_none() {
                *slot = first_token(out, prefix, id);
            }
        }
    }
}

/// `text` with each `placeholder` (not preceded by a word character) replaced by `value`;
/// `None` when there is none, `Some(None)` when there is one but no value.
fn replace_placeholder(
    text: &str,
    placeholder: &str,
    value: Option<&str>,
) -> Option<Option<String>> {
    let at_word_start = |i: usize| {
        !text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let hits: Vec<usize> = text
        .match_indices(placeholder)
        .map(|(i, _)| i)
        .filter(|i| at_word_start(*i))
        .collect();
    if hits.is_empty() {
        return None;
    }
    let Some(value) = value else {
        return Some(None);
    };
    let mut filled = String::new();
    let mut from = 0;
    for i in hits {
        filled.push_str(&text[from..i]);
        filled.push_str(value);
        from = i + placeholder.len();
    }
    filled.push_str(&text[from..]);
    Some(Some(filled))
}

/// The first `prefix…` token of `text` at a word start, continuing while `more` holds.
fn first_token(text: &str, prefix: &str, more: impl Fn(char) -> bool) -> Option<String> {
    text.match_indices(prefix).find_map(|(i, _)| {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &text[i + prefix.len()..];
        let body: String = rest.chars().take_while(|c| more(*c)).collect();
        (!body.is_empty()).then(|| format!("{prefix}{body}"))
    })
}

/// The string value of the first `"name": "…"` in `text`.
fn json_field(text: &str, name: &str) -> Option<String> {
    let (_, rest) = text.split_once(&format!("\"{name}\":"))?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest.split('"').next()?.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Running commands

/// The reader's terminal: one directory, the environment, and what earlier commands set.
struct Shell {
    cwd: PathBuf,
    /// The reader's environment (`BULWARK_CONFIG`, …). `S2` and `CSRF2` are added from the
    /// latest sign-in answer (the confirmation's, where the README uses them).
    env: Vec<(&'static str, String)>,
    /// The assignments run so far (`S='…'`), run again before each command.
    assignments: String,
    values: Values,
}

impl Shell {
    fn new(cwd: &Path) -> Self {
        Self {
            cwd: cwd.to_owned(),
            env: Vec::new(),
            assignments: String::new(),
            values: Values::default(),
        }
    }

    /// `sh -ec SCRIPT` in the reader's directory, `bulwark` on the `PATH`, and no `BULWARK_*`
    /// variable but the reader's.
    fn sh(&self, script: &str) -> std::process::Command {
        let bin = Path::new(BIN).parent().unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let mut cmd = std::process::Command::new("sh");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BULWARK_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(&self.cwd)
            .args(["-ec", script])
            .env("PATH", path)
            // curl reaches the test server directly, whatever proxy the machine names.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        if let Some((session, csrf)) = &self.values.second_factor {
            cmd.env("S2", format!("__Host-bulwark_session={session}"))
                .env("CSRF2", csrf);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// The command with its placeholders filled, or a failure naming it.
    fn filled(&mut self, block: &Block, cmd: &Cmd) -> String {
        if cmd.code.contains("bwk_…") && self.values.api_key.is_none() {
            self.issue_api_key();
        }
        self.values.fill(&cmd.code).unwrap_or_else(|why| {
            panic!(
                "{}:{}: {why}\n--- as written ---\n{}",
                block.file, cmd.line, cmd.written
            )
        })
    }

    /// Runs every command of the block `key` names.
    fn run_block(&mut self, key: Key) {
        let block = sh_block(key);
        for cmd in commands(&block) {
            self.step(&block, &cmd);
        }
    }

    /// Runs one command; `bulwark serve` is started, waited for, checked ready and stopped.
    fn step(&mut self, block: &Block, cmd: &Cmd) {
        if !cmd.code.starts_with("bulwark serve") {
            self.run(block, cmd);
            return;
        }
        let filled = self.filled(block, cmd);
        let script = format!("{}exec {filled}", self.assignments);
        eprintln!("{}:{}: {}", block.file, cmd.line, first_line(&filled));
        let server = try_serve_cmd(self.sh(&script))
            .unwrap_or_else(|out| panic!("{}", report(block, cmd, &script, &out, "did not start")));
        let ready = get(&server.addr, "/readyz");
        assert_eq!(ready.status, 200, "{}:{}: {ready:?}", block.file, cmd.line);
        let out = server.terminate();
        let why = "a stop with SIGTERM is not exit 0";
        assert_eq!(
            out.code,
            Some(0),
            "{}",
            report(block, cmd, &script, &out, why)
        );
    }

    fn run(&mut self, block: &Block, cmd: &Cmd) {
        let filled = self.filled(block, cmd);
        let script = match filled.strip_prefix("curl ") {
            Some(rest) => format!("curl -w '%{{stderr}}\\n{STATUS}%{{http_code}}\\n' {rest}"),
            None => filled.clone(),
        };
        let script = format!("{}{script}", self.assignments);
        eprintln!("{}:{}: {}", block.file, cmd.line, first_line(&filled));
        let out = run_with(self.sh(&script), None, COMMAND_TIMEOUT);
        if let Err(why) = judge(block, cmd, &out) {
            panic!("{}", report(block, cmd, &script, &out, &why));
        }
        if is_assignment(&filled) {
            self.assignments.push_str(&filled);
            self.assignments.push('\n');
        }
        self.values.learn(&out.stdout);
    }

    /// `bwk_…`: a key with the scope that queues messages (`webhooks:send`, docs/api-keys.md),
    /// issued by the signed-in owner with `POST /v1/orgs/{org}/keys`.
    fn issue_api_key(&mut self) {
        let v = &self.values;
        let (Some(addr), Some(org), Some((session, csrf))) = (&v.addr, &v.org, &v.second_factor)
        else {
            panic!("an API key needs the server, the org and a session with MFA first");
        };
        let cookie = format!("__Host-bulwark_session={session}");
        let body = serde_json::json!({"name": "docs tour", "scopes": ["webhooks:send"]});
        let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
        let path = format!("/v1/orgs/{org}/keys");
        let (res, _) = request("POST", addr, &path, &headers, Some(&body));
        assert_eq!(res.status, 201, "issuing an API key: {res:?}");
        let key = res.json()["key"].as_str().unwrap().to_owned();
        self.values.secrets.push(("API key", key.clone()));
        self.values.api_key = Some(key);
    }
}

/// Whether a command did what its doc says: exit 0, and a 2xx (or the documented problem).
fn judge(block: &Block, cmd: &Cmd, out: &Finished) -> Result<(), String> {
    if out.code != Some(0) {
        return Err(format!("exit code {:?}, expected 0", out.code));
    }
    if !cmd.code.starts_with("curl ") {
        return Ok(());
    }
    let status: u16 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix(STATUS))
        .and_then(|s| s.trim().parse().ok())
        .ok_or("curl printed no HTTP status")?;
    let problem = EXPECTED_PROBLEMS
        .iter()
        .find(|(file, needle, _)| *file == block.file && cmd.code.contains(needle));
    let Some((_, _, says)) = problem else {
        return match status {
            200..=299 => Ok(()),
            _ => Err(format!("HTTP {status}, expected 2xx")),
        };
    };
    let body: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let shaped = body["code"].is_string() && body["request_id"].is_string();
    if (400..500).contains(&status) && shaped {
        Ok(())
    } else {
        Err(format!("HTTP {status}; the doc says: {says}"))
    }
}

/// What failed: the doc's file and line, the command as written, the script run (earlier
/// assignments first) and its output.
fn report(block: &Block, cmd: &Cmd, script: &str, out: &Finished, why: &str) -> String {
    format!(
        "{}:{}: {why}\n--- as written ---\n{}\n--- as run ---\n{script}\n--- output ---\n{out}",
        block.file, cmd.line, cmd.written
    )
}

/// `NAME='…'` or `NAME=word`: a line that sets a shell variable for the lines after it.
fn is_assignment(code: &str) -> bool {
    let Some((name, value)) = code.split_once('=') else {
        return false;
    };
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let quoted = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .is_some_and(|v| !v.contains('\''));
    name_ok && (quoted || !value.contains(char::is_whitespace))
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_sh_block_in_the_readme_and_docs_is_run_or_listed_with_a_reason() {
    let all = blocks();
    let mut problems = Vec::new();
    for block in &all {
        if ["bash", "shell", "zsh", "console"].contains(&block.info.as_str()) {
            problems.push(format!(
                "{}:{}: fence shell commands as ```sh (then they are run here), a synopsis as \
                 ```text",
                block.file, block.line
            ));
        }
        if block.info != "sh" {
            continue;
        }
        let run = RUN.iter().filter(|(key, _)| is_block(block, *key)).count();
        let listed = NOT_RUN
            .iter()
            .filter(|n| n.file == block.file && n.block.trim() == block.text.trim())
            .count();
        if run + listed != 1 {
            problems.push(format!(
                "{}:{}: a `sh` block that is neither run nor listed (or is matched {} times): \
                 run it in a test of crates/bulwark-cli/tests/it/docs.rs and add it to `RUN`, \
                 or add it to `NOT_RUN` with the reason it is not run here\n{}",
                block.file,
                block.line,
                run + listed,
                block.text
            ));
        }
    }
    for (key, test) in RUN {
        let n = all.iter().filter(|b| is_block(b, *key)).count();
        if n != 1 {
            problems.push(format!(
                "`RUN` names a block of {} starting `{}` ({test}): {n} such blocks",
                key.0, key.1
            ));
        }
    }
    for n in NOT_RUN {
        if !all
            .iter()
            .any(|b| n.file == b.file && n.block.trim() == b.text.trim())
        {
            problems.push(format!(
                "`NOT_RUN` lists a block {} no longer has:\n{}",
                n.file, n.block
            ));
        }
        assert!(!n.reason.is_empty());
        (n.check)(n.block);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

fn cargo_run_runs_the_binary_under_test(_: &str) {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("default-members = [\"crates/bulwark-cli\"]"),
        "`cargo run` at the root must run crates/bulwark-cli's binary"
    );
    let cli = std::fs::read_to_string(repo().join("crates/bulwark-cli/Cargo.toml")).unwrap();
    assert!(cli.contains("[[bin]]\nname = \"bulwark\""), "{cli}");
    let out = run(&repo(), &["serve", "--help"]);
    assert_eq!(out.code, Some(0), "{out}");
}

/// Every file or directory under `deploy/` the block names exists.
fn the_recipes_it_names_exist(block: &str) {
    let named: Vec<&str> = block
        .split_whitespace()
        .filter(|w| w.starts_with("deploy/"))
        .collect();
    assert!(
        !named.is_empty() || block.contains("docker compose"),
        "{block}"
    );
    for path in named {
        assert!(
            repo().join(path).exists(),
            "`{path}` named in docs/deploy.md"
        );
    }
}

/// `deploy/check/run` (the offline checks of the image, Compose and Helm recipes) passes.
fn the_deploy_checks_pass(block: &str) {
    let mut cmd = std::process::Command::new(repo().join(block.trim()));
    cmd.current_dir(std::env::temp_dir());
    let out = crate::harness::run_with(cmd, None, std::time::Duration::from_secs(600));
    assert_eq!(out.code, Some(0), "deploy/check/run failed:\n{out}");
    assert!(out.stdout.contains(" passed, 0 failed"), "{out}");
}

fn scripts_test_runs_the_suite(_: &str) {
    scripts_test_is_executable();
}

fn scripts_test_is_executable() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(repo().join("scripts/test"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "scripts/test is executable");
}

fn browser_tests() -> String {
    let test = "crates/bulwark-server/tests/it/console_browser.rs";
    std::fs::read_to_string(repo().join(test)).unwrap()
}

fn the_browser_test_verifies_the_console_export(_: &str) {
    let text = browser_tests();
    assert!(
        text.contains("/audit/export?format=jsonl") && text.contains("\"verify\""),
        "console_browser downloads the console's export and runs `bulwark audit verify` on it"
    );
}

fn the_screenshots_come_from_the_axe_test(_: &str) {
    scripts_test_is_executable();
    let text = browser_tests();
    assert!(
        text.contains("fn every_page_passes_axe_in_both_schemes")
            && text.contains("BULWARK_UPDATE_DOCS_SCREENSHOTS"),
        "the axe test writes docs/console/ under BULWARK_UPDATE_DOCS_SCREENSHOTS"
    );
}

fn blessing_is_a_test_of_the_postgres_store(_: &str) {
    scripts_test_is_executable();
    let test = "crates/bulwark-store-postgres/tests/it/docs.rs";
    let text = std::fs::read_to_string(repo().join(test)).unwrap();
    assert!(
        text.contains("fn postgres_md_") && text.contains("\"BULWARK_TEST_BLESS\""),
        "{test} renders docs/postgres.md's tables under BULWARK_TEST_BLESS"
    );
}

/// `cargo build … -p PACKAGE --features FEATURE`: the package declares the feature.
fn the_feature_of_the_build_exists(block: &str) {
    let words: Vec<&str> = block.split_whitespace().collect();
    let after = |flag: &str| {
        let i = words.iter().position(|w| *w == flag).unwrap();
        words[i + 1]
    };
    let (package, feature) = (after("-p"), after("--features"));
    let manifest = format!("crates/{package}/Cargo.toml");
    let text = std::fs::read_to_string(repo().join(&manifest)).unwrap();
    let features = text.split("[features]").nth(1).unwrap_or_default();
    let features = features.split("\n[").next().unwrap_or_default();
    assert!(
        features
            .lines()
            .any(|l| l.starts_with(&format!("{feature} ="))),
        "{manifest} has no feature `{feature}`"
    );
}

/// Every line of a non-`sh` block that runs `bulwark` (after `\` continuations) names
/// subcommands and flags the binary has.
#[test]
fn the_synopses_in_the_docs_show_only_subcommands_and_flags_the_binary_has() {
    let checked = bulwark_testkit::docs::check_synopses("bulwark", Path::new(crate::harness::BIN));
    assert!(
        checked.contains("docs/audit.md"),
        "no synopsis checked in docs/audit.md: {checked:?}"
    );
}

/// The README tour against one server, in its order: setup, sign-in and TOTP enrolment, orgs,
/// an invitation, a credential, key rotation and the recovery kit, a webhook endpoint, a
/// message sent with an API key, the attempt log, and the license — issued on the vendor's side
/// as docs/licensing.md shows, for the deployment id the README's `license status` printed.
/// Then, on the same deployment, docs/vault.md's rotation, docs/webhooks.md's idempotent message
/// and, with the server stopped, docs/audit.md's export and verification. No secret of the
/// tour reaches the server's output.
#[test]
fn the_readme_tour_runs_as_written_against_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::new(dir.path());
    // The vendor's key exists before any deployment: docs/licensing.md's block starts there.
    let licensing = sh_block(LICENSING_ISSUE);
    let mut issuing = commands(&licensing).into_iter();
    for cmd in issuing.by_ref() {
        shell.step(&licensing, &cmd);
        if shell.values.public_key.is_some() {
            break;
        }
    }
    // The reader's `bulwark.toml` lists the vendor key the server trusts (docs/licensing.md:
    // "`bulwark license inspect license.json --config bulwark.toml` # against the keys `serve`
    // trusts"): its "Configuration" block with that key, given to `serve` and to every command
    // as `BULWARK_CONFIG` ("`--config FILE` or `BULWARK_CONFIG`").
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        trusted_key_config(shell.values.public_key.as_ref().unwrap()),
    )
    .unwrap();
    shell
        .env
        .push(("BULWARK_CONFIG", path_str(&config).to_owned()));
    let server = start_server(&mut shell, true);

    shell.run_block(README_SETUP);
    shell.run_block(README_SIGN_IN);
    // The passphrase file `keys export-recovery` reads (docs/vault.md: "The passphrase must be at
    // least 16 characters and is read from a file or standard input").
    std::fs::write(dir.path().join("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
    shell.run_block(README_VAULT);
    shell.run_block(README_WEBHOOKS);

    // `license status` prints the deployment id; the vendor issues the license for it (the rest
    // of docs/licensing.md's block); the README activates it.
    let license = sh_block(README_LICENSE);
    let mut activation = commands(&license).into_iter();
    for cmd in activation.by_ref() {
        shell.step(&license, &cmd);
        if shell.values.deployment.is_some() {
            break;
        }
    }
    assert_example_claims_are_current(&licensing);
    for cmd in issuing {
        shell.step(&licensing, &cmd);
    }
    for cmd in activation {
        shell.step(&license, &cmd);
    }

    shell.run_block(VAULT_ROTATION);
    shell.run_block(WEBHOOKS_IDEMPOTENT);
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert_no_secret_in(&out, &shell.values);

    // The secrets checked were read from the tour's answers.
    for kind in [
        "session token",
        "TOTP secret",
        "backup code",
        "webhook secret",
        "API key",
    ] {
        let seen = shell.values.secrets.iter().any(|(what, _)| *what == kind);
        assert!(
            seen,
            "the tour printed no {kind}: does `Values::learn` still find it?"
        );
    }

    // Stopped, so no checkpoint is published between the export and its verification.
    shell.run_block(AUDIT_EXPORT);
}

/// No secret the run produced is in the server's output (nor the setup token in its log: it is
/// printed on the terminal only).
fn assert_no_secret_in(out: &Finished, values: &Values) {
    let fixed = MADE_UP
        .iter()
        .map(|(_, v)| ("credential value", *v))
        .chain([("recovery passphrase", PASSPHRASE)]);
    let learned = values.secrets.iter().map(|(what, v)| (*what, v.as_str()));
    for (what, secret) in fixed.chain(learned) {
        assert!(
            !out.all_output().contains(secret),
            "the {what} `{secret}` appears in the server's output:\n{out}"
        );
    }
    if let Some(token) = &values.setup_token {
        assert!(
            !out.stdout.contains(token),
            "the setup token is in the log:\n{out}"
        );
    }
}

/// docs/licensing.md's "Configuration" block with `public_key` as the trusted key.
fn trusted_key_config(public_key: &str) -> String {
    let block = blocks()
        .into_iter()
        .find(|b| b.file == "docs/licensing.md" && b.info == "toml")
        .unwrap();
    let (_, example) = block.text.split_once("extra_public_keys = [\"").unwrap();
    let example = example.split('"').next().unwrap();
    block.text.replace(example, public_key)
}

/// README: `cargo run --release -- serve`, as the built binary's `serve` on a free port, in
/// the reader's directory. Before setup it prints the setup token on the terminal:
/// `pending_setup` says to wait for it.
fn start_server(shell: &mut Shell, pending_setup: bool) -> Server {
    let mut cmd = bulwark(&shell.cwd);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .envs(shell.env.iter().map(|(k, v)| (k, v)));
    let server = try_serve_cmd(cmd).unwrap_or_else(|out| panic!("serve did not start:\n{out}"));
    shell.values.addr = Some(server.addr.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending_setup && shell.values.setup_token.is_none() {
        shell.values.setup_token = setup_tokens(&server.proc.stderr_so_far()).pop();
        assert!(
            std::time::Instant::now() < deadline,
            "no setup token printed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server
}

/// The example claims carry fixed dates, and activation needs today between `not_before` and
/// `expires_at`: say so plainly when the doc's example has gone stale.
fn assert_example_claims_are_current(block: &Block) {
    let date = |field: &str| {
        let text = json_field(&block.text, field).unwrap();
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    assert!(
        date("not_before") <= now && now < date("expires_at"),
        "{}:{}: the example claims are valid from {} to {}, not today ({now}): move the \
         example's dates so that the license it issues can be activated",
        block.file,
        block.line,
        date("not_before"),
        date("expires_at")
    );
}

/// docs/vault.md's recovery kit on SQLite: exported from a deployment, restored into a data
/// directory that lost its seed, where it writes the same seed.
#[test]
fn the_vault_md_recovery_kit_restores_the_seed_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut shell = Shell::new(cwd);
    set_up_on_the_host(&mut shell);
    // The passphrase file (docs/vault.md: "read from a file or standard input").
    std::fs::write(cwd.join("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
    // docs/vault.md: "`restore-recovery` writes the seed into the data directory …, only when
    // the seed matches the database found there": `/var/lib/bulwark` is a data directory that
    // lost its seed and kept its database.
    let restored = cwd.join("var/lib/bulwark");
    std::fs::create_dir_all(&restored).unwrap();
    crate::harness::chmod(&restored, 0o700);
    for entry in std::fs::read_dir(cwd.join("bulwark-data")).unwrap() {
        let name = entry.unwrap().file_name();
        if name.to_string_lossy().starts_with("bulwark.db") {
            std::fs::copy(cwd.join("bulwark-data").join(&name), restored.join(&name)).unwrap();
        }
    }
    shell.values.data_dir = Some(restored.clone());
    shell.run_block(VAULT_RECOVERY);
    let seed = std::fs::read(cwd.join("bulwark-data/seed")).unwrap();
    assert_eq!(std::fs::read(restored.join("seed")).unwrap(), seed);
    assert_eq!(crate::harness::mode(&restored.join("seed")), 0o600);
}

/// docs/backups.md's five minutes, next to the README's deployment in `./bulwark-data`: the
/// backup verifies, the restore writes the same seed, and the restored deployment serves.
#[test]
fn the_backups_md_commands_back_up_verify_and_restore_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut shell = Shell::new(cwd);
    set_up_on_the_host(&mut shell);
    shell.run_block(BACKUPS_TOUR);
    let seed = std::fs::read(cwd.join("bulwark-data/seed")).unwrap();
    assert_eq!(std::fs::read(cwd.join("restored-data/seed")).unwrap(), seed);
    let server = crate::harness::serve_on(cwd, &cwd.join("restored-data"), &[]);
    assert_eq!(get(&server.addr, "/readyz").status, 200);
    assert_eq!(server.terminate().code, Some(0));
}

/// docs/deletion.md on a licensed deployment with a second org, which the block's `org_…` names:
/// scheduled, purged, certified and verified as written; the org's rows are gone.
#[test]
fn the_deletion_md_commands_purge_certify_and_verify_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut shell = Shell::new(cwd);
    set_up_on_the_host(&mut shell);
    activate_a_license_with_every_feature(&mut shell);
    let out = cli(
        &shell,
        &[
            "orgs",
            "create",
            "--name",
            "Globex",
            "--owner-email",
            "owner@acme.example",
        ],
        None,
    );
    let org = out.stdout.split_whitespace().nth(1).unwrap().to_owned();
    assert!(org.starts_with("org_"), "{out}");
    shell.values.org = Some(org.clone());
    shell.run_block(DELETION_TOUR);
    let cert = std::fs::read_to_string(cwd.join("deletion-certificate.json")).unwrap();
    assert!(cert.contains(&org) && cert.contains("Globex"), "{cert}");
    let memberships = crate::audit::sql(
        &cwd.join("bulwark-data/bulwark.db"),
        &[],
        &format!(
            "SELECT count(*) || '' FROM memberships WHERE lower(hex(org_id)) = '{}'",
            org.trim_start_matches("org_")
        ),
    );
    assert_eq!(memberships, ["0"]);
}

/// docs/doctor.md on the host as written: every check passes or warns on a fresh deployment
/// (exit 0), the JSON report lands where the shell puts it, the page is written and verifies.
#[test]
fn the_doctor_md_commands_check_export_and_verify_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut shell = Shell::new(cwd);
    set_up_on_the_host(&mut shell);
    shell.run_block(DOCTOR_TOUR);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cwd.join("doctor.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["fail"], 0, "{report:#}");
    for file in [
        "index.html",
        "security.md",
        "manifest.json",
        "manifest.sig",
        "sbom.cdx.json",
    ] {
        assert!(cwd.join("security-page").join(file).is_file(), "{file}");
    }
}

/// docs/tickets.md on a deployment whose license has the `tickets` feature, activated before the
/// server starts (a running server picks an activation up only within a minute): the owner signs
/// in with the second factor as in the README, stores both trackers' credentials and previews
/// the GitHub issue of an event of the org's log.
#[test]
fn the_tickets_md_steps_run_as_written_on_a_licensed_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::new(dir.path());
    set_up_on_the_host(&mut shell);
    activate_a_license_with_every_feature(&mut shell);
    let server = start_server(&mut shell, false);
    shell.run_block(README_SIGN_IN);
    shell.run_block(TICKETS_CREDENTIALS);
    shell.values.audit_seq = Some(latest_org_event(&shell.values));
    shell.run_block(TICKETS_PREVIEW);
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert_no_secret_in(&out, &shell.values);
}

/// `bulwark ARGS` in the reader's directory and environment.
fn cli(shell: &Shell, args: &[&str], stdin: Option<&str>) -> Finished {
    let mut cmd = bulwark(&shell.cwd);
    cmd.args(args).envs(shell.env.iter().map(|(k, v)| (k, v)));
    let out = run_with(cmd, stdin, COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(0), "bulwark {}\n{out}", args.join(" "));
    out
}

/// The README's owner and org, set up without HTTP ("a local operator can do the same:
/// `echo "$PASSWORD" | bulwark setup --org "Acme Corp" --email owner@acme.example
/// --password-stdin`"), with the password its sign-in uses.
fn set_up_on_the_host(shell: &mut Shell) {
    let args = [
        "setup",
        "--org",
        "Acme Corp",
        "--email",
        "owner@acme.example",
    ];
    let out = cli(
        shell,
        &[&args[..], &["--password-stdin"]].concat(),
        Some(&format!("{OWNER_PASSWORD}\n")),
    );
    shell.values.learn(&out.stdout);
}

/// A license with every feature, issued for this deployment with a vendor key the reader's
/// `bulwark.toml` trusts (`BULWARK_CONFIG` from now on), and activated on the host.
fn activate_a_license_with_every_feature(shell: &mut Shell) {
    let out = cli(shell, &["license", "keygen", "--out", "vendor.key"], None);
    let config = shell.cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        trusted_key_config(&crate::license::public_key(&out)),
    )
    .unwrap();
    shell
        .env
        .push(("BULWARK_CONFIG", path_str(&config).to_owned()));
    let out = cli(shell, &["license", "status", "--format", "json"], None);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rfc3339 = |t: time::OffsetDateTime| {
        let t = t.replace_nanosecond(0).unwrap();
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    let claims = serde_json::json!({
        "format": 1, "license_id": "docs-tour", "licensee": "Acme Corp", "serial": 1,
        "deployment": status["deployment_id"],
        "issued_at": rfc3339(now - time::Duration::hours(1)),
        "not_before": rfc3339(now - time::Duration::hours(1)),
        "expires_at": rfc3339(now + time::Duration::days(365)), "grace_days": 14,
        "limits": {}, "features": ["tickets"]
    });
    std::fs::write(shell.cwd.join("claims.json"), claims.to_string()).unwrap();
    let issue = [
        "license",
        "issue",
        "--key",
        "vendor.key",
        "--in",
        "claims.json",
    ];
    cli(
        shell,
        &[&issue[..], &["--out", "license.json"]].concat(),
        None,
    );
    cli(shell, &["license", "activate", "license.json"], None);
}

/// The sequence number of the newest event of the org's audit log.
fn latest_org_event(values: &Values) -> u64 {
    let (Some(addr), Some(org), Some((session, _))) =
        (&values.addr, &values.org, &values.second_factor)
    else {
        panic!("reading the org's log needs the server, the org and a session with MFA first");
    };
    let cookie = format!("__Host-bulwark_session={session}");
    let path = format!("/v1/orgs/{org}/audit/events");
    let (res, _) = request("GET", addr, &path, &[("cookie", &cookie)], None);
    assert_eq!(res.status, 200, "{res:?}");
    let events = res.json()["events"].as_array().unwrap().clone();
    events
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap()
}

/// README's "On PostgreSQL" and docs/postgres.md's commands against a throwaway database and its
/// owner and application roles: migrate, serve (started, ready, stopped), the seed copied to
/// another host, and the recovery kit carried to a new one. Skipped, saying so, without the
/// cluster of `scripts/test`.
#[test]
fn the_postgres_commands_of_the_readme_and_postgres_md_run_as_written() {
    if std::env::var_os(bulwark_testkit::pg::PG_URL_ENV).is_none() {
        eprintln!("skipped: no PostgreSQL (`scripts/test` provides one)");
        return;
    }
    let db = crate::harness::runtime().block_on(bulwark_testkit::pg::fresh_database());
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut shell = Shell::new(cwd);
    shell.values.database = Some((db.owner_url.clone(), db.app_url.clone()));
    // `serve` without `--listen` would take the fixed port 8420: a free one instead.
    shell.env.push(("BULWARK_LISTEN", "127.0.0.1:0".to_owned()));
    shell.run_block(README_POSTGRES);
    shell.run_block(POSTGRES_ROLES);
    let seed = std::fs::read(cwd.join("bulwark-data/seed")).unwrap();

    // docs/postgres.md: "To give a host the seed, either copy the file over an encrypted channel
    // into a data directory": the reader has it as `seed`.
    std::fs::write(cwd.join("seed"), &seed).unwrap();
    let host = cwd.join("host-a/var/lib/bulwark");
    shell.values.data_dir = Some(host.clone());
    shell.run_block(POSTGRES_SEED_COPY);
    assert_eq!(std::fs::read(host.join("seed")).unwrap(), seed);
    assert_eq!(crate::harness::mode(&host), 0o700);

    std::fs::write(cwd.join("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
    let recovery = sh_block(POSTGRES_RECOVERY);
    let new_host = cwd.join("host-b/var/lib/bulwark");
    for cmd in commands(&recovery) {
        // Where each command runs is in its comment: the host that has the seed, or the new one.
        let on_new_host = cmd.written.contains("# on the new host");
        let data_dir = if on_new_host { &new_host } else { &host };
        shell.values.data_dir = Some(data_dir.clone());
        shell.step(&recovery, &cmd);
    }
    assert_eq!(std::fs::read(new_host.join("seed")).unwrap(), seed);
}
