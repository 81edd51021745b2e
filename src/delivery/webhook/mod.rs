//! Inbound webhooks: tell an application about new mail instead of being polled (issue 18).
//!
//! Design. A mailbox with `userprop.ADDRESS.webhook=URL` gets one HTTP POST per message delivered
//! to it. The call is decided where the message enters the mailbox, and nowhere else: the
//! [`Notifying`] decorator wraps the `store::Mailboxes` backend, so the accept step and queue
//! attempts (forwards, `defaultuser`) stay as they were. Right after a delivery is durable, and
//! before `deliver` returns (so before the SMTP 250), it writes one [`PendingCall`] per such
//! mailbox into the call spool ([`CallSpool`]; the file backend `spool::FileCallSpool` keeps
//! `webhooks/` in the mail root), so a crash or restart never forgets a call. The spool is keyed
//! by mailbox and message id: a message delivered twice into one mailbox (an attempt repeated
//! after a crash) is called once.
//!
//! The `worker` task owns the calls: those found in the spool at start and those the decorator
//! hands over. It keeps them in a timer heap and makes at most [`CONCURRENCY`] calls at once.
//! One call (`call`): read the message from the mailbox, build the JSON (`payload`, schema in
//! docs/webhook.md), sign it the Standard Webhooks way (`sign`), POST it (`client`: 10 s, no
//! redirects, https verified as outbound SMTP verifies). Any 2xx is success; anything else is
//! tried again after 1, 2, 4 ... units of `webhook.retrybase` (60 s), at most 60 units apart,
//! until 1,440 units (a day) after delivery, then given up. Each call's outcome is one event
//! through `outcome::emit` (`webhook-sent`, `webhook-failed`, `webhook-expired`), so the log,
//! `/metrics` and the history see it as they see every other outcome. With
//! `userprop.ADDRESS.webhook.delete=true` a successful call deletes the message through
//! `Mailboxes::open` (the POP3 session lock: a session holding the mailbox makes it wait).

pub mod call;
pub mod client;
pub mod payload;
pub mod sign;
pub mod spool;
pub mod worker;

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::store::{DeliverError, Mailboxes, MessageInfo, OpenError, OpenMailbox};

pub use spool::FileCallSpool;

/// Calls in flight at once: an application that is slow must not tie up more than this.
pub const CONCURRENCY: usize = 4;

/// One call still to make (or, with `sent`, a successful call whose deletion is still to do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCall {
    /// The mailbox (canonical address).
    pub mailbox: String,
    /// The message's UIDL in that mailbox: the `webhook-id`, the same across retries.
    pub uid: String,
    /// The message's one id (log lines, history).
    pub id: String,
    /// When the message was delivered (epoch ms): the retries end a day after.
    pub created_ms: u64,
    /// Calls made so far.
    pub attempts: u32,
    /// When the next call (or deletion) is due (epoch ms).
    pub next_ms: u64,
    /// The call succeeded; only the deletion (`webhook.delete`) is left.
    #[serde(default)]
    pub sent: bool,
}

/// Where pending calls are kept so a restart does not forget them. The file backend is
/// [`FileCallSpool`]; a database backend would keep one row per (mailbox, id).
#[async_trait]
pub trait CallSpool: Send + Sync + 'static {
    /// Keeps a new call durably; `false` (and nothing written) when one for the same mailbox and
    /// message id is already kept.
    async fn add(&self, call: &PendingCall) -> io::Result<bool>;
    /// Saves a call's new state durably.
    async fn update(&self, call: &PendingCall) -> io::Result<()>;
    /// Forgets a call; one already gone is not an error.
    async fn remove(&self, call: &PendingCall) -> io::Result<()>;
    /// Every kept call (at start). Entries that cannot be read are logged and skipped.
    async fn pending(&self) -> io::Result<Vec<PendingCall>>;
}

/// How the server's current configuration is reached (a reload swaps it).
pub type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;

/// The `Mailboxes` backend, plus: every delivery into a mailbox with a webhook leaves a pending
/// call in the spool before it returns, and hands it to the worker.
pub struct Notifying {
    inner: Arc<dyn Mailboxes>,
    spool: Arc<dyn CallSpool>,
    config: ConfigSource,
    worker: mpsc::UnboundedSender<PendingCall>,
}

impl Notifying {
    pub fn new(
        inner: Arc<dyn Mailboxes>,
        spool: Arc<dyn CallSpool>,
        config: ConfigSource,
        worker: mpsc::UnboundedSender<PendingCall>,
    ) -> Notifying {
        Notifying {
            inner,
            spool,
            config,
            worker,
        }
    }

    /// Records the calls a delivery of message `id` into `mailboxes` (UIDs `uids`) asks for.
    /// A spool that cannot be written costs the call, never the message: it is logged as an
    /// ERROR and the delivery stands (refusing now would make the client send it twice).
    async fn record_calls(&self, id: &str, mailboxes: &[String], uids: &[String]) {
        let config = (self.config)();
        for (mailbox, uid) in mailboxes.iter().zip(uids) {
            if config.users.webhook(mailbox).is_none() {
                continue;
            }
            let now = crate::event::now_ms();
            let call = PendingCall {
                mailbox: crate::address::canonical(mailbox),
                uid: uid.clone(),
                id: id.to_string(),
                created_ms: now,
                attempts: 0,
                next_ms: now,
                sent: false,
            };
            match self.spool.add(&call).await {
                Ok(true) => {
                    // The worker stops only at shutdown; the spool has the call for the next start.
                    let _ = self.worker.send(call);
                }
                Ok(false) => tracing::info!(
                    id, mailbox = %call.mailbox,
                    "message delivered again into a mailbox whose webhook already has it: no second call"
                ),
                Err(e) => tracing::error!(
                    id, mailbox = %call.mailbox, "cannot keep the webhook call, it will not be made: {e}"
                ),
            }
        }
    }
}

#[async_trait]
impl Mailboxes for Notifying {
    async fn deliver(
        &self,
        id: &str,
        mailboxes: &[String],
        return_path: &str,
        message: Arc<Vec<u8>>,
    ) -> Result<Vec<String>, DeliverError> {
        let uids = self
            .inner
            .deliver(id, mailboxes, return_path, message)
            .await?;
        self.record_calls(id, mailboxes, &uids).await;
        Ok(uids)
    }

    async fn list(&self, mailbox: &str) -> Result<Vec<MessageInfo>, OpenError> {
        self.inner.list(mailbox).await
    }

    async fn read(&self, mailbox: &str, uid: &str) -> io::Result<Vec<u8>> {
        self.inner.read(mailbox, uid).await
    }

    async fn head(&self, mailbox: &str, uid: &str, limit: usize) -> io::Result<Vec<u8>> {
        self.inner.head(mailbox, uid, limit).await
    }

    async fn open(&self, mailbox: &str) -> Result<Box<dyn OpenMailbox>, OpenError> {
        self.inner.open(mailbox).await
    }

    async fn recover(&self) -> io::Result<usize> {
        self.inner.recover().await
    }
}
