//! `spawn_app(Backend)`: a real server on `127.0.0.1:0` over a fresh SQLite file or a fresh
//! PostgreSQL database (migrated as the owner, served as the application role).

use std::net::SocketAddr;

use bulwark_server::config::{Config, LogFormat};
use bulwark_server::startup;
use bulwark_server::state::AppState;
use secrecy::SecretString;
use tokio::sync::oneshot;

use crate::pg;

/// Which store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in a temp dir.
    Sqlite,
    /// A fresh database in the test cluster.
    Postgres,
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub base: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// A client: no proxy, no redirects, no cookies.
    pub client: reqwest::Client,
    /// The one-time setup token printed at start, if setup is pending.
    pub setup_token: Option<String>,
    /// The server's state (store, config).
    pub state: AppState,
    /// The data dir (kept alive as long as the app).
    pub data_dir: tempfile::TempDir,
    /// The PostgreSQL database, when on PostgreSQL.
    pub pg: Option<pg::PgTestDb>,
    /// Unused backup codes of users enrolled through [`TestApp::login_mfa`], by email.
    pub backup_codes: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// An absolute URL for `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Completes setup with the token; returns the response JSON.
    pub async fn setup(&self, org: &str, email: &str, password: &str) -> serde_json::Value {
        let res = self
            .client
            .post(self.url("/v1/setup"))
            .json(&serde_json::json!({
                "setup_token": self.setup_token.as_deref().expect("setup pending"),
                "org": {"name": org},
                "owner": {"email": email, "password": password},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "setup failed");
        res.json().await.unwrap()
    }

    /// Signs in; panics unless it succeeds (the session may still owe its second factor).
    pub async fn login(&self, email: &str, password: &str) -> SignedIn {
        let res = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            let status = res.status();
            panic!(
                "login failed: {status} {}",
                res.text().await.unwrap_or_default()
            );
        }
        SignedIn::from_response(res).await
    }

    /// A state-changing request as `who` (cookie and CSRF token), with a JSON body.
    pub async fn send_as(
        &self,
        who: &SignedIn,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .header(reqwest::header::COOKIE, &who.cookie)
            .header("x-csrf-token", &who.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Signs in with a second factor: the first time for `email`, enrols a TOTP authenticator
    /// (keeping its backup codes); later, completes sign-in with one of those codes.
    pub async fn login_mfa(&self, email: &str, password: &str) -> SignedIn {
        let first = self.login(email, password).await;
        let code = self
            .backup_codes
            .lock()
            .unwrap()
            .get_mut(email)
            .and_then(Vec::pop);
        if let Some(code) = code {
            let res = self
                .send_as(
                    &first,
                    reqwest::Method::POST,
                    "/v1/auth/mfa/verify",
                    &serde_json::json!({ "code": code }),
                )
                .await;
            assert_eq!(res.status(), 200, "MFA verify failed");
            return SignedIn::from_response(res).await;
        }
        let (signed, _, codes) = self.enroll_totp(&first, password).await;
        self.backup_codes
            .lock()
            .unwrap()
            .insert(email.to_owned(), codes);
        signed
    }

    /// Enrols a TOTP authenticator for `who`; returns the new session, the secret and the
    /// backup codes.
    pub async fn enroll_totp(
        &self,
        who: &SignedIn,
        password: &str,
    ) -> (SignedIn, bulwark_crypto::TotpSecret, Vec<String>) {
        let res = self
            .send_as(
                who,
                reqwest::Method::POST,
                "/v1/auth/mfa/totp",
                &serde_json::json!({ "password": password }),
            )
            .await;
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(status, 200, "TOTP enrolment failed: {body}");
        let secret = bulwark_crypto::TotpSecret::from_base32(
            body.get("secret").and_then(|v| v.as_str()).unwrap(),
        )
        .unwrap();
        let code = totp_now(&secret, 0);
        let res = self
            .send_as(
                who,
                reqwest::Method::POST,
                "/v1/auth/mfa/totp/confirm",
                &serde_json::json!({ "code": code }),
            )
            .await;
        assert_eq!(res.status(), 200, "TOTP confirmation failed");
        let signed = SignedIn::from_response(res).await;
        let codes = signed
            .body
            .get("backup_codes")
            .and_then(|v| v.as_array())
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (signed, secret, codes)
    }
}

/// The TOTP code of `secret` for the step `offset` steps from now.
#[must_use]
pub fn totp_now(secret: &bulwark_crypto::TotpSecret, offset: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() + offset * 30;
    bulwark_crypto::totp_code_at(
        secret,
        bulwark_crypto::TotpParams::default(),
        u64::try_from(now).unwrap(),
    )
    .to_string()
}

impl SignedIn {
    /// The credentials a sign-in answer set.
    pub async fn from_response(res: reqwest::Response) -> Self {
        let cookie = res
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("__Host-bulwark_session="))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let body: serde_json::Value = res.json().await.unwrap();
        Self {
            csrf: body
                .get("csrf_token")
                .and_then(|v| v.as_str())
                .unwrap()
                .to_owned(),
            cookie,
            body,
        }
    }
}

impl TestApp {
    /// A GET as the signed-in `who`.
    pub async fn get_as(&self, who: &SignedIn, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(reqwest::header::COOKIE, &who.cookie)
            .send()
            .await
            .unwrap()
    }

    /// Appends `count` `member.removed` events (`usr_old0`, …) to `org`'s log, timed
    /// `days_ago` days back, as if written then: material for retention tests.
    pub async fn append_old_events(&self, org: bulwark_types::OrgId, count: usize, days_ago: i64) {
        use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
        struct Past(time::Duration);
        impl bulwark_types::Clock for Past {
            fn now(&self) -> time::OffsetDateTime {
                time::OffsetDateTime::now_utc() - self.0
            }
        }
        let drafts = (0..count)
            .map(|i| bulwark_core::audit::Draft {
                payload: Payload::MemberRemoved {
                    user_id: format!("usr_old{i}"),
                },
                resource: Resource {
                    kind: "member".into(),
                    id: format!("usr_old{i}"),
                },
                outcome: Outcome {
                    result: Result_::Success,
                    reason: None,
                },
                context: Context::system(None),
            })
            .collect();
        let mut tx = self.state.store.org(org).await.unwrap();
        let past = Past(time::Duration::days(days_ago));
        bulwark_core::audit::append_many(
            &mut *tx,
            bulwark_core::audit::Log::Org(org),
            drafts,
            &past,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// Creates a user with `password` (hashed for real) and adds them to `org` with `role`.
    pub async fn add_member(
        &self,
        org: bulwark_types::OrgId,
        email: &str,
        password: &str,
        role: bulwark_types::Role,
    ) -> bulwark_types::UserId {
        let user = self.create_user(email, password).await;
        let mut tx = self.state.store.org(org).await.unwrap();
        tx.add_member(user, role, self.state.clock.now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        user
    }

    /// Creates a user with `password` (hashed for real), a member of no org.
    pub async fn create_user(&self, email: &str, password: &str) -> bulwark_types::UserId {
        let now = self.state.clock.now();
        let user = bulwark_core::model::User {
            id: bulwark_types::UserId::new(),
            email: email.parse().unwrap(),
            password_hash: self
                .state
                .hasher
                .hash(SecretString::from(password.to_owned()))
                .await
                .unwrap(),
            created_at: now,
            email_verified_at: None,
            disabled_at: None,
        };
        let mut tx = self.state.store.system().await.unwrap();
        tx.create_user(&user).await.unwrap();
        tx.commit().await.unwrap();
        user.id
    }

    /// Creates another org, `slug`, owned by `owner` (an existing user).
    pub async fn create_org(
        &self,
        slug: &str,
        owner: bulwark_types::UserId,
    ) -> bulwark_types::OrgId {
        let now = self.state.clock.now();
        let org = bulwark_core::model::Org {
            id: bulwark_types::OrgId::new(),
            slug: slug.parse().unwrap(),
            name: slug.parse().unwrap(),
            created_at: now,
        };
        let membership = bulwark_core::model::Membership {
            org_id: org.id,
            user_id: owner,
            role: bulwark_types::Role::Owner,
            created_at: now,
        };
        let mut tx = self.state.store.system().await.unwrap();
        tx.create_org(&org, &membership).await.unwrap();
        tx.commit().await.unwrap();
        org.id
    }

    /// Signals shutdown (as SIGTERM would) without waiting for the server to stop.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap();
        }
    }
}

/// A signed-in client's credentials.
pub struct SignedIn {
    /// `__Host-bulwark_session=…`, ready for a `Cookie` header.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The login response.
    pub body: serde_json::Value,
}

/// A client that never follows redirects or uses a proxy.
#[must_use]
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// A fresh config for `backend` in `data_dir`, listening on an ephemeral loopback port.
pub async fn test_config(
    backend: Backend,
    data_dir: &std::path::Path,
) -> (Config, Option<pg::PgTestDb>) {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.join("data"),
        ..Config::default()
    };
    config.log.format = LogFormat::Json;
    config.database.max_connections = 4;
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let db = pg::fresh_database().await;
            bulwark_store_postgres::migrate(&db.owner_url, &db.app_role)
                .await
                .unwrap();
            config.database_url = Some(SecretString::from(db.app_url.clone()));
            Some(db)
        }
    };
    (config, db)
}

/// Spawns the app on `backend` with default test configuration.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Spawns the app after `tweak` adjusts the configuration.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, pg) = test_config(backend, dir.path()).await;
    tweak(&mut config);
    let mut prepared = startup::prepare(config).await.unwrap();
    let addr = prepared.local_addr().unwrap();
    let scheme = if prepared.serves_tls() {
        "https"
    } else {
        "http"
    };
    let setup_token = prepared.take_setup_token().map(|t| t.expose().to_owned());
    let state = prepared.state.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        startup::run(prepared, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base: format!("{scheme}://{addr}"),
        addr,
        client: client(),
        setup_token,
        state,
        data_dir: dir,
        pg,
        backup_codes: std::sync::Mutex::default(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// Declares a test per engine for each `async fn name(backend: Backend)`: `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}
