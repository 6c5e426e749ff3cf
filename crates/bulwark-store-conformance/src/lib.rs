//! One behavioural test suite for every storage engine.
//!
//! Each case is a plain async function over `&dyn Store`; [`conformance_suite!`] expands to one
//! `#[tokio::test]` per case in the calling crate, each on a fresh store made by the caller's
//! factory. A store that passes here behaves the same as every other store to the domain.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test suite: a failed step is a failed test"
)]

use std::sync::Arc;

use bulwark_core::hashing::HashPool;
use bulwark_core::model::{MailJob, MailLimit, Membership, Org, Session, User};
use bulwark_core::ports::Store;
use bulwark_core::setup::{self, BootError, SetupAuth, SetupInput};
use bulwark_core::{CoreError, StoreError};
use bulwark_crypto::{PasswordParams, SecretToken, Seed};
use bulwark_types::{Clock, OrgId, Role, SystemClock, UserId};
use secrecy::SecretString;

pub mod legacy;

/// A store under test, with whatever must live as long as it (a temp dir, a database guard).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Dropped after the test.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Expands to one `#[tokio::test]` per conformance case; `$make` is an async fn returning
/// [`TestStore`] on a fresh, migrated database.
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
            health_reports_a_current_schema,
            bootstrap_is_idempotent_and_rotates_the_setup_token,
            bootstrap_refuses_another_seed,
            setup_creates_the_org_and_owner_once,
            setup_with_a_wrong_token_changes_nothing,
            org_handles_see_only_their_own_org,
            uniqueness_is_enforced,
            an_uncommitted_org_transaction_leaves_nothing,
            an_unknown_org_is_not_found,
            a_read_handle_sees_committed_data_of_its_org_only,
            setup_records_its_audit_event_in_the_same_transaction,
            audit_appends_commit_or_roll_back_with_their_transaction,
            audit_logs_are_isolated_per_org,
            teams_and_invitations_are_isolated_per_org,
            api_keys_are_isolated_per_org,
            credentials_are_isolated_per_org,
            webhooks_are_isolated_per_org,
            policy_sets_and_checkpoints_are_isolated_per_org,
            a_stored_log_verifies_as_a_signed_export,
            retention_prunes_old_bodies_and_the_log_still_verifies,
        );
        $crate::conformance_suite!(@cases $make;
            sessions_are_found_by_token_hash_and_end_once,
            user_sessions_are_listed_and_revoked_together,
            throttle_counters_count_forget_and_clear,
            org_policy_round_trips_with_its_defaults,
            a_disabled_user_is_seen_on_the_session,
            every_session_change_moves_the_epoch_and_voids_cached_sessions,
        );
        $crate::conformance_suite!(@cases $make;
            mail_jobs_coalesce_per_address_and_are_claimed_once,
            mail_limits_round_trip_per_account_and_purpose,
        );
        $crate::conformance_suite!(@shared $make;
            group_commit_batches_concurrent_appends_into_a_gap_free_log,
            sixty_four_concurrent_logouts_of_one_session_end_it_once,
            sixty_four_concurrent_redemptions_of_one_emailed_token_succeed_once,
            sixty_four_concurrent_uses_of_one_backup_code_succeed_once,
            sixty_four_concurrent_uses_of_one_totp_step_succeed_once,
            sixty_four_concurrent_acceptances_of_one_invitation_succeed_once,
        );
    };
    (@shared $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let t = $make().await;
                $crate::$case(t.store.clone()).await;
                drop(t);
            }
        )*
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let t = $make().await;
                $crate::$case(&*t.store).await;
                drop(t);
            }
        )*
    };
}

fn hasher() -> HashPool {
    HashPool::new(2, PasswordParams::OWASP_MIN)
}

fn input(org: &str, email: &str) -> SetupInput {
    SetupInput {
        org_name: org.parse().unwrap(),
        org_slug: None,
        owner_email: email.parse().unwrap(),
        owner_password: SecretString::from("a long enough passphrase"),
        context: bulwark_audit::event::Context::system(Some("conformance")),
    }
}

/// Creates an org and its owner directly through the system port (a fixture for store tests).
pub async fn extra_org(store: &dyn Store, slug: &str, email: &str) -> (Org, UserId) {
    let now = SystemClock.now();
    let user = User {
        id: UserId::new(),
        email: email.parse().unwrap(),
        password_hash: bulwark_crypto::PasswordHashString::from_stored(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        ),
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    };
    let org = Org {
        id: OrgId::new(),
        slug: slug.parse().unwrap(),
        name: slug.parse().unwrap(),
        created_at: now,
    };
    let owner = Membership {
        org_id: org.id,
        user_id: user.id,
        role: Role::Owner,
        created_at: now,
    };
    let mut tx = store.system().await.unwrap();
    tx.create_user(&user).await.unwrap();
    tx.create_org(&org, &owner).await.unwrap();
    tx.commit().await.unwrap();
    (org, user.id)
}

/// A migrated store is reachable and current.
pub async fn health_reports_a_current_schema(store: &dyn Store) {
    let h = store.health().await;
    assert!(h.reachable && h.migrations_current, "{h:?}");
}

/// A second bootstrap with the same seed keeps the deployment and replaces the setup token.
pub async fn bootstrap_is_idempotent_and_rotates_the_setup_token(store: &dyn Store) {
    assert!(!setup::instance_exists(store).await.unwrap());
    let seed = Seed::generate().unwrap();
    let first = setup::bootstrap(store, &seed, &SystemClock).await.unwrap();
    assert!(setup::instance_exists(store).await.unwrap());
    let second = setup::bootstrap(store, &seed, &SystemClock).await.unwrap();
    assert_eq!(first.deployment_id, second.deployment_id);
    let (t1, t2) = (first.setup_token.unwrap(), second.setup_token.unwrap());
    assert_ne!(t1.expose(), t2.expose());
    // The superseded token no longer works.
    let err = setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::Token(t1),
        input("Acme", "a@acme.test"),
    )
    .await;
    assert!(matches!(err, Err(CoreError::InvalidSetupToken)), "{err:?}");
    setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::Token(t2),
        input("Acme", "a@acme.test"),
    )
    .await
    .unwrap();
    let third = setup::bootstrap(store, &seed, &SystemClock).await.unwrap();
    assert!(
        third.setup_token.is_none(),
        "no token once setup is complete"
    );
}

/// A database made with one seed refuses another.
pub async fn bootstrap_refuses_another_seed(store: &dyn Store) {
    setup::bootstrap(store, &Seed::generate().unwrap(), &SystemClock)
        .await
        .unwrap();
    let other = setup::bootstrap(store, &Seed::generate().unwrap(), &SystemClock).await;
    assert!(matches!(other, Err(BootError::SeedMismatch)));
}

/// Setup creates org, owner and membership, then refuses to run again.
pub async fn setup_creates_the_org_and_owner_once(store: &dyn Store) {
    let boot = setup::bootstrap(store, &Seed::generate().unwrap(), &SystemClock)
        .await
        .unwrap();
    let token = boot.setup_token.unwrap();
    let again = SecretToken::from_presented(token.expose());
    let out = setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::Token(token),
        input("Acme Corp", "Owner@Acme.test"),
    )
    .await
    .unwrap();
    assert_eq!(out.org.slug.as_str(), "acme-corp");
    let mut tx = store.org(out.org.id).await.unwrap();
    assert_eq!(tx.get().await.unwrap(), out.org);
    let members = tx.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, out.owner_id);
    assert_eq!(members[0].email.as_str(), "Owner@acme.test");
    assert_eq!(members[0].role, Role::Owner);
    drop(tx);
    let mut sys = store.system().await.unwrap();
    let user = sys
        .user_by_email(&"Owner@acme.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.password_hash.as_str().starts_with("$argon2id$"));
    drop(sys);
    for auth in [SetupAuth::Token(again), SetupAuth::LocalOperator] {
        let second = setup::complete_setup(
            store,
            &hasher(),
            &SystemClock,
            auth,
            input("Other", "x@other.test"),
        )
        .await;
        assert!(
            matches!(second, Err(CoreError::SetupCompleted)),
            "{second:?}"
        );
    }
}

