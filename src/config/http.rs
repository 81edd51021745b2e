//! `http.*` keys of `mail.conf`: the web console, JSON API and metrics listener.
//!
//! Kept apart from `mail.rs` (already the longest file of the crate) because the HTTP listener is
//! a separate concern: it reads the same `Properties` and reports errors the same way (file, line,
//! key), but nothing in the mail protocols depends on it. The listener is off unless `http.port`
//! is set, and binds loopback by default: the console manages mail, so exposing it is a decision
//! an administrator makes on purpose. The keys are listed in `super::MAIL_KEYS` with the others,
//! so they are known to the unknown-key check and appear in the `jes init` sample.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::properties::{Entry, Properties};
use super::ConfigError;

/// Typed `http.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConf {
    /// `http.port` (0/unset: off).
    pub port: Option<u16>,
    /// `http.address` (127.0.0.1).
    pub address: IpAddr,
    /// `http.admins`, lower-cased.
    pub admins: Vec<String>,
    /// `http.metrics.public` (true).
    pub metrics_public: bool,
}

impl Default for HttpConf {
    fn default() -> Self {
        HttpConf {
            port: None,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admins: Vec::new(),
            metrics_public: true,
        }
    }
}

fn err(path: &Path, e: &Entry, reason: String) -> ConfigError {
    ConfigError::Value {
        path: path.to_path_buf(),
        line: e.line,
        key: e.key.clone(),
        reason,
    }
}

fn value<'a>(props: &'a Properties, key: &str) -> Option<(&'a Entry, &'a str)> {
    let e = props.get(key)?;
    let v = e.value.trim();
    (!v.is_empty()).then_some((e, v))
}

impl HttpConf {
    /// Reads the `http.*` keys out of `mail.conf`'s properties.
    pub fn parse(path: &Path, props: &Properties) -> Result<HttpConf, ConfigError> {
        let mut conf = HttpConf::default();
        if let Some((e, v)) = value(props, "http.port") {
            conf.port = match v.parse::<u16>() {
                Ok(0) => None,
                Ok(p) => Some(p),
                Err(_) => {
                    let reason = format!("{v:?} is not a port number (1-65535, or 0 for off)");
                    return Err(err(path, e, reason));
                }
            };
        }
        if let Some((e, v)) = value(props, "http.address") {
            conf.address = v
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| err(path, e, format!("{v:?} is not an IP address")))?;
        }
        if let Some((e, v)) = value(props, "http.admins") {
            for a in v.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                if !a.contains('@') || a.contains(char::is_whitespace) {
                    return Err(err(path, e, format!("{a:?} is not an address")));
                }
                conf.admins.push(crate::address::canonical(a));
            }
        }
        if let Some((e, v)) = value(props, "http.metrics.public") {
            conf.metrics_public = match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => true,
                "false" | "no" | "off" => false,
                _ => {
                    let reason = format!("{v:?} is not true or false (or yes/no, on/off)");
                    return Err(err(path, e, reason));
                }
            };
        }
        Ok(conf)
    }

    /// Whether `user` (any case) may log in to the console.
    pub fn is_admin(&self, user: &str) -> bool {
        let user = crate::address::canonical(user);
        self.admins.contains(&user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HttpConf, ConfigError> {
        let path = Path::new("mail.conf");
        let (props, _) = Properties::parse(path, text);
        HttpConf::parse(path, &props)
    }

    #[test]
    fn defaults_are_off_and_loopback() {
        let c = parse("").unwrap();
        assert_eq!(c, HttpConf::default());
        assert_eq!(parse("http.port=0\n").unwrap().port, None);
    }

    #[test]
    fn every_key() {
        let c = parse(
            "http.port=8025\nhttp.address=::1\nhttp.admins=Admin@x.test, b@y\nhttp.metrics.public=no\n",
        )
        .unwrap();
        assert_eq!(c.port, Some(8025));
        assert_eq!(c.address, "::1".parse::<IpAddr>().unwrap());
        assert!(c.is_admin("admin@X.test") && c.is_admin("b@y") && !c.is_admin("c@y"));
        assert!(!c.metrics_public);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("http.port=x\n", "http.port"),
            ("http.address=localhost\n", "http.address"),
            ("http.admins=nobody\n", "http.admins"),
            ("http.metrics.public=maybe\n", "http.metrics.public"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(":1:"), "{e}");
        }
    }
}
