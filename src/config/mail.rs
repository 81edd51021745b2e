//! `mail.conf`: server settings.
//!
//! Every JES 1.6.1 key keeps its name and default so an existing folder runs unchanged; the keys jes
//! adds are listed in `super::MAIL_KEYS`, which is also what decides whether a key is "unknown".
//! Validation is strict and early: a value that JES would have half-accepted (a port of 0, an IP
//! pattern with a typo, `yes ` with a trailing blank) stops the load with the file, line and key
//! named, because a mail server that starts with a silently different relay rule is worse than one
//! that does not start. Lookups used on every connection (`relay_ip_allowed`, `is_local_domain`) work
//! on pre-parsed values and allocate nothing for IP checks.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::hostname::{bracket_if_ip, check_name, default_hostname};
pub use super::ip_pattern::IpPattern;
use super::properties::Properties;
use super::reader::{parse_dns_server, Reader, MB};
pub use super::smart_host::SmartHost;
use super::{ConfigError, Warning, MAIL_KEYS};

/// `smtpdelivery.tls`: how the outbound client uses STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryTls {
    /// Use STARTTLS when offered, without checking the certificate; fall back to plain text.
    Opportunistic,
    /// Use STARTTLS when offered and require a valid certificate for the host name.
    Verify,
    /// Refuse to deliver without TLS with a valid certificate.
    Required,
    /// Never use TLS.
    Off,
}

impl DeliveryTls {
    /// The value as `mail.conf` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryTls::Opportunistic => "opportunistic",
            DeliveryTls::Verify => "verify",
            DeliveryTls::Required => "required",
            DeliveryTls::Off => "off",
        }
    }
}

/// `allowClearText`: whether AUTH/USER/PASS may be used without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearText {
    Never,
    /// Only over TLS (STARTTLS, STLS or a TLS port).
    EncryptedOnly,
    /// JES 1.x behaviour (the default, so old configurations keep working).
    Always,
}

/// `smtp.barelf`: what a bare LF in DATA means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// A line end, stored as CRLF (Postfix 3.9's default); only `CRLF . CRLF` ends DATA.
    Normalize,
    /// The message is refused with `550 5.6.11` after its end.
    Reject,
}

