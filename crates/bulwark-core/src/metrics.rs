//! The process's operational metrics, rendered in the Prometheus text exposition format
//! (version 0.0.4) on the separate metrics listener (docs/metrics.md, ADR 0025).
//!
//! Every series the process records is declared here, with its help text and label names, so the
//! operator page and the cardinality rules have one place to be checked against. Label values
//! come from closed sets (route templates, methods, outcomes, actions), never from raw paths,
//! ids or emails; the one exception is the `org` label, filled only when the operator opts in
//! (`metrics.per_org_labels`, [`set_per_org_labels`]) and empty otherwise (an empty label is
//! left out when rendered, which Prometheus reads as no label). A family never holds more than
//! [`MAX_SERIES`] label sets: past that, new sets count under `_overflow`.
//!
//! Recording is a few relaxed atomic operations and, for a labelled family, one hash lookup under
//! a read lock: cheap enough to stay on whether or not anything scrapes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

/// Most label sets one family keeps, the `_overflow` one included: once the others fill it, new
/// label sets are counted under the value `_overflow` (an empty value stays empty).
pub const MAX_SERIES: usize = 2_000;

/// Latency buckets in seconds (0.5 ms … 10 s).
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Batch-size buckets (events per append).
pub const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static PER_ORG: AtomicBool = AtomicBool::new(false);
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns recording on or off (`metrics.enabled`). Off by default: then recording is one relaxed
/// load and nothing else, and nothing is counted.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Turns the `org` label on (the operator's `metrics.per_org_labels`). Off by default: an org id
/// per series multiplies the series by the number of orgs.
pub fn set_per_org_labels(on: bool) {
    PER_ORG.store(on, Ordering::Relaxed);
}

/// The `org` label's value for `org`: its id when per-org labels are on, else empty (left out).
#[must_use]
pub fn org_label(org: Option<bulwark_types::OrgId>) -> String {
    match org {
        Some(id) if PER_ORG.load(Ordering::Relaxed) => id.to_string(),
        _ => String::new(),
    }
}

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observations counted into fixed buckets, with their sum.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then `+Inf`; not cumulative (made so when rendered).
    counts: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// How many observations so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// What a family's series are.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    /// [`Counter`]s.
    Counter,
    /// [`Histogram`]s.
    Histogram(&'static [f64]),
}

enum Series {
    Counter(Counter),
    Histogram(Histogram),
}

/// A named metric with fixed label names, one series per label set seen.
pub struct Family {
    /// The metric name (`bulwark_…`).
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// Label names, in order.
    pub labels: &'static [&'static str],
    /// Counter or histogram.
    pub kind: Kind,
    series: RwLock<HashMap<String, (Vec<String>, Series)>>,
}

