//! The schema: versioned migrations embedded in the binary (refinery, from `migrations/`),
//! applied at start under a PostgreSQL advisory lock so that servers starting together take
//! turns, and refused when the database is newer than this binary.
//!
//! Each release's migrations must leave the schema usable by the release before it (add tables
//! and nullable columns; never drop or rename in the same release), because servers sharing a
//! database are upgraded one at a time.

use std::ops::DerefMut;

use super::{Database, PgError};

refinery::embed_migrations!("migrations");

/// Where refinery records the applied versions.
const HISTORY_TABLE: &str = "jes_schema_history";

/// The advisory lock all jes servers take while migrating ("jes" and 1).
const MIGRATION_LOCK: i64 = 0x6a65_7300_0000_0001;

/// The newest schema version this binary knows.
pub fn known_version() -> i64 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The database's schema version (0: none yet).
pub async fn current_version(db: &Database) -> Result<i64, PgError> {
    let client = db.pooled().await.map_err(|e| connect_err(db, e))?;
    version_of(db, &client).await
}

async fn version_of(db: &Database, client: &tokio_postgres::Client) -> Result<i64, PgError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("public.{HISTORY_TABLE}")],
        )
        .await
        .map_err(|e| connect_err(db, db.err(e)))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0)::bigint FROM {HISTORY_TABLE}"),
            &[],
        )
        .await
        .map_err(|e| connect_err(db, db.err(e)))?;
    Ok(row.get(0))
}

fn connect_err(db: &Database, e: std::io::Error) -> PgError {
    PgError::Connect {
        url: db.location.clone(),
        why: e.to_string(),
    }
}

/// Brings the schema to this binary's version; returns the version. Refuses (naming both
/// versions) a schema newer than this binary knows. Servers call it through
/// `Database::ensure_schema`, which remembers that it was done.
pub(super) async fn migrate(db: &Database) -> Result<i64, PgError> {
    let mut object = db.pooled().await.map_err(|e| connect_err(db, e))?;
    let client: &mut tokio_postgres::Client = object.deref_mut().deref_mut();
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| connect_err(db, db.err(e)))?;
    let result = migrate_locked(db, client).await;
    // The lock is the session's: released here, or by the server when the connection ends.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    if unlocked.is_err() {
        // A connection that cannot unlock is not returned to the pool.
        let _ = deadpool_postgres::Object::take(object);
    }
    result
}

async fn migrate_locked(
    db: &Database,
    client: &mut tokio_postgres::Client,
) -> Result<i64, PgError> {
    let known = known_version();
    let found = version_of(db, client).await?;
    if found > known {
        return Err(PgError::NewerSchema {
            url: db.location.clone(),
            found,
            known,
        });
    }
    migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(client)
        .await
        .map_err(|e| PgError::Migrate {
            url: db.location.clone(),
            why: e.to_string(),
        })?;
    version_of(db, client).await
}

/// For `jes check`: connects, and returns the database's schema version and this binary's.
pub async fn status(settings: &super::Settings) -> Result<(i64, i64), PgError> {
    let db = Database::open(settings)?;
    Ok((current_version(&db).await?, known_version()))
}
