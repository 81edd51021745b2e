//! `jes queue …` run as the real binary on a copy of JES 1.6.1's own queue file, without mail.conf.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

const ID: &str = "10134488207579172220";

fn jes(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jes"))
        .args(["queue"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run jes")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = jes(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "jes queue {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(etc.join("smtp")).unwrap();
    let name = format!("smtp{ID}.ser");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jes-1.6.1/etc/smtp")
        .join(&name);
    std::fs::copy(fixture, etc.join("smtp").join(&name)).unwrap();
    (root, etc)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn queue_files(etc: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(etc.join("smtp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("smtp") && n.ends_with(".ser"))
        .collect();
    v.sort();
    v
}

#[test]
fn list_show_retry_delete_on_a_jes_queue() {
    let (_root, etc) = setup();

    let list = ok(&etc, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("ID"), "{list}");
    let row = lines.iter().find(|l| l.starts_with(ID)).expect("row");
    assert!(row.contains("trackstudio@localhost"), "{row}");
    assert!(row.contains("boss@remote.test (pending)"), "{row}");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "1", "attempts: {row}");

    let show = ok(&etc, &["show", ID]);
    assert!(show.contains("JES 1.0"), "{show}");
    assert!(show.contains("<trackstudio@localhost>"), "{show}");
    assert!(show.contains("boss@remote.test  pending"), "{show}");
    assert!(show.contains("Subject: Task #2124 changed"), "{show}");

    let before = now_ms();
    ok(&etc, &["retry", ID]);
    let text = std::fs::read_to_string(etc.join(format!("smtp/smtp{ID}.ser"))).unwrap();
    let next: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Next-Attempt: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Next-Attempt in\n{text}"));
    assert!(next >= before && next <= now_ms(), "{next} vs {before}");
    assert!(etc.join("smtp/.retry").join(ID).exists());
    // The message itself is unchanged by the conversion to jes's format.
    assert!(text.contains("\r\n\r\nX-RecievedDate: Wed Nov 25 11:21:37 UTC 2026\r\n"));

    let out = ok(&etc, &["delete", ID, "--bounce"]);
    assert!(out.contains("bounce to <trackstudio@localhost>"), "{out}");
    let files = queue_files(&etc);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_ne!(files[0], format!("smtp{ID}.ser"));
    let dsn = std::fs::read_to_string(etc.join("smtp").join(&files[0])).unwrap();
    assert!(dsn.starts_with("jes-queue 1\r\nFrom: <>\r\n"), "{dsn}");
    assert!(
        dsn.contains("\r\nTo: <trackstudio@localhost> pending\r\n"),
        "{dsn}"
    );
    assert!(dsn.contains("Content-Type: multipart/report; report-type=delivery-status"));
    assert!(dsn.contains("Final-Recipient: rfc822; boss@remote.test"));
    assert!(dsn.contains("Status: 5.0.0"));
    assert!(dsn.contains("deleted by the administrator"));
    assert!(
        dsn.contains("Subject: Task #2124 changed"),
        "original headers"
    );

    // Errors name the file and fail.
    let out = jes(&etc, &["show", ID]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("smtp{ID}.ser")), "{err}");
}

#[test]
fn empty_queue_and_usage_errors() {
    let root = tempfile::tempdir().unwrap();
    assert!(ok(root.path(), &["list"]).contains("queue is empty"));
    assert!(!jes(root.path(), &["retry"]).status.success());
    assert!(!jes(root.path(), &["delete", "1", "--all"]).status.success());
    assert!(!jes(root.path(), &["show", "../x"]).status.success());
}
