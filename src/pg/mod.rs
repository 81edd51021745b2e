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

pub mod bodies;
pub mod migrate;
pub mod tls;
pub mod url;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::mpsc;

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
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections.max(1))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
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
        })
    }

    /// A connection from the pool; an error names the database, never the password.
    pub async fn client(&self) -> io::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| io::Error::other(format!("database {}: {e}", self.location)))
    }

    /// The error for a failed statement, with the database named.
    pub fn err(&self, e: tokio_postgres::Error) -> io::Error {
        io::Error::other(format!("database {}: {e}", self.location))
    }

    /// Receives the payloads of `NOTIFY channel` on a connection of its own, reopened (after a
    /// pause) when it drops; the receiver ends when the sender's task ends with the runtime.
    pub fn listen(&self, channel: &'static str) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let db = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = db.listen_once(channel, &tx).await {
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
    ) -> Result<(), String> {
        use futures_util::StreamExt;
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
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
        let listened = client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = listened {
            driver.abort();
            return Err(e);
        }
        while let Some(payload) = msg_rx.recv().await {
            if tx.send(payload).is_err() {
                break;
            }
        }
        driver.abort();
        Ok(())
    }
}
