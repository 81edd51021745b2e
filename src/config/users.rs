//! `user.conf`: accounts and forwards.
//!
//! Reading is plain: `user.ADDR=password` and `userprop.ADDR.forwardAddresses=a,b`, keyed by the
//! canonical address. Writing is where jes differs from JES, which rewrote the whole file from a
//! `Properties` object and lost every comment and the order: here the file is kept as a list of
//! [`Block`]s (one per logical line, comments included) and only the blocks being changed are
//! replaced, so an administrator's comments, order and line endings survive `jes user passwd` and
//! the plaintext upgrade. Every write goes to a temporary file in the same folder that is fsynced
//! and renamed over the original (then the folder is fsynced), so a crash leaves the old file or
//! the new one, never half of one, and the file's permissions are kept.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;

use super::properties::{
    escape_key, escape_value, read_text, split_blocks, Block, Entry, Properties,
};
use super::webhook::WebhookSettings;
use super::{ConfigError, Warning};
use crate::address::{canonical, mailbox_dir_name};
use crate::auth::{hash_password, StoredPassword};

/// Accounts (`user.ADDR=password`) and forwards (`userprop.ADDR.forwardAddresses=a,b`), keyed by
/// the canonical (lower-cased) address.
#[derive(Debug, Clone, Default)]
pub struct Users {
    pub accounts: HashMap<String, StoredPassword>,
    pub forwards: HashMap<String, Vec<String>>,
    /// `userprop.ADDR.webhook*` (see `super::webhook`), only for mailboxes that have a URL.
    pub webhooks: HashMap<String, WebhookSettings>,
}

