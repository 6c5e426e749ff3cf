//! What every benchmark shares: latency samples and the table beside the baseline, the HTTP
//! load driver, the task driver, and the org the store-backed benchmarks read.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bulwark_core::model::{Membership, Org, User};
use bulwark_core::ports::Store;
use bulwark_types::{Clock as _, OrgId, Role, SystemClock, UserId};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;

/// Latency samples of one run.
#[derive(Default)]
pub struct Run {
    count: usize,
    elapsed: Duration,
    micros: Vec<u64>,
}

impl Run {
    /// Adds another run's samples and time (alternating rounds of one side).
    pub fn absorb(&mut self, other: Run) {
        self.count += other.count;
        self.elapsed += other.elapsed;
        self.micros.extend(other.micros);
    }
    /// Operations measured.
    pub fn count(&self) -> usize {
        self.count
    }
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    /// The `p` quantile of the latencies, in ms.
    pub fn pct(&mut self, p: f64) -> f64 {
        self.micros.sort_unstable();
        let idx = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros.get(idx).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// Prints ours beside the baseline (rate, p50, p99) and the ratio of the rates.
pub fn report(name: &str, base_name: &str, mut ours: Run, mut base: Run) {
    println!(
        "{:<34} {:>12} {:>10} {:>10}",
        "", "per second", "p50 ms", "p99 ms"
    );
    for (label, run) in [(base_name, &mut base), (name, &mut ours)] {
        let (p50, p99) = (run.pct(0.50), run.pct(0.99));
        println!(
            "{label:<34} {:>12.0} {p50:>10.3} {p99:>10.3}",
            run.per_sec()
        );
    }
    println!(
        "ratio ours / baseline: {:.2}",
        ours.per_sec() / base.per_sec()
    );
}

/// Builds each request a load driver sends.
pub type MakeRequest =
    std::sync::Arc<dyn Fn() -> anyhow::Result<hyper::Request<Full<Bytes>>> + Send + Sync>;

/// Sends `make()`'s requests over `conns` keep-alive HTTP/1.1 connections for `secs`; every
/// answer must be a success.
pub async fn load_with(
    addr: SocketAddr,
    conns: usize,
    secs: u64,
    make: MakeRequest,
) -> anyhow::Result<Run> {
    load_seq(addr, conns, secs, vec![make]).await
}

/// As [`load_with`], one operation being the requests of `makes` one after another on the same
/// connection (what a client needs to get the data one page shows).
pub async fn load_seq(
    addr: SocketAddr,
    conns: usize,
    secs: u64,
    makes: Vec<MakeRequest>,
) -> anyhow::Result<Run> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let makes = makes.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut micros = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let t = Instant::now();
                for make in &makes {
                    let res = sender.send_request(make()?).await?;
                    let status = res.status();
                    res.into_body().collect().await?;
                    anyhow::ensure!(status.is_success(), "status {status}");
                }
                micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            anyhow::Ok(micros)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(Run {
        count: all.len(),
        elapsed: started.elapsed(),
        micros: all,
    })
}

/// Creates an org with an owner and four members; returns its id.
pub async fn seed_org(store: &dyn Store) -> anyhow::Result<OrgId> {
    let now = SystemClock.now();
    let org = Org {
        id: OrgId::new(),
        slug: format!("bench-{}", uuid_suffix()).parse()?,
        name: "Bench".parse()?,
        created_at: now,
    };
    let mut tx = store.system().await?;
    for i in 0..5 {
        let user = User {
            id: UserId::new(),
            email: format!("u{i}-{}@bench.test", org.id.as_uuid().simple()).parse()?,
            password_hash: bulwark_crypto::PasswordHashString::from_stored(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            ),
            created_at: now,
            email_verified_at: None,
            disabled_at: None,
        };
        tx.create_user(&user).await?;
        if i == 0 {
            tx.create_org(
                &org,
                &Membership {
                    org_id: org.id,
                    user_id: user.id,
                    role: Role::Owner,
                    created_at: now,
                },
            )
            .await?;
            tx.commit().await?;
            tx = store.system().await?;
        } else {
            tx.commit().await?;
            let mut o = store.org(org.id).await?;
            o.add_member(user.id, Role::Member, now).await?;
            o.commit().await?;
            tx = store.system().await?;
        }
    }
    drop(tx);
    Ok(org.id)
}

/// A fresh unique suffix for names and emails.
pub fn uuid_suffix() -> String {
    OrgId::new().as_uuid().simple().to_string()
}

/// Runs `op` in a loop on `tasks` tasks for `secs`; every call must succeed.
pub async fn drive<F, Fut>(tasks: usize, secs: u64, op: F) -> anyhow::Result<Run>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut micros = Vec::with_capacity(50_000);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op().await?;
                    micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                anyhow::Ok(micros)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    Ok(Run {
        count: all.len(),
        elapsed: started.elapsed(),
        micros: all,
    })
}

/// Stores `n` credentials in `org`, sealed under key version 1 as the vault seals them, a
/// thousand per transaction.
pub async fn fill_credentials(
    store: &dyn Store,
    org: OrgId,
    wrapper: &bulwark_crypto::vault::SeedWrapper,
    n: usize,
) -> anyhow::Result<()> {
    use bulwark_core::model::Credential;
    use bulwark_types::CredentialId;
    let now = SystemClock.now();
    let value = vec![0x5a_u8; 64];
    let destinations = vec!["https://example.com/".to_owned()];
    for chunk in 0..n.div_ceil(1000) {
        let mut tx = store.org(org).await?;
        for i in chunk * 1000..(chunk * 1000 + 1000).min(n) {
            let id = CredentialId::new();
            tx.create_credential(&Credential {
                id,
                org,
                name: format!("c{i}"),
                kind: "generic".into(),
                destinations: destinations.clone(),
                sealed: bulwark_core::vault::seal(
                    wrapper,
                    org,
                    id,
                    "generic",
                    &destinations,
                    1,
                    &value,
                )?,
                created_by: None,
                created_at: now,
                updated_at: now,
                last_used_at: None,
            })
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Scrapes `http://ADDR/metrics` once a second in the background (as Prometheus would) while a
/// benchmark runs; counts the scrapes that answered 200.
pub fn scrape_every_second(addr: Option<SocketAddr>) -> Scraper {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(addr) = addr {
        let done = done.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build();
            let Ok(client) = client else { return };
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Ok(res) = client.get(format!("http://{addr}/metrics")).send().await
                    && res.status().is_success()
                    && res.bytes().await.is_ok()
                {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    Scraper(done)
}

/// What [`scrape_every_second`] did.
pub struct Scraper(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Scraper {
    /// Scrapes answered so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
