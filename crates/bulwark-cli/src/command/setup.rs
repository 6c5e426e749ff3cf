//! `bulwark setup`: the first org and owner, from a local operator shell.

use std::io::BufRead as _;

use bulwark_core::setup::{self, SetupAuth, SetupInput};
use bulwark_server::startup;
use bulwark_types::SystemClock;
use secrecy::SecretString;

use crate::command::{Format, load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Reads the password from stdin and creates the org and owner.
pub async fn run(
    args: StoreArgs,
    org: &str,
    slug: Option<&str>,
    email: &str,
    format: Format,
) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let usage = |m: String| {
        eprintln!("error: {m}");
        Exit::Config
    };
    let org_name = match org.parse() {
        Ok(v) => v,
        Err(e) => return usage(format!("--org: {e}")),
    };
    let org_slug = match slug.map(str::parse).transpose() {
        Ok(v) => v,
        Err(e) => return usage(format!("--slug: {e}")),
    };
    let owner_email = match email.parse() {
        Ok(v) => v,
        Err(e) => return usage(format!("--email: {e}")),
    };
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err()
        || line.trim_end_matches(['\r', '\n']).is_empty()
    {
        return usage("no password on standard input".into());
    }
    let owner_password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
    line.clear();
    // Checked before anything is created: a refused setup leaves no data dir, seed or database.
    if let Err(e) = setup::check_new_password(&owner_password, "password") {
        return usage(format!("{e}"));
    }

    let store = match startup::open_store(&config).await {
        Ok(s) => s,
        Err(e) => return start_failed(&e),
    };
    let seed = match startup::load_or_create_seed(&config.data_dir, &*store).await {
        Ok(s) => s,
        Err(e) => return start_failed(&e),
    };
    if let Err(e) = setup::bootstrap(&*store, &seed, &SystemClock).await {
        return start_failed(&e.into());
    }
    let hasher = bulwark_core::hashing::HashPool::new(1, config.passwords.params());
    let input = SetupInput {
        org_name,
        org_slug,
        owner_email,
        owner_password,
        context: bulwark_audit::event::Context::system(Some("bulwark setup (local operator)")),
    };
    match setup::complete_setup(
        &*store,
        &hasher,
        &SystemClock,
        SetupAuth::LocalOperator,
        input,
    )
    .await
    {
        Ok(out) => {
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"org": {"id": out.org.id, "slug": out.org.slug, "name": out.org.name}, "owner": {"id": out.owner_id, "email": email}})
                ),
                Format::Text => println!(
                    "created org {} ({}) with owner {} ({email})",
                    out.org.slug, out.org.id, out.owner_id
                ),
            }
            Exit::Ok
        }
        Err(bulwark_core::CoreError::SetupCompleted) => {
            eprintln!("error: setup has already been completed");
            Exit::Failure
        }
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                bulwark_core::CoreError::Validation { .. }
                | bulwark_core::CoreError::WeakPassword { .. }
                | bulwark_core::CoreError::Conflict(_) => Exit::Config,
                _ => Exit::Failure,
            }
        }
    }
}
