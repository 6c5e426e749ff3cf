//! The audit API: who may read it, filters and cursors, proofs that verify against signed
//! checkpoints, and exports (JSON Lines and CloudEvents) that verify offline.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_audit::checkpoint::NoteVerifier;
use bulwark_audit::event::{Actor, ActorKind, Context, Outcome, Payload, Resource, Result_};
use bulwark_audit::{cloudevents, export, merkle};
use bulwark_core::audit::{self, Draft, Log};
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app};
use bulwark_types::{OrgId, Role};
use serde_json::Value;

const PASSWORD: &str = "a long enough password";

/// An app with one org, its owner signed in, and `n` events in the org's log: every third a
/// failure, alternating between two actors and two actions; then the owner's sign-in, which the
/// org's log records too (`auth.login.succeeded`, seq `n`).
async fn org_with_events(backend: Backend, n: u64) -> (TestApp, OrgId, SignedIn) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let mut tx = app.state.store.org(org).await.unwrap();
    let drafts = (0..n)
        .map(|i| Draft {
            payload: if i % 2 == 0 {
                Payload::MemberAdded {
                    user_id: format!("usr_{i}"),
                    role: "member".into(),
                }
            } else {
                Payload::MemberRoleChanged {
                    user_id: format!("usr_{i}"),
                    from: "member".into(),
                    to: "admin".into(),
                }
            },
            resource: Resource {
                kind: "member".into(),
                id: format!("usr_{i}"),
            },
            outcome: Outcome {
                result: if i % 3 == 0 {
                    Result_::Failure
                } else {
                    Result_::Success
                },
                reason: (i % 3 == 0).then(|| "not_allowed".into()),
            },
            context: Context {
                actor: Actor {
                    kind: ActorKind::User,
                    id: Some(if i % 2 == 0 { "usr_alice" } else { "usr_bob" }.into()),
                },
                source_ip: None,
                user_agent: None,
                request_id: None,
                decision: None,
            },
        })
        .collect();
    audit::append_many(&mut *tx, Log::Org(org), drafts, &*app.state.clock)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    (app, org, owner)
}

async fn json(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "{:?}", res.url().path());
    res.json().await.unwrap()
}

