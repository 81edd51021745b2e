//! Property tests. Byte-level state machines fail at the edges that hand-picked examples miss: a
//! CR at the end of one read and the LF at the start of the next, a dot at a chunk boundary, an
//! over-long line ending exactly at 512 octets. So: random input must never panic nor make the
//! driver hold more than a line's worth (512 octets, or 12,288 for AUTH), and replies must not
//! depend on how input is split. STARTTLS is the one command whose effect does depend on the
//! split, on purpose (what came in the same read is thrown away), so the split tests run without
//! a certificate, where STARTTLS is only refused; a separate test covers AUTH transcripts.

use super::tests::{params, with_conn, Driver, PASSWORD, USER};
use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proptest::prelude::*;

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// AUTH exchanges, right and wrong, and the base64 lines inside them.
fn auth_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(format!("AUTH PLAIN {}\r\n", b64(&format!("\0{USER}\0{PASSWORD}")))),
        2 => Just(format!("AUTH PLAIN {}\r\n", b64(&format!("\0{USER}\0nope")))),
        1 => Just(format!("AUTH PLAIN {}\r\n", b64(&format!("bob\0{USER}\0{PASSWORD}")))),
        2 => Just("AUTH PLAIN\r\n".to_string()),
        2 => Just(format!("{}\r\n", b64(&format!("{USER}\0{USER}\0{PASSWORD}")))),
        2 => Just("AUTH LOGIN\r\n".to_string()),
        1 => Just(format!("auth login {}\r\n", b64(USER))),
        2 => Just(format!("{}\r\n", b64(USER))),
        2 => Just(format!("{}\r\n", b64(PASSWORD))),
        1 => Just(format!("{}\r\n", b64("wrong"))),
        1 => Just("*\r\n".to_string()),
        1 => Just("AUTH CRAM-MD5\r\n".to_string()),
        1 => Just("AUTH PLAIN =\r\n".to_string()),
        1 => Just("AUTH\r\n".to_string()),
        1 => Just("MAIL FROM:<alice@D.test>\r\n".to_string()),
        1 => Just("STARTTLS\r\n".to_string()),
        1 => Just("Subject: hi\r\n".to_string()),
    ]
    .prop_map(String::into_bytes)
}

/// An over-long AUTH line, or base64 that may be cut anywhere.
fn odd_auth_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (12000usize..12400).prop_map(|n| {
            let mut v = b"AUTH PLAIN ".to_vec();
            v.extend(std::iter::repeat_n(b'Q', n));
            v
        }),
        (12270usize..12300).prop_map(|n| vec![b'Q'; n]),
        proptest::collection::vec(
            prop_oneof![Just(b'A'), Just(b'='), Just(b'/'), Just(b' ')],
            0..40
        ),
    ]
}

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
        2 => (0u64..40, any::<bool>()).prop_map(|(n, last)| {
            format!("BDAT {n}{}\r\n", if last { " LAST" } else { "" }).into_bytes()
        }),
        1 => Just(b"MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n".to_vec()),
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
        6 => auth_piece(),
        1 => odd_auth_piece(),
    ]
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(piece(), 0..40).prop_map(|p| p.concat()),
        proptest::collection::vec(any::<u8>(), 0..2000),
    ]
}

fn session_params() -> impl Strategy<Value = SessionParams> {
    (
        prop_oneof![Just(0u64), Just(40), Just(5000)],
        prop_oneof![Just(0u64), Just(30), Just(DEFAULT_MAX_HEADER_SIZE)],
        any::<[bool; 7]>(),
    )
        .prop_map(|(max, max_header, flags)| {
            let p = SessionParams {
                max_message_size: max,
                max_header_size: max_header,
                trusted: flags[0],
                submission: flags[4],
                require_sender_match: flags[5],
                normalize_bare_lf: flags[6],
                ..params()
            };
            with_conn(p, |c| {
                c.tls_available = flags[1];
                c.encrypted = flags[2];
                c.clear_text_allowed = flags[3];
            })
        })
}

/// Session parameters for the split tests: no certificate, so STARTTLS is only refused.
fn split_params() -> impl Strategy<Value = SessionParams> {
    session_params().prop_map(|p| with_conn(p, |c| c.tls_available = false))
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
    run_tls(p, true, parts)
}

