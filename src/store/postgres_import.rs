//! Writing mailbox copies into the PostgreSQL backend's tables as they are, for `jes migrate`:
//! the part of `store::postgres` that takes a message with its UID, size and time already made
//! (a JES or jes mailbox file), instead of delivering a new one.
//!
//! Design. Only this module and `store::postgres` touch `jes_mail`; the migration calls these
//! functions inside its one transaction, so a copy that fails half-way leaves no row. A copy's
//! leading `X-DeliveredTo:` and `Return-Path:` lines become its `prefix` and the rest its shared
//! body, as `deliver` stores them, so `prefix || body` is the file byte for byte and two copies of
//! one message share a body. The rows go in listing order, which `seq` keeps: oldest first stays
//! oldest first.

use tokio_postgres::Transaction;

use crate::pg::bodies;

/// One mailbox file as the file store lists it.
#[derive(Debug, Clone, Copy)]
pub struct ImportedCopy<'a> {
    /// What UIDL shows: kept exactly (JES's digits, or jes's `<id>,S=<size>`).
    pub uid: &'a str,
    /// The message's id (the UID for a message JES stored).
    pub message_id: &'a str,
    /// The stored bytes: wire form, still dot-stuffed.
    pub bytes: &'a [u8],
    /// What LIST announces and RETR sends.
    pub size: u64,
    /// When it was stored (epoch ms).
    pub stored_ms: i64,
}

/// How many leading bytes of `bytes` are the copy's own lines (`X-DeliveredTo:`, then
/// `Return-Path:`, each present or not, as `deliver` writes them).
fn prefix_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    for name in [&b"x-deliveredto:"[..], &b"return-path:"[..]] {
        let rest = &bytes[at..];
        let starts = rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name);
        let end = rest.windows(2).position(|w| w == b"\r\n");
        match (starts, end) {
            (true, Some(end)) => at += end + 2,
            _ => break,
        }
    }
    at
}

/// Message copies already in the database (the migration refuses a database that has any).
pub async fn count(tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one("SELECT COUNT(*) FROM jes_mail", &[])
        .await?
        .get(0))
}

/// Adds `copy` to the end of mailbox `key` (the folder name `address::mailbox_dir_name` gives).
/// A UID the mailbox already has is an error, never a second row.
pub async fn insert(
    tx: &Transaction<'_>,
    key: &str,
    copy: &ImportedCopy<'_>,
) -> Result<(), tokio_postgres::Error> {
    let split = prefix_len(copy.bytes);
    let (prefix, body) = copy.bytes.split_at(split);
    let digest = bodies::store(tx, body).await?;
    tx.execute(
        "INSERT INTO jes_mail (mailbox, uid, message_id, prefix, digest, size, stored_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &key,
            &copy.uid,
            &copy.message_id,
            &prefix,
            &digest,
            &(copy.size.min(i64::MAX as u64) as i64),
            &copy.stored_ms,
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prefix_len;

    #[test]
    fn the_prefix_is_the_copys_own_lines_only() {
        let jes = b"X-DeliveredTo: a@b\r\nReturn-Path: <c@d>\r\nReceived: x\r\n\r\nbody\r\n";
        assert_eq!(
            &jes[..prefix_len(jes)],
            b"X-DeliveredTo: a@b\r\nReturn-Path: <c@d>\r\n"
        );
        let jes_1_6 = b"X-DeliveredTo: a@b\r\nX-RecievedDate: now\r\n\r\nbody";
        assert_eq!(&jes_1_6[..prefix_len(jes_1_6)], b"X-DeliveredTo: a@b\r\n");
        assert_eq!(prefix_len(b"Subject: x\r\n\r\nbody"), 0);
        assert_eq!(prefix_len(b"X-DeliveredTo: no line end"), 0);
        assert_eq!(prefix_len(b""), 0);
    }
}
