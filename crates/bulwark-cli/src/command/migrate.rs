//! `bulwark migrate`: PostgreSQL schema as the owner role, grants for the application role.

use crate::Exit;

/// Migrates and grants; prints what it did.
pub async fn run(owner_url: &str, app_role: &str) -> Exit {
    match bulwark_store_postgres::migrate(owner_url, app_role).await {
        Ok(()) => {
            println!("migrations applied; role `{app_role}` granted application access");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {}", bulwark_server::error::error_chain(&e));
            Exit::Failure
        }
    }
}