/// A wrong token, a weak password or a setup before bootstrap create nothing.
pub async fn setup_with_a_wrong_token_changes_nothing(store: &dyn Store) {
    let early = setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::LocalOperator,
        input("Acme", "a@acme.test"),
    )
    .await;
    assert!(early.is_err(), "setup before bootstrap must fail");
    setup::bootstrap(store, &Seed::generate().unwrap(), &SystemClock)
        .await
        .unwrap();
    let forged = SecretToken::generate("bwsetup").unwrap();
    let r = setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::Token(forged),
        input("Acme", "a@acme.test"),
    )
    .await;
    assert!(matches!(r, Err(CoreError::InvalidSetupToken)), "{r:?}");
    let mut weak = input("Acme", "a@acme.test");
    weak.owner_password = SecretString::from("short");
    let r = setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::LocalOperator,
        weak,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(CoreError::WeakPassword {
                field: "/owner/password",
                ..
            })
        ),
        "{r:?}"
    );
    let mut sys = store.system().await.unwrap();
    assert!(
        sys.user_by_email(&"a@acme.test".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        sys.instance()
            .await
            .unwrap()
            .unwrap()
            .setup_completed_at
            .is_none()
    );
}

/// An org handle never reads or writes another org's rows.
pub async fn org_handles_see_only_their_own_org(store: &dyn Store) {
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, b_owner) = extra_org(store, "bravo", "owner@bravo.test").await;
    let mut ta = store.org(a.id).await.unwrap();
    assert_eq!(ta.org_id(), a.id);
    assert_eq!(ta.get().await.unwrap().id, a.id);
    let ids: Vec<_> = ta
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(ids, vec![a_owner]);
    assert!(
        ta.member(b_owner).await.unwrap().is_none(),
        "another org's member is invisible"
    );
    assert!(matches!(
        ta.set_role(b_owner, Role::Auditor).await,
        Err(StoreError::NotFound)
    ));
    // Adding B's owner to A is a legitimate cross-org membership, visible only in A.
    ta.add_member(b_owner, Role::Auditor, SystemClock.now())
        .await
        .unwrap();
    ta.commit().await.unwrap();
    let mut tb = store.org(b.id).await.unwrap();
    let b_members = tb.members().await.unwrap();
    assert_eq!(b_members.len(), 1);
    assert_eq!(
        b_members[0].role,
        Role::Owner,
        "B's role is untouched by A's grant"
    );
    drop(tb);
    let mut ta = store.org(a.id).await.unwrap();
    assert_eq!(
        ta.member(b_owner).await.unwrap().unwrap().role,
        Role::Auditor
    );
}