/// Typed `mail.conf`. Field comments give the key and JES's default.
#[derive(Debug, Clone)]
pub struct MailConf {
    /// The values, as written (or the default), of the keys read at start only
    /// (`Applies::Restart`): a reload compares them and says which changes wait for a restart.
    pub read_at_start: Vec<(&'static str, String)>,
    /// `listen.address`: empty means every IPv4 and IPv6 address.
    pub listen_addresses: Vec<IpAddr>,
    /// `smtpport` (25).
    pub smtp_port: u16,
    /// `pop3port` (110).
    pub pop3_port: u16,
    /// `threads` (5): JES's fixed worker pool. Read and validated so JES files stay valid, but
    /// unused: sessions are tasks bounded by the connection limits, and outbound concurrency has
    /// its own key (`smtpdelivery.concurrency`).
    pub threads: usize,
    /// `smtp.messagesize` (5, in MB; 0 means no limit) as bytes.
    pub max_message_size: u64,
    /// `smtpdelivery.interval` (10 s): how often `smtp/` is scanned for files put there from outside.
    pub delivery_interval: Duration,
    /// `smtpdelivery.threshold` (10): attempts before a recipient bounces.
    pub delivery_threshold: u32,
    /// `domains` (required), lower-cased, in order; the first names the server when `hostname` is unset.
    pub domains: Vec<String>,
    /// `defaultuser`: catch-all account for unknown local recipients.
    pub default_user: Option<String>,
    /// `defaultsmtpservers`: smart hosts, in order; empty means direct MX delivery.
    pub smart_hosts: Vec<SmartHost>,
    /// `relay.popbeforesmtp` (false).
    pub pop_before_smtp: bool,
    /// `relay.popbeforesmtp.timeout` (10 minutes; JES gives minutes).
    pub pop_before_smtp_timeout: Duration,
    /// `relay.ipaddresses`.
    pub relay_ips: Vec<IpPattern>,
    /// `relay.emailaddresses`, lower-cased: full addresses or `@domain`.
    pub relay_senders: Vec<String>,
    /// `limits.exempt` (default: `relay.ipaddresses`; `none`: nobody): clients free of the
    /// per-address connection limits and of the failed-login delay, as Postfix exempts
    /// `$mynetworks`. Totals still apply.
    pub limits_exempt: Vec<IpPattern>,
    /// `hostname` (new; default: the machine's fully qualified name).
    pub hostname: String,
    /// `node.name` (new; default: the machine's host name): which server this is among several on
    /// one database. Not `hostname`, which servers behind one MX name often share.
    pub node_name: String,
    /// `submissionport` (0/unset: off).
    pub submission_port: Option<u16>,
    /// `securesmtpport` (0/unset: off): SMTP with implicit TLS.
    pub secure_smtp_port: Option<u16>,
    /// `securepop3port` (0/unset: off): POP3 with implicit TLS.
    pub secure_pop3_port: Option<u16>,
    /// `tls.certificate`: PEM chain; relative paths are resolved against mail.conf's folder.
    pub tls_certificate: Option<PathBuf>,
    /// `tls.key`: PEM private key; relative paths as for `tls_certificate`.
    pub tls_key: Option<PathBuf>,
    /// `allowClearText` (always).
    pub allow_clear_text: ClearText,
    /// `smtp.maxrecipients` or JES 2.x's `max.valid.rcpt` (1000).
    pub max_recipients: usize,
    /// `max.error.count` (20): SMTP errors before the connection is closed.
    pub max_error_count: u32,
    /// `max.pass.attempts` (3): failed logins per connection.
    pub max_pass_attempts: u32,
    /// `smtp.maxconnections` (10000).
    pub smtp_max_connections: usize,
    /// `smtp.maxconnectionsperip` (50).
    pub smtp_max_connections_per_ip: usize,
    /// `pop3.maxconnections` (10000).
    pub pop3_max_connections: usize,
    /// `pop3.maxconnectionsperip` (50).
    pub pop3_max_connections_per_ip: usize,
    /// `smtp.timeout` (300 s): the wait for each command or data read (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub smtp_timeout: Duration,
    /// `smtp.maxsessiontime` (1800 s): the longest an SMTP session may last (slow clients, slow-loris).
    pub smtp_max_session_time: Duration,
    /// `pop3.timeout` (600 s): idle time before a POP3 client is logged out (RFC 1939: at least 10 minutes).
    pub pop3_timeout: Duration,
    /// `pop3.maxsessiontime` (3600 s): the longest a POP3 session may last.
    pub pop3_max_session_time: Duration,
    /// `smtp.maxheadersize` (1024 KB): the largest header section accepted.
    pub max_header_size: u64,
    /// `smtp.barelf` (normalize): a bare LF in DATA ends a line, or refuses the message.
    pub bare_lf: BareLf,
    /// `submission.sendermatch` (true): on the submission ports an authenticated client's envelope
    /// sender must be its login address.
    pub submission_sender_match: bool,
    /// `mindiskfree` (100 MB) as bytes: below this, MAIL gets 452.
    pub min_disk_free: u64,
    /// `smtpdelivery.concurrency` (10): outbound connections at once.
    pub delivery_concurrency: usize,
    /// `smtpdelivery.delaywarning` (4 hours; 0 = never): `None` when off.
    pub delay_warning: Option<Duration>,
    /// `smtpdelivery.tls` (opportunistic).
    pub delivery_tls: DeliveryTls,
    /// `smtpdelivery.cafile`: extra CA certificates (PEM); relative to mail.conf's folder.
    pub delivery_ca_file: Option<PathBuf>,
    /// `dns.servers` (new; empty: the system resolver from /etc/resolv.conf), port 53 unless given.
    pub dns_servers: Vec<SocketAddr>,
    /// `smtpdelivery.mxport` (new; 25): the port connected to on MX and A targets. Only tests
    /// change it, so that a fake remote server can listen on an unprivileged port.
    pub mx_port: u16,
    /// `smtpdelivery.connectioncache` (new; 2 seconds, Postfix's
    /// `smtp_connection_cache_time_limit`): how long an idle connection to another server is kept
    /// for the next message. Short, because a kept connection still talks to the server's old
    /// process after the server reloaded its settings. Zero: every message gets a new connection.
    pub delivery_connection_cache: Duration,
    /// `http.*`: the web console and metrics listener (see `super::http`).
    pub http: super::http::HttpConf,
    /// `store.dir` (new): where the data lives (`users/`, `smtp/`, `failed/`, the generated
    /// certificate in `tls/`); relative to mail.conf's folder. Unset: mail.conf's folder, the JES
    /// layout. Packages set it so that the configuration can stay read-only under /etc.
    pub store_dir: Option<PathBuf>,
    /// `history.days` (new; 30): days the delivery history (`history.db`) keeps events; 0 turns
    /// the history off.
    pub history_days: u32,
    /// `history.subjects` (new; true): whether the history keeps each message's subject.
    pub history_subjects: bool,
    /// `webhook.secret` (new): the `whsec_...` secret of mailboxes whose webhook has none.
    pub webhook_secret: Option<String>,
    /// `webhook.retrybase` (new; 60 s): the unit of the webhook retry schedule (retries after
    /// 1, 2, 4 ... units, at most 60 apart, for 1,440 units: a day by default). Tests set 1.
    pub webhook_retry_base: Duration,
    /// `dkim.DOMAIN=SELECTOR:KEYFILE,...` (new): the signing keys, each read at load (a key that
    /// could not be read keeps why, for `jes check` and the log).
    pub dkim: Vec<crate::dkim::DomainKey>,
    /// `capture` (new; false): hold everything that would leave over SMTP (issue 17).
    pub capture: bool,
    /// `capture.allow` (new), lower-cased: addresses or `@domain` that still go out under capture.
    pub capture_allow: Vec<String>,
    /// `store.*` (new, issue 14): the PostgreSQL store shared by several servers; `None` (no
    /// `store.url`): the files.
    pub database: Option<crate::pg::Settings>,
}

impl MailConf {
    /// Reads and validates `mail.conf`.
    pub fn load(path: &Path) -> Result<(MailConf, Vec<Warning>), ConfigError> {
        let text = super::properties::read_text(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        MailConf::parse(path, &text)
    }

    /// Validates `mail.conf` text; `path` is only used in messages and to resolve relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<(MailConf, Vec<Warning>), ConfigError> {
        let (props, mut warnings) = Properties::parse(path, text);
        warn_unknown_keys(path, &props, &mut warnings);
        let r = Reader {
            path,
            props: &props,
        };

        let domains = read_domains(&r)?;
        let relay_ips = read_list(&r, "relay.ipaddresses", IpPattern::parse)?;
        let limits_exempt = read_limits_exempt(&r, &relay_ips)?;
        let max_recipients = read_max_recipients(&r, &mut warnings)?;
        let hostname = read_hostname(&r, &domains)?;
        let delay_hours = r.number("smtpdelivery.delaywarning", 4, 0)?;
        let conf = MailConf {
            listen_addresses: read_list(&r, "listen.address", parse_ip)?,
            smtp_port: r.port("smtpport", 25)?,
            pop3_port: r.port("pop3port", 110)?,
            threads: r.count("threads", 5, 1)?,
            max_message_size: r.scaled("smtp.messagesize", 5, MB)?,
            delivery_interval: Duration::from_secs(r.number("smtpdelivery.interval", 10, 1)?),
            delivery_threshold: r.number_u32("smtpdelivery.threshold", 10, 1)?,
            domains,
            default_user: read_default_user(&r)?,
            smart_hosts: read_list(&r, "defaultsmtpservers", SmartHost::parse)?,
            pop_before_smtp: r.boolean("relay.popbeforesmtp", false)?,
            pop_before_smtp_timeout: Duration::from_secs(r.scaled(
                "relay.popbeforesmtp.timeout",
                10,
                60,
            )?),
            relay_ips,
            relay_senders: address_patterns(&r, "relay.emailaddresses")?,
            limits_exempt,
            node_name: read_node_name(&r, &hostname)?,
            hostname,
            submission_port: r.optional_port("submissionport")?,
            secure_smtp_port: r.optional_port("securesmtpport")?,
            secure_pop3_port: r.optional_port("securepop3port")?,
            tls_certificate: r.path("tls.certificate"),
            tls_key: r.path("tls.key"),
            store_dir: r.path("store.dir"),
            allow_clear_text: read_clear_text(&r)?,
            max_recipients,
            max_error_count: r.number_u32("max.error.count", 20, 1)?,
            max_pass_attempts: r.number_u32("max.pass.attempts", 3, 1)?,
            smtp_max_connections: r.count("smtp.maxconnections", 10_000, 1)?,
            smtp_max_connections_per_ip: r.count("smtp.maxconnectionsperip", 50, 1)?,
            pop3_max_connections: r.count("pop3.maxconnections", 10_000, 1)?,
            pop3_max_connections_per_ip: r.count("pop3.maxconnectionsperip", 50, 1)?,
            smtp_timeout: Duration::from_secs(r.number("smtp.timeout", 300, 1)?),
            smtp_max_session_time: Duration::from_secs(r.number("smtp.maxsessiontime", 1800, 1)?),
            pop3_timeout: Duration::from_secs(r.number("pop3.timeout", 600, 1)?),
            pop3_max_session_time: Duration::from_secs(r.number("pop3.maxsessiontime", 3600, 1)?),
            max_header_size: r.scaled("smtp.maxheadersize", 1024, 1024)?,
            bare_lf: r.choice(
                "smtp.barelf",
                BareLf::Normalize,
                &[("normalize", BareLf::Normalize), ("reject", BareLf::Reject)],
            )?,
            submission_sender_match: r.boolean("submission.sendermatch", true)?,
            min_disk_free: r.scaled("mindiskfree", 100, MB)?,
            delivery_concurrency: r.count("smtpdelivery.concurrency", 10, 1)?,
            delay_warning: (delay_hours > 0)
                .then(|| Duration::from_secs(delay_hours.saturating_mul(3600))),
            delivery_tls: read_delivery_tls(&r)?,
            delivery_ca_file: r.path("smtpdelivery.cafile"),
            dns_servers: read_list(&r, "dns.servers", parse_dns_server)?,
            mx_port: r.port("smtpdelivery.mxport", 25)?,
            delivery_connection_cache: Duration::from_secs(u64::from(r.number_u32(
                "smtpdelivery.connectioncache",
                2,
                0,
            )?)),
            http: super::http::HttpConf::parse(path, &props)?,
            history_days: r.number_u32("history.days", 30, 0)?,
            history_subjects: r.boolean("history.subjects", true)?,
            read_at_start: read_at_start(&r),
            webhook_secret: match r.value("webhook.secret") {
                Some((e, v)) => Some(
                    super::webhook::check_secret(v.trim())
                        .map(|_| v.trim().to_string())
                        .map_err(|why| r.err(e, why))?,
                ),
                None => None,
            },
            webhook_retry_base: Duration::from_secs(r.number("webhook.retrybase", 60, 1)?),
            dkim: super::dkim::parse(path, &props, &mut warnings)?,
            capture: r.boolean("capture", false)?,
            capture_allow: address_patterns(&r, "capture.allow")?,
            database: database_settings(&r)?,
        };

        conf.check_ports_and_tls(&r)?;
        Ok((conf, warnings))
    }