fn b64(v: &Value) -> [u8; 32] {
    STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

async fn events_filter_and_page_with_unforgeable_cursors(backend: Backend) {
    let (app, org, owner) = org_with_events(backend, 30).await;
    let base = format!("/v1/orgs/{org}/audit/events");
    let all = json(app.get_as(&owner, &base).await, 200).await;
    let seqs: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..31).collect::<Vec<_>>(),
        "30 events and the sign-in"
    );
    assert!(all["next_cursor"].is_null());

    let count = |q: &'static str| {
        let (app, owner, base) = (&app, &owner, &base);
        async move {
            let page = json(app.get_as(owner, &format!("{base}?{q}")).await, 200).await;
            page["events"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("action=member.added").await, 15);
    assert_eq!(count("action=member.*").await, 30);
    assert_eq!(count("action=auth.*").await, 1, "the owner's sign-in");
    assert_eq!(count("outcome=failure").await, 10);
    assert_eq!(count("actor=usr_bob&outcome=failure").await, 5);
    assert_eq!(count("resource_type=member&resource_id=usr_7").await, 1);
    assert_eq!(
        count("since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z").await,
        31
    );
    assert_eq!(count("until=2000-01-01T00:00:00Z").await, 0);
    // SQL and LIKE metacharacters match only themselves (ASVS V1.2.4).
    assert_eq!(count("actor=usr_bob%27%20OR%20%271%27%3D%271").await, 0);
    assert_eq!(count("actor=%25").await, 0);
    assert_eq!(count("action=member.%25").await, 0);
    assert_eq!(count("action=member._dded").await, 0);
    assert_eq!(count("resource_id=usr_7%27--").await, 0);
    assert_eq!(
        count("resource_type=member%27%3B%20DELETE%20FROM%20audit_events%3B--").await,
        0
    );
    assert_eq!(count("resource_id=usr_7").await, 1);

    // Paging by 7 visits every event once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last_cursor = String::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("{base}?limit=7&cursor={c}"),
            None => format!("{base}?limit=7"),
        };
        let page = json(app.get_as(&owner, &q).await, 200).await;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["seq"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                last_cursor = c.to_owned();
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen, (0..31).collect::<Vec<_>>());

    // Tampered cursors: flipped bits, another seq with the old tag, garbage, and a cursor of
    // another org's log.
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&last_cursor)
        .unwrap();
    raw[7] ^= 1;
    let moved = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    let other_org =
        bulwark_store_conformance::extra_org(&*app.state.store, "other", "owner@other.test")
            .await
            .0
            .id;
    app.add_member(other_org, "auditor@acme.test", PASSWORD, Role::Auditor)
        .await;
    let auditor = app.login("auditor@acme.test", PASSWORD).await;
    let mut tx = app.state.store.org(other_org).await.unwrap();
    let drafts = (0..3)
        .map(|i| Draft {
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
        })
        .collect();
    audit::append_many(&mut *tx, Log::Org(other_org), drafts, &*app.state.clock)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let page = json(
        app.get_as(
            &auditor,
            &format!("/v1/orgs/{other_org}/audit/events?limit=1"),
        )
        .await,
        200,
    )
    .await;
    let foreign = page["next_cursor"].as_str().unwrap().to_owned();
    for bad in [
        moved.as_str(),
        "not-a-cursor",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        foreign.as_str(),
    ] {
        let body = json(
            app.get_as(&owner, &format!("{base}?cursor={bad}")).await,
            422,
        )
        .await;
        assert_eq!(body["code"], "invalid_cursor", "{bad}");
    }
    for bad in [
        "limit=0",
        "limit=1001",
        "outcome=maybe",
        "since=yesterday",
        "unknown=1",
        "limit=-1",
    ] {
        let res = app.get_as(&owner, &format!("{base}?{bad}")).await;
        assert!(
            res.status() == 422 || res.status() == 400,
            "{bad}: {}",
            res.status()
        );
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
    }
}

async fn only_owners_admins_and_auditors_of_the_org_read_its_log(backend: Backend) {
    let (app, org, owner) = org_with_events(backend, 3).await;
    for (email, role) in [
        ("admin@acme.test", Role::Admin),
        ("auditor@acme.test", Role::Auditor),
        ("member@acme.test", Role::Member),
    ] {
        app.add_member(org, email, PASSWORD, role).await;
    }
    let other_org =
        bulwark_store_conformance::extra_org(&*app.state.store, "other", "x@other.test")
            .await
            .0
            .id;
    app.add_member(other_org, "stranger@other.test", PASSWORD, Role::Owner)
        .await;
    let paths = [
        format!("/v1/orgs/{org}/audit/events"),
        format!("/v1/orgs/{org}/audit/checkpoint"),
        format!("/v1/orgs/{org}/audit/proofs/inclusion?seq=0"),
        format!("/v1/orgs/{org}/audit/proofs/consistency?from=1"),
        format!("/v1/orgs/{org}/audit/export"),
    ];
    let admin = app.login("admin@acme.test", PASSWORD).await;
    let auditor = app.login("auditor@acme.test", PASSWORD).await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let stranger = app.login("stranger@other.test", PASSWORD).await;
    for path in &paths {
        for who in [&owner, &admin, &auditor] {
            assert_eq!(app.get_as(who, path).await.status(), 200, "{path}");
        }
        let res = app.get_as(&member, path).await;
        assert_eq!(json(res, 403).await["code"], "forbidden", "{path}");
        // Another org's owner cannot tell this org from one that does not exist.
        let res = app.get_as(&stranger, path).await;
        assert_eq!(json(res, 404).await["code"], "not_found", "{path}");
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(json(res, 401).await["code"], "unauthenticated", "{path}");
    }
    for path in [
        format!("/v1/orgs/{other_org}/audit/events"),
        "/v1/orgs/org_00000000000000000000000000000000/audit/events".into(),
        "/v1/orgs/not-an-org/audit/events".into(),
        "/v1/orgs/usr_0190f4a1b2c37d8e9f00112233445566/audit/events".into(),
    ] {
        let res = app.get_as(&owner, &path).await;
        assert_eq!(json(res, 404).await["code"], "not_found", "{path}");
    }
}

