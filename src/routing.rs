//! Routing: who may send to whom, and where each recipient's copy goes.
//!
//! Decided at RCPT time so that an unknown local user is refused up front (JES accepted and
//! bounced later). The same expansion runs again when the message is stored, against the
//! configuration of that moment, so a recipient always lands in exactly one of: a local mailbox,
//! or the queue for remote delivery. Forwards expand breadth-first with de-duplication and a
//! depth limit; an address in its own `forwardAddresses` keeps a copy in its own mailbox.

use std::collections::HashSet;

use crate::address::{canonical, domain_of, local_part, mailbox_dir_name};
use crate::config::Config;

/// How deep forwards may chain before the rest is dropped (with a log line).
pub const MAX_FORWARD_DEPTH: usize = 8;

/// Where one copy of a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// The mailbox `users/<address>/`.
    Local(String),
    /// The queue, for delivery to another server.
    Remote(String),
}

/// What the server knows about the client when it asks for a recipient.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientRights {
    /// `relay.ipaddresses`, POP-before-SMTP, or (later) SMTP AUTH.
    pub may_relay: bool,
}

/// What routing says of a recipient at RCPT time; the SMTP driver turns it into the session's
/// reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Local account, forward, catch-all, or a relay the client may use.
    Accept,
    /// Local domain, no such account, no catch-all.
    UnknownUser,
    /// Another domain and the client may not relay.
    RelayDenied,
    /// An address that cannot be handled (unsafe characters, ...), with why.
    BadAddress(String),
}

/// The RCPT decision for `rcpt` from `sender`.
pub fn decide(config: &Config, rights: ClientRights, sender: &str, rcpt: &str) -> Decision {
    let routes = expand(config, rcpt);
    if routes.is_empty() {
        return Decision::UnknownUser;
    }
    if let [Route::Remote(addr)] = routes.as_slice() {
        if addr == &canonical(rcpt)
            && !rights.may_relay
            && !config.mail.relay_sender_allowed(sender)
        {
            return Decision::RelayDenied;
        }
    }
    for route in &routes {
        if let Route::Local(mailbox) = route {
            if let Err(e) = mailbox_dir_name(mailbox) {
                return Decision::BadAddress(format!("<{rcpt}>: {e}"));
            }
        }
    }
    Decision::Accept
}

/// Whether `domain` is ours (`domains`).
pub fn is_local(config: &Config, addr: &str) -> bool {
    match domain_of(addr) {
        Some(domain) => config.mail.is_local_domain(&domain),
        None => true, // a bare `postmaster`
    }
}

/// Expands one recipient into its routes. Empty means "no such local user".
pub fn expand(config: &Config, rcpt: &str) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut seen_routes = HashSet::new();
    let mut visited = HashSet::new();
    let mut frontier = vec![canonical(rcpt)];
    for _depth in 0..MAX_FORWARD_DEPTH {
        let mut next = Vec::new();
        for addr in frontier.drain(..) {
            if !visited.insert(addr.clone()) {
                continue;
            }
            for route in resolve_one(config, &addr, &mut next) {
                if seen_routes.insert(route.clone()) {
                    routes.push(route);
                }
            }
        }
        if next.is_empty() {
            return routes;
        }
        frontier = next;
    }
    if !frontier.is_empty() {
        tracing::warn!(
            recipient = rcpt,
            "forwards nest deeper than {MAX_FORWARD_DEPTH} levels; the rest is dropped"
        );
    }
    routes
}

/// Routes for one address without following forwards; forward targets go to `next`.
fn resolve_one(config: &Config, addr: &str, next: &mut Vec<String>) -> Vec<Route> {
    if !is_local(config, addr) {
        return vec![Route::Remote(addr.to_string())];
    }
    // `trackstudio@[127.0.0.1]` and `trackstudio@127.0.0.1.` are the account
    // `trackstudio@127.0.0.1`: look them up under the domain as configured.
    let written_as_configured = domain_of(addr)
        .and_then(|d| config.mail.local_domain(&d))
        .map(|d| canonical(&format!("{}@{d}", local_part(addr))));
    let addr = written_as_configured.as_deref().unwrap_or(addr);
    if let Some(targets) = config.users.forwards(addr) {
        let mut keep_here = false;
        for target in targets {
            let target = canonical(target);
            if target == addr {
                keep_here = true;
            } else {
                next.push(target);
            }
        }
        return if keep_here {
            vec![Route::Local(addr.to_string())]
        } else {
            Vec::new()
        };
    }
    if config.users.exists(addr) {
        return vec![Route::Local(addr.to_string())];
    }
    if let Some(catch_all) = &config.mail.default_user {
        return vec![Route::Local(canonical(catch_all))];
    }
    if local_part(addr) == "postmaster" {
        // RFC 5321 §4.5.1: postmaster must always be accepted.
        let domain = domain_of(addr)
            .unwrap_or_else(|| config.mail.domains.first().cloned().unwrap_or_default());
        return vec![Route::Local(format!("postmaster@{domain}"))];
    }
    Vec::new()
}

