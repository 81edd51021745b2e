//! The console's message view (`http::message`, mail-parser underneath) on hostile MIME: deep
//! nesting, huge headers, broken encodings. Besides "no panic": every listed attachment can be
//! fetched by its index and none past the end; its size is what the download sends; the list
//! summary agrees with the detail view; `safe_filename` of any name is safe inside a
//! `Content-Disposition` header; and the view of a stored (dot-stuffed) message is the view of the
//! message RETR would send.
#![no_main]

use jes::http::message::{attachment, detail, html_body, safe_filename, summarize, unstuff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|stored: &[u8]| {
    let m = unstuff(stored);
    let d = detail(&m);
    let _ = html_body(&m);
    let s = summarize(&m);
    // The list reads only the header section; for a message it can parse, it must agree.
    if !d.headers.is_empty() {
        assert_eq!(s.subject, d.subject);
        assert_eq!(s.from, d.from);
        assert_eq!(s.date, d.date);
    }
    for a in &d.attachments {
        let (name, bytes) = attachment(&m, a.index).expect("a listed attachment is there");
        assert_eq!(name, a.filename);
        assert_eq!(bytes.len(), a.size);
        let safe = safe_filename(name.as_deref().unwrap_or(""));
        assert!(!safe.is_empty() && safe.len() <= 100);
        assert!(
            safe.chars()
                .all(|c| c == ' ' || c.is_ascii_graphic() && !"\"\\/;".contains(c)),
            "{safe:?}"
        );
        assert!(!safe.starts_with('.'));
    }
    assert!(attachment(&m, d.attachments.len()).is_none());
});
