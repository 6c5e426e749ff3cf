//! The metrics listener of the real binary (docs/metrics.md): its own address, never the public
//! port; an exposition `promtool check metrics` and a strict parser accept; counters that move
//! with a scripted workload; no secret, email, id or raw path in any series.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::harness::{Server, bulwark, get, path_str, post_json, setup_tokens, try_serve_cmd};

const PASSWORD: &str = "a perfectly long passphrase";
const WRONG: &str = "canary-wrong-password-7f3a9c";
const EMAIL: &str = "metrics-owner@acme.test";

/// `serve` with the metrics listener on a free loopback port; the server and that address.
fn serve_with_metrics(cwd: &Path, data: &Path, extra: &[(&str, &str)]) -> (Server, String) {
    let mut cmd = bulwark(cwd);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path_str(data),
    ])
    .env("BULWARK_METRICS__ENABLED", "true")
    .env("BULWARK_METRICS__LISTEN", "127.0.0.1:0");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let server = try_serve_cmd(cmd).unwrap_or_else(|f| panic!("serve did not start:\n{f}"));
    let line = server
        .log_line("metrics endpoint ready")
        .unwrap_or_else(|| panic!("no `metrics endpoint ready` line: {:?}", server.log()));
    let addr = line["metrics_addr"].as_str().unwrap().to_owned();
    (server, addr)
}

/// Sets up over HTTP with the token the server printed; the org's id.
fn set_up(server: &Server) -> String {
    let token = setup_tokens(&server.proc.stderr_so_far())
        .pop()
        .expect("a setup token");
    let res = post_json(
        &server.addr,
        "/v1/setup",
        &json!({"setup_token": token, "org": {"name": "Acme Corp"},
                "owner": {"email": EMAIL, "password": PASSWORD}}),
    );
    assert_eq!(res.status, 201, "{res:?}");
    res.json()["org"]["id"].as_str().unwrap().to_owned()
}

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text format strictly: every sample belongs to the family the latest `# TYPE`
/// announced (with `_bucket`/`_sum`/`_count` for histograms), `# HELP` comes first, a family is
/// announced once, names and labels have the allowed characters, label values are escaped,
/// no label set repeats, histogram buckets are cumulative and end in `+Inf` equal to `_count`.
fn parse_strict(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut samples = Vec::new();
    let mut announced = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    let (mut family, mut kind, mut helped) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP has text");
            assert!(name_ok(name), "{line}");
            helped = name.to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, k) = rest.split_once(' ').expect("TYPE has a kind");
            assert_eq!(name, helped, "HELP precedes TYPE: {line}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&k),
                "kind: {line}"
            );
            assert!(
                announced.insert(name.to_owned()),
                "family announced twice: {line}"
            );
            (family, kind) = (name.to_owned(), k.to_owned());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(name_ok(name), "{line}");
        let allowed = match kind.as_str() {
            "histogram" => vec![
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ],
            _ => vec![family.clone()],
        };
        assert!(
            allowed.iter().any(|a| a == name),
            "sample outside its family {family}: {line}"
        );
        assert!(seen.insert(series.to_owned()), "series repeated: {line}");
        samples.push((name.to_owned(), labels, value));
    }
    check_histograms(&samples);
    samples
}

fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.is_empty(),
            "label name {key:?}: {line}"
        );
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars
                .next()
                .unwrap_or_else(|| panic!("unterminated: {line}"))
            {
                '\\' => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                '"' => break,
                '\n' => panic!("raw newline: {line}"),
                c => value.push(c),
            }
        }
        assert!(
            labels.insert(key, value).is_none(),
            "label repeated: {line}"
        );
        match chars.next() {
            None => break,
            Some(',') => {}
            other => panic!("after a label {other:?}: {line}"),
        }
    }
    labels
}

fn check_histograms(samples: &[Sample]) {
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for (name, labels, value) in samples {
        let mut rest = labels.clone();
        let le = rest.remove("le");
        let key = format!(
            "{}{rest:?}",
            name.trim_end_matches("_bucket").trim_end_matches("_count")
        );
        if name.ends_with("_bucket") {
            let le = le.expect("a bucket has `le`");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.entry(key).or_default().push((bound, *value));
        } else if name.ends_with("_count") {
            counts.insert(key, *value);
        }
    }
    for (key, list) in &buckets {
        assert!(
            list.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "buckets ascend and accumulate: {key} {list:?}"
        );
        let last = list.last().unwrap();
        assert!(last.0.is_infinite(), "ends in +Inf: {key}");
        assert_eq!(Some(&last.1), counts.get(key), "+Inf equals _count: {key}");
    }
}

