//! The tables of `docs/postgres.md` that describe the schema — the application role's privileges,
//! row-level security per table, and the functions in schema `public` — are rendered here from
//! the catalog of a freshly migrated database, never written by hand.
//!
//! Each table sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in the page. When the
//! page differs from the catalog the test fails with a line diff (`-` the page, `+` the catalog).
//! To rewrite the page from the catalog after changing a migration or the grants, run
//! `BULWARK_TEST_BLESS=1 scripts/test -p bulwark-store-postgres -E 'test(postgres_md)'` and
//! review the diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use bulwark_store_postgres::{GLOBAL_TABLES, migrate};
use bulwark_testkit::pg;
use sqlx::{Connection as _, PgConnection};

/// The page, from this crate's directory.
fn page() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/postgres.md")
}

/// One table's row-level security state and policies, as the catalog has them.
struct Rls {
    enabled: bool,
    forced: bool,
    /// `(name, command, roles, permissive)`.
    policies: Vec<(String, String, Vec<String>, bool)>,
}

/// Reads what the generated tables show, as `role` (the application role) sees it, with `owner`
/// the role that ran the migrations.
struct Catalog {
    owner: String,
    schema: Vec<String>,
    /// Table or sequence (`kind`) → privileges of the application role, in a fixed order.
    privileges: BTreeMap<String, (&'static str, Vec<String>)>,
    rls: BTreeMap<String, Rls>,
    /// Signature → (security definer, result, app role may execute, PUBLIC may execute).
    functions: BTreeMap<String, (bool, String, bool, bool)>,
}

const TABLE_PRIVILEGES: &str =
    "ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']";
const SEQUENCE_PRIVILEGES: &str = "ARRAY['USAGE', 'SELECT', 'UPDATE']";

async fn privileges(
    conn: &mut PgConnection,
    role: &str,
    kinds: &str,
    check: &str,
    list: &str,
) -> Vec<(String, Vec<String>)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.relname::text, \
                COALESCE(array_agg(p.name ORDER BY p.ord) FILTER (WHERE {check}($1::name, c.oid, p.name)), '{{}}') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN unnest({list}) WITH ORDINALITY AS p(name, ord) \
         WHERE n.nspname = 'public' AND c.relkind IN ({kinds}) \
         GROUP BY c.relname"
    )))
    .bind(role)
    .fetch_all(conn)
    .await
    .unwrap()
}

