//! The history in PostgreSQL (`jes_history`, migrations/V3__history.sql): with `store.url`, every
//! server on the database writes its events into one table, so one search answers for all.
//!
//! Design. The queries mean what `sqlite` means (see `HistoryStore::query`): step one finds the
//! matching messages (one row per id, newest last matching event first), step two reads all of
//! their timelines in one statement. Each search is one indexed lookup (or a `BitmapOr` of them):
//! addresses through `lower(...)` indexes, `@domain` as a prefix of the reversed address, so that
//! nothing walks the table; `plan` shows the planner's choice (tests/pg_history.rs checks it).
//! The subject is also stored folded to lower case by jes, so the substring search ignores case
//! the same way whatever locale the database was made with.
//!
//! The async methods are for callers on the server's runtime (the API); the `HistoryStore`
//! methods are for threads outside it (the history writer, `jes trace`) and wait on `handle`,
//! the runtime that drives the pool's connections. Errors say whether the database was only
//! unreachable (`transient`): the writer keeps its batch and tries again for those.
//!
//! Pruning takes its rows with `FOR UPDATE SKIP LOCKED`: servers pruning at the same moment take
//! different rows instead of waiting for, or deadlocking on, each other's.

use std::collections::HashMap;

use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;

use super::{to_i64, to_u64};
use super::{HistoryError, Query, Record};
use crate::pg::Database;

const COLUMNS: &str = "time_ms, id, message_id, event, sender, recipient, subject, size, \
                       attempt, remote_host, remote_ip, tls, reply, status";

/// One server's (or one command's) access to the history table. Cloning shares the pool.
#[derive(Clone)]
pub struct PgHistory {
    db: Database,
    handle: Handle,
    /// Written into each row's `server` column: who reported the event.
    server: String,
}

/// What a search looks for, as step one's condition and its one text parameter.
struct Condition {
    sql: &'static str,
    param: String,
}

impl PgHistory {
    /// `handle` is the runtime the pool's connections run on; the blocking `HistoryStore`
    /// methods wait on it, so they must be called from outside it.
    pub fn new(db: Database, handle: Handle, server: String) -> PgHistory {
        PgHistory { db, handle, server }
    }

    /// Where the history is, for messages (the URL without its password).
    pub fn location(&self) -> &str {
        &self.db.location
    }

