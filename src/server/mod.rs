//! The running server: listeners, the tokio drivers of the protocol sessions, configuration
//! reload, signals and graceful shutdown. It wires the parts together and holds no protocol logic.
//!
//! `crate::shared` holds what every connection can reach (with `conn_limits` and `throttle`, which
//! keep floods of connections and of bad passwords in check); `listen` binds the services and
//! accepts; `connection` is the one driver of a client connection (reads, writes, time limits,
//! STARTTLS), over which the handlers `smtp_conn` and `pop3_conn` run one session each; `reload`
//! watches the configuration and the certificate. The optional HTTP console (`crate::http`) is
//! started here too, on the same runtime, with the same `Shared`.

mod accounts;
mod connection;
mod heartbeat;
mod listen;
mod pop3_conn;
mod reload;
mod smtp_conn;
mod sweeper;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use listen::Service;

use crate::shared::Shared;

use crate::config::Config;
use crate::delivery::runner::{self, RunnerContext};
use crate::delivery::webhook::{self, CallSpool, FileCallSpool};
use crate::queue::{FileQueue, Queue};
use crate::store::{FileMailboxes, Mailboxes};

/// How long sessions get to finish after SIGTERM before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `serve` was asked to do.
pub struct ServeOptions {
    pub dir: PathBuf,
    /// Also log to stderr (a foreground run).
    pub log_to_stderr: bool,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr} ({what}): {source}{}",
        bind_hint(addr, source)
    )]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    RootLock(#[from] crate::store::root_lock::RootLockError),
    /// What `crate::preflight` found (also what `jes check` reports), one problem per line.
    #[error("{}", .0.join("\n"))]
    Preflight(Vec<String>),
    /// The PostgreSQL store (`store.url`) cannot be used.
    #[error("{0}")]
    Database(#[from] crate::pg::PgError),
    /// The accounts of the database store cannot be read (or hold a value the reader refuses).
    #[error("cannot read the accounts from {location}: {source}")]
    Accounts {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn bind_hint(addr: &SocketAddr, err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE: see contrib/jes.service, or set smtpport/pop3port above 1024)"
        }
        std::io::ErrorKind::AddrInUse => " (another server, or another jes, is already listening there)",
        _ => "",
    }
}

/// Raises the open-file limit to the hard limit: every connection is a descriptor.
fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited": a soft limit that is already unlimited needs nothing.
    let below_hard = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) => current < maximum,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("could not raise the open-file limit: {e}");
        }
    }
}

/// Makes freed large blocks go back to the system at once. Each password check allocates a
/// 19 MiB argon2 block (`auth::ARGON2_M_KIB`). glibc maps the first one and unmaps it when freed,
/// but then raises its mmap threshold above that size, so later blocks come from the per-thread
/// arenas of the blocking pool, which are never trimmed: a flood of failed logins left the
/// process at 600 MB. Setting the threshold explicitly also turns that adjustment off, so every
/// argon2 block is a mapping of its own, unmapped when the check ends.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Allocations from this size up get a mapping of their own (glibc's initial default).
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only changes the allocator's tuning; it is safe to call at any time.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } != 1 {
            tracing::warn!("could not set the allocator's mmap threshold; memory may stay high after a login flood");
        }
    }
}

