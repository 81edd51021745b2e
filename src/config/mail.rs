//! `mail.conf`: server settings. (Skeleton: the config helper fills in parsing and validation.)

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, Warning};

/// One smart host from `defaultsmtpservers=host[:port][/user:password],...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartHost {
    pub host: String,
    /// Default 25.
    pub port: u16,
    /// `user:password` after the slash, if any.
    pub credentials: Option<(String, String)>,
}

/// A `relay.ipaddresses` entry: IPv4 with whole-octet `*` wildcards (`192.168.*.*`), an IPv6
/// address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`). `::ffff:a.b.c.d` matches as IPv4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpPattern {
    /// Four octets, `None` for `*`.
    V4Wildcard([Option<u8>; 4]),
    Cidr(IpAddr, u8),
}

impl IpPattern {
    pub fn matches(&self, ip: IpAddr) -> bool {
        let _ = ip;
        todo!()
    }
}

/// Typed `mail.conf`. Field comments give the key and JES's default.
#[derive(Debug, Clone)]
pub struct MailConf {
    /// `listen.address`: empty means every IPv4 and IPv6 address.
    pub listen_addresses: Vec<IpAddr>,
    /// `smtpport` (25).
    pub smtp_port: u16,
    /// `pop3port` (110).
    pub pop3_port: u16,
    /// `threads` (5): a concurrency hint (outbound delivery concurrency), not a connection limit.
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
    /// `hostname` (new; default: the machine's fully qualified name).
    pub hostname: String,
}

impl MailConf {
    /// Reads and validates `mail.conf`.
    pub fn load(path: &Path) -> Result<(MailConf, Vec<Warning>), ConfigError> {
        let _ = path;
        todo!()
    }

    /// Whether `domain` (any case) is one of `domains`. An address literal `[127.0.0.1]` matches `127.0.0.1`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let _ = domain;
        todo!()
    }

    /// Whether a client at `ip` may relay (`relay.ipaddresses`).
    pub fn relay_ip_allowed(&self, ip: IpAddr) -> bool {
        let _ = ip;
        todo!()
    }

    /// Whether envelope sender `sender` may relay (`relay.emailaddresses`, `@domain` form too).
    pub fn relay_sender_allowed(&self, sender: &str) -> bool {
        let _ = sender;
        todo!()
    }
}
