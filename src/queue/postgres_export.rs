//! Reading what the PostgreSQL queue holds, for `jes migrate --from`: every entry's id and
//! whether it is kept as failed (`Queue::list` shows only the ones still to be delivered). The
//! entries themselves are read through `queue::postgres` (`Queue::load`).
//!
//! Design. Only this module, `queue::postgres_import` and `queue::postgres` touch `jes_queue`.

/// Every entry as (id, kept as failed), in order of id.
pub async fn entries(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, bool)>, tokio_postgres::Error> {
    Ok(client
        .query("SELECT id, failed FROM jes_queue ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
