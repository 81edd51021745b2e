//! `jes check`: loads a configuration folder as `jes serve` would, prints what the server would do
//! in mail.conf's own words, and lists every problem that would stop a start (the same
//! `preflight` function `jes serve` runs, and the database's schema version when `store.url` is
//! set). `config` holds the typed settings; putting them into sentences is this module's job, so
//! the wording can change without touching the parser.

use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use crate::config::{BareLf, ClearText, Config, HttpConf, MailConf};

const MB: u64 = 1024 * 1024;

/// Prints the check of `dir` to `out`; an error when the configuration does not load or a start
/// would stop on something (the problems are printed first, one `error:` line each).
pub fn check(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let (config, warnings) = Config::load(dir).map_err(|e| e.to_string())?;
    let mut text = String::new();
    for w in &warnings {
        let _ = writeln!(text, "warning: {w}");
    }
    let _ = writeln!(text, "configuration directory: {}", dir.display());
    text.push_str(&mail_summary(&config.mail));
    text.push_str(&super::dkim::summary(&config.mail.dkim));
    text.push_str(&super::user::accounts_summary(&config));
    let _ = writeln!(
        text,
        "log: {} (level {})",
        config.log.file.display(),
        config.log.level.name()
    );
    // What `jes serve` would stop on besides the files' contents (the same function it runs).
    let mut problems = crate::preflight::problems(&config);
    if let Some(settings) = &config.mail.database {
        match database_status(settings) {
            Ok((found, known)) if found > known => problems.push(format!(
                "the database's schema is version {found}, newer than this jes knows ({known})"
            )),
            Ok((found, known)) => {
                let _ = writeln!(
                    text,
                    "database: connected, schema version {found} (this jes: {known}{})",
                    if found < known {
                        "; `jes serve` upgrades it"
                    } else {
                        ""
                    }
                );
            }
            Err(e) => problems.push(format!("cannot use the database: {e}")),
        }
    }
    for p in &problems {
        let _ = writeln!(text, "error: {p}");
    }
    if problems.is_empty() {
        text.push_str("configuration OK\n");
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the output: {e}"))?;
    if !problems.is_empty() {
        return Err(format!(
            "{} problem(s) would stop `jes serve` (listed above)",
            problems.len()
        ));
    }
    Ok(())
}

/// Connects to the `store.url` database once: its schema version and this binary's.
fn database_status(settings: &crate::pg::Settings) -> Result<(i64, i64), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(crate::pg::migrate::status(settings))
        .map_err(|e| e.to_string())
}

/// `mail.conf` in words (smart host passwords masked), one part after another in the order an
/// administrator reads it: where jes listens, who may log in and relay, where mail goes.
pub fn mail_summary(c: &MailConf) -> String {
    let mut s = String::new();
    listeners(&mut s, c);
    tls(&mut s, c);
    acceptance(&mut s, c);
    relaying(&mut s, c);
    delivery(&mut s, c);
    s
}

fn listeners(s: &mut String, c: &MailConf) {
    let addrs = if c.listen_addresses.is_empty() {
        "all addresses".to_string()
    } else {
        join(&c.listen_addresses)
    };
    let _ = writeln!(s, "hostname:        {}", c.hostname);
    let _ = writeln!(s, "listening on:    {addrs}");
    let _ = writeln!(s, "  SMTP           port {}", c.smtp_port);
    let _ = writeln!(s, "  POP3           port {}", c.pop3_port);
    for (name, port) in [
        ("submission", c.submission_port),
        ("SMTP over TLS", c.secure_smtp_port),
        ("POP3 over TLS", c.secure_pop3_port),
    ] {
        if let Some(p) = port {
            let _ = writeln!(s, "  {name:<14} port {p}");
        }
    }
}

/// TLS is always on: without tls.certificate jes makes its own (see `certificate`).
fn tls(s: &mut String, c: &MailConf) {
    let mut offered = vec!["STARTTLS (SMTP)".to_string(), "STLS (POP3)".to_string()];
    for (name, port) in [("SMTP", c.secure_smtp_port), ("POP3", c.secure_pop3_port)] {
        if let Some(p) = port {
            offered.push(format!("implicit TLS on port {p} ({name})"));
        }
    }
    let _ = writeln!(s, "TLS:             {}", offered.join(", "));
    match (&c.tls_certificate, &c.tls_key) {
        (Some(cert), Some(k)) => {
            let _ = writeln!(
                s,
                "  certificate    {} (key {})",
                cert.display(),
                k.display()
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "  certificate    self-signed for {} in tls/ (made when missing, as tls.certificate is unset)",
                c.hostname
            );
        }
    }
    let clear_text = match c.allow_clear_text {
        ClearText::Never => "never (passwords only inside TLS)",
        ClearText::EncryptedOnly => {
            "encryptedOnly (passwords only inside TLS or from loopback addresses)"
        }
        ClearText::Always => "always (passwords also over unencrypted connections)",
    };
    let _ = writeln!(s, "allowClearText:  {clear_text}");
}

