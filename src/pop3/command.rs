//! Turning one command line into a `Command`, with no knowledge of the session's state.
//!
//! Parsing is kept apart from the state machine so that every odd input (non-UTF-8, garbage numbers,
//! wrong argument counts) is settled in one place and the session only ever sees well-formed
//! commands or a ready-made error text. The line is raw bytes: keywords are compared as ASCII, so
//! nothing here can fail on invalid UTF-8, and USER/PASS/AUTH keep their bytes for the session to
//! judge (whether login is allowed on this connection, base64, UTF-8 are the session's business).
//! An AUTH continuation line (RFC 5034) is not a command and never comes here.

/// A message-number argument: `None` when it is not a number at all (a syntax error, as opposed
/// to a number that names no message). Numbers too big for `usize` become `usize::MAX`, which is
/// out of range like any other number past the end.
pub(crate) type MsgArg = Option<usize>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// The rest of the line after `USER `, surrounding spaces removed.
    User(&'a [u8]),
    /// The rest of the line after `PASS ` (one space), spaces included.
    Pass(&'a [u8]),
    Quit,
    Capa,
    Noop,
    Stat,
    Rset,
    List(Option<MsgArg>),
    Uidl(Option<MsgArg>),
    Retr(MsgArg),
    Dele(MsgArg),
    Top(MsgArg, usize),
    /// RFC 2595 §4.
    Stls,
    /// RFC 6856: the client reads UTF-8 (user names, headers).
    Utf8,
    /// RFC 5034: `AUTH` alone (`None`, list the mechanisms), or a mechanism name with an optional
    /// initial response (still base64, `=` for an empty one).
    Auth(Option<(&'a [u8], Option<&'a [u8]>)>),
    /// A known command with bad arguments; the text is the whole `-ERR` reply line.
    Syntax(&'static str),
    Unknown,
}

/// Parses a command line (without its line end).
pub(crate) fn parse(line: &[u8]) -> Command<'_> {
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    if !(3..=4).contains(&keyword.len()) {
        return Command::Unknown;
    }
    let mut upper = [0u8; 4];
    for (u, k) in upper.iter_mut().zip(keyword) {
        *u = k.to_ascii_uppercase();
    }
    let args: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|a| !a.is_empty())
        .collect();
    match &upper[..keyword.len()] {
        b"USER" => Command::User(trim_spaces(rest)),
        b"PASS" => Command::Pass(rest),
        b"QUIT" => no_args(&args, Command::Quit),
        b"CAPA" => no_args(&args, Command::Capa),
        b"NOOP" => no_args(&args, Command::Noop),
        b"STAT" => no_args(&args, Command::Stat),
        b"RSET" => no_args(&args, Command::Rset),
        b"STLS" => no_args(&args, Command::Stls),
        b"UTF8" => no_args(&args, Command::Utf8),
        b"AUTH" => match args[..] {
            [] => Command::Auth(None),
            [mechanism] => Command::Auth(Some((mechanism, None))),
            [mechanism, initial] => Command::Auth(Some((mechanism, Some(initial)))),
            _ => Command::Syntax(TOO_MANY),
        },
        b"LIST" => match args[..] {
            [] => Command::List(None),
            [n] => Command::List(Some(number(n))),
            _ => Command::Syntax(TOO_MANY),
        },
        b"UIDL" => match args[..] {
            [] => Command::Uidl(None),
            [n] => Command::Uidl(Some(number(n))),
            _ => Command::Syntax(TOO_MANY),
        },
        b"RETR" => match args[..] {
            [n] => Command::Retr(number(n)),
            [] => Command::Syntax(NUMBER_REQUIRED),
            _ => Command::Syntax(TOO_MANY),
        },
        b"DELE" => match args[..] {
            [n] => Command::Dele(number(n)),
            [] => Command::Syntax(NUMBER_REQUIRED),
            _ => Command::Syntax(TOO_MANY),
        },
        b"TOP" => match args[..] {
            [n, k] => match number(k) {
                Some(k) => Command::Top(number(n), k),
                None => Command::Syntax("-ERR invalid line count"),
            },
            [_, _, _, ..] => Command::Syntax(TOO_MANY),
            _ => Command::Syntax("-ERR usage: TOP message lines"),
        },
        _ => Command::Unknown,
    }
}

const TOO_MANY: &str = "-ERR too many arguments";
const NUMBER_REQUIRED: &str = "-ERR message number required";

fn no_args<'a>(args: &[&[u8]], command: Command<'a>) -> Command<'a> {
    if args.is_empty() {
        command
    } else {
        Command::Syntax(TOO_MANY)
    }
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

/// A decimal number of ASCII digits only (no sign, no spaces); saturates at `usize::MAX`.
fn number(arg: &[u8]) -> Option<usize> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(arg.iter().fold(0usize, |n, d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse(b"stat"), Command::Stat);
        assert_eq!(parse(b"QuIt"), Command::Quit);
        assert_eq!(parse(b"list 3"), Command::List(Some(Some(3))));
        assert_eq!(parse(b"top 1 10"), Command::Top(Some(1), 10));
        assert_eq!(
            parse(b"TOP"),
            Command::Syntax("-ERR usage: TOP message lines")
        );
        assert_eq!(parse(b"TOPS"), Command::Unknown);
        assert_eq!(parse(b"stls"), Command::Stls);
        assert_eq!(parse(b"auth"), Command::Auth(None));
        assert_eq!(parse(b"Auth plain"), Command::Auth(Some((b"plain", None))));
    }

    #[test]
    fn stls_and_auth_arguments() {
        assert_eq!(parse(b"STLS now"), Command::Syntax(TOO_MANY));
        assert_eq!(
            parse(b"AUTH PLAIN  AHUAcA== "),
            Command::Auth(Some((b"PLAIN", Some(b"AHUAcA=="))))
        );
        assert_eq!(
            parse(b"AUTH PLAIN ="),
            Command::Auth(Some((b"PLAIN", Some(b"="))))
        );
        assert_eq!(parse(b"AUTH PLAIN a b"), Command::Syntax(TOO_MANY));
        assert_eq!(parse(b"AUTH \xff"), Command::Auth(Some((b"\xff", None))));
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(b"PASS  two  spaces "),
            Command::Pass(b" two  spaces ")
        );
        assert_eq!(parse(b"PASS"), Command::Pass(b""));
        assert_eq!(parse(b"USER  a@b "), Command::User(b"a@b"));
        assert_eq!(parse(b"LIST x"), Command::List(Some(None)));
        assert_eq!(parse(b"LIST -1"), Command::List(Some(None)));
        assert_eq!(
            parse(b"RETR 99999999999999999999999999"),
            Command::Retr(Some(usize::MAX))
        );
        assert_eq!(
            parse(b"TOP 1 x"),
            Command::Syntax("-ERR invalid line count")
        );
        assert_eq!(parse(b"STAT 1"), Command::Syntax(TOO_MANY));
        assert_eq!(
            parse(b"DELE"),
            Command::Syntax("-ERR message number required")
        );
        assert_eq!(parse(b"\xff\xfe\x00"), Command::Unknown);
        assert_eq!(parse(b""), Command::Unknown);
    }
}