/// Emails, slugs and memberships are unique.
pub async fn uniqueness_is_enforced(store: &dyn Store) {
    let (a, owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let now = SystemClock.now();
    let mut sys = store.system().await.unwrap();
    let dup = User {
        id: UserId::new(),
        email: "owner@alpha.test".parse().unwrap(),
        password_hash: bulwark_crypto::PasswordHashString::from_stored("x".into()),
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    };
    assert!(matches!(
        sys.create_user(&dup).await,
        Err(StoreError::Conflict("users.email"))
    ));
    drop(sys);
    let mut sys = store.system().await.unwrap();
    let org = Org {
        id: OrgId::new(),
        slug: "alpha".parse().unwrap(),
        name: "Alpha 2".parse().unwrap(),
        created_at: now,
    };
    let m = Membership {
        org_id: org.id,
        user_id: owner,
        role: Role::Owner,
        created_at: now,
    };
    assert!(matches!(
        sys.create_org(&org, &m).await,
        Err(StoreError::Conflict("orgs.slug"))
    ));
    drop(sys);
    let mut ta = store.org(a.id).await.unwrap();
    assert!(matches!(
        ta.add_member(owner, Role::Admin, now).await,
        Err(StoreError::Conflict("memberships"))
    ));
}

/// Dropping a transaction rolls it back.
pub async fn an_uncommitted_org_transaction_leaves_nothing(store: &dyn Store) {
    let (a, owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (_, other) = extra_org(store, "bravo", "owner@bravo.test").await;
    let mut ta = store.org(a.id).await.unwrap();
    ta.add_member(other, Role::Member, SystemClock.now())
        .await
        .unwrap();
    ta.set_role(owner, Role::Admin).await.unwrap();
    drop(ta);
    let mut ta = store.org(a.id).await.unwrap();
    assert!(ta.member(other).await.unwrap().is_none());
    assert_eq!(ta.member(owner).await.unwrap().unwrap().role, Role::Owner);
}

/// A handle on an org that does not exist finds nothing.
pub async fn an_unknown_org_is_not_found(store: &dyn Store) {
    extra_org(store, "alpha", "owner@alpha.test").await;
    let mut t = store.org(OrgId::new()).await.unwrap();
    assert!(matches!(t.get().await, Err(StoreError::NotFound)));
    assert!(t.members().await.unwrap().is_empty());
}

/// A read-only handle sees what is committed in its org, nothing of another, and does not block
/// (or get blocked by) a concurrent writer's uncommitted changes.
pub async fn a_read_handle_sees_committed_data_of_its_org_only(store: &dyn Store) {
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (_, b_owner) = extra_org(store, "bravo", "owner@bravo.test").await;
    let mut writer = store.org(a.id).await.unwrap();
    writer
        .add_member(b_owner, Role::Auditor, SystemClock.now())
        .await
        .unwrap();
    let mut r = store.org_read(a.id).await.unwrap();
    assert_eq!(r.org_id(), a.id);
    assert_eq!(r.get().await.unwrap().id, a.id);
    let ids: Vec<_> = r
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(ids, vec![a_owner], "uncommitted rows are invisible");
    drop(r);
    writer.commit().await.unwrap();
    let mut r = store.org_read(a.id).await.unwrap();
    assert_eq!(r.members().await.unwrap().len(), 2);
    assert_eq!(
        r.member(b_owner).await.unwrap().unwrap().role,
        Role::Auditor
    );
    let mut other = store.org_read(OrgId::new()).await.unwrap();
    assert!(other.members().await.unwrap().is_empty());
}

/// A `member.removed` event by the system about `user` (a fixture for engine-specific tests).
pub fn member_removed(user: UserId) -> bulwark_core::audit::Draft {
    use bulwark_audit::event::{Outcome, Payload, Resource, Result_};
    bulwark_core::audit::Draft {
        payload: Payload::MemberRemoved {
            user_id: user.to_string(),
        },
        resource: Resource {
            kind: "member".into(),
            id: user.to_string(),
        },
        outcome: Outcome {
            result: Result_::Success,
            reason: None,
        },
        context: bulwark_audit::event::Context::system(None),
    }
}

fn member_added(user: UserId) -> bulwark_core::audit::Draft {
    use bulwark_audit::event::{Outcome, Payload, Resource, Result_};
    bulwark_core::audit::Draft {
        payload: Payload::MemberAdded {
            user_id: user.to_string(),
            role: "member".into(),
        },
        resource: Resource {
            kind: "member".into(),
            id: user.to_string(),
        },
        outcome: Outcome {
            result: Result_::Success,
            reason: None,
        },
        context: bulwark_audit::event::Context::system(Some("conformance")),
    }
}

/// Setup's `setup.completed` event lands in the system log with the org, and a refused setup
/// adds nothing.
pub async fn setup_records_its_audit_event_in_the_same_transaction(store: &dyn Store) {
    let boot = setup::bootstrap(store, &Seed::generate().unwrap(), &SystemClock)
        .await
        .unwrap();
    let forged = SecretToken::generate("bwsetup").unwrap();
    assert!(
        setup::complete_setup(
            store,
            &hasher(),
            &SystemClock,
            SetupAuth::Token(forged),
            input("Acme", "a@acme.test")
        )
        .await
        .is_err()
    );
    let mut sys = store.system().await.unwrap();
    assert!(
        sys.audit_events(0, 10).await.unwrap().is_empty(),
        "a refused setup leaves no event"
    );
    drop(sys);
    let out = setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::Token(boot.setup_token.unwrap()),
        input("Acme", "a@acme.test"),
    )
    .await
    .unwrap();
    let mut sys = store.system().await.unwrap();
    let events = sys.audit_events(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let row = &events[0];
    assert_eq!(
        (row.seq, row.log.as_str(), row.action.as_str(), row.org_id),
        (0, "system", "setup.completed", None)
    );
    assert_eq!(
        row.leaf_hash,
        bulwark_audit::merkle::leaf_hash(row.body.as_deref().unwrap())
    );
    let event = bulwark_audit::event::Event::from_canonical(row.body.as_deref().unwrap()).unwrap();
    assert_eq!(event.resource.id, out.org.id.to_string());
    assert!(
        !String::from_utf8_lossy(row.body.as_deref().unwrap()).contains("a long enough passphrase")
    );
}

/// An event commits with its change or not at all; sequence numbers have no gaps.
pub async fn audit_appends_commit_or_roll_back_with_their_transaction(store: &dyn Store) {
    use bulwark_core::audit::{Log, append};
    let (a, _) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (_, b_owner) = extra_org(store, "bravo", "owner@bravo.test").await;
    let mut tx = store.org(a.id).await.unwrap();
    tx.add_member(b_owner, Role::Member, SystemClock.now())
        .await
        .unwrap();
    append(
        &mut *tx,
        Log::Org(a.id),
        member_added(b_owner),
        &SystemClock,
    )
    .await
    .unwrap();
    drop(tx);
    let mut r = store.org_read(a.id).await.unwrap();
    assert!(
        r.audit_events(0, 10).await.unwrap().is_empty(),
        "rolled back with the change"
    );
    drop(r);
    let mut tx = store.org(a.id).await.unwrap();
    tx.add_member(b_owner, Role::Member, SystemClock.now())
        .await
        .unwrap();
    let first = append(
        &mut *tx,
        Log::Org(a.id),
        member_added(b_owner),
        &SystemClock,
    )
    .await
    .unwrap();
    let second = append(
        &mut *tx,
        Log::Org(a.id),
        member_added(b_owner),
        &SystemClock,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((first.seq, second.seq), (0, 1));
    let mut tx = store.org(a.id).await.unwrap();
    let third = append(
        &mut *tx,
        Log::Org(a.id),
        member_added(b_owner),
        &SystemClock,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(third.seq, 2);
    let mut r = store.org_read(a.id).await.unwrap();
    let rows = r.audit_events(0, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(r.audit_events(2, 10).await.unwrap().len(), 1);
}

/// One org's handle never sees another org's events, nor the system log, and vice versa.
pub async fn audit_logs_are_isolated_per_org(store: &dyn Store) {
    use bulwark_core::audit::{Log, append};
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, _) = extra_org(store, "bravo", "owner@bravo.test").await;
    let mut tx = store.org(a.id).await.unwrap();
    append(
        &mut *tx,
        Log::Org(a.id),
        member_added(a_owner),
        &SystemClock,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tb = store.org_read(b.id).await.unwrap();
    assert!(tb.audit_events(0, 100).await.unwrap().is_empty());
    drop(tb);
    let mut sys = store.system().await.unwrap();
    assert!(sys.audit_events(0, 100).await.unwrap().is_empty());
    drop(sys);
    // A handle refuses an event addressed to another log.
    let mut tb = store.org(b.id).await.unwrap();
    let err = append(
        &mut *tb,
        Log::Org(a.id),
        member_added(a_owner),
        &SystemClock,
    )
    .await;
    assert!(
        err.is_err(),
        "an org handle must not write another org's log"
    );
}

/// Teams and invitations written through org A's handle are invisible to org B's handles and
/// untouched by their writes; a row naming A written through B's handle lands in B.
pub async fn teams_and_invitations_are_isolated_per_org(store: &dyn Store) {
    use bulwark_core::model::{Invitation, Team};
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, b_owner) = extra_org(store, "bravo", "owner@bravo.test").await;
    let now = SystemClock.now();
    let team = Team {
        id: bulwark_types::TeamId::new(),
        name: "ops".into(),
        members: Vec::new(),
        created_at: now,
    };
    let token = bulwark_crypto::SecretToken::generate("bwinvite").unwrap();
    let invitation = Invitation {
        id: bulwark_types::InvitationId::new(),
        org_id: a.id,
        token_hash: token.hash(),
        email: "new@alpha.test".parse().unwrap(),
        role: Role::Member,
        invited_by: a_owner,
        created_at: now,
        expires_at: now + time::Duration::days(7),
        accepted_at: None,
        revoked_at: None,
    };
    let mut ta = store.org(a.id).await.unwrap();
    ta.create_team(&team).await.unwrap();
    ta.create_invitation(&invitation).await.unwrap();
    ta.commit().await.unwrap();

    // Invisible to B.
    let mut rb = store.org_read(b.id).await.unwrap();
    assert!(rb.teams().await.unwrap().is_empty());
    assert!(rb.open_invitations().await.unwrap().is_empty());
    drop(rb);
    // Untouched by B's writes, even with A's ids.
    let mut tb = store.org(b.id).await.unwrap();
    assert!(!tb.lock_team(team.id).await.unwrap());
    assert!(!tb.delete_team(team.id).await.unwrap());
    assert!(!tb.revoke_invitation(invitation.id, now).await.unwrap());
    assert!(
        tb.accept_invitation(&token.hash(), now)
            .await
            .unwrap()
            .is_none()
    );
    tb.commit().await.unwrap();
    // An invitation that names A, written through B's handle, lands in B: the handle's org
    // wins over the row's.
    let mut tb = store.org(b.id).await.unwrap();
    let forged = Invitation {
        id: bulwark_types::InvitationId::new(),
        token_hash: bulwark_crypto::SecretToken::generate("bwinvite")
            .unwrap()
            .hash(),
        email: "mallory@alpha.test".parse().unwrap(),
        invited_by: b_owner,
        ..invitation.clone()
    };
    if tb.create_invitation(&forged).await.is_ok() {
        tb.commit().await.unwrap();
        let mut rb = store.org_read(b.id).await.unwrap();
        let open = rb.open_invitations().await.unwrap();
        assert!(open.iter().all(|i| i.org_id == b.id), "{open:?}");
    }

    // A still has both, as written.
    let mut ra = store.org_read(a.id).await.unwrap();
    let teams = ra.teams().await.unwrap();
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0].id, team.id);
    let open = ra.open_invitations().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, invitation.id);
}

/// API keys written through org A's handle are invisible to org B's handles and untouched by
/// B's revocation, expiry and use; only `api_key_org` (the global lookup a presented key needs)
/// names A.
pub async fn api_keys_are_isolated_per_org(store: &dyn Store) {
    use bulwark_core::model::ApiKeyRecord;
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, _) = extra_org(store, "bravo", "owner@bravo.test").await;
    let now = SystemClock.now();
    let key = ApiKeyRecord {
        id: bulwark_types::ApiKeyId::new(),
        org: a.id,
        name: "ci".into(),
        scopes: vec!["audit:read".into()],
        verifier: [7; 32],
        created_by: Some(a_owner),
        created_at: now,
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        last_used_at: None,
        space: None,
        owner: None,
        team: None,
    };
    let mut ta = store.org(a.id).await.unwrap();
    ta.create_api_key(&key).await.unwrap();
    ta.commit().await.unwrap();
    assert_eq!(store.api_key_org(key.id).await.unwrap(), Some(a.id));

    let mut rb = store.org_read(b.id).await.unwrap();
    assert!(rb.api_keys().await.unwrap().is_empty());
    assert!(rb.api_key(key.id).await.unwrap().is_none());
    drop(rb);
    let mut tb = store.org(b.id).await.unwrap();
    assert!(!tb.revoke_api_key(key.id, now).await.unwrap());
    tb.expire_api_key(key.id, now).await.unwrap();
    tb.touch_api_key(key.id, now).await.unwrap();
    tb.commit().await.unwrap();

    let mut ra = store.org_read(a.id).await.unwrap();
    let kept = ra.api_key(key.id).await.unwrap().unwrap();
    assert!(kept.revoked_at.is_none());
    assert!(kept.expires_at.is_none());
    assert!(kept.last_used_at.is_none());
    assert_eq!(kept.org, a.id);
}

/// The active vault key version of a fresh store, created if there is none.
async fn active_vault_version(store: &dyn Store) -> u32 {
    use bulwark_core::model::{VaultKey, VaultKeyState};
    let mut sys = store.system().await.unwrap();
    let keys = sys.vault_keys().await.unwrap();
    if let Some(k) = keys.iter().find(|k| k.state == VaultKeyState::Active) {
        return k.version;
    }
    sys.insert_vault_key(&VaultKey {
        version: 1,
        provider: "seed".into(),
        state: VaultKeyState::Active,
        created_at: SystemClock.now(),
        retired_at: None,
        binds_attributes: true,
    })
    .await
    .unwrap();
    sys.commit().await.unwrap();
    1
}

fn a_credential(
    org: OrgId,
    by: UserId,
    version: u32,
    name: &str,
) -> bulwark_core::model::Credential {
    let now = SystemClock.now();
    bulwark_core::model::Credential {
        id: bulwark_types::CredentialId::new(),
        org,
        name: name.into(),
        kind: "bearer_token".into(),
        destinations: vec!["https://api.example.test/".into()],
        sealed: bulwark_crypto::vault::SealedValue {
            key_version: version,
            wrapped_key: vec![1; 40],
            ciphertext: vec![2; 48],
        },
        created_by: Some(by),
        created_at: now,
        updated_at: now,
        last_used_at: None,
    }
}

