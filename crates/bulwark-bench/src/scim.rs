//! `bulwark-bench scim`: SCIM requests at 10,000 provisioned users beside a plain JSON API read
//! with the same key (`GET /v1/orgs/{org}/audit/retention`: authentication, authorization and
//! one database read, no SCIM). Measured: `filter=userName eq` (one user, from the index),
//! `filter=emails co` (about a hundred matches, one page of 100), a PATCH adding a member to a
//! group, and a deprovisioning (`active: false`: membership, keys and invitations in one
//! transaction). SQLite in a temporary directory, or PostgreSQL with `--database-url`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulwark_core::model::{ScimGroup, ScimUser, Team, User};
use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::{Clock as _, OrgId, Role, SystemClock, TeamId, UserId};
use http_body_util::Full;
use hyper::body::Bytes;

use crate::measure::{MakeRequest, Run, load_with, report, seed_org};

const USERS: usize = 10_000;
const CONNS: usize = 16;

/// Runs the benchmark and prints the tables.
pub async fn run(mut config: Config, secs: u64) -> anyhow::Result<()> {
    let secs = secs.max(1);
    let dir = tempfile::tempdir()?;
    if config.database_url.is_none() {
        config.data_dir = dir.path().join("data");
    }
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // Measure the path, not the limiter's refusals.
    config.rate_limits.per_key_per_sec = 1_000_000;
    config.rate_limits.per_key_burst = 10_000_000;
    config.rate_limits.per_org_per_sec = 1_000_000;
    config.rate_limits.per_org_burst = 10_000_000;
    let prepared = startup::prepare(config).await?;
    let addr = prepared.local_addr()?;
    let state = prepared.state.clone();
    let org = seed_org(&*state.store).await?;
    println!("bench scim: seeding {USERS} provisioned users …");
    let (users, team) = seed(&*state.store, org).await?;
    let key =
        crate::keys::write_key(&state, org, vec!["scim".into(), "audit:read".into()], None).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));
    let auth: Arc<str> = format!("Bearer {}", key.expose()).into();
    let base = format!("/scim/v2/orgs/{org}");
    let plain = get(
        auth.clone(),
        Arc::new(move |_| format!("/v1/orgs/{org}/audit/retention")),
    );
    println!(
        "bench scim ({}): {USERS} users, 1 and {CONNS} connections, {secs} alternating 1 s rounds per side",
        state.store.engine()
    );
    let b = base.clone();
    let by_name = get(
        auth.clone(),
        Arc::new(move |n| {
            format!(
                "{b}/Users?filter=userName%20eq%20%22u{}%40bench.example%22",
                n % USERS
            )
        }),
    );
    let b = base.clone();
    let contains = get(
        auth.clone(),
        Arc::new(move |n| {
            format!(
                "{b}/Users?filter=emails%20co%20%22u{}%22&count=100",
                10 + n % 90
            )
        }),
    );
    for (label, make) in [
        ("filter userName eq", by_name),
        ("filter emails co, 100 a page", contains),
    ] {
        compare(addr, label, make, plain.clone(), secs).await?;
    }
    let ids: Arc<Vec<UserId>> = Arc::new(users);
    let (b, list) = (base.clone(), ids.clone());
    let add = patch(
        auth.clone(),
        Arc::new(move |n| {
            let user = list
                .get(n % list.len())
                .map(ToString::to_string)
                .unwrap_or_default();
            (
                format!("{b}/Groups/{team}"),
                serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}]}),
            )
        }),
    );
    compare(addr, "PATCH add a group member", add, plain.clone(), secs).await?;
    let (b, list) = (base.clone(), ids.clone());
    let off = patch(
        auth.clone(),
        Arc::new(move |n| {
            let user = list
                .get(n % list.len())
                .map(ToString::to_string)
                .unwrap_or_default();
            (
                format!("{b}/Users/{user}"),
                serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            )
        }),
    );
    compare(addr, "PATCH active false (deprovision)", off, plain, secs).await?;
    let _ = stop_tx.send(());
    Ok(())
}

