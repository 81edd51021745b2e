//! The Debian package, installed for real: `cargo deb --no-build` packs the release binary this
//! test run built, `dpkg -i` installs it on this machine, and jes is started exactly as the
//! unit's `ExecStart` says, as the `jes` user (`runuser`; systemd is installed but not running
//! here). Then a message goes in over SMTP and comes out over POP3; a reinstall over a changed
//! mail.conf keeps the change, the accounts and the mail; `dpkg -r` keeps /etc/jes and
//! /var/lib/jes; `dpkg -P` removes /etc/jes and the logs but never the mail, and says so.
//!
//! It needs root, dpkg, cargo-deb (scripts/install-test-deps) and a machine without a jes of its
//! own (/etc/jes, /var/lib/jes); otherwise it says plainly why it is skipped and passes.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo_path, Raw};

const UNIT: [&str; 2] = [
    "/lib/systemd/system/jes.service",
    "/usr/lib/systemd/system/jes.service",
];
/// Left in /var/lib/jes by this test, so that a later run may clean up after a failed one and
/// never touches a real installation's mail.
const MARKER: &str = "/var/lib/jes/.deb-package-test";
const USER: &str = "tracker@localhost";
const PASSWORD: &str = "s3cret pass";

/// Straight to the terminal: the test harness captures `eprintln!` of a passing test.
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED deb_package: {why}");
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        text(&out)
    );
    text(&out)
}

fn has(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn unit_path() -> &'static str {
    UNIT.iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .expect("the package installs jes.service")
}

/// `ExecStart=` of the installed unit, split into words (it has no quotes).
fn exec_start() -> Vec<String> {
    let unit = std::fs::read_to_string(unit_path()).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit");
    line.split_whitespace().map(str::to_string).collect()
}

fn owner(path: &str) -> (String, String, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |cmd: &str, id: u32| {
        let out = run_ok("getent", &[cmd, &id.to_string()]);
        out.split(':').next().unwrap_or("").to_string()
    };
    (
        name("passwd", m.uid()),
        name("group", m.gid()),
        m.mode() & 0o7777,
    )
}

/// jes as the service runs it, until dropped.
struct Service {
    child: Child,
}

impl Service {
    fn start(smtp: u16) -> Service {
        let argv = exec_start();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "jes", "--"]).args(&argv);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut service = Service { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", smtp)).is_err() {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "jes exited ({status}) as the unit starts it: {}",
                    log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "jes did not start: {}",
                log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        service
    }

    /// SIGTERM (runuser passes it on), as systemd stops the service.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = run("kill", &["-TERM", &pid]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "jes did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // The server itself, by the pid it wrote in its lock file, then runuser.
            if let Ok(lock) = std::fs::read_to_string("/var/lib/jes/jes.lock") {
                if let Some(pid) = lock.split_whitespace().find_map(|w| w.parse::<u32>().ok()) {
                    let _ = run("kill", &["-KILL", &pid.to_string()]);
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log_text() -> String {
    std::fs::read_to_string("/var/log/jes/jes.log").unwrap_or_default()
}

fn connect(port: u16) -> Raw {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut raw = Raw {
        reader: BufReader::new(stream.try_clone().unwrap()),
        stream,
    };
    let greeting = raw.line();
    assert!(
        greeting.starts_with("220") || greeting.starts_with("+OK"),
        "{greeting}"
    );
    raw
}

fn send(smtp: u16, subject: &str) {
    let mut c = connect(smtp);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<sender@remote.test>").starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{USER}>"));
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!(
        "Subject: {subject}\r\n\r\nhello from the package test\r\n."
    ));
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
}

/// Logs in over POP3 (USER/PASS on loopback) and returns every message, left on the server.
fn fetch(pop3: u16) -> Vec<String> {
    let mut c = connect(pop3);
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let r = c.cmd(&format!("PASS {PASSWORD}"));
    assert!(r.starts_with("+OK"), "{r}");
    let stat = c.cmd("STAT");
    let n: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut out = Vec::new();
    for i in 1..=n {
        c.send(format!("RETR {i}\r\n").as_bytes());
        assert!(c.line().starts_with("+OK"));
        let mut msg = String::new();
        loop {
            let l = c.line();
            if l == ".\r\n" || l.is_empty() {
                break;
            }
            msg.push_str(&l);
        }
        out.push(msg);
    }
    c.cmd("QUIT");
    out
}

