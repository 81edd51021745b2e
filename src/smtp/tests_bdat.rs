//! Unit tests of BDAT (CHUNKING, RFC 3030): chunks are taken whole whatever they hold, stored in the
//! same wire form as DATA, refused chunks are still read to their end, and limits are answered at
//! the chunk that crosses them. Every case is also fed one byte at a time.

use super::tests::{ehloed, params, Driver};
use super::*;

const START: &[u8] = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n";

/// Feeds `input` after EHLO in one piece and byte by byte; both runs must agree.
fn run_as(p: SessionParams, input: &[u8]) -> Driver {
    let fresh = || {
        let mut d = Driver::new(p.clone());
        d.feed(b"EHLO client.test\r\n");
        d
    };
    let mut whole = fresh();
    whole.feed(input);
    let mut bytes = fresh();
    for b in input {
        bytes.feed(&[*b]);
    }
    assert_eq!(whole.log, bytes.log, "split reads changed the outcome");
    whole
}

fn run(input: &[u8]) -> Driver {
    run_as(params(), input)
}

/// Replies after the greeting and EHLO.
fn replies(d: &Driver) -> Vec<String> {
    d.replies().split_off(2)
}

fn stored(d: &Driver) -> Vec<Vec<u8>> {
    d.stores().iter().map(|e| e.data.clone()).collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn chunks_make_one_message_in_wire_form() {
    let d = run(&cat(&[
        START,
        b"BDAT 12\r\nSubject: x\r\n",
        b"BDAT 12\r\n\r\n.line\r\n.\r\n",
        b"BDAT 6 LAST\r\nQUIT\r\n",
        b"NOOP\r\n",
    ]));
    assert_eq!(
        replies(&d),
        [
            "250 2.1.0 OK\r\n",
            "250 2.1.5 OK\r\n",
            "250 2.0.0 12 octets received\r\n",
            "250 2.0.0 12 octets received\r\n",
            "250 2.0.0 OK queued as Q1\r\n",
            "250 2.0.0 OK\r\n",
        ]
    );
    // Dot-stuffed as DATA stores it; `.` CRLF and QUIT inside a chunk are content.
    assert_eq!(
        stored(&d),
        [b"Subject: x\r\n\r\n..line\r\n..\r\nQUIT\r\n".to_vec()]
    );
    assert!(!d.closed);
}

#[test]
fn same_bytes_as_data() {
    let message = b"From: a@b.test\r\n\r\n.hidden\r\nbody\r\n..two\r\n";
    let mut data = cat(&[START, b"DATA\r\n"]);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    data.extend_from_slice(b".\r\n");
    let by_data = run(&data);
    let by_bdat = run(&cat(&[
        START,
        format!("BDAT {} LAST\r\n", message.len()).as_bytes(),
        message,
    ]));
    assert_eq!(stored(&by_data), stored(&by_bdat));
    assert_eq!(stored(&by_bdat).len(), 1);
}

#[test]
fn bdat_0_last_ends_the_message() {
    let d = run(&cat(&[START, b"BDAT 3\r\nab\n", b"BDAT 0 LAST\r\n"]));
    assert_eq!(stored(&d), [b"ab\r\n".to_vec()]);
    let d = run(&cat(&[START, b"BDAT 0 LAST\r\n"]));
    assert_eq!(stored(&d), [Vec::<u8>::new()]);
    assert!(d.last().starts_with("250 2.0.0 OK queued"));
}

#[test]
fn refused_chunks_are_read_to_their_end() {
    // No MAIL: 503, a bad command; the chunk (which reads like commands) is not run.
    let d = run(b"BDAT 22\r\nRCPT TO:<c@d.test>\r\nxxNOOP\r\n");
    assert_eq!(
        replies(&d),
        ["503 5.5.1 Error: need MAIL command\r\n", "250 2.0.0 OK\r\n"]
    );
    // No recipient accepted: 554, as for DATA.
    let d =
        run(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<nobody@d.test>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(
        &replies(&d)[2..],
        [
            "554 5.5.1 Error: no valid recipients\r\n",
            "250 2.0.0 OK\r\n"
        ]
    );
    assert!(d.stores().is_empty() && !d.closed);
}

#[test]
fn unreadable_length_closes_the_session() {
    for bad in [
        "BDAT\r\n",
        "BDAT x LAST\r\n",
        "BDAT 5 NOW\r\n",
        "BDAT -1\r\n",
    ] {
        let d = run(&cat(&[START, bad.as_bytes(), b"NOOP\r\n"]));
        assert_eq!(
            &replies(&d)[2..],
            [
                "501 5.5.4 Syntax: BDAT size [LAST]\r\n",
                "421 4.5.0 Chunk length unknown, closing\r\n"
            ],
            "{bad}"
        );
        assert!(d.closed);
    }
}

#[test]
fn size_limit_is_answered_at_the_chunk_that_crosses_it() {
    let p = SessionParams {
        max_message_size: 10,
        ..params()
    };
    let d = run_as(
        p,
        &cat(&[
            START,
            b"BDAT 8\r\n12345678",
            b"BDAT 8\r\n12345678",
            b"BDAT 2\r\nab",
            b"BDAT 3 LAST\r\nabc",
            b"BDAT 1 LAST\r\nz",
            b"NOOP\r\n",
        ]),
    );
    assert_eq!(
        &replies(&d)[2..],
        [
            "250 2.0.0 8 octets received\r\n",
            "552 5.3.4 Message size exceeds fixed limit\r\n",
            // Pipelined behind the refusal, up to its LAST: 503 without counting as errors.
            "503 5.5.1 Error: transaction already failed, send RSET\r\n",
            "503 5.5.1 Error: transaction already failed, send RSET\r\n",
            // After LAST, a BDAT is out of any transaction again.
            "503 5.5.1 Error: need MAIL command\r\n",
            "250 2.0.0 OK\r\n",
        ]
    );
    assert!(d.stores().is_empty());
    let refused: Vec<_> = d
        .log
        .iter()
        .filter(|o| matches!(o, Output::Refused { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "the recipient is refused once");
    // Exactly at the limit is fine, as for DATA.
    let d = run_as(
        SessionParams {
            max_message_size: 10,
            ..params()
        },
        &cat(&[START, b"BDAT 10 LAST\r\n1234567890"]),
    );
    assert_eq!(stored(&d), [b"1234567890".to_vec()]);
}

#[test]
fn rset_clears_a_failed_transaction() {
    let p = SessionParams {
        max_message_size: 4,
        ..params()
    };
    let d = run_as(
        p,
        &cat(&[
            START,
            b"BDAT 5\r\n12345",
            b"RSET\r\n",
            START,
            b"BDAT 2 LAST\r\nok",
        ]),
    );
    assert_eq!(stored(&d), [b"ok".to_vec()]);
}

#[test]
fn data_and_bdat_do_not_mix() {
    let d = run(&cat(&[START, b"BDAT 2\r\nab", b"DATA\r\n"]));
    assert_eq!(d.last(), "503 5.5.1 Error: DATA after BDAT\r\n");
    let d = run(b"MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
    assert_eq!(d.last(), "503 5.5.1 Error: BODY=BINARYMIME needs BDAT\r\n");
}

#[test]
fn binarymime_keeps_bare_line_ends_and_stuffs_after_any_lf() {
    let content = b"H: v\r\n\r\n\x00\r\x01\n.x\r\n\xff";
    let d = run(&cat(&[
        b"MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\n",
        format!("BDAT {} LAST\r\n", content.len()).as_bytes(),
        content,
    ]));
    assert_eq!(
        stored(&d),
        [b"H: v\r\n\r\n\x00\r\x01\n..x\r\n\xff".to_vec()]
    );
}

#[test]
fn bare_line_ends_follow_smtp_barelf_as_for_data() {
    // normalize: a bare LF ends a line (CRLF); a bare CR refuses the message.
    let d = run(&cat(&[START, b"BDAT 6 LAST\r\na\n.\nb\n"]));
    assert_eq!(stored(&d), [b"a\r\n..\r\nb\r\n".to_vec()]);
    let d = run(&cat(&[START, b"BDAT 3 LAST\r\na\rb"]));
    assert!(d.last().starts_with("550 5.6.11"), "{}", d.last());
    let p = SessionParams {
        normalize_bare_lf: false,
        ..params()
    };
    let d = run_as(p, &cat(&[START, b"BDAT 2 LAST\r\na\n"]));
    assert!(d.last().starts_with("550 5.6.11"), "{}", d.last());
}

#[test]
fn is_in_data_inside_a_chunk() {
    let mut d = ehloed();
    d.feed(START);
    d.feed(b"BDAT 4\r\nab");
    assert!(d.session.is_in_data());
    d.feed(b"cd");
    assert!(!d.session.is_in_data());
    assert_eq!(d.last(), "250 2.0.0 4 octets received\r\n");
}
