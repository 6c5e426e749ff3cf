//! `bulwark-bench authz`: Cedar decisions per second on one core, for the built-in set and for
//! an org set of 200 extra policies, and as the server makes them (remembered per replica by
//! all their inputs), beside a hand-written role check (the cheapest possible authorization) in
//! the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bulwark_authz::{Action, Engine, Facts, Policies, Principal, Resource};
use bulwark_types::{OrgId, Role, UserId};

/// One measured way of deciding.
type Case<'a> = Box<dyn FnMut() -> bool + 'a>;

/// Calls `f` for `secs` seconds; returns calls per second.
fn rate(secs: u64, mut f: impl FnMut() -> bool) -> f64 {
    let budget = Duration::from_secs(secs.max(1));
    let start = Instant::now();
    let mut n = 0u64;
    let mut allowed = 0u64;
    loop {
        for _ in 0..1000 {
            allowed += u64::from(black_box(f()));
        }
        n += 1000;
        if start.elapsed() >= budget {
            break;
        }
    }
    black_box(allowed);
    n as f64 / start.elapsed().as_secs_f64()
}

/// The cheapest authorization there is: a `match` on the role.
fn hand_written(role: Role, action: Action) -> bool {
    match role {
        Role::Owner => true,
        Role::Admin => !matches!(
            action,
            Action::OrgPolicyWrite | Action::AuthzPoliciesWrite | Action::AuditRetentionWrite
        ),
        Role::Auditor => matches!(
            action,
            Action::AuditRead | Action::MembersRead | Action::TeamsRead
        ),
        Role::Member => matches!(action, Action::MembersRead | Action::TeamsRead),
    }
}

fn org_set(engine: &Engine, teams: usize) -> anyhow::Result<Policies> {
    let mut text = String::new();
    for i in 0..teams {
        text.push_str(&format!(
            "@id(\"org.team-{i}\")\npermit(principal in Bulwark::Team::\"team_{i:026}\", action == Bulwark::Action::\"audit.read\", resource);\n"
        ));
    }
    Ok(engine.with_org_policies(&text)?)
}

/// Runs the benchmark and prints the table.
pub fn run(secs: u64) -> anyhow::Result<()> {
    let engine = Engine::new()?;
    let served = bulwark_core::authz::Authz::new()?;
    let big = org_set(&engine, 200)?;
    let org = OrgId::new();
    let member = Principal {
        user: UserId::new(),
        role: Some(Role::Member),
        teams: (0..3).map(|i| format!("team_{i:026}")).collect(),
    };
    let admin = Principal {
        user: UserId::new(),
        role: Some(Role::Admin),
        teams: Vec::new(),
    };
    let owner_member = Resource::Member {
        org,
        user: UserId::new(),
        role: Role::Owner,
    };
    let facts = Facts::default();
    let on_org = Resource::Org(org);
    let cases: [(&str, Case<'_>); 5] = [
        (
            "hand-written role match (baseline)",
            Box::new(|| hand_written(black_box(Role::Member), black_box(Action::MembersRead))),
        ),
        (
            "cedar built-in, member reads members",
            Box::new(|| {
                engine
                    .decide(
                        engine.builtin(),
                        &member,
                        Action::MembersRead,
                        &on_org,
                        &facts,
                    )
                    .allowed()
            }),
        ),
        (
            "cedar built-in, admin vs owner (forbid)",
            Box::new(|| {
                engine
                    .decide(
                        engine.builtin(),
                        &admin,
                        Action::MembersRoleWrite,
                        &owner_member,
                        &Facts {
                            granted_role: Some(Role::Member),
                        },
                    )
                    .allowed()
            }),
        ),
        (
            "cedar + 200 org policies, team permit",
            Box::new(|| {
                engine
                    .decide(&big, &member, Action::AuditRead, &on_org, &facts)
                    .allowed()
            }),
        ),
        (
            "as served: + 200 org policies, remembered",
            Box::new(|| {
                served
                    .decide(&big, &member, Action::AuditRead, &on_org, &facts)
                    .allowed()
            }),
        ),
    ];
    println!("{:<42} {:>14} {:>14}", "", "decisions/s", "µs/decision");
    let mut baseline = None;
    for (name, mut f) in cases {
        let r = rate(secs, &mut f);
        let base = *baseline.get_or_insert(r);
        println!(
            "{name:<42} {r:>14.0} {:>14.3}   ratio to baseline {:.5}",
            1e6 / r,
            r / base
        );
    }
    println!(
        "(one core, one thread; a decision also needs the membership read, measured by `bench auth`)"
    );
    Ok(())
}
