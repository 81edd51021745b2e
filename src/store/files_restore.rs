//! Writing a mailbox file back as it was, for `jes migrate --from`: a message that already has
//! its UID (the file name the file store lists it by) and its time (the file's mtime, which
//! orders the listing), instead of delivering a new one.
//!
//! Design. The same durable write as `deliver` (a temporary name no reader lists, fsync, rename;
//! the folder fsynced once per mailbox by `sync_mailbox`), but the name is `pop<uid>.jmsg` for
//! the UID given, so UIDL shows exactly what it showed before (TrackStudio remembers UIDLs and
//! would fetch every message again otherwise). A UID the file store cannot carry as a file name,
//! or one already taken, is refused: the caller stops before anything is published.

use std::io::{self, Write};
use std::time::SystemTime;

use super::{checked_uid, message_path, FileMailboxes};
use crate::durable::{create_temp, ensure_dir, fsync_dir, remove_if_exists, with_path};

impl FileMailboxes {
    /// Writes `bytes` as message `uid` of mailbox folder `key` (a name `address::mailbox_dir_name`
    /// gives) with modification time `mtime`. Not visible until complete; not durable until
    /// `sync_mailbox(key)`.
    pub fn restore(&self, key: &str, uid: &str, bytes: &[u8], mtime: SystemTime) -> io::Result<()> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        if crate::address::mailbox_dir_name(key).ok().as_deref() != Some(key) {
            return Err(invalid(format!("{key:?} is not a mailbox folder name")));
        }
        let uid = checked_uid(uid)
            .map_err(|_| invalid(format!("the UID {uid:?} cannot be a mailbox file name")))?;
        let dir = self.users_dir().join(key);
        ensure_dir(&dir).map_err(|e| with_path(e, "cannot create mailbox", &dir))?;
        let path = message_path(&dir, uid);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists already", path.display()),
            ));
        }
        let (temp, mut file) =
            create_temp(&dir).map_err(|e| with_path(e, "cannot create a file in", &dir))?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.set_modified(mtime))
            .and_then(|()| file.sync_all())
            .map_err(|e| with_path(e, "cannot write", &temp))
            .and_then(|()| {
                std::fs::rename(&temp, &path).map_err(|e| with_path(e, "cannot rename", &temp))
            });
        if written.is_err() {
            let _ = remove_if_exists(&temp);
        }
        written
    }

    /// Makes the names `restore` gave in mailbox folder `key` durable.
    pub fn sync_mailbox(&self, key: &str) -> io::Result<()> {
        let dir = self.users_dir().join(key);
        fsync_dir(&dir).map_err(|e| with_path(e, "cannot fsync", &dir))
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::store::FileMailboxes;

    #[test]
    fn a_restored_message_lists_under_its_uid_in_the_order_of_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileMailboxes::new(dir.path().join("users"));
        let t = UNIX_EPOCH + Duration::from_millis(1_795_605_697_556);
        let (late, early) = (b"Subject: b\r\n\r\nlate\r\n", b"Subject: a\r\n\r\n..x\r\n");
        files.restore("a@b", "9,S=21", late, t).unwrap();
        files
            .restore("a@b", "6501", early, t - Duration::from_nanos(1))
            .unwrap();
        files.sync_mailbox("a@b").unwrap();
        let listed = files.peek("a@b").unwrap();
        let view: Vec<_> = listed.iter().map(|m| (m.uid.as_str(), m.size)).collect();
        // JES's UID first (older); its size read from the file (19 bytes, 18 octets dot-unstuffed).
        assert_eq!(view, [("6501", 18), ("9,S=21", 21)]);
        assert_eq!(listed[1].stored_at, Some(t));
        let held = files.open("a@b").unwrap();
        assert_eq!(held.read(0).unwrap(), early);
        assert_eq!(held.read(1).unwrap(), late);
    }

    #[test]
    fn a_uid_taken_or_unfit_for_a_file_name_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileMailboxes::new(dir.path().join("users"));
        files.restore("a@b", "1", b"x\r\n", UNIX_EPOCH).unwrap();
        let again = files.restore("a@b", "1", b"y\r\n", UNIX_EPOCH).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AlreadyExists);
        for (key, uid) in [("a@b", "a b"), ("a@b", "../x"), ("a@b", ""), ("A@B", "2")] {
            let e = files.restore(key, uid, b"z\r\n", UNIX_EPOCH).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{key} {uid}: {e}");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("users/a@b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["pop1.jmsg"]);
        assert_eq!(files.open("a@b").unwrap().read(0).unwrap(), b"x\r\n");
    }
}
