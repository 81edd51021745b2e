//! The servers' table in PostgreSQL (`jes_nodes`, schema version 7).
//!
//! One statement per beat: an upsert whose `old` CTE reads the row as it was before, so the
//! check for a second process under the same name costs no extra round trip. Rows not seen for
//! `FORGET_AFTER` go with the beat too.

use std::io;
use std::time::Duration;

use super::{state_of, Beat, Member, Members, Sessions, Totals, FORGET_AFTER, LOST_AFTER};
use crate::pg::Database;

const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

pub struct PgMembers {
    db: Database,
}

impl PgMembers {
    pub fn new(db: Database) -> PgMembers {
        PgMembers { db }
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl Members for PgMembers {
    async fn beat(&self, b: &Beat) -> io::Result<Option<String>> {
        let client = self.db.client().await?;
        let forget_ms = FORGET_AFTER.as_millis() as i64;
        client
            .execute(
                &format!("DELETE FROM jes_nodes WHERE seen_ms < {DB_NOW} - $1"),
                &[&forget_ms],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        let sql = format!(
            "WITH old AS (SELECT instance, seen_ms, stopped_ms FROM jes_nodes WHERE name = $1) \
             INSERT INTO jes_nodes AS n (name, instance, hostname, version, started_ms, seen_ms, \
               stopped_ms, smtp_sessions, pop3_sessions, accepted, delivered, bounced, deferred) \
             VALUES ($1, $2, $3, $4, $5, {DB_NOW}, \
               CASE WHEN $6 THEN {DB_NOW} END, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (name) DO UPDATE SET instance = EXCLUDED.instance, \
               hostname = EXCLUDED.hostname, version = EXCLUDED.version, \
               started_ms = EXCLUDED.started_ms, seen_ms = EXCLUDED.seen_ms, \
               stopped_ms = EXCLUDED.stopped_ms, smtp_sessions = EXCLUDED.smtp_sessions, \
               pop3_sessions = EXCLUDED.pop3_sessions, accepted = EXCLUDED.accepted, \
               delivered = EXCLUDED.delivered, bounced = EXCLUDED.bounced, \
               deferred = EXCLUDED.deferred \
             RETURNING (SELECT instance FROM old), \
               (SELECT {DB_NOW} - seen_ms FROM old), (SELECT stopped_ms IS NOT NULL FROM old)"
        );
        let sessions = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        let row = client
            .query_one(
                &sql,
                &[
                    &b.name,
                    &b.instance,
                    &b.hostname,
                    &b.version,
                    &b.started_ms,
                    &b.stopping,
                    &sessions(b.sessions.smtp),
                    &sessions(b.sessions.pop3),
                    &i64_of(b.totals.accepted),
                    &i64_of(b.totals.delivered),
                    &i64_of(b.totals.bounced),
                    &i64_of(b.totals.deferred),
                ],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        let (instance, age_ms, was_stopped): (Option<String>, Option<i64>, Option<bool>) =
            (row.get(0), row.get(1), row.get(2));
        let recent = age_ms.is_some_and(|a| a <= LOST_AFTER.as_millis() as i64);
        Ok(match instance {
            Some(other) if other != b.instance && recent && was_stopped != Some(true) => {
                Some(other)
            }
            _ => None,
        })
    }

    async fn list(&self) -> io::Result<Vec<Member>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT name, hostname, version, started_ms, {DB_NOW} - seen_ms, \
                       stopped_ms IS NOT NULL, smtp_sessions, pop3_sessions, \
                       accepted, delivered, bounced, deferred \
                     FROM jes_nodes ORDER BY name"
                ),
                &[],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let age = Duration::from_millis(u64_of(r.get(4)));
                Member {
                    name: r.get(0),
                    hostname: r.get(1),
                    version: r.get(2),
                    started: u64_of(r.get(3)) / 1000,
                    seen_secs_ago: age.as_secs(),
                    state: state_of(age, r.get(5)),
                    sessions: Sessions {
                        smtp: u64_of(i64::from(r.get::<_, i32>(6))),
                        pop3: u64_of(i64::from(r.get::<_, i32>(7))),
                    },
                    totals: Totals {
                        accepted: u64_of(r.get(8)),
                        delivered: u64_of(r.get(9)),
                        bounced: u64_of(r.get(10)),
                        deferred: u64_of(r.get(11)),
                    },
                }
            })
            .collect())
    }
}
