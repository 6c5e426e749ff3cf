//! What every handler can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bulwark_core::hashing::HashPool;
use bulwark_core::ports::Store;
use bulwark_types::Clock;

use crate::config::Config;

/// Shared application state: one `Arc`, so the per-request clones axum makes cost one atomic
/// increment. Fields are reached through `Deref` ([`Shared`]).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared state.
    #[must_use]
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// What a re-authentication (or any other throttled check of a secret) needs.
    #[must_use]
    pub fn reauth(&self) -> bulwark_core::account::Reauth<'_> {
        bulwark_core::account::Reauth {
            store: &*self.store,
            hasher: &self.hasher,
            clock: &*self.clock,
            throttle: &self.throttle,
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler can reach, behind [`AppState`].
pub struct Shared {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The license in force, the license clock and entitlements.
    pub licensing: Arc<bulwark_core::licensing::Licensing>,
    /// Password hashing, bounded.
    pub hasher: HashPool,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Set when keys (seed) are loaded and self-checked.
    pub keys_loaded: Arc<AtomicBool>,
    /// Set on SIGTERM: `/readyz` answers 503 while in-flight requests drain.
    pub draining: Arc<AtomicBool>,
    /// Rendered once at start.
    pub openapi_json: Arc<str>,
    /// Rendered once at start; `None` when no contact is configured.
    pub security_txt: Option<Arc<str>>,
    /// Signs and publishes audit checkpoints.
    pub checkpointer: Arc<crate::workers::checkpointer::Checkpointer>,
    /// Session lifetimes.
    pub sessions: bulwark_core::session::SessionPolicy,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[crate::client_ip::Net]>,
    /// The authorization engine and the org policy sets seen so far.
    pub authz: Arc<bulwark_core::authz::Authz>,
    /// Sessions accepted lately, and users' MFA state.
    pub session_cache: Arc<bulwark_core::session_cache::SessionCache>,
    /// API-key records read recently (≤ `rate_limits.key_cache_secs`).
    pub key_cache: Arc<bulwark_core::apikeys::KeyCache>,
    /// Keys for values handed to clients and checked on return.
    pub macs: Arc<Macs>,
    /// Sign-in throttling limits.
    pub throttle: bulwark_core::throttle::ThrottlePolicy,
    /// Sends invitations, verification and reset emails.
    pub mailer: Arc<dyn bulwark_core::ports::Mailer>,
    /// Per-address limit on unauthenticated routes.
    pub limiter: Arc<crate::limit::AddressLimiter>,
    /// Addresses that recently presented a wrong API key (see [`crate::limit::FailureHints`]).
    pub key_failures: Arc<crate::limit::FailureHints>,
    /// Rules for new passwords.
    pub password_policy: Arc<bulwark_core::password_policy::PasswordPolicy>,
    /// Seals TOTP secrets at rest.
    pub sealer: Arc<bulwark_crypto::SecretBox>,
    /// The credential vault's key provider (seed or PKCS#11).
    pub vault: Arc<dyn bulwark_crypto::vault::KeyWrapper>,
    /// The guarded outbound HTTP client for ticket trackers.
    pub egress: crate::egress::Egress,
    /// The guarded outbound HTTP client for webhook deliveries (no listed networks unless the
    /// operator extends them to webhooks).
    pub webhook_egress: crate::egress::Egress,
    /// Wakes this process's webhook worker when a message is queued.
    pub webhook_wake: Arc<tokio::sync::Notify>,
    /// Wakes this process's mail worker when a token email is queued.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// Content-Security-Policy violation reports the console's pages sent (ADR 0016).
    pub csp_reports: Arc<crate::console::csp::Reports>,
    /// Single sign-on: the identity-provider egress client, caches and the flow key.
    pub sso: Arc<crate::sso::Sso>,
}

/// HMAC keys derived from the workspace seed, one per purpose.
pub struct Macs {
    /// CSRF tokens, bound to a session id.
    pub csrf: bulwark_crypto::MacKey,
    /// Pagination cursors, bound to a log.
    pub cursor: bulwark_crypto::MacKey,
    /// The pepper of stored API-key verifiers.
    pub api_keys: bulwark_crypto::MacKey,
}

impl Shared {
    /// Whether `/readyz` may report ready regarding keys and shutdown.
    #[must_use]
    pub fn keys_ok(&self) -> bool {
        self.keys_loaded.load(Ordering::Acquire)
    }

    /// Whether the server is draining.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