    /// Ports that must not collide, and TLS settings that need each other.
    fn check_ports_and_tls(&self, r: &Reader) -> Result<(), ConfigError> {
        let mut ports: Vec<(&str, u16)> =
            vec![("smtpport", self.smtp_port), ("pop3port", self.pop3_port)];
        for (k, p) in [
            ("submissionport", self.submission_port),
            ("securesmtpport", self.secure_smtp_port),
            ("securepop3port", self.secure_pop3_port),
            ("http.port", self.http.port),
        ] {
            if let Some(p) = p {
                ports.push((k, p));
            }
        }
        for (i, (k, p)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..i].iter().find(|(_, q)| q == p) {
                if let Some(e) = r.entry(k).or_else(|| r.entry(other)) {
                    return Err(r.err(e, format!("port {p} is also used by '{other}'")));
                }
            }
        }
        match (&self.tls_certificate, &self.tls_key) {
            (Some(_), None) => return Err(missing(r.path, "tls.key", "tls.certificate is set")),
            (None, Some(_)) => return Err(missing(r.path, "tls.certificate", "tls.key is set")),
            _ => {}
        }
        Ok(())
    }

    /// Whether `domain` (any case) is one of `domains`. An address literal `[127.0.0.1]` matches `127.0.0.1`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domain(domain).is_some()
    }

    /// The `domains` entry that `domain` names, however it is written: any case, an address
    /// literal (`[127.0.0.1]`, `[IPv6:::1]`) or a trailing dot (`example.com.`). Mail to any of
    /// these forms belongs to the account written with the configured name.
    pub fn local_domain(&self, domain: &str) -> Option<&str> {
        let d = domain.trim();
        let d = d
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(|s| {
                s.strip_prefix("IPv6:")
                    .or_else(|| s.strip_prefix("ipv6:"))
                    .unwrap_or(s)
            })
            .unwrap_or(d);
        let d = d.strip_suffix('.').unwrap_or(d);
        let d = crate::address::ascii_domain(d);
        self.domains
            .iter()
            .find(|x| x.eq_ignore_ascii_case(&d))
            .map(String::as_str)
    }

    /// Whether a client at `ip` may relay (`relay.ipaddresses`).
    pub fn relay_ip_allowed(&self, ip: IpAddr) -> bool {
        self.relay_ips.iter().any(|p| p.matches(ip))
    }

    /// Whether a client at `ip` is free of the per-address limits (`limits.exempt`).
    pub fn limits_exempt(&self, ip: IpAddr) -> bool {
        self.limits_exempt.iter().any(|p| p.matches(ip))
    }

    /// Whether envelope sender `sender` may relay (`relay.emailaddresses`, `@domain` form too).
    pub fn relay_sender_allowed(&self, sender: &str) -> bool {
        let sender = sender.trim().to_ascii_lowercase();
        let Some(at) = sender.rfind('@') else {
            return false;
        };
        let domain_form = &sender[at..];
        self.relay_senders
            .iter()
            .any(|r| *r == sender || (r.starts_with('@') && r == domain_form))
    }

    /// Whether capture mode lets mail to `rcpt` go out now (`capture` off, or `capture.allow`).
    pub fn capture_lets_out(&self, rcpt: &str) -> bool {
        if !self.capture {
            return true;
        }
        let rcpt = rcpt.trim().to_ascii_lowercase();
        let Some(at) = rcpt.rfind('@') else {
            return false;
        };
        let domain_form = &rcpt[at..];
        self.capture_allow
            .iter()
            .any(|a| *a == rcpt || (a.starts_with('@') && a == domain_form))
    }
}

