//! `store.url`: a libpq connection URL, read into what tokio-postgres takes plus the TLS policy.
//!
//! tokio-postgres parses libpq URLs itself (several hosts, `target_session_attrs=read-write`,
//! `connect_timeout`, ...), but its `sslmode` stops at `require` and it knows no `sslrootcert`.
//! So those two parameters are taken out here, the rest is handed to tokio-postgres unchanged,
//! and `super::tls` builds the rustls verifier that gives `verify-ca` and `verify-full` their
//! libpq meaning. Parsing is pure: `config` calls it to report a bad URL with its file and line.

use std::path::PathBuf;
use std::str::FromStr;

/// libpq's `sslmode` values (`allow` is taken as `prefer`: both encrypt when the server can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A parsed `store.url`.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Reads a `postgresql://` (or `postgres://`) URL. The error says what is wrong, without the
/// password.
pub fn parse(url: &str) -> Result<Target, String> {
    let url = url.trim();
    if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        return Err("is not a postgresql:// URL".into());
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut ssl_mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => {
                ssl_mode = match decode(v).as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(decode(v))),
            _ => kept.push(pair),
        }
    }
    // tokio-postgres negotiates TLS only as far as `require`; the stricter modes are require
    // plus the verifier `super::tls` builds.
    let pg_mode = match ssl_mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        _ => "require",
    };
    kept.push(match pg_mode {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    let rebuilt = format!("{base}?{}", kept.join("&"));
    let config = tokio_postgres::Config::from_str(&rebuilt).map_err(|e| e.to_string())?;
    if config.get_hosts().is_empty() {
        return Err("names no host".into());
    }
    if config.get_user().is_none() {
        return Err("names no user (postgresql://USER@HOST/DB)".into());
    }
    if root_cert.is_some() && ssl_mode == SslMode::Disable {
        return Err("sslrootcert is set but sslmode=disable".into());
    }
    Ok(Target {
        config,
        ssl_mode,
        root_cert,
    })
}

/// The URL with any password replaced by `****`, for `jes check` and log lines.
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let masked_authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:****@{hosts}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    // A password can also come as a query parameter.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|p| {
                    if p.starts_with("password=") {
                        "password=****".to_string()
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{masked_authority}{tail}")
}

/// Percent-decoding of one query value (libpq URLs encode `/` in paths as `%2F`).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_hosts_and_root_cert() {
        let t = parse("postgresql://jes@db1:5432,db2:5433/mail?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&target_session_attrs=read-write").unwrap();
        assert_eq!(t.ssl_mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(t.config.get_hosts().len(), 2);
        assert_eq!(t.config.get_ports(), &[5432, 5433]);
        assert_eq!(t.config.get_dbname(), Some("mail"));
        assert_eq!(
            t.config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let t = parse("postgres://u@h/d").unwrap();
        assert_eq!(t.ssl_mode, SslMode::Prefer);
        assert!(parse("postgresql://u@h/d?sslmode=bogus").is_err());
        assert!(parse("mysql://u@h/d").is_err());
        assert!(parse("postgresql://h/d").is_err());
    }

    #[test]
    fn masking_hides_every_password() {
        assert_eq!(
            masked("postgresql://jes:s3cret@h:5432/d?sslmode=require"),
            "postgresql://jes:****@h:5432/d?sslmode=require"
        );
        assert_eq!(
            masked("postgresql://jes@h/d?password=x&sslmode=disable"),
            "postgresql://jes@h/d?password=****&sslmode=disable"
        );
        assert_eq!(masked("postgresql://jes@h/d"), "postgresql://jes@h/d");
    }
}
