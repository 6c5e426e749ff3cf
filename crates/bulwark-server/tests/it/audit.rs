//! The audit trail of a running server: setup is recorded, checkpoints are signed, stored and
//! published outside the database, and what the store holds verifies offline.

use bulwark_audit::checkpoint::NoteVerifier;
use bulwark_audit::export;
use bulwark_testkit::{Backend, on_both_engines, spawn_app_with};

async fn setup_is_checkpointed_published_and_verifiable(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.audit.checkpoint_every_events = 1;
        c.audit.checkpoint_every_secs = 1;
    })
    .await;
    app.setup("Acme", "owner@acme.test", "a long enough password")
        .await;
    let published = app.state.config.data_dir.join("audit-checkpoints.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&published).unwrap_or_default();
        if !text.is_empty() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint published within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&published).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let key = NoteVerifier::parse(&app.state.checkpointer.verifier_key()).unwrap();
    let notes: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["checkpoint"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let cp = key.verify(notes.last().unwrap()).unwrap();
    assert_eq!(cp.size, 1);
    assert!(cp.origin.ends_with("/system"));

    // The stored log, exported with its stored checkpoint, verifies against the published one.
    let mut sys = app.state.store.system().await.unwrap();
    let rows = sys.audit_events(0, 100).await.unwrap();
    let (size, note) = sys.audit_latest_checkpoint().await.unwrap().unwrap();
    drop(sys);
    assert_eq!((size, rows.len()), (1, 1));
    let mut text = format!("{}\n", export::header_line(&cp.origin));
    text.push_str(std::str::from_utf8(rows[0].body.as_deref().unwrap()).unwrap());
    text.push('\n');
    text.push_str(&format!("{}\n", export::checkpoint_line(&note)));
    let report = export::verify(text.as_bytes(), &key, &notes).unwrap();
    assert_eq!(report.events, 1);
    let body = String::from_utf8_lossy(rows[0].body.as_deref().unwrap()).into_owned();
    assert!(body.contains("\"action\":\"setup.completed\""), "{body}");
    assert!(!body.contains("a long enough password") && !body.contains("bwsetup_"));
    app.stop().await;
}

on_both_engines!(setup_is_checkpointed_published_and_verifiable);

#[tokio::test]
async fn a_checkpoint_that_cannot_be_published_is_not_stored() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.audit.publish_file = Some("/proc/bulwark-cannot-write-here/checkpoints.jsonl".into());
        c.audit.checkpoint_every_secs = 3600;
        c.audit.checkpoint_every_events = 1_000_000;
    })
    .await;
    app.setup("Acme", "owner@acme.test", "a long enough password")
        .await;
    let err = app
        .state
        .checkpointer
        .checkpoint_now(bulwark_core::audit::Log::System)
        .await;
    assert!(err.is_err(), "publication failure must surface");
    let mut sys = app.state.store.system().await.unwrap();
    assert_eq!(
        sys.audit_latest_checkpoint().await.unwrap(),
        None,
        "nothing stored that was not published"
    );
}

/// Events another replica appended (so this process was never told) are found by the sweep and
/// checkpointed within the interval.
async fn org_events_this_process_never_saw_are_swept_and_checkpointed(backend: Backend) {
    use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
    use bulwark_core::audit::{Draft, Log, append};
    let app = spawn_app_with(backend, |c| {
        c.audit.checkpoint_every_events = 1_000_000;
        c.audit.checkpoint_every_secs = 1;
    })
    .await;
    let setup = app
        .setup("Acme", "owner@acme.test", "a long enough password")
        .await;
    let org: bulwark_types::OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let mut tx = app.state.store.org(org).await.unwrap();
    for i in 0..3 {
        let draft = Draft {
            payload: Payload::MemberRemoved {
                user_id: format!("usr_{i}"),
            },
            resource: Resource {
                kind: "member".into(),
                id: format!("usr_{i}"),
            },
            outcome: Outcome {
                result: Result_::Success,
                reason: None,
            },
            context: Context::system(None),
        };
        append(&mut *tx, Log::Org(org), draft, &*app.state.clock)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(app.state.store.audit_unsigned_orgs().await.unwrap(), [org]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut r = app.state.store.org_read(org).await.unwrap();
        if let Some((size, _)) = r.audit_latest_checkpoint().await.unwrap() {
            assert_eq!(size, 3);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the org log was not checkpointed within 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        app.state
            .store
            .audit_unsigned_orgs()
            .await
            .unwrap()
            .is_empty()
    );
    let published =
        std::fs::read_to_string(app.state.config.data_dir.join("audit-checkpoints.jsonl")).unwrap();
    assert!(published.contains(&org.to_string()));
}

on_both_engines!(org_events_this_process_never_saw_are_swept_and_checkpointed);

/// What the collector received: `(Authorization header, body)` per request.
type Posts = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, String)>>>;

/// A collector on loopback that records what it is sent and answers with a settable status.
struct Collector {
    url: String,
    got: Posts,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

async fn collector() -> Collector {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    let got: Posts = Arc::default();
    let status = Arc::new(AtomicU16::new(200));
    let (g, s) = (got.clone(), status.clone());
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                g.lock().unwrap().push((auth, body));
                axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Collector {
        url: format!("http://{addr}/ingest"),
        got,
        status,
    }
}

/// Checkpoints also go to a collector over HTTP, with its token; one it refuses is not stored.
#[tokio::test]
async fn checkpoints_are_posted_to_a_collector_and_a_refusal_stores_nothing() {
    use bulwark_core::audit::Log;
    const TOKEN: &str = "collector-ingest-token-0123456789";
    let c = collector().await;
    let url = c.url.clone();
    let app = spawn_app_with(Backend::Sqlite, move |cfg| {
        cfg.audit.publish_url = Some(secrecy::SecretString::from(url));
        cfg.audit.publish_token = Some(secrecy::SecretString::from(TOKEN));
        cfg.audit.checkpoint_every_events = 1_000_000;
        cfg.audit.checkpoint_every_secs = 3600;
    })
    .await;
    assert!(!app.state.config.to_redacted_toml().contains(TOKEN));
    app.setup("Acme", "owner@acme.test", "a long enough password")
        .await;
    let note = app
        .state
        .checkpointer
        .checkpoint_now(Log::System)
        .await
        .unwrap()
        .unwrap();
    let key = NoteVerifier::parse(&app.state.checkpointer.verifier_key()).unwrap();
    {
        let got = c.got.lock().unwrap();
        let (auth, body) = got.last().unwrap();
        assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        let posted: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(posted["checkpoint"], note.as_str());
        assert_eq!(key.verify(&note).unwrap().size, 1);
    }

    // The collector refuses: the checkpoint is not stored, and the next attempt signs again.
    c.status.store(503, std::sync::atomic::Ordering::SeqCst);
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({"email": "x@acme.test", "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        app.state
            .checkpointer
            .checkpoint_now(Log::System)
            .await
            .is_err()
    );
    let mut sys = app.state.store.system().await.unwrap();
    assert_eq!(sys.audit_latest_checkpoint().await.unwrap().unwrap().0, 1);
    drop(sys);
    c.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let note = app
        .state
        .checkpointer
        .checkpoint_now(Log::System)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.verify(&note).unwrap().size, 2);
}
