//! A real browser for the console's tests: Debian's chromedriver as a child process on a free
//! loopback port (killed, with its browsers, on drop), and headless Chromium sessions over
//! WebDriver (fantoccini).
//!
//! The peers come from `scripts/test`: `BULWARK_TEST_CHROMEDRIVER` (else `chromedriver` on
//! `PATH`) and `BULWARK_TEST_AXE`, the path of axe-core's `axe.min.js` (else the copy
//! `scripts/test` installs under `~/.cache/bulwark-test-npm`). A missing peer fails the test with
//! a message saying how to install it.
//!
//! Each [`Browser`] is a session of its own: a fresh profile, so an independent cookie jar (a
//! second user, or an attacker's browser, is a second session).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The flags every session's Chromium runs with (and a window size).
pub const CHROMIUM_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The window a session opens with (screenshots set their own viewport).
pub const WINDOW: (u32, u32) = (1280, 800);

/// How long a page, a navigation or an element may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The path of chromedriver: `BULWARK_TEST_CHROMEDRIVER`, else `chromedriver` on `PATH`.
///
/// # Panics
/// When neither exists.
#[must_use]
pub fn chromedriver_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BULWARK_TEST_CHROMEDRIVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "BULWARK_TEST_CHROMEDRIVER={} is not a file: install Debian's chromium and \
             chromium-driver (scripts/test installs them)",
            p.display()
        );
        return p;
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("chromedriver"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser tests need chromedriver and Chromium: `apt-get install chromium \
                 chromium-driver`, or set BULWARK_TEST_CHROMEDRIVER (scripts/test does both)"
            )
        })
}

/// The path of axe-core's `axe.min.js`: `BULWARK_TEST_AXE`, else the copy `scripts/test`
/// installs under `~/.cache/bulwark-test-npm`.
///
/// # Panics
/// When the file is missing.
#[must_use]
pub fn axe_path() -> PathBuf {
    let p = std::env::var_os("BULWARK_TEST_AXE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/bulwark-test-npm/node_modules/axe-core/axe.min.js")
        },
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "the accessibility tests need axe-core: {} is missing; run them through scripts/test \
         (it installs axe-core@4.14.1 from npm), or `npm install --prefix DIR axe-core@4.14.1` \
         and set BULWARK_TEST_AXE=DIR/node_modules/axe-core/axe.min.js",
        p.display()
    );
    p
}

/// A running chromedriver; on drop, its sessions are ended (their browsers quit) and it is
/// killed.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<String>>>,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    ///
    /// # Panics
    /// When chromedriver is missing or does not become ready within 20 s.
    pub async fn start() -> Self {
        let path = chromedriver_path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let driver = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            sessions: Arc::default(),
        };
        let client = crate::app::client();
        let status = format!("http://{}/status", driver.addr);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = match client.get(&status).send().await {
                Ok(res) => res
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v.pointer("/value/ready") == Some(&Value::Bool(true))),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver ({}) did not become ready within {PATIENCE:?}",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// A new headless Chromium session (a fresh profile: its own cookies and storage) whose
    /// relative paths resolve against `base`.
    ///
    /// # Panics
    /// When Chromium does not start.
    pub async fn session(&self, base: &str) -> Browser {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("pageLoadStrategy".into(), json!("normal"));
        caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
        let client = ClientBuilder::rustls()
            .expect("the TLS roots load")
            .capabilities(caps)
            .connect(&format!("http://{}", self.addr))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        let id = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a WebDriver session id");
        self.sessions.lock().unwrap().push(id.clone());
        let browser = Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            id,
            sessions: Arc::clone(&self.sessions),
        };
        browser
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": WATCH }),
            )
            .await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            delete_session(self.addr, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ends a WebDriver session with a blocking request (from `Drop`, where nothing is async): the
/// session's browser quits rather than outliving the test.
fn delete_session(addr: SocketAddr, id: &str) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "DELETE /session/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// `prefers-color-scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `light`.
    Light,
    /// `dark`.
    Dark,
}

impl Scheme {
    /// `light` or `dark`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }
}

/// Run in every document before its own scripts (through the DevTools protocol, which the
/// page's CSP does not govern): notes each CSP violation the page reports and each script error,
/// so a test sees them at once rather than when the browser gets round to sending a report.
const WATCH: &str = r"(() => {
  const csp = [], errors = [];
  Object.defineProperty(window, '__bulwark_csp', { value: csp });
  Object.defineProperty(window, '__bulwark_errors', { value: errors });
  document.addEventListener('securitypolicyviolation', e => csp.push(
    e.violatedDirective + ' blocked ' + (e.blockedURI || '(inline)') + ' at ' +
    (e.sourceFile || document.URL) + ':' + e.lineNumber + ' ' + (e.sample || '')), true);
  window.addEventListener('error', e => errors.push(
    String(e.message) + ' at ' + (e.filename || '') + ':' + e.lineno));
  window.addEventListener('unhandledrejection', e => errors.push(
    'unhandled rejection: ' + String(e.reason)));
})();";

/// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
    }
}