async fn proofs_verify_against_the_signed_checkpoint(backend: Backend) {
    let (app, org, owner) = org_with_events(backend, 30).await;
    let key = NoteVerifier::parse(&app.state.checkpointer.verifier_key()).unwrap();
    let cp = json(
        app.get_as(&owner, &format!("/v1/orgs/{org}/audit/checkpoint"))
            .await,
        200,
    )
    .await;
    let signed = key.verify(cp["note"].as_str().unwrap()).unwrap();
    assert_eq!(signed.size, 31, "30 events and the sign-in");
    assert_eq!(cp["size"], 31);
    assert_eq!(b64(&cp["root"]), signed.root);
    assert_eq!(cp["verifier_key"], app.state.checkpointer.verifier_key());

    for seq in [0u64, 1, 17, 29, 30] {
        let p = json(
            app.get_as(
                &owner,
                &format!("/v1/orgs/{org}/audit/proofs/inclusion?seq={seq}"),
            )
            .await,
            200,
        )
        .await;
        let proof: Vec<[u8; 32]> = p["proof"].as_array().unwrap().iter().map(b64).collect();
        let leaf = b64(&p["leaf_hash"]);
        merkle::verify_inclusion(&leaf, seq, 31, &proof, &signed.root).unwrap();
        assert!(merkle::verify_inclusion(&leaf, (seq + 1) % 31, 31, &proof, &signed.root).is_err());
    }
    for (from, to) in [
        (1u64, 31u64),
        (10, 31),
        (16, 31),
        (7, 19),
        (30, 31),
        (31, 31),
    ] {
        let p = json(
            app.get_as(
                &owner,
                &format!("/v1/orgs/{org}/audit/proofs/consistency?from={from}&to={to}"),
            )
            .await,
            200,
        )
        .await;
        let proof: Vec<[u8; 32]> = p["proof"].as_array().unwrap().iter().map(b64).collect();
        let (r1, r2) = (b64(&p["from_root"]), b64(&p["to_root"]));
        if to == 31 {
            assert_eq!(r2, signed.root);
        }
        merkle::verify_consistency(from, to, &r1, &r2, &proof).unwrap();
    }
    // Out-of-range requests: clear errors, never a 500.
    for q in [
        "inclusion?seq=31",
        "inclusion?seq=0&size=32",
        "inclusion?seq=5&size=5",
        "inclusion?seq=18446744073709551615",
        "consistency?from=0",
        "consistency?from=20&to=10",
        "consistency?from=1&to=32",
    ] {
        let res = app
            .get_as(&owner, &format!("/v1/orgs/{org}/audit/proofs/{q}"))
            .await;
        assert_eq!(json(res, 422).await["code"], "beyond_tree", "{q}");
    }
    for q in [
        "inclusion",
        "inclusion?seq=-1",
        "inclusion?seq=x",
        "consistency?to=3",
    ] {
        let res = app
            .get_as(&owner, &format!("/v1/orgs/{org}/audit/proofs/{q}"))
            .await;
        assert_eq!(res.status(), 400, "{q}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

async fn exports_verify_offline_and_tampering_is_named(backend: Backend) {
    let (app, org, owner) = org_with_events(backend, 12).await;
    let key = NoteVerifier::parse(&app.state.checkpointer.verifier_key()).unwrap();
    let res = app
        .get_as(&owner, &format!("/v1/orgs/{org}/audit/export"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/jsonl");
    // ASVS V5.4.1: a download under a name the server makes, never rendered in place.
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"audit-{org}.jsonl\"").as_str()
    );
    let jsonl = res.text().await.unwrap();
    let report = export::verify(jsonl.as_bytes(), &key, &[]).unwrap();
    assert_eq!(report.events, 12 + 1, "the events and the owner's sign-in");

    let res = app
        .get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/export?format=cloudevents"),
        )
        .await;
    assert_eq!(
        res.headers()["content-type"],
        "application/cloudevents-batch+json"
    );
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"audit-{org}.json\"").as_str()
    );
    let batch: Vec<Value> = res.json().await.unwrap();
    // The first export is itself recorded, so this one holds one more event.
    assert_eq!(batch.len(), 13 + 1 + 1);
    let e = &batch[0];
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["type"], "dev.bulwark.event.member.added");
    assert_eq!(e["id"], e["data"]["id"]);
    assert_eq!(e["subject"], "member/usr_0");
    assert_eq!(batch[12]["data"]["action"], "auth.login.succeeded");
    assert_eq!(batch[13]["data"]["action"], "audit.exported");
    assert_eq!(batch[13]["data"]["actor"]["type"], "user");
    assert_eq!(batch[14]["type"], cloudevents::CHECKPOINT_TYPE);
    let text = serde_json::to_string(&batch).unwrap();
    let back = cloudevents::from_cloudevents(&text).unwrap();
    assert_eq!(
        export::verify(back.as_bytes(), &key, &[]).unwrap().events,
        14
    );

    // Edited data: the root no longer matches. Edited envelope, or data the envelope repeats:
    // refused before hashing.
    let mut edited = batch.clone();
    edited[3]["data"]["resource"]["id"] = "usr_mallory".into();
    let err = cloudevents::from_cloudevents(&serde_json::to_string(&edited).unwrap()).unwrap_err();
    assert_eq!(err.element, 4);
    let mut edited = batch.clone();
    edited[3]["data"]["data"]["to"] = "owner".into();
    let jsonl = cloudevents::from_cloudevents(&serde_json::to_string(&edited).unwrap()).unwrap();
    let err = export::verify(jsonl.as_bytes(), &key, &[]).unwrap_err();
    assert!(
        err.to_string().contains("do not hash to its signed root"),
        "{err}"
    );
    let mut edited = batch.clone();
    edited[3]["type"] = "dev.bulwark.event.member.removed".into();
    let err = cloudevents::from_cloudevents(&serde_json::to_string(&edited).unwrap()).unwrap_err();
    assert_eq!(err.element, 4);
    let mut edited = batch.clone();
    edited[3]["data"]["extra"] = "field".into();
    assert!(cloudevents::from_cloudevents(&serde_json::to_string(&edited).unwrap()).is_err());
    let mut dropped = batch.clone();
    dropped.remove(5);
    let jsonl = cloudevents::from_cloudevents(&serde_json::to_string(&dropped).unwrap()).unwrap();
    let err = export::verify(jsonl.as_bytes(), &key, &[]).unwrap_err();
    assert!(err.to_string().contains("expected 5"), "{err}");

    let res = app
        .get_as(&owner, &format!("/v1/orgs/{org}/audit/export?format=xml"))
        .await;
    assert_eq!(json(res, 422).await["code"], "validation_failed");
}

