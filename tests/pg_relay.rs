//! The PostgreSQL queue's hot path (issue 15, relay speed): a message is stored in one
//! statement, claimed with its contents in one round trip, and finished (removed with its body)
//! in one more. These tests hold it to what the slower path promised: leases exclude every other
//! holder (another queue object stands for another server), a lost lease loses its writes, a
//! message comes back exactly as it was stored, and only the writes whose loss would lose mail
//! or let two servers deliver at once wait for the WAL flush.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use jes::dsn::{Dsn, MessageDsn, Notify, RecipientDsn, Ret};
use jes::pg::{Database, Settings};
use jes::queue::postgres::PgQueue;
use jes::queue::{Queue, QueueError, RecipientState, Taken};
use pg::{Options, Postgres};

fn database(pg: &Postgres, dir: &std::path::Path) -> Database {
    database_leasing(pg, dir, Duration::from_secs(60))
}

/// As `database`, with `store.leaseseconds` of `lease`.
fn database_leasing(pg: &Postgres, dir: &std::path::Path, lease: Duration) -> Database {
    let settings = Settings {
        url: pg.url("jes"),
        password_file: Some(pg.password_file(dir)),
        max_connections: 4,
        lease,
        sweep: Duration::from_secs(300),
    };
    Database::open(&settings).unwrap()
}

/// Runs `body` on a runtime of its own against a new database `jes` (a folder for its password
/// file beside it), unless `Postgres::start` skips the test.
fn on_database(test: &str, body: impl AsyncFnOnce(&Postgres, &std::path::Path)) {
    on_database_with(test, Options::default(), body)
}

/// As `on_database`, with the cluster's `opts`.
fn on_database_with(
    test: &str,
    opts: Options,
    body: impl AsyncFnOnce(&Postgres, &std::path::Path),
) {
    let Some(pg) = Postgres::start_opts(test, opts) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(body(&pg, dir.path()));
}

/// Two queues on one database, as two servers see it.
fn two_queues(pg: &Postgres, dir: &std::path::Path) -> (PgQueue, PgQueue) {
    let a = PgQueue::for_tool(database(pg, dir), "a:1".into());
    let b = PgQueue::for_tool(database(pg, dir), "b:2".into());
    (a, b)
}

fn count(pg: &Postgres, table: &str) -> u64 {
    pg.psql("jes", &format!("SELECT COUNT(*) FROM {table}"))
        .parse()
        .unwrap()
}

async fn enqueue(q: &PgQueue, body: &str) -> String {
    let rcpts = ["one@remote.test".to_string(), "two@remote.test".to_string()];
    let msg = Arc::new(body.as_bytes().to_vec());
    q.enqueue("", "app@tracker.test", &rcpts, &Dsn::default(), msg)
        .await
        .unwrap()
}

