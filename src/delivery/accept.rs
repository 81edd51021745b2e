//! The accept step: the one rule that takes a received message in, on every SMTP port.
//!
//! Given the envelope, the message and the facts of the session, it gives the message its one id,
//! splits the recipients into local mailboxes and the queue (against the configuration of this
//! moment), and makes every copy durable before it returns, which is what allows the 250. The
//! queue goes first: if the mailboxes then fail, the queue file is taken back, so the client's
//! retry does not send the remote copy twice. It reports each recipient's outcome (`accepted`, and
//! `delivered-locally` for mailbox copies) through `outcome`, and hands the queue id to the runner
//! at once. It knows nothing of sockets or files: it sees the storage interfaces (`Queue`,
//! `Mailboxes`), and tests call it directly.

use std::net::IpAddr;

use super::runner::RunnerHandle;
use crate::config::Config;
use crate::event::{Event, Kind, MessageFacts};
use std::sync::Arc;

use super::notify::{self, About, Told};
use crate::dsn::{Dsn, RecipientDsn};
use crate::queue::bounce::Notice;
use crate::queue::{Queue, QueueError};
use crate::store::{DeliverError, Mailboxes};

/// A message as the SMTP session hands it over, with what the session knows about its client.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Envelope sender; empty for `<>`.
    pub sender: String,
    pub recipients: Vec<String>,
    /// The whole message in wire form (our trace headers first).
    pub message: Vec<u8>,
    pub session: String,
    pub client: IpAddr,
    /// The TLS version of the session (`TLSv1.3`), if it is encrypted.
    pub tls: Option<String>,
    /// The DSN parameters of MAIL and the RCPTs (RFC 3461).
    pub dsn: Dsn,
    /// Whether the client proved who it is (`relay.ipaddresses`, POP-before-SMTP, SMTP AUTH), so
    /// that its mail may carry our DKIM signature. Never for a client that may relay only because
    /// of its envelope sender (`relay.emailaddresses`): anyone can claim an address.
    pub may_sign: bool,
}

/// Why a message could not be taken: the SMTP session turns it into 452 or 451.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("no space left for the message")]
    Full,
    #[error("{0}")]
    Temporary(String),
}

/// Where the accept step keeps what it takes.
pub struct Stores<'a> {
    pub queue: &'a dyn Queue,
    pub mailboxes: &'a dyn Mailboxes,
    pub runner: &'a RunnerHandle,
}

/// Takes `incoming` in durably; returns the message's id. On an error nothing of it is kept.
pub async fn accept(
    config: &Config,
    stores: &Stores<'_>,
    mut incoming: Incoming,
) -> Result<String, AcceptError> {
    let (local, remote) = crate::routing::split_by_origin(config, &incoming.recipients);
    let local_dsn = route_dsn(&incoming, &local);
    let local: Vec<String> = local.into_iter().map(|(a, _)| a).collect();
    let remote_dsn = Dsn {
        message: incoming.dsn.message.clone(),
        recipients: route_dsn(&incoming, &remote),
    };
    let remote: Vec<String> = remote.into_iter().map(|(a, _)| a).collect();
    let id = crate::event::new_id();
    let message = Arc::new(std::mem::take(&mut incoming.message));
    let queue_id = if remote.is_empty() {
        None
    } else {
        // Signed before it is queued, so every retry sends the same bytes; mailbox copies stay as
        // they came (the signature is for the receivers outside).
        let signed = incoming
            .may_sign
            .then(|| crate::dkim::sign_stored(&config.mail.dkim, &message))
            .flatten();
        let outgoing = signed.map_or_else(|| message.clone(), Arc::new);
        let queued = stores
            .queue
            .enqueue_for_attempt(&id, &incoming.sender, &remote, &remote_dsn, outgoing)
            .await;
        Some(queued.map_err(|e| {
            tracing::error!(session = %incoming.session, "cannot queue a message: {e}");
            match e {
                QueueError::Full(_) => AcceptError::Full,
                _ => AcceptError::Temporary("cannot queue the message".into()),
            }
        })?)
    };
    let id = queue_id.clone().unwrap_or(id);
    if !local.is_empty() {
        let delivered = stores
            .mailboxes
            .deliver(&id, &local, &incoming.sender, message.clone())
            .await;
        if let Err(e) = delivered {
            tracing::error!(session = %incoming.session, "cannot deliver to {}: {e}", local.join(", "));
            if let Some(qid) = &queue_id {
                if let Err(e) = stores.queue.withdraw(qid).await {
                    tracing::error!(session = %incoming.session, "cannot take back queue file {qid}: {e}");
                }
            }
            return Err(match e {
                DeliverError::Full(_) => AcceptError::Full,
                _ => AcceptError::Temporary("cannot deliver the message".into()),
            });
        }
    }
    if let Some(qid) = &queue_id {
        stores.runner.queued(qid.clone());
    }
    report(&incoming, &message, &id, &local);
    tell_delivered(config, stores, &incoming, &message, &id, local_dsn).await;
    Ok(id)
}

/// The DSN parameters of each route: its recipient's, and for a forward target (a route that is
/// not the recipient itself) the recipient's address as `ORCPT` when it had none.
fn route_dsn(incoming: &Incoming, routes: &[(String, usize)]) -> Vec<(String, RecipientDsn)> {
    routes
        .iter()
        .map(|(route, i)| {
            let rcpt = &incoming.recipients[*i];
            let dsn = incoming.dsn.recipient(rcpt);
            let dsn = if *route == crate::address::canonical(rcpt) {
                dsn
            } else {
                dsn.forwarded_from(rcpt)
            };
            (route.clone(), dsn)
        })
        .collect()
}

