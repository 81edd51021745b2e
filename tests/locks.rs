//! Locks that hold across processes: a mailbox a POP3 session of the server holds cannot be opened
//! by another process through the library, and the reverse; a second `jes serve` on the same mail
//! root refuses to start and names the first.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{jes_bin, Server, DEFAULT_USERS};
use jes::store::{FileMailboxes, Mailboxes, OpenError, OpenMailbox};

const ACCOUNT: &str = "trackstudio@127.0.0.1";

/// Opens `ACCOUNT` through the library's mailbox interface, as another process would.
fn open(users: std::path::PathBuf) -> Result<Box<dyn OpenMailbox>, OpenError> {
    let store = FileMailboxes::new(users);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(Mailboxes::open(&store, ACCOUNT))
}

fn server_with_mail() -> Server {
    let server = Server::start("", DEFAULT_USERS);
    let reply = server.send("app@127.0.0.1", &[ACCOUNT], "Subject: t\r\n\r\nx\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    server
}

#[test]
fn a_mailbox_the_server_holds_is_locked_for_this_process_too() {
    let server = server_with_mail();
    let users = server.etc.join("users");
    let mut pop = server.connect(server.pop3_port);
    assert!(pop.cmd(&format!("USER {ACCOUNT}")).starts_with("+OK"));
    assert!(pop.cmd("PASS secret").starts_with("+OK"));
    assert!(
        matches!(open(users.clone()), Err(OpenError::InUse)),
        "the server's POP3 session holds the mailbox"
    );
    assert!(pop.cmd("QUIT").starts_with("+OK"));
    // QUIT's +OK comes after the lock is gone.
    let mb = open(users).expect("free after QUIT");
    assert_eq!(mb.messages().len(), 1);
}

#[test]
fn a_mailbox_this_process_holds_is_in_use_for_the_server() {
    let server = server_with_mail();
    let held = open(server.etc.join("users")).expect("open");
    let mut pop = server.connect(server.pop3_port);
    assert!(pop.cmd(&format!("USER {ACCOUNT}")).starts_with("+OK"));
    let r = pop.cmd("PASS secret");
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    drop(held);
    let mut pop = server.connect(server.pop3_port);
    assert!(pop.cmd(&format!("USER {ACCOUNT}")).starts_with("+OK"));
    let r = pop.cmd("PASS secret");
    assert!(r.starts_with("+OK"), "free once dropped: {r}");
}

#[test]
fn a_second_server_on_the_same_folder_refuses_to_start() {
    let server = Server::start("", DEFAULT_USERS);
    let out = Command::new(jes_bin())
        .arg("serve")
        .arg(&server.etc)
        .output()
        .expect("run a second jes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "must not start: {text}");
    assert!(
        text.contains("another jes is serving") && text.contains(&format!("pid {}", server.pid())),
        "names the holder: {text}"
    );
    // The first is untouched and still serves.
    let reply = server.send("app@127.0.0.1", &[ACCOUNT], "Subject: t\r\n\r\nx\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    std::thread::sleep(Duration::from_millis(100));
}
