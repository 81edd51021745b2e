//! One delivery attempt of one queued message, from lease to saved state.
//!
//! Order of work: take the message with a lease (someone else holding it, a `jes queue` tool or
//! another server, makes us come back shortly), expand its pending recipients against the current configuration (local mailboxes are
//! delivered at once; forwards become new remote recipients), send the remote ones, then write the
//! new state back. Recipients that failed for good in this attempt are bounced right away; a file
//! is removed only when no recipient is pending. A crash anywhere in between repeats work (a
//! recipient may get a message twice) but never loses it.

use std::sync::Arc;
use std::time::Duration;

use super::notify::{self, About, Told};
use super::remote::{Remote, RemoteOutcome};
use crate::config::Config;
use crate::dsn::RecipientDsn;
use crate::event::now_ms;
use crate::event::{Event, Kind, MessageFacts};
use crate::queue::bounce::{self, FailedRecipient, Notice};
use crate::queue::schedule::{backoff, due_instant};
use crate::queue::{
    Lease, Queue, QueueError, QueueRecipient, QueuedMessage, RecipientState, Taken,
};
use crate::routing::{expand, Route};
use crate::store::Mailboxes;

/// How long an attempt holds its message before someone else may take it over. Attempts have no
/// overall deadline (hosts are tried in turn, each command may wait minutes), so this is a bound
/// for an attempt that stalled, not a promise: one that overruns it still writes its result unless
/// another attempt took the message meanwhile, in which case that attempt's result stands.
pub const LEASE_TTL: Duration = Duration::from_secs(30 * 60);

/// What the runner does with the message next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left to do (delivered, bounced, or the file is gone).
    Finished,
    /// Try again at this wall time (epoch ms).
    RetryAt(u64),
    /// Someone else holds the file: come back shortly.
    Busy,
}

/// Runs one attempt of a message the runner found due. Never panics on file content; errors are
/// logged and the message deferred.
/// Every recipient's outcome in it is reported once, after the new state is saved. Returns what
/// to do with the message next, and the ids of the notices (bounces, delay warnings) it queued,
/// for the runner to take up at once as it does SMTP's new files: the sender, often a local
/// account, should not wait for the next scan of `smtp/`.
///
/// `known_next`: the next-attempt time the runner last knew to be stored for the message. One
/// stored now that differs from it and is still ahead was written by another server's attempt
/// since: the message is put back at that time untried (see `tried_meanwhile`).
pub async fn run(
    id: &str,
    config: Arc<Config>,
    queue: Arc<dyn Queue>,
    mailboxes: &dyn Mailboxes,
    remote: &Remote,
    owner: &str,
    known_next: Option<u64>,
) -> (Outcome, Vec<String>) {
    let prepared = prepare(id, &config, queue.as_ref(), mailboxes, owner, known_next).await;
    let (lease, mut msg, mut work) = match prepared {
        Ok(p) => p,
        Err(outcome) => return (outcome, Vec::new()),
    };
    hold_captured(&config, &mut msg, &mut work);
    let remote_idx: Vec<usize> = (0..msg.recipients.len())
        .filter(|i| msg.recipients[*i].state.is_pending())
        .collect();
    let mut deferred = false;
    if !remote_idx.is_empty() {
        let addrs: Vec<String> = remote_idx
            .iter()
            .map(|i| msg.recipients[*i].address.clone())
            .collect();
        let sender = if bounce::is_null_sender(&msg.sender) {
            ""
        } else {
            msg.sender.as_str()
        };
        let dsn = crate::dsn::Dsn {
            message: msg.dsn.clone(),
            recipients: remote_idx
                .iter()
                .map(|i| {
                    (
                        msg.recipients[*i].address.clone(),
                        msg.recipients[*i].dsn.clone(),
                    )
                })
                .collect(),
        };
        let outcomes = remote
            .deliver(&config, id, (sender, &dsn), &addrs, &msg.message)
            .await;
        msg.attempts += 1;
        for (i, outcome) in remote_idx.iter().zip(outcomes) {
            deferred |= work.record_remote(&mut msg.recipients[*i], outcome, msg.attempts);
        }
    }
    if deferred && msg.attempts >= config.mail.delivery_threshold {
        work.expire(&mut msg);
    }
    // Bouncing and saving run to the end on their own task: stopping the server aborts this one,
    // and a notice queued without the state that says so would be sent again after the restart.
    let finishing = tokio::spawn(async move {
        let (outcome, work) = finish(&config, queue.as_ref(), lease, &mut msg, work).await;
        crate::outcome::emit_all(work.events);
        (outcome, work.notices)
    });
    finishing.await.unwrap_or_else(|e| {
        tracing::error!(queue_id = id, "delivery attempt failed: {e}");
        (Outcome::RetryAt(now_ms() + 60_000), Vec::new())
    })
}

