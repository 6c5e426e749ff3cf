//! The mail queue (`mail_jobs`: requests for a token email, coalesced per purpose and address)
//! and the per-account mail limits (`mail_limits`). The statements are written once, in
//! mail_statements.rs (also compiled by bulwark-store-postgres), here without row locks: SQLite
//! serialises its writers.

use bulwark_core::StoreError;
use bulwark_core::model::{MailJob, MailLimit, TokenPurpose};
use bulwark_types::UserId;
use sqlx::Row as _;
use uuid::Uuid;

use crate::{map_err, parse};

type Conn = sqlx::SqliteConnection;
type Pool = sqlx::SqlitePool;
type DbRow = sqlx::sqlite::SqliteRow;

const FOR_UPDATE_SKIP_LOCKED: &str = "";
const FOR_UPDATE: &str = "";

include!("mail_statements.rs");
