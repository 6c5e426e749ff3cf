//! Start-up fails closed: a missing, corrupt, over-permissive or foreign seed next to existing
//! data refuses to start, and nothing is regenerated.

use std::os::unix::fs::PermissionsExt as _;

use bulwark_server::startup::{self, SEED_FILE};
use bulwark_testkit::app::test_config;
use bulwark_testkit::{Backend, on_both_engines};

/// Prepares once (creating the deployment), then lets `damage` alter the data dir and returns
/// the error of the second start.
async fn second_start_error(
    backend: Backend,
    damage: impl FnOnce(&std::path::Path),
) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (config, pg) = test_config(backend, dir.path()).await;
    let data = config.data_dir.clone();
    let url = config.database_url.clone();
    drop(startup::prepare(config).await.unwrap());
    damage(&data);
    let (mut again, _) = test_config(Backend::Sqlite, dir.path()).await;
    again.database_url = url;
    let err = startup::prepare(again)
        .await
        .err()
        .expect("second start must be refused")
        .to_string();
    drop(pg);
    (err, data, dir)
}

async fn a_missing_seed_next_to_existing_data_refuses_to_start(backend: Backend) {
    let (err, data, _dir) = second_start_error(backend, |d| {
        std::fs::remove_file(d.join(SEED_FILE)).unwrap()
    })
    .await;
    assert!(err.contains("missing") && err.contains("restore"), "{err}");
    assert!(!data.join(SEED_FILE).exists(), "no new seed was created");
}

async fn a_corrupt_seed_refuses_to_start(backend: Backend) {
    let (err, data, _dir) = second_start_error(backend, |d| {
        let p = d.join(SEED_FILE);
        let content = std::fs::read(&p).unwrap();
        std::fs::write(&p, &content[..40]).unwrap();
    })
    .await;
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read(data.join(SEED_FILE)).unwrap().len(),
        40,
        "left as it was"
    );
}

async fn a_seed_from_another_deployment_refuses_to_start(backend: Backend) {
    let (err, _, _dir) = second_start_error(backend, |d| {
        let p = d.join(SEED_FILE);
        std::fs::remove_file(&p).unwrap();
        let other = bulwark_crypto::Seed::generate().unwrap();
        std::fs::write(&p, other.to_file_content().as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    })
    .await;
    assert!(err.contains("does not match"), "{err}");
}

async fn a_seed_readable_by_others_refuses_to_start(backend: Backend) {
    let (err, _, _dir) = second_start_error(backend, |d| {
        std::fs::set_permissions(d.join(SEED_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    })
    .await;
    assert!(err.contains("chmod 600"), "{err}");
}

/// On PostgreSQL the data dir holds no database, but it holds the seed: it is checked as on SQLite.
async fn a_data_dir_open_to_all_users_refuses_to_start(backend: Backend) {
    let (err, _, _dir) = second_start_error(backend, |d| {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    })
    .await;
    assert!(err.contains("chmod 700"), "{err}");
}

on_both_engines!(
    a_data_dir_open_to_all_users_refuses_to_start,
    a_missing_seed_next_to_existing_data_refuses_to_start,
    a_corrupt_seed_refuses_to_start,
    a_seed_from_another_deployment_refuses_to_start,
    a_seed_readable_by_others_refuses_to_start,
);

#[tokio::test]
async fn a_second_start_reuses_the_deployment_and_rotates_the_pending_token() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = test_config(Backend::Sqlite, dir.path()).await;
    let data = config.data_dir.clone();
    let mut first = startup::prepare(config).await.unwrap();
    let t1 = first.take_setup_token().unwrap().expose().to_owned();
    let seed = std::fs::read(data.join(SEED_FILE)).unwrap();
    let mode = std::fs::metadata(data.join(SEED_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    drop(first);
    let (config, _) = test_config(Backend::Sqlite, dir.path()).await;
    let mut second = startup::prepare(config).await.unwrap();
    let t2 = second.take_setup_token().unwrap().expose().to_owned();
    assert_ne!(t1, t2);
    assert_eq!(
        std::fs::read(data.join(SEED_FILE)).unwrap(),
        seed,
        "the seed is reused"
    );
}
