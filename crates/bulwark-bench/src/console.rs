//! `bulwark-bench console`: server-side rendering beside the JSON API for the same data. An
//! org's log holds 1,000 events (teams created and deleted); the console's audit page (100
//! events, HTML) runs beside `GET /v1/orgs/{org}/audit/events?limit=100` (the same 100 events
//! as JSON); the members page
//! and the overview each beside the API calls, one after another on one connection, that a
//! client needs for the same data. Alternating 1 s rounds over keep-alive connections with the
//! owner's session cookie.

use std::net::SocketAddr;

use anyhow::Context as _;
use bulwark_server::config::Config;
use bulwark_server::startup;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::measure::{Run, load_seq, report};

const PASSWORD: &str = "bench console password";

/// `bulwark-bench console`.
pub async fn run(conns: usize, secs: u64, events: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let mut prepared = startup::prepare(config).await?;
    let addr = prepared.local_addr()?;
    let token = prepared
        .take_setup_token()
        .context("a fresh deployment has a setup token")?
        .expose()
        .to_owned();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder().no_proxy().build()?;
    let (org, cookie, csrf) = owner_session(&client, &base, &token).await?;
    // Events: a team created and deleted is two (the org keeps one team, so the member and
    // team reads stay small).
    for n in 0..events.div_ceil(2) {
        let res = client
            .post(format!("{base}/v1/orgs/{org}/teams"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({ "name": format!("team-{n}") }))
            .send()
            .await?;
        anyhow::ensure!(res.status() == 201, "creating events: {}", res.status());
        let team: Value = res.json().await?;
        let id = team
            .pointer("/id")
            .and_then(Value::as_str)
            .context("a team id")?;
        let res = client
            .delete(format!("{base}/v1/orgs/{org}/teams/{id}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .await?;
        anyhow::ensure!(res.status() == 204, "creating events: {}", res.status());
    }
    println!(
        "bench console: {events} events in the org's log, {conns} connections, {secs} alternating 1 s rounds each, client in-process"
    );
    let page = |path: String| vec![get(&path, &cookie)];
    let api = |paths: &[String]| paths.iter().map(|p| get(p, &cookie)).collect::<Vec<_>>();
    let pairs = [
        (
            "console audit page (100, HTML)",
            page(format!("/orgs/{org}/audit")),
            "API audit events (100, JSON)",
            api(&[format!("/v1/orgs/{org}/audit/events?limit=100")]),
        ),
        (
            "console members page (HTML)",
            page(format!("/orgs/{org}/members")),
            "API: me/orgs, members, invitations, teams",
            api(&[
                "/v1/me/orgs".to_owned(),
                format!("/v1/orgs/{org}/members"),
                format!("/v1/orgs/{org}/invitations"),
                format!("/v1/orgs/{org}/teams"),
            ]),
        ),
        (
            "console overview (HTML)",
            page(format!("/orgs/{org}")),
            "API: me/orgs, session, members, keys, 10 events",
            api(&[
                "/v1/me/orgs".to_owned(),
                "/v1/auth/session".to_owned(),
                format!("/v1/orgs/{org}/members"),
                format!("/v1/orgs/{org}/keys"),
                format!("/v1/orgs/{org}/audit/events?limit=10"),
            ]),
        ),
    ];
    for (name, page, base_name, api) in pairs {
        load_seq(addr, conns, 1, page.clone()).await?; // warm-up
        load_seq(addr, conns, 1, api.clone()).await?;
        let (mut ours, mut baseline) = (Run::default(), Run::default());
        for _ in 0..secs.max(1) {
            baseline.absorb(load_seq(addr, conns, 1, api.clone()).await?);
            ours.absorb(load_seq(addr, conns, 1, page.clone()).await?);
        }
        report(name, base_name, ours, baseline);
    }
    let _ = stop_tx.send(());
    Ok(())
}

fn get(path: &str, cookie: &str) -> crate::measure::MakeRequest {
    let (path, cookie) = (path.to_owned(), cookie.to_owned());
    std::sync::Arc::new(move || {
        Ok(hyper::Request::get(path.as_str())
            .header("host", "bench")
            .header("cookie", cookie.as_str())
            .body(Full::new(Bytes::new()))?)
    })
}

/// Sets up the deployment and signs its owner in with a second factor (the default org policy
/// requires one of owners); returns the org, the session cookie and the CSRF token.
pub(crate) async fn owner_session(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<(String, String, String)> {
    let setup: Value = client
        .post(format!("{base}/v1/setup"))
        .json(&json!({"setup_token": token, "org": {"name": "Bench"},
                      "owner": {"email": "owner@bench.example", "password": PASSWORD}}))
        .send()
        .await?
        .json()
        .await?;
    let org = setup
        .pointer("/org/id")
        .and_then(Value::as_str)
        .context("setup answered an org")?
        .to_owned();
    let login = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "owner@bench.example", "password": PASSWORD}))
        .send()
        .await?;
    let (cookie, csrf) = credentials(login).await?;
    let enrol: Value = client
        .post(format!("{base}/v1/auth/mfa/totp"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let secret = bulwark_crypto::TotpSecret::from_base32(
        enrol
            .pointer("/secret")
            .and_then(Value::as_str)
            .context("enrolment answered a secret")?,
    )?;
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp())?;
    let code = bulwark_crypto::totp_code_at(&secret, bulwark_crypto::TotpParams::default(), now);
    let confirmed = client
        .post(format!("{base}/v1/auth/mfa/totp/confirm"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"code": code.to_string()}))
        .send()
        .await?;
    let (cookie, csrf) = credentials(confirmed).await?;
    Ok((org, cookie, csrf))
}

async fn credentials(res: reqwest::Response) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(res.status().is_success(), "sign-in step: {}", res.status());
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-bulwark_session="))
        .and_then(|c| c.split(';').next())
        .context("a session cookie")?
        .to_owned();
    let body: Value = res.json().await?;
    let csrf = body
        .pointer("/csrf_token")
        .and_then(Value::as_str)
        .context("a CSRF token")?
        .to_owned();
    Ok((cookie, csrf))
}