/// The value of the one sample named `name` whose labels include `want` (0 when none).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(found.len() <= 1, "{name} {want:?} is ambiguous: {found:?}");
    found.first().copied().unwrap_or(0.0)
}

fn scrape(addr: &str) -> String {
    let res = get(addr, "/metrics");
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        res.content_type, "text/plain; version=0.0.4; charset=utf-8",
        "the Prometheus text format's media type"
    );
    res.body
}

/// `promtool check metrics` (Debian's `prometheus` package; `scripts/test` installs it) on `text`.
fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (Debian: apt-get install prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{said}"
    );
    assert!(said.trim().is_empty(), "promtool found problems:\n{said}");
}

#[test]
fn the_metrics_listener_serves_a_valid_exposition_whose_counters_follow_the_workload() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let (server, metrics) = serve_with_metrics(cwd.path(), &data, &[]);
    assert_ne!(metrics, server.addr, "a listener of its own");
    assert!(metrics.starts_with("127.0.0.1:"), "{metrics}");

    let org = set_up(&server);

    let before = parse_strict(&scrape(&metrics));
    for _ in 0..3 {
        let res = post_json(
            &server.addr,
            "/v1/auth/login",
            &json!({"email": EMAIL, "password": WRONG}),
        );
        assert_eq!(res.status, 401, "{res:?}");
    }
    // A route with an org id in its path, asked without credentials.
    for _ in 0..2 {
        assert_eq!(
            get(&server.addr, &format!("/v1/orgs/{org}/members")).status,
            401
        );
    }
    // A path no route matches, with an email and the password canary in it.
    let nowhere = format!("/nowhere/{EMAIL}/{WRONG}");
    assert_eq!(get(&server.addr, &nowhere).status, 404);
    // Metrics are not on the public port, and the metrics listener serves nothing else.
    assert_eq!(get(&server.addr, "/metrics").status, 404);
    assert_eq!(get(&metrics, "/").status, 404);
    assert_eq!(get(&metrics, "/v1/openapi.json").status, 404);

    let text = scrape(&metrics);
    let after = parse_strict(&text);
    promtool(&text);

    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(
        delta(
            "bulwark_signins_total",
            &[("method", "password"), ("outcome", "failure")]
        ),
        3.0,
        "three failed sign-ins"
    );
    assert_eq!(
        delta(
            "bulwark_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/auth/login"),
                ("status_class", "4xx")
            ]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "bulwark_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/v1/orgs/{org}/members"),
                ("status_class", "4xx")
            ]
        ),
        2.0,
        "counted under the route template"
    );
    assert_eq!(
        delta(
            "bulwark_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/v1/orgs/{org}/members")]
        ),
        2.0
    );
    assert!(
        delta(
            "bulwark_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "unmatched"),
                ("status_class", "4xx")
            ]
        ) >= 1.0
    );
    assert!(
        delta("bulwark_audit_events_appended_total", &[("log", "system")]) >= 3.0,
        "each failed sign-in is an audit event"
    );
    assert_eq!(
        value(&after, "bulwark_build_info", &[("engine", "sqlite")]),
        1.0
    );
    assert_eq!(
        value(&after, "bulwark_license_state", &[("state", "community")]),
        1.0
    );
    assert_eq!(value(&after, "bulwark_webhook_queue_depth", &[]), 0.0);
    assert!(value(&after, "bulwark_db_pool_max_connections", &[]) >= 1.0);
    for (collector, ok) in [("webhooks", 1.0), ("vault", 1.0)] {
        assert_eq!(
            value(
                &after,
                "bulwark_scrape_collector_success",
                &[("collector", collector)]
            ),
            ok
        );
    }

    // Low cardinality, nothing personal or secret: no raw path, id, email or password, and no
    // `org` label unless the operator opts in.
    for needle in [org.as_str(), EMAIL, WRONG, PASSWORD, "/nowhere", "acme"] {
        assert!(!text.contains(needle), "`{needle}` in the metrics:\n{text}");
    }
    assert!(
        after
            .iter()
            .all(|(_, labels, _)| !labels.contains_key("org")),
        "no org label by default"
    );
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn metrics_are_off_by_default_and_never_share_the_public_address() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let server = crate::harness::serve_on(cwd.path(), &data, &[]);
    assert!(
        server.log_line("metrics endpoint ready").is_none(),
        "no metrics listener unless enabled"
    );
    assert_eq!(get(&server.addr, "/metrics").status, 404);
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");

    // The same address as `listen` is a configuration error naming the key.
    let mut cmd = bulwark(cwd.path());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:18999",
        "--data-dir",
        path_str(&data),
    ])
    .env("BULWARK_METRICS__ENABLED", "true")
    .env("BULWARK_METRICS__LISTEN", "0.0.0.0:18999");
    let out = crate::harness::run_with(cmd, None, crate::harness::QUICK_EXIT);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("metrics.listen"), "{out}");
}