fn warn_unknown_keys(path: &Path, props: &Properties, warnings: &mut Vec<Warning>) {
    for e in &props.entries {
        if super::lookup(MAIL_KEYS, &e.key).is_none() {
            warnings.push(super::unknown_key_warning(
                path,
                e.line,
                &e.key,
                MAIL_KEYS.iter().map(|k| k.name),
            ));
        }
    }
}

fn read_clear_text(r: &Reader) -> Result<ClearText, ConfigError> {
    r.choice(
        "allowClearText",
        ClearText::Always,
        &[
            ("never", ClearText::Never),
            ("encryptedOnly", ClearText::EncryptedOnly),
            ("always", ClearText::Always),
        ],
    )
}

fn read_delivery_tls(r: &Reader) -> Result<DeliveryTls, ConfigError> {
    r.choice(
        "smtpdelivery.tls",
        DeliveryTls::Opportunistic,
        &[
            ("opportunistic", DeliveryTls::Opportunistic),
            ("verify", DeliveryTls::Verify),
            ("required", DeliveryTls::Required),
            ("off", DeliveryTls::Off),
        ],
    )
}

fn read_at_start(r: &Reader) -> Vec<(&'static str, String)> {
    MAIL_KEYS
        .iter()
        .filter(|k| k.applies == super::Applies::Restart)
        .map(|k| {
            let v = r.value(k.name).map_or(k.default, |(_, v)| v);
            (k.name, v.to_string())
        })
        .collect()
}

