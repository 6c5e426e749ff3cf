//! `bulwark authz explain`: replays an authorization decision offline, from the store, and
//! prints why it came out as it did.

use bulwark_authz::{Action, Facts, Resource};
use bulwark_core::CoreError;
use bulwark_core::authz::{Authz, Explanation, Question, Target};
use bulwark_server::startup;
use bulwark_types::{OrgId, Role, UserId};

use crate::command::{Format, load_config, start_failed};
use crate::{Exit, StoreArgs};

/// What `explain` was asked, as typed on the command line.
pub struct Args {
    /// `org_…`
    pub org: String,
    /// `usr_…` or an email.
    pub principal: String,
    /// An action name.
    pub action: String,
    /// `org`, `member:usr_…`, `invitation:ROLE` or `team:team_…`.
    pub resource: String,
    /// A role to assume instead of the principal's current one.
    pub role: Option<String>,
    /// The role being granted (`members.role.write`).
    pub granted_role: Option<String>,
    /// The policy set's hash; the one in force when absent.
    pub policy_hash: Option<String>,
    /// Output format.
    pub format: Format,
}

fn usage(what: &str) -> Exit {
    eprintln!("error: {what}");
    Exit::Config
}

fn parse_role(flag: &str, raw: Option<&str>) -> Result<Option<Role>, Exit> {
    raw.map(|r| {
        r.parse().map_err(|_| {
            usage(&format!(
                "{flag}: `{r}` is not owner, admin, member or auditor"
            ))
        })
    })
    .transpose()
}

fn parse_target(raw: &str) -> Result<Target, Exit> {
    let bad = || {
        usage(&format!(
            "--resource: `{raw}` is not `org`, `member:usr_…`, `invitation:ROLE` or `team:team_…`"
        ))
    };
    match raw.split_once(':') {
        None if raw == "org" => Ok(Target::Org),
        Some(("member", id)) => id.parse().map(Target::Member).map_err(|_| bad()),
        Some(("team", id)) => id.parse().map(Target::Team).map_err(|_| bad()),
        Some(("invitation", role)) => role.parse().map(Target::Invitation).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Replays the decision and prints it.
pub async fn explain(store_args: StoreArgs, args: Args) -> Exit {
    let Ok(org) = args.org.parse::<OrgId>() else {
        return usage(&format!("--org: `{}` is not an org id (org_…)", args.org));
    };
    let Some(action) = Action::parse(&args.action) else {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        return usage(&format!(
            "--action: `{}` is not an action; one of: {}",
            args.action,
            names.join(", ")
        ));
    };
    let (target, role, granted_role) = match (
        parse_target(&args.resource),
        parse_role("--role", args.role.as_deref()),
        parse_role("--granted-role", args.granted_role.as_deref()),
    ) {
        (Ok(t), Ok(r), Ok(g)) => (t, r, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let config = match load_config(&store_args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let authz = match Authz::new() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let store = match startup::open_store(&config).await {
        Ok(s) => s,
        Err(e) => return start_failed(&e),
    };
    let user = match principal(&*store, &args.principal).await {
        Ok(u) => u,
        Err(e) => return e,
    };
    let question = Question {
        org,
        user,
        role,
        action,
        target,
        facts: Facts { granted_role },
        policy_hash: args.policy_hash.clone(),
    };
    match bulwark_core::authz::explain(&*store, &authz, question).await {
        Ok(explained) => {
            match args.format {
                Format::Text => print_text(&explained),
                Format::Json => println!("{}", to_json(&explained)),
            }
            Exit::Ok
        }
        Err(CoreError::NotFound) => {
            eprintln!(
                "error: no such org, resource{} in this deployment",
                if args.policy_hash.is_some() {
                    " or policy set (that hash was never active in this org)"
                } else {
                    ""
                }
            );
            Exit::Failure
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

async fn principal(store: &dyn bulwark_core::ports::Store, raw: &str) -> Result<UserId, Exit> {
    if let Ok(id) = raw.parse::<UserId>() {
        return Ok(id);
    }
    let Ok(email) = raw.parse() else {
        return Err(usage(&format!(
            "--principal: `{raw}` is neither a user id (usr_…) nor an email"
        )));
    };
    let found = match store.system().await {
        Ok(mut tx) => tx.user_by_email(&email).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(Some(u)) => Ok(u.id),
        Ok(None) => {
            eprintln!("error: no user has the email {raw}");
            Err(Exit::Failure)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(Exit::Failure)
        }
    }
}

fn describe(resource: &Resource) -> String {
    match resource {
        Resource::Org(org) => format!("org {org}"),
        Resource::Account(user) => format!("the account of {user}"),
        Resource::Member { org, user, role } => {
            format!("member {user} ({}) of {org}", role.as_str())
        }
        Resource::Invitation { org, role } => {
            format!("a new invitation as {} to {org}", role.as_str())
        }
        Resource::Team { org, team, name } => format!("team {team} (\"{name}\") of {org}"),
    }
}

fn print_text(e: &Explanation) {
    let d = &e.decision;
    println!(
        "decision:   {}",
        if d.allowed() { "PERMIT" } else { "DENY" }
    );
    println!("action:     {}", d.action.as_str());
    println!(
        "principal:  {} (role: {}; teams: {})",
        e.principal.user,
        e.principal.role.map_or("none (not a member)", Role::as_str),
        if e.principal.teams.is_empty() {
            "none".to_owned()
        } else {
            e.principal.teams.join(", ")
        }
    );
    println!("resource:   {}", describe(&e.resource));
    println!("policy set: {}", d.policy_set);
    if d.policies.is_empty() {
        println!("why:        no policy permits this (Cedar denies by default)");
    } else if d.allowed() {
        println!("why:        permitted by:");
    } else {
        println!("why:        forbidden by (a forbid beats every permit):");
    }
    for id in &d.policies {
        println!("\n  {id}:");
        for line in e.policies.policy_text(id).unwrap_or_default().lines() {
            println!("    {line}");
        }
    }
    for error in &d.errors {
        println!("evaluation error (counted as no permit): {error}");
    }
}

fn to_json(e: &Explanation) -> String {
    let d = &e.decision;
    let policies: Vec<serde_json::Value> = d
        .policies
        .iter()
        .map(|id| serde_json::json!({"id": id, "text": e.policies.policy_text(id)}))
        .collect();
    serde_json::json!({
        "decision": if d.allowed() { "permit" } else { "deny" },
        "action": d.action.as_str(),
        "principal": {
            "user": e.principal.user.to_string(),
            "role": e.principal.role.map(Role::as_str),
            "teams": e.principal.teams,
        },
        "resource": describe(&e.resource),
        "policy_set": d.policy_set,
        "policies": policies,
        "errors": d.errors,
    })
    .to_string()
}
