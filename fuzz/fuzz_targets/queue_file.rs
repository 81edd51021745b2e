//! The queue-file reader on arbitrary bytes, both formats (JES 1.0 `1.0` files and jes's
//! `jes-queue 1`). What `src/queue/prop_tests.rs` asserts: no panic, and a refusal names a line the
//! file has (or the one after its end) with a reason; and what the reader accepts, written back
//! by `format` (if its addresses pass `check_address`, as `Spool::save` requires), reads back
//! as the same message (error texts kept to one line), so a retry never changes whom a message
//! goes to.
#![no_main]

use jes::queue::{check_address, format, parse, QueuedMessage};
use libfuzzer_sys::fuzz_target;

fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

/// What the writer promises to keep of an error: one line, trimmed, absent when empty.
fn as_written(mut m: QueuedMessage) -> QueuedMessage {
    for r in &mut m.recipients {
        r.last_error = r
            .last_error
            .as_deref()
            .map(|e| {
                e.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .filter(|e| !e.is_empty());
    }
    m
}

fuzz_target!(|bytes: &[u8]| {
    match parse("123", bytes) {
        Err(e) => {
            assert!(e.line >= 1 && e.line <= line_count(bytes) + 1, "{e:?}");
            assert!(!e.reason.is_empty());
        }
        Ok(m) => {
            assert_eq!(m.id, "123");
            // What the writer's callers check (`Spool::save`): a message that passes is
            // written; one that does not is refused, never mangled.
            let writable = check_address(&m.sender, true).is_ok()
                && m.recipients
                    .iter()
                    .all(|r| check_address(&r.address, false).is_ok());
            if writable {
                let written = format(&m);
                let back = parse("123", &written)
                    .unwrap_or_else(|e| panic!("{e:?}: {:?}", String::from_utf8_lossy(&written)));
                assert_eq!(
                    back,
                    as_written(m),
                    "{:?}",
                    String::from_utf8_lossy(&written)
                );
                assert_eq!(format(&back), written);
            }
        }
    }
});
