//! One entry of `defaultsmtpservers=host[:port][/user:password],...`, as JES wrote them.
//!
//! The password may hold `:` and `/`, so it is everything after the first `:` behind the slash;
//! every message and every `Display` masks it, because these values end up in logs and in
//! `jes check`.

use super::reader::parse_port;

/// One smart host from `defaultsmtpservers=host[:port][/user:password],...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartHost {
    pub host: String,
    /// Default 25.
    pub port: u16,
    /// `user:password` after the slash, if any.
    pub credentials: Option<(String, String)>,
}

impl SmartHost {
    /// Parses `host[:port][/user:password]`; `[v6addr]:port` works too. The password is
    /// everything after the first `:` following the slash, so it may contain `:` and `/`.
    pub fn parse(s: &str) -> Result<SmartHost, String> {
        let s = s.trim();
        // Error messages show `shown`, never the password.
        let shown = mask_smart_host(s);
        let (hostport, creds) = match s.split_once('/') {
            Some((h, c)) => (h.trim(), Some(c)),
            None => (s, None),
        };
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{shown:?}: '[' without ']'"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(format!("{shown:?}: unexpected {after:?} after ']'")),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{shown:?} has no valid host name"));
        }
        let port = match port {
            None => 25,
            Some(p) => parse_port(p)
                .ok_or_else(|| format!("{shown:?}: {p:?} is not a port number (1-65535)"))?,
        };
        let credentials = match creds {
            None => None,
            Some(c) => match c.split_once(':') {
                Some((u, p)) if !u.is_empty() => Some((u.to_string(), p.to_string())),
                _ => return Err(format!("{shown:?}: expected user:password after '/'")),
            },
        };
        Ok(SmartHost {
            host: host.to_string(),
            port,
            credentials,
        })
    }
}

impl std::fmt::Display for SmartHost {
    /// `host:port`, with `/user:***` when there are credentials (the password is never shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if let Some((user, _)) = &self.credentials {
            write!(f, "/{user}:***")?;
        }
        Ok(())
    }
}

/// `defaultsmtpservers` text with passwords replaced by `***` (for error messages).
fn mask_smart_host(s: &str) -> String {
    match s.split_once('/') {
        Some((h, c)) => match c.split_once(':') {
            Some((u, _)) => format!("{h}/{u}:***"),
            None => format!("{h}/{c}"),
        },
        None => s.to_string(),
    }
}