fn ensure_dir(path: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|source| StartError::Dir {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs the server until SIGTERM or SIGINT. A start-up failure after the log is open is also
/// written to the log, where an administrator of a service looks first.
pub async fn serve(options: ServeOptions) -> Result<(), StartError> {
    let result = serve_inner(options).await;
    if let Err(e) = &result {
        tracing::error!("jes cannot start: {e}");
    }
    result
}

async fn serve_inner(options: ServeOptions) -> Result<(), StartError> {
    // Mail is private: files and folders jes creates are for its own user only.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let (mut config, log) = load_and_check(&options)?;
    raise_nofile_limit();
    return_large_blocks_to_the_system();
    let _root_lock = lock_mail_root(&config)?;
    reload::upgrade_passwords(&config);
    // The one place the storage backends are chosen; everything else sees the interfaces.
    let (queue, plain_mailboxes, database) = storage(&config).await?;
    let config_sweep = config.mail.database.clone();
    let mut accounts_unknown = false;
    // With store.url the accounts are the database's, read now and watched below.
    let account_store = match database.clone() {
        Some(db) => {
            let store: Arc<dyn crate::accounts::AccountStore> =
                Arc::new(crate::accounts::postgres::PgAccounts::new(db));
            match store.load().await {
                Ok(snapshot) => {
                    accounts::report(store.as_ref(), &snapshot, "read");
                    config.users = snapshot.users;
                    Some((store, snapshot.revision))
                }
                // A bad row stops the start, as a bad user.conf does.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(StartError::Accounts {
                        location: store.location(),
                        source: e,
                    })
                }
                // The database away: start without accounts, answering "try later" for them
                // (Shared::accounts_unknown) until the watcher's first read.
                Err(e) => {
                    tracing::warn!(
                        "cannot read the accounts from {} yet ({e}): local recipients get 451 and POP3 logins [SYS/TEMP] until it is back",
                        store.location()
                    );
                    accounts_unknown = true;
                    Some((store, -1))
                }
            }
        }
        None => None,
    };
    recover(queue.as_ref(), plain_mailboxes.as_ref()).await;

    crate::stats::install_recorder(config.mail.database.is_some());
    crate::outcome::register_metrics();
    apply_history_settings(&config);

    let tls = crate::certificate::load_or_create(&config).map_err(StartError::Tls)?;
    let listeners = listen::bind_services(&config)?;
    let (runner_handle, new_ids) = runner::channel();
    let webhooks = Webhooks::new(&config, plain_mailboxes);
    let mailboxes = webhooks.mailboxes.clone();
    let shared = Arc::new(Shared::new(config, runner_handle, mailboxes, queue));
    webhooks.attach(&shared);
    shared.set_accounts_unknown(accounts_unknown);
    shared.set_tls(tls.config.clone());
    // The console's port is bound with the others, so a port in use stops the start. Its key is
    // read at start only: turning the console on or off, or moving it, needs a restart.
    let http_listener = crate::http::bind(&shared).map_err(|e| StartError::Bind {
        addr: e.addr,
        what: "HTTP console",
        source: e.source,
    })?;
    // What the configuration files look like now, before anyone is told the server runs: the
    // reload watcher compares against this, not against whatever it first sees.
    let config_stamp = reload::stamp(&options.dir);
    listen::announce(&shared.config(), &listeners);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    let mut acceptors = JoinSet::new();
    let conn_tasks = Arc::new(Mutex::new(JoinSet::new()));
    for listener in listeners {
        acceptors.spawn(listen::accept_loop(
            listener,
            shared.clone(),
            stop_rx.clone(),
            conn_tasks.clone(),
        ));
    }
    let config_source = shared.clone();
    let runner_ctx = RunnerContext {
        config: Arc::new(move || config_source.config()),
        queue: shared.queue.clone(),
        mailboxes: shared.mailboxes.clone(),
    };
    sessions.spawn(runner::run(runner_ctx, new_ids, stop_rx.clone()));
    sessions.spawn(webhooks.worker(stop_rx.clone()));
    let members: Option<Arc<dyn crate::cluster::Members>> = database
        .clone()
        .map(|db| Arc::new(crate::cluster::postgres::PgMembers::new(db)) as _);
    // Not among `sessions`, which a stop aborts: its last beat marks the server stopped.
    let beating = members.as_ref().map(|members| {
        tokio::spawn(heartbeat::run(
            members.clone(),
            shared.clone(),
            stop_rx.clone(),
        ))
    });
    if let Some(listener) = http_listener {
        sessions.spawn(crate::http::run(
            listener,
            shared.clone(),
            database.clone(),
            members,
            stop_rx.clone(),
        ));
    }
    if let (Some(db), Some(settings)) = (database.clone(), &config_sweep) {
        let every = settings.sweep;
        metrics::counter!("jes_bodies_swept_total").increment(0);
        sessions.spawn(sweeper::run(db, every, stop_rx.clone()));
    }
    sessions.spawn(reload::watch(
        shared.clone(),
        log,
        tls,
        options.dir.clone(),
        config_stamp,
        stop_rx.clone(),
    ));

    if let Some((store, revision)) = account_store {
        sessions.spawn(accounts::watch(
            shared.clone(),
            store,
            revision,
            stop_rx.clone(),
        ));
    }

    wait_for_stop().await;
    shut_down(stop_tx, acceptors, &conn_tasks, sessions).await;
    // The runner has stopped: what the queue kept for it goes back to the other servers.
    if tokio::time::timeout(Duration::from_secs(3), shared.queue.stop())
        .await
        .is_err()
    {
        tracing::warn!(
            "the queue did not give its kept messages back in time; their leases run out"
        );
    }
    if let Some(beating) = beating {
        // A database that does not answer must not hold the stop up.
        if tokio::time::timeout(Duration::from_secs(3), beating)
            .await
            .is_err()
        {
            tracing::warn!("servers' table: this server's stop was not recorded in time");
        }
    }
    Ok(())
}

