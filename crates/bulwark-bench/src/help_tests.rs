//! `--help` is consistent across subcommands, as `bulwark`'s is: every store flag shows the
//! variable it reads (and never a database URL's value), and every default is shown.

use clap::CommandFactory as _;

use crate::Cli;

/// Every (command path, arg) pair of the CLI, subcommands included.
fn all_args() -> Vec<(String, clap::Arg)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for arg in cmd.get_arguments() {
            out.push((path.to_owned(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), "bulwark-bench", &mut out);
    out
}

#[test]
fn the_cli_definition_is_valid() {
    Cli::command().debug_assert();
}

#[test]
fn the_subcommands_are_the_documented_benchmarks() {
    let cli = Cli::command();
    let mut names: Vec<&str> = cli.get_subcommands().map(clap::Command::get_name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "audit", "auth", "authz", "backup", "console", "http", "keys", "scim", "sso",
            "startup", "store", "vault", "webhooks"
        ]
    );
}

#[test]
fn every_store_flag_shows_its_environment_variable() {
    let mut seen = 0;
    for (path, arg) in all_args() {
        let expected = match arg.get_id().as_str() {
            "config" => "BULWARK_CONFIG",
            "data_dir" => "BULWARK_DATA_DIR",
            "database_url" => "BULWARK_DATABASE_URL",
            _ => continue,
        };
        seen += 1;
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(expected),
            "`{path} --{}`",
            arg.get_id()
        );
        assert!(!arg.is_hide_env_set(), "`{path} --{}`", arg.get_id());
        if arg.get_id() == "database_url" {
            assert!(
                arg.is_hide_env_values_set(),
                "`{path} --database-url` must not print the URL (it holds a password)"
            );
        }
    }
    assert_eq!(
        seen, 15,
        "store, audit, webhooks, scim and backup take the store flags"
    );
}

#[test]
fn every_default_is_shown() {
    for (path, arg) in all_args() {
        if !arg.get_default_values().is_empty() {
            assert!(
                !arg.is_hide_default_value_set(),
                "`{path} --{}` hides its default",
                arg.get_id()
            );
        }
    }
}
