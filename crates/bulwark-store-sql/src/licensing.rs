//! The licensing tables: the append-only activation history (the anti-reuse ledger) and the
//! one-row license clock. The clock row is the lock that serialises activations and ticks
//! across replicas (a row lock on PostgreSQL, the write lock on SQLite).

use bulwark_core::StoreError;
use bulwark_core::model::{LicenseActivation, LicenseClock, LicenseUsage};
use sqlx::Row as _;

use crate::dialect::{Conn, FOR_UPDATE, LICENSE_USAGE};
use crate::map_err;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("license {what}"))
}

pub(crate) async fn activations(conn: &mut Conn) -> Result<Vec<LicenseActivation>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, license_id, serial, issued_at_ms, license_sha256, license_file, \
         activated_at_ms, receipt, receipt_signature FROM license_activations ORDER BY seq",
    )
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|row| {
            Ok(LicenseActivation {
                // Out-of-range values can only be in rows this deployment did not write
                // (their receipts fail); they are kept, clamped, to be ignored.
                seq: u64::try_from(row.try_get::<i64, _>("seq").map_err(map_err)?).unwrap_or(0),
                license_id: row.try_get("license_id").map_err(map_err)?,
                serial: u32::try_from(row.try_get::<i64, _>("serial").map_err(map_err)?)
                    .unwrap_or(u32::MAX),
                issued_at_ms: row.try_get("issued_at_ms").map_err(map_err)?,
                license_sha256: row.try_get("license_sha256").map_err(map_err)?,
                license_file: row.try_get("license_file").map_err(map_err)?,
                activated_at_ms: row.try_get("activated_at_ms").map_err(map_err)?,
                receipt: row.try_get("receipt").map_err(map_err)?,
                receipt_signature: row.try_get("receipt_signature").map_err(map_err)?,
            })
        })
        .collect()
}

pub(crate) async fn insert(conn: &mut Conn, a: &LicenseActivation) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO license_activations (seq, license_id, serial, issued_at_ms, license_sha256, \
         license_file, activated_at_ms, receipt, receipt_signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(i64::try_from(a.seq).map_err(|_| corrupt("activation seq"))?)
    .bind(&a.license_id)
    .bind(i64::from(a.serial))
    .bind(a.issued_at_ms)
    .bind(&a.license_sha256)
    .bind(&a.license_file)
    .bind(a.activated_at_ms)
    .bind(&a.receipt)
    .bind(&a.receipt_signature)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn lock_clock(conn: &mut Conn) -> Result<LicenseClock, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT last_seen_ms, warned_at_ms, read_only_noted, reset_after_seq, \
         reset_at_ms, reset_signature FROM license_clock \
         WHERE id = 1{FOR_UPDATE}"
    )))
    .fetch_optional(conn)
    .await
    .map_err(map_err)?
    .ok_or_else(|| corrupt("clock row is missing"))?;
    Ok(LicenseClock {
        last_seen_ms: row.try_get("last_seen_ms").map_err(map_err)?,
        warned_at_ms: row.try_get("warned_at_ms").map_err(map_err)?,
        read_only_noted: row.try_get("read_only_noted").map_err(map_err)?,
        reset_after_seq: u64::try_from(row.try_get::<i64, _>("reset_after_seq").map_err(map_err)?)
            .unwrap_or(0),
        reset_at_ms: row.try_get("reset_at_ms").map_err(map_err)?,
        reset_signature: row.try_get("reset_signature").map_err(map_err)?,
    })
}

pub(crate) async fn set_clock(conn: &mut Conn, c: &LicenseClock) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE license_clock SET last_seen_ms = $1, warned_at_ms = $2, read_only_noted = $3, \
         reset_after_seq = $4, reset_at_ms = $5, reset_signature = $6 WHERE id = 1",
    )
    .bind(c.last_seen_ms)
    .bind(c.warned_at_ms)
    .bind(c.read_only_noted)
    .bind(i64::try_from(c.reset_after_seq).unwrap_or(i64::MAX))
    .bind(c.reset_at_ms)
    .bind(c.reset_signature.as_deref())
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn usage(conn: &mut Conn) -> Result<LicenseUsage, StoreError> {
    let (orgs, seats, operator_org): (i64, i64, Option<uuid::Uuid>) = sqlx::query_as(LICENSE_USAGE)
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    Ok(LicenseUsage {
        orgs: u64::try_from(orgs).map_err(|_| corrupt("org count"))?,
        seats: u64::try_from(seats).map_err(|_| corrupt("seat count"))?,
        operator_org: operator_org.map(bulwark_types::OrgId::from_uuid),
    })
}

pub(crate) async fn lock_usage(conn: &mut Conn) -> Result<LicenseUsage, StoreError> {
    lock_clock(&mut *conn).await?;
    usage(conn).await
}
