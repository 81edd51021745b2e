//! Delivery to other servers: the smart hosts of `defaultsmtpservers` in order, or each
//! recipient domain's MX hosts. All recipients that go to the same place travel in one
//! transaction, and connections are kept for a short while to carry the next message (the
//! tracker sends bursts): `smtpdelivery.connectioncache` seconds, after which a task closes them
//! with QUIT, so that a smart host that reloaded its settings is not held on its old process. A host that cannot be reached or refuses our setup (5xx before any
//! recipient) is skipped for the next one; a per-recipient answer is final for this attempt.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{
    AttemptError, ClientSettings, Connection, Outgoing, RecipientOutcome, Reply, Target, Timeouts,
};
use super::mx::{MxError, MxResolver};
use crate::address::domain_of;
use crate::config::Config;
use crate::dsn::Dsn;

/// Idle connections kept per destination.
const POOL_PER_KEY: usize = 4;

/// What became of one recipient in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutcome {
    Delivered {
        host: String,
        reply: String,
        via: Via,
        /// The server offers DSN and was given the recipient's `NOTIFY=` and `ORCPT=`: any
        /// report is its to send. Otherwise a `NOTIFY=SUCCESS` gets a `relayed` report from us.
        dsn_passed: bool,
    },
    Failed {
        host: Option<String>,
        status: String,
        reply: String,
        via: Via,
    },
    Deferred {
        reply: String,
        via: Via,
    },
}

/// The server an outcome came from, when one answered: for the outcome event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Via {
    pub host: Option<String>,
    pub ip: Option<IpAddr>,
    /// The TLS version of the connection (`TLSv1.3`), if it was encrypted.
    pub tls: Option<String>,
}

impl RemoteOutcome {
    /// A temporary failure that no server answered (DNS, setup, no host reachable).
    fn deferred(reply: String) -> RemoteOutcome {
        RemoteOutcome::Deferred {
            reply,
            via: Via::default(),
        }
    }

    pub fn via(&self) -> &Via {
        match self {
            RemoteOutcome::Delivered { via, .. }
            | RemoteOutcome::Failed { via, .. }
            | RemoteOutcome::Deferred { via, .. } => via,
        }
    }
}

struct Pooled {
    conn: Connection,
    since: Instant,
}

/// Idle connections by destination (`host|address`), newest last.
type Pool = HashMap<String, Vec<Pooled>>;

pub struct Remote {
    settings: Option<ClientSettings>,
    settings_error: Option<String>,
    resolver: Result<MxResolver, String>,
    pool: Arc<Mutex<Pool>>,
    /// `smtpdelivery.connectioncache`: how long an idle connection is kept; zero keeps none.
    pool_idle: Duration,
    our_names: Vec<String>,
    our_ips: Vec<IpAddr>,
    our_port: u16,
}

impl Remote {
    pub fn new(config: &Config) -> Remote {
        let (settings, settings_error) =
            match super::client::verifying_config(config.mail.delivery_ca_file.as_deref()) {
                Ok(verifying) => (
                    Some(ClientSettings {
                        helo_name: config.mail.hostname.clone(),
                        tls: config.mail.delivery_tls,
                        verifying,
                        timeouts: Timeouts::default(),
                    }),
                    None,
                ),
                Err(e) => {
                    tracing::error!(
                        "outbound TLS cannot be set up, remote delivery is deferred: {e}"
                    );
                    (None, Some(e))
                }
            };
        let resolver = MxResolver::new(&config.mail.dns_servers);
        if let Err(e) = &resolver {
            if config.mail.smart_hosts.is_empty() {
                tracing::error!(
                    "no DNS resolver ({e}): direct delivery is deferred until it works"
                );
            }
        }
        let mut our_names = vec![config.mail.hostname.to_ascii_lowercase()];
        our_names.extend(config.mail.domains.iter().cloned());
        Remote {
            settings,
            settings_error,
            resolver,
            pool: Arc::new(Mutex::new(HashMap::new())),
            pool_idle: config.mail.delivery_connection_cache,
            our_names,
            our_ips: config.mail.listen_addresses.clone(),
            our_port: config.mail.smtp_port,
        }
    }