/// The keys read at start only whose value differs between `running` and `new`: (key, running
/// value, new value).
pub fn restart_changes(running: &MailConf, new: &MailConf) -> Vec<(&'static str, String, String)> {
    running
        .read_at_start
        .iter()
        .zip(&new.read_at_start)
        .filter(|((_, a), (_, b))| a != b)
        .map(|((k, a), (_, b))| (*k, a.clone(), b.clone()))
        .collect()
}

/// `domains`: required. An IDN may be written in Unicode (`пример.рф`) or as A-labels: kept as
/// A-labels, the form mail to either spelling is compared in (`address::ascii_domain`).
fn read_domains(r: &Reader) -> Result<Vec<String>, ConfigError> {
    match r.list("domains") {
        Some((e, items)) if !items.is_empty() => items
            .iter()
            .map(|d| {
                check_name(&crate::address::ascii_domain(d)).map_err(|why| r.err(e, why))?;
                Ok(crate::address::ascii_domain(d.trim_end_matches('.')))
            })
            .collect(),
        _ => Err(missing(
            r.path,
            "domains",
            "name the local domains, e.g. domains=example.com,localhost",
        )),
    }
}

/// A comma list whose every item must parse; the first bad one stops the load, named.
fn read_list<T>(
    r: &Reader,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    match r.list(key) {
        None => Ok(Vec::new()),
        Some((e, items)) => items
            .into_iter()
            .map(|item| parse(item).map_err(|why| r.err(e, why)))
            .collect(),
    }
}

