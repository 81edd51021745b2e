//! Property tests. Byte-level state machines fail at the edges that hand-picked examples miss: a
//! CR at the end of one read and the LF at the start of the next, a dot at a chunk boundary, an
//! over-long line ending exactly at 512 octets. So: random input must never panic nor make the
//! driver hold more than a line's worth, and replies must not depend on how input is split.

use super::tests::{params, Driver};
use super::*;
use proptest::prelude::*;

/// Pieces that steer the session into every state, with noise in between.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(b"EHLO c.test\r\n".to_vec()),
        1 => Just(b"HELO c.test\r\n".to_vec()),
        3 => Just(b"MAIL FROM:<a@b.test>\r\n".to_vec()),
        1 => Just(b"MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n".to_vec()),
        3 => Just(b"RCPT TO:<c@d.test>\r\n".to_vec()),
        1 => Just(b"RCPT TO:<nobody@d.test>\r\n".to_vec()),
        1 => Just(b"RCPT TO:<postmaster>\r\n".to_vec()),
        4 => Just(b"DATA\r\n".to_vec()),
        4 => Just(b".\r\n".to_vec()),
        4 => Just(b"\r\n".to_vec()),
        2 => Just(b"\n".to_vec()),
        2 => Just(b"\r".to_vec()),
        2 => Just(b".".to_vec()),
        1 => Just(b"Received: x\r\n".to_vec()),
        1 => Just(b"RSET\r\n".to_vec()),
        1 => Just(b"NOOP\r\n".to_vec()),
        1 => Just(b"QUIT\r\n".to_vec()),
        1 => (500usize..530).prop_map(|n| vec![b'x'; n]),
        1 => (1000usize..3000).prop_map(|n| vec![b'.'; n]),
        4 => proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(piece(), 0..40).prop_map(|p| p.concat()),
        proptest::collection::vec(any::<u8>(), 0..2000),
    ]
}

fn session_params() -> impl Strategy<Value = SessionParams> {
    (prop_oneof![Just(0u64), Just(40), Just(5000)], any::<bool>()).prop_map(|(max, trusted)| {
        SessionParams {
            max_message_size: max,
            trusted,
            ..params()
        }
    })
}

/// Cuts `input` into chunks of the given sizes (cycled), the rest in one last chunk.
fn chunks<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(rest.len());
        let (a, b) = rest.split_at(n.clamp(1, rest.len()));
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

fn run(p: &SessionParams, parts: &[&[u8]]) -> Driver {
    let mut d = Driver::new(p.clone());
    for part in parts {
        d.feed(part);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10000))]

    /// Arbitrary input never panics, and the unconsumed remainder stays below one command line.
    #[test]
    fn never_panics_and_buffer_stays_small(
        p in session_params(),
        data in input(),
        sizes in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let d = run(&p, &chunks(&data, &sizes));
        prop_assert!(d.max_buffer < MAX_COMMAND_LINE, "held {} octets", d.max_buffer);
        prop_assert!(d.max_buffer <= 1024);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The same bytes give the same replies and Stores however they are split.
    #[test]
    fn split_does_not_matter(
        p in session_params(),
        data in input(),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let whole = run(&p, &[&data]);
        let split = run(&p, &chunks(&data, &sizes));
        prop_assert_eq!(&whole.log, &split.log);
        prop_assert_eq!(whole.closed, split.closed);
        if !whole.closed {
            prop_assert_eq!(&whole.buf, &split.buf);
        }
    }

    /// A valid transcript of messages with arbitrary (dot-stuffed, CRLF) bodies stores every
    /// message exactly as sent, however the input is split.
    #[test]
    fn valid_transcript_stores_bodies_exactly(
        bodies in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    Just(b"".to_vec()),
                    Just(b".".to_vec()),
                    Just(b"..".to_vec()),
                    Just(b".x".to_vec()),
                    proptest::collection::vec(
                        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
                        0..200,
                    ),
                ],
                0..12,
            ),
            1..4,
        ),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut transcript = b"EHLO c.test\r\n".to_vec();
        let mut expected = Vec::new();
        for lines in &bodies {
            transcript.extend_from_slice(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
            let mut wire = Vec::new();
            for line in lines {
                if line.first() == Some(&b'.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line);
                wire.extend_from_slice(b"\r\n");
            }
            transcript.extend_from_slice(&wire);
            transcript.extend_from_slice(b".\r\n");
            expected.push(wire);
        }
        transcript.extend_from_slice(b"QUIT\r\n");
        let whole = run(&params(), &[&transcript]);
        let split = run(&params(), &chunks(&transcript, &sizes));
        prop_assert_eq!(&whole.log, &split.log);
        let stored: Vec<Vec<u8>> = whole.stores().iter().map(|e| e.data.clone()).collect();
        prop_assert_eq!(stored, expected);
        prop_assert!(whole.closed && whole.buf.is_empty());
    }
}
