//! Standard Webhooks 1.0 signatures (<https://www.standardwebhooks.com/>, "Verifying webhook
//! authenticity"): `webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
//! the key being the bytes the `whsec_` secret's base64 decodes to. HMAC comes from ring, which
//! rustls already brings in.

use base64::Engine;

/// The `webhook-signature` value for one call. `secret` is `whsec_...`, checked when the
/// configuration was read; a secret that no longer decodes gives `None` (sent unsigned).
pub fn signature(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Option<String> {
    let key = crate::config::webhook::check_secret(secret).ok()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests (the Python and JS
    /// `standardwebhooks` packages): this secret, id, timestamp and body sign to this value.
    #[test]
    fn matches_the_reference_implementation() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = signature(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(signature("nope", "a", 1, b""), None);
    }
}