#[test]
fn a_claim_returns_the_message_as_stored_and_excludes_every_other_holder() {
    on_database(
        "a_claim_returns_the_message_as_stored_and_excludes_every_other_holder",
        async |pg, dir| {
            let (a, b) = two_queues(pg, dir);
            let rcpts = ["one@remote.test".to_string(), "Two@Remote.test".to_string()];
            let dsn = Dsn {
                message: MessageDsn {
                    ret: Some(Ret::Hdrs),
                    envid: Some("env+2Did".into()),
                },
                recipients: vec![(
                    "Two@Remote.test".into(),
                    RecipientDsn {
                        notify: Notify::parse("SUCCESS,DELAY"),
                        orcpt: Some("rfc822;two@remote.test".into()),
                    },
                )],
            };
            let body = b"Subject: hi\r\n\r\nbody\r\n".to_vec();
            let id = a
                .enqueue(
                    "123",
                    "app@tracker.test",
                    &rcpts,
                    &dsn,
                    Arc::new(body.clone()),
                )
                .await
                .unwrap();
            assert_eq!(id, "123", "a free id is kept");
            // The same id again (another server's message of the same millisecond): a new one.
            let other = a
                .enqueue(
                    "123",
                    "x@tracker.test",
                    &rcpts[..1],
                    &Dsn::default(),
                    Arc::new(b"x".to_vec()),
                )
                .await
                .unwrap();
            assert_ne!(other, "123");
            assert_eq!(count(pg, "jes_queue_recipients"), 3);

            let Taken::Leased(lease, m) =
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("a free message is leased");
            };
            assert_eq!(m.id, id);
            assert_eq!(m.sender, "app@tracker.test");
            assert_eq!(m.message, body);
            assert_eq!(m.attempts, 0);
            assert!(!m.delay_warned);
            assert_eq!(m.dsn, dsn.message);
            let got: Vec<(&str, RecipientState)> = m
                .recipients
                .iter()
                .map(|r| (r.address.as_str(), r.state))
                .collect();
            assert_eq!(
                got,
                [
                    ("one@remote.test", RecipientState::Pending),
                    ("Two@Remote.test", RecipientState::Pending)
                ]
            );
            assert_eq!(m.recipients[0].dsn, RecipientDsn::default());
            assert_eq!(m.recipients[1].dsn, dsn.recipients[0].1);
            assert!(lease.expires_ms > m.received_ms, "{lease:?}");
            assert_eq!(
                pg.psql(
                    "jes",
                    &format!("SELECT lease_owner FROM jes_queue WHERE id = '{id}'")
                ),
                "b:2"
            );

            // Held: the other server, and this one again, are told to come back.
            assert!(matches!(
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));
            assert!(matches!(
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));

            // A row another transaction has locked this instant (a claim in progress) is busy at
            // once, not waited for.
            let locker = database(pg, dir);
            let mut c = locker.client().await.unwrap();
            let tx = c.transaction().await.unwrap();
            tx.execute(
                "SELECT 1 FROM jes_queue WHERE id = $1 FOR UPDATE",
                &[&other],
            )
            .await
            .unwrap();
            let started = std::time::Instant::now();
            assert!(matches!(
                a.take(&other, "a:1", Duration::from_secs(60))
                    .await
                    .unwrap(),
                Taken::Busy
            ));
            assert!(started.elapsed() < Duration::from_secs(2));
            tx.rollback().await.unwrap();

            // Finished: the message, its recipients and its body go; then it is gone to everyone.
            b.complete(lease, None).await.unwrap();
            assert_eq!(count(pg, "jes_queue"), 1);
            assert_eq!(count(pg, "jes_queue_recipients"), 1);
            assert_eq!(count(pg, "jes_bodies"), 1, "the other message's body stays");
            assert!(matches!(
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap(),
                Taken::Gone
            ));
            assert!(matches!(
                a.take("999", "a:1", Duration::from_secs(60)).await.unwrap(),
                Taken::Gone
            ));
        },
    );
}

#[test]
fn an_expired_lease_is_taken_over_and_its_old_holder_loses_every_write() {
    on_database(
        "an_expired_lease_is_taken_over_and_its_old_holder_loses_every_write",
        async |pg, dir| {
            let (a, b) = two_queues(pg, dir);
            let id = enqueue(&a, "Subject: shared body\r\n\r\nx\r\n").await;
            // A second message with the same bytes shares the body.
            let twin = enqueue(&a, "Subject: shared body\r\n\r\nx\r\n").await;
            assert_eq!(count(pg, "jes_bodies"), 1);

            // A zero lease has expired as soon as it is taken (a stalled holder).
            let Taken::Leased(old, mut m) = a.take(&id, "a:1", Duration::ZERO).await.unwrap()
            else {
                panic!("leased");
            };
            let Taken::Leased(new, _) = b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("an expired lease is taken over");
            };
            assert!(new.token > old.token);
            m.attempts = 7;
            m.recipients[0].state = RecipientState::Delivered;
            assert!(matches!(
                a.record(&old, &m).await,
                Err(QueueError::LeaseLost { .. })
            ));
            assert!(matches!(
                a.complete(old.clone(), None).await,
                Err(QueueError::LeaseLost { .. })
            ));
            assert_eq!(count(pg, "jes_queue"), 2, "the old holder removed nothing");
            // Its release does not end the new holder's lease either.
            a.release(old).await;
            assert!(matches!(
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));

            // The holder's own writes stand; its release makes the message free again.
            m.attempts = 1;
            b.record(&new, &m).await.unwrap();
            b.release(new).await;
            let Taken::Leased(again, m2) =
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("released");
            };
            assert_eq!(m2.attempts, 1);
            assert_eq!(m2.recipients[0].state, RecipientState::Delivered);
            assert_eq!(m2.recipients[1].state, RecipientState::Pending);

            // Finishing one of two messages that share a body keeps the body.
            a.complete(again, None).await.unwrap();
            assert_eq!(count(pg, "jes_bodies"), 1);
            let Taken::Leased(last, _) =
                b.take(&twin, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("leased");
            };
            b.complete(last, None).await.unwrap();
            assert_eq!(count(pg, "jes_bodies"), 0);
            assert_eq!(count(pg, "jes_queue"), 0);
        },
    );
}

