//! jes in place of JES inside TrackStudio: a folder shaped like the tracker's (`jes/jes`, `jes/etc`
//! with the files JES 1.6.1 wrote, `jes/log`), `jes/jes` replaced by `contrib/trackstudio/jes`, and
//! the server started the way the tracker's guide says, `sh jes` (Debian's sh is dash). Then mail
//! goes in over SMTP and comes out over POP3 with the account's JES password.

mod common;

use common::{free_port, jes_bin, repo_path};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct Tracker {
    _root: tempfile::TempDir,
    /// The tracker's `jes/` folder.
    jes: PathBuf,
    smtp_port: u16,
    pop3_port: u16,
}

/// Unpacks the tracker's `jes/` folder: the launcher, JES 1.6.1's `etc/` (its ports moved to free
/// ones, its smart host to a closed loopback port, listening on loopback only: tests stay off the
/// network), and an empty `log/`. With `binary`, jes goes into `jes/bin/jes`.
fn unpack(binary: bool) -> Tracker {
    let root = tempfile::tempdir().unwrap();
    let jes = root.path().join("jes");
    copy_tree(&repo_path("tests/fixtures/jes-1.6.1/etc"), &jes.join("etc"));
    std::fs::create_dir_all(jes.join("log")).unwrap();
    std::fs::copy(repo_path("contrib/trackstudio/jes"), jes.join("jes")).unwrap();
    if binary {
        std::fs::create_dir_all(jes.join("bin")).unwrap();
        std::fs::copy(jes_bin(), jes.join("bin/jes")).unwrap();
    }
    let (smtp_port, pop3_port, dead) = (free_port(), free_port(), free_port());
    let conf = jes.join("etc/mail.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("\nsmtpport=25\n") && text.contains("\npop3port=110\n"));
    let text = text
        .replace("\nsmtpport=25\n", &format!("\nsmtpport={smtp_port}\n"))
        .replace("\npop3port=110\n", &format!("\npop3port={pop3_port}\n"))
        .replace(
            "defaultsmtpservers=smtp.example.com",
            &format!("defaultsmtpservers=127.0.0.1:{dead}"),
        );
    std::fs::write(&conf, format!("{text}\nlisten.address=127.0.0.1\n")).unwrap();
    Tracker {
        _root: root,
        jes,
        smtp_port,
        pop3_port,
    }
}

/// `sh jes` in the tracker's folder (or, `elsewhere`, `sh /abs/jes/jes` from the folder above), with
/// `path` as PATH; waits until both ports answer.
fn start(t: &Tracker, path: &str, elsewhere: bool) -> Child {
    // Without --quiet jes logs to stderr as well: into a file, so that no pipe fills up.
    let stderr_path = t.jes.join("../stderr.txt");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let (script, cwd) = if elsewhere {
        (t.jes.join("jes"), t.jes.parent().unwrap().to_path_buf())
    } else {
        (PathBuf::from("jes"), t.jes.clone())
    };
    let mut child = Command::new("sh")
        .arg(script)
        .current_dir(cwd)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("sh jes");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("sh jes exited ({status}): {err}");
        }
        if TcpStream::connect(("127.0.0.1", t.smtp_port)).is_ok()
            && TcpStream::connect(("127.0.0.1", t.pop3_port)).is_ok()
        {
            return child;
        }
        assert!(Instant::now() < deadline, "jes did not listen within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The script `exec`s jes, so the child is the server itself: SIGTERM stops it cleanly.
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "jes did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connect(port: u16) -> common::Raw {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = common::Raw {
        reader: std::io::BufReader::new(stream.try_clone().unwrap()),
        stream,
    };
    let greeting = raw.line();
    assert!(
        greeting.starts_with("220") || greeting.starts_with("+OK"),
        "{greeting}"
    );
    raw
}

#[test]
fn sh_jes_in_the_trackers_folder_serves_jes_files() {
    let t = unpack(true);
    // The README's step before the start: `jes check etc` from the folder.
    let check = Command::new(t.jes.join("bin/jes"))
        .args(["check", "etc"])
        .current_dir(&t.jes)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // JES's accounts, each by name, with the forward JES's user.conf has.
    assert!(
        text.contains(
            "accounts: 2\n  analyst@localhost -> analyst@localhost, boss@remote.test\n  \
             trackstudio@127.0.0.1\n"
        ),
        "{text}"
    );
    // JES's file has no allowClearText: JES 1.x's `always`, so the tracker's logins keep working.
    assert!(text.contains("allowClearText:  always"), "{text}");
    // A PATH without jes on it: the binary in jes/bin/ is the one that runs.
    let child = start(&t, "/usr/bin:/bin", false);

    let mut c = connect(t.smtp_port);
    assert!(c.cmd("EHLO tracker.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<reporter@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<trackstudio@127.0.0.1>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: new task from sh jes\r\n\r\nPlease fix.\r\n.\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250"), "{reply}");
    assert!(c.cmd("QUIT").starts_with("221"));

    // The account's password as JES stored it (a SHA-1 hash of `secret`).
    let mut p = connect(t.pop3_port);
    assert!(p.cmd("USER trackstudio@127.0.0.1").starts_with("+OK"));
    assert!(p.cmd("PASS secret").starts_with("+OK"));
    let stat = p.cmd("STAT");
    assert!(stat.starts_with("+OK 2 "), "JES's message and ours: {stat}");
    let mut found = false;
    for n in 1..=2 {
        assert!(p.cmd(&format!("RETR {n}")).starts_with("+OK"));
        loop {
            let line = p.line();
            assert!(!line.is_empty(), "connection closed inside RETR");
            if line == ".\r\n" {
                break;
            }
            found |= line == "Subject: new task from sh jes\r\n";
        }
    }
    assert!(found, "our message is in the mailbox");
    assert!(p.cmd("QUIT").starts_with("+OK"));

    stop(child);
    // The log is where the README says: jes/log/jes.log, beside etc/.
    let log = std::fs::read_to_string(t.jes.join("log/jes.log")).unwrap();
    assert!(log.contains("trackstudio@127.0.0.1"), "{log}");
}

/// Started from another folder, by its full path: the script finds `etc` beside itself.
#[test]
fn sh_jes_falls_back_to_the_jes_on_the_path() {
    let t = unpack(false);
    let bin_dir = Path::new(jes_bin()).parent().unwrap().display().to_string();
    let child = start(&t, &format!("{bin_dir}:/usr/bin:/bin"), true);
    let mut c = connect(t.smtp_port);
    assert!(c.cmd("EHLO tracker.test").starts_with("250"));
    stop(child);
}

#[test]
fn sh_jes_without_a_binary_says_where_it_looked() {
    let t = unpack(false);
    let out = Command::new("sh")
        .arg("jes")
        .current_dir(&t.jes)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bin/jes") && err.contains("PATH"), "{err}");
}
