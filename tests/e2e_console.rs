//! The web console in a real browser: starts `jes serve` with the HTTP listener, an admin account
//! and a smart host that refuses connections (so relayed mail stays queued), then runs
//! `tests/py/e2e_console.py`, which drives Debian's headless Chromium through Selenium: login,
//! dashboard, a message with text, HTML (sandboxed) and attachment parts, its delivery history
//! (timeline and search), the queue's Retry and
//! Delete, keyboard use and the 375 px layout.
//!
//! `scripts/install-test-deps` installs chromium, chromium-driver and selenium. With
//! `JES_SCREENSHOTS=docs/screenshots` set, the script also saves the README's screenshots.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{free_port, repo_path, Server};

const ADMIN: &str = "admin@localhost";
const ADMIN_PASSWORD: &str = "console secret 1";

#[test]
fn console_in_a_browser() {
    let http_port = free_port();
    // Nothing listens here: every delivery attempt fails with "connection refused".
    let dead_smart_host = free_port();
    let users = format!(
        "user.{ADMIN}={ADMIN_PASSWORD}\nuser.trackstudio@127.0.0.1=secret\nuser.analyst@localhost=password\n"
    );
    let server = Server::start(
        &format!(
            "http.port={http_port}\nhttp.admins={ADMIN}\n\
             defaultsmtpservers=127.0.0.1:{dead_smart_host}\nsmtpdelivery.interval=1\n"
        ),
        &users,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the console did not listen on {http_port}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut env = vec![
        ("JES_HTTP_PORT", http_port.to_string()),
        ("JES_ADMIN", ADMIN.to_string()),
        ("JES_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("JES_LOCAL_RCPT", "trackstudio@127.0.0.1".to_string()),
        ("JES_LOCAL_PASSWORD", "secret".to_string()),
    ];
    if let Some(dir) = std::env::var_os("JES_SCREENSHOTS").filter(|d| !d.is_empty()) {
        let dir = std::path::PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            repo_path(&dir.to_string_lossy())
        };
        env.push(("JES_SCREENSHOTS", dir.to_string_lossy().into_owned()));
    }
    let out = server.python_env_ok("e2e_console.py", &[], &env);
    assert!(
        out.contains("console e2e: all checks passed"),
        "the browser test did not finish:\n{out}"
    );
}

/// The Captured page (capture mode, issue 17): banner, list, message view, release, delete.
#[test]
fn captured_page_in_a_browser() {
    let http_port = free_port();
    let dead_smart_host = free_port();
    let users = format!("user.{ADMIN}={ADMIN_PASSWORD}\nuser.trackstudio@127.0.0.1=secret\n");
    let server = Server::start(
        &format!(
            "http.port={http_port}\nhttp.admins={ADMIN}\ncapture=true\n\
             defaultsmtpservers=127.0.0.1:{dead_smart_host}\nsmtpdelivery.interval=1\n"
        ),
        &users,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(Instant::now() < deadline, "no console\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = vec![
        ("JES_HTTP_PORT", http_port.to_string()),
        ("JES_ADMIN", ADMIN.to_string()),
        ("JES_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
    ];
    let out = server.python_env_ok("e2e_captured.py", &[], &env);
    assert!(
        out.contains("captured e2e: all checks passed"),
        "the browser test did not finish:\n{out}"
    );
}