async fn retention_is_set_by_owners_and_pruned_logs_still_verify(backend: Backend) {
    let (app, org, owner) = org_with_events(backend, 4).await;
    // Six events from last quarter, appended after the four recent ones' setup.
    app.append_old_events(org, 6, 100).await;
    app.add_member(org, "auditor@acme.test", PASSWORD, Role::Auditor)
        .await;
    let auditor = app.login("auditor@acme.test", PASSWORD).await;
    let path = format!("/v1/orgs/{org}/audit/retention");
    let got = json(app.get_as(&auditor, &path).await, 200).await;
    assert!(got["days"].is_null());
    let put = |who: &SignedIn, days: Value, csrf: bool| {
        let mut req = app
            .client
            .put(app.url(&path))
            .header(reqwest::header::COOKIE, &who.cookie)
            .json(&serde_json::json!({ "days": days }));
        if csrf {
            req = req.header("x-csrf-token", &who.csrf);
        }
        req.send()
    };
    let res = put(&auditor, 30.into(), true).await.unwrap();
    assert_eq!(json(res, 403).await["code"], "forbidden");
    let res = put(&owner, 30.into(), false).await.unwrap();
    assert_eq!(json(res, 403).await["code"], "csrf_failed");
    for bad in [
        Value::from(29),
        Value::from(0),
        Value::from(-1),
        Value::from("30"),
    ] {
        let res = put(&owner, bad.clone(), true).await.unwrap();
        assert_eq!(json(res, 422).await["code"], "validation_failed", "{bad}");
    }
    let res = put(&owner, 30.into(), true).await.unwrap();
    let out = json(res, 200).await;
    assert_eq!(
        (out["days"].as_u64(), out["pruned"].as_u64()),
        (Some(30), Some(6))
    );
    assert_eq!(
        json(app.get_as(&auditor, &path).await, 200).await["days"],
        30
    );

    // Pruned events are gone from listings; the change and the pruning are recorded, by whom.
    let page = json(
        app.get_as(&owner, &format!("/v1/orgs/{org}/audit/events"))
            .await,
        200,
    )
    .await;
    let actions: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The four recent events, the owner's and the auditor's sign-ins, and the three below.
    assert_eq!(actions.len(), 4 + 2 + 3);
    assert!(!actions.contains(&"member.removed"));
    // The auditor's refused attempt, with the decision that refused it.
    let denied = &page["events"][6];
    assert_eq!(denied["action"], "authz.denied");
    assert_eq!(denied["actor"]["id"], auditor.body["user"]["id"]);
    assert_eq!(denied["outcome"]["result"], "failure");
    assert_eq!(denied["decision"]["effect"], "deny");
    assert_eq!(denied["decision"]["action"], "audit.retention.write");
    assert!(denied["decision"]["policy_set"].as_str().unwrap().len() >= 64);
    let changed = &page["events"][7];
    assert_eq!(changed["action"], "audit.retention_changed");
    assert_eq!(changed["data"]["to_days"], 30);
    assert_eq!(changed["actor"]["id"], owner.body["user"]["id"]);
    // A permitted change names the policy that permitted it.
    assert_eq!(changed["decision"]["effect"], "permit");
    assert!(
        !changed["decision"]["policies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(page["events"][8]["data"]["events"], 6);

    // Exports in both formats still verify, counting what was pruned.
    let key = NoteVerifier::parse(&app.state.checkpointer.verifier_key()).unwrap();
    let jsonl = app
        .get_as(&owner, &format!("/v1/orgs/{org}/audit/export"))
        .await
        .text()
        .await
        .unwrap();
    let report = export::verify(jsonl.as_bytes(), &key, &[]).unwrap();
    assert_eq!((report.events, report.pruned), (15, 6));
    let batch = app
        .get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/export?format=cloudevents"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(batch.contains(cloudevents::PRUNED_TYPE), "{batch:.600}");
    let back = cloudevents::from_cloudevents(&batch).unwrap();
    let report = export::verify(back.as_bytes(), &key, &[]).unwrap();
    assert_eq!((report.events, report.pruned), (16, 6));
    // An inclusion proof for a pruned event still proves its leaf is in the signed tree.
    let p = json(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/proofs/inclusion?seq=5"),
        )
        .await,
        200,
    )
    .await;
    let proof: Vec<[u8; 32]> = p["proof"].as_array().unwrap().iter().map(b64).collect();
    merkle::verify_inclusion(
        &b64(&p["leaf_hash"]),
        5,
        p["size"].as_u64().unwrap(),
        &proof,
        &b64(&p["root"]),
    )
    .unwrap();
}

on_both_engines!(
    retention_is_set_by_owners_and_pruned_logs_still_verify,
    events_filter_and_page_with_unforgeable_cursors,
    only_owners_admins_and_auditors_of_the_org_read_its_log,
    proofs_verify_against_the_signed_checkpoint,
    exports_verify_offline_and_tampering_is_named,
);