    /// Delivers `message` to `recipients` from `sender`, with the DSN parameters of the message
    /// and of those recipients that have any; one outcome per recipient, in order.
    pub async fn deliver(
        &self,
        config: &Config,
        id: &str,
        (sender, dsn): (&str, &Dsn),
        recipients: &[String],
        message: &[u8],
    ) -> Vec<RemoteOutcome> {
        let Some(settings) = &self.settings else {
            let reply = format!(
                "451 4.3.0 outbound TLS setup failed: {}",
                self.settings_error.clone().unwrap_or_default()
            );
            return recipients
                .iter()
                .map(|_| RemoteOutcome::deferred(reply.clone()))
                .collect();
        };
        if !config.mail.smart_hosts.is_empty() {
            let mut targets = Vec::new();
            for host in &config.mail.smart_hosts {
                match tokio::net::lookup_host((host.host.as_str(), host.port)).await {
                    Ok(addrs) => {
                        for addr in addrs {
                            targets.push(Target {
                                host: host.host.clone(),
                                addr,
                                implicit_tls: host.port == 465,
                                credentials: host.credentials.clone(),
                                smart_host: true,
                            });
                        }
                    }
                    Err(e) => tracing::warn!(
                        queue_id = id,
                        "smart host {}: cannot resolve: {e}",
                        host.host
                    ),
                }
            }
            return self
                .try_targets(settings, id, (sender, dsn), recipients, message, targets)
                .await;
        }
        // Direct delivery: one group per recipient domain.
        let mut outcomes: Vec<Option<RemoteOutcome>> = vec![None; recipients.len()];
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, rcpt) in recipients.iter().enumerate() {
            let domain = domain_of(rcpt).unwrap_or_default();
            match groups.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((domain, vec![i])),
            }
        }
        for (domain, idx) in groups {
            let group: Vec<String> = idx.iter().map(|i| recipients[*i].clone()).collect();
            let results = self
                .deliver_domain(
                    config,
                    settings,
                    id,
                    &domain,
                    (sender, dsn),
                    &group,
                    message,
                )
                .await;
            for (i, outcome) in idx.into_iter().zip(results) {
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(RemoteOutcome::deferred("451 4.3.0 not attempted".into())))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver_domain(
        &self,
        config: &Config,
        settings: &ClientSettings,
        id: &str,
        domain: &str,
        (sender, dsn): (&str, &Dsn),
        recipients: &[String],
        message: &[u8],
    ) -> Vec<RemoteOutcome> {
        let all = |o: RemoteOutcome| recipients.iter().map(|_| o.clone()).collect::<Vec<_>>();
        let resolver = match &self.resolver {
            Ok(r) => r,
            Err(e) => {
                return all(RemoteOutcome::deferred(format!(
                    "451 4.4.3 no DNS resolver: {e}"
                )))
            }
        };
        let mx = match resolver.resolve(domain, &self.our_names).await {
            Ok(mx) => mx,
            Err(e) if e.is_permanent() => {
                let code = if matches!(e, MxError::NullMx(_)) {
                    556
                } else {
                    550
                };
                return all(RemoteOutcome::Failed {
                    host: None,
                    status: e.status().to_string(),
                    reply: format!("{code} {} {e}", e.status()),
                    via: Via::default(),
                });
            }
            Err(e) => {
                if matches!(e, MxError::Loop(_)) {
                    tracing::error!(
                        queue_id = id,
                        domain,
                        "{e}: the best MX host for {domain} is this server"
                    );
                }
                return all(RemoteOutcome::deferred(format!("451 {} {e}", e.status())));
            }
        };
        let targets = mx
            .into_iter()
            .flat_map(|t| {
                let port = config.mail.mx_port;
                t.addrs.into_iter().map(move |ip| Target {
                    host: t.host.clone(),
                    addr: SocketAddr::new(ip, port),
                    implicit_tls: false,
                    credentials: None,
                    smart_host: false,
                })
            })
            .collect();
        self.try_targets(settings, id, (sender, dsn), recipients, message, targets)
            .await
    }

    fn is_self(&self, addr: SocketAddr) -> bool {
        addr.port() == self.our_port && super::mx::is_our_address(addr.ip(), &self.our_ips)
    }

    fn take_pooled(&self, key: &str) -> Option<Connection> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.get_mut(key)?;
        while let Some(p) = list.pop() {
            if p.since.elapsed() < self.pool_idle {
                return Some(p.conn);
            }
            // Too old (its closing task has not run yet): dropping closes our side.
        }
        None
    }

    /// Keeps `conn` for the next message to `key`, and closes it once it has been idle for
    /// `pool_idle`; a connection that does not fit is closed now.
    async fn put_pooled(&self, key: String, conn: Connection) {
        let refused = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let list = pool.entry(key).or_default();
            if list.len() < POOL_PER_KEY {
                list.push(Pooled {
                    conn,
                    since: Instant::now(),
                });
                None
            } else {
                Some(conn)
            }
        };
        match refused {
            Some(conn) => conn.quit().await,
            None => {
                let (pool, idle) = (Arc::clone(&self.pool), self.pool_idle);
                tokio::spawn(async move {
                    tokio::time::sleep(idle).await;
                    for p in take_expired(&pool, idle) {
                        p.conn.quit().await;
                    }
                });
            }
        }
    }

    async fn try_targets(
        &self,
        settings: &ClientSettings,
        id: &str,
        (sender, dsn): (&str, &Dsn),
        recipients: &[String],
        message: &[u8],
        targets: Vec<Target>,
    ) -> Vec<RemoteOutcome> {
        let mut last_error = String::from("451 4.4.1 no host to deliver to");
        let out = Outgoing {
            sender,
            recipients,
            message,
            dsn,
        };
        for target in targets {
            if self.is_self(target.addr) {
                tracing::error!(queue_id = id, host = %target.host, addr = %target.addr, "mail loops back to myself; skipping this host");
                last_error = format!(
                    "451 4.4.6 mail loops back to myself ({} {})",
                    target.host, target.addr
                );
                continue;
            }
            match self.try_target(settings, id, &out, &target).await {
                Ok(outcomes) => return outcomes,
                Err(reply) => last_error = reply,
            }
        }
        recipients
            .iter()
            .map(|_| RemoteOutcome::deferred(last_error.clone()))
            .collect()
    }

    /// One transaction with one host, on a kept connection when there is one (and on a fresh
    /// one should that have gone stale); `Err` with the reply to keep when it did not happen.
    async fn try_target(
        &self,
        settings: &ClientSettings,
        id: &str,
        out: &Outgoing<'_>,
        target: &Target,
    ) -> Result<Vec<RemoteOutcome>, String> {
        let key = format!("{}|{}", target.host, target.addr);
        let started = Instant::now();
        let mut pooled = self.take_pooled(&key);
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => Connection::open(target, settings).await.map_err(|e| {
                    log_attempt_error(id, target, out.recipients, &e);
                    attempt_error_reply(&e)
                })?,
            };
            match conn.send(*out).await {
                Ok(results) => {
                    let outcomes = remote_outcomes(results, target, &conn);
                    // Each recipient's outcome is logged by the attempt's outcome event.
                    tracing::debug!(
                        queue_id = id, host = %target.host, addr = %target.addr,
                        delay_ms = started.elapsed().as_millis() as u64, "delivery transaction done"
                    );
                    if !self.pool_idle.is_zero() && conn.reset().await {
                        self.put_pooled(key, conn).await;
                    } else {
                        conn.quit().await;
                    }
                    return Ok(outcomes);
                }
                // The kept connection had gone stale: open a fresh one once.
                Err(AttemptError::Network(_)) if reused => continue,
                Err(e) => {
                    log_attempt_error(id, target, out.recipients, &e);
                    return Err(attempt_error_reply(&e));
                }
            }
        }
    }
}

