//! The periodic sweep of message bodies nothing refers to any more (the database store only).
//!
//! A body (`pg::bodies`) is shared by a message's queue entry and its mailbox copies, and is
//! removed right after the commit that dropped its last reference. What that misses (a server
//! that died between the two, a removal that lost a race with a new reference) would stay for
//! ever, so every server on the database sweeps: at start, then every `store.sweepseconds`, in
//! short transactions (`pg::bodies::sweep` explains why several sweepers and concurrent writers
//! are safe). Each removal is counted in `jes_bodies_swept_total`.

use std::time::Duration;

use tokio::sync::watch;

use crate::pg::{bodies, Database};

/// Sweeps now and every `every` until `stop` turns true.
pub(super) async fn run(db: Database, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match sweep_once(&db).await {
            Ok(0) => {}
            Ok(n) => {
                crate::stats::bodies_swept(n);
                tracing::info!("removed {n} message bodies nothing refers to any more");
            }
            Err(e) => tracing::warn!("cannot sweep unreferenced message bodies: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn sweep_once(db: &Database) -> std::io::Result<u64> {
    let mut client = db.client().await?;
    bodies::sweep(&mut client, bodies::SWEEP_BATCH)
        .await
        .map_err(|e| db.err(e))
}
