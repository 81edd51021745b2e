//! State every connection can reach, whichever listener took it (SMTP, POP3, the HTTP console):
//! the current configuration (a reload swaps the whole `Arc`;
//! sessions take a snapshot per command, so a reload never drops a session), the mail store and
//! queue, the POP-before-SMTP table, the TLS acceptor, connection limits, and the bounded pool
//! password checks run on (with the per-address login throttle in front of it), so that a flood
//! of logins cannot starve the protocol threads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub mod conn_limits;
pub mod throttle;

pub use conn_limits::{ConnGuard, ConnLimits, LimitHit};

use crate::auth::StoredPassword;
use crate::config::{ClearText, Config};
use crate::delivery::runner::RunnerHandle;
use crate::queue::Queue;
use crate::store::Mailboxes;
use throttle::LoginThrottle;

/// Password checks at once: the machine has two cores and argon2 is meant to be slow.
const PASSWORD_WORKERS: usize = 2;

pub struct Shared {
    config: RwLock<Arc<Config>>,
    pub mailboxes: Arc<dyn Mailboxes>,
    pub queue: Arc<dyn Queue>,
    pub runner: RunnerHandle,
    tls: RwLock<Option<TlsAcceptor>>,
    pub smtp_limits: Arc<ConnLimits>,
    pub pop3_limits: Arc<ConnLimits>,
    pop_logins: Mutex<HashMap<IpAddr, Instant>>,
    throttle: Mutex<LoginThrottle>,
    password_pool: Semaphore,
    next_session: AtomicU64,
    started: u64,
    /// The accounts have not been read yet (`store.url`, database away since the start).
    accounts_unknown: std::sync::atomic::AtomicBool,
}

/// The result of a login attempt as the drivers need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginResult {
    pub ok: bool,
    /// Too many failures from this address: close the session after answering.
    pub disconnect: bool,
}

impl Shared {
    pub fn new(
        config: Config,
        runner: RunnerHandle,
        mailboxes: Arc<dyn Mailboxes>,
        queue: Arc<dyn Queue>,
    ) -> Shared {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Shared {
            mailboxes,
            queue,
            runner,
            config: RwLock::new(Arc::new(config)),
            tls: RwLock::new(None),
            smtp_limits: Arc::new(ConnLimits::default()),
            pop3_limits: Arc::new(ConnLimits::default()),
            pop_logins: Mutex::new(HashMap::new()),
            throttle: Mutex::new(LoginThrottle::default()),
            password_pool: Semaphore::new(PASSWORD_WORKERS),
            next_session: AtomicU64::new(1),
            started,
            accounts_unknown: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the accounts are still unknown: a server on a database that was away at its
    /// start until the first read of the accounts succeeds. Meanwhile an unknown local address
    /// is answered 451 and a failed login `[SYS/TEMP]`-like, never as a definite "no".
    pub fn accounts_unknown(&self) -> bool {
        self.accounts_unknown
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn set_accounts_unknown(&self, unknown: bool) {
        self.accounts_unknown
            .store(unknown, std::sync::atomic::Ordering::Release);
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// Replaces the accounts of the current configuration, keeping the rest (the database's
    /// accounts changed). Under the lock, so that it cannot cross a reload's swap and lose either.
    pub(super) fn set_users(&self, users: crate::config::Users) {
        let mut current = self.config.write().unwrap_or_else(|p| p.into_inner());
        let mut config = Config::clone(&current);
        config.users = users;
        *current = Arc::new(config);
    }

    /// Installs a configuration read from the files but keeps the running accounts: with
    /// `store.url` the database decides them, not the reload (see `set_users`).
    pub(super) fn set_config_keeping_users(&self, mut config: Config) {
        let mut current = self.config.write().unwrap_or_else(|p| p.into_inner());
        config.users = current.users.clone();
        *current = Arc::new(config);
    }

    pub fn tls(&self) -> Option<TlsAcceptor> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn set_tls(&self, config: Arc<rustls::ServerConfig>) {
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = Some(TlsAcceptor::from(config));
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

    /// Checks a password: waits first if `ip` has failed too often, then verifies on the bounded
    /// pool, then records the result against `ip` (never against the account). For a mail
    /// client, so `limits.exempt` applies: the application server is never slowed or cut,
    /// since its failures are a wrong password in its own settings, not guessing).
    pub async fn check_login(&self, ip: IpAddr, user: &str, password: &str) -> LoginResult {
        let exempt = self.config().mail.limits_exempt(normalize_ip(ip));
        self.check_password(ip, user, password, exempt).await
    }

    /// A console login: people log in there, so no address is exempt from the delay.
    pub async fn check_console_login(&self, ip: IpAddr, user: &str, password: &str) -> LoginResult {
        self.check_password(ip, user, password, false).await
    }

    /// `check_login` without the exemption lookup; `exempt` skips the delay and the count.
    async fn check_password(
        &self,
        ip: IpAddr,
        user: &str,
        password: &str,
        exempt: bool,
    ) -> LoginResult {
        let ip = normalize_ip(ip);
        let max_attempts = self.config().mail.max_pass_attempts;
        let delay = if exempt {
            Duration::ZERO
        } else {
            self.lock_throttle().delay(ip, max_attempts, Instant::now())
        };
        if !delay.is_zero() {
            tracing::info!(client = %ip, "login from an address with repeated failures: waiting {}s", delay.as_secs());
            tokio::time::sleep(delay).await;
        }
        let stored = self.config().users.password(user).cloned();
        let ok = match self.password_pool.acquire().await {
            Ok(_permit) => {
                let password = password.to_string();
                tokio::task::spawn_blocking(move || match stored {
                    Some(stored) => stored.verify(&password),
                    None => {
                        // Spend the same time for an unknown account, so timing does not tell.
                        let _ = dummy_hash().verify(&password);
                        false
                    }
                })
                .await
                .unwrap_or(false)
            }
            Err(_) => false,
        };
        let disconnect = !exempt
            && self
                .lock_throttle()
                .record(ip, ok, max_attempts, Instant::now());
        if !ok {
            tracing::warn!(client = %ip, user, "login failed");
            crate::stats::auth_failure();
        }
        LoginResult { ok, disconnect }
    }

    fn lock_throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn dummy_hash() -> &'static StoredPassword {
    static DUMMY: OnceLock<StoredPassword> = OnceLock::new();
    DUMMY.get_or_init(|| {
        StoredPassword::parse(&crate::auth::hash_password("not a password anyone has"))
    })
}

/// `::ffff:a.b.c.d` is the IPv4 client `a.b.c.d` seen through a dual-stack socket.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether passwords may be sent on an unencrypted connection from `ip` (`allowClearText`).
/// Loopback counts as encrypted, as in Dovecot: the tracker on the same machine keeps working.
pub fn clear_text_allowed(config: &Config, ip: IpAddr) -> bool {
    match config.mail.allow_clear_text {
        ClearText::Always => true,
        ClearText::EncryptedOnly => normalize_ip(ip).is_loopback(),
        ClearText::Never => false,
    }
}
