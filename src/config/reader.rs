//! Typed values out of a properties file, for `mail.conf`'s keys.
//!
//! Every reader method takes the key and its default and returns either the value or an error
//! naming the file, the line and the key, with what was expected; so each key's parsing in
//! `mail.rs` is a single line, and no key can be read without a clear error.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::properties::{Entry, Properties};
use super::ConfigError;

pub(super) const MB: u64 = 1024 * 1024;

pub(super) fn parse_port(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|&p| p != 0)
}

/// One `dns.servers` entry: `ip`, `ip:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; port 53.
pub(super) fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    let bad = || format!("{s:?} is not an IP address with an optional :port");
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 53));
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<IpAddr>()
        .map_err(|_| bad())?;
    if ip.is_ipv6() && !host.starts_with('[') {
        return Err(bad());
    }
    let port = parse_port(port)
        .ok_or_else(|| format!("{s:?}: {port:?} is not a port number (1-65535)"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Reads typed values out of `Properties`, producing errors that name the file, line and key.
pub(super) struct Reader<'a> {
    pub(super) path: &'a Path,
    pub(super) props: &'a Properties,
}

impl Reader<'_> {
    pub(super) fn entry(&self, key: &str) -> Option<&Entry> {
        self.props.get(key)
    }

    /// The trimmed value, `None` when the key is absent or empty.
    pub(super) fn value(&self, key: &str) -> Option<(&Entry, &str)> {
        let e = self.entry(key)?;
        let v = e.value.trim();
        (!v.is_empty()).then_some((e, v))
    }

    pub(super) fn err(&self, e: &Entry, reason: String) -> ConfigError {
        ConfigError::Value {
            path: self.path.to_path_buf(),
            line: e.line,
            key: e.key.clone(),
            reason,
        }
    }

    pub(super) fn port(&self, key: &str, default: u16) -> Result<u16, ConfigError> {
        match self.value(key) {
            None => Ok(default),
            Some((e, v)) => parse_port(v)
                .ok_or_else(|| self.err(e, format!("{v:?} is not a port number (1-65535)"))),
        }
    }

    /// A port where 0 or unset means "off".
    pub(super) fn optional_port(&self, key: &str) -> Result<Option<u16>, ConfigError> {
        match self.value(key) {
            None => Ok(None),
            Some((_, "0")) => Ok(None),
            Some((e, v)) => parse_port(v).map(Some).ok_or_else(|| {
                self.err(
                    e,
                    format!("{v:?} is not a port number (1-65535, or 0 for off)"),
                )
            }),
        }
    }

    pub(super) fn number(&self, key: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        match self.value(key) {
            None => Ok(default),
            Some((e, v)) => match v.parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                Ok(_) => Err(self.err(e, format!("{v:?} is too small (at least {min})"))),
                Err(_) => Err(self.err(e, format!("{v:?} is not a whole number"))),
            },
        }
    }

    pub(super) fn number_u32(&self, key: &str, default: u32, min: u32) -> Result<u32, ConfigError> {
        let n = self.number(key, u64::from(default), u64::from(min))?;
        match u32::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => match self.entry(key) {
                Some(e) => Err(self.err(e, format!("{n} is too large"))),
                None => Ok(default),
            },
        }
    }

    pub(super) fn count(
        &self,
        key: &str,
        default: usize,
        min: usize,
    ) -> Result<usize, ConfigError> {
        let n = self.number(key, default as u64, min as u64)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// `n` units of `unit` bytes, refusing overflow.
    pub(super) fn scaled(&self, key: &str, default: u64, unit: u64) -> Result<u64, ConfigError> {
        let n = self.number(key, default, 0)?;
        match (n.checked_mul(unit), self.entry(key)) {
            (Some(b), _) => Ok(b),
            (None, Some(e)) => Err(self.err(e, format!("{n} is too large"))),
            (None, None) => Ok(default.saturating_mul(unit)),
        }
    }

    pub(super) fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.value(key) {
            None => Ok(default),
            Some((e, v)) => match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Ok(true),
                "false" | "no" | "off" => Ok(false),
                _ => Err(self.err(e, format!("{v:?} is not true or false (or yes/no, on/off)"))),
            },
        }
    }

    /// One of `choices` (case-insensitive).
    pub(super) fn choice<T: Copy>(
        &self,
        key: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        match self.value(key) {
            None => Ok(default),
            Some((e, v)) => choices
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(v))
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                    self.err(e, format!("{v:?} is not one of {}", names.join(", ")))
                }),
        }
    }

    /// Comma list, items trimmed, empty items dropped.
    pub(super) fn list(&self, key: &str) -> Option<(&Entry, Vec<&str>)> {
        let e = self.entry(key)?;
        let items: Vec<&str> = e
            .value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        Some((e, items))
    }

    /// A path, relative ones resolved against the folder of mail.conf.
    pub(super) fn path(&self, key: &str) -> Option<PathBuf> {
        let (_, v) = self.value(key)?;
        let p = PathBuf::from(v);
        Some(if p.is_absolute() {
            p
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        })
    }
}