#[test]
fn a_message_kept_as_failed_is_gone_to_a_claim() {
    on_database(
        "a_message_kept_as_failed_is_gone_to_a_claim",
        async |pg, dir| {
            let (a, b) = two_queues(pg, dir);
            let id = enqueue(&a, "Subject: bounce\r\n\r\nx\r\n").await;
            let Taken::Leased(lease, mut m) =
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("leased");
            };
            for r in &mut m.recipients {
                r.state = RecipientState::Failed;
            }
            a.complete(lease, Some(&m)).await.unwrap();
            assert_eq!(
                pg.psql("jes", "SELECT failed, lease_owner IS NULL FROM jes_queue"),
                "t|t"
            );
            assert!(matches!(
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Gone
            ));
        },
    );
}

#[test]
fn racing_claims_of_two_servers_lease_each_message_once() {
    on_database(
        "racing_claims_of_two_servers_lease_each_message_once",
        async |pg, dir| {
            let (a, b) = two_queues(pg, dir);
            let (a, b) = (Arc::new(a), Arc::new(b));
            let mut ids = Vec::new();
            for i in 0..40 {
                ids.push(enqueue(&a, &format!("Subject: {i}\r\n\r\nx\r\n")).await);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for id in &ids {
                for (q, who) in [(a.clone(), "a:1"), (b.clone(), "b:2")] {
                    let id = id.clone();
                    tasks.spawn(async move {
                        let taken = q.take(&id, who, Duration::from_secs(60)).await.unwrap();
                        (id, matches!(taken, Taken::Leased(..)))
                    });
                }
            }
            let mut leased = std::collections::HashMap::new();
            while let Some(done) = tasks.join_next().await {
                let (id, won) = done.unwrap();
                *leased.entry(id).or_insert(0) += u32::from(won);
            }
            assert_eq!(leased.len(), ids.len());
            for (id, n) in leased {
                assert_eq!(n, 1, "{id} was leased {n} times");
            }
        },
    );
}

/// Each write to the queue's tables, with the `synchronous_commit` its transaction commits under,
/// as a trigger saw it at the end of the statement (so after the statement's own `set_config`).
fn commits(pg: &Postgres) -> String {
    pg.psql(
        "jes",
        "SELECT string_agg(what || ' ' || sync, ', ' ORDER BY n) FROM commits",
    )
}

#[test]
fn stores_and_claims_wait_for_the_wal_and_finishes_and_releases_do_not() {
    on_database_with(
        "stores_and_claims_wait_for_the_wal_and_finishes_and_releases_do_not",
        Options {
            durable: true,
            ..Options::default()
        },
        async |pg, dir| {
            let (a, b) = two_queues(pg, dir);
            let _ = a.arrivals().await.unwrap(); // makes the schema
            pg.psql(
                "jes",
                "CREATE TABLE commits (n serial, what text, sync text); \
             CREATE FUNCTION seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO commits (what, sync) VALUES \
             (TG_TABLE_NAME || ' ' || lower(TG_OP), current_setting('synchronous_commit')); \
             RETURN NULL; END $$; \
             CREATE TRIGGER seen AFTER INSERT OR UPDATE OR DELETE ON jes_queue \
             FOR EACH ROW EXECUTE FUNCTION seen(); \
             CREATE TRIGGER seen AFTER DELETE ON jes_bodies FOR EACH ROW EXECUTE FUNCTION seen()",
            );
            let id = enqueue(&a, "Subject: durable\r\n\r\nx\r\n").await;
            assert_eq!(commits(pg), "jes_queue insert on");
            pg.psql("jes", "TRUNCATE commits");
            // Stored leased to this server's runner: as durable.
            let rcpt = ["one@remote.test".to_string()];
            let msg = Arc::new(b"Subject: mine\r\n\r\nx\r\n".to_vec());
            let mine = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpt, &Dsn::default(), msg)
                .await
                .unwrap();
            assert_eq!(commits(pg), "jes_queue insert on");
            a.withdraw(&mine).await.unwrap();
            pg.psql("jes", "TRUNCATE commits");

            let Taken::Leased(lease, _) =
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("leased");
            };
            assert_eq!(commits(pg), "jes_queue update on", "the claim is durable");
            pg.psql("jes", "TRUNCATE commits");
            b.release(lease).await;
            assert_eq!(commits(pg), "jes_queue update off", "a release need not be");
            pg.psql("jes", "TRUNCATE commits");

            let Taken::Leased(lease, _) =
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("leased");
            };
            pg.psql("jes", "TRUNCATE commits");
            b.complete(lease, None).await.unwrap();
            assert_eq!(
                commits(pg),
                "jes_queue delete off, jes_bodies delete off",
                "neither the removal of a finished message nor its body's need be"
            );
            // And the session's own setting is untouched for the next user of the connection.
            let id = enqueue(&b, "Subject: durable again\r\n\r\nx\r\n").await;
            assert!(
                commits(pg).ends_with("jes_queue insert on"),
                "{}",
                commits(pg)
            );
            assert_eq!(count(pg, "jes_queue"), 1, "{id}");
        },
    );
}

