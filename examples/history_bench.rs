//! Fills a delivery history with N events (default one million) and times the queries people
//! make: by recipient and by Message-ID, through the same `HistoryStore` code `jes trace` and
//! `/api/history` use. Run by `bench/bench.py history`; by hand:
//!
//! ```sh
//! cargo run --release --example history_bench -- /tmp/h/etc 1000000
//! ```
//!
//! It writes `DIR/history.db` through `HistoryStore::append` in batches of 1,000 (what the writer
//! thread commits), then prints one JSON line: the fill time, and the median and worst of 50
//! queries of each kind (each for another recipient or message).

use std::path::PathBuf;
use std::time::Instant;

use jes::history::{db_path, HistoryStore, Query, Record, SqliteHistory, BATCH_MAX};

/// Distinct recipients: about 50 messages each at one million events.
const RECIPIENTS: u64 = 10_000;
const DAY_MS: u64 = 86_400_000;

fn record(i: u64, event: &str, t: u64) -> Record {
    let r = i % RECIPIENTS;
    let relayed = event != "accepted";
    Record {
        time_ms: t,
        id: format!("{}", 1_796_000_000_000_000_000u64 + i),
        message_id: Some(format!("<task-{i}@tracker.example>")),
        event: event.into(),
        sender: "tracker@app.example".into(),
        recipient: format!("user{r}@corp{}.example", r % 50),
        subject: Some(format!("Task {i}: status changed to done")),
        size: 2_048 + i % 4_096,
        attempt: u32::from(relayed),
        remote_host: relayed.then(|| "smtp.corp.example".into()),
        remote_ip: relayed.then(|| "10.0.0.5".into()),
        tls: relayed.then(|| "TLSv1.3".into()),
        reply: match event {
            "deferred" => "451 4.3.0 try again later".into(),
            "delivered" => format!("250 2.0.0 Ok: queued as {i:X}"),
            _ => format!(
                "250 2.0.0 OK queued as {}",
                1_796_000_000_000_000_000u64 + i
            ),
        },
        status: Some(
            if event == "deferred" {
                "4.3.0"
            } else {
                "2.0.0"
            }
            .into(),
        ),
        server: None,
    }
}

fn median_and_max(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "history-bench".into()));
    let total: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    std::fs::create_dir_all(&dir).expect("create the folder");
    let path = db_path(&dir);
    let _ = std::fs::remove_file(&path);
    let mut store = SqliteHistory::create(&path).expect("create history.db");

    // Thirty days of mail, oldest first: every message accepted then relayed, one in five
    // deferred once on the way.
    let start = jes::event::now_ms() - 30 * DAY_MS;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH_MAX);
    let (mut events, mut messages) = (0u64, 0u64);
    while events < total {
        let i = messages;
        let t = start + i * 2_000;
        let mut kinds = vec!["accepted"];
        if i % 5 == 0 {
            kinds.push("deferred");
        }
        kinds.push("delivered");
        for (n, kind) in kinds.into_iter().enumerate() {
            if events == total {
                break;
            }
            batch.push(record(i, kind, t + n as u64 * 60_000));
            events += 1;
            if batch.len() == BATCH_MAX {
                store.append(&batch).expect("append");
                batch.clear();
            }
        }
        messages += 1;
    }
    store.append(&batch).expect("append");
    let fill_s = started.elapsed().as_secs_f64();
    drop(store);

    let store = SqliteHistory::open_read_only(&path)
        .expect("open")
        .expect("history.db exists");
    let time = |q: &Query, limit: Option<usize>| {
        let t = Instant::now();
        let n = store.query(q, 0, limit).expect("query").len();
        (t.elapsed().as_secs_f64() * 1000.0, n)
    };
    let mut by_rcpt = Vec::new();
    let mut by_msgid = Vec::new();
    let mut rcpt_events = 0;
    for k in 0..50u64 {
        let r = (k * 197) % RECIPIENTS;
        let q = Query::parse(&format!("user{r}@corp{}.example", r % 50));
        let (ms, n) = time(&q, None);
        by_rcpt.push(ms);
        rcpt_events = n;
        let m = (k * 7_919) % messages;
        let (ms, n) = time(&Query::parse(&format!("<task-{m}@tracker.example>")), None);
        assert!(n >= 2, "the Message-ID query found its message");
        by_msgid.push(ms);
    }
    let (rcpt_median, rcpt_max) = median_and_max(by_rcpt);
    let (msgid_median, msgid_max) = median_and_max(by_msgid);
    let size_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "{{\"events\":{events},\"messages\":{messages},\"fill_s\":{fill_s:.1},\"db_mb\":{size_mb:.0},\
         \"recipient_events\":{rcpt_events},\"recipient_ms_median\":{rcpt_median:.2},\
         \"recipient_ms_max\":{rcpt_max:.2},\"message_id_ms_median\":{msgid_median:.2},\
         \"message_id_ms_max\":{msgid_max:.2}}}"
    );
}
