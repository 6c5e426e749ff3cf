//! Purges that race: every replica runs the due-deletion purge every five minutes, so two can
//! start on the same org at once. The org's row is held for the purge's transaction: one purges,
//! the other finds the org purged, and the log holds one `org.purged`.

use std::time::Duration;

use bulwark_core::CoreError;
use bulwark_core::deletion::{self, PURGED_ALREADY, Requester};
use bulwark_testkit::{Backend, on_both_engines, spawn_app};

async fn two_purges_of_one_org_purge_it_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app
        .setup("Acme", "owner@acme.test", "a long enough password")
        .await;
    let owner: bulwark_types::UserId = setup["owner"]["id"].as_str().unwrap().parse().unwrap();
    let org = app.create_org("doomed", owner).await;
    let (store, clock) = (&*app.state.store, &*app.state.clock);
    deletion::schedule(store, clock, &Requester::LocalOperator(org), Duration::ZERO)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        deletion::purge(store, clock, org),
        deletion::purge(store, clock, org)
    );
    let outcomes = [&a, &b];
    let purged = outcomes.iter().filter(|r| r.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|r| matches!(r, Err(CoreError::State(m)) if *m == PURGED_ALREADY))
        .count();
    assert_eq!((purged, refused), (1, 1), "{a:?} / {b:?}");
    let mut read = store.org_read(org).await.unwrap();
    let events = read.audit_events(0, 10_000).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.action == "org.purged").count(),
        1,
        "one purge recorded"
    );
    app.stop().await;
}

on_both_engines!(two_purges_of_one_org_purge_it_once);
