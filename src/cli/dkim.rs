//! `jes dkim keygen` and the DKIM lines of `jes check`: the key work is `crate::dkim`'s.

use std::io::Write;
use std::path::Path;

use crate::dkim::keygen::{self, Algorithm};
use crate::dkim::DomainKey;

/// Makes a key and prints the `mail.conf` line and the DNS record to publish.
pub fn keygen(
    dir: &Path,
    domain: &str,
    selector: Option<&str>,
    algorithm: Algorithm,
    out: &mut dyn Write,
) -> Result<(), String> {
    let selector = selector
        .map(str::to_string)
        .unwrap_or_else(|| keygen::default_selector(chrono::Utc::now()));
    let g = keygen::generate(dir, domain, &selector, algorithm)?;
    let io = |e: std::io::Error| format!("cannot write the output: {e}");
    writeln!(out, "wrote {} (mode 0600)", g.path.display()).map_err(io)?;
    writeln!(out).map_err(io)?;
    writeln!(
        out,
        "add to mail.conf (or append ,{}:{} to an existing dkim.{} line):",
        g.selector, g.conf_path, g.domain
    )
    .map_err(io)?;
    writeln!(out, "  {}", g.conf_line()).map_err(io)?;
    writeln!(out).map_err(io)?;
    writeln!(out, "publish in DNS (zone file):").map_err(io)?;
    writeln!(out, "  {}", g.zone_line()).map_err(io)?;
    writeln!(out).map_err(io)?;
    writeln!(
        out,
        "or, for a web form, a TXT record named {}._domainkey.{} with the value:",
        g.selector, g.domain
    )
    .map_err(io)?;
    writeln!(out, "  {}", g.record).map_err(io)?;
    Ok(())
}

/// `jes check`'s DKIM part: each key with the record it needs in DNS (a key that cannot be read
/// is named with why; its warning line comes from the configuration load).
pub fn summary(keys: &[DomainKey]) -> String {
    if keys.is_empty() {
        return "DKIM signing:    off (no dkim.DOMAIN keys)\n".into();
    }
    let mut s = String::from("DKIM signing:    mail from a relay.ipaddresses client, an authenticated session, or jes's own notices\n");
    for k in keys {
        match &k.key {
            Ok(key) => {
                s.push_str(&format!(
                    "  {} selector {} ({}, {})\n    TXT {}: {}\n",
                    k.domain,
                    k.selector,
                    key.algorithm_name(),
                    k.path.display(),
                    k.record_name(),
                    key.record()
                ));
            }
            Err(why) => s.push_str(&format!(
                "  {} selector {}: NOT SIGNING, {why}\n",
                k.domain, k.selector
            )),
        }
    }
    s
}