#[test]
fn per_org_labels_appear_only_when_the_operator_opts_in() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let (server, metrics) = serve_with_metrics(
        cwd.path(),
        &data,
        &[("BULWARK_METRICS__PER_ORG_LABELS", "true")],
    );
    let org = set_up(&server);
    // A sign-in is recorded in the member's orgs' logs too.
    let res = post_json(
        &server.addr,
        "/v1/auth/login",
        &json!({"email": EMAIL, "password": PASSWORD}),
    );
    assert_eq!(res.status, 200, "{res:?}");
    let text = scrape(&metrics);
    let samples = parse_strict(&text);
    assert_eq!(
        value(
            &samples,
            "bulwark_signins_total",
            &[("method", "password"), ("outcome", "success")]
        ),
        1.0
    );
    promtool(&text);
    assert!(
        value(
            &samples,
            "bulwark_audit_events_appended_total",
            &[("log", "org"), ("org", &org)]
        ) >= 1.0,
        "the sign-in in the org's log, labelled with its id:\n{text}"
    );
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
}

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `bulwark_…` metric name in `text` (a family's name, without histogram suffixes).
fn names_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("bulwark_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// docs/metrics.md's table names every family a scrape shows, and nothing else; the rows of
/// families that appear only when configured say so. The alerting rules pass
/// `promtool check rules` and name only documented metrics.
#[test]
fn the_metrics_page_and_the_alerting_rules_match_the_exposition() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let (server, metrics) = serve_with_metrics(cwd.path(), &data, &[]);
    let text = scrape(&metrics);
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    let scraped: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();

    let page = repo_file("docs/metrics.md");
    let rows: BTreeMap<String, String> = page
        .lines()
        .filter_map(|l| {
            let name = l.strip_prefix("| `bulwark_")?.split('`').next()?;
            Some((format!("bulwark_{name}"), l.to_owned()))
        })
        .collect();
    for name in &scraped {
        assert!(
            rows.contains_key(name),
            "`{name}` is not in docs/metrics.md"
        );
    }
    for (name, row) in &rows {
        assert!(
            scraped.contains(name) || row.contains("only when"),
            "docs/metrics.md lists `{name}`, which the scrape does not show (and the row does not say when it appears)"
        );
    }

    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yaml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool on PATH");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = repo_file("deploy/prometheus/alerts.yaml");
    let named = names_in(&alerts);
    assert!(named.len() >= 8, "{named:?}");
    for name in named {
        let family = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_count"))
            .or_else(|| name.strip_suffix("_sum"))
            .unwrap_or(&name);
        assert!(
            rows.contains_key(family),
            "deploy/prometheus/alerts.yaml names `{name}`, which docs/metrics.md does not list"
        );
    }
}

/// The metrics listener keeps the public listener's header-read timeout: a client that opens a
/// connection and trickles an unfinished request head is cut off, and scrapes still answer.
#[test]
fn the_metrics_listener_cuts_off_a_request_head_that_never_ends() {
    use std::io::Read as _;
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let (server, metrics) = serve_with_metrics(
        cwd.path(),
        &data,
        &[("BULWARK_HTTP__HEADER_READ_TIMEOUT_SECS", "1")],
    );
    let mut slow = std::net::TcpStream::connect(&metrics).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(10),
        "the unfinished head was held for {waited:?}"
    );
    let answered = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || answered.starts_with("HTTP/1.1 408"),
        "{answered}"
    );
    assert!(scrape(&metrics).contains("bulwark_build_info"));
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
}
