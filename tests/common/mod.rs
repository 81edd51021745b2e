//! Test harness: starts the real `jes` binary on free loopback ports in a temporary configuration
//! directory, and runs independent clients (Python's smtplib/poplib, curl) against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port no one listens on, for a server a test starts. Not from the kernel's ephemeral range
/// (32768-60999 here): client sockets take their local ports from there, so a port handed out
/// by `bind(0)` could be taken by some test's outgoing connection before the server binds it.
/// Ports below that range are handed out once per process (tests run in threads of one process;
/// test binaries run one after another), starting at an offset from the pid.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let offset = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

pub fn jes_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jes")
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The Python every test runs its peers and clients with: the virtual environment
/// `scripts/install-test-deps` makes in `tests/.venv`, so the packages the tests need (aiosmtpd,
/// selenium, schemathesis) never go into the system's Python.
pub fn python3() -> PathBuf {
    venv_bin("python3")
}

/// A program installed into `tests/.venv` (e.g. `schemathesis`).
pub fn venv_bin(name: &str) -> PathBuf {
    let path = repo_path("tests/.venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps (it makes the tests' Python environment)",
        path.display()
    );
    path
}

/// A running jes with its folder `<tmp>/jes/etc` and log `<tmp>/jes/log/jes.log`.
pub struct Server {
    pub root: tempfile::TempDir,
    pub etc: PathBuf,
    pub smtp_port: u16,
    pub pop3_port: u16,
    child: Option<Child>,
}

pub const DEFAULT_USERS: &str =
    "user.trackstudio@127.0.0.1=secret\nuser.analyst@localhost=password\n";

impl Server {
    /// A server with the usual TrackStudio-like settings plus `extra` lines in mail.conf.
    pub fn start(extra: &str, users: &str) -> Server {
        let server = Server::prepare(extra, users);
        server.launch()
    }

    /// Writes the configuration without starting (to add files first).
    pub fn prepare(extra: &str, users: &str) -> Server {
        let root = tempfile::tempdir().expect("tempdir");
        let etc = root.path().join("jes/etc");
        std::fs::create_dir_all(&etc).expect("mkdir etc");
        let smtp_port = free_port();
        let pop3_port = free_port();
        let mail_conf = format!(
            "listen.address=127.0.0.1\nsmtpport={smtp_port}\npop3port={pop3_port}\n\
             domains=localhost,127.0.0.1\nrelay.ipaddresses=127.0.0.1\nhostname=jes.test\n{extra}\n"
        );
        std::fs::write(etc.join("mail.conf"), mail_conf).expect("write mail.conf");
        std::fs::write(etc.join("user.conf"), users).expect("write user.conf");
        std::fs::write(etc.join("log.conf"), "log4j.rootCategory=debug, R\n")
            .expect("write log.conf");
        Server {
            root,
            etc,
            smtp_port,
            pop3_port,
            child: None,
        }
    }

    pub fn launch(mut self) -> Server {
        self.spawn();
        self
    }

    pub fn spawn(&mut self) {
        self.spawn_command(Command::new(jes_bin()));
    }

