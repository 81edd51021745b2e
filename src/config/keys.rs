//! The key registry: every key jes reads from `mail.conf`, `log.conf` and `user.conf`, with its
//! default as written in the file, its meaning, whether a change applies on reload or waits for a
//! restart, and the key it is another name for.
//!
//! One table per file, so the facts about a key live in one place: the unknown-key check and its
//! "did you mean" read it, `jes init` writes its sample from it, a reload warns from it when a key
//! that is read at start changed, and tests hold the parser's defaults and the README's key tables
//! to it (`registry_tests`). A name with an upper-case placeholder (`dkim.DOMAIN`,
//! `userprop.ADDRESS.forwardAddresses`) is a key family: it stands for every key with some text in
//! the placeholder's place.

/// When a changed value takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Within seconds, when the file is re-read (or on SIGHUP).
    Reload,
    /// At the next start (the addresses and ports listened on, the mail root): a reload keeps
    /// the running value and says so.
    Restart,
}

/// One configuration key: its name, its default as written in the file (empty: unset), and what
/// it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
    /// Whether JES 1.6.1 knew the key (false: added by jes).
    pub jes: bool,
    pub applies: Applies,
    /// The key this one is another name for (JES 2.x spellings).
    pub alias_of: Option<&'static str>,
}

pub(super) const fn key(
    name: &'static str,
    default: &'static str,
    meaning: &'static str,
    jes: bool,
) -> KeyInfo {
    KeyInfo {
        name,
        default,
        meaning,
        jes,
        applies: Applies::Reload,
        alias_of: None,
    }
}

impl KeyInfo {
    /// Read at start only.
    pub const fn restart(mut self) -> KeyInfo {
        self.applies = Applies::Restart;
        self
    }

    /// Another name for `key`.
    pub const fn alias_of(mut self, key: &'static str) -> KeyInfo {
        self.alias_of = Some(key);
        self
    }

    /// The family's fixed parts, when the name has a placeholder (`dkim.DOMAIN`: `("dkim.", "")`).
    fn family(&self) -> Option<(&'static str, &'static str)> {
        let name = self.name;
        let mut start = 0;
        for part in name.split('.') {
            let end = start + part.len();
            if part.len() > 1 && part.chars().all(|c| c.is_ascii_uppercase()) {
                return Some((&name[..start], &name[end..]));
            }
            start = end + 1;
        }
        None
    }

    /// Whether the name stands for a family (`dkim.DOMAIN`): the sample shows it with its
    /// placeholder, which is not a value to uncomment.
    pub fn is_family(&self) -> bool {
        self.family().is_some()
    }

    /// Whether `key` (as written in a file) is this key, or a member of this family.
    pub fn matches(&self, key: &str) -> bool {
        match self.family() {
            None => self.name == key,
            Some((prefix, suffix)) => {
                key.len() > prefix.len() + suffix.len()
                    && key.starts_with(prefix)
                    && key.ends_with(suffix)
            }
        }
    }

    /// "Read at start: a change needs a restart." where that is so, for the sample and `jes check`.
    pub fn applies_note(&self) -> &'static str {
        match self.applies {
            Applies::Reload => "",
            Applies::Restart => "Read at start: a change needs a restart.",
        }
    }
}

/// The entry of `table` that `key` is (exactly, or as a member of a family).
pub fn lookup<'t>(table: &'t [KeyInfo], key: &str) -> Option<&'t KeyInfo> {
    table
        .iter()
        .find(|k| k.name == key)
        .or_else(|| table.iter().find(|k| k.matches(key)))
}

