//! One due pending call: make it, report it, and say what is left (`worker` schedules that).
//!
//! The order keeps the spool ahead of the reports, as a queue attempt does: the new state is
//! saved first, then the outcome is emitted, so the log never says more than the disk holds.
//! A restart between a 2xx and the save repeats the call: receivers drop repeats by
//! `webhook-id`, which is why it stays the same across retries.

use std::sync::Arc;
use std::time::Duration;

use super::client::Client;
use super::payload::{self, Facts};
use super::{CallSpool, ConfigSource, PendingCall};
use crate::event::{now_ms, Event, Kind, MessageFacts};
use crate::store::{Mailboxes, OpenError};

/// How long a deletion waits for a POP3 session holding the mailbox.
pub const DELETE_RETRY: Duration = Duration::from_secs(5);
/// Retries are at most this many units of `webhook.retrybase` apart (an hour by default).
const MAX_GAP_UNITS: u64 = 60;
/// And stop this many units after delivery (a day by default).
const GIVE_UP_UNITS: u64 = 24 * 60;

/// What a call needs.
pub struct CallContext {
    pub config: ConfigSource,
    /// The mailboxes underneath the notifying decorator.
    pub mailboxes: Arc<dyn Mailboxes>,
    pub spool: Arc<dyn CallSpool>,
    pub client: Client,
}

/// When the call after `attempts` failed ones is due, relative to the last: 1, 2, 4 ... units,
/// at most [`MAX_GAP_UNITS`] apart.
pub fn backoff(attempts: u32, base: Duration) -> Duration {
    let units = 1u64 << attempts.saturating_sub(1).min(16);
    base.saturating_mul(units.min(MAX_GAP_UNITS) as u32)
}

/// Whether a call due at `next_ms` is past the day (1,440 units) after delivery.
pub fn past_deadline(call: &PendingCall, next_ms: u64, base: Duration) -> bool {
    let horizon = base.saturating_mul(GIVE_UP_UNITS as u32).as_millis() as u64;
    next_ms > call.created_ms.saturating_add(horizon)
}

/// Runs one due call. Returns the call again with its next time when something is left.
pub async fn run(ctx: &CallContext, mut call: PendingCall) -> Option<PendingCall> {
    let config = (ctx.config)();
    let Some(settings) = config.users.webhook(&call.mailbox).cloned() else {
        tracing::warn!(id = %call.id, mailbox = %call.mailbox,
            "the mailbox no longer has a webhook in user.conf: its pending call is dropped");
        forget(ctx, &call).await;
        return None;
    };
    if call.sent {
        return delete_after_success(ctx, call).await;
    }
    let Some(url) = settings.url.clone() else {
        forget(ctx, &call).await;
        return None;
    };
    let stored = match read_message(ctx, &config, call).await {
        Ok((c, bytes)) => {
            call = c;
            bytes
        }
        Err(left) => return left,
    };
    let unstuffed = crate::stored_form::unstuff(&stored);
    let facts = MessageFacts::of_stored(&call.id, &stored, unstuffed.len() as u64);
    let now = now_ms();
    let facts_for_body = Facts {
        id: &call.id,
        uid: &call.uid,
        mailbox: &call.mailbox,
        raw: settings.raw,
        now_ms: now,
    };
    let body = match serde_json::to_vec(&payload::build(&facts_for_body, &unstuffed)) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(id = %call.id, "cannot write the webhook payload: {e}");
            forget(ctx, &call).await;
            return None;
        }
    };
    let headers = signed_headers(&call, &settings, &config, now / 1000, &body);
    if url.starts_with("http://") && !crate::config::webhook::is_loopback_url(&url) {
        tracing::warn!(mailbox = %call.mailbox, url = %url,
            "webhook over plain http to a host that is not loopback: the message travels unencrypted");
    }
    call.attempts += 1;
    let ca = config.mail.delivery_ca_file.as_deref();
    let result = ctx.client.post(&url, &headers, body, ca).await;
    let host = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string));
    let told = Told {
        facts,
        host,
        delete: settings.delete,
        base: config.mail.webhook_retry_base,
    };
    settle(ctx, call, result, told).await
}

