//! Operations inside one org.
//!
//! INVARIANT: every statement here filters on `self.org` explicitly. On PostgreSQL the
//! transaction is also bound to `self.org` ([`crate::dialect::bind_org`]), so row-level security
//! is the second line of defence, not the only one; SQLite has none, so the filter is all.
//! Whichever engine compiles this file, its tests run the same conformance suite.

use async_trait::async_trait;
use bulwark_core::StoreError;
use bulwark_core::model::AuditRow;
use bulwark_core::model::{Member, Org};
use bulwark_core::ports::{AuditRead, AuditWrite, OrgRead, OrgTx};
use bulwark_types::{OrgId, Role, UserId};
use sqlx::{Row as _, Transaction};
use time::OffsetDateTime;

use crate::dialect::{Db, DbRow};
use crate::{map_err, parse, role};

pub(crate) struct StoreOrgTx {
    pub(crate) tx: Transaction<'static, Db>,
    pub(crate) org: OrgId,
}

fn member(row: &DbRow) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: UserId::from_uuid(row.try_get("user_id").map_err(map_err)?),
        email: bulwark_types::Email::from_stored(row.try_get("email").map_err(map_err)?),
        role: role(row.try_get("role").map_err(map_err)?)?,
        joined_at: row.try_get("created_at").map_err(map_err)?,
    })
}

#[async_trait]
impl OrgRead for StoreOrgTx {
    fn org_id(&self) -> OrgId {
        self.org
    }

    async fn get(&mut self) -> Result<Org, StoreError> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM orgs WHERE id = $1")
            .bind(self.org.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        Ok(Org {
            id: OrgId::from_uuid(row.try_get("id").map_err(map_err)?),
            slug: parse("slug", row.try_get("slug").map_err(map_err)?)?,
            name: parse("org name", row.try_get("name").map_err(map_err)?)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        })
    }

