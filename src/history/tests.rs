use std::os::unix::fs::PermissionsExt;

use super::render::{messages, timeline, words, JsonEvent};
use super::*;
use crate::event::{Event, Kind, MessageFacts};

fn event(kind: Kind, id: &str, rcpt: &str, time_ms: u64) -> Event {
    let facts = MessageFacts::of(
        id,
        "App@Tracker.test",
        b"Message-ID: <task-123@tracker>\r\nSubject: =?UTF-8?B?0J/RgNC40LLQtdGC?= Task 123\r\n\r\n",
        1,
    );
    let mut e = Event::new(kind, &facts, rcpt);
    e.time_ms = time_ms;
    e
}

fn store() -> (tempfile::TempDir, SqliteHistory) {
    let dir = tempfile::tempdir().unwrap();
    let h = SqliteHistory::create(&db_path(dir.path())).unwrap();
    (dir, h)
}

#[test]
fn queries_are_read_as_documented() {
    assert_eq!(Query::parse(""), Query::All);
    assert_eq!(
        Query::parse(" Bob@X.test "),
        Query::Address("Bob@X.test".into())
    );
    assert_eq!(Query::parse("@X.Test"), Query::Domain("x.test".into()));
    assert_eq!(Query::parse("<a@b>"), Query::MessageId("<a@b>".into()));
    assert_eq!(
        Query::parse("1795605697556000001"),
        Query::Text("1795605697556000001".into())
    );
    assert_eq!(Query::parse("task 123"), Query::Text("task 123".into()));
    assert_eq!(Query::parse("bob @x"), Query::Text("bob @x".into()));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30m"), Ok(1_800_000));
    assert_eq!(parse_duration("2h"), Ok(7_200_000));
    assert_eq!(parse_duration("7d"), Ok(604_800_000));
    assert_eq!(parse_duration("999999999d"), Ok(999_999_999 * 86_400_000));
    for bad in ["", "d", "7", "7s", "-1d", "1.5h", "1000000000d", "٣d"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_file_is_private_and_timelines_come_back_by_every_key() {
    let (dir, mut h) = store();
    let mode = std::fs::metadata(db_path(dir.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let relayed = event(Kind::Delivered, "100", "bob@corp.test", 2_000)
        .with_remote(Some("smtp.corp.test"), Some("10.0.0.5".parse().unwrap()))
        .with_tls(Some("TLSv1.3"))
        .with_attempt(1)
        .with_reply("250 2.0.0 Ok: queued as 4XyZ");
    let other_msg = MessageFacts::of("200", "x@y.test", b"Subject: other\r\n\r\n", 0);
    let mut other = Event::new(Kind::Accepted, &other_msg, "carol@corp.test");
    other.time_ms = 3_000;
    let refused = {
        let mut e = Event::new(
            Kind::Refused,
            &MessageFacts {
                sender: "x@y.test".into(),
                ..MessageFacts::default()
            },
            "bobb@local.test",
        )
        .with_reply("550 5.1.1 no such user");
        e.time_ms = 4_000;
        e
    };
    let records: Vec<Record> = [
        event(Kind::Accepted, "100", "bob@corp.test", 1_000),
        relayed,
        other,
        refused.clone(),
        refused,
    ]
    .iter()
    .map(|e| Record::of(e, true))
    .collect();
    h.append(&records).unwrap();

    let ids = |q: &str, since: u64| -> Vec<(String, String)> {
        h.query(&Query::parse(q), since, None)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.event))
            .collect()
    };
    let msg100 = vec![
        ("100".to_string(), "accepted".to_string()),
        ("100".to_string(), "delivered".to_string()),
    ];
    assert_eq!(ids("BOB@corp.TEST", 0), msg100);
    assert_eq!(ids("app@tracker.test", 0), msg100);
    assert_eq!(ids("<task-123@tracker>", 0), msg100);
    assert_eq!(ids("task-123@tracker", 0), msg100);
    assert_eq!(ids("100", 0), msg100);
    assert_eq!(ids("привет task", 0), msg100);
    assert_eq!(ids("nothing like it", 0), vec![]);
    assert_eq!(ids("bob@corp.tes", 0), vec![]);
    // A domain: both messages to corp.test, newest first.
    assert_eq!(
        ids("@CORP.test", 0),
        [
            vec![("200".to_string(), "accepted".to_string())],
            msg100.clone()
        ]
        .concat()
    );
    // Two refusals without an id are two messages, each found by its address.
    let refused = h.query(&Query::parse("bobb@local.test"), 0, None).unwrap();
    assert_eq!(refused.len(), 2);
    assert_eq!(messages(&refused).len(), 2);
    // --since: a message with an event after it is shown whole.
    assert_eq!(ids("bob@corp.test", 1_500), msg100);
    assert_eq!(ids("bob@corp.test", 2_001), vec![]);
    assert_eq!(ids("", 2_500).len(), 3);
    // limit counts events, newest message first.
    let limited = h.query(&Query::All, 0, Some(2)).unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].event, "refused");

    let all = h.query(&Query::parse("bob@corp.test"), 0, None).unwrap();
    let d = &all[1];
    assert_eq!(
        words(d),
        "relayed to smtp.corp.test [10.0.0.5] with TLS 1.3 (attempt 1): 250 2.0.0 Ok: queued as 4XyZ"
    );
    let t = timeline(&all);
    assert!(
        t.starts_with(
            "message 100 <task-123@tracker> from <App@Tracker.test>, subject \"Привет Task 123\""
        ),
        "{t}"
    );
    assert!(
        t.contains("1970-01-01 00:00:01 UTC  <bob@corp.test> accepted"),
        "{t}"
    );
    let json = serde_json::to_value(JsonEvent::of(d)).unwrap();
    assert_eq!(json["time"], "1970-01-01T00:00:02.000Z");
    assert_eq!(json["event"], "delivered");
    assert_eq!(json["remote_ip"], "10.0.0.5");
    assert_eq!(json["tls"], "TLSv1.3");
    assert_eq!(json["status"], "2.0.0");
    assert_eq!(json["attempt"], 1);
    // history.db is one server's: no server named.
    assert_eq!(json["node"], serde_json::Value::Null);
    assert_eq!(json.as_object().unwrap().len(), 15);
}

