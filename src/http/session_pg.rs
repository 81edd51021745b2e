//! Console sessions in the database (`store.url`): every server behind a load balancer knows
//! every login, so switching servers does not log the administrator out, and a logout on one
//! ends the session on all.
//!
//! The table keeps a SHA-256 of each token, never the token itself: a copy of the database (a
//! backup, a replica) holds nothing that would let someone use a live session. Expiry is the
//! database's clock, the one clock the servers share. Expired rows are removed when a session
//! is made, a few at a time, so the table stays the size of the logins of the last 8 hours.

use std::io;

use super::session::{random_token, ConsoleSessions, StoredSession, SESSION_TTL};
use crate::pg::Database;

const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

pub struct PgConsoleSessions {
    db: Database,
}

impl PgConsoleSessions {
    pub fn new(db: Database) -> PgConsoleSessions {
        PgConsoleSessions { db }
    }
}

fn hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

#[async_trait::async_trait]
impl ConsoleSessions for PgConsoleSessions {
    async fn create(&self, user: &str) -> io::Result<(String, String)> {
        let (token, csrf) = (random_token(), random_token());
        let client = self.db.client().await?;
        let ttl_ms = SESSION_TTL.as_millis() as i64;
        client
            .execute(
                &format!(
                    "DELETE FROM jes_console_sessions WHERE token_hash IN \
                     (SELECT token_hash FROM jes_console_sessions WHERE expires_ms < {DB_NOW} LIMIT 100)"
                ),
                &[],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        client
            .execute(
                &format!(
                    "INSERT INTO jes_console_sessions (token_hash, login, csrf, expires_ms) \
                     VALUES ($1, $2, $3, {DB_NOW} + $4)"
                ),
                &[&hash(&token), &user, &csrf, &ttl_ms],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        Ok((token, csrf))
    }

    async fn get(&self, token: &str) -> io::Result<Option<StoredSession>> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT login, csrf FROM jes_console_sessions \
                     WHERE token_hash = $1 AND expires_ms > {DB_NOW}"
                ),
                &[&hash(token)],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(row.map(|r| StoredSession {
            user: r.get(0),
            csrf: r.get(1),
        }))
    }

    async fn remove(&self, token: &str) -> io::Result<()> {
        let client = self.db.client().await?;
        client
            .execute(
                "DELETE FROM jes_console_sessions WHERE token_hash = $1",
                &[&hash(token)],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(())
    }
}