/// Credentials written through org A's handle are invisible to org B's handles and untouched
/// by every write B can make with their ids: replace, rewrap, destinations, use, delete.
pub async fn credentials_are_isolated_per_org(store: &dyn Store) {
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, _) = extra_org(store, "bravo", "owner@bravo.test").await;
    let version = active_vault_version(store).await;
    let credential = a_credential(a.id, a_owner, version, "crm");
    let mut ta = store.org(a.id).await.unwrap();
    ta.create_credential(&credential).await.unwrap();
    ta.commit().await.unwrap();

    let mut rb = store.org_read(b.id).await.unwrap();
    assert!(rb.credentials().await.unwrap().is_empty());
    assert!(rb.credential(credential.id).await.unwrap().is_none());
    drop(rb);
    let now = SystemClock.now();
    let other = bulwark_crypto::vault::SealedValue {
        key_version: version,
        wrapped_key: vec![9; 40],
        ciphertext: vec![9; 48],
    };
    let mut tb = store.org(b.id).await.unwrap();
    assert!(
        !tb.replace_credential(credential.id, &other, now)
            .await
            .unwrap()
    );
    assert!(
        !tb.rewrap_credential(credential.id, version, &other)
            .await
            .unwrap()
    );
    assert!(
        !tb.set_credential_destinations(credential.id, &["https://evil.test/".into()])
            .await
            .unwrap()
    );
    tb.touch_credential(credential.id, now).await.unwrap();
    assert!(
        tb.stale_credentials(version + 1, 100, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!tb.delete_credential(credential.id).await.unwrap());
    tb.commit().await.unwrap();

    let mut ra = store.org_read(a.id).await.unwrap();
    let kept = ra.credential(credential.id).await.unwrap().unwrap();
    assert_eq!(kept.org, a.id);
    assert_eq!(kept.sealed, credential.sealed);
    assert_eq!(kept.destinations, credential.destinations);
    assert!(kept.last_used_at.is_none());
}

