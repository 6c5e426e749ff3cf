//! The vault with its KEKs on a PKCS#11 token (SoftHSM2, set up by `scripts/test`): data keys
//! are wrapped on the token, rotation creates the new KEK there and retirement destroys the old
//! one; start-up refuses a wrong PIN, a missing token or module, a missing KEK, and a provider
//! other than the one holding the keys — each with a message that says what to fix.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use bulwark_core::vault;
use bulwark_server::config::{Config, Pkcs11Config, VaultProvider};
use bulwark_server::startup;
use bulwark_testkit::{Backend, SignedIn, TestApp, spawn_app_with};
use bulwark_types::{CredentialId, OrgId};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const DEST: &str = "https://tracker.example.com/api/";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the PKCS#11 tests through `scripts/test` (SoftHSM2 token)")
    })
}

/// One test at a time on the shared token (SoftHSM2 misbehaves under concurrent sessions).
fn take_turn() -> File {
    let path = Path::new(&env("BULWARK_TEST_SOFTHSM_DIR")).join("tests.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    file
}

fn pkcs11(prefix: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: PathBuf::from(env("BULWARK_TEST_PKCS11_MODULE")),
        token: env("BULWARK_TEST_PKCS11_TOKEN"),
        pin: env("BULWARK_TEST_PKCS11_PIN").into(),
        key_label_prefix: prefix.to_owned(),
    }
}

fn use_hsm(config: &mut Config, p: Pkcs11Config) {
    config.vault.provider = VaultProvider::Pkcs11;
    config.vault.pkcs11 = Some(p);
}