impl Catalog {
    async fn read(conn: &mut PgConnection, role: &str) -> Self {
        let owner: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let schema: Vec<String> = sqlx::query_scalar(
            "SELECT COALESCE(array_agg(p ORDER BY o) FILTER (WHERE has_schema_privilege($1::name, 'public', p)), '{}') \
             FROM unnest(ARRAY['USAGE', 'CREATE']) WITH ORDINALITY AS u(p, o)",
        )
        .bind(role)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let mut all = BTreeMap::new();
        let tables = privileges(
            conn,
            role,
            "'r', 'p', 'v', 'm', 'f'",
            "has_table_privilege",
            TABLE_PRIVILEGES,
        )
        .await;
        all.extend(tables.into_iter().map(|(t, p)| (t, ("table", p))));
        let sequences = privileges(
            conn,
            role,
            "'S'",
            "has_sequence_privilege",
            SEQUENCE_PRIVILEGES,
        )
        .await;
        all.extend(sequences.into_iter().map(|(t, p)| (t, ("sequence", p))));

        let states: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let mut rls: BTreeMap<String, Rls> = states
            .into_iter()
            .map(|(t, enabled, forced)| {
                let policies = Vec::new();
                (
                    t,
                    Rls {
                        enabled,
                        forced,
                        policies,
                    },
                )
            })
            .collect();
        let policies: Vec<(String, String, String, Vec<String>, bool)> = sqlx::query_as(
            "SELECT tablename::text, policyname::text, cmd, roles::text[], permissive = 'PERMISSIVE' \
             FROM pg_policies WHERE schemaname = 'public' ORDER BY policyname",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (table, name, cmd, roles, permissive) in policies {
            if let Some(r) = rls.get_mut(&table) {
                r.policies.push((name, cmd, roles, permissive));
            }
        }

        let functions: Vec<(String, bool, String, bool, bool)> = sqlx::query_as(
            "SELECT p.oid::regprocedure::text, p.prosecdef, pg_get_function_result(p.oid), \
                    has_function_privilege($1::name, p.oid, 'EXECUTE'), \
                    has_function_privilege('public'::name, p.oid, 'EXECUTE') \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'public'",
        )
        .bind(role)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        Self {
            owner,
            schema,
            privileges: all,
            rls,
            functions: functions
                .into_iter()
                .map(|(f, definer, result, app, public)| (f, (definer, result, app, public)))
                .collect(),
        }
    }

    /// The application role's privileges on the schema, each table and each sequence.
    fn grants(&self) -> String {
        let mut out = String::from("| object | the application role may |\n|---|---|\n");
        row(&mut out, "schema `public`", &privilege_list(&self.schema));
        for (name, (kind, privileges)) in &self.privileges {
            row(
                &mut out,
                &format!("{kind} `{name}`"),
                &privilege_list(privileges),
            );
        }
        out
    }

    /// Every table except the global ones: its row-level security and policies.
    fn tenant_tables(&self) -> String {
        let mut out = String::from("| table | row-level security | policies |\n|---|---|---|\n");
        for (table, rls) in self.rls.iter().filter(|(t, _)| global_reason(t).is_none()) {
            let policies = if rls.policies.is_empty() {
                "none".to_owned()
            } else {
                rls.policies
                    .iter()
                    .map(|p| self.policy(p))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let state = rls_state(rls);
            writeln!(out, "| `{table}` | {state} | {policies} |").unwrap();
        }
        out
    }

    /// The tables listed in `GLOBAL_TABLES`: their row-level security (none) and why.
    fn global_tables(&self) -> String {
        let mut out = String::from("| table | row-level security | why |\n|---|---|---|\n");
        for (table, rls) in &self.rls {
            if let Some(why) = global_reason(table) {
                let mut state = rls_state(rls);
                if !rls.policies.is_empty() {
                    state = format!("{state}, {} policies", rls.policies.len());
                }
                writeln!(out, "| `{table}` | {state} | {why} |").unwrap();
            }
        }
        out
    }

    /// Every function in schema `public`: whose rights it runs with and who may call it.
    fn functions(&self) -> String {
        let mut out = String::from(
            "| function | runs as | returns | may be called by |\n|---|---|---|---|\n",
        );
        for (function, (definer, result, app, public)) in &self.functions {
            let runs_as = if *definer {
                "the owner (`SECURITY DEFINER`)"
            } else {
                "the caller"
            };
            let callers = if result == "trigger" {
                "triggers only"
            } else if *public {
                "every role"
            } else if *app {
                "the application role"
            } else {
                "the owner only"
            };
            writeln!(out, "| `{function}` | {runs_as} | `{result}` | {callers} |").unwrap();
        }
        out
    }

    fn policy(
        &self,
        (name, cmd, roles, permissive): &(String, String, Vec<String>, bool),
    ) -> String {
        let command = if cmd == "ALL" {
            "all commands".to_owned()
        } else {
            format!("`{cmd}` only")
        };
        let who = match roles.as_slice() {
            [r] if r == "public" => "every role".to_owned(),
            [r] if *r == self.owner => "the owner only".to_owned(),
            other => other
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let kind = if *permissive { "" } else { ", restrictive" };
        format!("`{name}` ({command}, {who}{kind})")
    }
}

fn global_reason(table: &str) -> Option<&'static str> {
    GLOBAL_TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, why)| *why)
}

fn rls_state(rls: &Rls) -> String {
    match (rls.enabled, rls.forced) {
        (true, true) => "enabled, forced".to_owned(),
        (true, false) => "enabled, **not forced**".to_owned(),
        (false, true) => "**not enabled** (forced)".to_owned(),
        (false, false) => "none".to_owned(),
    }
}

fn privilege_list(privileges: &[String]) -> String {
    if privileges.is_empty() {
        return "nothing".to_owned();
    }
    privileges
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(out: &mut String, object: &str, privileges: &str) {
    writeln!(out, "| {object} | {privileges} |").unwrap();
}

/// The text between `<!-- NAME:begin -->\n` and `<!-- NAME:end -->`, with what is around it.
fn split_block<'a>(doc: &'a str, name: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let start = doc.find(&begin)? + begin.len();
    let len = doc.get(start..)?.find(&end)?;
    Some((
        doc.get(..start)?,
        doc.get(start..start + len)?,
        doc.get(start + len..)?,
    ))
}