/// Splits the recipients of an accepted message into local mailboxes and remote addresses, each
/// once.
pub fn split(config: &Config, recipients: &[String]) -> (Vec<String>, Vec<String>) {
    let (local, remote) = split_by_origin(config, recipients);
    let names = |v: Vec<(String, usize)>| v.into_iter().map(|(a, _)| a).collect();
    (names(local), names(remote))
}

/// Routes, each with the index of the recipient it came from.
pub type Origins = Vec<(String, usize)>;

/// `split`, with the index in `recipients` of the recipient each route came from (the first one,
/// when two lead to the same place): what it was sent to decides its DSN parameters.
pub fn split_by_origin(config: &Config, recipients: &[String]) -> (Origins, Origins) {
    let mut local = Vec::new();
    let mut remote = Vec::new();
    let mut seen = HashSet::new();
    for (i, rcpt) in recipients.iter().enumerate() {
        for route in expand(config, rcpt) {
            if !seen.insert(route.clone()) {
                continue;
            }
            match route {
                Route::Local(m) => local.push((m, i)),
                Route::Remote(r) => remote.push((r, i)),
            }
        }
    }
    (local, remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mail: &str, users: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail.conf"), mail).unwrap();
        std::fs::write(dir.path().join("user.conf"), users).unwrap();
        let (config, _) = Config::load(dir.path()).unwrap();
        (dir, config)
    }

    const MAIL: &str = "domains=localhost,127.0.0.1,Example.COM\nhostname=jes.test\n";
    const USERS: &str = "user.trackstudio@127.0.0.1=x\nuser.ann@example.com=x\n\
                         userprop.fwd@example.com.forwardAddresses=ann@example.com,boss@remote.test\n";

    fn local(a: &str) -> Route {
        Route::Local(a.to_string())
    }

    #[test]
    fn any_spelling_of_a_local_domain_reaches_the_account() {
        let (_d, c) = config(MAIL, USERS);
        for rcpt in [
            "trackstudio@127.0.0.1",
            "TrackStudio@127.0.0.1",
            "trackstudio@[127.0.0.1]",
            "trackstudio@127.0.0.1.",
            " trackstudio@127.0.0.1 ",
        ] {
            assert_eq!(
                expand(&c, rcpt),
                vec![local("trackstudio@127.0.0.1")],
                "{rcpt}"
            );
        }
        // The account is written with the configured name, in whatever case it was given.
        assert_eq!(
            expand(&c, "ANN@example.com."),
            vec![local("ann@example.com")]
        );
        assert_eq!(expand(&c, "nobody@[127.0.0.1]"), Vec::<Route>::new());
        assert_eq!(
            expand(&c, "x@[127.0.0.2]"),
            vec![Route::Remote("x@[127.0.0.2]".into())]
        );
    }

    #[test]
    fn forwards_catch_all_postmaster_and_relay_rights() {
        let (_d, c) = config(MAIL, USERS);
        assert_eq!(
            expand(&c, "fwd@example.com"),
            vec![
                local("ann@example.com"),
                Route::Remote("boss@remote.test".into())
            ]
        );
        assert_eq!(
            expand(&c, "postmaster@localhost"),
            vec![local("postmaster@localhost")]
        );
        let none = ClientRights { may_relay: false };
        let relay = ClientRights { may_relay: true };
        assert_eq!(
            decide(&c, none, "a@b.test", "x@remote.test"),
            Decision::RelayDenied
        );
        assert_eq!(
            decide(&c, relay, "a@b.test", "x@remote.test"),
            Decision::Accept
        );
        assert_eq!(
            decide(&c, none, "a@b.test", "nobody@localhost"),
            Decision::UnknownUser
        );
        // A local forward to a remote address is not relaying by the client.
        assert_eq!(
            decide(&c, none, "a@b.test", "fwd@example.com"),
            Decision::Accept
        );

        let (_d, catch_all) = config(&format!("{MAIL}defaultuser=ann@example.com\n"), USERS);
        assert_eq!(
            expand(&catch_all, "nobody@localhost"),
            vec![local("ann@example.com")]
        );
    }
}