fn fresh_prefix() -> String {
    format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A start on `app`'s data directory with `tweak`: its error text.
async fn start_error(app: &TestApp, tweak: impl FnOnce(&mut Config)) -> String {
    let (mut config, _) =
        bulwark_testkit::app::test_config(Backend::Sqlite, app.data_dir.path()).await;
    tweak(&mut config);
    match startup::prepare(config).await {
        Ok(_) => panic!("started"),
        Err(e) => bulwark_server::error::error_chain(&e),
    }
}

async fn ready(prefix: &str) -> (TestApp, OrgId, SignedIn) {
    let p = pkcs11(prefix);
    let app = spawn_app_with(Backend::Sqlite, |c| use_hsm(c, p)).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    (app, org, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keks_live_on_the_token_and_start_refuses_without_them() {
    let _turn = take_turn();
    let prefix = fresh_prefix();
    let (app, org, owner) = ready(&prefix).await;
    let s = &app.state;
    assert_eq!(s.vault.provider(), "pkcs11");
    assert!(s.vault.holds_version(1).unwrap());
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/credentials"),
            &json!({"name": "jira", "kind": "bearer_token", "value": "hsm-held-secret", "destinations": [DEST]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id: CredentialId = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let sealed = s
        .store
        .org_read(org)
        .await
        .unwrap()
        .credential(id)
        .await
        .unwrap()
        .unwrap()
        .sealed;
    assert_eq!(
        sealed.wrapped_key.len(),
        40,
        "wrapped on the token (RFC 5649)"
    );
    let used = vault::use_value(&*s.store, &*s.clock, &*s.vault, org, id, DEST, "test")
        .await
        .unwrap();
    assert_eq!(used.as_slice(), b"hsm-held-secret");

    // A key someone else put under the next label is never adopted: the rotation is refused.
    let deployment = s
        .store
        .system()
        .await
        .unwrap()
        .instance()
        .await
        .unwrap()
        .unwrap()
        .deployment_id;
    let planted = format!(
        "{}-v2",
        bulwark_server::vault::kek_prefix(&prefix, deployment)
    );
    let hsm = bulwark_pkcs11::Hsm::open(&bulwark_pkcs11::HsmConfig {
        module: PathBuf::from(env("BULWARK_TEST_PKCS11_MODULE")),
        token_label: env("BULWARK_TEST_PKCS11_TOKEN"),
        pin: env("BULWARK_TEST_PKCS11_PIN").into(),
    })
    .unwrap();
    hsm.generate_kek(&planted).unwrap();
    let refused = vault::rotate(
        &*s.store,
        &*s.clock,
        &*s.vault,
        bulwark_audit::event::Context::system(None),
    )
    .await;
    assert!(
        matches!(refused, Err(bulwark_core::CoreError::KeyProvider)),
        "{refused:?}"
    );
    assert_eq!(vault::status(&*s.store).await.unwrap().active(), Some(1));
    assert!(hsm.destroy_kek(&planted).unwrap());
    drop(hsm);

    // Rotation makes the next KEK on the token; retirement destroys the old one.
    vault::rotate(
        &*s.store,
        &*s.clock,
        &*s.vault,
        bulwark_audit::event::Context::system(None),
    )
    .await
    .unwrap();
    assert!(s.vault.holds_version(2).unwrap());
    bulwark_server::vault::rewrap_until_done(&*s.store, &*s.clock, &*s.vault, &s.config.vault)
        .await
        .unwrap();
    assert!(!s.vault.holds_version(1).unwrap(), "retired KEK destroyed");
    let used = vault::use_value(&*s.store, &*s.clock, &*s.vault, org, id, DEST, "test")
        .await
        .unwrap();
    assert_eq!(used.as_slice(), b"hsm-held-secret");
    // The old wrapped data key cannot be unwrapped any more: crypto-shredded.
    let mut tx = s.store.org(org).await.unwrap();
    assert!(
        tx.replace_credential(id, &sealed, time::OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(
        vault::use_value(&*s.store, &*s.clock, &*s.vault, org, id, DEST, "test")
            .await
            .is_err()
    );

    // Start-up refusals, each naming what is wrong.
    let missing_kek = start_error(&app, |c| use_hsm(c, pkcs11(&fresh_prefix()))).await;
    assert!(
        missing_kek.contains("KEK of key version 2 is not held"),
        "{missing_kek}"
    );
    let seed = start_error(&app, |_| {}).await;
    assert!(
        seed.contains("held by the `pkcs11` provider but vault.provider is `seed`"),
        "{seed}"
    );
    let token = start_error(&app, |c| {
        use_hsm(
            c,
            Pkcs11Config {
                token: "no-such-token".into(),
                ..pkcs11(&prefix)
            },
        )
    })
    .await;
    assert!(
        token.contains("no initialised PKCS#11 token labelled `no-such-token`"),
        "{token}"
    );
    let module = start_error(&app, |c| {
        use_hsm(
            c,
            Pkcs11Config {
                module: "/nonexistent/libpkcs11.so".into(),
                ..pkcs11(&prefix)
            },
        )
    })
    .await;
    assert!(
        module.contains("`/nonexistent/libpkcs11.so` did not load"),
        "{module}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_refuses_the_start_without_showing_it() {
    let _turn = take_turn();
    // A token of its own, initialised before this process loads the module, so a wrong attempt
    // cannot lock the shared one.
    let label = fresh_prefix();
    let status = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            &label,
            "--pin",
            "right-pin-81f2",
            "--so-pin",
            "so-pin-81f2",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _) = bulwark_testkit::app::test_config(Backend::Sqlite, dir.path()).await;
    use_hsm(
        &mut config,
        Pkcs11Config {
            token: label.clone(),
            pin: "wrong-pin-3c7d".into(),
            ..pkcs11(&fresh_prefix())
        },
    );
    let err = match startup::prepare(config).await {
        Ok(_) => panic!("started with a wrong PIN"),
        Err(e) => bulwark_server::error::error_chain(&e),
    };
    assert!(err.contains("vault.pkcs11") && err.contains("PIN"), "{err}");
    assert!(
        !err.contains("wrong-pin-3c7d") && !err.contains("right-pin-81f2"),
        "{err}"
    );
}
