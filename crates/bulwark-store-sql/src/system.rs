//! Deployment-wide operations: the instance row, global user accounts, and org creation.

use async_trait::async_trait;
use bulwark_core::StoreError;
use bulwark_core::model::AuditRow;
use bulwark_core::model::{
    Instance, Membership, Org, Session, TokenPurpose, TotpRecord, User, UserToken,
};
use bulwark_core::ports::{AuditRead, AuditWrite, SystemTx};
use bulwark_crypto::TokenHash;
use bulwark_types::{Email, OrgId, SessionId, UserId};
use sqlx::{Row as _, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{Db, FOR_UPDATE, announce_session_change, bind_org};
use crate::map_err;

pub(crate) struct StoreSystemTx {
    pub(crate) tx: Transaction<'static, Db>,
    /// The store's session epoch, moved on commit when `sessions_changed`.
    pub(crate) epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether this transaction revoked a session or changed a user or their second factor.
    pub(crate) sessions_changed: bool,
}

#[async_trait]
impl SystemTx for StoreSystemTx {
    async fn insert_deletion_certificate(
        &mut self,
        org: OrgId,
        purged_at: time::OffsetDateTime,
        body: &str,
    ) -> Result<(), StoreError> {
        crate::deletion::insert_certificate(&mut self.tx, org, purged_at, body).await
    }

    async fn delete_ended_sessions(
        &mut self,
        before: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let n = crate::deletion::delete_ended_sessions(&mut self.tx, before).await?;
        if n > 0 {
            self.sessions_changed = true;
        }
        Ok(n)
    }

    async fn erase_user(
        &mut self,
        user: UserId,
        email_key: &str,
        throttle_key: &str,
        tombstone_email: &str,
        now: time::OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let counts = crate::deletion::erase_user(
            &mut self.tx,
            user,
            email_key,
            throttle_key,
            tombstone_email,
            now,
        )
        .await?;
        self.sessions_changed = true;
        Ok(counts)
    }

    async fn deletion_certificate(&mut self, org: OrgId) -> Result<Option<String>, StoreError> {
        crate::deletion::certificate(&mut self.tx, org).await
    }

    async fn deletion_certificates(
        &mut self,
    ) -> Result<Vec<(OrgId, time::OffsetDateTime)>, StoreError> {
        crate::deletion::certificates(&mut self.tx).await
    }

    async fn instance(&mut self) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT deployment_id, seed_check, setup_token_hash, setup_completed_at, created_at \
             FROM instance WHERE id = 1{FOR_UPDATE}"
        )))
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let seed_check: Vec<u8> = row.try_get("seed_check").map_err(map_err)?;
        let token: Option<Vec<u8>> = row.try_get("setup_token_hash").map_err(map_err)?;
        let setup_token_hash = match token.as_deref() {
            None => None,
            Some(bytes) => Some(TokenHash::from_slice(bytes).ok_or_else(|| {
                StoreError::Corrupt("setup token hash has the wrong length".into())
            })?),
        };
        Ok(Some(Instance {
            deployment_id: row.try_get::<Uuid, _>("deployment_id").map_err(map_err)?,
            seed_check: <[u8; 32]>::try_from(seed_check.as_slice())
                .map_err(|_| StoreError::Corrupt("seed check value has the wrong length".into()))?,
            setup_token_hash,
            setup_completed_at: row.try_get("setup_completed_at").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        }))
    }

    async fn create_instance(&mut self, i: &Instance) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instance (id, deployment_id, seed_check, setup_token_hash, setup_completed_at, created_at) \
             VALUES (1, $1, $2, $3, $4, $5)",
        )
        .bind(i.deployment_id)
        .bind(i.seed_check.as_slice())
        .bind(i.setup_token_hash.as_ref().map(|h| h.as_bytes().as_slice()))
        .bind(i.setup_completed_at)
        .bind(i.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn set_setup_token(&mut self, hash: Option<&TokenHash>) -> Result<(), StoreError> {
        sqlx::query("UPDATE instance SET setup_token_hash = $1 WHERE id = 1")
            .bind(hash.map(|h| h.as_bytes().as_slice()))
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn complete_setup(
        &mut self,
        at: OffsetDateTime,
        operator_org: bulwark_types::OrgId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE instance SET setup_completed_at = $1, setup_token_hash = NULL, \
             operator_org = $2 WHERE id = 1",
        )
        .bind(at)
        .bind(operator_org.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn create_user(&mut self, u: &User) -> Result<(), StoreError> {
        crate::identity::create_user(&mut self.tx, u).await
    }

    async fn user_by_email(&mut self, email: &Email) -> Result<Option<User>, StoreError> {
        crate::identity::user_by_email(&mut self.tx, email).await
    }

    async fn create_org(&mut self, org: &Org, owner: &Membership) -> Result<(), StoreError> {
        bind_org(&mut self.tx, org.id).await?;
        sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org.id.as_uuid())
            .bind(org.slug.as_str())
            .bind(org.name.as_str())
            .bind(org.created_at)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org.id.as_uuid())
        .bind(owner.user_id.as_uuid())
        .bind(owner.role.as_str())
        .bind(owner.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn create_session(
        &mut self,
        session: &bulwark_core::model::Session,
    ) -> Result<(), StoreError> {
        crate::session::create(&mut self.tx, session).await
    }

    async fn revoke_session(
        &mut self,
        id: bulwark_types::SessionId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.sessions_changed = true;
        crate::session::revoke(&mut self.tx, id, at).await
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>, StoreError> {
        crate::identity::user_by_id(&mut self.tx, id).await
    }

    async fn update_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.sessions_changed = true;
        crate::identity::update_user(&mut self.tx, user).await
    }

    async fn user_sessions(
        &mut self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        crate::session::of_user(&mut self.tx, user, now).await
    }

    async fn record_sso_session(
        &mut self,
        session: SessionId,
        connection: bulwark_types::ConnectionId,
        subject: &str,
        sid: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::sso::record_session(&mut self.tx, session, connection, subject, sid).await
    }

    async fn carry_sso_session(
        &mut self,
        from: SessionId,
        to: SessionId,
    ) -> Result<(), StoreError> {
        crate::sso::carry_session(&mut self.tx, from, to).await
    }

    async fn sso_sessions(
        &mut self,
        connection: bulwark_types::ConnectionId,
        subject: Option<&str>,
        sid: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        crate::sso::sessions(&mut self.tx, connection, subject, sid, now).await
    }

    async fn revoke_user_sessions(
        &mut self,
        user: UserId,
        except: Option<SessionId>,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.sessions_changed = true;
        crate::session::revoke_all(&mut self.tx, user, except, at).await
    }

    async fn totp(&mut self, user: UserId) -> Result<Option<TotpRecord>, StoreError> {
        crate::identity::totp(&mut self.tx, user).await
    }

    async fn replace_totp(
        &mut self,
        user: UserId,
        record: Option<&TotpRecord>,
    ) -> Result<(), StoreError> {
        self.sessions_changed = true;
        crate::identity::replace_totp(&mut self.tx, user, record).await
    }

    async fn use_totp_step(
        &mut self,
        user: UserId,
        step: u64,
        enable_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.sessions_changed = true;
        crate::identity::use_totp_step(&mut self.tx, user, step, enable_at).await
    }

    async fn replace_backup_codes(
        &mut self,
        user: UserId,
        hashes: &[TokenHash],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.sessions_changed = true;
        crate::identity::replace_backup_codes(&mut self.tx, user, hashes, at).await
    }

    async fn use_backup_code(
        &mut self,
        user: UserId,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.sessions_changed = true;
        crate::identity::use_backup_code(&mut self.tx, user, hash, at).await
    }

    async fn backup_codes_left(&mut self, user: UserId) -> Result<u32, StoreError> {
        crate::identity::backup_codes_left(&mut self.tx, user).await
    }

    async fn create_user_token(&mut self, token: &UserToken) -> Result<(), StoreError> {
        crate::identity::create_user_token(&mut self.tx, token).await
    }

    async fn redeem_user_token(
        &mut self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StoreError> {
        crate::identity::redeem_user_token(&mut self.tx, hash, purpose, now).await
    }

    async fn lock_mail_limit(
        &mut self,
        user: UserId,
        purpose: TokenPurpose,
    ) -> Result<Option<bulwark_core::model::MailLimit>, StoreError> {
        crate::mail::lock_limit(&mut self.tx, user, purpose).await
    }

    async fn set_mail_limit(
        &mut self,
        user: UserId,
        purpose: TokenPurpose,
        limit: &bulwark_core::model::MailLimit,
    ) -> Result<(), StoreError> {
        crate::mail::set_limit(&mut self.tx, user, purpose, limit).await
    }

    async fn mail_done(&mut self, id: Uuid) -> Result<(), StoreError> {
        crate::mail::done(&mut self.tx, id).await
    }

    async fn vault_keys(&mut self) -> Result<Vec<bulwark_core::model::VaultKey>, StoreError> {
        crate::vault::keys(&mut self.tx).await
    }

    async fn insert_vault_key(
        &mut self,
        key: &bulwark_core::model::VaultKey,
    ) -> Result<(), StoreError> {
        crate::vault::insert_key(&mut self.tx, key).await
    }

    async fn license_activations(
        &mut self,
    ) -> Result<Vec<bulwark_core::model::LicenseActivation>, StoreError> {
        crate::licensing::activations(&mut self.tx).await
    }

    async fn insert_license_activation(
        &mut self,
        a: &bulwark_core::model::LicenseActivation,
    ) -> Result<(), StoreError> {
        crate::licensing::insert(&mut self.tx, a).await
    }

    async fn lock_license_clock(
        &mut self,
    ) -> Result<bulwark_core::model::LicenseClock, StoreError> {
        crate::licensing::lock_clock(&mut self.tx).await
    }

    async fn set_license_clock(
        &mut self,
        clock: &bulwark_core::model::LicenseClock,
    ) -> Result<(), StoreError> {
        crate::licensing::set_clock(&mut self.tx, clock).await
    }

    async fn license_usage(&mut self) -> Result<bulwark_core::model::LicenseUsage, StoreError> {
        crate::licensing::usage(&mut self.tx).await
    }

    async fn lock_license_usage(
        &mut self,
    ) -> Result<bulwark_core::model::LicenseUsage, StoreError> {
        crate::licensing::lock_usage(&mut self.tx).await
    }

    async fn set_vault_key_state(
        &mut self,
        version: u32,
        state: bulwark_core::model::VaultKeyState,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let in_use = crate::vault::in_use(&mut self.tx, version).await?;
        crate::vault::set_key_state(&mut self.tx, version, state, at, in_use).await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.sessions_changed {
            announce_session_change(&mut self.tx).await?;
        }
        let result = self.tx.commit().await.map_err(map_err);
        // Moved even when the commit reports an error: it may have landed all the same.
        if self.sessions_changed {
            self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }
}

#[async_trait]
impl AuditWrite for StoreSystemTx {
    async fn audit_head(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        crate::audit::head(&mut self.tx, "system").await
    }

    async fn audit_insert(&mut self, rows: &[AuditRow], head: &[u8]) -> Result<(), StoreError> {
        crate::audit::insert(&mut self.tx, "system", None, rows, head).await
    }

    async fn audit_checkpoint_insert(
        &mut self,
        size: u64,
        note: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::audit::checkpoint_insert(&mut self.tx, "system", None, size, note, at).await
    }

    async fn audit_erase_body(&mut self, seq: u64, body: &[u8]) -> Result<bool, StoreError> {
        crate::batched::erase_audit_body(&mut self.tx, "system", seq, body).await
    }
}

#[async_trait]
impl AuditRead for StoreSystemTx {
    async fn audit_events(
        &mut self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        crate::audit::events(&mut self.tx, "system", from_seq, limit).await
    }

    async fn audit_leaves(
        &mut self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        crate::audit::leaves(&mut self.tx, "system", from_seq, limit).await
    }

    async fn audit_latest_checkpoint(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        crate::audit::latest_checkpoint(&mut self.tx, "system").await
    }
}