    fn err(&self, e: tokio_postgres::Error) -> HistoryError {
        // tokio-postgres's own text for a server's error is only "db error": say what it said.
        let why = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        };
        HistoryError::Database {
            location: self.db.location.clone(),
            transient: is_transient(&e),
            why,
        }
    }

    /// A connection from the pool; failing to get one is the database being away.
    async fn client(&self) -> Result<deadpool_postgres::Object, HistoryError> {
        self.db.client().await.map_err(|e| HistoryError::Database {
            location: self.db.location.clone(),
            transient: true,
            why: e.to_string(),
        })
    }

    /// Whether the database has the history table (a schema from before version 3 has not).
    pub async fn exists(&self) -> Result<bool, HistoryError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT to_regclass('public.jes_history') IS NOT NULL", &[])
            .await
            .map_err(|e| self.err(e))?;
        row.try_get(0).map_err(|e| self.err(e))
    }

    /// Stores `records` in one statement (all or none).
    pub async fn append_async(&self, records: &[Record]) -> Result<(), HistoryError> {
        if records.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        insert_records(&**client, records, Some(&self.server))
            .await
            .map_err(|e| self.err(e))
    }

    /// The timelines `query` matches, as `HistoryStore::query` describes.
    pub async fn query_async(
        &self,
        query: &Query,
        since_ms: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Record>, HistoryError> {
        let client = self.client().await?;
        let mut messages = Vec::new();
        for condition in conditions(query) {
            messages = self.messages(&client, &condition, since_ms, limit).await?;
            if !messages.is_empty() {
                break;
            }
        }
        self.timelines(&client, &messages, limit).await
    }

    /// Step one: the matching messages, newest first, as (seq of a lone refused event, id).
    async fn messages(
        &self,
        client: &tokio_postgres::Client,
        condition: &Condition,
        since_ms: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Option<i64>, String)>, HistoryError> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = client
            .query(
                &messages_sql(condition.sql),
                &[&condition.param, &to_i64(since_ms), &limit],
            )
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.err(e))
    }

    /// Step two: every event of `messages` in one statement, then put in step one's order.
    async fn timelines(
        &self,
        client: &tokio_postgres::Client,
        messages: &[(Option<i64>, String)],
        limit: Option<usize>,
    ) -> Result<Vec<Record>, HistoryError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = messages
            .iter()
            .filter(|(solo, _)| solo.is_none())
            .map(|(_, id)| id.as_str())
            .collect();
        let solos: Vec<i64> = messages.iter().filter_map(|(solo, _)| *solo).collect();
        let rows = client
            .query(
                &format!(
                    "SELECT seq, {COLUMNS}, server FROM jes_history \
                     WHERE id = ANY($1::text[]) OR seq = ANY($2::bigint[]) ORDER BY time_ms, seq"
                ),
                &[&ids, &solos],
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut by_message: HashMap<(Option<i64>, String), Vec<Record>> = HashMap::new();
        for row in &rows {
            let record = read_record(row).map_err(|e| self.err(e))?;
            let key = if record.id.is_empty() {
                (
                    Some(row.try_get::<_, i64>(0).map_err(|e| self.err(e))?),
                    String::new(),
                )
            } else {
                (None, record.id.clone())
            };
            by_message.entry(key).or_default().push(record);
        }
        let mut out = Vec::new();
        for message in messages {
            let events = by_message.remove(message).unwrap_or_default();
            if super::append_limited(&mut out, events, limit) {
                break;
            }
        }
        Ok(out)
    }

    /// The newest `limit` events of every server on the database, newest first (the console's
    /// dashboard): the primary key read backwards.
    pub async fn recent_async(&self, limit: usize) -> Result<Vec<Record>, HistoryError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT seq, {COLUMNS}, server FROM jes_history ORDER BY seq DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| read_record(r).map_err(|e| self.err(e)))
            .collect()
    }

    /// The planner's plans for step one of `query` (`EXPLAIN`), one per condition it tries in
    /// turn: what an administrator asks when a search is slow, and what the tests check.
    pub async fn plan(&self, query: &Query) -> Result<Vec<String>, HistoryError> {
        let client = self.client().await?;
        let mut plans = Vec::new();
        for condition in conditions(query) {
            let rows = client
                .query(
                    &format!("EXPLAIN {}", messages_sql(condition.sql)),
                    &[&condition.param, &0i64, &Some(100i64)],
                )
                .await
                .map_err(|e| self.err(e))?;
            let mut lines = Vec::new();
            for r in &rows {
                lines.push(r.try_get::<_, String>(0).map_err(|e| self.err(e))?);
            }
            plans.push(lines.join("\n"));
        }
        Ok(plans)
    }

    /// Removes at most `max` events older than `before_ms`, skipping rows another server is
    /// removing at the same moment.
    pub async fn prune_async(&self, before_ms: u64, max: usize) -> Result<usize, HistoryError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM jes_history WHERE seq IN (SELECT seq FROM jes_history \
                 WHERE time_ms < $1::bigint LIMIT $2::bigint FOR UPDATE SKIP LOCKED)",
                &[&to_i64(before_ms), &i64::try_from(max).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Removes every event sent by or to `address` (case-insensitive).
    pub async fn forget_async(&self, address: &str) -> Result<usize, HistoryError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM jes_history WHERE lower(sender) = lower($1::text) \
                 OR lower(recipient) = lower($1::text)",
                &[&address],
            )
            .await
            .map_err(|e| self.err(e))?;
        // An erasure request: VACUUM frees the deleted rows' space for reuse instead of leaving
        // them for autovacuum. Best effort (it needs the table's owner); the database's own
        // backups and WAL archive are the operator's to expire.
        if n > 0 {
            if let Err(e) = client.batch_execute("VACUUM jes_history").await {
                tracing::debug!("VACUUM jes_history after --forget: {e}");
            }
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl super::HistoryStore for PgHistory {
    fn append(&mut self, records: &[Record]) -> Result<(), HistoryError> {
        self.handle.block_on(self.append_async(records))
    }

    fn query(
        &self,
        query: &Query,
        since_ms: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Record>, HistoryError> {
        self.handle
            .block_on(self.query_async(query, since_ms, limit))
    }

    fn prune(&mut self, before_ms: u64, max: usize) -> Result<usize, HistoryError> {
        self.handle.block_on(self.prune_async(before_ms, max))
    }

    fn forget(&mut self, address: &str) -> Result<usize, HistoryError> {
        self.handle.block_on(self.forget_async(address))
    }
}

/// The conditions step one tries in turn, until one finds messages: `$1` is the parameter.
fn conditions(query: &Query) -> Vec<Condition> {
    let c = |sql, param: &str| Condition {
        sql,
        param: param.to_string(),
    };
    match query {
        Query::All => vec![c("$1::text = ''", "")],
        Query::Address(a) => vec![c(
            "lower(recipient) = lower($1::text) OR lower(sender) = lower($1::text) \
             OR message_id = '<' || $1::text || '>'",
            a,
        )],
        Query::Domain(d) => {
            let reversed: String = format!("@{d}").chars().rev().collect();
            vec![c(
                "reverse(lower(sender)) LIKE $1::text OR reverse(lower(recipient)) LIKE $1::text",
                &format!("{}%", like_escape(&reversed)),
            )]
        }
        Query::MessageId(m) => vec![c("message_id = $1::text", m)],
        Query::Text(t) => vec![
            c("id = $1::text OR message_id = $1::text", t),
            c("strpos(subject_folded, $1::text) > 0", &t.to_lowercase()),
        ],
    }
}

/// Step one's statement: `$1` the search, `$2` since, `$3` the limit (NULL: none).
fn messages_sql(condition: &str) -> String {
    format!(
        "SELECT CASE WHEN id = '' THEN seq END AS solo, id, MAX(time_ms) AS t, MAX(seq) AS s \
         FROM jes_history WHERE ({condition}) AND time_ms >= $2::bigint \
         GROUP BY CASE WHEN id = '' THEN seq END, id ORDER BY t DESC, s DESC LIMIT $3::bigint"
    )
}

/// `s` matching itself only in a LIKE pattern (the default escape is the backslash).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Whether `e` only says the database cannot be reached now (worth trying again), rather than
/// that it refused the statement.
fn is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection broke, timed out or could not be made.
        return true;
    };
    let class = &code.code()[..2.min(code.code().len())];
    // 08: connection exception; 53: insufficient resources; 57: operator intervention
    // (shutdown, recovery); serialization failures and deadlocks succeed when tried again.
    matches!(class, "08" | "53" | "57")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
}

