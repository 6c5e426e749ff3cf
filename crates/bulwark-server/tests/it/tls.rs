//! Direct TLS: HTTPS with a configured certificate, HSTS, no plain HTTP on the TLS port.

use bulwark_testkit::{Backend, spawn_app_with};

#[tokio::test]
async fn https_is_served_with_hsts_and_tls_1_2_or_later() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.tls = Some(bulwark_server::config::TlsConfig {
            cert_path: cert_path.clone(),
            key_path: key_path.clone(),
        });
    })
    .await;
    assert!(app.base.starts_with("https://"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", app.addr)
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .no_proxy()
        .build()
        .unwrap();
    let res = client
        .get(format!("https://localhost:{}/healthz", app.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn a_missing_certificate_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _) = bulwark_testkit::app::test_config(Backend::Sqlite, dir.path()).await;
    config.tls = Some(bulwark_server::config::TlsConfig {
        cert_path: dir.path().join("nope.pem"),
        key_path: dir.path().join("nope.key"),
    });
    let err = bulwark_server::startup::prepare(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tls.cert_path") && err.contains("nope.pem"),
        "{err}"
    );
}