/// What a `user.conf` key means.
enum UserKey<'a> {
    /// `user.ADDR`
    Account(&'a str),
    /// `userprop.ADDR.forwardAddresses`
    Forwards(&'a str),
    /// `userprop.ADDR.other`
    OtherProp(&'a str),
    Unknown,
}

const FORWARDS_SUFFIX: &str = ".forwardAddresses";

/// The key names of `super::USER_KEYS`, for the unknown-key warnings.
fn known_keys() -> String {
    let names: Vec<&str> = super::USER_KEYS.iter().map(|k| k.name).collect();
    names.join(", ")
}

fn classify(key: &str) -> UserKey<'_> {
    if let Some(addr) = key.strip_prefix("user.") {
        return UserKey::Account(addr);
    }
    if let Some(rest) = key.strip_prefix("userprop.") {
        let n = rest.len();
        if n > FORWARDS_SUFFIX.len()
            && rest.is_char_boundary(n - FORWARDS_SUFFIX.len())
            && rest[n - FORWARDS_SUFFIX.len()..].eq_ignore_ascii_case(FORWARDS_SUFFIX)
        {
            return UserKey::Forwards(&rest[..n - FORWARDS_SUFFIX.len()]);
        }
        return UserKey::OtherProp(rest);
    }
    UserKey::Unknown
}

/// What reading `user.conf` found. A missing or blank file is told apart from one that says "no
/// accounts", because a running server must not take either for a decision to refuse all local
/// mail: `mv` by mistake, or an editor or a configuration tool truncating the file for a moment,
/// would otherwise bounce every message and lock every mailbox (see `Config::reload`).
#[derive(Debug)]
pub enum UsersFile {
    /// The file was read and holds something besides blanks: its accounts (perhaps none, when it
    /// holds only comments, which is how a deliberate "no accounts" is written).
    Read(Users, Vec<Warning>),
    /// There is no file.
    Missing,
    /// The file is empty, or holds only blanks (a byte-order mark is dropped when reading).
    Blank,
}

/// The comment `jes user del` leaves when it deletes the last account, so that the file says "no
/// accounts" rather than looking emptied by accident.
pub const NO_ACCOUNTS_COMMENT: &str =
    "# No accounts: the last one was deleted with `jes user del`. (An empty file would be taken for an accident.)";

impl Users {
    /// Reads `user.conf`, telling a missing and a blank file apart from one that was parsed.
    pub fn read(path: &Path) -> Result<UsersFile, ConfigError> {
        match read_text(path) {
            Ok(text) if text.trim().is_empty() => Ok(UsersFile::Blank),
            Ok(text) => Users::parse(path, &text).map(|(u, w)| UsersFile::Read(u, w)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(UsersFile::Missing),
            Err(source) => Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Reads `user.conf`; a missing or blank file means no accounts.
    pub fn load(path: &Path) -> Result<(Users, Vec<Warning>), ConfigError> {
        match Users::read(path)? {
            UsersFile::Read(users, warnings) => Ok((users, warnings)),
            UsersFile::Missing | UsersFile::Blank => Ok((Users::default(), Vec::new())),
        }
    }

    /// Parses `user.conf` text (`path` for messages only).
    pub fn parse(path: &Path, text: &str) -> Result<(Users, Vec<Warning>), ConfigError> {
        let (props, warnings) = Properties::parse(path, text);
        Users::from_entries(path, &props.entries, warnings)
    }

    /// The accounts of the database store (`store.url`), from its rows: `(address, None,
    /// password)` for an account, `(address, Some(NAME), value)` for `userprop.ADDRESS.NAME`.
    /// They are read as the `user.conf` lines they stand for, by the same code, so that a value
    /// `user.conf` refuses is refused here too and the warnings are the same; `source` names the
    /// database in them (there are no line numbers: the key names the row).
    pub fn from_rows(
        source: &Path,
        rows: &[(String, Option<String>, String)],
    ) -> Result<(Users, Vec<Warning>), ConfigError> {
        let entries: Vec<Entry> = rows
            .iter()
            .map(|(address, name, value)| Entry {
                key: match name {
                    None => format!("user.{address}"),
                    Some(name) => format!("userprop.{address}.{name}"),
                },
                value: value.clone(),
                line: 0,
            })
            .collect();
        Users::from_entries(source, &entries, Vec::new())
    }

    /// The one reading of accounts, forwards and user properties, whether they come from
    /// `user.conf` or the database: `entries` as `user.conf` keys and values.
    fn from_entries(
        path: &Path,
        entries: &[Entry],
        mut warnings: Vec<Warning>,
    ) -> Result<(Users, Vec<Warning>), ConfigError> {
        let mut users = Users::default();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        // Options may come before the URL; mailboxes without one are dropped (with a warning) below.
        let mut webhooks: HashMap<String, (usize, WebhookSettings)> = HashMap::new();
        let warn = |warnings: &mut Vec<Warning>, line, message: String| {
            warnings.push(Warning {
                path: path.to_path_buf(),
                line,
                message,
            })
        };
        for e in entries {
            let value_err = |reason: String| ConfigError::Value {
                path: path.to_path_buf(),
                line: e.line,
                key: e.key.clone(),
                reason,
            };
            let check = |addr: &str| {
                mailbox_dir_name(addr)
                    .map_err(|why| value_err(format!("{addr:?} cannot be an account: {why}")))
            };
            match classify(&e.key) {
                UserKey::Account(addr) => {
                    let addr = check(addr)?;
                    // JES let such a line stand as an account nobody could log in to; an
                    // administrator who wrote it meant a password, or a half-finished edit is
                    // being read, so it is an error (a reload keeps the running accounts).
                    if e.value.is_empty() {
                        return Err(value_err(format!(
                            "the account {addr} has an empty password (write user.{addr}=PASSWORD, or set one with `jes user passwd {addr}`)"
                        )));
                    }
                    if let Some(line) = first_line.insert(addr.clone(), e.line) {
                        let also = match line {
                            0 => "defined twice".to_string(),
                            line => format!("also defined on line {line}"),
                        };
                        warn(
                            &mut warnings,
                            e.line,
                            format!(
                                "account {addr} is {also} (addresses ignore case); this one wins"
                            ),
                        );
                    }
                    users.accounts.insert(addr, StoredPassword::parse(&e.value));
                }
                UserKey::Forwards(addr) => {
                    let addr = check(addr)?;
                    let mut targets = Vec::new();
                    for t in e.value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        if !t.contains('@') || t.contains(char::is_whitespace) {
                            return Err(value_err(format!("{t:?} is not a mail address")));
                        }
                        let t = canonical(t);
                        if !targets.contains(&t) {
                            targets.push(t);
                        }
                    }
                    users.forwards.insert(addr, targets);
                }
                UserKey::OtherProp(rest) => match super::webhook::classify(rest) {
                    Some((addr, field)) => {
                        let addr = check(addr)?;
                        let entry = webhooks.entry(addr).or_insert((e.line, Default::default()));
                        super::webhook::apply(&mut entry.1, field, &e.value).map_err(value_err)?;
                    }
                    None => warn(
                        &mut warnings,
                        e.line,
                        format!(
                            "unknown user property 'userprop.{rest}' ignored (known: {})",
                            known_keys()
                        ),
                    ),
                },
                UserKey::Unknown => warn(
                    &mut warnings,
                    e.line,
                    format!("unknown key '{}' ignored (known: {})", e.key, known_keys()),
                ),
            }
        }
        users.finish(path, entries, webhooks, &mut warnings);
        warnings.sort_by_key(|w| w.line);
        Ok((users, warnings))
    }

    /// What the reader can say only once every entry is read: webhooks without a URL (dropped)
    /// or over plain http, and forwards for an address without an account.
    fn finish(
        &mut self,
        path: &Path,
        entries: &[Entry],
        webhooks: HashMap<String, (usize, WebhookSettings)>,
        warnings: &mut Vec<Warning>,
    ) {
        let warn = |warnings: &mut Vec<Warning>, line, message: String| {
            warnings.push(Warning {
                path: path.to_path_buf(),
                line,
                message,
            })
        };
        for (addr, (line, settings)) in webhooks {
            if settings.url.is_none() {
                warn(
                    warnings,
                    line,
                    format!("webhook options for {addr} without userprop.{addr}.webhook=URL are ignored"),
                );
            } else {
                let url = settings.url.as_deref().unwrap_or_default();
                if url.starts_with("http://") && !super::webhook::is_loopback_url(url) {
                    warn(
                        warnings,
                        line,
                        format!("the webhook of {addr} is plain http to a host that is not loopback: messages travel unencrypted (use https://)"),
                    );
                }
                self.webhooks.insert(addr, settings);
            }
        }
        for addr in self.forwards.keys() {
            if !self.accounts.contains_key(addr) {
                if let Some(e) = entries.iter().find(
                    |e| matches!(classify(&e.key), UserKey::Forwards(a) if canonical(a) == *addr),
                ) {
                    warn(
                        warnings,
                        e.line,
                        format!("forwards for {addr}, which has no user.{addr} account; they apply only if it is a local address"),
                    );
                }
            }
        }
    }

    pub fn exists(&self, addr: &str) -> bool {
        self.accounts.contains_key(&crate::address::canonical(addr))
    }

    pub fn password(&self, addr: &str) -> Option<&StoredPassword> {
        self.accounts.get(&crate::address::canonical(addr))
    }

    /// The webhook of mailbox `addr`, if it has one.
    pub fn webhook(&self, addr: &str) -> Option<&WebhookSettings> {
        self.webhooks.get(&crate::address::canonical(addr))
    }

    pub fn forwards(&self, addr: &str) -> Option<&[String]> {
        self.forwards
            .get(&crate::address::canonical(addr))
            .map(Vec::as_slice)
    }
}

/// `user.conf` held as blocks, with the line end style it had.
pub(super) struct Doc {
    blocks: Vec<Block>,
    eol: &'static str,
    final_eol: bool,
}

impl Doc {
    fn read(path: &Path) -> io::Result<Option<Doc>> {
        match read_text(path) {
            Ok(text) => Ok(Some(Doc::parse(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn parse(text: &str) -> Doc {
        let eol = if text.contains("\r\n") {
            "\r\n"
        } else if text.contains('\n') || !text.contains('\r') {
            "\n"
        } else {
            "\r"
        };
        Doc {
            blocks: split_blocks(text, &mut |_, _| {}),
            eol,
            final_eol: text.is_empty() || text.ends_with(['\n', '\r']),
        }
    }

    pub(super) fn render(&self) -> String {
        let lines: Vec<&str> = self
            .blocks
            .iter()
            .flat_map(|b| b.lines.iter().map(String::as_str))
            .collect();
        let mut out = lines.join(self.eol);
        if self.final_eol && !lines.is_empty() {
            out.push_str(self.eol);
        }
        out
    }

    /// Indices of the `user.` blocks for `addr` (canonical).
    fn account_blocks(&self, addr: &str) -> Vec<usize> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                matches!(&b.entry, Some((k, _)) if matches!(classify(k), UserKey::Account(a) if canonical(a) == addr))
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn set_line(&mut self, i: usize, key: &str, value: &str) {
        self.blocks[i].lines = vec![format!("{}={}", escape_key(key), escape_value(value))];
        self.blocks[i].entry = Some((key.to_string(), value.to_string()));
    }

    fn push_comment(&mut self, comment: &str) {
        self.final_eol = true;
        self.blocks.push(Block {
            line: 0,
            lines: vec![comment.to_string()],
            entry: None,
        });
    }

    fn push_line(&mut self, key: &str, value: &str) {
        self.final_eol = true;
        self.blocks.push(Block {
            line: 0,
            lines: vec![format!("{}={}", escape_key(key), escape_value(value))],
            entry: Some((key.to_string(), value.to_string())),
        });
    }
}

/// Writes `contents` to `path` durably, keeping the old file's permissions, owner and group (a
/// new file is 0600): see `durable::replace_file`.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    crate::durable::replace_file(path, contents, true)
}

/// Runs a read-modify-write of `user.conf` under an exclusive lock on its folder, so that the
/// server upgrading plaintext passwords and `jes user ...` changing accounts at the same moment
/// cannot overwrite each other's change (each rewrites the whole file). A hand edit is not
/// covered: editors do not lock. The folder rather than a lock file, to leave nothing behind.
fn with_lock<T>(path: &Path, change: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let folder = File::open(dir)?;
    folder.lock()?;
    let result = change();
    // Closing the folder's descriptor releases the lock, also when `change` failed.
    drop(folder);
    result
}

/// Replaces every plaintext password by an argon2id hash, keeping everything else as it was.
/// Returns how many were replaced (the file is not rewritten when none were). Empty passwords are
/// left alone: reading refuses them, and hashing them would open the account with an empty password.
pub fn upgrade_plaintext(path: &Path) -> io::Result<usize> {
    with_lock(path, || {
        let Some(mut doc) = Doc::read(path)? else {
            return Ok(0);
        };
        let mut count = 0;
        for i in 0..doc.blocks.len() {
            let Some((key, value)) = doc.blocks[i].entry.clone() else {
                continue;
            };
            if matches!(classify(&key), UserKey::Account(_))
                && !value.is_empty()
                && StoredPassword::parse(&value).is_plain()
            {
                doc.set_line(i, &key, &hash_password(&value));
                count += 1;
            }
        }
        if count > 0 {
            write_atomically(path, doc.render().as_bytes())?;
        }
        Ok(count)
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn check_new_password(password: &str) -> io::Result<()> {
    if password.is_empty() {
        return Err(invalid("the password must not be empty".into()));
    }
    Ok(())
}

/// Adds an account with an argon2id hash of `password`. Fails with `AlreadyExists` if the address
/// has an account, `InvalidInput` if it cannot be a mailbox; creates `user.conf` if missing.
pub fn add_user(path: &Path, addr: &str, password: &str) -> io::Result<()> {
    with_lock(path, || {
        let addr = mailbox_dir_name(addr).map_err(|why| invalid(format!("{addr:?}: {why}")))?;
        check_new_password(password)?;
        let mut doc = Doc::read(path)?.unwrap_or_else(|| Doc::parse(""));
        add_account(&mut doc, path, &addr, &hash_password(password))?;
        write_atomically(path, doc.render().as_bytes())
    })
}

/// The edit behind `add_user`, on the text alone: `addr` must already be a checked mailbox name.
pub(super) fn add_account(doc: &mut Doc, path: &Path, addr: &str, stored: &str) -> io::Result<()> {
    if !doc.account_blocks(addr).is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{addr} already has an account in {}", path.display()),
        ));
    }
    doc.push_line(&format!("user.{addr}"), stored);
    Ok(())
}

/// `user.conf` read for a change to the account `addr` (canonical): `NotFound` when the file or
/// the account is missing.
fn read_with_account(path: &Path, addr: &str) -> io::Result<Doc> {
    let not_found = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} has no account in {}", path.display()),
        )
    };
    let doc = Doc::read(path)?.ok_or_else(not_found)?;
    if doc.account_blocks(addr).is_empty() {
        return Err(not_found());
    }
    Ok(doc)
}

/// Sets a new password (argon2id) for an existing account; `NotFound` if there is none.
pub fn set_password(path: &Path, addr: &str, password: &str) -> io::Result<()> {
    with_lock(path, || {
        check_new_password(password)?;
        let addr = canonical(addr);
        let mut doc = read_with_account(path, &addr)?;
        set_account(&mut doc, &addr, &hash_password(password));
        write_atomically(path, doc.render().as_bytes())
    })
}

/// The edit behind `set_password`: every `user.` line of `addr` (canonical) gets `stored`.
/// Returns how many lines were changed.
pub(super) fn set_account(doc: &mut Doc, addr: &str, stored: &str) -> usize {
    let blocks = doc.account_blocks(addr);
    for &i in &blocks {
        if let Some((key, _)) = doc.blocks[i].entry.clone() {
            doc.set_line(i, &key, stored);
        }
    }
    blocks.len()
}

/// Removes an account and its `userprop.` lines; `NotFound` if there is no account. The mailbox
/// folder is left for the caller to deal with.
pub fn delete_user(path: &Path, addr: &str) -> io::Result<()> {
    with_lock(path, || {
        let addr = canonical(addr);
        let mut doc = read_with_account(path, &addr)?;
        remove_account(&mut doc, &addr);
        if doc.render().trim().is_empty() {
            doc.push_comment(NO_ACCOUNTS_COMMENT);
        }
        write_atomically(path, doc.render().as_bytes())
    })
}

/// The edit behind `delete_user`: drops the `user.` and `userprop.` lines of `addr` (canonical).
pub(super) fn remove_account(doc: &mut Doc, addr: &str) {
    doc.blocks.retain(|b| match &b.entry {
        Some((k, _)) => match classify(k) {
            UserKey::Account(a) => canonical(a) != addr,
            UserKey::Forwards(rest) => canonical(rest) != addr,
            UserKey::OtherProp(rest) => !canonical(rest).starts_with(&format!("{addr}.")),
            UserKey::Unknown => true,
        },
        None => true,
    });
}

/// The user properties `jes user set` takes (the `NAME` of `userprop.ADDRESS.NAME`, from
/// `super::USER_KEYS`): the spelling `name` names, ignoring case, or `InvalidInput` listing them.
pub fn property_name(name: &str) -> io::Result<&'static str> {
    let known: Vec<&'static str> = super::USER_KEYS
        .iter()
        .filter_map(|k| k.name.strip_prefix("userprop.ADDRESS."))
        .collect();
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            invalid(format!(
                "unknown user property {name:?} (known: {})",
                known.join(", ")
            ))
        })
}

/// Sets (`Some`) or removes (`None`) the user property `userprop.ADDR.NAME`, keeping the rest of
/// the file. The result is read back before it is written, so a value the server would refuse
/// (a forward that is no address, a webhook URL that is not http(s)) leaves the file as it was.
pub fn set_property(path: &Path, addr: &str, name: &str, value: Option<&str>) -> io::Result<()> {
    with_lock(path, || {
        let addr = mailbox_dir_name(addr).map_err(|why| invalid(format!("{addr:?}: {why}")))?;
        let name = property_name(name)?;
        let mut doc = Doc::read(path)?.unwrap_or_else(|| Doc::parse(""));
        let target = canonical(&format!("{addr}.{name}"));
        let same = |k: &str| {
            matches!(classify(k), UserKey::Forwards(a) if name == "forwardAddresses" && canonical(a) == addr)
                || matches!(classify(k), UserKey::OtherProp(rest) if canonical(rest) == target)
        };
        let first = doc
            .blocks
            .iter()
            .position(|b| matches!(&b.entry, Some((k, _)) if same(k)));
        let key = format!("userprop.{addr}.{name}");
        match (first, value) {
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{addr} has no property {name} in {}", path.display()),
                ))
            }
            (Some(i), Some(v)) => {
                doc.set_line(i, &key, v);
                let mut n = 0;
                doc.blocks.retain(|b| {
                    n += 1;
                    n - 1 == i || !matches!(&b.entry, Some((k, _)) if same(k))
                });
            }
            (Some(_), None) => doc
                .blocks
                .retain(|b| !matches!(&b.entry, Some((k, _)) if same(k))),
            (None, Some(v)) => doc.push_line(&key, v),
        }
        let text = doc.render();
        Users::parse(path, &text).map_err(|e| invalid(e.to_string()))?;
        write_atomically(path, text.as_bytes())
    })
}

/// The accounts in file order (canonical, each once); a missing file has none.
pub fn list_users(path: &Path) -> io::Result<Vec<String>> {
    let Some(doc) = Doc::read(path)? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    for b in &doc.blocks {
        if let Some((k, _)) = &b.entry {
            if let UserKey::Account(a) = classify(k) {
                let a = canonical(a);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