/// The configuration, and the log it names opened with its warnings written; then the same
/// checks `jes check` makes, so that it cannot call OK what stops a start.
fn load_and_check(
    options: &ServeOptions,
) -> Result<(Config, crate::logging::LogHandle), StartError> {
    let (config, warnings) = Config::load(&options.dir)?;
    let log = crate::logging::init(&config.log, options.log_to_stderr).map_err(|source| {
        StartError::Log {
            path: config.log.file.clone(),
            source,
        }
    })?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let problems = crate::preflight::problems(&config);
    if !problems.is_empty() {
        return Err(StartError::Preflight(problems));
    }
    Ok((config, log))
}

/// Creates the mail root's folders and locks it. Before anything touches the folder: a second
/// server on it would deliver every message twice. The lock is in the mail root (`store.dir`),
/// not the configuration folder: that one may be read-only (/etc/jes in the Debian package).
fn lock_mail_root(config: &Config) -> Result<crate::store::root_lock::RootLock, StartError> {
    ensure_dir(&config.store_dir())?;
    let lock = crate::store::root_lock::lock_root(&config.store_dir())?;
    ensure_dir(&config.users_dir())?;
    ensure_dir(&config.queue_dir())?;
    Ok(lock)
}

/// Removes the temporary files an interrupted run left; a failure is only a warning.
async fn recover(queue: &dyn Queue, mailboxes: &dyn Mailboxes) {
    match queue.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} temporary files an interrupted run left in the queue"),
        Err(e) => tracing::warn!("cannot clean temporary files from the queue: {e}"),
    }
    match mailboxes.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} temporary files an interrupted run left in mailboxes"),
        Err(e) => tracing::warn!("cannot clean temporary files from the mailboxes: {e}"),
    }
}

/// Stops accepting, gives open sessions `SHUTDOWN_GRACE` to finish, stops the background tasks
/// and commits the last of the delivery history.
async fn shut_down(
    stop_tx: watch::Sender<bool>,
    mut acceptors: JoinSet<()>,
    conn_tasks: &Mutex<JoinSet<()>>,
    mut sessions: JoinSet<()>,
) {
    tracing::info!(
        "shutting down: no new connections; sessions get {}s to finish",
        SHUTDOWN_GRACE.as_secs()
    );
    let _ = stop_tx.send(true);
    acceptors.shutdown().await;
    let mut tasks = std::mem::take(&mut *conn_tasks.lock().unwrap_or_else(|p| p.into_inner()));
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} sessions still open after the grace period; closing them",
            tasks.len()
        );
        tasks.shutdown().await;
    }
    sessions.shutdown().await;
    // The writer commits about once a second; a clean stop keeps that last second too.
    let _ = tokio::task::spawn_blocking(|| crate::history::close(Duration::from_secs(5))).await;
    tracing::info!("jes stopped");
}

/// Inbound webhooks' parts. Every delivery goes through the decorator (`mailboxes`): the accept
/// step and queue attempts alike. The configuration it reads is the server's current one, which
/// `Shared` holds; it is reached through a cell filled once `Shared` exists (`attach`; no
/// delivery happens before that).
struct Webhooks {
    current: Arc<std::sync::OnceLock<std::sync::Weak<Shared>>>,
    config: webhook::ConfigSource,
    spool: Arc<dyn CallSpool>,
    /// The mailboxes without the decorator: the worker reads and deletes through them.
    plain: Arc<dyn Mailboxes>,
    /// The mailboxes every delivery goes through.
    mailboxes: Arc<dyn Mailboxes>,
    calls: tokio::sync::mpsc::UnboundedReceiver<webhook::PendingCall>,
}

