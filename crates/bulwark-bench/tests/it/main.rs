//! The real `bulwark-bench` binary: the docs' synopses show only its subcommands and flags, and
//! a short benchmark runs to its table on both engines. What a benchmark measures is never
//! asserted (`docs/BENCHMARKS.md`): only that it runs and reports.
//!
//! The PostgreSQL run needs the throwaway cluster of `scripts/test` (`BULWARK_TEST_PG_URL`).
#![expect(
    clippy::unwrap_used,
    reason = "integration tests: a failed step is a failed test"
)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark-bench");

/// `bulwark-bench ARGS` in a temp dir with no `BULWARK_*` variable of the test environment.
fn bench(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir.path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BULWARK_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every line of a non-`sh` block of README.md and docs/ that runs `bulwark-bench` names
/// subcommands and flags the binary has (bulwark-cli checks the `bulwark` ones the same way).
#[test]
fn the_synopses_in_the_docs_show_only_subcommands_and_flags_the_binary_has() {
    let checked = bulwark_testkit::docs::check_synopses("bulwark-bench", Path::new(BIN));
    assert!(
        checked.contains("docs/BENCHMARKS.md"),
        "no synopsis checked in docs/BENCHMARKS.md: {checked:?}"
    );
}

#[test]
fn bench_store_runs_to_its_table_on_sqlite() {
    let out = bench(&["store", "--tasks", "2", "--seconds", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bench store (sqlite)"), "{}", text(&out));
    assert!(stdout.contains("ratio ours / baseline:"), "{}", text(&out));
}

/// On a database migrated as `docs/BENCHMARKS.md` says (`bulwark migrate`), connected as the
/// application role. Skipped, saying so, without the cluster of `scripts/test`.
#[test]
fn bench_store_runs_to_its_table_on_postgres() {
    if std::env::var_os(bulwark_testkit::pg::PG_URL_ENV).is_none() {
        eprintln!("skipped: no PostgreSQL (`scripts/test` provides one)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(async {
        let db = bulwark_testkit::pg::fresh_database().await;
        bulwark_store_postgres::migrate(&db.owner_url, &db.app_role)
            .await
            .unwrap();
        db
    });
    let out = bench(&[
        "store",
        "--tasks",
        "2",
        "--seconds",
        "1",
        "--database-url",
        &db.app_url,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bench store (postgres)"), "{}", text(&out));
    assert!(stdout.contains("ratio ours / baseline:"), "{}", text(&out));
}

/// `startup` runs the `bulwark` binary; without one it says where it looked and how to build it.
#[test]
fn bench_startup_without_the_bulwark_binary_says_how_to_build_it() {
    let out = bench(&[
        "startup",
        "--runs",
        "1",
        "--bulwark",
        "/nonexistent/bulwark",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`/nonexistent/bulwark` not found")
            && stderr.contains("cargo build --release --workspace"),
        "{}",
        text(&out)
    );
}

/// Usage errors exit 2, as clap's do.
#[test]
fn an_unknown_benchmark_is_a_usage_error() {
    let out = bench(&["serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
