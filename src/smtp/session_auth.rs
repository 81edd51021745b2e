//! STARTTLS (RFC 3207) and AUTH (RFC 4954), apart from the command loop in `session`: the two
//! commands that hand control to the driver (a handshake, a password check) and the lines of an
//! AUTH exchange. AUTH is offered only on an encrypted connection or where the driver allows clear
//! text; a failed login counts as a bad command.

use super::auth::{self, AuthError};
use super::reply::{self, reply};
use super::{AuthStep, Output, Session, State};

/// STARTTLS and AUTH.
impl Session {
    /// AUTH may be used: the connection is encrypted, or the driver allows clear text here.
    pub(super) fn auth_allowed(&self) -> bool {
        self.encrypted || self.params.conn.clear_text_allowed
    }

    /// RFC 3207. On success the session stops consuming right after this line (see `run`), so that
    /// nothing sent before the handshake can be taken as a command inside TLS.
    pub(super) fn starttls(&mut self, args: &str, out: &mut Vec<Output>) {
        if !args.is_empty() {
            return self.bad(out, 501, "5.5.4", "Syntax: STARTTLS");
        }
        if self.encrypted {
            return self.bad(out, 503, "5.5.1", "TLS already active");
        }
        if !self.params.conn.tls_available {
            return self.say(out, 502, "5.5.1", "STARTTLS not available");
        }
        self.say(out, 220, "2.0.0", "Ready to start TLS");
        out.push(Output::StartTls);
        self.state = State::TlsPending;
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954).
    pub(super) fn auth(&mut self, args: &str, out: &mut Vec<Output>) {
        let mut words = args.split([' ', '\t']).filter(|w| !w.is_empty());
        let (Some(mechanism), initial, None) = (words.next(), words.next(), words.next()) else {
            return self.bad(
                out,
                501,
                "5.5.4",
                "Syntax: AUTH mechanism [initial-response]",
            );
        };
        if self.helo.is_none() {
            return self.bad(out, 503, "5.5.1", "Error: send EHLO first");
        }
        if self.auth_user.is_some() {
            return self.bad(out, 503, "5.5.1", "Already authenticated");
        }
        if self.transaction.is_some() {
            return self.bad(
                out,
                503,
                "5.5.1",
                "AUTH not permitted during a mail transaction",
            );
        }
        if !self.auth_allowed() {
            let text = "Encryption required for requested authentication mechanism";
            return self.bad(out, 538, "5.7.11", text);
        }
        let step = if mechanism.eq_ignore_ascii_case("PLAIN") {
            AuthStep::Plain
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            AuthStep::LoginUser
        } else {
            return self.bad(out, 504, "5.5.4", "Unrecognized authentication type");
        };
        match initial {
            Some(response) => {
                self.state = State::Auth(step);
                self.auth_response(response, out);
            }
            None => self.challenge(step, out),
        }
    }

    /// Sends the `334` for `step` and waits for the client's line.
    fn challenge(&mut self, step: AuthStep, out: &mut Vec<Output>) {
        let text = match step {
            AuthStep::Plain => "",
            AuthStep::LoginUser => "VXNlcm5hbWU6", // "Username:"
            AuthStep::LoginPassword(_) => "UGFzc3dvcmQ6", // "Password:"
        };
        out.push(Output::Reply(reply::plain(334, text)));
        self.state = State::Auth(step);
    }

    /// A line of the AUTH exchange, the state being `Auth`.
    pub(super) fn auth_line(&mut self, line: &[u8], out: &mut Vec<Output>) {
        let Ok(line) = std::str::from_utf8(line) else {
            self.state = State::Command;
            return self.bad(out, 501, "5.5.2", "Invalid base64 data");
        };
        if line.trim_matches([' ', '\t']) == "*" {
            self.state = State::Command;
            return self.say(out, 501, "5.0.0", "Authentication cancelled");
        }
        self.auth_response(line, out);
    }

    /// A base64 response (initial or on its own line) for the step the state is at.
    fn auth_response(&mut self, response: &str, out: &mut Vec<Output>) {
        let step = match std::mem::replace(&mut self.state, State::Command) {
            State::Auth(step) => step,
            other => {
                self.state = other;
                return;
            }
        };
        let result = auth::decode(response).and_then(|bytes| match step {
            AuthStep::Plain => auth::plain(&bytes).map(Some),
            AuthStep::LoginUser => {
                let user = auth::user_name(&bytes)?;
                self.challenge(AuthStep::LoginPassword(user), out);
                Ok(None)
            }
            AuthStep::LoginPassword(user) => Ok(Some((user, auth::password_text(&bytes)?))),
        });
        match result {
            Ok(None) => {}
            Ok(Some((user, password))) => {
                out.push(Output::CheckAuth {
                    user: user.clone(),
                    password,
                });
                self.state = State::AuthPending(user);
            }
            Err(AuthError::Malformed) => self.bad(out, 501, "5.5.2", "Invalid authentication data"),
            Err(AuthError::Authzid) => self.bad(
                out,
                535,
                "5.7.8",
                "Authorization identity must be the login",
            ),
        }
    }

    /// The driver's answer to an `Output::CheckAuth` when no verdict can be given (the accounts
    /// are not known yet: the database is away): `454 4.7.0`, RFC 4954's temporary failure, so
    /// the client tries again later instead of taking the password for wrong. Not counted as a
    /// bad command. Returns nothing unless a CheckAuth is pending.
    pub fn auth_unavailable(&mut self) -> Vec<u8> {
        match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPending(_) => reply(
                454,
                "4.7.0",
                "Temporary authentication failure, try again later",
            ),
            other => {
                self.state = other;
                Vec::new()
            }
        }
    }

    /// The driver's answer to an `Output::CheckAuth`: the reply to send. A failure counts as a
    /// bad command; when it is one too many, the reply carries the `421` and the next `receive`
    /// gives `Output::Close`. Returns nothing unless a CheckAuth is pending.
    pub fn auth_result(&mut self, ok: bool) -> Vec<u8> {
        let user = match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPending(user) => user,
            other => {
                self.state = other;
                return Vec::new();
            }
        };
        if ok {
            self.auth_user = Some(user);
            return reply(235, "2.7.0", "Authentication successful");
        }
        let mut out = Vec::new();
        self.bad(&mut out, 535, "5.7.8", "Authentication credentials invalid");
        let mut bytes = Vec::new();
        for o in out {
            match o {
                Output::Reply(r) => bytes.extend_from_slice(&r),
                Output::Close => self.state = State::Closing,
                _ => {}
            }
        }
        bytes
    }
}
