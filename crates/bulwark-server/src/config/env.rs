//! The `BULWARK_*` environment layer over the file: `BULWARK_A__B` sets key `a.b` (`__` nests),
//! a value is read as a TOML literal when it is one, and `…_FILE` reads the value from a file
//! (for secrets). Each variable is checked against the schema as it is applied, so an error
//! names the variable.

use serde::Deserialize;

use super::{Config, ConfigError};

/// Environment variables with the `BULWARK_` prefix that are not configuration keys.
const NON_CONFIG_ENV: &[&str] = &[
    "BULWARK_CONFIG",
    "BULWARK_APP_ROLE",
    "BULWARK_MIGRATE_DATABASE_URL",
    "BULWARK_LOG",
];
/// Prefixes of environment variables reserved for the test and bench harnesses.
const RESERVED_ENV_PREFIXES: &[&str] = &["BULWARK_TEST_", "BULWARK_BENCH_"];

/// Sets one `BULWARK_A__B` variable as key `a.b`. `…_FILE` reads the value from a file (for
/// secrets such as `BULWARK_DATABASE_URL_FILE`).
pub(super) fn apply_env(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let Some(name) = var.strip_prefix("BULWARK_") else {
        return Ok(());
    };
    if NON_CONFIG_ENV.contains(&var) || RESERVED_ENV_PREFIXES.iter().any(|p| var.starts_with(p)) {
        return Ok(());
    }
    let env_err = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let (name, value) = match name.strip_suffix("_FILE") {
        Some(base) => {
            let content = std::fs::read_to_string(raw)
                .map_err(|e| env_err(format!("cannot read `{raw}`: {e}")))?;
            (
                base,
                toml::Value::String(content.trim_end_matches(['\n', '\r']).to_owned()),
            )
        }
        None => (name, env_value(raw)),
    };
    let path: Vec<String> = name
        .to_ascii_lowercase()
        .split("__")
        .map(str::to_owned)
        .collect();
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| env_err("empty key".into()))?;
    let mut cursor = &mut *table;
    for p in parents {
        let entry = cursor
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = entry
            .as_table_mut()
            .ok_or_else(|| env_err(format!("`{p}` is not a table")))?;
    }
    cursor.insert(last.clone(), value);
    // Check this variable alone against the schema, so the error names it.
    Config::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| env_err(e.message().to_owned()))?;
    Ok(())
}

/// Reads an environment value as a TOML literal (number, bool, array) when it is one, else as a
/// string.
fn env_value(raw: &str) -> toml::Value {
    let looks_literal =
        raw.starts_with('[') || raw == "true" || raw == "false" || raw.parse::<i64>().is_ok();
    if looks_literal
        && let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.get("v")
    {
        return v.clone();
    }
    toml::Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::Overrides;
    use super::super::tests::env;
    use super::*;

    #[test]
    fn an_unknown_or_malformed_env_var_is_named() {
        let msg = Config::load(None, env(&[("BULWARK_LISTN", "x")]), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("BULWARK_LISTN") && msg.contains("listn"),
            "{msg}"
        );
        let msg = Config::load(
            None,
            env(&[("BULWARK_HTTP__BODY_LIMIT_BYTES", "lots")]),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("BULWARK_HTTP__BODY_LIMIT_BYTES"), "{msg}");
    }
}
