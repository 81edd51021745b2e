//! The tokio driver of one SMTP session: reads bytes, feeds `smtp::Session`, writes its replies,
//! and performs its actions (storing a message on the blocking pool). Replies are buffered and
//! flushed only before the driver would block on a read, which is what PIPELINING needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{normalize_ip, Shared};
use crate::config::Config;
use crate::delivery::{self, ClientRights};
use crate::queue::QueueError;
use crate::smtp::{Env, Envelope, Output, RcptDecision, Session, SessionParams, StoreError};
use crate::store::DeliverError;

/// RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command or data.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

struct ConnEnv<'a> {
    config: &'a Config,
    rights: ClientRights,
    session_id: &'a str,
    client: std::net::IpAddr,
}

impl Env for ConnEnv<'_> {
    fn check_recipient(&self, sender: &str, recipient: &str) -> RcptDecision {
        let decision = delivery::decide(self.config, self.rights, sender, recipient);
        if decision != RcptDecision::Accept {
            tracing::info!(
                session = %self.session_id, client = %self.client, from = %format!("<{sender}>"),
                to = %recipient, decision = ?decision, "recipient refused"
            );
        }
        decision
    }

    fn storage_available(&self) -> bool {
        free_disk_bytes(&self.config.dir).is_none_or(|free| free >= self.config.mail.min_disk_free)
    }

    fn now_rfc5322(&self) -> String {
        chrono::Local::now().to_rfc2822()
    }

    fn new_message_id(&self) -> String {
        let now = chrono::Utc::now();
        format!(
            "<{}.{:x}@{}>",
            now.format("%Y%m%d%H%M%S%.6f"),
            rand_u64(),
            self.config
                .mail
                .hostname
                .trim_start_matches('[')
                .trim_end_matches(']')
        )
    }
}

/// Free bytes for unprivileged users on the file system of `dir`; `None` when it cannot be told.
fn free_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        Some(stat.f_bavail as u64 * stat.f_frsize as u64)
    }
}

/// Randomness for Message-IDs; uniqueness, not secrecy, is what matters.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let ip = normalize_ip(peer.ip());
    let config = shared.config();
    let may_relay = config.mail.relay_ip_allowed(ip) || shared.pop_before_smtp(ip);
    let session_id = shared.session_id();
    let mut session = Session::new(SessionParams {
        hostname: config.mail.hostname.clone(),
        session_id: session_id.clone(),
        client_ip: ip,
        max_message_size: config.mail.max_message_size,
        trusted: may_relay,
    });
    drop(config);
    tracing::debug!(session = %session_id, client = %ip, "SMTP connection");
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out = Vec::new();
    if writer.write_all(&session.greeting()).await.is_err() {
        return;
    }
    let rights = ClientRights { may_relay };
    loop {
        // Run the session over everything buffered, until it needs more input.
        loop {
            let config = shared.config();
            let env = ConnEnv {
                config: &config,
                rights,
                session_id: &session_id,
                client: ip,
            };
            let consumed = session.receive(&buf, &env, &mut out);
            buf.drain(..consumed);
            let mut stored = false;
            for output in out.drain(..) {
                match output {
                    Output::Reply(bytes) => {
                        if writer.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Output::Store(envelope) => {
                        let result = store(&shared, &session_id, ip, envelope).await;
                        if writer
                            .write_all(&session.store_result(result))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        stored = true;
                    }
                    Output::Close => {
                        let _ = writer.flush().await;
                        let _ = writer.shutdown().await;
                        return;
                    }
                }
            }
            if consumed == 0 && !stored {
                break;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
        let mut chunk = [0u8; 16384];
        let read = tokio::select! {
            r = tokio::time::timeout(READ_TIMEOUT, reader.read(&mut chunk)) => r,
            _ = stop.changed(), if !*stop.borrow() => {
                if buf.is_empty() && !session.is_in_data() {
                    let _ = writer.write_all(&session.shutdown_reply()).await;
                    let _ = writer.flush().await;
                    return;
                }
                continue;
            }
        };
        match read {
            Err(_elapsed) => {
                tracing::info!(session = %session_id, client = %ip, "SMTP timeout");
                let _ = writer.write_all(&session.timeout_reply()).await;
                let _ = writer.flush().await;
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        if *stop.borrow() && buf.is_empty() && !session.is_in_data() {
            let _ = writer.write_all(&session.shutdown_reply()).await;
            let _ = writer.flush().await;
            return;
        }
    }
}

/// Stores an accepted message: remote recipients into the queue first (one file), then a copy in
/// each local mailbox; if the mailboxes fail, the queue file is taken back so that the client's
/// retry does not duplicate the remote copy.
async fn store(
    shared: &Arc<Shared>,
    session_id: &str,
    ip: std::net::IpAddr,
    envelope: Envelope,
) -> Result<String, StoreError> {
    let shared = shared.clone();
    let session_id = session_id.to_string();
    tokio::task::spawn_blocking(move || {
        let config = shared.config();
        let (local, remote) = delivery::split(&config, &envelope.recipients);
        let size = envelope.header_prefix.len() + envelope.data.len();
        let mut message = envelope.header_prefix;
        message.extend_from_slice(&envelope.data);
        let queue_id = if remote.is_empty() {
            None
        } else {
            Some(shared.queue.enqueue(&envelope.sender, &remote, &message).map_err(|e| {
                tracing::error!(session = %session_id, "cannot queue a message: {e}");
                match e {
                    QueueError::Full(_) => StoreError::Full,
                    _ => StoreError::Temporary("cannot queue the message".into()),
                }
            })?)
        };
        let uids = if local.is_empty() {
            Vec::new()
        } else {
            match shared.store.deliver(&local, &envelope.sender, &message) {
                Ok(uids) => uids,
                Err(e) => {
                    tracing::error!(session = %session_id, "cannot deliver to {}: {e}", local.join(", "));
                    if let Some(id) = &queue_id {
                        if let Err(e) = shared.queue.remove(id) {
                            tracing::error!(session = %session_id, "cannot take back queue file {id}: {e}");
                        }
                    }
                    return Err(match e {
                        DeliverError::Full(_) => StoreError::Full,
                        _ => StoreError::Temporary("cannot deliver the message".into()),
                    });
                }
            }
        };
        if let Some(id) = &queue_id {
            shared.runner.queued(id.clone());
        }
        // A mailbox uid carries its size after a comma (`,S=`): the id shown is the part before.
        let id = queue_id
            .clone()
            .or_else(|| uids.first().map(|u| u.split(',').next().unwrap_or(u).to_string()))
            .unwrap_or_default();
        tracing::info!(
            session = %session_id,
            client = %ip,
            from = %format!("<{}>", envelope.sender),
            to = %envelope.recipients.join(","),
            size,
            local = %local.join(","),
            queued = %remote.join(","),
            id = %id,
            "message accepted"
        );
        Ok(id)
    })
    .await
    .unwrap_or_else(|e| Err(StoreError::Temporary(format!("storage task failed: {e}"))))
}