/// `ours` beside `base` in alternating rounds, at one connection (latency) and at [`CONNS`]
/// (throughput).
async fn compare(
    addr: SocketAddr,
    label: &str,
    ours: MakeRequest,
    base: MakeRequest,
    secs: u64,
) -> anyhow::Result<()> {
    for conns in [1, CONNS] {
        load_with(addr, conns, 1, base.clone()).await?; // warm-up
        let (mut mine, mut plain) = (Run::default(), Run::default());
        for _ in 0..secs {
            plain.absorb(load_with(addr, conns, 1, base.clone()).await?);
            mine.absorb(load_with(addr, conns, 1, ours.clone()).await?);
        }
        let label = format!("{label}, {conns} conn.");
        report(&label, "GET /audit/retention (JSON API)", mine, plain);
    }
    Ok(())
}

type Path = Arc<dyn Fn(usize) -> String + Send + Sync>;
type Body = Arc<dyn Fn(usize) -> (String, serde_json::Value) + Send + Sync>;

/// GETs of `path(n)` for n = 0, 1, 2, … across all connections.
fn get(auth: Arc<str>, path: Path) -> MakeRequest {
    let counter = Arc::new(AtomicUsize::new(0));
    Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        Ok(hyper::Request::get(path(n).as_str())
            .header("host", "bench")
            .header("authorization", &*auth)
            .body(Full::new(Bytes::new()))?)
    })
}

/// PATCHes built by `body(n)`, each n once.
fn patch(auth: Arc<str>, body: Body) -> MakeRequest {
    let counter = Arc::new(AtomicUsize::new(0));
    Arc::new(move || {
        let (path, json) = body(counter.fetch_add(1, Ordering::Relaxed));
        Ok(hyper::Request::patch(path.as_str())
            .header("host", "bench")
            .header("authorization", &*auth)
            .header("content-type", "application/scim+json")
            .body(Full::new(Bytes::from(json.to_string())))?)
    })
}

/// `USERS` active provisioned members and one provisioned group, written through the store in
/// batches (the license's seats are not counted here: a benchmark, not a deployment).
async fn seed(
    store: &dyn bulwark_core::ports::Store,
    org: OrgId,
) -> anyhow::Result<(Vec<UserId>, TeamId)> {
    let now = SystemClock.now();
    let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000)?;
    let hash = bulwark_crypto::PasswordHashString::from_stored(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    );
    let mut ids = Vec::with_capacity(USERS);
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(1000) {
        let mut tx = store.org(org).await?;
        for n in chunk {
            let email = format!("u{n}@bench.example");
            let user = User {
                id: UserId::new(),
                email: email.parse()?,
                password_hash: hash.clone(),
                created_at: now,
                email_verified_at: Some(now),
                disabled_at: None,
            };
            tx.create_user(&user).await?;
            tx.add_member(user.id, Role::Member, now).await?;
            let resource = serde_json::json!({"userName": email, "active": true,
                "emails": [{"value": email, "type": "work", "primary": true}],
                "name": {"givenName": format!("U{n}"), "familyName": "Bench"}});
            tx.put_scim_user(
                &ScimUser {
                    user_id: user.id,
                    user_name: email.clone(),
                    external_id: Some(format!("ext-{n}")),
                    display_name: None,
                    emails_key: format!("\n{email}\n"),
                    active: true,
                    resource: resource.to_string(),
                    version: 1,
                    created_ms: ms,
                    updated_ms: ms,
                },
                true,
            )
            .await?;
            ids.push(user.id);
        }
        tx.commit().await?;
    }
    let team = Team {
        id: TeamId::new(),
        name: "Everyone".into(),
        members: Vec::new(),
        created_at: now,
    };
    let mut tx = store.org(org).await?;
    tx.create_team(&team).await?;
    tx.put_scim_group(
        &ScimGroup {
            team_id: team.id,
            display_name: team.name.clone(),
            external_id: None,
            version: 1,
            created_ms: ms,
            updated_ms: ms,
            members: Vec::new(),
        },
        true,
    )
    .await?;
    tx.commit().await?;
    Ok((ids, team.id))
}