impl Family {
    fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        kind: Kind,
    ) -> Self {
        let family = Self {
            name,
            help,
            labels,
            kind,
            series: RwLock::new(HashMap::new()),
        };
        if labels.is_empty() {
            // A series without labels exists from the start, reading 0 (not absent).
            family.with(&[], |_| {});
        }
        family
    }

    /// Adds `n` to the counter labelled `values` (one per label name, in order).
    pub fn add(&self, values: &[&str], n: u64) {
        if !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        self.with(values, |s| {
            if let Series::Counter(c) = s {
                c.add(n);
            }
        });
    }

    /// Adds one to the counter labelled `values`.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// Records `value` in the histogram labelled `values`.
    pub fn observe(&self, values: &[&str], value: f64) {
        if !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        self.with(values, |s| {
            if let Series::Histogram(h) = s {
                h.observe(value);
            }
        });
    }

    fn with(&self, values: &[&str], f: impl FnOnce(&Series)) {
        let key = values.join("\u{1f}");
        {
            let map = self
                .series
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, s)) = map.get(&key) {
                f(s);
                return;
            }
        }
        let mut map = self
            .series
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The last slot is kept for `_overflow`, so a family never holds more than MAX_SERIES.
        let (key, values): (String, Vec<String>) = if map.len() + 1 >= MAX_SERIES {
            let v: Vec<String> = values
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        String::new()
                    } else {
                        "_overflow".to_owned()
                    }
                })
                .collect();
            (v.join("\u{1f}"), v)
        } else {
            (key, values.iter().map(|v| (*v).to_owned()).collect())
        };
        let entry = map.entry(key).or_insert_with(|| {
            let series = match self.kind {
                Kind::Counter => Series::Counter(Counter::default()),
                Kind::Histogram(bounds) => Series::Histogram(Histogram::new(bounds)),
            };
            (values, series)
        });
        f(&entry.1);
    }

    /// The counter's value (or the histogram's count) for `values`; 0 when never recorded.
    #[must_use]
    pub fn value(&self, values: &[&str]) -> u64 {
        let map = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&values.join("\u{1f}")) {
            Some((_, Series::Counter(c))) => c.get(),
            Some((_, Series::Histogram(h))) => h.count(),
            None => 0,
        }
    }

    /// The sum of every series' value (counters) or count (histograms).
    #[must_use]
    pub fn total(&self) -> u64 {
        let map = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values()
            .map(|(_, s)| match s {
                Series::Counter(c) => c.get(),
                Series::Histogram(h) => h.count(),
            })
            .sum()
    }

    /// Appends the family in the text format: `# HELP`, `# TYPE`, then each series (sorted, so
    /// two scrapes list them in the same order).
    pub fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Histogram(_) => "histogram",
        };
        header(out, self.name, self.help, kind);
        let map = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rows: Vec<&(Vec<String>, Series)> = map.values().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (values, series) in rows {
            let pairs: Vec<(&str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            match series {
                Series::Counter(c) => sample(out, self.name, &pairs, c.get() as f64),
                Series::Histogram(h) => {
                    let mut cumulative = 0u64;
                    let bucket = format!("{}_bucket", self.name);
                    for (i, count) in h.counts.iter().enumerate() {
                        cumulative += count.load(Ordering::Relaxed);
                        let le = h
                            .bounds
                            .get(i)
                            .map_or_else(|| "+Inf".to_owned(), |b| format_value(*b));
                        let mut with_le = pairs.clone();
                        with_le.push(("le", &le));
                        sample(out, &bucket, &with_le, cumulative as f64);
                    }
                    let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
                    sample(out, &format!("{}_sum", self.name), &pairs, sum);
                    sample(
                        out,
                        &format!("{}_count", self.name),
                        &pairs,
                        cumulative as f64,
                    );
                }
            }
        }
    }
}

/// Appends `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends one sample line; labels with an empty value are left out.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    let mut first = true;
    for (k, v) in labels.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// A sample value as the text format writes it (`+Inf`, `-Inf`, `NaN`, or a number).
