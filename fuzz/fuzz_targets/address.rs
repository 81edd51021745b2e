//! The address parsers: `address::mailbox_dir_name` (the single gate from an address to a
//! folder name) and the SMTP path parser behind MAIL FROM and RCPT TO.
//! What `src/address.rs`'s property tests assert: a name that passes is one plain path component
//! of printable ASCII without quotes, slashes or capitals (plus, in the local part of a UTF-8
//! address, Unicode that is not `unsafe_in_name`; its domain is always ASCII), cannot climb out of
//! `users/`, is its own canonical form and the same for any case of the address; anything else is
//! refused for every case. What `src/queue/prop_tests.rs` asserts of SMTP: every address the SMTP
//! parser accepts (with SMTPUTF8, so UTF-8 ones too) is written to a queue file and read back
//! unchanged.
#![no_main]

use std::path::{Component, Path};

use jes::address::{
    canonical, closing_bracket, domain_of, local_part, mailbox_dir_name, unsafe_in_name,
};
use jes::queue::{format, parse, QueueRecipient, QueuedMessage, RecipientState};
use jes_fuzz::smtp::{params, Driver};
use libfuzzer_sys::fuzz_target;

fn check_dir_name(a: &str) {
    let _ = (domain_of(a), local_part(a), closing_bracket(a));
    match mailbox_dir_name(a) {
        Ok(name) => {
            assert!(name.len() <= 254);
            assert!(
                name.chars().all(|c| (c.is_ascii_graphic()
                    || (!c.is_ascii() && !unsafe_in_name(c)))
                    && !matches!(c, '/' | '\\' | '"' | '\'' | 'A'..='Z')),
                "{name:?}"
            );
            let at = name.rfind('@').expect("a domain");
            assert!(name[at..].is_ascii(), "{name:?}");
            assert!(!name.starts_with('.') && !name.contains(".."), "{name:?}");
            let parts: Vec<Component> = Path::new(&name).components().collect();
            assert_eq!(parts, vec![Component::Normal(name.as_ref())]);
            assert_eq!(name, canonical(a));
            assert!(domain_of(&name).is_some() && !local_part(&name).is_empty());
            assert_eq!(mailbox_dir_name(&name), Ok(name.clone()));
            assert_eq!(mailbox_dir_name(&a.to_ascii_uppercase()), Ok(name.clone()));
        }
        Err(_) => assert!(mailbox_dir_name(&a.to_ascii_lowercase()).is_err()),
    }
}

/// Sends `MAIL FROM:<raw>` and `RCPT TO:<raw>`; whatever SMTP accepts must survive a queue file.
fn check_smtp_round_trip(raw: &[u8]) {
    let mut t = b"EHLO c.test\r\nMAIL FROM:<".to_vec();
    t.extend_from_slice(raw);
    t.extend_from_slice(b"> SMTPUTF8\r\nRCPT TO:<");
    t.extend_from_slice(raw);
    t.extend_from_slice(b">\r\nRCPT TO:<ok@d.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
    let d = Driver::run(params(), true, &[&t]);
    for env in d.stores() {
        let msg = QueuedMessage {
            id: "Q1".to_string(),
            sender: env.sender.clone(),
            recipients: env
                .recipients
                .iter()
                .map(|a| QueueRecipient {
                    address: a.clone(),
                    state: RecipientState::Pending,
                    last_error: None,
                    dsn: env.dsn.recipient(a),
                })
                .collect(),
            received_ms: 1,
            next_attempt_ms: 2,
            attempts: 0,
            delay_warned: false,
            dsn: env.dsn.message.clone(),
            message: env.data.clone(),
        };
        let bytes = format(&msg);
        assert_eq!(
            parse("Q1", &bytes),
            Ok(msg),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

fuzz_target!(|raw: &[u8]| {
    if let Ok(s) = std::str::from_utf8(raw) {
        check_dir_name(s);
    }
    check_dir_name(&String::from_utf8_lossy(raw));
    check_smtp_round_trip(raw);
});
