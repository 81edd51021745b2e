//! Reply formatting in one place, so that every reply carries its enhanced status code
//! (RFC 2034/3463) the same way and no text from outside (queue ids, store errors, policy
//! messages) can smuggle a CR or LF into the reply stream and forge a second reply.

/// `code enhanced text CRLF`.
pub(super) fn reply(code: u16, enhanced: &str, text: &str) -> Vec<u8> {
    format!("{code} {enhanced} {text}\r\n").into_bytes()
}

/// `code text CRLF`, for the few replies without an enhanced code (HELO).
pub(super) fn plain(code: u16, text: &str) -> Vec<u8> {
    format!("{code} {text}\r\n").into_bytes()
}

/// A multi-line reply: `code-line` for all lines but the last, `code line` for the last.
pub(super) fn multiline(code: u16, lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("{code}{sep}{line}\r\n"));
    }
    out.into_bytes()
}

/// Text from outside the session made safe for a reply line: control characters become spaces.
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