#[test]
fn prune_forget_and_no_subjects() {
    let (dir, mut h) = store();
    let old = event(Kind::Accepted, "1", "bob@x.test", 1_000);
    let new = event(Kind::Accepted, "2", "carol@x.test", 5_000);
    h.append(&[Record::of(&old, false), Record::of(&new, false)])
        .unwrap();
    assert_eq!(h.query(&Query::All, 0, None).unwrap()[0].subject, None);
    assert_eq!(h.prune(2_000, 10).unwrap(), 1);
    assert_eq!(h.prune(2_000, 10).unwrap(), 0);
    assert_eq!(h.query(&Query::All, 0, None).unwrap().len(), 1);
    assert_eq!(h.forget("CAROL@x.test").unwrap(), 1);
    assert!(h.query(&Query::All, 0, None).unwrap().is_empty());
    drop(h);
    // Read-only opening creates nothing beside the file.
    let names = || {
        let mut v: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = names();
    assert_eq!(before, ["history.db"]);
    let ro = SqliteHistory::open_read_only(&db_path(dir.path()))
        .unwrap()
        .unwrap();
    assert!(ro.query(&Query::All, 0, None).unwrap().is_empty());
    drop(ro);
    assert_eq!(names(), before);
    let none = SqliteHistory::open_read_only(&dir.path().join("nothing.db")).unwrap();
    assert!(none.is_none());
    assert!(!dir.path().join("nothing.db").exists());
}