fn run_tls(p: &SessionParams, tls_ok: bool, parts: &[&[u8]]) -> Driver {
    let mut d = Driver::new(p.clone());
    d.tls_ok = tls_ok;
    for part in parts {
        d.feed(part);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10000))]

    /// Arbitrary input (STARTTLS, with handshakes that succeed or fail, and AUTH included) never
    /// panics, and the unconsumed remainder stays below one line: 512 octets, or 12,288 when an
    /// AUTH line may be under way.
    #[test]
    fn never_panics_and_buffer_stays_small(
        p in session_params(),
        tls_ok in any::<bool>(),
        data in input(),
        sizes in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let d = run_tls(&p, tls_ok, &chunks(&data, &sizes));
        prop_assert!(d.max_buffer < MAX_AUTH_LINE, "held {} octets", d.max_buffer);
        let auth_free = !data.windows(4).any(|w| w.eq_ignore_ascii_case(b"AUTH"));
        if auth_free {
            prop_assert!(d.max_buffer < MAX_COMMAND_LINE, "held {} octets", d.max_buffer);
        }
    }

    /// The same AUTH transcript gives the same replies, logins and Stores however it is split.
    #[test]
    fn auth_split_does_not_matter(
        p in split_params(),
        pieces in proptest::collection::vec(
            prop_oneof![
                6 => auth_piece(),
                1 => odd_auth_piece(),
                1 => Just(b"MAIL FROM:<a@b.test>\r\n".to_vec()),
                1 => Just(b"RCPT TO:<c@d.test>\r\n".to_vec()),
                1 => Just(b"DATA\r\n".to_vec()),
                1 => Just(b"\r\n".to_vec()),
                1 => Just(b".\r\n".to_vec()),
                1 => Just(b"RSET\r\n".to_vec()),
            ],
            0..30,
        ),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let mut data = b"EHLO c.test\r\n".to_vec();
        data.extend(pieces.concat());
        let whole = run(&p, &[&data]);
        let split = run(&p, &chunks(&data, &sizes));
        prop_assert_eq!(&whole.log, &split.log);
        prop_assert_eq!(whole.closed, split.closed);
        prop_assert_eq!(whole.session.authenticated_user(), split.session.authenticated_user());
        if !whole.closed {
            prop_assert_eq!(&whole.buf, &split.buf);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The same bytes give the same replies and Stores however they are split.
    #[test]
    fn split_does_not_matter(
        p in split_params(),
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

    /// `smtp.barelf=normalize`: lines ended by CRLF or a bare LF at random are stored with CRLF
    /// and otherwise exactly as sent, one message per DATA. A `.` CRLF right after a bare LF is
    /// content (stored `..`), so only the next `.` CRLF ends the message.
    #[test]
    fn bare_lf_lines_are_stored_with_crlf(
        bodies in proptest::collection::vec(
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just(b"".to_vec()),
                        Just(b".".to_vec()),
                        Just(b"..".to_vec()),
                        Just(b"MAIL FROM:<e@x.test>".to_vec()),
                        proptest::collection::vec(
                            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
                            0..100,
                        ),
                    ],
                    any::<bool>(),
                ),
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
            let mut stored = Vec::new();
            let mut after_lf = false;
            for (line, bare_lf) in lines {
                if line.first() == Some(&b'.') {
                    transcript.push(b'.');
                    stored.push(b'.');
                }
                transcript.extend_from_slice(line);
                stored.extend_from_slice(line);
                transcript.extend_from_slice(if *bare_lf { b"\n" } else { b"\r\n" });
                stored.extend_from_slice(b"\r\n");
                after_lf = *bare_lf;
            }
            if after_lf {
                transcript.extend_from_slice(b".\r\n");
                stored.extend_from_slice(b"..\r\n");
            }
            transcript.extend_from_slice(b".\r\n");
            expected.push(stored);
        }
        transcript.extend_from_slice(b"QUIT\r\n");
        let whole = run(&params(), &[&transcript]);
        let split = run(&params(), &chunks(&transcript, &sizes));
        prop_assert_eq!(&whole.log, &split.log);
        let stored: Vec<Vec<u8>> = whole.stores().iter().map(|e| e.data.clone()).collect();
        prop_assert_eq!(stored, expected);
        prop_assert!(whole.closed && whole.buf.is_empty());
    }

    /// BDAT (RFC 3030): a message cut into chunks at random boundaries (empty chunks, and
    /// `BDAT 0 LAST` at the end, included) is stored with exactly the bytes DATA stores for it,
    /// however the input is split into reads; the chunks' octets are never read as commands.
    #[test]
    fn bdat_stores_what_data_stores(
        lines in proptest::collection::vec(
            prop_oneof![
                Just(b"".to_vec()),
                Just(b".".to_vec()),
                Just(b"..".to_vec()),
                Just(b".x".to_vec()),
                Just(b"QUIT".to_vec()),
                Just(b"BDAT 1 LAST".to_vec()),
                proptest::collection::vec(
                    any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
                    0..100,
                ),
            ],
            0..16,
        ),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        zero_last in any::<bool>(),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let start: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n";
        let message: Vec<u8> = lines.iter().flat_map(|l| [l.as_slice(), b"\r\n"].concat()).collect();
        let mut by_data = [start, b"DATA\r\n"].concat();
        for line in &lines {
            if line.first() == Some(&b'.') {
                by_data.push(b'.');
            }
            by_data.extend_from_slice(line);
            by_data.extend_from_slice(b"\r\n");
        }
        by_data.extend_from_slice(b".\r\nQUIT\r\n");
        let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(message.len() + 1)).collect();
        bounds.push(0);
        bounds.push(message.len());
        bounds.sort_unstable();
        let mut by_bdat = start.to_vec();
        for (i, pair) in bounds.windows(2).enumerate() {
            let chunk = &message[pair[0]..pair[1]];
            let last = i + 2 == bounds.len() && !zero_last;
            let last = if last { " LAST" } else { "" };
            by_bdat.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
            by_bdat.extend_from_slice(chunk);
        }
        if zero_last {
            by_bdat.extend_from_slice(b"BDAT 0 LAST\r\n");
        }
        by_bdat.extend_from_slice(b"QUIT\r\n");
        let data = run(&params(), &[&by_data]);
        let whole = run(&params(), &[&by_bdat]);
        let split = run(&params(), &chunks(&by_bdat, &sizes));
        prop_assert_eq!(&whole.log, &split.log);
        let stored = |d: &Driver| -> Vec<Vec<u8>> { d.stores().iter().map(|e| e.data.clone()).collect() };
        prop_assert_eq!(stored(&whole), stored(&data));
        prop_assert_eq!(stored(&whole).len(), 1);
        prop_assert!(whole.closed && whole.buf.is_empty());
    }
}
