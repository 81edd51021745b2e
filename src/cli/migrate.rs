//! `jes migrate DIR --to URL`: finds the folder's configuration and the database, runs the
//! migration (`crate::migrate`) and prints what it copied and what the check found.
//!
//! The database is `--to URL`, or else `store.url` of the folder's own mail.conf (with its
//! `store.passwordfile`), so an administrator who has already written the new mail.conf can
//! migrate with exactly the settings the servers will use. `--password-file` keeps the
//! password off the command line (where every user of the machine can read it in the process
//! list); a URL is only ever printed with its password masked. `--from URL` is the way back
//! (`super::migrate_from`).

use std::io::Write;
use std::time::Duration;

use crate::config::Config;
use crate::migrate::{Copied, Summary, Targets};
use crate::pg::url::masked;
use crate::pg::Settings;

pub use super::migrate_common::Args;
use super::migrate_common::{password_note, print_mail_counts, runtime};

/// Runs the migration and prints its summary; `Err` on a refusal, a failure or a mismatch.
pub fn migrate(args: &Args, out: &mut dyn Write) -> Result<(), String> {
    if let Some(url) = &args.from {
        if args.to.is_some() {
            return Err(
                "--to and --from name opposite directions: give one (--to URL copies the folder into the database, --from URL writes the database into the folder)".into(),
            );
        }
        return super::migrate_from::migrate_from(args, url, out);
    }
    let w = |e: std::io::Error| format!("cannot write the output: {e}");
    let (config, warnings) = Config::load(&args.dir).map_err(|e| e.to_string())?;
    for warning in &warnings {
        writeln!(out, "warning: {warning}").map_err(w)?;
    }
    let settings = settings(args, &config)?;
    password_note(&settings.url, out).map_err(w)?;
    writeln!(
        out,
        "copying {} into {} ...",
        config.store_dir().display(),
        masked(&settings.url)
    )
    .map_err(w)?;
    out.flush().map_err(w)?;
    let summary = runtime()?.block_on(crate::migrate::run(&config, &settings, targets()))?;
    print_summary(&summary, out).map_err(w)?;
    if summary.mismatches.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the check found {} mismatch(es) (listed above): the database does not hold exactly what {} holds. The folder is unchanged; do not point servers at this database before the cause is found",
        summary.mismatches.len(),
        args.dir.display()
    ))
}

/// The database sides of the steps this build has no tables for yet (accounts, history): none.
fn targets() -> Targets {
    Targets {
        accounts: Some(Box::new(crate::migrate::accounts::DbAccounts)),
        history: Some(Box::new(crate::migrate::history::DbHistory)),
    }
}

/// The database to migrate into: `--to`, else the folder's `store.url`.
fn settings(args: &Args, config: &Config) -> Result<Settings, String> {
    let mut settings = match (&args.to, &config.mail.database) {
        (Some(url), _) => Settings {
            url: url.clone(),
            password_file: None,
            max_connections: 4,
            lease: Duration::from_secs(60),
            sweep: Duration::from_secs(300),
        },
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(format!(
                "name the database: jes migrate {} --to postgresql://USER@HOST/DB [--password-file FILE] (or set store.url in its mail.conf)",
                args.dir.display()
            ))
        }
    };
    if let Some(file) = &args.password_file {
        settings.password_file = Some(file.clone());
    }
    Ok(settings)
}

fn print_summary(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    print_mail_counts(
        out,
        (&s.location, s.schema_version),
        &s.mailboxes,
        &s.queue,
        "copied",
    )?;
    match s.accounts {
        Copied::Copied(n) => writeln!(out, "accounts: {n} account(s) copied")?,
        Copied::Kept(n) => writeln!(
            out,
            "accounts: {n} account(s) in user.conf, not copied: this jes reads accounts from each server's own user.conf (copy it to every server)"
        )?,
    }
    match s.history {
        Copied::Copied(n) => writeln!(out, "history: {n} event(s) copied")?,
        Copied::Kept(n) => writeln!(
            out,
            "history: {n} event(s) in history.db, not copied: this jes keeps the history per server (history.db stays where it is)"
        )?,
    }
    for m in &s.mismatches {
        writeln!(out, "mismatch: {m}")?;
    }
    if s.mismatches.is_empty() {
        writeln!(
            out,
            "checked: the database reads back as the folder (every UIDL, size, order and message SHA-256; every queue field)"
        )?;
    }
    Ok(())
}