/// The stored message of `call`; or, when it cannot be read, what is left of the call: nothing
/// when the message left the mailbox (given up), a later try on any other error.
async fn read_message(
    ctx: &CallContext,
    config: &crate::config::Config,
    mut call: PendingCall,
) -> Result<(PendingCall, Vec<u8>), Option<PendingCall>> {
    match ctx.mailboxes.read(&call.mailbox, &call.uid).await {
        Ok(bytes) => Ok((call, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Read and deleted over POP3 before the call could be made: the application polls
            // anyway, and a call about a message that is gone could only confuse it.
            forget(ctx, &call).await;
            let facts = MessageFacts {
                id: call.id.clone(),
                ..Default::default()
            };
            crate::outcome::emit(
                Event::new(Kind::WebhookExpired, &facts, &call.mailbox)
                    .with_attempt(call.attempts)
                    .with_reply("the message left the mailbox before the webhook call succeeded"),
            );
            Err(None)
        }
        Err(e) => {
            tracing::error!(id = %call.id, mailbox = %call.mailbox, "cannot read the message for its webhook call: {e}");
            call.next_ms = now_ms() + config.mail.webhook_retry_base.as_millis() as u64;
            Err(Some(call))
        }
    }
}

/// `webhook-id`, `webhook-timestamp` and, when there is a secret, `webhook-signature`.
fn signed_headers(
    call: &PendingCall,
    settings: &crate::config::webhook::WebhookSettings,
    config: &crate::config::Config,
    timestamp: u64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("webhook-id", call.uid.clone()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    let secret = settings
        .secret
        .as_deref()
        .or(config.mail.webhook_secret.as_deref());
    match secret.and_then(|s| super::sign::signature(s, &call.uid, timestamp, body)) {
        Some(sig) => headers.push(("webhook-signature", sig)),
        None => tracing::warn!(mailbox = %call.mailbox,
            "webhook call unsigned: set userprop.{}.webhook.secret or webhook.secret", call.mailbox),
    }
    headers
}

/// What the events of a call's outcome say, and what the outcome leads to.
struct Told {
    facts: MessageFacts,
    host: Option<String>,
    delete: bool,
    base: Duration,
}

/// Saves what a call's answer leaves to do, then reports it.
async fn settle(
    ctx: &CallContext,
    mut call: PendingCall,
    result: Result<super::client::Answer, super::client::Failure>,
    told: Told,
) -> Option<PendingCall> {
    let (ok, reply, ip, tls) = match &result {
        Ok(a) => (
            (200..300).contains(&a.status),
            a.summary.clone(),
            a.ip,
            a.tls.clone(),
        ),
        Err(f) => (false, f.reason.clone(), f.ip, None),
    };
    let event = |kind: Kind, attempt: u32| {
        Event::new(kind, &told.facts, &call.mailbox)
            .with_reply(&reply)
            .with_remote(told.host.as_deref(), ip)
            .with_tls(tls.as_deref())
            .with_attempt(attempt)
    };
    if ok {
        let sent = event(Kind::WebhookSent, call.attempts);
        if told.delete {
            call.sent = true;
            save(ctx, &call).await;
            crate::outcome::emit(sent);
            return delete_after_success(ctx, call).await;
        }
        forget(ctx, &call).await;
        crate::outcome::emit(sent);
        return None;
    }
    let failed = event(Kind::WebhookFailed, call.attempts);
    let next = now_ms() + backoff(call.attempts, told.base).as_millis() as u64;
    if past_deadline(&call, next, told.base) {
        let expired = event(Kind::WebhookExpired, call.attempts);
        forget(ctx, &call).await;
        crate::outcome::emit_all(vec![failed, expired]);
        return None;
    }
    call.next_ms = next;
    save(ctx, &call).await;
    crate::outcome::emit(failed);
    Some(call)
}

/// The deletion `webhook.delete` asks for once the call succeeded, through the mailbox's session
/// lock: a POP3 session holding it makes the deletion wait [`DELETE_RETRY`].
async fn delete_after_success(ctx: &CallContext, mut call: PendingCall) -> Option<PendingCall> {
    match ctx.mailboxes.open(&call.mailbox).await {
        Ok(mb) => {
            let found = mb.messages().iter().position(|m| m.uid == call.uid);
            let (head, size) = match found {
                Some(i) => (
                    mb.head(i, 64 * 1024).await.unwrap_or_default(),
                    mb.messages()[i].size,
                ),
                None => (Vec::new(), 0),
            };
            let index: Vec<usize> = found.into_iter().collect();
            match mb.delete(&index).await {
                Ok(()) => {
                    drop(mb);
                    forget(ctx, &call).await;
                    // Gone already (a POP3 client deleted it first): nothing was deleted here.
                    if found.is_some() {
                        let facts = MessageFacts::of_stored(&call.id, &head, size);
                        crate::outcome::emit(
                            Event::new(Kind::WebhookDeleted, &facts, &call.mailbox).with_reply(
                                "deleted after its webhook call succeeded (webhook.delete)",
                            ),
                        );
                    }
                    None
                }
                Err(e) => {
                    tracing::error!(id = %call.id, mailbox = %call.mailbox, "cannot delete the message after its webhook call: {e}");
                    call.next_ms = now_ms() + DELETE_RETRY.as_millis() as u64;
                    Some(call)
                }
            }
        }
        Err(OpenError::InUse) => {
            tracing::debug!(id = %call.id, mailbox = %call.mailbox, "a POP3 session holds the mailbox; deletion after the webhook call waits");
            call.next_ms = now_ms() + DELETE_RETRY.as_millis() as u64;
            Some(call)
        }
        Err(e) => {
            tracing::error!(id = %call.id, mailbox = %call.mailbox, "cannot open the mailbox to delete after the webhook call: {e}");
            call.next_ms = now_ms() + DELETE_RETRY.as_millis() as u64;
            Some(call)
        }
    }
}

async fn save(ctx: &CallContext, call: &PendingCall) {
    if let Err(e) = ctx.spool.update(call).await {
        tracing::error!(id = %call.id, mailbox = %call.mailbox, "cannot save the webhook call's state: {e}");
    }
}

async fn forget(ctx: &CallContext, call: &PendingCall) {
    if let Err(e) = ctx.spool.remove(call).await {
        tracing::error!(id = %call.id, mailbox = %call.mailbox, "cannot remove the finished webhook call from the spool: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_an_hour_and_stop_after_a_day() {
        let min = Duration::from_secs(60);
        let gaps: Vec<u64> = (1..=9).map(|n| backoff(n, min).as_secs() / 60).collect();
        assert_eq!(gaps, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(1000, min), Duration::from_secs(3600));
        let call = PendingCall {
            mailbox: "b@x".into(),
            uid: "1".into(),
            id: "1".into(),
            created_ms: 1_000_000,
            attempts: 5,
            next_ms: 0,
            sent: false,
        };
        let day = 24 * 3600 * 1000;
        assert!(!past_deadline(&call, 1_000_000 + day, min));
        assert!(past_deadline(&call, 1_000_001 + day, min));
        // The unit scales the whole schedule (a test's 1 s base gives up after 24 minutes).
        assert!(past_deadline(
            &call,
            1_000_001 + 1440 * 1000,
            Duration::from_secs(1)
        ));
    }
}