/// What one attempt found out: the recipients to bounce now, those whose success the sender may
/// want to hear of (`NOTIFY=SUCCESS`: delivered here, or relayed to a server without DSN), the
/// outcome events to report, and the notices (bounces, delay warnings, success reports) it queued.
struct Work {
    facts: MessageFacts,
    newly_failed: Vec<(FailedRecipient, RecipientDsn)>,
    successes: Vec<(FailedRecipient, RecipientDsn)>,
    events: Vec<Event>,
    notices: Vec<String>,
}

impl Work {
    fn new(msg: &QueuedMessage) -> Work {
        Work {
            facts: MessageFacts::of(&msg.id, &msg.sender, &msg.message, msg.received_ms),
            newly_failed: Vec::new(),
            successes: Vec::new(),
            events: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn event(&mut self, kind: Kind, recipient: &str, reply: &str, attempt: u32) -> &mut Event {
        let e = Event::new(kind, &self.facts, recipient)
            .with_reply(reply)
            .with_attempt(attempt);
        self.events.push(e);
        let last = self.events.len() - 1;
        &mut self.events[last]
    }

    /// Applies one remote outcome to its recipient; true when it is deferred.
    fn record_remote(
        &mut self,
        r: &mut QueueRecipient,
        outcome: RemoteOutcome,
        attempt: u32,
    ) -> bool {
        let via = outcome.via().clone();
        let (kind, reply, deferred) = match outcome {
            RemoteOutcome::Delivered {
                reply,
                host,
                dsn_passed,
                ..
            } => {
                r.state = RecipientState::Delivered;
                if !dsn_passed {
                    let relayed = notify::success(&r.address, Some(&host), &reply);
                    self.successes.push((relayed, r.dsn.clone()));
                }
                (Kind::Delivered, reply, false)
            }
            RemoteOutcome::Failed {
                host,
                status,
                reply,
                ..
            } => {
                r.state = RecipientState::Failed;
                let failed = FailedRecipient {
                    address: r.address.clone(),
                    status,
                    diagnostic: reply.clone(),
                    remote_host: host,
                    ..Default::default()
                };
                self.newly_failed.push((failed, r.dsn.clone()));
                (Kind::Bounced, reply, false)
            }
            RemoteOutcome::Deferred { reply, .. } => (Kind::Deferred, reply, true),
        };
        let e = self.event(kind, &r.address, &reply, attempt);
        e.remote_host = via.host;
        e.remote_ip = via.ip;
        e.tls = via.tls;
        r.last_error = Some(reply);
        deferred
    }

    /// A recipient that no longer names anyone here (the account went since it was queued).
    fn no_such_user(&mut self, r: &mut QueueRecipient, attempt: u32) {
        let reply = "550 5.1.1 no such user here";
        self.event(Kind::Bounced, &r.address, reply, attempt);
        r.state = RecipientState::Failed;
        r.last_error = Some(reply.into());
        let failed = FailedRecipient {
            address: r.address.clone(),
            status: "5.1.1".into(),
            diagnostic: reply.into(),
            ..Default::default()
        };
        self.newly_failed.push((failed, r.dsn.clone()));
    }

    /// Gives up on every recipient still pending after `smtpdelivery.threshold` attempts.
    fn expire(&mut self, msg: &mut QueuedMessage) {
        let attempts = msg.attempts;
        for r in msg.recipients.iter_mut().filter(|r| r.state.is_pending()) {
            let last = r.last_error.clone().unwrap_or_default();
            r.state = RecipientState::Failed;
            r.last_error = Some(format!(
                "gave up after {attempts} attempts; last error: {last}"
            ));
            self.event(Kind::Expired, &r.address, &last, attempts);
            let failed = FailedRecipient {
                address: r.address.clone(),
                status: "4.4.7".into(),
                diagnostic: last,
                ..Default::default()
            };
            self.newly_failed.push((failed, r.dsn.clone()));
        }
    }
}

/// Capture mode (`capture=true`): every recipient still to be sent over SMTP that `capture.allow`
/// does not list is held in the queue instead. This is the one place mail leaves, so the
/// application's mail, bounces, delay notices and forwards are all caught here; local mailboxes
/// were served just before. Recipients an administrator released are not held again.
fn hold_captured(config: &Config, msg: &mut QueuedMessage, work: &mut Work) {
    if !config.mail.capture {
        return;
    }
    let reply = "held by capture mode (jes capture release)";
    for r in msg.recipients.iter_mut() {
        if r.state == RecipientState::Pending && !config.mail.capture_lets_out(&r.address) {
            r.state = RecipientState::Held;
            r.last_error = Some(reply.into());
            work.event(Kind::Held, &r.address, reply, msg.attempts);
        }
    }
}

/// Takes the message and does the local part of the delivery.
async fn prepare(
    id: &str,
    config: &Config,
    queue: &dyn Queue,
    mailboxes: &dyn Mailboxes,
    owner: &str,
    known_next: Option<u64>,
) -> Result<(Lease, QueuedMessage, Work), Outcome> {
    let (lease, mut msg) = match queue.take(id, owner, LEASE_TTL).await {
        Ok(Taken::Leased(lease, msg)) => (lease, msg),
        Ok(Taken::Busy) => return Err(Outcome::Busy),
        Ok(Taken::Gone) => return Err(Outcome::Finished),
        // Damaged or unreadable (permissions, EIO): looking every minute would only fill the log.
        Err(e) if unreadable(&e) => {
            tracing::error!(
                queue_id = id,
                "queued message cannot be read; it stays where it is: {e}"
            );
            return Err(Outcome::RetryAt(now_ms() + 3_600_000));
        }
        Err(e) => {
            tracing::error!(queue_id = id, "cannot take the queued message: {e}");
            return Err(Outcome::RetryAt(now_ms() + 60_000));
        }
    };
    if tried_meanwhile(msg.next_attempt_ms, known_next, now_ms()) {
        tracing::debug!(
            queue_id = id,
            "tried meanwhile (by another server sharing the queue): next attempt as it set"
        );
        let next = msg.next_attempt_ms;
        queue.release(lease).await;
        return Err(Outcome::RetryAt(next));
    }
    let mut work = Work::new(&msg);
    deliver_local(config, mailboxes, &mut msg, &mut work).await;
    Ok((lease, msg, work))
}

/// Whether a message taken now, whose stored next attempt is `stored_ms`, was tried by another
/// server since this runner learnt `known_ms`: the stored time changed and is still ahead (by
/// more than a clock's slack between servers). Two servers that share a queue both schedule a
/// deferred message for its time; the one that takes it second, at once or after finding it
/// busy, would otherwise try it again right after the first one's attempt. A retry request
/// writes a time that is not ahead, and a time this runner's own attempt wrote is the one it
/// knows, so neither is held back; a time too far ahead to be believed counts as due, as in
/// `schedule::due_instant`.
fn tried_meanwhile(stored_ms: u64, known_ms: Option<u64>, now_ms: u64) -> bool {
    const SLACK_MS: u64 = 2_000;
    let now = std::time::Instant::now();
    known_ms != Some(stored_ms)
        && due_instant(stored_ms, now_ms, now) > now + Duration::from_millis(SLACK_MS)
}

/// Whether `take` failed on the message itself rather than on a passing condition.
fn unreadable(e: &QueueError) -> bool {
    match e {
        QueueError::Format { .. } => true,
        QueueError::Io { source, .. } => {
            !matches!(
                source.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) && source.raw_os_error() != Some(libc::EMFILE)
        }
        _ => false,
    }
}

/// Bounces what failed now, then saves the new state or removes the finished message. Returns
/// the next step; the events to report and the notices queued are in `work`.
async fn finish(
    config: &Config,
    queue: &dyn Queue,
    lease: Lease,
    msg: &mut QueuedMessage,
    mut work: Work,
) -> (Outcome, Work) {
    let failed = std::mem::take(&mut work.newly_failed);
    let any_failed = !failed.is_empty();
    let bounce = notify::tell(config, queue, &about(msg), Notice::Failure, failed).await;
    let successes = std::mem::take(&mut work.successes);
    let success = notify::tell(config, queue, &about(msg), Notice::Success, successes).await;
    work.notices.extend(
        [&bounce, &success]
            .iter()
            .filter_map(|t| t.queued().map(str::to_string)),
    );
    let pending = msg.recipients.iter().any(|r| r.state.is_pending());
    if pending {
        warn_of_delay(config, queue, msg, &mut work).await;
        msg.next_attempt_ms = now_ms() + backoff(msg.attempts.max(1)).as_millis() as u64;
        if let Err(e) = queue.record(&lease, msg).await {
            tracing::error!(queue_id = %msg.id, "cannot save the queued message's new state: {e}");
        }
        queue.release(lease).await;
        return (Outcome::RetryAt(msg.next_attempt_ms), work);
    }
    // Held recipients keep the message in the queue until it is released (which makes it due
    // and wakes the runner) or deleted. It stays on the runner's schedule, looked at only once
    // per longest back-off: a message the runner forgot would be found again by the next scan
    // of the queue and taken again and again.
    if msg
        .recipients
        .iter()
        .any(|r| r.state == RecipientState::Held)
    {
        msg.next_attempt_ms = now_ms() + crate::queue::schedule::MAX_BACKOFF_MINUTES * 60_000;
        if let Err(e) = queue.record(&lease, msg).await {
            tracing::error!(queue_id = %msg.id, "cannot save the held message's state: {e}");
        }
        queue.release(lease).await;
        return (Outcome::RetryAt(msg.next_attempt_ms), work);
    }
    // A failure nobody could be told about (a bounce that bounced) is kept, as JES did; one the
    // sender asked not to hear of (`NOTIFY=NEVER`) is not.
    let keep = (any_failed && bounce == Told::Impossible).then_some(&*msg);
    match queue.complete(lease, keep).await {
        Ok(()) => {
            tracing::info!(queue_id = %msg.id, "queue file done: every recipient delivered or bounced")
        }
        Err(e) => {
            tracing::error!(queue_id = %msg.id, "cannot remove the finished queued message: {e}")
        }
    }
    (Outcome::Finished, work)
}

/// Expands pending recipients: local routes are delivered now; remote forward targets become new
/// pending recipients; the original recipient is then done.
async fn deliver_local(
    config: &Config,
    store: &dyn Mailboxes,
    msg: &mut QueuedMessage,
    work: &mut Work,
) {
    let Expansion {
        mailboxes,
        local_dsn,
        expanded,
        new_remote,
    } = expand_pending(config, msg, work);
    if expanded.is_empty() {
        return;
    }
    if !mailboxes.is_empty() {
        let return_path = if crate::queue::bounce::is_null_sender(&msg.sender) {
            ""
        } else {
            msg.sender.as_str()
        };
        let message = Arc::new(msg.message.clone());
        let delivered = store
            .deliver(&msg.id, &mailboxes, return_path, message)
            .await;
        if let Err(e) = delivered {
            let reply = format!("451 4.3.0 local delivery failed: {e}");
            for i in expanded {
                let r = &mut msg.recipients[i];
                work.event(Kind::Deferred, &r.address, &reply, msg.attempts);
                r.last_error = Some(reply.clone());
            }
            return;
        }
        for m in &mailboxes {
            work.event(
                Kind::DeliveredLocally,
                m,
                "250 2.0.0 delivered locally",
                msg.attempts,
            );
        }
        for (m, dsn) in local_dsn {
            let delivered = notify::success(&m, None, "250 2.0.0 delivered locally");
            work.successes.push((delivered, dsn));
        }
    }
    mark_expanded(msg, &expanded, new_remote);
}

/// Where the pending recipients' mail goes (`routing::expand`), each mailbox and each new remote
/// address once.
struct Expansion {
    /// The local mailboxes to deliver into.
    mailboxes: Vec<String>,
    /// Each mailbox's DSN parameters, for a success report the sender may want.
    local_dsn: Vec<(String, RecipientDsn)>,
    /// The recipients (by place) this expansion takes care of.
    expanded: Vec<usize>,
    /// Forward targets elsewhere: they carry their recipient's NOTIFY, and its address as ORCPT.
    new_remote: Vec<(String, RecipientDsn)>,
}

/// Expands each pending recipient; one with no route at all (no such user) is failed here, and
/// one that routes only to itself elsewhere stays pending for remote delivery.
fn expand_pending(config: &Config, msg: &mut QueuedMessage, work: &mut Work) -> Expansion {
    let mut x = Expansion {
        mailboxes: Vec::new(),
        local_dsn: Vec::new(),
        expanded: Vec::new(),
        new_remote: Vec::new(),
    };
    for (i, r) in msg.recipients.iter_mut().enumerate() {
        if !r.state.is_pending() {
            continue;
        }
        let routes = expand(config, &r.address);
        if routes.is_empty() {
            work.no_such_user(r, msg.attempts);
            continue;
        }
        let own = crate::address::canonical(&r.address);
        if routes == [Route::Remote(own.clone())] {
            continue;
        }
        for route in routes {
            match route {
                Route::Local(m) if !x.mailboxes.contains(&m) => {
                    let dsn = if m == own {
                        r.dsn.clone()
                    } else {
                        r.dsn.forwarded_from(&r.address)
                    };
                    x.local_dsn.push((m.clone(), dsn));
                    x.mailboxes.push(m);
                }
                Route::Remote(a) if !x.new_remote.iter().any(|(n, _)| *n == a) => {
                    x.new_remote.push((a, r.dsn.forwarded_from(&r.address)));
                }
                _ => {}
            }
        }
        x.expanded.push(i);
    }
    x
}

/// The recipients at `expanded` are done (delivered here, or handed on to `new_remote`, which
/// become pending recipients of their own, each once).
fn mark_expanded(
    msg: &mut QueuedMessage,
    expanded: &[usize],
    new_remote: Vec<(String, RecipientDsn)>,
) {
    for &i in expanded {
        let r = &mut msg.recipients[i];
        r.state = RecipientState::Delivered;
        r.last_error = Some(if new_remote.is_empty() {
            "delivered locally".to_string()
        } else {
            let names: Vec<&str> = new_remote.iter().map(|(a, _)| a.as_str()).collect();
            format!("expanded to {}", names.join(", "))
        });
    }
    for (addr, dsn) in new_remote {
        if !msg
            .recipients
            .iter()
            .any(|r| r.address.eq_ignore_ascii_case(&addr) && r.state.is_pending())
        {
            msg.recipients.push(QueueRecipient {
                address: addr,
                state: RecipientState::Pending,
                last_error: None,
                dsn,
            });
        }
    }
}

/// The message a report about `msg` is about.
fn about(msg: &QueuedMessage) -> About<'_> {
    About {
        id: &msg.id,
        sender: &msg.sender,
        message: &msg.message,
        received_ms: msg.received_ms,
        dsn: &msg.dsn,
    }
}

/// Tells the sender, once per message, that it is still not delivered after
/// `smtpdelivery.delaywarning` (RFC 3464 `Action: delayed`), as Postfix's `delay_warning_time`
/// does: a notification that sits for hours behind a dead smart host should not go unnoticed.
/// Recipients whose `NOTIFY=` leaves out `DELAY` are not mentioned. The flag is saved with the
/// queue file, so a restart does not warn again. The notice's queue id and its events go into
/// `work`.
async fn warn_of_delay(
    config: &Config,
    queue: &dyn Queue,
    msg: &mut QueuedMessage,
    work: &mut Work,
) {
    let Some(after) = config.mail.delay_warning else {
        return;
    };
    let waited = now_ms().saturating_sub(msg.received_ms);
    if msg.delay_warned || waited < after.as_millis() as u64 {
        return;
    }
    let delayed: Vec<(FailedRecipient, RecipientDsn)> = msg
        .recipients
        .iter()
        .filter(|r| r.state.is_pending() && notify::wanted(&r.dsn, Notice::Delay))
        .map(|r| {
            let diagnostic = r
                .last_error
                .clone()
                .unwrap_or_else(|| "not delivered yet".into());
            let entry = FailedRecipient {
                address: r.address.clone(),
                status: transient_status(&diagnostic),
                diagnostic,
                ..Default::default()
            };
            (entry, r.dsn.clone())
        })
        .collect();
    let told: Vec<(String, String)> = delayed
        .iter()
        .map(|(d, _)| (d.address.clone(), d.diagnostic.clone()))
        .collect();
    // A null sender cannot be told (nothing is queued for it), and nobody may have asked; mark it
    // anyway so the check is not repeated every attempt.
    if let Told::Queued(notice_id) =
        notify::tell(config, queue, &about(msg), Notice::Delay, delayed).await
    {
        for (address, diagnostic) in &told {
            work.event(Kind::DelayNotice, address, diagnostic, msg.attempts);
        }
        work.notices.push(notice_id);
    }
    msg.delay_warned = true;
}

/// The enhanced status code of a temporary reply such as `451 4.3.0 try later`, or `4.0.0`.
fn transient_status(reply: &str) -> String {
    reply
        .split_once(' ')
        .and_then(|(_, text)| crate::event::enhanced_code(text))
        .filter(|code| code.starts_with("4."))
        .unwrap_or("4.0.0")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::{transient_status, tried_meanwhile};

    #[test]
    fn a_message_is_held_back_only_for_a_changed_time_still_ahead() {
        let now = 1_800_000_000_000;
        let minute = 60_000;
        // Another server deferred it since: a new time, a minute ahead.
        assert!(tried_meanwhile(now + minute, Some(now - 5), now));
        assert!(tried_meanwhile(now + minute, None, now));
        // This runner's own attempt wrote that time (a retry asked during it): tried.
        assert!(!tried_meanwhile(now + minute, Some(now + minute), now));
        // A retry request wrote now, or a clock a second ahead did: tried.
        assert!(!tried_meanwhile(now, Some(now + minute), now));
        assert!(!tried_meanwhile(now + 1_000, Some(now + minute), now));
        // Due long ago, or too far ahead to be believed: tried.
        assert!(!tried_meanwhile(now - minute, Some(now - 2 * minute), now));
        assert!(!tried_meanwhile(u64::MAX, None, now));
    }

    #[test]
    fn delay_status_comes_from_the_last_temporary_reply() {
        assert_eq!(transient_status("451 4.3.0 try later"), "4.3.0");
        assert_eq!(transient_status("421 4.4.2 timeout"), "4.4.2");
        // Not a temporary enhanced code: the generic one.
        assert_eq!(transient_status("550 5.1.1 no"), "4.0.0");
        assert_eq!(transient_status("connection refused"), "4.0.0");
        assert_eq!(transient_status("451 4.x.0 odd"), "4.0.0");
        assert_eq!(transient_status(""), "4.0.0");
    }
}
