//! Integration tests with the client issue trackers really use: Jakarta Mail (JavaMail), as
//! TrackStudio does. `tests/java/TrackerClient.java` is compiled at test time against Debian's
//! `libjakarta-mail-java` jars (installed by `scripts/install-test-deps`), then sends notifications
//! over SMTP without AUTH and polls the task inbox over POP3 (USER/PASS, RETR, DELE, QUIT) exactly as
//! a tracker does every minute.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{free_port, Server, DEFAULT_USERS};

const ACCOUNT: &str = "trackstudio@127.0.0.1";
const PASSWORD: &str = "secret";
const JAVA_DIR: &str = "/usr/share/java";

/// The compiled `TrackerClient` and the class path to run it with.
struct Tracker {
    classes: tempfile::TempDir,
    jars: Vec<PathBuf>,
}

/// The first of `names` that exists in `/usr/share/java`.
fn find_jar(names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(|n| Path::new(JAVA_DIR).join(n))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "none of {names:?} in {JAVA_DIR}: install Debian's libjakarta-mail-java \
                 (scripts/install-test-deps does)"
            )
        })
}

fn tool_ok(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool} -version` failed: a JDK is required by the test suite \
         (scripts/install-test-deps installs default-jdk-headless)"
    );
}

impl Tracker {
    fn compile() -> Tracker {
        tool_ok("javac");
        tool_ok("java");
        let jars = vec![
            find_jar(&["jakarta-mail.jar", "jakarta.mail.jar"]),
            find_jar(&["jakarta-activation.jar", "jakarta.activation.jar"]),
        ];
        let classes = tempfile::tempdir().expect("tempdir");
        let tracker = Tracker { classes, jars };
        let out = Command::new("javac")
            .arg("-encoding")
            .arg("UTF-8")
            .arg("-cp")
            .arg(tracker.classpath(false))
            .arg("-d")
            .arg(tracker.classes.path())
            .arg(common::repo_path("tests/java/TrackerClient.java"))
            .output()
            .expect("run javac");
        assert!(
            out.status.success(),
            "javac failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tracker
    }

    fn classpath(&self, with_classes: bool) -> String {
        let mut parts: Vec<String> = self.jars.iter().map(|p| p.display().to_string()).collect();
        if with_classes {
            parts.push(self.classes.path().display().to_string());
        }
        parts.join(":")
    }

    /// Runs the client and returns its stdout, failing with everything useful if it fails.
    fn run(&self, server: &Server, args: &[&str]) -> String {
        let out = Command::new("java")
            .arg("-cp")
            .arg(self.classpath(true))
            .arg("TrackerClient")
            .args(args)
            // Arguments (a non-ASCII subject) are decoded by the locale, as on a tracker host.
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run java");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "TrackerClient {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        stdout
    }

    fn send(&self, server: &Server, from: &str, to: &str, subject: &str, body: &str) {
        let file = server
            .root
            .path()
            .join(format!("body-{}.txt", subject.len()));
        std::fs::write(&file, body).expect("write body file");
        let port = server.smtp_port.to_string();
        let file = file.display().to_string();
        let out = self.run(
            server,
            &["send", "127.0.0.1", &port, from, to, subject, &file],
        );
        assert!(out.contains("SENT"), "{out}");
    }

    fn poll(&self, server: &Server) -> Vec<Polled> {
        let port = server.pop3_port.to_string();
        let out = self.run(server, &["poll", "127.0.0.1", &port, ACCOUNT, PASSWORD]);
        parse_poll(&out)
    }
}

/// One message as the tracker saw it.
#[derive(Debug)]
struct Polled {
    number: usize,
    subject: String,
    size: usize,
    /// The content text split into lines (CRLF or LF ends).
    lines: Vec<String>,
}

fn parse_poll(out: &str) -> Vec<Polled> {
    let mut polled = Vec::new();
    let mut lines = out.lines();
    let mut total = None;
    while let Some(line) = lines.next() {
        if let Some(n) = line.strip_prefix("POLLED ") {
            total = Some(n.parse::<usize>().expect("POLLED count"));
            break;
        }
        let head = line
            .strip_prefix("MESSAGE ")
            .unwrap_or_else(|| panic!("unexpected line {line:?} in:\n{out}"));
        let (number, rest) = head.split_once(' ').expect("MESSAGE n");
        let (subject, size) = rest.rsplit_once(' ').expect("MESSAGE n subject size");
        let number: usize = number.parse().expect("message number");
        let end = format!("END MESSAGE {number}");
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l == end {
                break;
            }
            body.push(l.to_string());
        }
        // The client prints a newline after the content.
        if body.last().map(|l| l.is_empty()).unwrap_or(false) {
            body.pop();
        }
        polled.push(Polled {
            number,
            subject: subject.to_string(),
            size: size.parse().expect("size"),
            lines: body,
        });
    }
    assert_eq!(total, Some(polled.len()), "the poll did not finish:\n{out}");
    polled
}

/// What Jakarta Mail's `Message.getSize()` gives for a stored file: the POP3 (LIST) size minus the
/// header, i.e. the bytes after the blank line, less the stuffing dot of each body line starting
/// with a dot (files are stored in wire form).
fn content_size(file: &Path) -> usize {
    let bytes = std::fs::read(file).expect("read mailbox file");
    let start = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header/body separator")
        + 4;
    let body = &bytes[start..];
    let stuffed = body
        .split(|&b| b == b'\n')
        .filter(|l| l.first() == Some(&b'.'))
        .count();
    body.len() - stuffed
}

const BODY_1: &str = "Task one: the build is red.\n\
.hidden line that starts with a dot\n\
.\n\
..two dots\n\
Grüße aus Köln — Задача №1 — 課題\n\
last line\n";

const BODY_2: &str = "Task two.\n\
Ärger über Größe: ½ € ✓\n\
. a dot and a space\n";

#[test]
fn tracker_sends_and_polls_with_jakarta_mail() {
    let tracker = Tracker::compile();
    let server = Server::start("", DEFAULT_USERS);
    let subject_1 = "Task 1: build is red";
    let subject_2 = "Задача 2: second task";
    tracker.send(&server, "reporter@example.org", ACCOUNT, subject_1, BODY_1);
    tracker.send(&server, "reporter@example.org", ACCOUNT, subject_2, BODY_2);

    let files = server.mailbox_files(ACCOUNT);
    assert_eq!(files.len(), 2, "two messages delivered: {files:?}");
    // Sent 8-bit (the server offers 8BITMIME): the UTF-8 text is stored as it is, not re-encoded.
    let stored: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        stored
            .iter()
            .any(|s| contains(s, "Grüße aus Köln — Задача №1 — 課題\r\n")),
        "the 8-bit text is stored verbatim:\n{}",
        String::from_utf8_lossy(&stored.concat())
    );
    assert!(
        stored.iter().any(|s| contains(s, "\r\n..hidden line")),
        "stored in wire form (dot-stuffed):\n{}",
        String::from_utf8_lossy(&stored.concat())
    );
    let mut sizes: Vec<usize> = files.iter().map(|f| content_size(f)).collect();
    sizes.sort();

    let polled = tracker.poll(&server);
    assert_eq!(polled.len(), 2, "{polled:#?}");
    assert_eq!(polled[0].number, 1);
    assert_eq!(polled[1].number, 2);
    // Oldest first, subjects decoded (the second is RFC 2047 encoded on the wire).
    assert_eq!(polled[0].subject, subject_1, "{polled:#?}");
    assert_eq!(polled[1].subject, subject_2, "{polled:#?}");
    // Bodies exactly, line by line: dot lines unstuffed, 8-bit text intact.
    let expect_1: Vec<&str> = BODY_1.lines().collect();
    let expect_2: Vec<&str> = BODY_2.lines().collect();
    assert_eq!(polled[0].lines, expect_1, "{polled:#?}");
    assert_eq!(polled[1].lines, expect_2, "{polled:#?}");
    // The sizes the tracker sees (LIST size less the header) match what RETR sends.
    let mut seen: Vec<usize> = polled.iter().map(|p| p.size).collect();
    seen.sort();
    assert_eq!(seen, sizes, "LIST sizes match the stored messages");

    // folder.close(true) sent DELE and QUIT: the mailbox is empty, on disk and for the next poll.
    assert!(
        server.mailbox_files(ACCOUNT).is_empty(),
        "left behind: {:?}",
        server.mailbox_files(ACCOUNT)
    );
    let again = tracker.poll(&server);
    assert!(again.is_empty(), "second poll: {again:#?}");
    assert!(server.mailbox_files(ACCOUNT).is_empty());

    let log = server.log();
    assert!(log.contains("POP3 login"), "{log}");
    assert!(log.contains("outcome=\"pop3-deleted\""), "{log}");
}

#[test]
fn tracker_notification_to_a_remote_address_is_queued() {
    let tracker = Tracker::compile();
    // A smart host that refuses connections: whatever the outbound relay does meanwhile, the
    // message stays in the queue.
    let dead = free_port();
    let server = Server::start(
        &format!("defaultsmtpservers=127.0.0.1:{dead}\nsmtpdelivery.interval=3600"),
        DEFAULT_USERS,
    );
    tracker.send(
        &server,
        ACCOUNT,
        "boss@remote.test",
        "[TS] Task #42 was updated",
        "The task was updated.\n.dot line\nÄnderung übernommen.\n",
    );
    let queued = server.queue_files();
    assert_eq!(
        queued.len(),
        1,
        "one smtp*.ser file in etc/smtp/: {queued:?}\nlog:\n{}",
        server.log()
    );
    let text = String::from_utf8_lossy(&std::fs::read(&queued[0]).unwrap()).to_string();
    assert!(text.contains("boss@remote.test"), "{text}");
    assert!(text.contains("Task #42 was updated"), "{text}");
    assert!(
        server.mailbox_files(ACCOUNT).is_empty(),
        "nothing delivered locally"
    );
}
