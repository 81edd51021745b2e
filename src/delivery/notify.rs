//! The one place a sender is told what became of their message: failure, delay and success
//! reports (RFC 3464), as far as they asked for them (RFC 3461).
//!
//! The accept step (mail written into local mailboxes) and delivery attempts (relayed, delivered
//! locally after a forward, failed, still delayed) decide each recipient's outcome; each hands
//! the recipients an outcome is to be reported for to [`tell`], which keeps those whose `NOTIFY=`
//! wants that kind of report (none given: failures and delays, as jes always did; `NEVER`: none),
//! builds one report with the message's `ENVID`, each recipient's `ORCPT` and, for a failure
//! under `RET=FULL`, the whole message, and queues it from the null sender. A success report is
//! `delivered` for a mailbox here and `relayed` for a server that does not offer DSN; a server
//! that offers it was given `NOTIFY=` and reports itself (`delivery::client`).

use std::sync::Arc;

use crate::config::Config;
use crate::dsn::{Dsn, MessageDsn, RecipientDsn};
use crate::queue::bounce::{self, FailedRecipient, Notice, ReportOptions};
use crate::queue::Queue;

/// The message a report is about.
pub struct About<'a> {
    pub id: &'a str,
    /// Its envelope sender, who is told.
    pub sender: &'a str,
    /// Wire form.
    pub message: &'a [u8],
    pub received_ms: u64,
    pub dsn: &'a MessageDsn,
}

/// What `tell` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// A report was queued under this id.
    Queued(String),
    /// Nobody asked for this report (`NOTIFY=`), or there was nothing to report.
    NotWanted,
    /// A report was due and could not be queued: the sender is the null sender (a bounce is
    /// never bounced) or the queue refused it.
    Impossible,
}

impl Told {
    pub fn queued(&self) -> Option<&str> {
        match self {
            Told::Queued(id) => Some(id),
            _ => None,
        }
    }
}

/// Whether a recipient with these parameters wants a report of kind `notice`.
pub fn wanted(dsn: &RecipientDsn, notice: Notice) -> bool {
    match notice {
        Notice::Failure => dsn.wants_failure(),
        Notice::Delay => dsn.wants_delay(),
        Notice::Success => dsn.wants_success(),
    }
}

/// Queues one report of kind `notice` to the sender of `about` for those of `recipients` whose
/// `NOTIFY=` wants it.
pub async fn tell(
    config: &Config,
    queue: &dyn Queue,
    about: &About<'_>,
    notice: Notice,
    recipients: Vec<(FailedRecipient, RecipientDsn)>,
) -> Told {
    let wanted: Vec<FailedRecipient> = recipients
        .into_iter()
        .filter(|(_, dsn)| wanted(dsn, notice))
        .map(|(mut r, dsn)| {
            r.orcpt = r.orcpt.or(dsn.orcpt);
            r
        })
        .collect();
    if wanted.is_empty() {
        return Told::NotWanted;
    }
    if bounce::is_null_sender(about.sender) {
        return Told::Impossible;
    }
    let now = chrono::Utc::now();
    let hostname = config
        .mail
        .hostname
        .trim_start_matches('[')
        .trim_end_matches(']');
    let message_id = format!("<{}.{}.dsn@{}>", about.id, now.timestamp_millis(), hostname);
    let report = bounce::build_report(
        &config.mail.hostname,
        about.sender,
        about.message,
        about.received_ms,
        &wanted,
        notice,
        now,
        &message_id,
        ReportOptions::of(about.dsn),
    );
    // jes's own reports are signed for the hostname's domain when it has a key (`MAILER-DAEMON@`).
    let report = crate::dkim::sign_stored(&config.mail.dkim, &report).unwrap_or(report);
    let what = match notice {
        Notice::Failure => "bounce queued",
        Notice::Delay => "delay warning queued",
        Notice::Success => "success report queued",
    };
    // From the null sender, to the original sender; a fresh id; no DSN parameters of its own.
    let to = [about.sender.to_string()];
    match queue
        .enqueue("", "", &to, &Dsn::default(), Arc::new(report))
        .await
    {
        Ok(report_id) => {
            let to: Vec<&str> = wanted.iter().map(|f| f.address.as_str()).collect();
            tracing::info!(queue_id = %about.id, bounce_id = %report_id, sender = %about.sender, recipients = %to.join(","), "{what}");
            Told::Queued(report_id)
        }
        Err(e) => {
            tracing::error!(queue_id = %about.id, "cannot queue the report to {}: {e}", about.sender);
            Told::Impossible
        }
    }
}

/// A success entry for `address`: `delivered` into a mailbox here, or `relayed` to `host`, which
/// does not offer DSN; `reply` is what the mailbox or server said.
pub fn success(address: &str, relayed_to: Option<&str>, reply: &str) -> FailedRecipient {
    FailedRecipient {
        address: address.to_string(),
        status: "2.0.0".into(),
        diagnostic: reply.to_string(),
        remote_host: relayed_to.map(str::to_string),
        orcpt: None,
        action: Some(if relayed_to.is_some() {
            bounce::Action::Relayed
        } else {
            bounce::Action::Delivered
        }),
    }
}