pub const MAIL_KEYS: &[KeyInfo] = &[
    key("domains", "", "REQUIRED. Comma list of the local domains (mail for them is kept here).", true),
    key("hostname", "", "The server's name in greetings, EHLO, Received: lines and bounces. Default: the machine's fully qualified name.", false),
    key("node.name", "", "This server's name among several on one database (store.url): the console, /api/cluster, the history's server column and database leases show it. Letters, digits, '.', '_', '-'; at most 63. Default: the machine's host name.", false).restart(),
    key("listen.address", "", "Comma list of IP addresses to listen on. Unset: every IPv4 and IPv6 address.", true).restart(),
    key("smtpport", "25", "SMTP port.", true).restart(),
    key("pop3port", "110", "POP3 port.", true).restart(),
    key("submissionport", "0", "Message submission port (STARTTLS, then AUTH); 0 = off.", false).restart(),
    key("securesmtpport", "0", "SMTP over TLS port (implicit TLS, e.g. 465; AUTH required); 0 = off. Uses tls.certificate, or the self-signed certificate jes makes without it.", false).restart(),
    key("securepop3port", "0", "POP3 over TLS port (implicit TLS, e.g. 995); 0 = off. Uses tls.certificate, or the self-signed certificate jes makes without it.", false).restart(),
    key("tls.certificate", "", "PEM certificate chain for STARTTLS, STLS and the TLS ports (relative to this folder). Unset: jes makes a self-signed certificate for hostname in tls/ on first start.", false),
    key("tls.key", "", "PEM private key for tls.certificate.", false),
    key("allowClearText", "always", "Passwords over unencrypted connections: never, encryptedOnly or always.", false),
    key("threads", "5", "JES's fixed worker pool: read and checked so JES files stay valid, but unused (sessions are bounded by the connection limits, outbound deliveries by smtpdelivery.concurrency).", true),
    key("smtp.messagesize", "5", "Largest message accepted, in MB; 0 = no limit.", true),
    key("smtp.maxrecipients", "1000", "Most recipients per message.", false),
    key("max.valid.rcpt", "1000", "JES 2.x name for smtp.maxrecipients.", false).alias_of("smtp.maxrecipients"),
    key("max.error.count", "20", "SMTP command errors before the connection is closed.", false),
    key("max.pass.attempts", "3", "Failed logins from one client address (other than limits.exempt) before its further attempts wait and its sessions close after each failure; accounts are never locked.", false),
    key("smtp.maxconnections", "10000", "Most SMTP connections at once.", false),
    key("smtp.maxconnectionsperip", "50", "Most SMTP connections at once from one IP address.", false),
    key("pop3.maxconnections", "10000", "Most POP3 connections at once.", false),
    key("pop3.maxconnectionsperip", "50", "Most POP3 connections at once from one IP address.", false),
    key("smtp.timeout", "300", "Seconds to wait for each SMTP command or data read (at least 300 per RFC 5321).", false),
    key("smtp.maxsessiontime", "1800", "Seconds an SMTP session may last in all.", false),
    key("pop3.timeout", "600", "Idle seconds before a POP3 client is logged out (RFC 1939: at least 600).", false),
    key("pop3.maxsessiontime", "3600", "Seconds a POP3 session may last in all.", false),
    key("smtp.maxheadersize", "1024", "Largest message header section, in KB.", false),
    key("smtp.barelf", "normalize", "A bare LF in message data: normalize (taken as a line end, as Postfix 3.9 does) or reject (550 5.6.11). Only CRLF.CRLF ends data; a bare CR is always refused.", false),
    key("submission.sendermatch", "true", "On the submission ports, the envelope sender must be the logged-in address.", false),
    key("mindiskfree", "100", "Free disk space (MB) below which new mail is refused with 452.", false),
    key("smtpdelivery.interval", "10", "Seconds between scans of the smtp/ queue folder.", true),
    key("smtpdelivery.threshold", "10", "Delivery attempts before a message bounces.", true),
    key("smtpdelivery.concurrency", "10", "Outbound connections at once.", false),
    key("smtpdelivery.delaywarning", "4", "Hours after which the sender is told a message is delayed; 0 = never.", false),
    key("smtpdelivery.tls", "opportunistic", "TLS to other servers: opportunistic, verify, required or off.", false),
    key("smtpdelivery.cafile", "", "PEM file of CA certificates for smtpdelivery.tls=verify|required (default: the system's).", false),
    key("smtpdelivery.connectioncache", "2", "Seconds an idle connection to a smart host or MX is kept for the next message; 0 = a new connection for each.", false),
    key("smtpdelivery.mxport", "25", "Port used to connect to MX and A targets (for tests; real servers listen on 25).", false),
    key("dns.servers", "", "Comma list of DNS servers ip[:port] for MX lookups. Unset: the system's (/etc/resolv.conf).", false),
    key("defaultsmtpservers", "", "Smart hosts, comma list of host[:port][/user:password], tried in order. Unset: deliver to each domain's MX.", true),
    key("defaultuser", "", "Account that receives mail for unknown local addresses. Unset: such mail is refused.", true),
    key("relay.ipaddresses", "", "Comma list of client addresses that may relay: 127.0.0.1, 192.168.*.*, 10.0.0.0/8, ::1, fd00::/8.", true),
    key("relay.emailaddresses", "", "Comma list of sender addresses (or @domain) that may relay.", true),
    key("limits.exempt", "", "Comma list of client addresses (as relay.ipaddresses) free of the per-address connection limits and the failed-login delay; none = nobody. Unset: the relay.ipaddresses list.", false),
    key("relay.popbeforesmtp", "false", "Let a client relay for a while after a POP3 login from its address.", true),
    key("relay.popbeforesmtp.timeout", "10", "Minutes a POP3 login allows relaying.", true),
    key("http.port", "0", "Port of the web console, JSON API, /metrics and /healthz; 0 = off.", false).restart(),
    key("http.address", "127.0.0.1", "IP address the web console listens on (plain HTTP: keep it on loopback or behind a TLS proxy).", false).restart(),
    key("http.admins", "", "Comma list of accounts from user.conf that may log in to the web console.", false),
    key("store.dir", "", "Folder for the mail and the server's own files (users/, smtp/, failed/, tls/), relative to this folder. Unset: this folder, as JES.", false).restart(),
    key("store.url", "", "PostgreSQL shared by several jes servers (queue and mailboxes), libpq URL postgresql://USER@HOST[:PORT][,HOST2...]/DB?sslmode=disable|prefer|require|verify-ca|verify-full&sslrootcert=FILE&target_session_attrs=read-write. Unset: the files of the mail root.", false).restart(),
    key("store.passwordfile", "", "File (mode 0600) holding the database password, relative to this folder; keeps it out of mail.conf.", false).restart(),
    key("store.maxconnections", "10", "Most database connections this server opens.", false).restart(),
    key("store.leaseseconds", "60", "Seconds a server's claim on a queued message or a POP3 session outlives the server (renewed while it works).", false).restart(),
    key("store.sweepseconds", "300", "Seconds between this server's sweeps of message bodies nothing in the database refers to any more (tests set 1).", false).restart(),
    key("http.metrics.public", "true", "Serve /metrics and /healthz without a login.", false),
    key("history.days", "30", "Days the delivery history (history.db in the mail root, read by `jes trace` and the console) keeps each event; 0 = no history.", false),
    key("history.subjects", "true", "Keep each message's subject in the delivery history (false: none is stored).", false),
    key("webhook.secret", "", "Standard Webhooks signing secret (whsec_ and base64) for mailboxes whose userprop.ADDRESS.webhook.secret is unset.", false),
    key("webhook.retrybase", "60", "Seconds in the unit of the webhook retry schedule: retries after 1, 2, 4 ... units, at most 60 apart, given up after 1440 units (a day). For tests.", false),
    key("capture", "false", "Capture mode: mail that would leave over SMTP (bounces and forwards too) is held in the queue for `jes capture` and the console's Captured page; local mailboxes are not affected.", false),
    key("capture.allow", "", "Comma list of recipients (address or @domain, as relay.emailaddresses) that still go out while capture is on.", false),
    key("dkim.DOMAIN", "", "DKIM keys SELECTOR:KEYFILE[,SELECTOR:KEYFILE...] (relative to this folder) for mail whose From: domain is DOMAIN; every key listed signs. Make one with `jes dkim keygen DOMAIN`.", false),
];