#[test]
fn a_message_stored_for_this_servers_runner_is_leased_to_it_from_the_start() {
    on_database(
        "a_message_stored_for_this_servers_runner_is_leased_to_it_from_the_start",
        async |pg, dir| {
            // A short lease, so that a message kept past half of it can be seen claimed anew.
            let short = |me: &str| {
                let settings = Settings {
                    url: pg.url("jes"),
                    password_file: Some(pg.password_file(dir)),
                    max_connections: 4,
                    lease: Duration::from_secs(2),
                    sweep: Duration::from_secs(300),
                };
                PgQueue::for_tool(Database::open(&settings).unwrap(), me.into())
            };
            let (a, b) = (short("a:1"), short("b:2"));
            let rcpts = ["one@remote.test".to_string(), "Two@Remote.test".to_string()];
            let dsn = Dsn {
                message: MessageDsn {
                    ret: Some(Ret::Full),
                    envid: Some("e1".into()),
                },
                recipients: vec![(
                    "Two@Remote.test".into(),
                    RecipientDsn {
                        notify: Notify::parse("NEVER"),
                        orcpt: Some("rfc822;two@remote.test".into()),
                    },
                )],
            };
            let body = Arc::new(b"Subject: mine\r\n\r\nx\r\n".to_vec());
            let id = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpts, &dsn, body.clone())
                .await
                .unwrap();
            assert_eq!(
                pg.psql(
                    "jes",
                    &format!("SELECT lease_owner FROM jes_queue WHERE id = '{id}'")
                ),
                "a:1",
                "leased to the server that stored it"
            );
            // Nobody else may take it; the stored message is what its own take hands out.
            assert!(matches!(
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));
            let stored = b.load(&id).await.unwrap();
            let Taken::Leased(lease, m) =
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("its own runner takes it");
            };
            assert_eq!(m, stored, "as the database has it");
            assert_eq!(
                pg.psql(
                    "jes",
                    &format!("SELECT lease_token FROM jes_queue WHERE id = '{id}'")
                ),
                lease.token.to_string()
            );
            // Its lease is renewed like any other: still held after the 2 s lease.
            std::thread::sleep(Duration::from_millis(2500));
            assert!(matches!(
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));
            a.complete(lease, None).await.unwrap();
            assert_eq!(count(pg, "jes_queue"), 0);
            assert_eq!(count(pg, "jes_bodies"), 0);

            // Taken back before the runner had it (the mailbox copies failed): gone, body too.
            let id = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpts, &dsn, body.clone())
                .await
                .unwrap();
            a.withdraw(&id).await.unwrap();
            assert_eq!(count(pg, "jes_queue"), 0);
            assert_eq!(count(pg, "jes_bodies"), 0);
            assert!(matches!(
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap(),
                Taken::Gone
            ));

            // Kept past half its lease: released and claimed anew, under a new token.
            let id = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpts, &dsn, body.clone())
                .await
                .unwrap();
            let first: u64 = pg
                .psql(
                    "jes",
                    &format!("SELECT lease_token FROM jes_queue WHERE id = '{id}'"),
                )
                .parse()
                .unwrap();
            std::thread::sleep(Duration::from_millis(1200));
            let Taken::Leased(lease, m) =
                a.take(&id, "a:1", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("claimed anew");
            };
            assert!(lease.token > first, "{} after {first}", lease.token);
            assert_eq!(m.recipients.len(), 2);
            a.complete(lease, None).await.unwrap();
            assert_eq!(count(pg, "jes_queue"), 0);

            // A busy runner (it has not come to the message in half a lease): the next message A
            // stores gives the kept one back, and another server may take it at once.
            let kept = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpts, &dsn, body.clone())
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(1200));
            assert!(matches!(
                b.take(&kept, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));
            let next = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpts, &dsn, body.clone())
                .await
                .unwrap();
            let Taken::Leased(lease, _) =
                b.take(&kept, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("the kept message is given back to the other servers");
            };
            b.complete(lease, None).await.unwrap();
            // A's own runner then finds it gone, and still has the next one.
            assert!(matches!(
                a.take(&kept, "a:1", Duration::from_secs(60)).await.unwrap(),
                Taken::Gone
            ));
            let Taken::Leased(lease, _) =
                a.take(&next, "a:1", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("the next one is still A's");
            };
            a.complete(lease, None).await.unwrap();
            assert_eq!(count(pg, "jes_queue"), 0);

            // A stops with a message kept for its runner: given back at once, not when its lease
            // runs out.
            let kept = a
                .enqueue_for_attempt("", "app@tracker.test", &rcpts, &dsn, body.clone())
                .await
                .unwrap();
            assert!(matches!(
                b.take(&kept, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));
            a.stop().await;
            let Taken::Leased(lease, _) =
                b.take(&kept, "b:2", Duration::from_secs(60)).await.unwrap()
            else {
                panic!("given back at the stop");
            };
            b.complete(lease, None).await.unwrap();
            assert_eq!(count(pg, "jes_queue"), 0);
        },
    );
}

