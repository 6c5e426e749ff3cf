//! `bulwark-bench sso`: an OpenID Connect sign-in through Bulwark beside the provider's own
//! round trips. A minimal in-process provider (discovery, keys, an authorization endpoint that
//! answers at once, a token endpoint that signs an ES256 ID token) stands in for the IdP.
//! Baseline: the two provider calls a sign-in needs (authorize, token), made directly.
//! Ours: the whole sign-in through Bulwark (start, authorize, callback: the state and cookie
//! checks, the token exchange with the secret opened from the vault, the ID token checks with
//! cached keys, the session and its audit events). The difference is Bulwark's own time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_server::config::Config;
use bulwark_server::startup;
use serde_json::{Value, json};

use crate::measure::{Run, drive, report};

struct Op {
    issuer: String,
    signer: bulwark_crypto::Es256Signer,
    nonces: Mutex<HashMap<String, String>>,
    counter: std::sync::atomic::AtomicU64,
}

fn jws(op: &Op, claims: &Value) -> anyhow::Result<String> {
    let header = json!({"alg": "ES256", "kid": "bench", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = op.signer.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

async fn provider() -> anyhow::Result<(SocketAddr, Arc<Op>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (signer, _) = bulwark_crypto::Es256Signer::generate()?;
    let op = Arc::new(Op {
        issuer: format!("http://{addr}"),
        signer,
        nonces: Mutex::new(HashMap::new()),
        counter: std::sync::atomic::AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(op): State<Arc<Op>>| async move {
                let i = &op.issuer;
                axum::Json(json!({
                    "issuer": i, "authorization_endpoint": format!("{i}/authorize"),
                    "token_endpoint": format!("{i}/token"), "jwks_uri": format!("{i}/jwks"),
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                }))
            }),
        )
        .route(
            "/jwks",
            get(|State(op): State<Arc<Op>>| async move {
                let (x, y) = op.signer.public_xy();
                axum::Json(
                    json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench",
                    "use": "sig", "alg": "ES256", "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y)}]}),
                )
            }),
        )
        .route(
            "/authorize",
            get(
                |State(op): State<Arc<Op>>, Query(q): Query<HashMap<String, String>>| async move {
                    let n = op
                        .counter
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let code = format!("code-{n}");
                    let nonce = q.get("nonce").cloned().unwrap_or_default();
                    if let Ok(mut m) = op.nonces.lock() {
                        m.insert(code.clone(), nonce);
                    }
                    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
                    let state = q.get("state").cloned().unwrap_or_default();
                    Redirect::to(&format!("{redirect}?code={code}&state={state}"))
                },
            ),
        )
        .route(
            "/token",
            post(|State(op): State<Arc<Op>>, body: String| async move {
                let code = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let nonce = op
                    .nonces
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(&code))
                    .unwrap_or_default();
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let claims = json!({"iss": op.issuer, "aud": "bench", "sub": "bench-user",
                    "email": "user@bench.example", "email_verified": true, "nonce": nonce,
                    "iat": now, "exp": now + 300});
                match jws(&op, &claims) {
                    Ok(t) => axum::Json(json!({"access_token": "at", "token_type": "Bearer",
                        "id_token": t}))
                    .into_response(),
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .with_state(Arc::clone(&op));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, op))
}

/// This process's CPU time so far (user + system), in ms, from `/proc/self/stat` (Linux; 0
/// elsewhere).
pub(crate) fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last `)`.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counting from the state.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports them in USER_HZ, 100 per second on every mainstream kernel.
    (ticks(11) + ticks(12)) * 10.0
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn location(res: &reqwest::Response) -> anyhow::Result<String> {
    Ok(res
        .headers()
        .get("location")
        .context("a redirect")?
        .to_str()?
        .to_owned())
}

fn flow_cookie(res: &reqwest::Response) -> anyhow::Result<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-bulwark_sso="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .context("the flow cookie")
}

/// `bulwark-bench sso`.
pub async fn run(secs: u64) -> anyhow::Result<()> {
    let (op_addr, _op) = provider().await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.sso.public_url = Some(format!("http://127.0.0.1:{port}"));
    config.sso.idp_hosts = vec!["127.0.0.1".into()];
    config.egress.allow_http = true;
    config.egress.allow_loopback = vec![op_addr.to_string()];
    config.throttle.unauthenticated_per_minute = 1_000_000;
    let mut prepared = startup::prepare(config).await?;
    let token = prepared
        .take_setup_token()
        .context("a fresh deployment has a setup token")?
        .expose()
        .to_owned();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (org, cookie, csrf) = crate::console::owner_session(&client, &base, &token).await?;
    let send = |path: String, body: Value| {
        client
            .post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let res = send(
        format!("/v1/orgs/{org}/sso/domains"),
        json!({"domain": "bench.example"}),
    )
    .await?;
    anyhow::ensure!(res.status() == 201, "domain: {}", res.status());
    let res = send(
        "/v1/sso/domains/verify".into(),
        json!({"org": org, "domain": "bench.example"}),
    )
    .await?;
    anyhow::ensure!(res.status() == 200, "verify: {}", res.status());
    let res = send(
        format!("/v1/orgs/{org}/sso/connections"),
        json!({"name": "bench", "oidc": {"issuer": format!("http://{op_addr}"),
            "client_id": "bench", "client_secret": "bench-secret"}}),
    )
    .await?;
    anyhow::ensure!(res.status() == 201, "connection: {}", res.status());
    let connection: Value = res.json().await?;
    let start_url = connection
        .pointer("/start_url")
        .and_then(Value::as_str)
        .context("start_url")?
        .to_owned();
    let redirect_uri = connection
        .pointer("/oidc/redirect_uri")
        .and_then(Value::as_str)
        .context("redirect_uri")?
        .to_owned();

    let ours = {
        let (client, start_url) = (client.clone(), start_url.clone());
        move || {
            let (client, start_url) = (client.clone(), start_url.clone());
            async move {
                let res = client.get(&start_url).send().await?;
                let flow = flow_cookie(&res)?;
                let at_op = client.get(location(&res)?).send().await?;
                let callback = location(&at_op)?;
                let done = client.get(callback).header("cookie", flow).send().await?;
                anyhow::ensure!(done.status() == 303, "sign-in: {}", done.status());
                Ok(())
            }
        }
    };
    let baseline = {
        let client = client.clone();
        move || {
            let (client, redirect_uri) = (client.clone(), redirect_uri.clone());
            async move {
                let authorize = format!(
                    "http://{op_addr}/authorize?state=s&nonce=n&redirect_uri={}",
                    url::form_urlencoded::byte_serialize(redirect_uri.as_bytes())
                        .collect::<String>()
                );
                let res = client.get(authorize).send().await?;
                let callback = url::Url::parse(&location(&res)?)?;
                let code = callback
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let res = client
                    .post(format!("http://{op_addr}/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("grant_type=authorization_code&code={code}"))
                    .send()
                    .await?;
                anyhow::ensure!(res.status() == 200, "token: {}", res.status());
                let _ = res.bytes().await?;
                Ok(())
            }
        }
    };
    println!(
        "bench sso: OpenID Connect sign-ins one after another, {secs} alternating 1 s rounds, \
         SQLite, provider and client in-process"
    );
    compare(secs, "provider round trips alone", ours, baseline).await?;
    let _ = stop_tx.send(());
    Ok(())
}

/// Alternating 1 s rounds of `baseline` and `ours` (sign-ins one after another, after one
/// warm-up round of `ours`), then the latency table and the process CPU per sign-in of each.
pub(crate) async fn compare<F, Fut, G, Gut>(
    secs: u64,
    base_name: &str,
    ours: F,
    baseline: G,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
    G: Fn() -> Gut + Clone + Send + 'static,
    Gut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    drive(1, 1, ours.clone()).await?; // warm-up: JIT provisioning, keys and metadata cached
    let (mut mine, mut base_run) = (Run::default(), Run::default());
    let (mut cpu_ours, mut cpu_base, mut n_ours, mut n_base) = (0.0, 0.0, 0usize, 0usize);
    for _ in 0..secs.max(1) {
        let at = cpu_ms();
        let run = drive(1, 1, baseline.clone()).await?;
        cpu_base += cpu_ms() - at;
        n_base += run.count();
        base_run.absorb(run);
        let at = cpu_ms();
        let run = drive(1, 1, ours.clone()).await?;
        cpu_ours += cpu_ms() - at;
        n_ours += run.count();
        mine.absorb(run);
    }
    let (p50_ours, p50_base) = (mine.pct(0.5), base_run.pct(0.5));
    report("sign-in through Bulwark", base_name, mine, base_run);
    println!(
        "Bulwark's own time per sign-in (p50 difference): {:.3} ms",
        p50_ours - p50_base
    );
    let (per_ours, per_base) = (
        cpu_ours / n_ours.max(1) as f64,
        cpu_base / n_base.max(1) as f64,
    );
    println!(
        "process CPU per sign-in: {per_ours:.3} ms through Bulwark, {per_base:.3} ms for the \
         {base_name}; Bulwark's own CPU ≈ {:.3} ms",
        per_ours - per_base
    );
    Ok(())
}