/// What mail is taken in and where it is kept.
fn acceptance(s: &mut String, c: &MailConf) {
    let _ = writeln!(s, "local domains:   {}", c.domains.join(", "));
    let _ = writeln!(
        s,
        "catch-all:       {}",
        c.default_user
            .as_deref()
            .unwrap_or("none (unknown local users are refused)")
    );
    let size = if c.max_message_size == 0 {
        "no limit".to_string()
    } else {
        format!("{} MB", c.max_message_size / MB)
    };
    let _ = writeln!(s, "message size:    {size}");
    let history = match (c.history_days, c.history_subjects) {
        (0, _) => "off (history.days=0)".to_string(),
        (d, true) => format!("{d} days, in history.db of the mail root (jes trace)"),
        (d, false) => format!("{d} days, without subjects, in history.db of the mail root"),
    };
    let _ = writeln!(s, "history:         {history}");
    if let Some(db) = &c.database {
        let password = match &db.password_file {
            Some(p) => format!(", password from {}", p.display()),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "store:           PostgreSQL {} ({} connections, leases {} s{password})",
            crate::pg::url::masked(&db.url),
            db.max_connections,
            db.lease.as_secs()
        );
    }
    let bare_lf = match c.bare_lf {
        BareLf::Normalize => "normalize (a line end, stored as CRLF)",
        BareLf::Reject => "reject (550 5.6.11)",
    };
    let _ = writeln!(s, "bare LF in data: {bare_lf}");
}

/// Who may send mail on through jes.
fn relaying(s: &mut String, c: &MailConf) {
    let _ = writeln!(
        s,
        "relay from IPs:  {}",
        if c.relay_ips.is_empty() {
            "none".to_string()
        } else {
            join(&c.relay_ips)
        }
    );
    let _ = writeln!(
        s,
        "relay senders:   {}",
        if c.relay_senders.is_empty() {
            "none".to_string()
        } else {
            c.relay_senders.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "limits exempt:   {}",
        if c.limits_exempt.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} (no per-address connection limit or login delay)",
                join(&c.limits_exempt)
            )
        }
    );
    if c.pop_before_smtp {
        let _ = writeln!(
            s,
            "POP before SMTP: on, {} minutes",
            c.pop_before_smtp_timeout.as_secs() / 60
        );
    } else {
        let _ = writeln!(s, "POP before SMTP: off");
    }
}

/// How mail leaves, the console, and capture mode.
fn delivery(s: &mut String, c: &MailConf) {
    let _ = writeln!(
        s,
        "delivery:        {}",
        if c.smart_hosts.is_empty() {
            "direct to each domain's MX".to_string()
        } else {
            format!("via {}", join(&c.smart_hosts))
        }
    );
    let _ = writeln!(
        s,
        "  retries        {} attempts, queue scan every {} s, smtpdelivery.tls {}",
        c.delivery_threshold,
        c.delivery_interval.as_secs(),
        c.delivery_tls.name()
    );
    let _ = writeln!(s, "{}", http_summary(&c.http));
    if c.capture {
        let allow = if c.capture_allow.is_empty() {
            "nothing goes out".to_string()
        } else {
            format!("still going out: {}", c.capture_allow.join(", "))
        };
        let _ = writeln!(
            s,
            "capture:         ON: mail that would leave is held (jes capture list); {allow}"
        );
    } else {
        let _ = writeln!(s, "capture:         off");
    }
}

/// The console's line.
fn http_summary(h: &HttpConf) -> String {
    match h.port {
        None => "HTTP console:    off (no http.port)".to_string(),
        Some(p) => {
            let host = match h.address {
                IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            };
            let admins = if h.admins.is_empty() {
                "no admins: nobody can log in (set http.admins)".to_string()
            } else {
                format!("admins {}", h.admins.join(", "))
            };
            let metrics = if h.metrics_public {
                "public"
            } else {
                "login required"
            };
            format!("HTTP console:    http://{host}:{p}/ ({admins}; /metrics {metrics})")
        }
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
