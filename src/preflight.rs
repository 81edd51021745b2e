//! What must hold for `jes serve` to start, checked without changing anything: the one list that
//! `jes check` reports and `jes serve` refuses to start on, so the two cannot drift apart (a
//! configuration that `jes check` called OK used to stop at start on a certificate or a folder).
//!
//! Checked: the folders jes writes (the mail root `store.dir` with its lock file, `users/`,
//! `smtp/`, the log file's folder, and `tls/` while
//! the self-signed certificate is still to be made) are folders the current user can write, or
//! can be created; the log file, if it exists, can be written; the certificate and key are
//! readable, parse and match, or a self-signed certificate can be made for `hostname`. Not
//! checked: what holds only at the moment of the start (a port in use, a full disk), and a port
//! below 1024 for a user without the capability, since `jes check` is often run by another user
//! than the service. The configuration itself is checked by `Config::load` before this runs.

use std::path::{Path, PathBuf};

use crate::certificate::TlsFiles;
use crate::config::Config;

/// Every problem that would stop `jes serve`, each a full sentence naming its path; empty when
/// none.
pub fn problems(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut folders: Vec<(PathBuf, &str)> = vec![
        (config.store_dir(), "the mail root and its lock file"),
        (config.users_dir(), "mailboxes"),
        (config.queue_dir(), "the queue"),
    ];
    if let Some(log_dir) = config.log.file.parent() {
        folders.push((log_dir.to_path_buf(), "the log"));
    }
    let tls = TlsFiles::for_config(config);
    let tls_to_make = tls.generated && !(tls.certificate.exists() && tls.key.exists());
    if tls_to_make {
        if let Some(dir) = tls.certificate.parent() {
            folders.push((dir.to_path_buf(), "the self-signed certificate"));
        }
    }
    for (folder, what) in &folders {
        if let Err(why) = writable_folder(folder) {
            out.push(format!("{} (for {what}) {why}", folder.display()));
        }
    }
    let log = &config.log.file;
    if log.exists() {
        if log.is_dir() {
            out.push(format!("{} (the log file) is a folder", log.display()));
        } else if !access_write(log) {
            out.push(format!(
                "{} (the log file) cannot be written by this user",
                log.display()
            ));
        }
    }
    if let Err(why) = crate::certificate::check(config) {
        out.push(format!("TLS: {why}"));
    }
    out
}

/// Whether `folder` is a folder this user can write, or could be created (its nearest existing
/// ancestor is a folder this user can write).
fn writable_folder(folder: &Path) -> Result<(), String> {
    if folder.exists() {
        if !folder.is_dir() {
            return Err("is not a folder".into());
        }
        if !access_write(folder) {
            return Err("cannot be written by this user".into());
        }
        return Ok(());
    }
    let mut ancestor = folder.parent();
    while let Some(a) = ancestor {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        if a.exists() {
            if !a.is_dir() {
                return Err(format!(
                    "cannot be created: {} is not a folder",
                    a.display()
                ));
            }
            if !access_write(a) {
                return Err(format!(
                    "cannot be created: {} cannot be written by this user",
                    a.display()
                ));
            }
            return Ok(());
        }
        // A dangling symbolic link, or a path through a file: creating it would fail too.
        if a.symlink_metadata().is_ok() {
            return Err(format!(
                "cannot be created: {} is a broken link",
                a.display()
            ));
        }
        ancestor = a.parent();
    }
    Ok(())
}

