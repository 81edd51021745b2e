//! The folder side of `jes migrate --from`: preparing it, refusing one that holds mail, and the
//! staging folder the parts are written into before they are moved into place.
//!
//! The staging folder is the mail root's `.jes-migrate-from` (hidden: no reader lists it, and
//! on the mail root's file system, so moving a part into place is one rename). The parts keep
//! the layout the backends wrote them in (`users/KEY/pop*.jmsg`, `smtp/`, `failed/`,
//! `history.db`); publishing moves each mailbox folder, queue file and the history by name,
//! without reading them.

use std::path::{Path, PathBuf};

use crate::accounts::postgres::Row;
use crate::config::properties::Properties;
use crate::config::sample::SAMPLE_USER_CONF;
use crate::config::Config;
use crate::durable::{ensure_dir, fsync_dir};
use crate::store::FileMailboxes;

/// The staging folder's name in the mail root.
const STAGING: &str = ".jes-migrate-from";

/// Makes a new or empty `dir` a jes folder: `jes init`'s sample mail.conf and log.conf,
/// without its sample accounts (their passwords are printed in the documentation). Returns
/// what it did, for the summary.
pub(super) fn prepare(dir: &Path) -> Result<Vec<String>, String> {
    if dir.join("mail.conf").exists() {
        return Ok(Vec::new());
    }
    // Only a new or empty folder gets the sample: anything else there is someone's, and
    // a refusal afterwards must leave the folder as it was.
    let is_empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    if !is_empty {
        return Err(format!(
            "{} has no mail.conf and is not empty: write its mail.conf first (jes init DIR writes a sample into a new folder); nothing was written",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::config::sample::write_sample(dir, 2525, 1100).map_err(|e| e.to_string())?;
    let users = dir.join("user.conf");
    std::fs::remove_file(&users).map_err(|e| format!("cannot remove {}: {e}", users.display()))?;
    Ok(vec![format!(
        "{} had no mail.conf: wrote jes init's sample mail.conf and log.conf (SMTP port 2525, POP3 port 1100, not its sample accounts); set domains and the rest before starting a server",
        dir.display()
    )])
}

/// What user.conf keeps: its text (a file without accounts stays as it was, the accounts go
/// below it), and a note when `jes init`'s untouched sample is replaced.
pub(super) struct Keep {
    pub text: String,
    pub note: Option<String>,
}

/// Refuses a folder that holds mail, queue entries, accounts or history events, naming what it
/// holds; else what user.conf keeps.
pub(super) fn refuse_unless_empty(config: &Config) -> Result<Keep, String> {
    let mut held = Vec::new();
    let files = FileMailboxes::new(config.users_dir());
    let (names, _) = files.mailbox_folders().map_err(|e| e.to_string())?;
    let (mut messages, mut mailboxes) = (0, 0);
    for name in names {
        if crate::address::mailbox_dir_name(&name).ok().as_deref() != Some(name.as_str()) {
            continue; // no key the database has can be this folder
        }
        let n = files.peek(&name).map_err(|e| e.to_string())?.len();
        if n > 0 {
            messages += n;
            mailboxes += 1;
        }
    }
    if messages > 0 {
        held.push(format!(
            "{messages} message(s) in {mailboxes} mailbox(es) under {}",
            config.users_dir().display()
        ));
    }
    let spools = super::super::queue::Spools::of(config);
    let entries = spools.entries()?.len();
    if entries > 0 {
        held.push(format!(
            "{entries} queue entr{} in {} and {}",
            if entries == 1 { "y" } else { "ies" },
            config.queue_dir().display(),
            config.failed_dir().display()
        ));
    }
    let events = super::super::history::read(&config.store_dir())?.len();
    if events > 0 {
        held.push(format!("{events} history event(s) in history.db"));
    }
    let path = config.dir.join("user.conf");
    let loaded = Properties::load(&path).map_err(|e| e.to_string())?;
    let text = match &loaded {
        Some(_) => crate::config::properties::read_text(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => String::new(),
    };
    let mut keep = Keep { text, note: None };
    if keep.text == SAMPLE_USER_CONF {
        keep.text.clear();
        keep.note = Some(format!(
            "{} was jes init's untouched sample: replaced (its sample accounts are gone)",
            path.display()
        ));
    } else if let Some((props, _)) = loaded {
        let n = props
            .entries
            .iter()
            .filter(|e| e.key.starts_with("user.") || e.key.starts_with("userprop."))
            .count();
        if n > 0 {
            held.push(format!(
                "{n} account or user property entr{} in {}",
                if n == 1 { "y" } else { "ies" },
                path.display()
            ));
        }
    }
    if held.is_empty() {
        return Ok(keep);
    }
    Err(format!(
        "refusing to write into {}: it already holds {}; jes migrate --from fills a folder without mail or accounts only, so nothing is mixed or overwritten (name a new folder, or move these away); nothing was written",
        config.dir.display(),
        held.join(" and ")
    ))
}

/// The staging folder of a run.
pub(super) struct Staging {
    root: PathBuf,
    dir: PathBuf,
}

impl Staging {
    /// A new, empty staging folder; one an interrupted run left is removed first (it was never
    /// published: publishing removes it).
    pub(super) fn create(root: &Path, notes: &mut Vec<String>) -> Result<Staging, String> {
        let dir = root.join(STAGING);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
            notes.push(format!(
                "removed {}, left by an interrupted run (it was never moved into place)",
                dir.display()
            ));
        }
        ensure_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Staging {
            root: root.to_path_buf(),
            dir,
        })
    }

    pub(super) fn mailboxes(&self) -> FileMailboxes {
        FileMailboxes::new(self.dir.join("users"))
    }

    pub(super) fn spools(&self) -> super::super::queue::Spools {
        super::super::queue::Spools::at(self.dir.join("smtp"), self.dir.join("failed"))
    }

    pub(super) fn history_path(&self) -> PathBuf {
        crate::history::db_path(&self.dir)
    }

    /// Removes the staging folder (best effort: the error being reported matters more).
    pub(super) fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Moves every part into place, then writes user.conf (`keep`, `comment`, `rows`). On a
    /// failure what was moved is moved back, and the error says whether that worked.
    pub(super) fn publish(
        self,
        config: &Config,
        keep: &str,
        comment: &str,
        rows: &[Row],
    ) -> Result<(), String> {
        let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
        let result = self.move_all(config, &mut moved).and_then(|()| {
            let path = config.dir.join("user.conf");
            crate::accounts::files::write_rows(&path, keep, comment, rows)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
        let Err(e) = result else {
            let _ = std::fs::remove_dir_all(&self.dir);
            return Ok(());
        };
        let stuck: Vec<String> = moved
            .iter()
            .rev()
            .filter(|(from, to)| std::fs::rename(to, from).is_err())
            .map(|(_, to)| to.display().to_string())
            .collect();
        if stuck.is_empty() {
            let root = self.root.display().to_string();
            self.discard();
            return Err(format!(
                "{e}; the parts already moved into place were moved back: {root} holds no mail from this run"
            ));
        }
        Err(format!(
            "{e}; these could not be moved back and hold mail from this run: {} (the rest is in {})",
            stuck.join(", "),
            self.dir.display()
        ))
    }

    fn move_all(&self, config: &Config, moved: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), String> {
        let parts = [
            ("users", config.users_dir()),
            ("smtp", config.queue_dir()),
            ("failed", config.failed_dir()),
        ];
        for (name, to) in &parts {
            move_children(&self.dir.join(name), to, moved)?;
        }
        let history = self.history_path();
        if history.exists() {
            let target = crate::history::db_path(&self.root);
            for suffix in ["-wal", "-shm"] {
                // Those of a history without events (the refusal checked): not this file's.
                let _ = std::fs::remove_file(with_suffix(&target, suffix));
            }
            for suffix in ["", "-wal", "-shm"] {
                let from = with_suffix(&history, suffix);
                if from.exists() {
                    rename(&from, &with_suffix(&target, suffix), moved)?;
                }
            }
        }
        let dirs = parts.iter().map(|(_, d)| d.as_path());
        // A part the database had nothing for has no folder (none is made for it).
        for dir in dirs.chain([self.root.as_path()]).filter(|d| d.is_dir()) {
            fsync_dir(dir).map_err(|e| format!("cannot fsync {}: {e}", dir.display()))?;
        }
        Ok(())
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn rename(from: &Path, to: &Path, moved: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
    moved.push((from.to_path_buf(), to.to_path_buf()));
    Ok(())
}

/// Moves every entry of `from` (if it exists) into `to` under its own name. An empty folder of
/// the same name in `to` is replaced (a mailbox without mail); anything else there is an error.
fn move_children(
    from: &Path,
    to: &Path,
    moved: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), String> {
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot list {}: {e}", from.display())),
    };
    ensure_dir(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        rename(&entry.path(), &to.join(entry.file_name()), moved)?;
    }
    Ok(())
}
