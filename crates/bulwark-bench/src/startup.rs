//! `bulwark-bench startup`: cold start of `bulwark serve` on an existing SQLite data directory
//! until `/readyz` answers 200, beside the bare process start of `bulwark --version`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;

/// Measures `runs` cold starts of the `bulwark` binary `exe`, by default the one beside this
/// binary (`target/release/bulwark` for `target/release/bulwark-bench`).
pub async fn run(exe: Option<PathBuf>, runs: usize) -> anyhow::Result<()> {
    let runs = runs.max(1);
    let exe = match exe {
        Some(exe) => exe,
        None => std::env::current_exe()?.with_file_name("bulwark"),
    };
    let exe = exe.as_path();
    anyhow::ensure!(
        exe.is_file(),
        "`{}` not found: build `bulwark` beside `bulwark-bench` (`cargo build --release \
         --workspace`) or give its path with `--bulwark`",
        exe.display()
    );
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // First start creates the data dir, database and seed; it is not measured.
    serve_until_ready(exe, &data).await?;
    let mut cold = Vec::with_capacity(runs);
    let mut bare = Vec::with_capacity(runs);
    for _ in 0..runs {
        cold.push(serve_until_ready(exe, &data).await?);
        let t = Instant::now();
        let status = tokio::process::Command::new(exe)
            .arg("--version")
            .output()
            .await?
            .status;
        anyhow::ensure!(status.success(), "--version failed");
        bare.push(t.elapsed());
    }
    cold.sort_unstable();
    bare.sort_unstable();
    let median = |v: &[Duration]| {
        v.get(v.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    let max = |v: &[Duration]| v.last().copied().unwrap_or_default().as_secs_f64() * 1000.0;
    println!("bench startup: {runs} runs on an existing SQLite data dir");
    println!("{:<34} {:>10} {:>10}", "", "median ms", "max ms");
    println!(
        "{:<34} {:>10.1} {:>10.1}",
        "process start (bulwark --version)",
        median(&bare),
        max(&bare)
    );
    println!(
        "{:<34} {:>10.1} {:>10.1}",
        "serve until /readyz = 200",
        median(&cold),
        max(&cold)
    );
    Ok(())
}

/// Starts `serve` on `data` and an ephemeral port, waits for `/readyz` 200, stops it; returns the
/// time from spawn to ready.
async fn serve_until_ready(exe: &Path, data: &Path) -> anyhow::Result<Duration> {
    use tokio::io::AsyncBufReadExt as _;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("BULWARK_LOG__FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("serve exited before listening"))?;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v.get("message").and_then(|m| m.as_str()) == Some("listening") {
            break v
                .get("addr")
                .and_then(|a| a.as_str())
                .unwrap_or_default()
                .parse()?;
        }
    };
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = hyper::Request::get("/readyz")
                .header("host", "bench")
                .body(Empty::<Bytes>::new())?;
            if sender.send_request(req).await?.status() == 200 {
                break;
            }
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(10),
            "not ready within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = t.elapsed();
    child.kill().await?;
    Ok(elapsed)
}