/// Lines only in `page` (`-`) and only in `catalog` (`+`), in order (a longest-common-subsequence
/// diff; the blocks are a few dozen lines).
#[expect(clippy::indexing_slicing, reason = "indices bounded by the loops")]
fn line_diff(page: &str, catalog: &str) -> String {
    let a: Vec<&str> = page.lines().collect();
    let b: Vec<&str> = catalog.lines().collect();
    let mut lcs = vec![vec![0_usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            writeln!(out, "+ {}", b[j]).unwrap();
            j += 1;
        } else {
            writeln!(out, "- {}", a[i]).unwrap();
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn postgres_md_tables_match_the_catalog_after_migrate() {
    let db = pg::fresh_database().await;
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    let mut conn = PgConnection::connect(&db.owner_url).await.unwrap();
    let catalog = Catalog::read(&mut conn, &db.app_role).await;
    // The list in the code names no table the schema lacks.
    for (table, _) in GLOBAL_TABLES {
        assert!(
            catalog.rls.contains_key(*table),
            "GLOBAL_TABLES names `{table}`, which no migration creates"
        );
    }
    let blocks = [
        ("grants", catalog.grants()),
        ("tenant-tables", catalog.tenant_tables()),
        ("global-tables", catalog.global_tables()),
        ("functions", catalog.functions()),
    ];

    let path = page();
    let mut doc = std::fs::read_to_string(&path).unwrap();
    if std::env::var_os("BULWARK_TEST_BLESS").is_some() {
        for (name, rendered) in &blocks {
            let (head, _, tail) = split_block(&doc, name).unwrap_or_else(|| {
                panic!(
                    "docs/postgres.md has no `<!-- {name}:begin -->` … `<!-- {name}:end -->` block"
                )
            });
            doc = format!("{head}{rendered}{tail}");
        }
        std::fs::write(&path, doc).unwrap();
        return;
    }
    let mut stale = String::new();
    for (name, rendered) in &blocks {
        match split_block(&doc, name) {
            None => writeln!(
                stale,
                "no `<!-- {name}:begin -->` … `<!-- {name}:end -->` block"
            )
            .unwrap(),
            Some((_, written, _)) if written != rendered => {
                writeln!(stale, "block `{name}` (- page, + catalog):").unwrap();
                stale.push_str(&line_diff(written, rendered));
            }
            Some(_) => {}
        }
    }
    assert!(
        stale.is_empty(),
        "docs/postgres.md differs from the catalog of a migrated database; rewrite it with \
         `BULWARK_TEST_BLESS=1 scripts/test -p bulwark-store-postgres -E 'test(postgres_md)'` \
         and review the change:\n{stale}"
    );
}

/// The ```sql blocks of the page's section `heading`, in order.
fn sql_blocks(doc: &str, heading: &str) -> Vec<String> {
    let section = doc
        .split_once(heading)
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or_default())
        .unwrap_or_default();
    section
        .split("```sql\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(sql, _)| sql.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_sql_to_check_a_deployment_by_hand_runs() {
    let db = pg::fresh_database().await;
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    let store = bulwark_store_postgres::PgStore::connect(&db.app_url, 2)
        .await
        .unwrap();
    let (org, _) = bulwark_store_conformance::extra_org(&store, "alpha", "owner@alpha.test").await;
    let doc = std::fs::read_to_string(page()).unwrap();
    let blocks = sql_blocks(&doc, "\n## Checking a deployment by hand\n");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let mut app = PgConnection::connect(&db.app_url).await.unwrap();
    for sql in blocks {
        let sql = sql.replace("<org uuid>", &org.id.as_uuid().to_string());
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut app)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e}"));
    }
}

#[test]
fn the_line_diff_shows_removed_and_added_lines() {
    assert_eq!(line_diff("a\nb\nc\n", "a\nc\nd\n"), "- b\n+ d\n");
    assert_eq!(line_diff("same\n", "same\n"), "");
}
