//! `jes migrate DIR --from URL`: runs the way back (`crate::migrate::from`) and prints what it
//! wrote and what the check found. The URL is only ever printed with its password masked.

use std::io::Write;
use std::time::Duration;

use super::migrate_common::{password_note, print_mail_counts, runtime, Args};
use crate::migrate::from::Summary;
use crate::pg::url::masked;
use crate::pg::Settings;

/// Writes the database `url` into `args.dir` and prints the summary; `Err` on a refusal, a
/// failure or a mismatch.
pub(super) fn migrate_from(args: &Args, url: &str, out: &mut dyn Write) -> Result<(), String> {
    let w = |e: std::io::Error| format!("cannot write the output: {e}");
    let settings = Settings {
        url: url.to_string(),
        password_file: args.password_file.clone(),
        max_connections: 4,
        lease: Duration::from_secs(60),
        sweep: Duration::from_secs(300),
    };
    password_note(url, out).map_err(w)?;
    writeln!(
        out,
        "writing {} into {} ...",
        masked(url),
        args.dir.display()
    )
    .map_err(w)?;
    out.flush().map_err(w)?;
    let summary = runtime()?.block_on(crate::migrate::from::run(&args.dir, &settings))?;
    print_summary(&summary, out).map_err(w)?;
    if summary.mismatches.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the check found {} mismatch(es) (listed above): {} does not hold exactly what the database holds. The database is unchanged; do not start a server on the folder before the cause is found",
        summary.mismatches.len(),
        summary.root.display()
    ))
}

fn print_summary(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    for note in &s.notes {
        writeln!(out, "note: {note}")?;
    }
    print_mail_counts(
        out,
        (&s.location, s.schema_version),
        &s.mailboxes,
        &s.queue,
        "written",
    )?;
    writeln!(
        out,
        "accounts: {} account(s) and {} user propert{} (forwards, webhooks) written into user.conf",
        s.accounts,
        s.properties,
        if s.properties == 1 { "y" } else { "ies" }
    )?;
    writeln!(out, "history: {} event(s) written", s.history)?;
    for m in &s.mismatches {
        writeln!(out, "mismatch: {m}")?;
    }
    if s.mismatches.is_empty() {
        writeln!(
            out,
            "checked: the folder reads back as the database (every UIDL, size, order and message SHA-256; every queue field; every account and property; every history event)"
        )?;
    }
    Ok(())
}
