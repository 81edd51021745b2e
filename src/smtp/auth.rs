//! The SASL responses of SMTP AUTH (RFC 4954) for PLAIN (RFC 4616) and LOGIN, decoded apart from
//! the state machine. Everything here is client data: nothing panics, and whatever is not exactly
//! right is refused rather than guessed at. A user name reaches logs and account lookups, so it
//! must be non-empty UTF-8 without control characters; a password only has to be UTF-8.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Why a response was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AuthError {
    /// Not base64, or not the shape the mechanism asks for: `501 5.5.2`.
    Malformed,
    /// PLAIN's authorization identity is neither empty nor the login itself: `535 5.7.8`.
    Authzid,
}

/// Decodes one base64 response line. `=` alone is an empty initial response (RFC 4954 §4).
pub(super) fn decode(line: &str) -> Result<Vec<u8>, AuthError> {
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD
        .decode(line.trim_matches([' ', '\t']))
        .map_err(|_| AuthError::Malformed)
}

/// A PLAIN response, `authzid NUL authcid NUL password`: the user and the password.
pub(super) fn plain(response: &[u8]) -> Result<(String, String), AuthError> {
    let mut parts = response.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let user = user_name(authcid)?;
    let password = password_text(password)?;
    let authzid = std::str::from_utf8(authzid).map_err(|_| AuthError::Malformed)?;
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&user) {
        return Err(AuthError::Authzid);
    }
    Ok((user, password))
}

/// LOGIN's (or PLAIN's) user name.
pub(super) fn user_name(bytes: &[u8]) -> Result<String, AuthError> {
    let user = std::str::from_utf8(bytes).map_err(|_| AuthError::Malformed)?;
    if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
        return Err(AuthError::Malformed);
    }
    Ok(user.to_string())
}

/// A password: any non-empty UTF-8 text without NUL.
pub(super) fn password_text(bytes: &[u8]) -> Result<String, AuthError> {
    let password = std::str::from_utf8(bytes).map_err(|_| AuthError::Malformed)?;
    if password.is_empty() || password.contains('\0') {
        return Err(AuthError::Malformed);
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        let ok = |s: &[u8]| plain(s);
        assert_eq!(
            ok(b"\0alice@d.test\0secret"),
            Ok(("alice@d.test".into(), "secret".into()))
        );
        assert_eq!(
            ok(b"Alice@D.test\0alice@d.test\0s p"),
            Ok(("alice@d.test".into(), "s p".into()))
        );
        assert_eq!(ok(b"bob\0alice\0secret"), Err(AuthError::Authzid));
        for bad in [
            &b""[..],
            b"alice\0secret",
            b"\0\0secret",
            b"\0alice\0",
            b"\0alice\0a\0b",
            b"\0al\x01ice\0secret",
            b"\0\xff\0secret",
            b"\xff\0alice\0secret",
            b"\0alice\0\xff",
        ] {
            assert_eq!(ok(bad), Err(AuthError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn base64_lines() {
        assert_eq!(decode("="), Ok(Vec::new()));
        assert_eq!(decode("YQ=="), Ok(b"a".to_vec()));
        assert_eq!(decode(""), Ok(Vec::new()));
        for bad in ["YQ", "Y", "!!!!", "YQ==YQ==", "\u{e9}"] {
            assert_eq!(decode(bad), Err(AuthError::Malformed), "{bad}");
        }
    }
}
