//! The webhook user properties of `user.conf`: `userprop.ADDRESS.webhook=URL` and its options
//! `.webhook.raw`, `.webhook.delete`, `.webhook.secret` (see `crate::delivery::webhook`).
//!
//! Kept apart from `users` so the account file's reader only asks "is this a webhook key?" and
//! hands the value over; the checks (an http(s) URL with a host, a `whsec_` secret that decodes,
//! booleans) happen here, at load, so a typo stops `jes check` naming the line instead of
//! surfacing as a failed call hours later.

use base64::Engine;

/// One mailbox's webhook, as written in `user.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `userprop.ADDRESS.webhook`: where each delivered message is POSTed; `None` while only
    /// options were given (a warning).
    pub url: Option<String>,
    /// `.webhook.raw` (false): include the whole message, base64-encoded.
    pub raw: bool,
    /// `.webhook.delete` (false): delete the message from the mailbox once the call succeeded.
    pub delete: bool,
    /// `.webhook.secret`: the `whsec_...` signing secret; unset: mail.conf's `webhook.secret`.
    pub secret: Option<String>,
}

/// Which webhook property a key suffix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Url,
    Raw,
    Delete,
    Secret,
}

const SUFFIXES: [(&str, Field); 4] = [
    (".webhook.raw", Field::Raw),
    (".webhook.delete", Field::Delete),
    (".webhook.secret", Field::Secret),
    (".webhook", Field::Url),
];

/// `ADDR.webhook...` (the part after `userprop.`) split into the address and the field.
pub(super) fn classify(rest: &str) -> Option<(&str, Field)> {
    for (suffix, field) in SUFFIXES {
        let n = rest.len();
        if n > suffix.len()
            && rest.is_char_boundary(n - suffix.len())
            && rest[n - suffix.len()..].eq_ignore_ascii_case(suffix)
        {
            return Some((&rest[..n - suffix.len()], field));
        }
    }
    None
}

/// Applies one property's `value` to `settings`; the error is the reason the value is wrong.
pub(super) fn apply(
    settings: &mut WebhookSettings,
    field: Field,
    value: &str,
) -> Result<(), String> {
    let value = value.trim();
    match field {
        Field::Url => settings.url = Some(check_url(value)?),
        Field::Raw => settings.raw = boolean(value)?,
        Field::Delete => settings.delete = boolean(value)?,
        Field::Secret => {
            check_secret(value)?;
            settings.secret = Some(value.to_string());
        }
    }
    Ok(())
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

/// An `http://` or `https://` URL with a host; anything else (a typo, `ftp:`, a bare host) is
/// refused at load.
pub fn check_url(value: &str) -> Result<String, String> {
    let uri: hyper::Uri = value
        .parse()
        .map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{value:?} is not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{value:?} has no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "{value:?} carries credentials before the host; put a token in the path or use the signature"
        ));
    }
    Ok(value.to_string())
}

/// Whether `url`'s host is a loopback name or address (`localhost`, `127.0.0.0/8`, `::1`), where
/// plain http never leaves the machine.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A Standard Webhooks secret: `whsec_` and the base64 of at least 24 bytes (the specification
/// asks for 24 to 64).
pub fn check_secret(value: &str) -> Result<Vec<u8>, String> {
    let Some(b64) = value.strip_prefix("whsec_") else {
        return Err("a webhook secret starts with whsec_ (then base64)".into());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the secret after whsec_ is not base64: {e}"))?;
    if key.len() < 24 || key.len() > 64 {
        return Err(format!(
            "the secret is {} bytes; Standard Webhooks asks for 24 to 64",
            key.len()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_their_suffix() {
        assert_eq!(classify("a@b.test.webhook"), Some(("a@b.test", Field::Url)));
        assert_eq!(
            classify("a@b.test.Webhook.Raw"),
            Some(("a@b.test", Field::Raw))
        );
        assert_eq!(
            classify("a@b.test.webhook.delete"),
            Some(("a@b.test", Field::Delete))
        );
        assert_eq!(
            classify("a@b.test.webhook.secret"),
            Some(("a@b.test", Field::Secret))
        );
        assert_eq!(classify("a@b.test.forwardAddresses"), None);
        assert_eq!(classify(".webhook"), None);
    }

    #[test]
    fn values_are_checked() {
        let mut s = WebhookSettings::default();
        apply(&mut s, Field::Url, " https://app.test/hook?x=1 ").unwrap();
        assert_eq!(s.url.as_deref(), Some("https://app.test/hook?x=1"));
        assert!(apply(&mut s, Field::Url, "ftp://app.test/").is_err());
        assert!(apply(&mut s, Field::Url, "app.test/hook").is_err());
        assert!(apply(&mut s, Field::Url, "http://u:p@app.test/").is_err());
        apply(&mut s, Field::Raw, "true").unwrap();
        apply(&mut s, Field::Delete, "yes").unwrap();
        assert!(s.raw && s.delete);
        assert!(apply(&mut s, Field::Raw, "maybe").is_err());
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        apply(&mut s, Field::Secret, secret).unwrap();
        assert_eq!(s.secret.as_deref(), Some(secret));
        assert!(apply(&mut s, Field::Secret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(apply(&mut s, Field::Secret, "whsec_c2hvcnQ=").is_err());
        assert!(apply(&mut s, Field::Secret, "whsec_***").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_url("http://127.0.0.1:8080/h"));
        assert!(is_loopback_url("http://127.9.9.9/h"));
        assert!(is_loopback_url("http://[::1]:9/h"));
        assert!(is_loopback_url("http://LocalHost/h"));
        assert!(!is_loopback_url("http://app.test/h"));
        assert!(!is_loopback_url("http://10.0.0.1/h"));
    }
}
