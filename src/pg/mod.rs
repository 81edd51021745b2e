//! The PostgreSQL connection shared by the database backends (`queue::postgres`,
//! `store::postgres`): the pool, the URL and its TLS policy, and the schema migrations.
//!
//! Design. This module sits low: it knows tokio-postgres, not the queue or the mailboxes, and
//! nothing here reads a configuration file (`config` hands over `Settings`). A pool of at most
//! `store.maxconnections` connections serves every short transaction; nothing holds a connection
//! across a client's conversation. The password comes from `store.passwordfile` (mode 0600) or
//! the URL. Times that decide who holds what (leases) are taken from the database's clock, the
//! one clock every server shares. `NOTIFY` wakes the other servers; `listen` gives a backend its
//! own connection for that, outside the pool, reopened when it drops.
//!
//! Failures (issue 15). A server starts while its database is away: the pool makes no
//! connection until one is asked for, and the schema check runs at the first request that finds
//! the database reachable ([`Database::client`]), so every request before that fails the way a
//! request during an outage does (SMTP 4xx, POP3 `[SYS/TEMP]`) and the first one after it
//! succeeds: nothing needs a restart. Connections the database closed (a restart) are dropped
//! by the pool's own check. A connection to a server that has become read-only (a failover that
//! left the old primary up, or a proxy still pointing at it) stays open and answers SQLSTATE
//! 25006 to every write; the first such answer marks every connection made before it as stale
//! ([`Database::err`]), the pool drops them as they come back, and new ones are made with the
//! URL's `target_session_attrs`, which finds the new primary. The `listen` connection writes
//! nothing, so it never hears 25006: it asks every [`LISTEN_CHECK`] whether its server is still
//! writable (`SHOW transaction_read_only`) and, when not, or when no answer comes, reconnects the
//! same way; otherwise it would stay on the old primary and miss every `NOTIFY` of the new one,
//! and a connection whose peer vanished without a word would never be noticed.

pub mod bodies;
pub mod migrate;
pub mod tls;
pub mod url;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    HookError, Manager, ManagerConfig, Metrics, Pool, PoolBuilder, RecyclingMethod,
};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;

/// How often a `listen` connection checks that its server still takes writes (and answers).
pub const LISTEN_CHECK: Duration = Duration::from_secs(5);

/// What the server's configuration says about the database (the `store.*` keys).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `store.url`, as written.
    pub url: String,
    /// `store.passwordfile`, resolved against mail.conf's folder.
    pub password_file: Option<PathBuf>,
    /// `store.maxconnections` (10): the pool's size.
    pub max_connections: usize,
    /// `store.leaseseconds` (60): how long a lease lasts without renewal.
    pub lease: Duration,
    /// `store.sweepseconds` (300): how often this server removes bodies nothing refers to.
    pub sweep: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("store.url {url}: {why}")]
    Url { url: String, why: String },
    #[error("store.passwordfile {path}: {why}")]
    PasswordFile { path: PathBuf, why: String },
    #[error("database {url}: {why}")]
    Connect { url: String, why: String },
    #[error("database {url}: the schema is version {found}, newer than this jes knows ({known}); upgrade jes")]
    NewerSchema { url: String, found: i64, known: i64 },
    #[error("database {url}: schema migration failed: {why}")]
    Migrate { url: String, why: String },
}

/// One server's handle on the database. Cloning shares the pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    config: Arc<tokio_postgres::Config>,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The URL with any password masked, for log lines and `jes check`.
    pub location: String,
    pub lease: Duration,
    /// Whether the schema has been checked (and brought up to date) since this server started.
    schema_ready: Arc<AtomicBool>,
    /// One schema check at a time; the others wait for its result.
    schema_check: Arc<tokio::sync::Mutex<()>>,
    /// When a connection last answered "read-only" (SQLSTATE 25006): connections made before
    /// then are not handed out again.
    stale_before: Arc<Mutex<Option<Instant>>>,
}