/// One browser session.
pub struct Browser {
    client: Client,
    base: String,
    id: String,
    sessions: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    /// The WebDriver client, for what the helpers do not cover.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `path` against the base (an absolute URL is kept).
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        if path.contains("://") || path.starts_with("data:") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Opens `path` (relative to the base, or an absolute URL) and waits for it to load.
    pub async fn goto(&self, path: &str) {
        let url = self.url(path);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    }

    /// The current URL's path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        }
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
            .is_empty()
    }

    /// Types `value` into the field `css` (cleared first).
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    /// Sets the value of the field `css` at once (long texts; text typing would take long).
    pub async fn set_value(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        let el = serde_json::to_value(&field).expect("an element reference");
        self.script(
            "arguments[0].value = arguments[1]; \
             arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            vec![el, json!(value)],
        )
        .await;
    }

    /// Chooses the option with `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select `{value}` in `{css}`: {e}"));
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Submits the form `form_css` by clicking its submit button, and waits for the page that
    /// answers.
    pub async fn submit(&self, form_css: &str) {
        let button = format!("{form_css} button[type=submit]");
        self.navigating(async {
            self.click(&button).await;
        })
        .await;
    }

    /// Runs `action` (which makes the page navigate: a click, a submit) and waits until another
    /// document has loaded.
    pub async fn navigating(&self, action: impl Future<Output = ()>) {
        self.script("window.__bulwark_leaving = true;", vec![])
            .await;
        action.await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let done = self
                .client
                .execute(
                    "return window.__bulwark_leaving !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no new page within {PATIENCE:?} (still on {})",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The visible text of `css` (trimmed).
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of `{css}`: {e}"))
            .trim()
            .to_owned()
    }

    /// The whole text content of `css` (hidden parts too).
    pub async fn text_content(&self, css: &str) -> String {
        let el = serde_json::to_value(self.find(css).await).expect("an element reference");
        self.script("return arguments[0].textContent;", vec![el])
            .await
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// An attribute of `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("attribute {name} of `{css}`: {e}"))
    }

    /// Runs `js` as a function body with `args` (a returned promise is awaited).
    pub async fn script(&self, js: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(js, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{}", short(js)))
    }

    /// Waits until `js` (a function body) returns `true`.
    pub async fn wait_until(&self, js: &str, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.client.execute(js, vec![]).await.ok() != Some(Value::Bool(true)) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {PATIENCE:?} on {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A Chrome DevTools Protocol command (through chromedriver).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// Sets the page's `prefers-color-scheme` (for this and later pages of the session).
    pub async fn color_scheme(&self, scheme: Scheme) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme.as_str() }] }),
        )
        .await;
        let query = format!(
            "return matchMedia('(prefers-color-scheme: {})').matches;",
            scheme.as_str()
        );
        assert_eq!(
            self.script(&query, vec![]).await,
            Value::Bool(true),
            "the page's colour scheme did not switch to {}",
            scheme.as_str()
        );
    }

    /// Sets the viewport to `width`×`height` CSS pixels (`mobile`: a phone's, with touch-style
    /// viewport handling).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// A PNG of the viewport at `width`×`height` (a phone's viewport below 600 px wide).
    pub async fn screenshot(&self, width: u32, height: u32) -> Vec<u8> {
        self.viewport(width, height, width < 600).await;
        self.capture().await
    }

    /// A PNG of the viewport as it is.
    pub async fn capture(&self) -> Vec<u8> {
        // Let the latest layout paint first.
        self.script(
            "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));",
            vec![],
        )
        .await;
        self.client.screenshot().await.expect("a screenshot")
    }

    /// Scrolls the page so that `css` is in the middle of the viewport.
    pub async fn scroll_to(&self, css: &str) {
        let el = serde_json::to_value(self.find(css).await).expect("an element reference");
        self.script(
            "arguments[0].scrollIntoView({ block: 'center', behavior: 'instant' });",
            vec![el],
        )
        .await;
    }

    /// The CSP violations and script errors the current document saw so far.
    pub async fn trouble(&self) -> Vec<String> {
        let v = self
            .script(
                "return (window.__bulwark_csp || []).map(t => 'CSP: ' + t)\
                 .concat((window.__bulwark_errors || []).map(t => 'script: ' + t));",
                vec![],
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs axe-core on the current page with the rule `tags`; the violations (each with its
    /// rule, impact, help and the offending nodes).
    pub async fn axe(&self, tags: &[&str]) -> Vec<Value> {
        static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let source = AXE.get_or_init(|| {
            let path = axe_path();
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        });
        let loaded = self
            .script("return typeof window.axe === 'object';", vec![])
            .await;
        if loaded != Value::Bool(true) {
            self.script(&format!("{source}\n;return true;"), vec![])
                .await;
        }
        let out = self
            .script(
                "return window.axe.run(document, { runOnly: { type: 'tag', values: arguments[0] }, \
                 resultTypes: ['violations'] }).then(r => r.violations.map(v => ({ id: v.id, \
                 impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({ target: n.target, \
                 html: n.html, summary: n.failureSummary })) })));",
                vec![json!(tags)],
            )
            .await;
        match out {
            Value::Array(v) => v,
            other => panic!("axe answered {other}"),
        }
    }

    /// Ends the session (its browser quits).
    pub async fn close(self) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| *s != self.id);
        let _ = self.client.close().await;
    }
}

fn short(s: &str) -> &str {
    s.get(..200).unwrap_or(s)
}
