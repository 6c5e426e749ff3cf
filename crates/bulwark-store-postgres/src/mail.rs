//! The mail queue (`mail_jobs`: requests for a token email, coalesced per purpose and address)
//! and the per-account mail limits (`mail_limits`). The statements are written once, in
//! bulwark-store-sqlite/src/mail_statements.rs, and compiled here with PostgreSQL's row locks: a
//! claimer skips the jobs another replica is claiming, and a worker holds the limit it changes.

use bulwark_core::StoreError;
use bulwark_core::model::{MailJob, MailLimit, TokenPurpose};
use bulwark_types::UserId;
use sqlx::Row as _;
use uuid::Uuid;

use crate::{map_err, parse};

type Conn = sqlx::PgConnection;
type Pool = sqlx::PgPool;
type DbRow = sqlx::postgres::PgRow;

const FOR_UPDATE_SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
const FOR_UPDATE: &str = " FOR UPDATE";

include!("../../bulwark-store-sqlite/src/mail_statements.rs");
