//! Direct TLS: HTTPS with a configured certificate, HSTS, no plain HTTP on the TLS port.

use bulwark_testkit::{Backend, TestApp, spawn_app_with};

/// A server on HTTPS with a fresh self-signed ECDSA P-256 certificate for `localhost`: the
/// directory holding it, the app and the certificate.
async fn https_app() -> (tempfile::TempDir, TestApp, rcgen::Certificate) {
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
    (dir, app, cert)
}

#[tokio::test]
async fn https_is_served_with_hsts_and_tls_1_2_or_later() {
    let (_dir, app, cert) = https_app().await;
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

/// `openssl s_client` against `port` with `args`: the protocol and cipher it negotiated, or
/// `None` when the handshake failed.
async fn handshake(port: u16, args: &'static [&'static str]) -> Option<(String, String)> {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
    let line = text.lines().find(|l| l.starts_with("New, "))?;
    let (protocol, cipher) = line
        .trim_start_matches("New, ")
        .split_once(", Cipher is ")?;
    (cipher != "(NONE)").then(|| (protocol.to_owned(), cipher.to_owned()))
}

/// Only forward-secret AEAD suites are negotiated (ASVS V12.1.2): TLS 1.3 when the client
/// offers it; under TLS 1.2 the ECDHE suites with AES-GCM or ChaCha20-Poly1305, while CBC
/// suites, static RSA key exchange and Triple DES are refused, as are TLS 1.1 and 1.0.
#[tokio::test]
async fn only_forward_secret_aead_suites_are_negotiated() {
    let (_dir, app, _) = https_app().await;
    let port = app.addr.port();

    let (protocol, cipher) = handshake(port, &[]).await.expect("a default handshake");
    assert_eq!(protocol, "TLSv1.3");
    assert!(cipher.starts_with("TLS_AES_") || cipher.starts_with("TLS_CHACHA20_"));
    for suite in [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        let args: &'static [&'static str] = Box::leak(Box::new(["-tls1_2", "-cipher", suite]));
        assert_eq!(
            handshake(port, args).await,
            Some(("TLSv1.2".to_owned(), suite.to_owned())),
            "{suite} is offered"
        );
    }
    for suite in [
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-RSA-AES128-SHA",
        "AES128-GCM-SHA256",
        "AES256-SHA",
        "DES-CBC3-SHA",
        "eNULL",
        "ALL:!ECDHE:!DHE:@SECLEVEL=0",
        "DHE-RSA-AES128-GCM-SHA256",
    ] {
        let args: &'static [&'static str] = Box::leak(Box::new(["-tls1_2", "-cipher", suite]));
        assert_eq!(handshake(port, args).await, None, "{suite} is refused");
    }
    for old in ["-tls1_1", "-tls1"] {
        let args: &'static [&'static str] =
            Box::leak(Box::new([old, "-cipher", "DEFAULT:@SECLEVEL=0"]));
        assert_eq!(handshake(port, args).await, None, "{old} is refused");
    }
}