/// The pool: `store.maxconnections` connections, bounded waits, and the check that drops a
/// connection made before the last read-only answer instead of handing it out again.
fn pool_builder(
    manager: Manager,
    settings: &Settings,
    stale_before: Arc<Mutex<Option<Instant>>>,
) -> PoolBuilder {
    let check = move |_: &mut deadpool_postgres::ClientWrapper, m: &Metrics| {
        let stale = *stale_before.lock().unwrap_or_else(|p| p.into_inner());
        match stale {
            Some(t) if m.created <= t => Err(HookError::message("made before a read-only answer")),
            _ => Ok(()),
        }
    };
    Pool::builder(manager)
        .max_size(settings.max_connections.max(1))
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(15)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .pre_recycle(deadpool_postgres::Hook::sync_fn(check))
}

/// Reads `store.passwordfile`: refused unless only its owner can read it, as libpq does for
/// `.pgpass`. One line; the line end is not part of the password.
pub fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "has mode {mode:04o}; it must be readable by its owner only (chmod 600)"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

impl Database {
    /// Builds the pool (no connection is made until one is needed).
    pub fn open(settings: &Settings) -> Result<Database, PgError> {
        let location = url::masked(&settings.url);
        let target = url::parse(&settings.url).map_err(|why| PgError::Url {
            url: location.clone(),
            why,
        })?;
        let mut config = target.config.clone();
        if let Some(path) = &settings.password_file {
            let password = read_password_file(path).map_err(|why| PgError::PasswordFile {
                path: path.clone(),
                why,
            })?;
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("jes");
        let tls = tls::connector(target.ssl_mode, target.root_cert.as_deref()).map_err(|why| {
            PgError::Url {
                url: location.clone(),
                why,
            }
        })?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let stale_before: Arc<Mutex<Option<Instant>>> = Arc::default();
        let pool = pool_builder(manager, settings, stale_before.clone())
            .build()
            .map_err(|e| PgError::Url {
                url: location.clone(),
                why: e.to_string(),
            })?;
        Ok(Database {
            pool,
            config: Arc::new(config),
            tls,
            location,
            lease: settings.lease,
            schema_ready: Arc::default(),
            schema_check: Arc::default(),
            stale_before,
        })
    }

    /// A connection from the pool, once the schema is known to be this binary's; an error names
    /// the database, never the password.
    pub async fn client(&self) -> io::Result<deadpool_postgres::Object> {
        if !self.schema_ready.load(Ordering::Acquire) {
            let checked = self
                .ensure_schema()
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
            if let Some(version) = checked {
                tracing::info!(
                    "store: PostgreSQL {} is reachable (schema version {version})",
                    self.location
                );
            }
        }
        self.pooled().await
    }

    /// A connection from the pool without the schema check (the check itself uses it).
    pub(crate) async fn pooled(&self) -> io::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| io::Error::other(format!("database {}: {e}", self.location)))
    }

    /// For the tools that read what a database holds and must not change its schema (`jes
    /// check`, `jes trace`, `jes queue`): they check the version themselves, and requests skip
    /// the check-and-migrate `client` would make.
    pub fn without_migration(self) -> Database {
        self.schema_ready.store(true, Ordering::Release);
        self
    }

    /// Brings the schema up to date (`migrate`) unless that was done since this server started;
    /// returns whether it was done now (for the log line of a late start).
    pub async fn ensure_schema(&self) -> Result<Option<i64>, PgError> {
        let _turn = self.schema_check.lock().await;
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(None);
        }
        let version = migrate::migrate(self).await?;
        self.schema_ready.store(true, Ordering::Release);
        Ok(Some(version))
    }

    /// The error for a failed statement, with the database named. A "read-only" answer marks
    /// every connection made until now as stale (see the module's notes on failover).
    pub fn err(&self, e: tokio_postgres::Error) -> io::Error {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            let mut stale = self.stale_before.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            // One log line per failover, not one per statement that meets it.
            if stale.is_none_or(|t| now.duration_since(t) > Duration::from_secs(1)) {
                tracing::warn!(
                    "database {}: the server answered read-only (SQLSTATE 25006), as after a failover; reconnecting to a read-write server",
                    self.location
                );
            }
            *stale = Some(now);
        }
        io::Error::other(format!("database {}: {e}", self.location))
    }

    /// Receives the payloads of `NOTIFY channel` on a connection of its own, reopened (after a
    /// pause) when it drops; the receiver ends when the sender's task ends with the runtime.
    pub fn listen(&self, channel: &'static str) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let db = self.clone();
        tokio::spawn(async move {
            // Whether the last failed check was logged as a warning: a server that stays
            // read-only (a URL without target_session_attrs) is said once, not every 2 s.
            let mut warned = false;
            loop {
                if let Err(e) = db.listen_once(channel, &tx, &mut warned).await {
                    tracing::debug!("LISTEN {channel}: {e}");
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        rx
    }

    async fn listen_once(
        &self,
        channel: &str,
        tx: &mpsc::UnboundedSender<String>,
        warned: &mut bool,
    ) -> Result<(), String> {
        use futures_util::StreamExt;
        // Bounded: the driver's connect timeout covers the TCP connect only, and a server that
        // takes connections but answers nothing would hold this task for hours.
        let silent = || format!("no answer within {} s", LISTEN_CHECK.as_secs());
        let connecting = tokio::time::timeout(LISTEN_CHECK, self.config.connect(self.tls.clone()));
        let (client, mut connection) = connecting
            .await
            .map_err(|_| silent())?
            .map_err(|e| e.to_string())?;
        let (msg_tx, mut msg_rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if msg_tx.send(n.payload().to_string()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let listen = format!("LISTEN {channel}");
        let listened = match tokio::time::timeout(LISTEN_CHECK, client.batch_execute(&listen)).await
        {
            Err(_) => Err(silent()),
            Ok(done) => done.map_err(|e| e.to_string()),
        };
        if let Err(e) = listened {
            driver.abort();
            return Err(e);
        }
        let mut check = tokio::time::interval(LISTEN_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            tokio::select! {
                payload = msg_rx.recv() => match payload {
                    Some(payload) => {
                        if tx.send(payload).is_err() {
                            break Ok(());
                        }
                    }
                    None => break Err("the connection closed".to_string()),
                },
                _ = tx.closed() => break Ok(()),
                _ = check.tick() => match still_writable(&client).await {
                    Ok(()) => *warned = false,
                    Err(why) => {
                        if !*warned {
                            tracing::warn!(
                                "LISTEN {channel} on {}: {why}; reconnecting",
                                self.location
                            );
                            *warned = true;
                        }
                        break Err(why);
                    }
                },
            }
        };
        driver.abort();
        ended
    }
}

/// Whether the server behind `client` still takes writes: `Err` with why not, when it has become
/// read-only (a standby, or an old primary fenced after a failover) or does not answer within
/// [`LISTEN_CHECK`].
async fn still_writable(client: &tokio_postgres::Client) -> Result<(), String> {
    use tokio_postgres::SimpleQueryMessage;
    // The simple protocol: one round trip, nothing prepared (kind to a pooler in front).
    let asked = client.simple_query("SHOW transaction_read_only");
    let answer = match tokio::time::timeout(LISTEN_CHECK, asked).await {
        Err(_) => return Err(format!("no answer within {} s", LISTEN_CHECK.as_secs())),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(messages)) => messages.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.try_get(0).ok().flatten().map(str::to_string),
            _ => None,
        }),
    };
    match answer.as_deref() {
        Some("off") => Ok(()),
        Some(_) => Err("the database has become read-only (a failover?)".to_string()),
        None => Err("no answer to SHOW transaction_read_only".to_string()),
    }
}
