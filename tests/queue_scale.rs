//! 100,000 deferred messages: new mail is still accepted and delivered, and the idle server reads
//! no files while they wait (asserted on work done — read syscalls — not on wall time).

mod common;

use std::time::{Duration, SystemTime};

use common::{Server, DEFAULT_USERS};

const DEFERRED: usize = 100_000;

fn read_syscalls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscr in /proc/PID/io")
}

#[test]
fn a_hundred_thousand_deferred_messages_cost_nothing_while_they_wait() {
    let dead = common::free_port();
    let mut server = Server::prepare(
        &format!("defaultsmtpservers=127.0.0.1:{dead}\nsmtpdelivery.interval=1"),
        DEFAULT_USERS,
    );
    let smtp = server.etc.join("smtp");
    std::fs::create_dir_all(&smtp).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let next = now_ms + 3_600_000;
    for i in 0..DEFERRED {
        let text = format!(
            "jes-queue 1\r\nFrom: <tracker@localhost>\r\nReceived: {now_ms} (test)\r\nAttempts: 1\r\n\
             Next-Attempt: {next} (in an hour)\r\nTo: <boss{i}@remote.test> pending 451 4.3.0 deferred\r\n\r\n\
             Subject: deferred {i}\r\n\r\nbody {i}\r\n"
        );
        std::fs::write(
            smtp.join(format!("smtp{}.ser", 9_000_000_000u64 + i as u64)),
            text,
        )
        .unwrap();
    }
    server.spawn();
    server.wait_until("the queue is loaded", Duration::from_secs(120), || {
        server
            .log()
            .contains(&format!("queue: {DEFERRED} messages waiting"))
    });

    // New mail is accepted and delivered locally at once.
    let reply = server.send(
        "reporter@example.org",
        &["trackstudio@127.0.0.1"],
        "Subject: still served\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.mailbox_files("trackstudio@127.0.0.1").len(), 1);

    // Let start-up work settle, then watch an idle minute.
    std::thread::sleep(Duration::from_secs(3));
    let before = read_syscalls(server.pid());
    std::thread::sleep(Duration::from_secs(60));
    let after = read_syscalls(server.pid());
    assert!(
        after - before < 50,
        "the idle server made {} read calls in a minute with {DEFERRED} deferred messages",
        after - before
    );
    assert_eq!(
        server.queue_files().len(),
        DEFERRED,
        "nothing was lost or delivered early"
    );
}