#[must_use]
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Every family the process records (the scrape adds gauges read at scrape time).
pub struct Metrics {
    /// HTTP requests answered.
    pub http_requests: Family,
    /// HTTP request latency.
    pub http_duration: Family,
    /// Sign-in steps by method and outcome.
    pub signins: Family,
    /// Secret checks refused because the throttle was closed.
    pub throttled: Family,
    /// Requests refused by a rate limit.
    pub rate_limited: Family,
    /// Authorization denials.
    pub authz_denials: Family,
    /// Session and API-key cache lookups.
    pub cache_lookups: Family,
    /// Audit events appended.
    pub audit_appended: Family,
    /// Events per append.
    pub audit_batch: Family,
    /// Time to write an append.
    pub audit_append: Family,
    /// Checkpoints signed and stored.
    pub audit_checkpoints: Family,
    /// Checkpoint publication failures.
    pub audit_publication_failures: Family,
    /// Webhook delivery attempts.
    pub webhook_attempts: Family,
    /// Endpoints disabled after failing.
    pub webhook_disabled: Family,
    /// Vault operations.
    pub vault_operations: Family,
    /// Credentials rewrapped to the current key version.
    pub vault_rewrapped: Family,
    /// Time to get a write transaction.
    pub db_acquire: Family,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    http_requests: Family::new(
        "bulwark_http_requests_total",
        "HTTP requests answered, by method, route template and status class.",
        &["method", "route", "status_class"],
        Kind::Counter,
    ),
    http_duration: Family::new(
        "bulwark_http_request_duration_seconds",
        "Time from the request's arrival to its answer, by method and route template.",
        &["method", "route"],
        Kind::Histogram(SECONDS),
    ),
    signins: Family::new(
        "bulwark_signins_total",
        "Sign-in steps by method (password, totp, backup_code, oidc, saml) and outcome (success, failure, second_factor_required).",
        &["method", "outcome"],
        Kind::Counter,
    ),
    throttled: Family::new(
        "bulwark_secret_checks_throttled_total",
        "Checks of a secret (password, second factor, reset or recovery code) refused unchecked because its throttle was closed.",
        &[],
        Kind::Counter,
    ),
    rate_limited: Family::new(
        "bulwark_rate_limited_total",
        "Requests refused by a rate limit, by limiter (address, api_key, org).",
        &["limiter"],
        Kind::Counter,
    ),
    authz_denials: Family::new(
        "bulwark_authz_denials_total",
        "Requests the authorization decision denied, by action.",
        &["action", "org"],
        Kind::Counter,
    ),
    cache_lookups: Family::new(
        "bulwark_cache_lookups_total",
        "Lookups in the in-process caches (session, api_key), by result (hit, miss).",
        &["cache", "result"],
        Kind::Counter,
    ),
    audit_appended: Family::new(
        "bulwark_audit_events_appended_total",
        "Audit events appended (written in their transaction), by log kind (system, org).",
        &["log", "org"],
        Kind::Counter,
    ),
    audit_batch: Family::new(
        "bulwark_audit_append_batch_size",
        "Events written per append call (a change appends its events in its own transaction, once or a few times; a group commit of stand-alone events writes many at once).",
        &[],
        Kind::Histogram(BATCH),
    ),
    audit_append: Family::new(
        "bulwark_audit_append_duration_seconds",
        "Time to write one append (events, log head, webhook outbox rows) inside its transaction.",
        &[],
        Kind::Histogram(SECONDS),
    ),
    audit_checkpoints: Family::new(
        "bulwark_audit_checkpoints_signed_total",
        "Audit checkpoints signed, published and stored.",
        &[],
        Kind::Counter,
    ),
    audit_publication_failures: Family::new(
        "bulwark_audit_checkpoint_publication_failures_total",
        "Audit checkpoints that could not be published (file or collector); retried.",
        &[],
        Kind::Counter,
    ),
    webhook_attempts: Family::new(
        "bulwark_webhook_attempts_total",
        "Webhook delivery attempts, by outcome (delivered, failed, unavailable).",
        &["outcome", "org"],
        Kind::Counter,
    ),
    webhook_disabled: Family::new(
        "bulwark_webhook_endpoints_disabled_total",
        "Webhook endpoints disabled after failing for too long.",
        &[],
        Kind::Counter,
    ),
    vault_operations: Family::new(
        "bulwark_vault_operations_total",
        "Vault operations, by operation (seal, open, rewrap) and outcome (ok, error).",
        &["operation", "outcome"],
        Kind::Counter,
    ),
    vault_rewrapped: Family::new(
        "bulwark_vault_rewrapped_total",
        "Credentials rewrapped to the current key version by the rewrap job.",
        &[],
        Kind::Counter,
    ),
    db_acquire: Family::new(
        "bulwark_db_transaction_wait_seconds",
        "Time from asking for a write transaction to holding it: a pooled connection and, on SQLite, the write lock.",
        &[],
        Kind::Histogram(SECONDS),
    ),
});