/// What the server said of each recipient, with how the message went (host, address, TLS) and
/// whether the DSN parameters went on.
fn remote_outcomes(
    results: Vec<RecipientOutcome>,
    target: &Target,
    conn: &Connection,
) -> Vec<RemoteOutcome> {
    let via = Via {
        host: Some(target.host.clone()),
        ip: Some(target.addr.ip()),
        tls: conn.tls_version(),
    };
    let dsn_passed = conn.extensions().dsn;
    results
        .into_iter()
        .map(|r| match r {
            RecipientOutcome::Delivered(reply) => RemoteOutcome::Delivered {
                host: target.host.clone(),
                reply: reply.to_string(),
                via: via.clone(),
                dsn_passed,
            },
            RecipientOutcome::Failed(reply) => RemoteOutcome::Failed {
                host: Some(target.host.clone()),
                status: status_of(&reply, "5.0.0"),
                reply: reply.to_string(),
                via: via.clone(),
            },
            RecipientOutcome::Deferred(reply) => RemoteOutcome::Deferred {
                reply: reply.to_string(),
                via: via.clone(),
            },
        })
        .collect()
}

/// Removes the connections idle for `idle` or longer (reused ones were taken out, or put back
/// with a new time and a closing task of their own).
fn take_expired(pool: &Mutex<Pool>, idle: Duration) -> Vec<Pooled> {
    let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    let mut expired = Vec::new();
    for list in pool.values_mut() {
        let (old, fresh): (Vec<Pooled>, Vec<Pooled>) = std::mem::take(list)
            .into_iter()
            .partition(|p| p.since.elapsed() >= idle);
        *list = fresh;
        expired.extend(old);
    }
    pool.retain(|_, list| !list.is_empty());
    expired
}

fn log_attempt_error(id: &str, target: &Target, recipients: &[String], e: &AttemptError) {
    let to = recipients.join(",");
    match e {
        AttemptError::Refused { .. } | AttemptError::Loop(_) => tracing::error!(
            queue_id = id, to = %to, host = %target.host, addr = %target.addr, outcome = "deferred",
            "delivery attempt: {e} (check the smart host settings: the message stays queued)"
        ),
        _ => tracing::warn!(
            queue_id = id, to = %to, host = %target.host, addr = %target.addr, outcome = "deferred",
            "delivery attempt: {e}"
        ),
    }
}

/// The text kept as a recipient's last error when a whole attempt failed.
fn attempt_error_reply(e: &AttemptError) -> String {
    match e {
        AttemptError::Refused { reply, .. } | AttemptError::Temporary { reply, .. } => {
            format!("{e} ({reply})")
        }
        AttemptError::Loop(_) => format!("451 4.4.6 {e}"),
        AttemptError::Tls(_) => format!("451 4.7.5 {e}"),
        AttemptError::Network(_) => format!("451 4.4.1 {e}"),
    }
}

/// The enhanced status code at the start of a reply's text, or `default`.
fn status_of(reply: &Reply, default: &str) -> String {
    reply.enhanced_code().unwrap_or(default).to_string()
}