/// A `delivered` report for the mailboxes written whose recipient asked `NOTIFY=SUCCESS`. The
/// message is already taken: a report that cannot be queued is logged, never a reason to refuse.
async fn tell_delivered(
    config: &Config,
    stores: &Stores<'_>,
    incoming: &Incoming,
    message: &[u8],
    id: &str,
    local: Vec<(String, RecipientDsn)>,
) {
    let delivered: Vec<_> = local
        .into_iter()
        .filter(|(_, dsn)| dsn.wants_success())
        .map(|(m, dsn)| {
            (
                notify::success(&m, None, "250 2.0.0 delivered locally"),
                dsn,
            )
        })
        .collect();
    if delivered.is_empty() {
        return;
    }
    let about = About {
        id,
        sender: &incoming.sender,
        message,
        received_ms: crate::event::now_ms(),
        dsn: &incoming.dsn.message,
    };
    let told = notify::tell(config, stores.queue, &about, Notice::Success, delivered).await;
    if let Told::Queued(report_id) = told {
        stores.runner.queued(report_id);
    }
}

/// One `accepted` event per recipient, then one `delivered-locally` per mailbox written.
fn report(incoming: &Incoming, message: &[u8], id: &str, local: &[String]) {
    let facts = MessageFacts::of(id, &incoming.sender, message, crate::event::now_ms());
    // The same words the SMTP session answers with (`Session::stored`).
    let reply = format!("250 2.0.0 OK queued as {id}");
    let in_session = |e: Event| {
        e.in_session(&incoming.session, incoming.client)
            .with_tls(incoming.tls.as_deref())
            .with_reply(&reply)
    };
    let mut events: Vec<Event> = incoming
        .recipients
        .iter()
        .map(|r| in_session(Event::new(Kind::Accepted, &facts, r)))
        .collect();
    events.extend(
        local
            .iter()
            .map(|m| in_session(Event::new(Kind::DeliveredLocally, &facts, m))),
    );
    crate::outcome::emit_all(events);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        std::fs::write(
            dir.join("mail.conf"),
            "domains=local.test\nhostname=mx.local.test\n",
        )
        .unwrap();
        std::fs::write(dir.join("user.conf"), "user.bob@local.test=secret\n").unwrap();
        Config::load(dir).unwrap().0
    }

    fn incoming(recipients: &[&str]) -> Incoming {
        Incoming {
            sender: "app@local.test".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            message: b"Subject: hello\r\nMessage-ID: <m1@app>\r\n\r\nbody\r\n".to_vec(),
            session: "S1".into(),
            client: "127.0.0.1".parse().unwrap(),
            tls: None,
            dsn: Dsn::default(),
            may_sign: false,
        }
    }

    use crate::queue::FileQueue;
    use crate::store::FileMailboxes;

    #[tokio::test]
    async fn one_id_for_the_queue_file_and_the_mailbox_copies() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path());
        let queue = FileQueue::new(config.queue_dir(), config.failed_dir());
        let mailboxes = FileMailboxes::new(config.users_dir());
        let (runner, mut new_ids) = super::super::runner::channel();
        let stores = Stores {
            queue: &queue,
            mailboxes: &mailboxes,
            runner: &runner,
        };
        let id = accept(
            &config,
            &stores,
            incoming(&["bob@local.test", "far@remote.test"]),
        )
        .await
        .unwrap();
        assert!(
            queue.spool().path_of(&id).is_file(),
            "queue file smtp{id}.ser"
        );
        let mb = mailboxes.open("bob@local.test").unwrap();
        assert_eq!(mb.messages().len(), 1);
        assert!(
            mb.messages()[0].uid.starts_with(&format!("{id},S=")),
            "{} carries {id}",
            mb.messages()[0].uid
        );
        assert_eq!(new_ids.try_recv().ok(), Some(id.clone()), "runner told");
        // Local only: still an id, the stem of the mailbox file; nothing queued.
        drop(mb);
        let id2 = accept(&config, &stores, incoming(&["bob@local.test"]))
            .await
            .unwrap();
        assert_ne!(id2, id);
        assert!(!queue.spool().path_of(&id2).exists());
        assert!(new_ids.try_recv().is_err());
        let mb = mailboxes.open("bob@local.test").unwrap();
        assert!(mb
            .messages()
            .iter()
            .any(|m| m.uid.starts_with(&format!("{id2},S="))));
    }

    #[tokio::test]
    async fn a_failed_mailbox_takes_the_queue_file_back() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path());
        let queue = FileQueue::new(config.queue_dir(), config.failed_dir());
        // The mailbox folder cannot be made: a file stands where `users/` should be.
        std::fs::write(config.users_dir(), b"not a folder").unwrap();
        let mailboxes = FileMailboxes::new(config.users_dir());
        let (runner, mut new_ids) = super::super::runner::channel();
        let stores = Stores {
            queue: &queue,
            mailboxes: &mailboxes,
            runner: &runner,
        };
        let err = accept(
            &config,
            &stores,
            incoming(&["bob@local.test", "far@remote.test"]),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AcceptError::Temporary(_)), "{err:?}");
        let left: Vec<_> = std::fs::read_dir(config.queue_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ser"))
            .collect();
        assert!(left.is_empty(), "queue file taken back: {left:?}");
        assert!(new_ids.try_recv().is_err(), "runner not told");
    }
}
