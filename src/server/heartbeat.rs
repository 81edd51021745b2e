//! This server's row in the servers' table (`cluster`), written every `cluster::HEARTBEAT` while
//! it runs and once more, marked stopped, when it stops cleanly; after each write the table is
//! read back for `jes_cluster_servers_up`.
//!
//! A database that is away is logged once (and again when it is back); the server goes on.
//! Another process writing under this `node.name` is an error in the log, once per process:
//! the console would show the two as one, and their counters would overwrite each other.

use std::sync::Arc;

use tokio::sync::watch;

use crate::cluster::{self, Beat, Members, Sessions, State, Totals};
use crate::shared::Shared;

pub async fn run(members: Arc<dyn Members>, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = shared.config();
    let started_ms = i64::try_from(crate::stats::started_secs().saturating_mul(1000)).unwrap_or(0);
    let machine = crate::config::hostname::machine_name().unwrap_or_default();
    let name = config.mail.node_name.clone();
    let instance = format!("{machine}:{}:{started_ms}", std::process::id());
    let mut failing = false;
    let mut warned: Option<String> = None;
    // What the first write finds is this name's last holder, perhaps this server before a crash
    // and a quick restart: only a process that writes after us is another running server.
    let mut written = false;
    let mut tick = tokio::time::interval(cluster::HEARTBEAT);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        } || *stop.borrow();
        let beat = beat_now(&shared, &name, &instance, started_ms, stopping);
        match members.beat(&beat).await {
            Ok(other) => {
                if failing {
                    tracing::info!("servers' table: written again");
                    failing = false;
                }
                let other = other.filter(|_| written);
                written = true;
                if let Some(other) = other.filter(|o| warned.as_ref() != Some(o)) {
                    tracing::error!(
                        "node.name {name:?} is also used by another running server ({other}); give each server its own node.name in mail.conf"
                    );
                    warned = Some(other);
                }
            }
            Err(e) if !failing => {
                tracing::warn!("servers' table: cannot write this server's row: {e}");
                failing = true;
            }
            Err(_) => {}
        }
        if stopping {
            return;
        }
        // 0 while this server cannot read the table: it cannot vouch for any server, itself
        // included, and an alert on "fewer than N" should fire.
        let up = match members.list().await {
            Ok(list) => list.iter().filter(|m| m.state == State::Up).count(),
            Err(_) => 0,
        };
        crate::stats::cluster_servers_up(up);
    }
}

fn beat_now(shared: &Shared, name: &str, instance: &str, started_ms: i64, stopping: bool) -> Beat {
    let (_, _, totals) = crate::stats::snapshot();
    let g = crate::stats::gauges();
    Beat {
        name: name.to_string(),
        instance: instance.to_string(),
        hostname: shared.config().mail.hostname.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms,
        sessions: Sessions {
            smtp: g.smtp_sessions,
            pop3: g.pop3_sessions,
        },
        totals: Totals {
            accepted: totals.accepted,
            delivered: totals.delivered,
            bounced: totals.bounced,
            deferred: totals.deferred,
        },
        stopping,
    }
}