fn parse_ip(item: &str) -> Result<IpAddr, String> {
    item.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| format!("{item:?} is not an IP address"))
}

fn read_default_user(r: &Reader) -> Result<Option<String>, ConfigError> {
    match r.value("defaultuser") {
        None => Ok(None),
        Some((e, v)) => crate::address::mailbox_dir_name(v)
            .map(Some)
            .map_err(|why| r.err(e, format!("{v:?} cannot be an account: {why}"))),
    }
}

/// `limits.exempt`: `none` exempts nobody; unset, the `relay.ipaddresses` list.
fn read_limits_exempt(r: &Reader, relay_ips: &[IpPattern]) -> Result<Vec<IpPattern>, ConfigError> {
    match r.list("limits.exempt") {
        Some((_, items)) if items.len() == 1 && items[0].eq_ignore_ascii_case("none") => {
            Ok(Vec::new())
        }
        Some((_, items)) if !items.is_empty() => read_list(r, "limits.exempt", IpPattern::parse),
        _ => Ok(relay_ips.to_vec()),
    }
}

fn read_hostname(r: &Reader, domains: &[String]) -> Result<String, ConfigError> {
    match r.value("hostname") {
        Some((e, v)) => {
            check_name(v).map_err(|why| r.err(e, why))?;
            Ok(bracket_if_ip(v.strip_suffix('.').unwrap_or(v)))
        }
        None => Ok(default_hostname(&domains[0])),
    }
}

