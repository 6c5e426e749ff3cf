//! Throwaway PostgreSQL databases for tests.
//!
//! `scripts/test` starts a private PostgreSQL cluster, creates the roles `bulwark_owner` and
//! `bulwark_app`, and exports `BULWARK_TEST_PG_URL` (a superuser URL). Each test gets its own
//! uuid-named database owned by `bulwark_owner`; databases are left behind and vanish with the
//! cluster when the script ends.

use sqlx::{Connection as _, PgConnection};

/// The environment variable `scripts/test` sets to the cluster's superuser URL.
pub const PG_URL_ENV: &str = "BULWARK_TEST_PG_URL";
/// The role that owns the schema and runs migrations.
pub const OWNER_ROLE: &str = "bulwark_owner";
/// The role `serve` runs as.
pub const APP_ROLE: &str = "bulwark_app";

/// One fresh, empty (not migrated) database and the URLs to reach it as each role.
#[derive(Debug, Clone)]
pub struct PgTestDb {
    /// The database name (`bwtest_<uuid>`).
    pub name: String,
    /// The cluster superuser, connected to this database.
    pub superuser_url: String,
    /// `bulwark_owner`, which owns the database.
    pub owner_url: String,
    /// `bulwark_app`, the application role.
    pub app_url: String,
    /// The application role's name.
    pub app_role: String,
}

/// The superuser URL of the test cluster.
///
/// # Panics
/// When `BULWARK_TEST_PG_URL` is unset: the tests must run through `scripts/test`.
#[must_use]
pub fn superuser_base_url() -> String {
    std::env::var(PG_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{PG_URL_ENV} is not set: PostgreSQL tests need the throwaway cluster that `scripts/test` \
             starts; run the tests with `scripts/test` (e.g. `scripts/test -p bulwark-store-postgres`)"
        )
    })
}

/// Creates a fresh uuid-named database owned by `bulwark_owner`.
///
/// # Panics
/// When `BULWARK_TEST_PG_URL` is unset or the cluster refuses.
pub async fn fresh_database() -> PgTestDb {
    let base = superuser_base_url();
    let name = format!("bwtest_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&base)
        .await
        .expect("connect to the test cluster as superuser");
    // The name is `bwtest_` and 32 hex digits; the owner is a constant.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} OWNER {OWNER_ROLE}"
    )))
    .execute(&mut admin)
    .await
    .expect("create a test database");
    admin.close().await.unwrap();
    PgTestDb {
        superuser_url: with_database(&base, &name),
        owner_url: url_for(&base, OWNER_ROLE, OWNER_ROLE, &name),
        app_url: url_for(&base, APP_ROLE, APP_ROLE, &name),
        app_role: APP_ROLE.to_owned(),
        name,
    }
}

/// Creates a login role with `attributes` (e.g. `BYPASSRLS`) and a unique name starting with
/// `prefix`, and returns its name and a URL for it on `db`. The password is the role's name.
///
/// # Panics
/// When the cluster refuses.
pub async fn create_role(db: &PgTestDb, prefix: &str, attributes: &str) -> (String, String) {
    let role = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    superuser_exec(
        db,
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{role}' {attributes}"),
    )
    .await;
    let url = url_for(&db.superuser_url, &role, &role, &db.name);
    (role, url)
}

/// Runs one statement as the cluster superuser on `db`. Test code only: `sql` is trusted.
///
/// # Panics
/// When the statement fails.
pub async fn superuser_exec(db: &PgTestDb, sql: &str) {
    let mut conn = PgConnection::connect(&db.superuser_url)
        .await
        .expect("connect as superuser");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("superuser statement failed: {e}"));
    conn.close().await.expect("close the superuser connection");
}

/// `base` with its user, password and database replaced (host, port and query kept).
///
/// # Panics
/// When `base` is not a `postgres://` or `postgresql://` URL.
#[must_use]
pub fn url_for(base: &str, user: &str, password: &str, db: &str) -> String {
    let parts = split(base);
    format!(
        "{}://{}:{}@{}/{}{}",
        parts.scheme,
        encode(user),
        encode(password),
        parts.host,
        encode(db),
        parts.query
    )
}

/// `base` with only its database replaced.
///
/// # Panics
/// When `base` is not a `postgres://` or `postgresql://` URL.
#[must_use]
pub fn with_database(base: &str, db: &str) -> String {
    let parts = split(base);
    let auth = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    format!(
        "{}://{auth}{}/{}{}",
        parts.scheme,
        parts.host,
        encode(db),
        parts.query
    )
}

struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    query: &'a str,
}

fn split(base: &str) -> UrlParts<'_> {
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    assert!(
        matches!(scheme, "postgres" | "postgresql"),
        "a postgres:// URL, got scheme `{scheme}`"
    );
    let (rest, query) = match rest.find('?') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    UrlParts {
        scheme,
        userinfo,
        host,
        query,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_swap_user_password_and_database() {
        let base = "postgres://postgres@127.0.0.1:5999/postgres?sslmode=disable";
        assert_eq!(
            url_for(base, "bulwark_app", "p@ss word", "db1"),
            "postgres://bulwark_app:p%40ss%20word@127.0.0.1:5999/db1?sslmode=disable"
        );
        assert_eq!(
            with_database(base, "db2"),
            "postgres://postgres@127.0.0.1:5999/db2?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h:1", "d"), "postgresql://h:1/d");
    }
}
