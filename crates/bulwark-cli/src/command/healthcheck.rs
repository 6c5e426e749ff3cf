//! `bulwark healthcheck`: asks the running server on this host whether it is alive (`/healthz`)
//! or ready (`/readyz`), for container health checks in images without curl (docs/deploy.md).

use std::net::IpAddr;
use std::time::Duration;

use crate::{Exit, StoreArgs};

/// How long the server gets to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the check; exit 0 when the server answers 200, 1 otherwise, 2 on a configuration error.
pub async fn run(args: StoreArgs, listen: Option<&str>, ready: bool, url: Option<String>) -> Exit {
    let path = if ready { "/readyz" } else { "/healthz" };
    let (target, loopback) = match url {
        Some(u) => {
            let loopback = url::Url::parse(&u)
                .ok()
                .and_then(|p| p.host_str().map(str::to_owned))
                .is_some_and(|h| {
                    h == "localhost"
                        || h.trim_matches(['[', ']'])
                            .parse::<IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                });
            (u, loopback)
        }
        None => {
            let config = match super::load_config(&args, listen) {
                Ok(c) => c,
                Err(e) => return e,
            };
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let addr = bulwark_server::metrics::local_target(config.listen);
            (format!("{scheme}://{addr}{path}"), addr.ip().is_loopback())
        }
    };
    // Over loopback the check talks to its own host's server: whether it answers is the
    // question, not whose name its certificate carries (`bulwark doctor` checks that).
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(loopback)
        .build();
    let Ok(client) = client else {
        eprintln!("unhealthy: cannot build an HTTP client");
        return Exit::Failure;
    };
    match client.get(&target).send().await {
        Ok(res) if res.status() == reqwest::StatusCode::OK => {
            println!("ok: {target} answered 200");
            Exit::Ok
        }
        Ok(res) => {
            eprintln!("unhealthy: {target} answered {}", res.status().as_u16());
            Exit::Failure
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "no answer in time"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            eprintln!("unhealthy: {target}: {why}");
            Exit::Failure
        }
    }
}