/// The `log.conf` keys jes reads besides `log4j.*` (all of which are accepted).
pub const LOG_KEYS: &[KeyInfo] = &[
    key("level", "info", "error, warn, info, debug or trace.", false),
    key(
        "log.file",
        "log/jes.log",
        "Log file (relative paths start at the configuration folder's parent).",
        false,
    ),
    key(
        "log.maxfilesize",
        "10MB",
        "Size at which the log is rotated (KB, MB or GB); 0 = never (leave rotation to logrotate, which sends SIGHUP).",
        false,
    ),
    key("log.maxbackups", "5", "Rotated logs kept.", false),
];

/// The `user.conf` keys: accounts and their properties.
pub const USER_KEYS: &[KeyInfo] = &[
    key("user.ADDRESS", "", "An account: its password (plaintext, replaced by a salted argon2id hash at the first read; JES 1.x SHA-1 hashes work too).", true),
    key("userprop.ADDRESS.forwardAddresses", "", "Comma list of addresses mail for the account goes on to (list the address itself to keep a copy here too).", true),
    key("userprop.ADDRESS.webhook", "", "URL each message delivered to the mailbox is POSTed to as JSON (Standard Webhooks signed).", false),
    key("userprop.ADDRESS.webhook.secret", "", "The mailbox's signing secret (whsec_ and base64); unset: webhook.secret.", false),
    key("userprop.ADDRESS.webhook.raw", "false", "Also send the raw message, base64-encoded.", false),
    key("userprop.ADDRESS.webhook.delete", "false", "Delete the message from the mailbox once its call succeeded.", false),
];

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