impl Webhooks {
    fn new(config: &Config, plain: Arc<dyn Mailboxes>) -> Webhooks {
        let spool: Arc<dyn CallSpool> =
            Arc::new(FileCallSpool::new(config.store_dir().join("webhooks")));
        let current: Arc<std::sync::OnceLock<std::sync::Weak<Shared>>> = Arc::default();
        let source: webhook::ConfigSource = {
            let current = current.clone();
            let fallback = Arc::new(config.clone());
            Arc::new(move || {
                current
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .map(|s| s.config())
                    .unwrap_or_else(|| fallback.clone())
            })
        };
        let (tx, calls) = tokio::sync::mpsc::unbounded_channel();
        let mailboxes: Arc<dyn Mailboxes> = Arc::new(webhook::Notifying::new(
            plain.clone(),
            spool.clone(),
            source.clone(),
            tx,
        ));
        Webhooks {
            current,
            config: source,
            spool,
            plain,
            mailboxes,
            calls,
        }
    }

    /// From now on the webhooks read `shared`'s configuration of the moment.
    fn attach(&self, shared: &Arc<Shared>) {
        let _ = self.current.set(Arc::downgrade(shared));
    }

    /// The worker that makes the calls, until `stop`.
    async fn worker(self, stop: watch::Receiver<bool>) {
        let ctx = webhook::call::CallContext {
            config: self.config,
            mailboxes: self.plain,
            spool: self.spool,
            client: Default::default(),
        };
        webhook::worker::run(ctx, self.calls, stop).await
    }
}

/// What `storage` chose: the queue, the mailboxes, and the database when there is one.
type Storage = (
    Arc<dyn Queue>,
    Arc<dyn Mailboxes>,
    Option<crate::pg::Database>,
);

/// The queue and mailboxes `config` names: the files of `store.dir`, or the PostgreSQL database
/// of `store.url` (shared with other servers), whose schema is brought up to date first; then
/// also the database, for the accounts and the console's sessions.
async fn storage(config: &Config) -> Result<Storage, StartError> {
    let Some(settings) = &config.mail.database else {
        let queue = FileQueue::new(config.queue_dir(), config.failed_dir());
        let mailboxes = FileMailboxes::new(config.users_dir());
        return Ok((Arc::new(queue), Arc::new(mailboxes), None));
    };
    let db = crate::pg::Database::open(settings)?;
    // A database that is away does not stop the start (issue 15): the first request that finds
    // it back checks the schema; until then SMTP answers 4xx and POP3 [SYS/TEMP]. A schema this
    // binary cannot use does stop it.
    match db.ensure_schema().await {
        Ok(version) => tracing::info!(
            "store: PostgreSQL {} (schema version {}); queue and mailboxes are shared with every server on it",
            db.location,
            version.unwrap_or_default()
        ),
        Err(e @ crate::pg::PgError::Connect { .. }) => tracing::warn!(
            "store: {e}; starting without it: mail is refused with 4xx and POP3 answers [SYS/TEMP] until it is back"
        ),
        Err(e) => return Err(e.into()),
    }
    // Who holds a lease, for an administrator reading the tables: one name per process
    // (`node.name` and the process id); the history names the node alone.
    let me = format!("{}:{}", config.mail.node_name, std::process::id());
    // The delivery history goes to the database too (history.db is not made).
    crate::history::use_database(db.clone(), config.mail.node_name.clone());
    let queue = crate::queue::postgres::PgQueue::new(db.clone(), me.clone());
    let mailboxes = crate::store::postgres::PgMailboxes::new(db.clone(), me);
    Ok((Arc::new(queue), Arc::new(mailboxes), Some(db)))
}

/// Turns the delivery history on or off and applies its settings (at start and after a reload).
/// A history that cannot be opened is an error in the log, never a reason to stop taking mail.
pub(crate) fn apply_history_settings(config: &Config) {
    let m = &config.mail;
    if let Err(e) =
        crate::history::configure(&config.store_dir(), m.history_days, m.history_subjects)
    {
        tracing::error!("the delivery history is off: {e}");
    }
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
