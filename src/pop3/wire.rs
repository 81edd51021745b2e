//! How a stored message becomes a POP3 multi-line response: by the one rule of `stored_form`
//! (which also gives the size LIST announces), so no stored content can end a response early and
//! the size always matches what RETR sends.

use crate::stored_form::lines;

/// Appends the multi-line form of `stored` to `out`: every line CRLF-terminated and safe to send,
/// without the terminating `.` line. With `top = Some(k)` only the header section (up to and
/// including the first empty line) and the first `k` body lines are written (POP3 TOP).
pub fn encode(stored: &[u8], top: Option<usize>, out: &mut Vec<u8>) {
    out.reserve(stored.len() + stored.len() / 64 + 4);
    let mut in_body = false;
    let mut body_lines = 0usize;
    for line in lines(stored) {
        if in_body {
            if top.is_some_and(|k| body_lines >= k) {
                break;
            }
            body_lines += 1;
        }
        if line == b"." {
            out.extend_from_slice(b"..");
        } else {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\r\n");
        if !in_body && line.is_empty() {
            in_body = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored_form::{pop3_size as unstuffed_size, unstuff};
    use proptest::prelude::*;

    /// What a client does with a multi-line response body: read lines up to the lone `.`, remove
    /// one leading dot. Returns the message (CRLF ends) and the bytes left after the terminator.
    pub(crate) fn client_read(wire: &[u8]) -> (Vec<u8>, &[u8]) {
        let mut msg = Vec::new();
        let mut rest = wire;
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let line = &rest[..i];
            rest = &rest[i + 2..];
            if line == b"." {
                return (msg, rest);
            }
            msg.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            msg.extend_from_slice(b"\r\n");
        }
        panic!("no terminator in {:?}", String::from_utf8_lossy(wire));
    }

    fn send(stored: &[u8], top: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(stored, top, &mut out);
        out.extend_from_slice(b".\r\n");
        out
    }

    const FIXTURE: &[u8] = include_bytes!("testdata/pop6501300281251615158.jmsg");

    #[test]
    fn fixture_goes_out_unchanged_and_unstuffs_once() {
        let wire = send(FIXTURE, None);
        assert_eq!(&wire[..FIXTURE.len()], FIXTURE);
        assert_eq!(&wire[FIXTURE.len()..], b".\r\n");
        let (msg, rest) = client_read(&wire);
        assert!(rest.is_empty());
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(text.contains("\r\n.A line that starts with a dot\r\n"));
        assert!(!text.contains(".."));
        assert_eq!(unstuffed_size(FIXTURE), msg.len() as u64);
        assert_eq!(unstuffed_size(FIXTURE), FIXTURE.len() as u64 - 1);
    }

    #[test]
    fn odd_files_are_normalized() {
        assert_eq!(send(b"a\nb", None), b"a\r\nb\r\n.\r\n");
        assert_eq!(send(b"a\r\n.\r\nb\r\n", None), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(send(b".\n.", None), b"..\r\n..\r\n.\r\n");
        assert_eq!(send(b"", None), b".\r\n");
        assert_eq!(unstuffed_size(b""), 0);
        assert_eq!(unstuffed_size(b"a\nb"), 6);
        assert_eq!(unstuffed_size(b"x\r\n..y\r\n.\r\n"), 3 + 4 + 3);
        assert_eq!(unstuffed_size(b"abc"), 5);
    }

    #[test]
    fn top_cuts_after_header_and_k_lines() {
        let m = b"H: 1\r\nH: 2\r\n\r\nb1\r\n..b2\r\nb3\r\n";
        assert_eq!(send(m, Some(0)), b"H: 1\r\nH: 2\r\n\r\n.\r\n");
        assert_eq!(send(m, Some(2)), b"H: 1\r\nH: 2\r\n\r\nb1\r\n..b2\r\n.\r\n");
        assert_eq!(send(m, Some(99)), send(m, None));
        assert_eq!(send(b"H: 1\r\nH: 2", Some(0)), b"H: 1\r\nH: 2\r\n.\r\n");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn any_stored_bytes_round_trip_without_early_end(
            stored in prop::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..64),
            top in prop::option::of(0usize..4),
        ) {
            let wire = send(&stored, top);
            let (msg, rest) = client_read(&wire);
            prop_assert!(rest.is_empty(), "terminator came early");
            if top.is_none() {
                prop_assert_eq!(unstuffed_size(&stored), msg.len() as u64);
                prop_assert_eq!(&unstuff(&stored), &msg);
                prop_assert_eq!(msg.split(|&b| b == b'\n').count() - 1, lines(&stored).count());
            }
        }
    }
}
