//! The running server: listeners, the tokio drivers of the protocol sessions, configuration
//! reload, signals and graceful shutdown. It wires the parts together and holds no protocol logic.
//!
//! Shared state lives in `Shared`: the current `Config` behind an `RwLock<Arc<_>>` (a reload
//! swaps the whole `Arc`; sessions take a snapshot per command, so a reload never drops a
//! session), the mail store and queue, the POP-before-SMTP table, and the bounded pool that
//! password checks run on so that a flood of logins cannot starve the protocol threads.

mod pop3_conn;
mod reload;
mod smtp_conn;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::delivery::runner::{self, RunnerContext, RunnerHandle};
use crate::queue::QueueStore;
use crate::store::MailStore;

/// How long sessions get to finish after SIGTERM before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// State every connection can reach.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    pub store: Arc<MailStore>,
    pub queue: Arc<QueueStore>,
    pub runner: RunnerHandle,
    pop_logins: Mutex<HashMap<IpAddr, Instant>>,
    password_pool: Semaphore,
    next_session: AtomicU64,
    started: u64,
}

impl Shared {
    pub fn new(config: Config, runner: RunnerHandle) -> Shared {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Shared {
            store: Arc::new(MailStore::new(config.users_dir())),
            queue: Arc::new(QueueStore::new(config.queue_dir())),
            runner,
            config: RwLock::new(Arc::new(config)),
            pop_logins: Mutex::new(HashMap::new()),
            password_pool: Semaphore::new(2),
            next_session: AtomicU64::new(1),
            started,
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// A short id for one session, unique for this run: logs and `Received:` lines name it.
    pub fn session_id(&self) -> String {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        format!("{:x}{:04x}", self.started & 0xffff_ffff, n)
    }

    /// Remembers a successful POP3 login for POP-before-SMTP.
    pub fn note_pop_login(&self, ip: IpAddr) {
        let mut logins = self.pop_logins.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = self.config().mail.pop_before_smtp_timeout;
        logins.retain(|_, at| at.elapsed() < timeout);
        logins.insert(normalize_ip(ip), Instant::now());
    }

    /// Whether `ip` logged in over POP3 recently enough to relay.
    pub fn pop_before_smtp(&self, ip: IpAddr) -> bool {
        let config = self.config();
        if !config.mail.pop_before_smtp {
            return false;
        }
        let logins = self.pop_logins.lock().unwrap_or_else(|p| p.into_inner());
        logins
            .get(&normalize_ip(ip))
            .is_some_and(|at| at.elapsed() < config.mail.pop_before_smtp_timeout)
    }

    /// Checks a password on the bounded pool.
    pub async fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(stored) = self.config().users.password(user).cloned() else {
            // Same cost whether or not the account exists, so timing does not tell.
            let _permit = self.password_pool.acquire().await;
            return false;
        };
        let Ok(_permit) = self.password_pool.acquire().await else {
            return false;
        };
        let password = password.to_string();
        tokio::task::spawn_blocking(move || stored.verify(&password))
            .await
            .unwrap_or(false)
    }
}

/// `::ffff:a.b.c.d` is the IPv4 client `a.b.c.d` seen through a dual-stack socket.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

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
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
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

/// The addresses to listen on for one port: `listen.address`, or every IPv4 and IPv6 address.
fn listen_addrs(config: &Config, port: u16) -> Vec<SocketAddr> {
    if config.mail.listen_addresses.is_empty() {
        vec![
            SocketAddr::from(([0u8; 16], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]
    } else {
        config
            .mail
            .listen_addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect()
    }
}

/// Binds every address for a port. Unset `listen.address` tries `[::]` (dual-stack) and `0.0.0.0`
/// and is content with whichever works (one of them fails with EADDRINUSE on a dual-stack host).
fn bind_all(
    config: &Config,
    port: u16,
    what: &'static str,
) -> Result<Vec<TcpListener>, StartError> {
    let addrs = listen_addrs(config, port);
    let wildcard = config.mail.listen_addresses.is_empty();
    let mut listeners = Vec::new();
    let mut first_error = None;
    for addr in addrs {
        match bind(addr) {
            Ok(l) => listeners.push(l),
            Err(source) => {
                if !wildcard {
                    return Err(StartError::Bind { addr, what, source });
                }
                first_error.get_or_insert(StartError::Bind { addr, what, source });
            }
        }
    }
    match (listeners.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(listeners),
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Raises the open-file limit to the hard limit: every connection is a descriptor.
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the open-file limit");
            }
        }
    }
}

fn ensure_dir(path: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|source| StartError::Dir {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(options: ServeOptions) -> Result<(), StartError> {
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
    raise_nofile_limit();
    ensure_dir(&config.users_dir())?;
    ensure_dir(&config.queue_dir())?;
    reload::upgrade_passwords(&config);
    match QueueStore::new(config.queue_dir()).remove_stale_temp_files() {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} temporary files an interrupted run left in the queue"),
        Err(e) => tracing::warn!("cannot clean temporary files from the queue: {e}"),
    }

    let smtp = bind_all(&config, config.mail.smtp_port, "SMTP")?;
    let pop3 = bind_all(&config, config.mail.pop3_port, "POP3")?;
    let (runner_handle, new_ids) = runner::channel();
    let shared = Arc::new(Shared::new(config, runner_handle));
    announce(&shared.config(), &smtp, &pop3);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    let mut acceptors = JoinSet::new();
    let conn_tasks = Arc::new(Mutex::new(JoinSet::new()));
    for listener in smtp {
        acceptors.spawn(accept_loop(
            listener,
            shared.clone(),
            stop_rx.clone(),
            conn_tasks.clone(),
            Protocol::Smtp,
        ));
    }
    for listener in pop3 {
        acceptors.spawn(accept_loop(
            listener,
            shared.clone(),
            stop_rx.clone(),
            conn_tasks.clone(),
            Protocol::Pop3,
        ));
    }
    let config_source = shared.clone();
    let runner_ctx = RunnerContext {
        config: Arc::new(move || config_source.config()),
        queue: shared.queue.clone(),
        store: shared.store.clone(),
    };
    sessions.spawn(runner::run(runner_ctx, new_ids, stop_rx.clone()));
    sessions.spawn(reload::watch(
        shared.clone(),
        log,
        options.dir.clone(),
        stop_rx.clone(),
    ));

    wait_for_stop().await;
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
    tracing::info!("jes stopped");
    Ok(())
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

#[derive(Clone, Copy)]
enum Protocol {
    Smtp,
    Pop3,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    protocol: Protocol,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let mut tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished sessions so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        match protocol {
            Protocol::Smtp => tasks.spawn(smtp_conn::run(stream, peer, shared, stop)),
            Protocol::Pop3 => tasks.spawn(pop3_conn::run(stream, peer, shared, stop)),
        };
    }
}

fn announce(config: &Config, smtp: &[TcpListener], pop3: &[TcpListener]) {
    let names = |ls: &[TcpListener]| {
        ls.iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    tracing::info!(
        "jes {} started as {}: SMTP on {}, POP3 on {}; local domains {}; mail root {}; log {}",
        env!("CARGO_PKG_VERSION"),
        config.mail.hostname,
        names(smtp),
        names(pop3),
        config.mail.domains.join(", "),
        config.dir.display(),
        config.log.file.display()
    );
}
