//! Spawning the binary, reading its output with deadlines, and killing it whatever happens.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bulwark");
/// How long a server gets to log `listening`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server gets to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a command that must fail at once (refusal, config error) may take.
pub const QUICK_EXIT: Duration = Duration::from_secs(20);
/// How long a one-shot command (setup, migrate, config check) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// `bulwark` in `cwd` with no `BULWARK_*` variable inherited from the test environment, so only
/// what a test sets explicitly configures the binary.
pub fn bulwark(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BULWARK_") {
            c.env_remove(key);
        }
    }
    c
}

/// A process that has exited, with everything it wrote.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// All of standard output.
    pub stdout: String,
    /// All of standard error.
    pub stderr: String,
}

impl Finished {
    /// Both streams, for "never printed anywhere" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The JSON log lines on stdout (lines that are not JSON are skipped).
    pub fn log(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Whether the log has a line with this `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.log().iter().any(|v| v["message"] == message)
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A spawned process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `cmd` with piped stdout and stderr; `stdin` is written and closed (or stdin is
    /// empty when `None`).
    pub fn spawn(mut cmd: Command, stdin: Option<&str>) -> Self {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the bulwark binary");
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let input = child.stdin.take();
        // Guard first, so the child dies even if a reader thread cannot be started.
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut proc = Self {
            child,
            lines,
            stdout: Vec::new(),
            stderr: stderr.clone(),
            stderr_reader: None,
        };
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        proc.stderr_reader = Some(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        }));
        if let (Some(mut w), Some(text)) = (input, stdin) {
            // A process that exits before reading its input is not an error here.
            let _ = w.write_all(text.as_bytes());
        }
        proc
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the first stdout log line whose `message` is `message`. `Ok(line)`, or
    /// `Err(finished)` when the process exited first; panics after `timeout`.
    pub fn wait_for_log(&mut self, message: &str, timeout: Duration) -> Result<Value, Finished> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let parsed = serde_json::from_str::<Value>(&line);
                    self.stdout.push(line.clone());
                    let v = parsed.unwrap_or_else(|e| {
                        panic!(
                            "stdout line is not JSON ({e}): {line}\nstderr: {}",
                            self.stderr_so_far()
                        )
                    });
                    if v["message"] == message {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.finish(QUICK_EXIT)),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no `{message}` log line within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.join("\n"),
                    self.stderr_so_far()
                ),
            }
        }
    }

    /// Waits for the process to exit (panicking, and killing it, after `timeout`) and returns
    /// everything it wrote.
    pub fn finish(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the process did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.join("\n"),
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The pipes close with the process; the readers reach end of file promptly.
        let drain_deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.stdout.push(line),
                Err(_) => break,
            }
        }
        if let Some(h) = self.stderr_reader.take() {
            h.join().expect("stderr reader");
        }
        Finished {
            code: status.code(),
            stdout: self.stdout.join("\n"),
            stderr: self.stderr_so_far(),
        }
    }
}

/// Runs `cmd` to completion (feeding `stdin`), within `timeout`.
pub fn run_with(cmd: Command, stdin: Option<&str>, timeout: Duration) -> Finished {
    Proc::spawn(cmd, stdin).finish(timeout)
}

/// Runs `bulwark ARGS` in `cwd` to completion.
pub fn run(cwd: &Path, args: &[&str]) -> Finished {
    let mut cmd = bulwark(cwd);
    cmd.args(args);
    run_with(cmd, None, COMMAND_TIMEOUT)
}

/// A running `bulwark serve`, killed on drop.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// `ip:port` from the `listening` line.
    pub addr: String,
}

impl Server {
    /// The JSON log lines read so far.
    pub fn log(&self) -> Vec<Value> {
        self.proc
            .stdout
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first log line read so far with this `message`.
    pub fn log_line(&self, message: &str) -> Option<Value> {
        self.log().into_iter().find(|v| v["message"] == message)
    }

    /// SIGTERM, then waits (at most [`STOP_TIMEOUT`]) for the exit.
    pub fn terminate(mut self) -> Finished {
        let pid = self.proc.pid().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        self.proc.finish(STOP_TIMEOUT)
    }
}

/// Starts `serve` from `cmd` (already holding `serve` and its flags) and waits for `listening`.
/// `Err` with the output when the process exited first.
pub fn try_serve_cmd(cmd: Command) -> Result<Server, Finished> {
    let mut proc = Proc::spawn(cmd, None);
    let line = proc.wait_for_log("listening", START_TIMEOUT)?;
    let addr = line["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("`listening` line without `addr`: {line}"))
        .to_owned();
    Ok(Server { proc, addr })
}

/// `bulwark serve ARGS` in `cwd`, or the output when it exited before listening.
pub fn try_serve(cwd: &Path, args: &[&str]) -> Result<Server, Finished> {
    let mut cmd = bulwark(cwd);
    cmd.arg("serve").args(args);
    try_serve_cmd(cmd)
}

/// `bulwark serve ARGS` in `cwd`; panics with its output when it does not start.
pub fn serve(cwd: &Path, args: &[&str]) -> Server {
    try_serve(cwd, args).unwrap_or_else(|f| panic!("serve did not start:\n{f}"))
}

/// `bulwark serve --listen 127.0.0.1:0 --data-dir DIR ARGS`.
pub fn serve_on(cwd: &Path, data: &Path, args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0", "--data-dir", path_str(data)];
    all.extend_from_slice(args);
    serve(cwd, &all)
}

/// Creates a deployment in `cwd/NAME` (start once, stop cleanly) and returns its data dir.
pub fn initialised_data_dir(cwd: &Path, name: &str) -> PathBuf {
    let data = cwd.join(name);
    let server = serve_on(cwd, &data, &[]);
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "first start/stop:\n{out}");
    assert!(data.join("seed").is_file() && data.join("bulwark.db").is_file());
    data
}

/// `bulwark serve --listen 127.0.0.1:0 --data-dir DIR ARGS`, which must exit on its own quickly.
pub fn serve_expecting_exit(cwd: &Path, data: &Path, args: &[&str]) -> Finished {
    let mut all = vec!["--listen", "127.0.0.1:0", "--data-dir", path_str(data)];
    all.extend_from_slice(args);
    match try_serve(cwd, &all) {
        Ok(server) => {
            let out = server.terminate();
            panic!("serve started but was expected to refuse:\n{out}")
        }
        Err(finished) => finished,
    }
}

/// A path as `&str` (temp dirs are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Every `bwsetup_…` token in `text`.
pub fn setup_tokens(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '`' || c == '\'')
        .filter(|w| w.starts_with("bwsetup_"))
        .map(str::to_owned)
        .collect()
}

/// File permission bits.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Sets file permission bits.
pub fn chmod(p: &Path, bits: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(bits)).unwrap();
}

/// A small runtime for HTTP calls and the PostgreSQL testkit.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `content-type`, or empty.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.text().await.unwrap();
    Answer {
        status,
        content_type,
        body,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `GET http://ADDR/PATH`.
pub fn get(addr: &str, path: &str) -> Answer {
    runtime().block_on(async {
        answer(
            client()
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap(),
        )
        .await
    })
}

/// `METHOD http://ADDR/PATH` with `headers` and an optional JSON body; the answer and the
/// `name=value` part of each `Set-Cookie`.
pub fn request(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (Answer, Vec<String>) {
    runtime().block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client().request(method, format!("http://{addr}{path}"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.unwrap();
        let cookies = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::to_owned)
            .collect();
        (answer(res).await, cookies)
    })
}

/// `POST http://ADDR/PATH` with a JSON body.
pub fn post_json(addr: &str, path: &str, body: &Value) -> Answer {
    runtime().block_on(async {
        answer(
            client()
                .post(format!("http://{addr}{path}"))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    })
}