fn read_record(r: &tokio_postgres::Row) -> Result<Record, tokio_postgres::Error> {
    // Column 0 is seq; the record's columns follow in COLUMNS's order, then the server.
    Ok(Record {
        time_ms: to_u64(r.try_get(1)?),
        id: r.try_get(2)?,
        message_id: r.try_get(3)?,
        event: r.try_get(4)?,
        sender: r.try_get(5)?,
        recipient: r.try_get(6)?,
        subject: r.try_get(7)?,
        size: to_u64(r.try_get(8)?),
        attempt: u32::try_from(r.try_get::<_, i32>(9)?).unwrap_or(0),
        remote_host: r.try_get(10)?,
        remote_ip: r.try_get(11)?,
        tls: r.try_get(12)?,
        reply: r.try_get(13)?,
        status: r.try_get(14)?,
        server: r.try_get(15)?,
    })
}

/// For `jes migrate`: how many events the database holds, in its transaction.
pub async fn count_in(tx: &tokio_postgres::Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one("SELECT COUNT(*) FROM jes_history", &[])
        .await?
        .get(0))
}

/// Stores `records` through `client` (a pooled connection, or `jes migrate`'s transaction) in
/// one statement, naming `server` as the one that reported them (`None`: not known, as for
/// events migrated from history.db).
pub async fn insert_records<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    records: &[Record],
    server: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let col = |f: fn(&Record) -> Option<String>| records.iter().map(f).collect::<Vec<_>>();
    let time: Vec<i64> = records.iter().map(|r| to_i64(r.time_ms)).collect();
    let size: Vec<i64> = records.iter().map(|r| to_i64(r.size)).collect();
    let attempt: Vec<i32> = records
        .iter()
        .map(|r| i32::try_from(r.attempt).unwrap_or(i32::MAX))
        .collect();
    let id = col(|r| Some(r.id.clone()));
    let message_id = col(|r| r.message_id.clone());
    let event = col(|r| Some(r.event.clone()));
    let sender = col(|r| Some(r.sender.clone()));
    let recipient = col(|r| Some(r.recipient.clone()));
    let subject = col(|r| r.subject.clone());
    let folded = col(|r| r.subject.as_ref().map(|s| s.to_lowercase()));
    let remote_host = col(|r| r.remote_host.clone());
    let remote_ip = col(|r| r.remote_ip.clone());
    let tls = col(|r| r.tls.clone());
    let reply = col(|r| Some(r.reply.clone()));
    let status = col(|r| r.status.clone());
    client
        .execute(
            &format!(
                "INSERT INTO jes_history ({COLUMNS}, subject_folded, server) \
                 SELECT t.*, $16 FROM unnest($1::bigint[], $2::text[], $3::text[], \
                 $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::int[], \
                 $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
                 $15::text[]) AS t"
            ),
            &[
                &time,
                &id,
                &message_id,
                &event,
                &sender,
                &recipient,
                &subject,
                &size,
                &attempt,
                &remote_host,
                &remote_ip,
                &tls,
                &reply,
                &status,
                &folded,
                &server,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_is_a_prefix_of_the_reversed_address_with_wildcards_escaped() {
        let c = conditions(&Query::Domain("ex_am%ple.test".into()));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param, "tset.elp\\%ma\\_xe@%");
    }

    #[test]
    fn text_looks_for_an_id_first_then_in_the_folded_subject() {
        let c = conditions(&Query::Text("Задача".into()));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param, "Задача");
        assert_eq!(c[1].param, "задача");
        assert!(c[1].sql.contains("subject_folded"));
    }
}
