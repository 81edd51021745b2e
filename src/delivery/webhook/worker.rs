//! The webhook worker: one task that owns every pending call, makes the due ones, at most
//! `CONCURRENCY` at once, and schedules what is left.
//!
//! Calls come from the spool at start (a restart forgets nothing) and from the notifying
//! decorator as messages are delivered. They wait in a heap ordered by their due time (wall
//! clock, since that is what the spool keeps); a call is out of the heap while it is in flight,
//! so one call is never made twice at once. At shutdown calls in flight are cut; the spool still
//! holds them, so they are made again after the restart.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::call::{self, CallContext};
use super::{PendingCall, CONCURRENCY};
use crate::event::now_ms;

/// Heap order: due time, then arrival (so equal times keep their order).
type Entry = Reverse<(u64, u64, usize)>;

/// Runs until `stop` turns true.
pub async fn run(
    ctx: CallContext,
    mut new_calls: mpsc::UnboundedReceiver<PendingCall>,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new(ctx);
    // Calls by slot; the heap names slots, so a call is stored once.
    let mut slots: Vec<Option<PendingCall>> = Vec::new();
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push =
        |slots: &mut Vec<Option<PendingCall>>, heap: &mut BinaryHeap<Entry>, call: PendingCall| {
            let slot = slots.iter().position(Option::is_none).unwrap_or_else(|| {
                slots.push(None);
                slots.len() - 1
            });
            seq += 1;
            heap.push(Reverse((call.next_ms, seq, slot)));
            slots[slot] = Some(call);
        };
    match ctx.spool.pending().await {
        Ok(calls) => {
            if !calls.is_empty() {
                tracing::info!(
                    "{} webhook calls pending from before the start",
                    calls.len()
                );
            }
            for c in calls {
                push(&mut slots, &mut heap, c);
            }
        }
        Err(e) => {
            tracing::error!("cannot read the webhook spool, its calls wait for the next start: {e}")
        }
    }
    let mut in_flight: JoinSet<Option<PendingCall>> = JoinSet::new();
    loop {
        // Start what is due, as far as the concurrency allows.
        let now = now_ms();
        while in_flight.len() < CONCURRENCY {
            match heap.peek() {
                Some(Reverse((due, _, _))) if *due <= now => {}
                _ => break,
            }
            let Some(Reverse((_, _, slot))) = heap.pop() else {
                break;
            };
            if let Some(c) = slots[slot].take() {
                let ctx = ctx.clone();
                in_flight.spawn(async move { call::run(&ctx, c).await });
            }
        }
        let wait = match heap.peek() {
            Some(Reverse((due, _, _))) if in_flight.len() < CONCURRENCY => {
                Duration::from_millis(due.saturating_sub(now))
            }
            // Nothing due, or every slot busy: a finished call or a new one wakes the loop.
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            Some(c) = new_calls.recv() => push(&mut slots, &mut heap, c),
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                match done {
                    Ok(Some(c)) => push(&mut slots, &mut heap, c),
                    Ok(None) => {}
                    // A panic in one call costs that call until the next start (the spool has it).
                    Err(e) => tracing::error!("a webhook call failed unexpectedly: {e}"),
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    in_flight.shutdown().await;
}