/// `access(W_OK | X_OK)`: what this process's user may do, as the kernel decides it (modes,
/// ACLs, a read-only mount); root may write anywhere but a read-only mount.
fn access_write(path: &Path) -> bool {
    use rustix::fs::Access;
    let mode = if path.is_dir() {
        Access::WRITE_OK | Access::EXEC_OK
    } else {
        Access::WRITE_OK
    };
    rustix::fs::access(path, mode).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path, extra: &str) -> Config {
        std::fs::write(
            dir.join("mail.conf"),
            format!("domains=localhost\nhostname=mail.example.test\n{extra}"),
        )
        .unwrap();
        std::fs::write(dir.join("user.conf"), "user.a@localhost=pw\n").unwrap();
        Config::load(dir).unwrap().0
    }

    #[test]
    fn a_fresh_folder_has_no_problems_and_is_left_unchanged() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let config = config_in(&etc, "");
        assert_eq!(problems(&config), Vec::<String>::new());
        // Nothing was created: not the folders, not the certificate.
        let mut names: Vec<_> = std::fs::read_dir(&etc)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["mail.conf", "user.conf"]);
        assert!(!root.path().join("log").exists());
    }

    #[test]
    fn folders_that_are_files_are_problems() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("users"), "a file").unwrap();
        std::fs::write(root.path().join("logfile"), "a file").unwrap();
        std::fs::write(
            etc.join("log.conf"),
            format!("log.file={}/logfile/jes.log\n", root.path().display()),
        )
        .unwrap();
        let config = config_in(&etc, "");
        let found = problems(&config);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].ends_with("users (for mailboxes) is not a folder"),
            "{found:?}"
        );
        assert!(
            found[1].ends_with("logfile (for the log) is not a folder"),
            "{found:?}"
        );
        // Deeper: a folder to be made under a file.
        std::fs::remove_file(etc.join("users")).unwrap();
        std::fs::write(
            etc.join("log.conf"),
            format!("log.file={}/logfile/sub/jes.log\n", root.path().display()),
        )
        .unwrap();
        let config = config_in(&etc, "");
        let found = problems(&config);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("sub (for the log) cannot be created: ")
                && found[0].ends_with("logfile is not a folder"),
            "{found:?}"
        );
    }

    /// With `store.dir`, the configuration folder may be read-only (the Debian package's
    /// /etc/jes): nothing is checked there; the mail root is, lock file and all.
    #[test]
    fn store_dir_is_checked_and_the_configuration_folder_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let data = root.path().join("data");
        let extra = format!("store.dir={}\n", data.display());
        let config = config_in(&etc, &extra);
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o500)).unwrap();
        assert_eq!(problems(&config), Vec::<String>::new());
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(&data, "a file").unwrap();
        let found = problems(&config);
        assert!(
            found
                .iter()
                .any(|p| p.ends_with("data (for the mail root and its lock file) is not a folder")),
            "{found:?}"
        );
        assert!(!etc.join("users").exists() && !etc.join("smtp").exists());
    }

    #[test]
    fn a_read_only_folder_is_a_problem_unless_root() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let config = config_in(&etc, "");
        std::fs::create_dir(etc.join("smtp")).unwrap();
        std::fs::set_permissions(etc.join("smtp"), std::fs::Permissions::from_mode(0o500)).unwrap();
        let found = problems(&config);
        if rustix::process::geteuid().is_root() {
            eprintln!("running as root, who may write anywhere: the read-only case is not tested");
            assert!(found.is_empty(), "{found:?}");
        } else {
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].ends_with("smtp (for the queue) cannot be written by this user"));
        }
    }

    #[test]
    fn a_certificate_that_does_not_match_its_key_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        std::fs::write(dir.path().join("c.pem"), a.cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), b.signing_key.serialize_pem()).unwrap();
        let config = config_in(dir.path(), "tls.certificate=c.pem\ntls.key=k.pem\n");
        let found = problems(&config);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("TLS: ") && found[0].contains("do not make a usable certificate"),
            "{found:?}"
        );
        // The matching key: no problem.
        std::fs::write(dir.path().join("k.pem"), a.signing_key.serialize_pem()).unwrap();
        assert_eq!(problems(&config), Vec::<String>::new());
        // A missing key file.
        std::fs::remove_file(dir.path().join("k.pem")).unwrap();
        let found = problems(&config);
        assert!(
            found.len() == 1 && found[0].contains("k.pem: cannot read the private key"),
            "{found:?}"
        );
    }
}