/// `node.name`: letters, digits, `.`, `_` and `-` (it goes into log lines, metrics labels an
/// operator may add, and the console); default the machine's host name, else `hostname`.
fn read_node_name(r: &Reader, hostname: &str) -> Result<String, ConfigError> {
    match r.value("node.name") {
        Some((e, v)) => check_node_name(v)
            .map(|()| v.to_string())
            .map_err(|why| r.err(e, why)),
        None => Ok(super::hostname::machine_name()
            .filter(|m| check_node_name(m).is_ok())
            .unwrap_or_else(|| {
                let h = super::hostname::unbracket(hostname);
                h.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .take(63)
                    .collect()
            })),
    }
}

/// What a `node.name` may be.
pub fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{name:?} must be 1 to 63 characters"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{name:?}: {c:?} is not a letter, digit, '.', '_' or '-'"
        )),
        None => Ok(()),
    }
}

/// `smtp.maxrecipients`, or JES 2.x's `max.valid.rcpt`; when both are set the first wins, with a
/// warning.
fn read_max_recipients(r: &Reader, warnings: &mut Vec<Warning>) -> Result<usize, ConfigError> {
    match (r.value("smtp.maxrecipients"), r.value("max.valid.rcpt")) {
        (Some(_), Some((e, _))) => {
            warnings.push(Warning {
                path: r.path.to_path_buf(),
                line: e.line,
                message:
                    "both smtp.maxrecipients and max.valid.rcpt are set; smtp.maxrecipients wins"
                        .into(),
            });
            r.count("smtp.maxrecipients", 1000, 1)
        }
        (None, Some(_)) => r.count("max.valid.rcpt", 1000, 1),
        _ => r.count("smtp.maxrecipients", 1000, 1),
    }
}

/// The `store.url` group of keys (issue 14). The URL is checked here, so that a typo in it
/// names mail.conf's line rather than failing at the first connection.
fn database_settings(r: &Reader<'_>) -> Result<Option<crate::pg::Settings>, ConfigError> {
    let Some((e, url)) = r.value("store.url") else {
        return Ok(None);
    };
    crate::pg::url::parse(url).map_err(|why| r.err(e, why))?;
    Ok(Some(crate::pg::Settings {
        url: url.to_string(),
        password_file: r.path("store.passwordfile"),
        max_connections: r.count("store.maxconnections", 10, 1)?,
        lease: Duration::from_secs(r.number("store.leaseseconds", 60, 5)?),
        sweep: Duration::from_secs(r.number("store.sweepseconds", 300, 1)?),
    }))
}

/// A comma list of addresses or `@domain`s (the `relay.emailaddresses` syntax), lower-cased.
fn address_patterns(r: &Reader, key: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    if let Some((e, items)) = r.list(key) {
        for item in items {
            let s = item.to_ascii_lowercase();
            let ok = match s.split_once('@') {
                Some((local, domain)) => {
                    !domain.is_empty()
                        && !domain.contains('@')
                        && !local.contains(char::is_whitespace)
                }
                None => false,
            };
            if !ok {
                return Err(r.err(e, format!("{item:?} is neither an address nor @domain")));
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn missing(path: &Path, key: &str, reason: &str) -> ConfigError {
    ConfigError::Missing {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
#[path = "mail_tests.rs"]
mod tests;
