//! The POP3 session on arbitrary bytes split at arbitrary points (STLS, USER/PASS and AUTH
//! PLAIN included). What `src/pop3/tests.rs` asserts: no panic, the driver contract holds
//! (checked by the backend), the buffer stays below one AUTH line; STLS is accepted at most once,
//! right after `+OK Begin TLS negotiation` and never on an encrypted connection; and without a
//! certificate the client's view and the actions do not depend on how the input is split.
#![no_main]

use jes::pop3::{SessionParams, MAX_AUTH_LINE};
use jes_fuzz::pop3::{params_from, Backend, BEGIN_TLS};
use jes_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let Some(input) = Input::new(raw) else { return };
    let p = params_from(&input);
    let tls_ok = input.flag(3);
    let variant = input.flags >> 4;

    let mut b = Backend::new(p.clone(), tls_ok, variant);
    b.run(&input.chunks());
    assert!(
        b.max_buffer < MAX_AUTH_LINE,
        "buffer grew to {}",
        b.max_buffer
    );
    assert!(
        b.tls_at.len() <= 1,
        "STLS accepted {} times",
        b.tls_at.len()
    );
    for &at in &b.tls_at {
        assert!(b.replies[..at].ends_with(BEGIN_TLS));
        assert!(!p.encrypted && p.tls_available);
    }

    let p = SessionParams {
        tls_available: false,
        ..p
    };
    let mut whole = Backend::new(p.clone(), tls_ok, variant);
    let expected = whole.run(&[input.data]);
    let mut split = Backend::new(p, tls_ok, variant);
    assert_eq!(split.run(&input.chunks()), expected);
    assert_eq!(split.actions, whole.actions);
});