    async fn members(&mut self) -> Result<Vec<Member>, StoreError> {
        sqlx::query(
            "SELECT m.user_id, u.email, m.role, m.created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id",
        )
        .bind(self.org.as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(member)
        .collect()
    }

    async fn member(&mut self, user: UserId) -> Result<Option<Member>, StoreError> {
        sqlx::query(
            "SELECT m.user_id, u.email, m.role, m.created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(self.org.as_uuid())
        .bind(user.as_uuid())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(member)
        .transpose()
    }

    async fn audit_retention(&mut self) -> Result<Option<u32>, StoreError> {
        crate::audit::retention(&mut self.tx, self.org).await
    }

    async fn policy(&mut self) -> Result<bulwark_core::model::OrgPolicy, StoreError> {
        crate::identity::policy(&mut self.tx, self.org).await
    }

    async fn open_invitations(
        &mut self,
    ) -> Result<Vec<bulwark_core::model::Invitation>, StoreError> {
        crate::identity::open_invitations(&mut self.tx, self.org).await
    }

    async fn authz_policy_hash(&mut self) -> Result<Option<String>, StoreError> {
        crate::authz::policy_hash(&mut self.tx, self.org).await
    }

    async fn authz_policy_set(&mut self, hash: &str) -> Result<Option<String>, StoreError> {
        crate::authz::policy_set(&mut self.tx, self.org, hash).await
    }

    async fn teams(&mut self) -> Result<Vec<bulwark_core::model::Team>, StoreError> {
        crate::authz::teams(&mut self.tx, self.org).await
    }

    async fn teams_of(&mut self, user: UserId) -> Result<Vec<bulwark_types::TeamId>, StoreError> {
        crate::authz::teams_of(&mut self.tx, self.org, user).await
    }

    async fn api_keys(&mut self) -> Result<Vec<bulwark_core::model::ApiKeyRecord>, StoreError> {
        crate::apikeys::list(&mut self.tx, self.org).await
    }

    async fn api_key(
        &mut self,
        id: bulwark_types::ApiKeyId,
    ) -> Result<Option<bulwark_core::model::ApiKeyRecord>, StoreError> {
        crate::apikeys::get(&mut self.tx, self.org, id).await
    }

    async fn credentials(&mut self) -> Result<Vec<bulwark_core::model::Credential>, StoreError> {
        crate::vault::list(&mut self.tx, self.org).await
    }

    async fn credential(
        &mut self,
        id: bulwark_types::CredentialId,
    ) -> Result<Option<bulwark_core::model::Credential>, StoreError> {
        crate::vault::get(&mut self.tx, self.org, id).await
    }

    async fn vault_key(
        &mut self,
        version: u32,
    ) -> Result<Option<bulwark_core::model::VaultKey>, StoreError> {
        crate::vault::key(&mut self.tx, version).await
    }
    async fn org_key(
        &mut self,
    ) -> Result<Option<(uuid::Uuid, bulwark_crypto::vault::OrgKey)>, StoreError> {
        crate::deletion::org_key(&mut self.tx, self.org).await
    }
    async fn deletion(&mut self) -> Result<Option<bulwark_core::model::OrgDeletion>, StoreError> {
        crate::deletion::state(&mut self.tx, self.org).await
    }
    async fn sso_connections(
        &mut self,
    ) -> Result<Vec<bulwark_core::model::SsoConnection>, StoreError> {
        crate::sso::connections(&mut self.tx, self.org).await
    }

    async fn sso_connection(
        &mut self,
        id: bulwark_types::ConnectionId,
    ) -> Result<Option<bulwark_core::model::SsoConnection>, StoreError> {
        crate::sso::connection_by_id(&mut self.tx, self.org, id).await
    }

    async fn sso_domains(&mut self) -> Result<Vec<bulwark_core::model::SsoDomain>, StoreError> {
        crate::sso::domains(&mut self.tx, self.org).await
    }

    async fn sso_settings(&mut self) -> Result<bulwark_core::model::SsoSettings, StoreError> {
        crate::sso::settings(&mut self.tx, self.org).await
    }

    async fn sso_identity(
        &mut self,
        connection: bulwark_types::ConnectionId,
        subject: &str,
    ) -> Result<Option<UserId>, StoreError> {
        crate::sso::identity(&mut self.tx, self.org, connection, subject).await
    }

    async fn scim_users(
        &mut self,
        query: &bulwark_core::model::ScimUserQuery,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<(u64, Vec<bulwark_core::model::ScimUser>), StoreError> {
        crate::scim::users(&mut self.tx, self.org, query, offset, limit).await
    }

    async fn scim_user(
        &mut self,
        user: UserId,
    ) -> Result<Option<bulwark_core::model::ScimUser>, StoreError> {
        crate::scim::user_one(&mut self.tx, self.org, user).await
    }

    async fn scim_groups(
        &mut self,
        members: bool,
    ) -> Result<Vec<bulwark_core::model::ScimGroup>, StoreError> {
        crate::scim::groups(&mut self.tx, self.org, members).await
    }

    async fn scim_group(
        &mut self,
        team: bulwark_types::TeamId,
    ) -> Result<Option<bulwark_core::model::ScimGroup>, StoreError> {
        crate::scim::group_one(&mut self.tx, self.org, team, false).await
    }

    async fn scim_user_groups(
        &mut self,
        user: UserId,
    ) -> Result<Vec<(bulwark_types::TeamId, String)>, StoreError> {
        crate::scim::user_groups(&mut self.tx, self.org, user).await
    }

    async fn webhook_endpoints(
        &mut self,
    ) -> Result<Vec<bulwark_core::model::WebhookEndpoint>, StoreError> {
        crate::webhooks::endpoints(&mut self.tx, self.org).await
    }

    async fn webhook_backlog(&mut self, now_ms: i64) -> Result<(u64, Option<i64>), StoreError> {
        crate::webhooks::backlog(&mut self.tx, self.org, now_ms).await
    }

    async fn webhook_endpoint(
        &mut self,
        id: bulwark_types::EndpointId,
    ) -> Result<Option<bulwark_core::model::WebhookEndpoint>, StoreError> {
        crate::webhooks::endpoint_by_id(&mut self.tx, self.org, id).await
    }

    async fn webhook_attempts(
        &mut self,
        endpoint: bulwark_types::EndpointId,
        limit: u32,
    ) -> Result<Vec<bulwark_core::model::WebhookAttempt>, StoreError> {
        crate::webhooks::attempts(&mut self.tx, self.org, endpoint, limit).await
    }

    async fn webhook_deliveries(
        &mut self,
        endpoint: bulwark_types::EndpointId,
        limit: u32,
    ) -> Result<Vec<bulwark_core::model::WebhookDelivery>, StoreError> {
        crate::webhooks::deliveries(&mut self.tx, self.org, endpoint, limit).await
    }

    async fn webhook_delivery(
        &mut self,
        id: bulwark_types::DeliveryId,
    ) -> Result<Option<bulwark_core::model::WebhookDelivery>, StoreError> {
        crate::webhooks::delivery_by_id(&mut self.tx, self.org, id).await
    }

    async fn webhook_message_by_key(
        &mut self,
        key: &str,
    ) -> Result<Option<bulwark_core::model::WebhookMessage>, StoreError> {
        crate::webhooks::message_by_key(&mut self.tx, self.org, key).await
    }

    async fn webhook_messages_between(
        &mut self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        after: Option<bulwark_types::MessageId>,
        limit: u32,
    ) -> Result<Vec<bulwark_core::model::WebhookMessage>, StoreError> {
        crate::webhooks::messages_between(&mut self.tx, self.org, since, until, after, limit).await
    }
}

#[async_trait]
impl OrgTx for StoreOrgTx {
    async fn lock_license_usage(
        &mut self,
    ) -> Result<bulwark_core::model::LicenseUsage, StoreError> {
        crate::licensing::lock_usage(&mut self.tx).await
    }

    async fn add_member(
        &mut self,
        user: UserId,
        role: Role,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.org.as_uuid())
        .bind(user.as_uuid())
        .bind(role.as_str())
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn set_role(&mut self, user: UserId, role: Role) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
                .bind(self.org.as_uuid())
                .bind(user.as_uuid())
                .bind(role.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn create_api_key(
        &mut self,
        key: &bulwark_core::model::ApiKeyRecord,
    ) -> Result<(), StoreError> {
        crate::apikeys::create(&mut self.tx, self.org, key).await
    }

    async fn revoke_api_key(
        &mut self,
        id: bulwark_types::ApiKeyId,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::apikeys::revoke(&mut self.tx, self.org, id, at).await
    }

    async fn expire_api_key(
        &mut self,
        id: bulwark_types::ApiKeyId,
        at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::apikeys::expire_by(&mut self.tx, self.org, id, at).await
    }

    async fn touch_api_key(
        &mut self,
        id: bulwark_types::ApiKeyId,
        at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::apikeys::touch(&mut self.tx, self.org, id, at).await
    }

    async fn active_vault_key(
        &mut self,
    ) -> Result<Option<bulwark_core::model::VaultKey>, StoreError> {
        crate::vault::active_key(&mut self.tx).await
    }

    async fn create_credential(
        &mut self,
        credential: &bulwark_core::model::Credential,
    ) -> Result<(), StoreError> {
        crate::vault::create(&mut self.tx, self.org, credential).await
    }

    async fn replace_credential(
        &mut self,
        id: bulwark_types::CredentialId,
        sealed: &bulwark_crypto::vault::SealedValue,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::vault::replace(&mut self.tx, self.org, id, sealed, at).await
    }

    async fn delete_credential(
        &mut self,
        id: bulwark_types::CredentialId,
    ) -> Result<bool, StoreError> {
        crate::vault::delete(&mut self.tx, self.org, id).await
    }

    async fn touch_credential(
        &mut self,
        id: bulwark_types::CredentialId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::vault::touch(&mut self.tx, self.org, id, at).await
    }

    async fn stale_credentials(
        &mut self,
        active: u32,
        limit: u32,
        after: Option<(u32, bulwark_types::CredentialId)>,
    ) -> Result<Vec<bulwark_core::model::Credential>, StoreError> {
        crate::vault::stale(&mut self.tx, self.org, active, limit, after).await
    }

    async fn rewrap_credential(
        &mut self,
        id: bulwark_types::CredentialId,
        from: u32,
        sealed: &bulwark_crypto::vault::SealedValue,
    ) -> Result<bool, StoreError> {
        crate::vault::rewrap(&mut self.tx, self.org, id, from, sealed).await
    }

    async fn lock_owners(&mut self) -> Result<(), StoreError> {
        crate::dialect::lock_owners(&mut self.tx, self.org).await
    }

    async fn remove_member(&mut self, user: UserId) -> Result<bool, StoreError> {
        // Team memberships go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(self.org.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_user(&mut self, user: &bulwark_core::model::User) -> Result<(), StoreError> {
        crate::identity::create_user(&mut self.tx, user).await
    }

    async fn create_invitation(
        &mut self,
        invitation: &bulwark_core::model::Invitation,
    ) -> Result<(), StoreError> {
        crate::identity::create_invitation(&mut self.tx, self.org, invitation).await
    }

    async fn accept_invitation(
        &mut self,
        hash: &bulwark_crypto::TokenHash,
        now: time::OffsetDateTime,
    ) -> Result<Option<bulwark_core::model::Invitation>, StoreError> {
        crate::identity::accept_invitation(&mut self.tx, self.org, hash, now).await
    }

    async fn revoke_invitation(
        &mut self,
        id: bulwark_types::InvitationId,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::identity::revoke_invitation(&mut self.tx, self.org, id, at).await
    }

    async fn activate_policy_set(
        &mut self,
        hash: &str,
        body: &str,
        by: Option<UserId>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::authz::activate(&mut self.tx, self.org, hash, body, by, at).await
    }

    async fn create_team(&mut self, team: &bulwark_core::model::Team) -> Result<(), StoreError> {
        crate::authz::create_team(&mut self.tx, self.org, team).await
    }

    async fn delete_team(&mut self, team: bulwark_types::TeamId) -> Result<bool, StoreError> {
        crate::authz::delete_team(&mut self.tx, self.org, team).await
    }

    async fn lock_team(&mut self, team: bulwark_types::TeamId) -> Result<bool, StoreError> {
        crate::authz::lock_team(&mut self.tx, self.org, team).await
    }

    async fn revoke_team_api_keys(
        &mut self,
        team: bulwark_types::TeamId,
        at: time::OffsetDateTime,
    ) -> Result<Vec<bulwark_types::ApiKeyId>, StoreError> {
        crate::apikeys::revoke_team(&mut self.tx, self.org, team, at).await
    }

    async fn set_team_member(
        &mut self,
        team: bulwark_types::TeamId,
        user: UserId,
        present: bool,
    ) -> Result<bool, StoreError> {
        crate::authz::set_team_member(&mut self.tx, self.org, team, user, present).await
    }

    async fn set_policy(
        &mut self,
        policy: &bulwark_core::model::OrgPolicy,
    ) -> Result<(), StoreError> {
        crate::identity::set_policy(&mut self.tx, self.org, policy).await
    }

    async fn erase_member(
        &mut self,
        user: bulwark_types::UserId,
        email_key: &str,
        email: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        crate::deletion::erase_member(&mut self.tx, self.org, user, email_key, email).await
    }

    async fn delete_closed_invitations(
        &mut self,
        before: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        crate::deletion::delete_closed_invitations(&mut self.tx, self.org, before).await
    }

    async fn create_org_key(
        &mut self,
        id: uuid::Uuid,
        key: &bulwark_crypto::vault::OrgKey,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::deletion::create_org_key(&mut self.tx, self.org, id, key.expose(), now).await
    }

    async fn schedule_deletion(
        &mut self,
        schedule: Option<(time::OffsetDateTime, &str, time::OffsetDateTime)>,
    ) -> Result<bool, StoreError> {
        crate::deletion::schedule(&mut self.tx, self.org, schedule).await
    }

    async fn purge(
        &mut self,
        tombstone_slug: &str,
        now: time::OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        crate::deletion::purge(&mut self.tx, self.org, tombstone_slug, now).await
    }

    async fn lock_deletion(
        &mut self,
    ) -> Result<Option<bulwark_core::model::OrgDeletion>, StoreError> {
        crate::deletion::state_held(&mut self.tx, self.org, crate::dialect::FOR_UPDATE).await
    }

    async fn seal_audit_log(&mut self, size: u64) -> Result<(), StoreError> {
        crate::deletion::seal(&mut self.tx, self.org, size).await
    }

    async fn set_audit_retention(&mut self, days: Option<u32>) -> Result<(), StoreError> {
        crate::audit::set_retention(&mut self.tx, self.org, days).await
    }

    async fn audit_prune(
        &mut self,
        now: time::OffsetDateTime,
    ) -> Result<Option<bulwark_core::model::AuditPruning>, StoreError> {
        crate::batched::prune_audit(&mut self.tx, self.org, now).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
    async fn set_credential_destinations(
        &mut self,
        id: bulwark_types::CredentialId,
        destinations: &[String],
    ) -> Result<bool, StoreError> {
        crate::webhooks::set_destinations(&mut self.tx, self.org, id, destinations).await
    }

    async fn create_sso_connection(
        &mut self,
        c: &bulwark_core::model::SsoConnection,
    ) -> Result<(), StoreError> {
        crate::sso::create_connection(&mut self.tx, self.org, c).await
    }

    async fn update_sso_connection(
        &mut self,
        c: &bulwark_core::model::SsoConnection,
    ) -> Result<bool, StoreError> {
        crate::sso::update_connection(&mut self.tx, self.org, c).await
    }

    async fn delete_sso_connection(
        &mut self,
        id: bulwark_types::ConnectionId,
    ) -> Result<bool, StoreError> {
        crate::sso::delete_connection(&mut self.tx, self.org, id).await
    }

    async fn clear_sso_identities(
        &mut self,
        id: bulwark_types::ConnectionId,
    ) -> Result<u64, StoreError> {
        crate::sso::clear_identities(&mut self.tx, self.org, id).await
    }

    async fn create_sso_domain(
        &mut self,
        d: &bulwark_core::model::SsoDomain,
    ) -> Result<(), StoreError> {
        crate::sso::create_domain(&mut self.tx, self.org, d).await
    }

    async fn verify_sso_domain(
        &mut self,
        domain: &str,
        at_ms: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        crate::sso::verify_domain(&mut self.tx, self.org, domain, at_ms, by).await
    }

    async fn delete_sso_domain(&mut self, domain: &str) -> Result<bool, StoreError> {
        crate::sso::delete_domain(&mut self.tx, self.org, domain).await
    }

    async fn set_sso_settings(
        &mut self,
        s: &bulwark_core::model::SsoSettings,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        crate::sso::set_settings(&mut self.tx, self.org, s, at_ms).await
    }

    async fn bind_sso_identity(
        &mut self,
        connection: bulwark_types::ConnectionId,
        subject: &str,
        user: UserId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        crate::sso::bind_identity(&mut self.tx, self.org, connection, subject, user, at_ms).await
    }

    async fn put_scim_user(
        &mut self,
        user: &bulwark_core::model::ScimUser,
        insert: bool,
    ) -> Result<(), StoreError> {
        crate::scim::put_user(&mut self.tx, self.org, user, insert).await
    }

    async fn lock_scim_user(
        &mut self,
        user: UserId,
    ) -> Result<Option<bulwark_core::model::ScimUser>, StoreError> {
        crate::scim::lock_user(&mut self.tx, self.org, user).await
    }

    async fn delete_scim_user(&mut self, user: UserId) -> Result<bool, StoreError> {
        crate::scim::delete_user(&mut self.tx, self.org, user).await
    }

    async fn put_scim_group(
        &mut self,
        group: &bulwark_core::model::ScimGroup,
        insert: bool,
    ) -> Result<(), StoreError> {
        crate::scim::put_group(&mut self.tx, self.org, group, insert).await
    }

    async fn lock_scim_group(
        &mut self,
        team: bulwark_types::TeamId,
    ) -> Result<Option<bulwark_core::model::ScimGroup>, StoreError> {
        crate::scim::group_one(&mut self.tx, self.org, team, true).await
    }

    async fn set_scim_group_member(
        &mut self,
        team: bulwark_types::TeamId,
        user: UserId,
        present: bool,
    ) -> Result<bool, StoreError> {
        crate::scim::set_group_member(&mut self.tx, self.org, team, user, present).await
    }

    async fn rename_team(
        &mut self,
        team: bulwark_types::TeamId,
        name: &str,
    ) -> Result<bool, StoreError> {
        crate::scim::rename_team(&mut self.tx, self.org, team, name).await
    }

    async fn revoke_user_api_keys(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<Vec<bulwark_types::ApiKeyId>, StoreError> {
        crate::scim::revoke_user_keys(&mut self.tx, self.org, user, at).await
    }

    async fn revoke_user_invitations(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        crate::scim::revoke_user_invitations(&mut self.tx, self.org, user, at).await
    }

    async fn create_webhook_endpoint(
        &mut self,
        e: &bulwark_core::model::WebhookEndpoint,
    ) -> Result<(), StoreError> {
        crate::webhooks::create_endpoint(&mut self.tx, self.org, e).await
    }

    async fn update_webhook_endpoint(
        &mut self,
        e: &bulwark_core::model::WebhookEndpoint,
    ) -> Result<bool, StoreError> {
        crate::webhooks::update_endpoint(&mut self.tx, self.org, e).await
    }

    async fn delete_webhook_endpoint(
        &mut self,
        id: bulwark_types::EndpointId,
    ) -> Result<bool, StoreError> {
        crate::webhooks::delete_endpoint(&mut self.tx, self.org, id).await
    }

    async fn webhook_requeue(
        &mut self,
        message: bulwark_types::MessageId,
        endpoint: bulwark_types::EndpointId,
        due_ms: i64,
        at: OffsetDateTime,
    ) -> Result<bulwark_types::DeliveryId, StoreError> {
        crate::webhooks::requeue(&mut self.tx, self.org, message, endpoint, due_ms, at).await
    }

    async fn webhook_due_endpoints(
        &mut self,
        now_ms: i64,
    ) -> Result<Vec<(bulwark_types::EndpointId, u32)>, StoreError> {
        crate::webhooks::due_endpoints(&mut self.tx, self.org, now_ms).await
    }

    async fn webhook_in_flight(
        &mut self,
        endpoint: bulwark_types::EndpointId,
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        crate::webhooks::in_flight(&mut self.tx, self.org, endpoint, now_ms).await
    }

    async fn webhook_claim(
        &mut self,
        endpoint: bulwark_types::EndpointId,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<bulwark_core::model::ClaimedDelivery>, StoreError> {
        crate::webhooks::claim(
            &mut self.tx,
            self.org,
            endpoint,
            now_ms,
            lease_until_ms,
            limit,
        )
        .await
    }

    async fn webhook_finish(
        &mut self,
        results: &[bulwark_core::model::AttemptResult],
    ) -> Result<(), StoreError> {
        crate::batched::finish_attempts(&mut self.tx, self.org, results).await
    }
    async fn lock_webhook_endpoint(
        &mut self,
        id: bulwark_types::EndpointId,
    ) -> Result<Option<bulwark_core::model::WebhookEndpoint>, StoreError> {
        crate::webhooks::lock_endpoint(&mut self.tx, self.org, id).await
    }

    async fn webhook_endpoint_health(
        &mut self,
        id: bulwark_types::EndpointId,
        reset: bool,
        failures: u32,
        first_failure: Option<OffsetDateTime>,
    ) -> Result<Option<(bool, u32, Option<OffsetDateTime>)>, StoreError> {
        crate::webhooks::health(&mut self.tx, self.org, id, reset, failures, first_failure).await
    }

    async fn disable_webhook_endpoint(
        &mut self,
        id: bulwark_types::EndpointId,
        reason: &str,
    ) -> Result<bool, StoreError> {
        crate::webhooks::disable(&mut self.tx, self.org, id, reason).await
    }

    async fn webhook_prune(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        crate::webhooks::prune(&mut self.tx, self.org, before_ms).await
    }
}

#[async_trait]
impl AuditWrite for StoreOrgTx {
    async fn audit_head(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        crate::audit::head(&mut self.tx, &self.org.to_string()).await
    }

    async fn audit_insert(&mut self, rows: &[AuditRow], head: &[u8]) -> Result<(), StoreError> {
        crate::audit::insert(
            &mut self.tx,
            &self.org.to_string(),
            Some(self.org),
            rows,
            head,
        )
        .await
    }

    async fn audit_checkpoint_insert(
        &mut self,
        size: u64,
        note: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::audit::checkpoint_insert(
            &mut self.tx,
            &self.org.to_string(),
            Some(self.org),
            size,
            note,
            at,
        )
        .await
    }
    async fn webhook_subscribers(
        &mut self,
    ) -> Result<Vec<(bulwark_types::EndpointId, Vec<String>)>, StoreError> {
        crate::webhooks::subscribers(&mut self.tx, self.org).await
    }

    async fn webhook_enqueue(
        &mut self,
        message: &bulwark_core::model::WebhookMessage,
        endpoints: &[bulwark_types::EndpointId],
        due_ms: i64,
    ) -> Result<(), StoreError> {
        crate::webhooks::enqueue(&mut self.tx, self.org, message, endpoints, due_ms).await
    }

    async fn audit_erase_body(&mut self, seq: u64, body: &[u8]) -> Result<bool, StoreError> {
        crate::batched::erase_audit_body(&mut self.tx, &self.org.to_string(), seq, body).await
    }
}

#[async_trait]
impl AuditRead for StoreOrgTx {
    async fn audit_events(
        &mut self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        crate::audit::events(&mut self.tx, &self.org.to_string(), from_seq, limit).await
    }

    async fn audit_leaves(
        &mut self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        crate::audit::leaves(&mut self.tx, &self.org.to_string(), from_seq, limit).await
    }

    async fn audit_latest_checkpoint(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        crate::audit::latest_checkpoint(&mut self.tx, &self.org.to_string()).await
    }
}