    /// Starts jes with its soft open-file limit lowered to `soft` (by the shell's `ulimit`, which
    /// then execs jes, so the pid is jes's), to see what jes does with the limit it inherits.
    pub fn launch_with_soft_nofile(mut self, soft: u32) -> Server {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -S -n {soft} && exec \"$0\" \"$@\""))
            .arg(jes_bin());
        self.spawn_command(command);
        self
    }

    fn spawn_command(&mut self, mut command: Command) {
        let child = command
            .arg("serve")
            .arg(&self.etc)
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jes");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("jes exited at start ({status}): {err}");
                }
            }
            if TcpStream::connect(("127.0.0.1", self.smtp_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.pop3_port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("jes did not start listening within 20 s");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "kill -{sig} failed"
        );
    }

    /// Waits for the process to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return status.success();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("jes did not exit within {within:?}");
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn mailbox(&self, addr: &str) -> PathBuf {
        self.etc.join("users").join(addr)
    }

    /// The `pop*.jmsg` files of a mailbox.
    pub fn mailbox_files(&self, addr: &str) -> Vec<PathBuf> {
        list_matching(&self.mailbox(addr), "pop", ".jmsg")
    }

    pub fn queue_files(&self) -> Vec<PathBuf> {
        list_matching(&self.etc.join("smtp"), "smtp", ".ser")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("jes/log/jes.log")).unwrap_or_default()
    }

    /// Runs `tests/py/<script>` with the server's ports in the environment.
    pub fn python(&self, script: &str, args: &[&str]) -> Output {
        let out = Command::new(python3())
            .arg(repo_path(&format!("tests/py/{script}")))
            .args(args)
            .env("JES_SMTP_PORT", self.smtp_port.to_string())
            .env("JES_POP3_PORT", self.pop3_port.to_string())
            .env("JES_ETC", &self.etc)
            .output()
            .expect("run tests/.venv/bin/python3");
        out
    }

    /// Like `python`, asserting success and returning stdout.
    pub fn python_ok(&self, script: &str, args: &[&str]) -> String {
        let out = self.python(script, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{script} {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
    }

    /// A raw SMTP/POP3 conversation helper: connect and read the greeting.
    pub fn connect(&self, port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut raw = Raw {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        };
        let greeting = raw.line();
        assert!(
            greeting.starts_with("220") || greeting.starts_with("+OK"),
            "greeting: {greeting}"
        );
        raw
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn list_matching(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name.starts_with(prefix) && name.ends_with(suffix)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A line-oriented raw connection.
pub struct Raw {
    pub stream: TcpStream,
    pub reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a line");
        line
    }

    /// Reads one SMTP reply (all its lines) and returns it.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Sends a command and returns the reply.
    pub fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        self.reply()
    }
}

/// An independent upstream SMTP server (Python's aiosmtpd, `tests/py/upstream.py`).
pub struct Upstream {
    pub port: u16,
    pub log: PathBuf,
    pub mode_file: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Upstream {
    pub fn start(extra: &[&str]) -> Upstream {
        Upstream::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Upstream {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("upstream.jsonl");
        let mode_file = dir.path().join("mode");
        let mut child = Command::new(python3())
            .arg(repo_path("tests/py/upstream.py"))
            .arg(port.to_string())
            .arg(&log)
            .arg("--mode-file")
            .arg(&mode_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start upstream.py (is aiosmtpd installed? scripts/install-test-deps does it)");
        let mut first = String::new();
        if let Some(out) = child.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut first);
        }
        assert_eq!(first.trim(), "ready", "upstream did not start");
        Upstream {
            port,
            log,
            mode_file,
            child,
            _dir: dir,
        }
    }

    pub fn set_mode(&self, mode: &str) {
        std::fs::write(&self.mode_file, mode).expect("write mode");
    }

    /// Every transaction the upstream accepted so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // The upstream may be writing a line right now: only lines with their newline count.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end + 1],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("upstream log line is JSON"))
            .collect()
    }

    /// Waits until at least `n` transactions arrived.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "upstream got {} transactions, expected {n}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    /// Sends one message over a raw SMTP connection and returns the final reply. `body` uses
    /// CRLF and is dot-stuffed here.
    pub fn send(&self, from: &str, rcpts: &[&str], body: &str) -> String {
        let mut c = self.connect(self.smtp_port);
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        let r = c.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "MAIL: {r}");
        for rcpt in rcpts {
            let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250"), "RCPT {rcpt}: {r}");
        }
        assert!(c.cmd("DATA").starts_with("354"));
        let mut data = String::new();
        for line in body.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        if body.ends_with("\r\n") {
            data.truncate(data.len() - 2);
        }
        data.push_str(".\r\n");
        c.send(data.as_bytes());
        let reply = c.reply();
        let _ = c.cmd("QUIT");
        reply
    }

    /// Runs `jes ARGS --dir ETC` and returns (success, stdout + stderr).
    pub fn jes(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(jes_bin())
            .args(args)
            .arg("--dir")
            .arg(&self.etc)
            .output()
            .expect("run jes");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Waits until `cond` holds, polling.
    pub fn wait_until(&self, what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes a self-signed certificate and key for `localhost`/127.0.0.1 into `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

impl Server {
    /// Like `python_ok`, with extra environment variables.
    pub fn python_env_ok(&self, script: &str, args: &[&str], env: &[(&str, String)]) -> String {
        let mut cmd = Command::new(python3());
        cmd.arg(repo_path(&format!("tests/py/{script}")))
            .args(args)
            .env("JES_SMTP_PORT", self.smtp_port.to_string())
            .env("JES_POP3_PORT", self.pop3_port.to_string())
            .env("JES_ETC", &self.etc);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run tests/.venv/bin/python3");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{script} {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
    }
}

/// Logs in to the console on `port` as `analyst@localhost` with curl, the cookie kept in a jar
/// in the server's folder: (cookie jar, CSRF token, the login's JSON answer).
pub fn console_login(server: &Server, port: u16) -> (String, String, serde_json::Value) {
    let jar = server.root.path().join("cookies").display().to_string();
    let out = Command::new("curl")
        .args(["-s", "-c", &jar, "-H", "Content-Type: application/json"])
        .args([
            "-d",
            r#"{"user":"analyst@localhost","password":"password"}"#,
        ])
        .arg(format!("http://127.0.0.1:{port}/api/login"))
        .output()
        .expect("run curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("login: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let csrf = v["csrf"].as_str().unwrap_or_default().to_string();
    (jar, csrf, v)
}

/// A console request with curl, sending the cookies of `jar` and `headers` ("Name: value"),
/// `body` as JSON: (status, body).
pub fn console_api(
    port: u16,
    jar: &str,
    headers: &[&str],
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-b", jar, "-X", method]);
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    let out = c
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("curl's status line");
    (code.parse().expect("a status code"), body.to_string())
}

/// Runs `jes ARGS` as given (no `--dir` added): (success, stdout + stderr).
pub fn jes_run(args: &[&str]) -> (bool, String) {
    let out = Command::new(jes_bin())
        .args(args)
        .output()
        .expect("run jes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What Python's poplib sees of `user`'s mailbox on `server` (`tests/py/pop_view.py`: STAT,
/// UIDL, LIST and RETR of every message), as JSON.
pub fn pop_view(server: &Server, user: &str, password: &str) -> serde_json::Value {
    let out = server.python_ok("pop_view.py", &[user, password]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The JES 1.6.1 fixture's two mailboxes as `pop_view` shows them after a migration: four
/// messages for trackstudio (JES's own UIDL first), two for analyst, LIST announcing what RETR
/// sends.
pub fn assert_fixture_mailboxes(trackstudio: &serde_json::Value, analyst: &serde_json::Value) {
    assert_eq!(trackstudio["messages"].as_array().unwrap().len(), 4);
    assert_eq!(analyst["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        trackstudio["messages"][0]["uid"], "6501300281251615158",
        "JES's UIDL, first"
    );
    for m in trackstudio["messages"].as_array().unwrap() {
        assert_eq!(m["list"], m["retr"], "LIST announces what RETR sends: {m}");
    }
}
