//! Reading what the PostgreSQL backend's mailboxes hold, for `jes migrate --from`: which
//! mailboxes have messages. The messages themselves are read through `store::postgres` (list,
//! read), as a POP3 session sees them.
//!
//! Design. Only this module, `store::postgres_import` and `store::postgres` touch `jes_mail`.

/// The keys (folder names) of the mailboxes that hold at least one message, sorted.
pub async fn mailbox_keys(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT DISTINCT mailbox FROM jes_mail ORDER BY mailbox",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
