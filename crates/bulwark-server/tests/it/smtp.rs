//! Mail through a real SMTP server process (Python's aiosmtpd) on loopback: STARTTLS with a
//! trusted certificate and AUTH delivers; an untrusted certificate or a wrong password delivers
//! nothing, withdraws the invitation, and leaks neither the body nor the password.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bulwark_server::config::{SmtpConfig, SmtpSecurity};
use bulwark_testkit::{Backend, TestApp, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const RELAY_PASSWORD: &str = "relay-secret-Zq81";

/// A running aiosmtpd; killed on drop.
struct Peer {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
    tls: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn python() -> String {
    std::env::var("BULWARK_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn start_peer() -> Peer {
    let check = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "the SMTP test peer needs aiosmtpd: `python3 -m pip install aiosmtpd==1.4.6` \
         (scripts/test installs it)"
    );
    let tls = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(tls.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(tls.path().join("key.pem"), key.serialize_pem()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/smtp_peer.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(port.to_string())
        .arg(out.path())
        .arg("starttls")
        .arg(tls.path().join("cert.pem"))
        .arg(tls.path().join("key.pem"))
        .args(["bulwark", RELAY_PASSWORD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the SMTP peer did not start");
    Peer {
        child,
        port,
        out,
        tls,
    }
}

fn received(peer: &Peer) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(peer.out.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

async fn app_with(peer: &Peer, trust: bool, password: &str) -> (TestApp, String) {
    let smtp = SmtpConfig {
        host: "localhost".into(),
        port: peer.port,
        security: SmtpSecurity::Starttls,
        username: Some("bulwark".into()),
        password: Some(password.to_owned().into()),
        allow_plaintext_auth: false,
        ca_file: trust.then(|| peer.tls.path().join("cert.pem")),
        timeout_secs: 10,
    };
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.mail.from = "bulwark@acme.test".into();
        c.mail.smtp = Some(smtp);
    })
    .await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    (app, org)
}

async fn invite(app: &TestApp, org: &str) -> reqwest::Response {
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    app.send_as(
        &owner,
        Method::POST,
        &format!("/v1/orgs/{org}/invitations"),
        &json!({"email": "new@acme.test", "role": "member"}),
    )
    .await
}

#[tokio::test]
async fn an_invitation_is_delivered_over_starttls_with_auth() {
    let peer = start_peer();
    let (app, org) = app_with(&peer, true, RELAY_PASSWORD).await;
    let res = invite(&app, &org).await;
    assert_eq!(res.status(), 201);
    let mails = received(&peer);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.contains("From: bulwark@acme.test"), "{mail}");
    assert!(mail.contains("To: new@acme.test"), "{mail}");
    assert!(mail.contains("Subject: Invitation to Acme"), "{mail}");
    let start = mail.find("bwinvite_").expect("a token");
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let res = app
        .client
        .post(app.url("/v1/invitations/accept"))
        .json(&json!({"token": token, "password": "quiet violet harbour lantern 42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the delivered token works");
}

#[tokio::test]
async fn an_untrusted_relay_certificate_or_wrong_password_delivers_nothing() {
    let peer = start_peer();
    let cap = bulwark_testkit::logs::capture(bulwark_server::config::LogFormat::Json, "info");
    for (trust, password) in [(false, RELAY_PASSWORD), (true, "wrong-relay-password")] {
        let (app, org) = app_with(&peer, trust, password).await;
        let res = invite(&app, &org).await;
        assert_eq!(res.status(), 502, "trust={trust}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "mail_failed");
        let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
        let list: Value = app
            .get_as(&owner, &format!("/v1/orgs/{org}/invitations"))
            .await
            .json()
            .await
            .unwrap();
        assert!(
            list["invitations"].as_array().unwrap().is_empty(),
            "an undelivered invitation is withdrawn"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let logs = cap.text();
        assert!(
            !logs.contains(password),
            "the relay password is never logged"
        );
        assert!(logs.contains("email not sent"), "the failure is logged");
        assert!(!logs.contains("bwinvite_"), "the token is never logged");
        assert!(!body.to_string().contains(password));
    }
    assert!(received(&peer).is_empty());
}
