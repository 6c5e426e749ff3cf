//! `bulwark orgs create`: another organisation, by a host operator, within the license's limits.

use bulwark_types::{Email, OrgName, Slug};

use crate::Exit;
use crate::command::{load_config, start_failed};

/// `orgs create --name NAME [--slug SLUG] --owner-email EMAIL`: exit 3 when the license does not
/// allow another org (audited), 2 on bad input.
pub async fn create(args: crate::StoreArgs, name: &str, slug: Option<&str>, owner: &str) -> Exit {
    let bad = |what: &str| {
        eprintln!("error: {what}");
        Exit::Config
    };
    let Ok(name) = name.parse::<OrgName>() else {
        return bad("--name must be 1 to 200 characters");
    };
    let slug = match slug.map(str::parse::<Slug>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return bad("--slug must be a lowercase slug (a-z, 0-9, -)"),
    };
    let Ok(owner_email) = owner.parse::<Email>() else {
        return bad("--owner-email is not an email address");
    };
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (store, licensing, _) =
        match bulwark_server::startup::open_licensing_for_tools(&config).await {
            Ok(v) => v,
            Err(e) => return start_failed(&e),
        };
    let context =
        bulwark_audit::event::Context::system(Some("bulwark orgs create (host operator)"));
    let created = bulwark_core::setup::create_org(
        &*store,
        &bulwark_types::SystemClock,
        &licensing,
        bulwark_core::setup::OrgCreator::LocalOperator,
        bulwark_core::setup::NewOrg {
            name,
            slug,
            owner_email,
            context,
        },
    )
    .await;
    match created {
        Ok(org) => {
            println!("created {} ({})", org.id, org.slug);
            Exit::Ok
        }
        Err(bulwark_core::CoreError::Entitlement { code, message }) => {
            eprintln!("error: {message} ({code})");
            Exit::Refused
        }
        Err(
            e @ (bulwark_core::CoreError::Validation { .. } | bulwark_core::CoreError::Conflict(_)),
        ) => {
            eprintln!("error: {e}");
            Exit::Config
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}