fn set_ports(smtp: u16, pop3: u16) {
    let path = "/etc/jes/mail.conf";
    let conf = std::fs::read_to_string(path).unwrap();
    let conf = format!(
        "{conf}\n# set by the package test\nlisten.address=127.0.0.1\nsmtpport={smtp}\npop3port={pop3}\n"
    );
    std::fs::write(path, conf).unwrap();
}

fn clean_up_after_an_earlier_run() {
    let _ = run("dpkg", &["-P", "jes"]);
    let _ = std::fs::remove_dir_all("/var/lib/jes");
}

#[test]
fn install_serve_reinstall_remove_purge() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root (dpkg -i, a system user)");
    }
    if !has("dpkg", &["--version"]) || !has("cargo", &["deb", "--version"]) {
        return skip("needs dpkg and cargo-deb (scripts/install-test-deps installs cargo-deb)");
    }
    if Path::new(MARKER).exists() {
        clean_up_after_an_earlier_run();
    }
    if Path::new("/etc/jes").exists() || Path::new("/var/lib/jes").exists() {
        return skip("this machine has a jes of its own (/etc/jes or /var/lib/jes)");
    }

    // Pack the binary this run built (the release build the integration tests use).
    let out_dir = tempfile::tempdir().unwrap();
    let deb = out_dir.path().join("jes.deb");
    let bin = Path::new(common::jes_bin());
    let target_dir = bin.parent().and_then(Path::parent).unwrap();
    let packed = Command::new("cargo")
        .args(["deb", "--no-build", "--no-strip", "--output"])
        .arg(&deb)
        .current_dir(repo_path(""))
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    assert!(packed.status.success(), "cargo deb: {}", text(&packed));
    let deb = deb.to_str().unwrap();

    // Install.
    run_ok("dpkg", &["-i", deb]);
    std::fs::write(MARKER, "").unwrap();
    assert!(has("getent", &["passwd", "jes"]), "no jes user");
    assert!(Path::new("/usr/bin/jes").exists());
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/jes.conffiles").unwrap();
    assert!(conffiles.contains("/etc/jes/mail.conf") && conffiles.contains("/etc/jes/log.conf"));
    assert!(!conffiles.contains("user.conf"), "{conffiles}");
    let users = std::fs::read_to_string("/etc/jes/user.conf").unwrap();
    assert!(
        users.starts_with('#') && users.lines().all(|l| l.starts_with('#')),
        "a comment and no account: {users}"
    );
    assert_eq!(
        owner("/etc/jes/user.conf"),
        ("root".into(), "jes".into(), 0o640)
    );
    assert_eq!(owner("/var/lib/jes").0, "jes");
    assert!(std::fs::read_to_string("/etc/jes/log.conf")
        .unwrap()
        .contains("log.maxfilesize=0"));
    assert!(std::fs::read_to_string("/etc/logrotate.d/jes")
        .unwrap()
        .contains("HUP"));

    // The unit as systemd would load it (the binary it names, its directives).
    let verify = run("systemd-analyze", &["verify", unit_path()]);
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}",
        text(&verify)
    );
    let argv = exec_start();
    assert_eq!(argv[0], "/usr/bin/jes");

    // Free ports, and an account (added as an administrator would, as root).
    let (smtp, pop3) = (free_port(), free_port());
    set_ports(smtp, pop3);
    let mut add = Command::new("/usr/bin/jes")
        .args(["user", "add", USER, "--dir", "/etc/jes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success());
    // Still readable by the service: the rewrite kept the owner and group.
    assert_eq!(
        owner("/etc/jes/user.conf"),
        ("root".into(), "jes".into(), 0o640)
    );
    // A plaintext password jes would like to hash, but the service cannot write /etc/jes.
    let mut users = std::fs::read_to_string("/etc/jes/user.conf").unwrap();
    users.push_str("user.plain@localhost=plain pw\n");
    std::fs::write("/etc/jes/user.conf", &users).unwrap();
    let etc_before = run_ok("ls", &["-la", "--time-style=full-iso", "/etc/jes"]);

    let service = Service::start(smtp);
    send(smtp, "first");
    let got = fetch(pop3);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: first"), "{}", got[0]);
    service.stop();
    // It wrote its mail root and its log, and nothing under /etc.
    assert_eq!(
        run_ok("ls", &["-la", "--time-style=full-iso", "/etc/jes"]),
        etc_before
    );
    assert_eq!(
        std::fs::read_to_string("/etc/jes/user.conf").unwrap(),
        users
    );
    for dir in ["users", "smtp", "tls"] {
        assert!(Path::new("/var/lib/jes").join(dir).is_dir(), "{dir}");
    }
    let log = log_text();
    assert!(log.contains("cannot be hashed"), "{log}");
    assert_eq!(owner("/var/log/jes/jes.log").0, "jes");

    // Reinstall over the changed mail.conf: the change, the account and the mail survive.
    run_ok("dpkg", &["-i", "--force-confold", deb]);
    let conf = std::fs::read_to_string("/etc/jes/mail.conf").unwrap();
    assert!(conf.contains(&format!("smtpport={smtp}")), "{conf}");
    let service = Service::start(smtp);
    let got = fetch(pop3);
    assert_eq!(got.len(), 1, "the mail is still there");
    service.stop();

    // Remove: configuration and mail stay.
    run_ok("dpkg", &["-r", "jes"]);
    assert!(!Path::new("/usr/bin/jes").exists());
    assert!(Path::new("/etc/jes/mail.conf").exists() && Path::new("/etc/jes/user.conf").exists());
    assert!(Path::new("/var/lib/jes/users").is_dir());

    // Purge: configuration and logs go, the mail stays and the output says so; the user stays.
    let purged = run_ok("dpkg", &["-P", "jes"]);
    assert!(!Path::new("/etc/jes").exists(), "{purged}");
    assert!(!Path::new("/var/log/jes").exists(), "{purged}");
    let mailbox = Path::new("/var/lib/jes/users").join(USER);
    let kept = std::fs::read_dir(&mailbox).map(|d| d.count()).unwrap_or(0);
    assert!(kept >= 1, "the mail in {} is gone", mailbox.display());
    assert!(
        purged.contains("/var/lib/jes") && purged.contains("kept"),
        "{purged}"
    );
    assert!(has("getent", &["passwd", "jes"]));

    // The test's own mail.
    std::fs::remove_dir_all("/var/lib/jes").unwrap();
}

/// What the package puts in /etc/jes loads without a warning and says what the package needs:
/// the mail in /var/lib/jes, the log in /var/log/jes, never rotated by jes.
#[test]
fn packaged_configuration_loads() {
    let etc = tempfile::tempdir().unwrap();
    for f in ["mail.conf", "log.conf"] {
        std::fs::copy(repo_path("debian").join(f), etc.path().join(f)).unwrap();
    }
    std::fs::write(etc.path().join("user.conf"), "# no accounts\n").unwrap();
    let (config, warnings) = jes::config::Config::load(etc.path()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.store_dir(), Path::new("/var/lib/jes"));
    assert_eq!(config.log.file, Path::new("/var/log/jes/jes.log"));
    assert_eq!(config.log.max_file_size, 0);
    assert_eq!(config.mail.smtp_port, 25);
    assert_eq!(config.mail.pop3_port, 110);
}

/// The hand-install unit is the package's with another binary path.
#[test]
fn contrib_unit_matches_the_package_unit() {
    let directives = |rel: &str| -> Vec<String> {
        std::fs::read_to_string(repo_path(rel))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.replace("/usr/local/bin/jes", "/usr/bin/jes"))
            .collect()
    };
    assert_eq!(
        directives("contrib/jes.service"),
        directives("debian/jes.service")
    );
}
