//! `--help` is consistent across subcommands: every flag read from the environment shows its
//! variable, every flag with a default shows it, and defaults kept in the configuration (not in
//! clap) are written in the help as they are in `Config::default()`.

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
    walk(&Cli::command(), "bulwark", &mut out);
    out
}

fn help(arg: &clap::Arg) -> String {
    arg.get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[test]
fn the_cli_definition_is_valid() {
    Cli::command().debug_assert();
}

/// Benchmarks are `bulwark-bench`'s (crates/bulwark-bench), never the operator's binary's.
#[test]
fn the_operators_binary_has_no_benchmark_command() {
    assert!(Cli::command().find_subcommand("bench").is_none());
}

#[test]
fn every_store_and_listen_flag_shows_its_environment_variable() {
    let args = all_args();
    let mut seen = 0;
    for (path, arg) in &args {
        let expected = match arg.get_id().as_str() {
            "config" => "BULWARK_CONFIG",
            "data_dir" => "BULWARK_DATA_DIR",
            "listen" => "BULWARK_LISTEN",
            // The owner role of `migrate` is not the application role `serve` connects as.
            "database_url" if path == "bulwark migrate" => "BULWARK_MIGRATE_DATABASE_URL",
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
    assert!(seen > 40, "the walk found the store flags ({seen})");
}

#[test]
fn a_variable_named_in_the_help_is_one_the_flag_reads() {
    for (path, arg) in all_args() {
        let text = help(&arg);
        if text.contains("BULWARK_") {
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            assert!(
                !env.is_empty() && text.contains(env),
                "`{path} --{}` names a variable in prose instead of `env`: {text}",
                arg.get_id()
            );
        }
    }
}

#[test]
fn every_default_is_shown() {
    let config = bulwark_server::config::Config::default();
    let layered = [
        ("data_dir", config.data_dir.display().to_string()),
        ("listen", config.listen.to_string()),
    ];
    for (path, arg) in all_args() {
        let id = arg.get_id().as_str();
        if !arg.get_default_values().is_empty() {
            assert!(
                !arg.is_hide_default_value_set(),
                "`{path} --{id}` hides its default"
            );
        }
        if let Some((_, default)) = layered.iter().find(|(k, _)| *k == id) {
            let text = help(&arg);
            assert!(
                text.contains(&format!("[default: {default}]")),
                "`{path} --{id}`: the help does not show the configuration's default `{default}`: {text}"
            );
        }
    }
}

#[test]
fn rendered_help_shows_variables_and_defaults() {
    let mut cli = Cli::command();
    let serve = cli
        .find_subcommand_mut("serve")
        .map(|c| c.render_long_help().to_string())
        .unwrap_or_default();
    for needle in [
        "[env: BULWARK_LISTEN",
        "[default: 127.0.0.1:8420]",
        "[env: BULWARK_DATA_DIR",
        "[default: ./bulwark-data]",
        "[env: BULWARK_DATABASE_URL",
        "[env: BULWARK_CONFIG",
    ] {
        assert!(
            serve.contains(needle),
            "`serve --help` lacks `{needle}`:\n{serve}"
        );
    }
}
