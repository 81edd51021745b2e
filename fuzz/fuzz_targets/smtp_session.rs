//! The SMTP session on arbitrary bytes split at arbitrary points, STARTTLS and AUTH included.
//! What `src/smtp/tests_prop.rs` asserts: no panic, the driver contract holds (checked by the
//! driver), the unconsumed remainder stays below one line (512 octets, 12,288 while an AUTH line
//! may be under way); and without a certificate (STARTTLS only refused) the replies, Stores,
//! logins and leftover input do not depend on how the input is split into reads.
#![no_main]

use jes::smtp::{MAX_AUTH_LINE, MAX_COMMAND_LINE};
use jes_fuzz::smtp::{params_from, Driver};
use jes_fuzz::{contains_ci, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let Some(input) = Input::new(raw) else { return };
    let p = params_from(&input);
    let tls_ok = input.flag(7);

    // With whatever the switches say, STARTTLS handshakes succeeding or failing.
    let d = Driver::run(p.clone(), tls_ok, &input.chunks());
    assert!(d.max_buffer < MAX_AUTH_LINE, "held {} octets", d.max_buffer);
    if !contains_ci(input.data, b"AUTH") {
        assert!(
            d.max_buffer < MAX_COMMAND_LINE,
            "held {} octets",
            d.max_buffer
        );
    }

    // Without a certificate, the split must not matter.
    let mut p = p;
    p.conn.tls_available = false;
    let whole = Driver::run(p.clone(), tls_ok, &[input.data]);
    let split = Driver::run(p, tls_ok, &input.chunks());
    assert_eq!(whole.log, split.log);
    assert_eq!(whole.closed, split.closed);
    assert_eq!(
        whole.session.authenticated_user(),
        split.session.authenticated_user()
    );
    if !whole.closed {
        assert_eq!(whole.buf, split.buf);
    }
});