/// A lease is renewed while its holder lives, but for no longer than the take's `ttl` (an
/// attempt's bound): a holder that died without ending it (a panicked attempt) must not keep the
/// message from every server until a restart.
#[test]
fn a_lease_is_renewed_for_the_takes_ttl_and_no_longer() {
    on_database(
        "a_lease_is_renewed_for_the_takes_ttl_and_no_longer",
        async |pg, dir| {
            let lease = Duration::from_secs(2);
            let a = PgQueue::for_tool(database_leasing(pg, dir, lease), "a:1".into());
            let b = PgQueue::for_tool(database_leasing(pg, dir, lease), "b:2".into());
            let id = enqueue(&a, "Subject: held\r\n\r\nx\r\n").await;
            // Taken for 5 s and never ended: renewed past the 2 s lease while within the 5 s...
            let Taken::Leased(_held, _) = a.take(&id, "a:1", Duration::from_secs(5)).await.unwrap()
            else {
                panic!("leased");
            };
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert!(matches!(
                b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap(),
                Taken::Busy
            ));
            // ... and free once the last renewal (at most 5 s after the take) has run out.
            let started = std::time::Instant::now();
            let taken = loop {
                match b.take(&id, "b:2", Duration::from_secs(60)).await.unwrap() {
                    Taken::Leased(lease, _) => break Some(lease),
                    _ if started.elapsed() > Duration::from_secs(10) => break None,
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            assert!(taken.is_some(), "still held 14 s after a take for 5 s");
        },
    );
}