/// The process's metrics.
#[must_use]
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Every family, in the order they are rendered.
    #[must_use]
    pub fn families(&self) -> [&Family; 17] {
        [
            &self.http_requests,
            &self.http_duration,
            &self.signins,
            &self.throttled,
            &self.rate_limited,
            &self.authz_denials,
            &self.cache_lookups,
            &self.audit_appended,
            &self.audit_batch,
            &self.audit_append,
            &self.audit_checkpoints,
            &self.audit_publication_failures,
            &self.webhook_attempts,
            &self.webhook_disabled,
            &self.vault_operations,
            &self.vault_rewrapped,
            &self.db_acquire,
        ]
    }

    /// Renders every family.
    pub fn render(&self, out: &mut String) {
        for f in self.families() {
            f.render(out);
        }
    }
}

/// Records one sign-in step.
pub fn signin(method: &str, outcome: &str) {
    metrics().signins.inc(&[method, outcome]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(kind: Kind, labels: &'static [&'static str]) -> Family {
        set_enabled(true);
        Family::new("t_total", "help \\ with\nnewline", labels, kind)
    }

    #[test]
    fn counters_render_sorted_with_escaped_labels_and_empty_labels_left_out() {
        let f = family(Kind::Counter, &["a", "org"]);
        f.inc(&["x\"y\\z\nw", ""]);
        f.add(&["b", "o1"], 2);
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_total help \\\\ with\\nnewline\n# TYPE t_total counter\n\
             t_total{a=\"b\",org=\"o1\"} 2\nt_total{a=\"x\\\"y\\\\z\\nw\"} 1\n"
        );
        assert_eq!(f.value(&["b", "o1"]), 2);
        assert_eq!(f.value(&["never", ""]), 0);
    }

    #[test]
    fn histograms_are_cumulative_with_sum_count_and_inf() {
        let f = family(Kind::Histogram(&[0.1, 1.0]), &[]);
        for v in [0.05, 0.5, 0.5, 7.0] {
            f.observe(&[], v);
        }
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("t_total_bucket{le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("t_total_bucket{le=\"1\"} 3\n"), "{out}");
        assert!(out.contains("t_total_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("t_total_sum 8.05\n"), "{out}");
        assert!(out.contains("t_total_count 4\n"), "{out}");
    }

    #[test]
    fn a_family_stops_growing_at_the_series_cap() {
        let f = family(Kind::Counter, &["id"]);
        for i in 0..MAX_SERIES + 50 {
            f.inc(&[&i.to_string()]);
        }
        assert_eq!(f.value(&["_overflow"]), 51);
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(out.lines().count(), 2 + MAX_SERIES);
        // An empty label (per-org labels off) stays empty in the overflow series.
        let g = family(Kind::Counter, &["id", "org"]);
        for i in 0..MAX_SERIES + 1 {
            g.inc(&[&i.to_string(), ""]);
        }
        assert_eq!(g.value(&["_overflow", ""]), 2);
    }

    #[test]
    fn nothing_is_counted_while_recording_is_off() {
        let f = family(Kind::Counter, &["a"]);
        set_enabled(false);
        f.inc(&["x"]);
        set_enabled(true);
        f.inc(&["y"]);
        assert_eq!((f.value(&["x"]), f.value(&["y"])), (0, 1));
    }

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for f in metrics().families() {
            assert!(f.name.starts_with("bulwark_"), "{}", f.name);
            match f.kind {
                Kind::Counter => assert!(f.name.ends_with("_total"), "{}", f.name),
                Kind::Histogram(b) => {
                    assert!(!f.name.ends_with("_total"), "{}", f.name);
                    assert!(b.windows(2).all(|w| w[0] < w[1]), "{}", f.name);
                }
            }
            assert!(
                f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
                "{}",
                f.name
            );
            assert!(!f.labels.contains(&"le"), "{}", f.name);
        }
    }
}