/// Webhook endpoints, messages, deliveries and attempts written through org A's handle are
/// invisible to org B's handles; B cannot claim, finish, lock, disable, prune or requeue them
/// with their ids, nor point an endpoint of its own at A's signing secret or A's message.
pub async fn webhooks_are_isolated_per_org(store: &dyn Store) {
    use bulwark_core::model::{
        AttemptResult, SignatureScheme, WebhookAttempt, WebhookEndpoint, WebhookMessage,
    };
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, b_owner) = extra_org(store, "bravo", "owner@bravo.test").await;
    let version = active_vault_version(store).await;
    let now = SystemClock.now();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
    let secret = a_credential(a.id, a_owner, version, "webhook secret");
    let endpoint = WebhookEndpoint {
        id: bulwark_types::EndpointId::new(),
        org: a.id,
        url: "https://hooks.alpha.test/in".into(),
        description: String::new(),
        event_types: vec!["*".into()],
        scheme: SignatureScheme::Standard,
        enabled: true,
        disabled_reason: None,
        rate_limit: 10,
        max_in_flight: 4,
        secret: secret.id,
        previous_secret: None,
        previous_until: None,
        failing_since: None,
        consecutive_failures: 0,
        created_at: now,
        updated_at: now,
    };
    let message = WebhookMessage {
        id: bulwark_types::MessageId::new(),
        event_type: "app.order.created".into(),
        payload: r#"{"order":1}"#.into(),
        idempotency_key: Some("alpha-order-1".into()),
        request_hash: Some(vec![3; 32]),
        created_at: now,
    };
    let mut ta = store.org(a.id).await.unwrap();
    ta.create_credential(&secret).await.unwrap();
    ta.create_webhook_endpoint(&endpoint).await.unwrap();
    ta.webhook_enqueue(&message, &[endpoint.id], now_ms)
        .await
        .unwrap();
    ta.commit().await.unwrap();
    // One attempt logged in A, so there is something of each kind to hide.
    let mut ta = store.org(a.id).await.unwrap();
    let claimed = ta
        .webhook_claim(endpoint.id, now_ms, now_ms + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let delivery = claimed[0].id;
    ta.webhook_finish(&[AttemptResult {
        attempt: WebhookAttempt {
            delivery,
            message: message.id,
            endpoint: endpoint.id,
            attempt: 1,
            at: now,
            status: Some(500),
            latency_ms: 12,
            error: None,
            response: Some("busy".into()),
            delivered: false,
        },
        retry_at_ms: Some(now_ms),
        counts: true,
    }])
    .await
    .unwrap();
    ta.commit().await.unwrap();

    // Invisible to B.
    let mut rb = store.org_read(b.id).await.unwrap();
    assert!(rb.webhook_endpoints().await.unwrap().is_empty());
    assert!(rb.webhook_endpoint(endpoint.id).await.unwrap().is_none());
    assert!(
        rb.webhook_deliveries(endpoint.id, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        rb.webhook_attempts(endpoint.id, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(rb.webhook_delivery(delivery).await.unwrap().is_none());
    assert!(
        rb.webhook_message_by_key("alpha-order-1")
            .await
            .unwrap()
            .is_none()
    );
    let day = time::Duration::days(1);
    assert!(
        rb.webhook_messages_between(now - day, now + day, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    drop(rb);

    // Untouched by B's writes with A's ids.
    let later = now_ms + 3_600_000;
    let mut tb = store.org(b.id).await.unwrap();
    assert!(tb.webhook_due_endpoints(later).await.unwrap().is_empty());
    assert_eq!(tb.webhook_in_flight(endpoint.id, later).await.unwrap(), 0);
    assert!(
        tb.webhook_claim(endpoint.id, later, later + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tb.lock_webhook_endpoint(endpoint.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tb.webhook_endpoint_health(endpoint.id, false, 5, Some(now))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !tb.disable_webhook_endpoint(endpoint.id, "hijacked")
            .await
            .unwrap()
    );
    let mut renamed = endpoint.clone();
    renamed.url = "https://evil.test/".into();
    assert!(!tb.update_webhook_endpoint(&renamed).await.unwrap_or(false));
    assert_eq!(tb.webhook_prune(later).await.unwrap(), 0);
    assert!(!tb.delete_webhook_endpoint(endpoint.id).await.unwrap());
    tb.commit().await.unwrap();
    // A's message cannot be queued to A's endpoint through B's handle.
    let mut tb = store.org(b.id).await.unwrap();
    assert!(
        tb.webhook_requeue(message.id, endpoint.id, now_ms, now)
            .await
            .is_err(),
        "a delivery in B of A's message to A's endpoint"
    );
    drop(tb);
    // An endpoint of B's own cannot sign with A's secret.
    let mut tb = store.org(b.id).await.unwrap();
    let borrowed = WebhookEndpoint {
        id: bulwark_types::EndpointId::new(),
        org: b.id,
        ..endpoint.clone()
    };
    assert!(tb.create_webhook_endpoint(&borrowed).await.is_err());
    drop(tb);
    // Nor can B's own endpoint be given A's secret later.
    let b_secret = a_credential(b.id, b_owner, version, "webhook secret");
    let own = WebhookEndpoint {
        id: bulwark_types::EndpointId::new(),
        org: b.id,
        secret: b_secret.id,
        ..endpoint.clone()
    };
    let mut tb = store.org(b.id).await.unwrap();
    tb.create_credential(&b_secret).await.unwrap();
    tb.create_webhook_endpoint(&own).await.unwrap();
    tb.commit().await.unwrap();
    let mut tb = store.org(b.id).await.unwrap();
    let swapped = WebhookEndpoint {
        previous_secret: Some(secret.id),
        ..own.clone()
    };
    assert!(tb.update_webhook_endpoint(&swapped).await.is_err());
    drop(tb);

    // A still has all of it, as written.
    let mut ra = store.org_read(a.id).await.unwrap();
    let kept = ra.webhook_endpoint(endpoint.id).await.unwrap().unwrap();
    assert_eq!(kept.url, endpoint.url);
    assert!(kept.enabled);
    assert_eq!(kept.consecutive_failures, 0);
    assert_eq!(
        ra.webhook_deliveries(endpoint.id, 100).await.unwrap().len(),
        1
    );
    assert_eq!(
        ra.webhook_attempts(endpoint.id, 100).await.unwrap().len(),
        1
    );
    assert!(ra.webhook_delivery(delivery).await.unwrap().is_some());
    assert!(
        ra.webhook_message_by_key("alpha-order-1")
            .await
            .unwrap()
            .is_some()
    );
    let mut rb = store.org_read(b.id).await.unwrap();
    assert_eq!(rb.webhook_endpoints().await.unwrap().len(), 1);
    let own_kept = rb.webhook_endpoint(own.id).await.unwrap().unwrap();
    assert!(own_kept.previous_secret.is_none());
}

/// Org A's authorization policy sets, audit checkpoints, audit retention and sign-in rules are
/// invisible to org B (and to the system log) and untouched by B's own changes; B activating a
/// set under the same hash stores B's own body.
pub async fn policy_sets_and_checkpoints_are_isolated_per_org(store: &dyn Store) {
    let (a, a_owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, b_owner) = extra_org(store, "bravo", "owner@bravo.test").await;
    let now = SystemClock.now();
    // A SHA-256 in hex, as the service stores it.
    const HASH: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut ta = store.org(a.id).await.unwrap();
    ta.activate_policy_set(
        HASH,
        "permit (principal, action, resource);",
        Some(a_owner),
        now,
    )
    .await
    .unwrap();
    ta.set_audit_retention(Some(90)).await.unwrap();
    ta.set_policy(&bulwark_core::model::OrgPolicy {
        session_idle_secs: Some(900),
        session_absolute_secs: Some(3600),
        mfa_required: bulwark_core::model::MfaRequirement::OwnersAdmins,
        password_composition: true,
    })
    .await
    .unwrap();
    ta.audit_checkpoint_insert(7, "alpha checkpoint note", now)
        .await
        .unwrap();
    ta.commit().await.unwrap();

    let mut rb = store.org_read(b.id).await.unwrap();
    assert!(rb.authz_policy_hash().await.unwrap().is_none());
    assert!(rb.authz_policy_set(HASH).await.unwrap().is_none());
    assert!(rb.audit_latest_checkpoint().await.unwrap().is_none());
    assert_eq!(rb.audit_retention().await.unwrap(), None);
    assert_eq!(
        rb.policy().await.unwrap(),
        bulwark_core::model::OrgPolicy::default()
    );
    drop(rb);
    let mut sys = store.system().await.unwrap();
    assert!(sys.audit_latest_checkpoint().await.unwrap().is_none());
    drop(sys);

    let mut tb = store.org(b.id).await.unwrap();
    tb.activate_policy_set(
        HASH,
        "forbid (principal, action, resource);",
        Some(b_owner),
        now,
    )
    .await
    .unwrap();
    tb.set_audit_retention(Some(400)).await.unwrap();
    tb.set_policy(&bulwark_core::model::OrgPolicy::default())
        .await
        .unwrap();
    tb.audit_checkpoint_insert(7, "bravo checkpoint note", now)
        .await
        .unwrap();
    tb.commit().await.unwrap();

    let mut ra = store.org_read(a.id).await.unwrap();
    assert_eq!(ra.authz_policy_hash().await.unwrap().as_deref(), Some(HASH));
    assert_eq!(
        ra.authz_policy_set(HASH).await.unwrap().as_deref(),
        Some("permit (principal, action, resource);")
    );
    assert_eq!(
        ra.audit_latest_checkpoint().await.unwrap(),
        Some((7, "alpha checkpoint note".into()))
    );
    assert_eq!(ra.audit_retention().await.unwrap(), Some(90));
    assert_eq!(ra.policy().await.unwrap().session_idle_secs, Some(900));
    let mut rb = store.org_read(b.id).await.unwrap();
    assert_eq!(
        rb.authz_policy_set(HASH).await.unwrap().as_deref(),
        Some("forbid (principal, action, resource);")
    );
    assert_eq!(
        rb.audit_latest_checkpoint().await.unwrap(),
        Some((7, "bravo checkpoint note".into()))
    );
}

/// What a store holds, exported with a signed checkpoint, passes the offline verifier.
pub async fn a_stored_log_verifies_as_a_signed_export(store: &dyn Store) {
    use bulwark_audit::checkpoint::{Checkpoint, NoteSigner};
    use bulwark_audit::export;
    use bulwark_core::audit::{Log, append};
    let (a, owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    for _ in 0..5 {
        let mut tx = store.org(a.id).await.unwrap();
        append(&mut *tx, Log::Org(a.id), member_added(owner), &SystemClock)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut r = store.org_read(a.id).await.unwrap();
    let rows = r.audit_events(0, 100).await.unwrap();
    let leaves: Vec<_> = rows.iter().map(|e| e.leaf_hash).collect();
    let seed = Seed::generate().unwrap();
    let key = bulwark_crypto::Ed25519Signer::from_seed(
        &seed
            .derive(bulwark_crypto::KeyPurpose::AuditSigning, b"")
            .unwrap(),
    )
    .unwrap();
    let signer = NoteSigner::new("bulwark-audit", key).unwrap();
    let origin = format!("bulwark/test/{}", a.id);
    let note = signer.sign(&Checkpoint {
        origin: origin.clone(),
        size: 5,
        root: bulwark_audit::merkle::root(&leaves),
        time: 1,
    });
    let mut text = format!("{}\n", export::header_line(&origin));
    for row in &rows {
        text.push_str(std::str::from_utf8(row.body.as_deref().unwrap()).unwrap());
        text.push('\n');
    }
    text.push_str(&format!("{}\n", export::checkpoint_line(&note)));
    let report = export::verify(text.as_bytes(), &signer.verifier(), &[note]).unwrap();
    assert_eq!(report.events, 5);
}

/// Concurrent stand-alone appends through the group writer all commit into one gap-free log.
pub async fn group_commit_batches_concurrent_appends_into_a_gap_free_log(store: Arc<dyn Store>) {
    use bulwark_core::audit::{GroupWriter, Log};
    let (a, owner) = extra_org(&*store, "alpha", "owner@alpha.test").await;
    let writer = GroupWriter::spawn(store.clone(), Log::Org(a.id), Arc::new(SystemClock), 64);
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let w = writer.clone();
            tokio::spawn(async move { w.append(member_added(owner)).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for h in handles {
        seqs.push(h.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..100).collect::<Vec<u64>>());
    let mut r = store.org_read(a.id).await.unwrap();
    let rows = r.audit_events(0, 1000).await.unwrap();
    assert_eq!(rows.len(), 100);
    let leaves: Vec<_> = rows.iter().map(|e| e.leaf_hash).collect();
    for (row, leaf) in rows.iter().zip(&leaves) {
        assert_eq!(
            bulwark_audit::merkle::leaf_hash(row.body.as_deref().unwrap()),
            *leaf
        );
    }
}

/// Completes setup and signs its owner in.
async fn signed_in(store: &dyn Store) -> bulwark_core::session::SignedIn {
    use bulwark_core::session::{self, LoginInput, SessionPolicy};
    use bulwark_core::throttle::ThrottlePolicy;
    let boot = setup::bootstrap(store, &Seed::generate().unwrap(), &SystemClock)
        .await
        .unwrap();
    setup::complete_setup(
        store,
        &hasher(),
        &SystemClock,
        SetupAuth::Token(boot.setup_token.unwrap()),
        input("Acme", "owner@acme.test"),
    )
    .await
    .unwrap();
    let login = |password: &str| LoginInput {
        email: "OWNER@acme.test".parse().unwrap(),
        password: SecretString::from(password.to_owned()),
        context: bulwark_audit::event::Context::system(None),
    };
    let policy = SessionPolicy::default();
    let wrong = session::login(
        store,
        &hasher(),
        &SystemClock,
        policy,
        &ThrottlePolicy::default(),
        login("wrong password!!"),
    )
    .await;
    assert!(matches!(wrong, Err(CoreError::InvalidCredentials)));
    session::login(
        store,
        &hasher(),
        &SystemClock,
        policy,
        &ThrottlePolicy::default(),
        login("a long enough passphrase"),
    )
    .await
    .unwrap()
}

/// Sessions: stored hashed, found by the token's hash only, touched, ended once, and then
/// refused; each step in the system audit log.
pub async fn sessions_are_found_by_token_hash_and_end_once(store: &dyn Store) {
    use bulwark_core::session::{self, Refusal, SessionPolicy};
    let signed = signed_in(store).await;
    let policy = SessionPolicy::default();
    let found = store
        .session_by_token(&signed.token.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, signed.session.id);
    assert_eq!(found.email.as_str(), "owner@acme.test");
    assert!(found.revoked_at.is_none());
    let stranger = SecretToken::generate(session::TOKEN_PREFIX).unwrap();
    assert!(
        store
            .session_by_token(&stranger.hash())
            .await
            .unwrap()
            .is_none()
    );
    let later = found.last_seen_at + time::Duration::minutes(5);
    store.session_touch(found.id, later).await.unwrap();
    let touched = store
        .session_by_token(&signed.token.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.last_seen_at, later);

    let ctx = bulwark_audit::event::Context::system(None);
    assert!(
        session::end(store, &SystemClock, &found, "logout", ctx.clone())
            .await
            .unwrap()
    );
    assert!(
        !session::end(store, &SystemClock, &found, "logout", ctx)
            .await
            .unwrap()
    );
    assert!(matches!(
        session::authenticate(
            store,
            &SystemClock,
            policy,
            &bulwark_core::session_cache::SessionCache::new(std::time::Duration::ZERO),
            &signed.token
        )
        .await
        .unwrap(),
        Err(Refusal::Revoked)
    ));
    let mut sys = store.system().await.unwrap();
    let actions: Vec<String> = sys
        .audit_events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            "setup.completed",
            "auth.login.failed",
            "auth.login.succeeded",
            "auth.session.ended"
        ]
    );
}

/// A single-use action under concurrency: 64 simultaneous logouts of one session end it once
/// and record it once.
pub async fn sixty_four_concurrent_logouts_of_one_session_end_it_once(store: Arc<dyn Store>) {
    use bulwark_core::session;
    let signed = signed_in(&*store).await;
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (store, s) = (store.clone(), signed.session.clone());
            tokio::spawn(async move {
                let ctx = bulwark_audit::event::Context::system(None);
                session::end(&*store, &SystemClock, &s, "logout", ctx).await
            })
        })
        .collect();
    let mut ended = 0;
    for h in handles {
        if h.await.unwrap().unwrap() {
            ended += 1;
        }
    }
    assert_eq!(ended, 1);
    let mut sys = store.system().await.unwrap();
    let rows = sys.audit_events(0, 1000).await.unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r.action == "auth.session.ended")
            .count(),
        1
    );
}

/// A clock set `ago` in the past: events "from last quarter" for retention tests.
pub struct PastClock(pub time::Duration);

impl Clock for PastClock {
    fn now(&self) -> time::OffsetDateTime {
        SystemClock.now() - self.0
    }
}

/// Retention: refused below its floor, recorded when changed, prunes only bodies older than it,
/// keeps every leaf hash, and the pruned log still verifies as a signed export.
pub async fn retention_prunes_old_bodies_and_the_log_still_verifies(store: &dyn Store) {
    use bulwark_audit::checkpoint::NoteSigner;
    use bulwark_audit::event::Context;
    use bulwark_audit::export;
    use bulwark_core::audit::{self, Log};
    let (a, owner) = extra_org(store, "alpha", "owner@alpha.test").await;
    let (b, b_owner) = extra_org(store, "beta", "owner@beta.test").await;
    let old = PastClock(time::Duration::days(100));
    for (org, user) in [(a.id, owner), (b.id, b_owner)] {
        let mut tx = store.org(org).await.unwrap();
        let drafts = (0..5).map(|_| member_added(user)).collect();
        audit::append_many(&mut *tx, Log::Org(org), drafts, &old)
            .await
            .unwrap();
        let drafts = (0..3).map(|_| member_added(user)).collect();
        audit::append_many(&mut *tx, Log::Org(org), drafts, &SystemClock)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(audit::prune(store, &SystemClock, a.id).await.unwrap(), 0);
    for bad in [0, 29, 36_501] {
        let err = audit::set_retention(store, &SystemClock, a.id, Some(bad), Context::system(None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CoreError::Validation { field: "/days", .. }),
            "{bad}"
        );
    }
    audit::set_retention(store, &SystemClock, a.id, Some(30), Context::system(None))
        .await
        .unwrap();
    assert_eq!(
        store
            .org_read(a.id)
            .await
            .unwrap()
            .audit_retention()
            .await
            .unwrap(),
        Some(30)
    );
    assert_eq!(audit::prune(store, &SystemClock, a.id).await.unwrap(), 5);
    assert_eq!(audit::prune(store, &SystemClock, a.id).await.unwrap(), 0);

    let mut r = store.org_read(a.id).await.unwrap();
    let rows = r.audit_events(0, 100).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions[8..], ["audit.retention_changed", "audit.pruned"]);
    assert!(rows[..5].iter().all(|r| r.body.is_none()));
    assert!(rows[5..].iter().all(|r| r.body.is_some()));
    // The pruning records what it pruned: how many, their seq and time span, the retention.
    let recorded = bulwark_audit::event::Event::from_canonical(rows[9].body.as_deref().unwrap())
        .unwrap()
        .payload;
    assert!(
        matches!(
            &recorded,
            bulwark_audit::event::Payload::AuditPruned {
                events: 5,
                retention_days: 30,
                from_seq: Some(0),
                to_seq: Some(4),
                oldest: Some(_),
                newest: Some(_),
            }
        ),
        "{recorded:?}"
    );
    let leaves = r.audit_leaves(0, 100).await.unwrap();
    assert_eq!(leaves, rows.iter().map(|r| r.leaf_hash).collect::<Vec<_>>());
    drop(r);
    // The other org is untouched: retention is per org.
    let mut r = store.org_read(b.id).await.unwrap();
    assert!(
        r.audit_events(0, 100)
            .await
            .unwrap()
            .iter()
            .all(|r| r.body.is_some())
    );
    drop(r);

    let seed = Seed::generate().unwrap();
    let key = bulwark_crypto::Ed25519Signer::from_seed(
        &seed
            .derive(bulwark_crypto::KeyPurpose::AuditSigning, b"")
            .unwrap(),
    )
    .unwrap();
    let signer = NoteSigner::new("bulwark-audit", key).unwrap();
    let mut tx = store.org(a.id).await.unwrap();
    audit::checkpoint(
        &mut *tx,
        Log::Org(a.id),
        &signer,
        "bulwark/test",
        &SystemClock,
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    let mut r = store.org_read(a.id).await.unwrap();
    let text = audit::export_jsonl(&mut *r, &format!("bulwark/test/{}", a.id))
        .await
        .unwrap();
    assert_eq!(text.matches("\"action\":\"member.added\"").count(), 3);
    let report = export::verify(text.as_bytes(), &signer.verifier(), &[]).unwrap();
    assert_eq!((report.events, report.pruned), (10, 5));
    // Each pruned event is listed with its stored time.
    let listed: Vec<_> = report
        .pruned_events
        .iter()
        .map(|p| (p.seq, p.time))
        .collect();
    let stored: Vec<_> = rows[..5].iter().map(|r| (r.seq, r.time)).collect();
    assert_eq!(listed, stored);
    // A pruned line that lies about its leaf hash is caught by the signed root.
    let at = text.find("\"leaf_hash\":\"").unwrap() + "\"leaf_hash\":\"".len();
    let mut forged = text.clone().into_bytes();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let err = export::verify(forged.as_slice(), &signer.verifier(), &[]).unwrap_err();
    assert!(
        matches!(err, export::VerifyError::RootMismatch { .. }),
        "{err}"
    );
}

/// A second session of the signed-in owner (same user, new token).
async fn another_session(store: &dyn Store, of: &bulwark_core::model::Session) -> Session {
    let token = bulwark_crypto::SecretToken::generate("bwsess").unwrap();
    let now = SystemClock.now();
    let s = Session {
        id: bulwark_types::SessionId::new(),
        token_hash: token.hash(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + time::Duration::hours(1),
        ..of.clone()
    };
    let mut tx = store.system().await.unwrap();
    tx.create_session(&s).await.unwrap();
    tx.commit().await.unwrap();
    s
}

/// A user's live sessions are listed newest first; revoking all but one leaves that one, and
/// revoked or expired sessions are not listed.
pub async fn user_sessions_are_listed_and_revoked_together(store: &dyn Store) {
    let first = signed_in(store).await.session;
    let second = another_session(store, &first).await;
    let third = another_session(store, &first).await;
    let mut tx = store.system().await.unwrap();
    let listed: Vec<_> = tx
        .user_sessions(first.user_id, SystemClock.now())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.contains(&first.id) && listed.contains(&second.id) && listed.contains(&third.id)
    );
    let later = SystemClock.now() + time::Duration::days(2);
    assert_eq!(
        tx.user_sessions(first.user_id, later).await.unwrap().len(),
        0,
        "expired sessions are not listed"
    );
    let n = tx
        .revoke_user_sessions(first.user_id, Some(second.id), SystemClock.now())
        .await
        .unwrap();
    assert_eq!(n, 2);
    let left = tx
        .user_sessions(first.user_id, SystemClock.now())
        .await
        .unwrap();
    assert_eq!(left.iter().map(|s| s.id).collect::<Vec<_>>(), [second.id]);
    assert_eq!(
        tx.revoke_user_sessions(first.user_id, None, SystemClock.now())
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    let seen = store
        .session_by_token(&first.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(seen.revoked_at.is_some());
}

/// Throttle counters increase atomically, start again after the forget horizon, and clear.
pub async fn throttle_counters_count_forget_and_clear(store: &dyn Store) {
    let t0 = SystemClock.now();
    let key = "account:0123456789abcdef";
    for expected in 1..=3 {
        let n = store
            .throttle_fail(key, t0, t0 - time::Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(n, expected);
    }
    let rows = store
        .throttle_state(&[key.to_owned(), "ip:192.0.2.1".to_owned()])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].failures, 3);
    assert_eq!(rows[0].last_failure_at, t0);
    // Below the free allowance there is no wait, even when a concurrent failure was stamped
    // just after the checking attempt read the clock.
    let policy = bulwark_core::throttle::ThrottlePolicy::default();
    let keys = bulwark_core::throttle::Keys {
        account: Some(key.to_owned()),
        address: None,
        session: None,
    };
    let before = t0 - time::Duration::milliseconds(5);
    assert_eq!(
        policy.retry_after(store, &keys, before).await.unwrap(),
        None
    );
    for _ in 0..2 {
        store
            .throttle_fail(key, t0, t0 - time::Duration::hours(1))
            .await
            .unwrap();
    }
    let wait = policy.retry_after(store, &keys, t0).await.unwrap();
    assert_eq!(
        wait,
        Some(time::Duration::seconds(1)),
        "the fifth failure waits 1 s"
    );
    store.throttle_clear(key).await.unwrap();
    // Two hours later the old failures are forgotten.
    for _ in 0..3 {
        store
            .throttle_fail(key, t0, t0 - time::Duration::hours(1))
            .await
            .unwrap();
    }
    let t1 = t0 + time::Duration::hours(2);
    let n = store
        .throttle_fail(key, t1, t1 - time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(n, 1);
    store.throttle_clear(key).await.unwrap();
    assert!(
        store
            .throttle_state(&[key.to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
    // Counters past the forget horizon are dropped; fresh ones stay.
    let fresh = "ip:192.0.2.9";
    store.throttle_fail(key, t0, t0).await.unwrap();
    store.throttle_fail(fresh, t1, t1).await.unwrap();
    let dropped = store
        .throttle_forget(t0 + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(dropped, 1);
    let left = store
        .throttle_state(&[key.to_owned(), fresh.to_owned()])
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        [fresh]
    );
}

/// An org's sign-in rules default to MFA for owners and round-trip; the database refuses
/// timeouts outside its limits.
pub async fn org_policy_round_trips_with_its_defaults(store: &dyn Store) {
    use bulwark_core::model::{MfaRequirement, OrgPolicy};
    let (org, _) = extra_org(store, "policy", "p@policy.test").await;
    let mut tx = store.org(org.id).await.unwrap();
    assert_eq!(tx.policy().await.unwrap(), OrgPolicy::default());
    let p = OrgPolicy {
        session_idle_secs: Some(600),
        session_absolute_secs: Some(3600),
        mfa_required: MfaRequirement::OwnersAdmins,
        password_composition: true,
    };
    tx.set_policy(&p).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .org_read(org.id)
            .await
            .unwrap()
            .policy()
            .await
            .unwrap(),
        p
    );
    let mut tx = store.org(org.id).await.unwrap();
    let bad = OrgPolicy {
        session_idle_secs: Some(5),
        ..p
    };
    assert!(
        tx.set_policy(&bad).await.is_err(),
        "CHECK refuses a 5 s idle timeout"
    );
}

/// Disabling a user shows on every session lookup, so it takes effect on the next request.
pub async fn a_disabled_user_is_seen_on_the_session(store: &dyn Store) {
    use bulwark_core::session::{Refusal, SessionPolicy, check};
    let s = signed_in(store).await.session;
    let mut tx = store.system().await.unwrap();
    let mut user = tx.user_by_id(s.user_id).await.unwrap().unwrap();
    assert!(user.disabled_at.is_none());
    user.disabled_at = Some(SystemClock.now());
    tx.update_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    let seen = store
        .session_by_token(&s.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(seen.user_disabled);
    assert_eq!(
        check(&seen, SessionPolicy::default(), SystemClock.now()),
        Err(Refusal::Disabled)
    );
}

/// Every transaction method that can change what a session lookup answers moves the session
/// epoch when it commits (and not when it rolls back, nor on a read): a session accepted into a
/// cache is refused on the next lookup after its user is disabled or it is revoked.
pub async fn every_session_change_moves_the_epoch_and_voids_cached_sessions(store: &dyn Store) {
    use bulwark_core::model::TotpRecord;
    use bulwark_core::session::{self, Refusal, SessionPolicy};
    use bulwark_core::session_cache::SessionCache;
    let cache = SessionCache::new(std::time::Duration::from_secs(5));
    let policy = SessionPolicy::default();
    let signed = signed_in(store).await;
    let (user, id) = (signed.session.user_id, signed.session.id);
    let accept = || async {
        session::authenticate(store, &SystemClock, policy, &cache, &signed.token)
            .await
            .unwrap()
    };
    assert!(accept().await.is_ok());

    // Reads and rolled-back writes leave the epoch alone.
    let before = store.session_epoch();
    let mut tx = store.system().await.unwrap();
    let mut account = tx.user_by_id(user).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.system().await.unwrap();
    assert!(tx.revoke_session(id, SystemClock.now()).await.unwrap());
    drop(tx);
    assert_eq!(store.session_epoch(), before);
    assert!(
        accept().await.is_ok(),
        "the rolled-back revocation did not happen"
    );

    // A disabled account is refused on the very next lookup, the cached entry notwithstanding.
    account.disabled_at = Some(SystemClock.now());
    let mut tx = store.system().await.unwrap();
    tx.update_user(&account).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.session_epoch() > before);
    assert_eq!(accept().await.unwrap_err(), Refusal::Disabled);
    account.disabled_at = None;
    let mut tx = store.system().await.unwrap();
    tx.update_user(&account).await.unwrap();
    tx.commit().await.unwrap();
    assert!(accept().await.is_ok());

    // Each other change, committed alone, moves it.
    let now = SystemClock.now();
    let code = SecretToken::generate("code").unwrap().hash();
    let record = TotpRecord {
        user_id: user,
        secret_sealed: vec![1, 2, 3],
        created_at: now,
        enabled_at: None,
        last_step: None,
    };
    for change in 0..6 {
        let before = store.session_epoch();
        let mut tx = store.system().await.unwrap();
        match change {
            0 => tx.replace_totp(user, Some(&record)).await.unwrap(),
            1 => assert!(tx.use_totp_step(user, 7, now).await.unwrap()),
            2 => tx
                .replace_backup_codes(user, std::slice::from_ref(&code), now)
                .await
                .unwrap(),
            3 => assert!(tx.use_backup_code(user, &code, now).await.unwrap()),
            4 => drop(tx.revoke_user_sessions(user, Some(id), now).await.unwrap()),
            _ => assert!(tx.revoke_session(id, now).await.unwrap()),
        }
        tx.commit().await.unwrap();
        assert!(store.session_epoch() > before, "change {change}");
    }
    assert_eq!(accept().await.unwrap_err(), Refusal::Revoked);
}

/// Runs `attempt` 64 times at once and returns how many succeeded.
async fn sixty_four<F, Fut>(attempt: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let handles: Vec<_> = (0..64).map(|_| tokio::spawn(attempt())).collect();
    let mut won = 0;
    for h in handles {
        if h.await.unwrap() {
            won += 1;
        }
    }
    won
}

/// One emailed token, 64 simultaneous redemptions: exactly one wins; an expired or
/// wrong-purpose token never does.
pub async fn sixty_four_concurrent_redemptions_of_one_emailed_token_succeed_once(
    store: Arc<dyn Store>,
) {
    use bulwark_core::model::{TokenPurpose, UserToken};
    let s = signed_in(&*store).await.session;
    let token = bulwark_crypto::SecretToken::generate("bwverify").unwrap();
    let now = SystemClock.now();
    let mut tx = store.system().await.unwrap();
    tx.create_user_token(&UserToken {
        hash: token.hash(),
        purpose: TokenPurpose::ResetPassword,
        user_id: s.user_id,
        created_at: now,
        expires_at: now + time::Duration::minutes(30),
    })
    .await
    .unwrap();
    // Wrong purpose and too late: refused, and the token stays unused.
    assert_eq!(
        tx.redeem_user_token(&token.hash(), TokenPurpose::VerifyEmail, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tx.redeem_user_token(
            &token.hash(),
            TokenPurpose::ResetPassword,
            now + time::Duration::minutes(31)
        )
        .await
        .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    let hash = token.hash();
    let won = sixty_four(|| {
        let (store, hash) = (store.clone(), hash.clone());
        async move {
            let mut tx = store.system().await.unwrap();
            let got = tx
                .redeem_user_token(&hash, TokenPurpose::ResetPassword, SystemClock.now())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            got.is_some()
        }
    })
    .await;
    assert_eq!(won, 1);
}

/// One backup code, 64 simultaneous uses: exactly one wins.
pub async fn sixty_four_concurrent_uses_of_one_backup_code_succeed_once(store: Arc<dyn Store>) {
    let s = signed_in(&*store).await.session;
    let codes: Vec<_> = (0..10)
        .map(|_| {
            bulwark_crypto::SecretToken::generate("code")
                .unwrap()
                .hash()
        })
        .collect();
    let mut tx = store.system().await.unwrap();
    tx.replace_backup_codes(s.user_id, &codes, SystemClock.now())
        .await
        .unwrap();
    assert_eq!(tx.backup_codes_left(s.user_id).await.unwrap(), 10);
    tx.commit().await.unwrap();
    let (user, hash) = (s.user_id, codes[3].clone());
    let won = sixty_four(|| {
        let (store, hash) = (store.clone(), hash.clone());
        async move {
            let mut tx = store.system().await.unwrap();
            let ok = tx
                .use_backup_code(user, &hash, SystemClock.now())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            ok
        }
    })
    .await;
    assert_eq!(won, 1);
    let mut tx = store.system().await.unwrap();
    assert_eq!(tx.backup_codes_left(user).await.unwrap(), 9);
    // A reset removes the codes with the authenticator.
    tx.replace_totp(user, None).await.unwrap();
    assert_eq!(tx.backup_codes_left(user).await.unwrap(), 0);
}

/// One TOTP time step, 64 simultaneous uses: exactly one wins; an earlier step is refused after.
pub async fn sixty_four_concurrent_uses_of_one_totp_step_succeed_once(store: Arc<dyn Store>) {
    use bulwark_core::model::TotpRecord;
    let s = signed_in(&*store).await.session;
    let user = s.user_id;
    let mut tx = store.system().await.unwrap();
    let record = TotpRecord {
        user_id: user,
        secret_sealed: vec![1, 2, 3],
        created_at: SystemClock.now(),
        enabled_at: None,
        last_step: None,
    };
    tx.replace_totp(user, Some(&record)).await.unwrap();
    tx.commit().await.unwrap();
    let won = sixty_four(|| {
        let store = store.clone();
        async move {
            let mut tx = store.system().await.unwrap();
            let ok = tx
                .use_totp_step(user, 1000, SystemClock.now())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            ok
        }
    })
    .await;
    assert_eq!(won, 1);
    let mut tx = store.system().await.unwrap();
    let stored = tx.totp(user).await.unwrap().unwrap();
    assert_eq!(stored.last_step, Some(1000));
    assert!(
        stored.enabled_at.is_some(),
        "the first accepted code enables it"
    );
    assert_eq!(stored.secret_sealed, [1, 2, 3]);
    assert!(
        !tx.use_totp_step(user, 999, SystemClock.now())
            .await
            .unwrap()
    );
    assert!(
        tx.use_totp_step(user, 1001, SystemClock.now())
            .await
            .unwrap()
    );
}

/// One invitation, 64 simultaneous acceptances: exactly one wins; the token's org is found
/// without an org binding, and an expired invitation is never accepted.
pub async fn sixty_four_concurrent_acceptances_of_one_invitation_succeed_once(
    store: Arc<dyn Store>,
) {
    use bulwark_core::model::Invitation;
    let s = signed_in(&*store).await.session;
    let (org, _) = extra_org(&*store, "invites", "boss@invites.test").await;
    let token = bulwark_crypto::SecretToken::generate("bwinvite").unwrap();
    let now = SystemClock.now();
    let invitation = Invitation {
        id: bulwark_types::InvitationId::new(),
        org_id: org.id,
        token_hash: token.hash(),
        email: "new@invites.test".parse().unwrap(),
        role: Role::Member,
        invited_by: s.user_id,
        created_at: now,
        expires_at: now + time::Duration::days(7),
        accepted_at: None,
        revoked_at: None,
    };
    let mut tx = store.org(org.id).await.unwrap();
    tx.create_invitation(&invitation).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.invitation_org(&token.hash()).await.unwrap(),
        Some(org.id)
    );
    let other = bulwark_crypto::SecretToken::generate("bwinvite").unwrap();
    assert_eq!(store.invitation_org(&other.hash()).await.unwrap(), None);
    let mut tx = store.org(org.id).await.unwrap();
    let late = now + time::Duration::days(8);
    assert!(
        tx.accept_invitation(&token.hash(), late)
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);
    let (org_id, hash) = (org.id, token.hash());
    let won = sixty_four(|| {
        let (store, hash) = (store.clone(), hash.clone());
        async move {
            let mut tx = store.org(org_id).await.unwrap();
            let got = tx
                .accept_invitation(&hash, SystemClock.now())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            got.is_some()
        }
    })
    .await;
    assert_eq!(won, 1);
    let mut read = store.org_read(org.id).await.unwrap();
    assert!(read.open_invitations().await.unwrap().is_empty());
}

fn mail_job(email: &str, purpose: bulwark_core::model::TokenPurpose, ms: i64) -> MailJob {
    MailJob {
        id: uuid::Uuid::now_v7(),
        purpose,
        email: email.parse().unwrap(),
        source_ip: Some("192.0.2.7".into()),
        user_agent: None,
        request_id: Some("req-1".into()),
        created_ms: ms,
    }
}

/// Requests for one purpose and (case-insensitively) one address coalesce into one job; a
/// claimed job is held until its lease ends, then claimable again; a done job is gone.
pub async fn mail_jobs_coalesce_per_address_and_are_claimed_once(store: &dyn Store) {
    use bulwark_core::model::TokenPurpose::{ResetPassword, VerifyEmail};
    for (email, purpose, ms) in [
        ("Someone@Example.test", ResetPassword, 1_000),
        ("someone@example.test", ResetPassword, 1_001),
        ("someone@example.test", VerifyEmail, 1_002),
        ("nobody@example.test", ResetPassword, 1_003),
    ] {
        store
            .mail_enqueue(&mail_job(email, purpose, ms))
            .await
            .unwrap();
    }
    assert_eq!(store.mail_backlog().await.unwrap(), 3);
    let first = store.mail_claim(2_000, 62_000, 2).await.unwrap();
    assert_eq!(first.len(), 2, "up to the limit, oldest first");
    assert_eq!(
        first[0].email.as_str(),
        "Someone@example.test",
        "the first asker's"
    );
    assert_eq!(first[0].purpose, ResetPassword);
    assert_eq!(first[0].source_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(first[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(first[1].purpose, VerifyEmail);
    let rest = store.mail_claim(2_000, 62_000, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "held jobs are not claimed again");
    assert_eq!(rest[0].email.as_str(), "nobody@example.test");
    assert!(
        store
            .mail_claim(61_999, 90_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mut tx = store.system().await.unwrap();
    tx.mail_done(first[0].id).await.unwrap();
    tx.commit().await.unwrap();
    // While held, a request for the same address still coalesces into it.
    store
        .mail_enqueue(&mail_job("nobody@example.test", ResetPassword, 3_000))
        .await
        .unwrap();
    assert_eq!(store.mail_backlog().await.unwrap(), 2);
    let again = store.mail_claim(62_000, 122_000, 10).await.unwrap();
    assert_eq!(again.len(), 2, "a lease that ran out frees the job");
}

/// A mail limit is stored per account and purpose, and replaced as a whole.
pub async fn mail_limits_round_trip_per_account_and_purpose(store: &dyn Store) {
    use bulwark_core::model::TokenPurpose::{ResetPassword, VerifyEmail};
    let (_, user) = extra_org(store, "mail", "owner@mail.test").await;
    let mut tx = store.system().await.unwrap();
    assert_eq!(tx.lock_mail_limit(user, ResetPassword).await.unwrap(), None);
    let limit = MailLimit {
        last_sent_ms: 5_000,
        window_start_ms: 4_000,
        sent_in_window: 2,
        noted: true,
    };
    tx.set_mail_limit(user, ResetPassword, &limit)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.system().await.unwrap();
    assert_eq!(
        tx.lock_mail_limit(user, ResetPassword).await.unwrap(),
        Some(limit)
    );
    assert_eq!(tx.lock_mail_limit(user, VerifyEmail).await.unwrap(), None);
    let next = MailLimit {
        noted: false,
        sent_in_window: 3,
        ..limit
    };
    tx.set_mail_limit(user, ResetPassword, &next).await.unwrap();
    assert_eq!(
        tx.lock_mail_limit(user, ResetPassword).await.unwrap(),
        Some(next)
    );
    drop(tx);
    let mut tx = store.system().await.unwrap();
    assert_eq!(
        tx.lock_mail_limit(user, ResetPassword).await.unwrap(),
        Some(limit),
        "an uncommitted change is rolled back"
    );
}
