//! `jes init`: writes the commented sample configuration (`config::sample`, which refuses to
//! overwrite) and says where it went and how to start it.

use std::io::Write;
use std::path::Path;

/// Creates `dir` when needed and writes mail.conf, user.conf and log.conf into it.
pub fn init(dir: &Path, smtp_port: u16, pop3_port: u16, out: &mut dyn Write) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::config::sample::write_sample(dir, smtp_port, pop3_port).map_err(|e| e.to_string())?;
    writeln!(
        out,
        "wrote mail.conf, user.conf and log.conf into {} (SMTP port {smtp_port}, POP3 port {pop3_port}); start it with: jes serve {}",
        dir.display(),
        dir.display()
    )
    .map_err(|e| format!("cannot write the output: {e}"))
}
