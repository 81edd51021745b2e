//! Unit tests of `users` (user.conf), kept apart so that the module stays readable.

use super::*;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jes-1.6.1/etc/user.conf"
);

fn parse(text: &str) -> Result<(Users, Vec<Warning>), ConfigError> {
    Users::parse(Path::new("/x/user.conf"), text)
}

fn temp_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.conf");
    fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn fixture() {
    let (u, w) = Users::load(Path::new(FIXTURE)).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(u.accounts.len(), 2);
    assert!(u
        .password("TRACKSTUDIO@127.0.0.1")
        .is_some_and(|p| p.verify("secret")));
    assert!(u
        .password("analyst@localhost")
        .is_some_and(|p| p.verify("password")));
    assert!(u
        .password("analyst@localhost")
        .is_some_and(|p| !p.verify("Password")));
    assert_eq!(
        u.forwards("Analyst@Localhost"),
        Some(
            &[
                "analyst@localhost".to_string(),
                "boss@remote.test".to_string()
            ][..]
        )
    );
    assert_eq!(
        list_users(Path::new(FIXTURE)).unwrap(),
        vec!["trackstudio@127.0.0.1", "analyst@localhost"]
    );
}

#[test]
fn an_empty_password_is_an_error_naming_the_line() {
    for (text, line) in [
        ("user.ok@localhost=pw\nuser.broken@localhost\n", 2),
        ("# c\nuser.x@y=\n", 2),
        ("user.x@y = \t\n", 1),
        ("user.x@y:\n", 1),
    ] {
        match parse(text) {
            Err(e @ ConfigError::Value { .. }) => {
                let shown = e.to_string();
                assert!(
                    shown.starts_with(&format!("/x/user.conf:{line}: key 'user.")),
                    "{text:?}: {shown}"
                );
                assert!(shown.contains("empty password"), "{shown}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // Java's other separators still give a password.
    for text in [
        "user.a@b secret\n",
        "user.a@b:secret\n",
        "user.a@b = secret\n",
    ] {
        let (u, _) = parse(text).unwrap();
        assert!(
            u.password("a@b").is_some_and(|p| p.verify("secret")),
            "{text:?}"
        );
    }
}

#[test]
fn blank_and_missing_files_are_told_apart_from_no_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.conf");
    assert!(matches!(Users::read(&path), Ok(UsersFile::Missing)));
    for blank in [
        &b""[..],
        b"\n",
        b"  \r\n\t\n",
        b"\xEF\xBB\xBF",
        b"\xEF\xBB\xBF\n \n",
    ] {
        fs::write(&path, blank).unwrap();
        assert!(
            matches!(Users::read(&path), Ok(UsersFile::Blank)),
            "{blank:?}"
        );
    }
    fs::write(&path, "# no accounts\n").unwrap();
    match Users::read(&path) {
        Ok(UsersFile::Read(u, w)) => assert!(u.accounts.is_empty() && w.is_empty()),
        other => panic!("{other:?}"),
    }
    fs::write(&path, "\u{feff}user.a@b=pw\n").unwrap();
    match Users::read(&path) {
        Ok(UsersFile::Read(u, w)) => {
            assert!(
                w.is_empty(),
                "the byte-order mark is not part of the key: {w:?}"
            );
            assert!(u.exists("a@b"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn deleting_the_last_account_leaves_a_comment() {
    let (_dir, path) = temp_with("user.a@x=pw\nuser.b@x=pw\n");
    delete_user(&path, "a@x").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "user.b@x=pw\n");
    delete_user(&path, "b@x").unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{NO_ACCOUNTS_COMMENT}\n"));
    match Users::read(&path) {
        Ok(UsersFile::Read(u, _)) => assert!(u.accounts.is_empty()),
        other => panic!("a deliberate deletion must read as no accounts: {other:?}"),
    }
    // A file that keeps other comments gets no extra one.
    let (_dir, path) = temp_with("# mine\nuser.a@x=pw\n");
    delete_user(&path, "a@x").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "# mine\n");
}

#[test]
fn missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (u, w) = Users::load(&dir.path().join("user.conf")).unwrap();
    assert!(u.accounts.is_empty() && w.is_empty());
    assert!(list_users(&dir.path().join("user.conf"))
        .unwrap()
        .is_empty());
}

#[test]
fn warnings_and_errors() {
    let (u, w) = parse("user.A@x=1\nuser.a@x=2\nuserprop.a@x.color=red\nfoo=bar\nuserprop.b@x.forwardAddresses=c@y\n").unwrap();
    assert_eq!(u.password("a@x"), Some(&StoredPassword::Plain("2".into())));
    let lines: Vec<usize> = w.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5], "{w:?}");
    let e = parse("# c\nuser.../evil@x=1\n")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            r#"/x/user.conf:2: key 'user.../evil@x': "../evil@x" cannot be an account: address contains a character that cannot appear in a mailbox directory name: '/'"#
        )
    );
    let e = parse("user.a@x=1\nuserprop.a@x.forwardAddresses=b@y, nonsense\n")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            r#"/x/user.conf:2: key 'userprop.a@x.forwardAddresses': "nonsense" is not a mail address"#
        )
    );
    assert!(matches!(
        parse("user.nodomain=1\n"),
        Err(ConfigError::Value { line: 1, .. })
    ));
}

#[test]
fn upgrade_keeps_comments_order_and_crlf() {
    let text = "# accounts\r\n\r\nuser.b@x=plain1\r\n! keep me\r\nuserprop.b@x.forwardAddresses=c@y\r\nuser.trackstudio@127.0.0.1=101105122155035158077154104207245074042199207186230191133116\r\nuser.empty@x=\r\nuser.a@x = two \\\r\n  words\r\n";
    let (_dir, path) = temp_with(text);
    assert_eq!(upgrade_plaintext(&path).unwrap(), 2);
    let out = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines.len(), 9, "{out:?}");
    assert_eq!(lines[0], "# accounts");
    assert_eq!(lines[1], "");
    assert!(lines[2].starts_with("user.b@x=$argon2id$"));
    assert_eq!(lines[3], "! keep me");
    assert_eq!(lines[4], "userprop.b@x.forwardAddresses=c@y");
    assert_eq!(
        lines[5],
        "user.trackstudio@127.0.0.1=101105122155035158077154104207245074042199207186230191133116"
    );
    assert_eq!(lines[6], "user.empty@x=");
    assert!(lines[7].starts_with("user.a@x=$argon2id$"));
    assert_eq!(lines[8], "");
    assert!(!out.replace("\r\n", "").contains('\n'));
    // The empty password is an error when read, so read the rest without it.
    assert!(matches!(
        Users::load(&path),
        Err(ConfigError::Value { line: 7, .. })
    ));
    let (u, _) = parse(&out.replace("user.empty@x=\r\n", "")).unwrap();
    assert!(u.password("b@x").is_some_and(|p| p.verify("plain1")));
    assert!(u.password("a@x").is_some_and(|p| p.verify("two words")));
    assert!(u
        .password("trackstudio@127.0.0.1")
        .is_some_and(|p| p.verify("secret")));
    // Nothing left to do: the file is not rewritten.
    let before = fs::read(&path).unwrap();
    assert_eq!(upgrade_plaintext(&path).unwrap(), 0);
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn upgrade_keeps_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = temp_with("user.a@x=pw");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(upgrade_plaintext(&path).unwrap(), 1);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let out = fs::read_to_string(&path).unwrap();
    assert!(!out.ends_with('\n'), "no final line end was added: {out:?}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// Root editing a `root:jes 0640` user.conf (the Debian package's) keeps its group, or the
/// server could no longer read it. Only root can give a file away, so only root can check this.
#[test]
fn root_rewriting_keeps_owner_and_group() {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: cannot give a file to another user, not tested");
        return;
    }
    let (_dir, path) = temp_with("# none\n");
    std::os::unix::fs::chown(&path, Some(0), Some(4242)).unwrap();
    add_user(&path, "a@x.test", "pw").unwrap();
    let m = fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 4242));
}

#[test]
fn add_passwd_del_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.conf");
    add_user(&path, "First@Example.com", "one").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let mut text = fs::read_to_string(&path).unwrap();
    text.insert_str(0, "# my accounts\n");
    text.push_str("userprop.first@example.com.forwardAddresses=x@y\n# trailing comment\n");
    fs::write(&path, text).unwrap();
    add_user(&path, "second@example.com", "two").unwrap();
    assert_eq!(
        add_user(&path, "FIRST@example.com", "x")
            .unwrap_err()
            .kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        add_user(&path, "../x@y", "x").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        add_user(&path, "n@y", "").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        list_users(&path).unwrap(),
        vec!["first@example.com", "second@example.com"]
    );

    set_password(&path, "first@EXAMPLE.com", "uno").unwrap();
    assert_eq!(
        set_password(&path, "nobody@x", "p").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let (u, _) = Users::load(&path).unwrap();
    assert!(u
        .password("first@example.com")
        .is_some_and(|p| p.verify("uno") && !p.verify("one")));
    assert!(u
        .password("second@example.com")
        .is_some_and(|p| p.verify("two")));

    delete_user(&path, "First@example.com").unwrap();
    assert_eq!(
        delete_user(&path, "first@example.com").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# my accounts");
    assert_eq!(lines[1], "# trailing comment");
    assert!(lines[2].starts_with("user.second@example.com=$argon2id$"));
    assert_eq!(lines.len(), 3);
    assert_eq!(list_users(&path).unwrap(), vec!["second@example.com"]);
}

#[test]
fn add_keeps_crlf_and_terminates_last_line() {
    let (_dir, path) = temp_with("# c\r\nuser.a@x=pw");
    add_user(&path, "b@x", "pw2").unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[..2], ["# c", "user.a@x=pw"]);
    assert!(lines[2].starts_with("user.b@x=$argon2id$"));
    assert_eq!(lines[3], "");
}

#[test]
fn concurrent_changes_and_upgrades_lose_no_account() {
    let (_dir, path) = temp_with("# accounts\nuser.plain@x=secret\n");
    let path = Arc::new(path);
    let workers: Vec<_> = (0..6)
        .map(|n| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || {
                if n % 2 == 0 {
                    add_user(&path, &format!("u{n}@x"), "pw").unwrap();
                } else {
                    upgrade_plaintext(&path).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (users, _) = Users::load(&path).unwrap();
    for n in [0, 2, 4] {
        assert!(users.exists(&format!("u{n}@x")), "u{n}@x kept");
    }
    assert!(users.exists("plain@x"));
    assert!(!users.password("plain@x").unwrap().is_plain(), "upgraded");
    let text = fs::read_to_string(&*path).unwrap();
    assert!(text.starts_with("# accounts\n"), "comment kept: {text}");
}

#[test]
fn webhook_properties() {
    let (u, w) = parse(
        "user.bob@x.test=s\n\
         userprop.Bob@X.test.webhook.raw=true\n\
         userprop.bob@x.test.webhook=https://app.test/hook\n\
         userprop.bob@x.test.webhook.delete=true\n\
         userprop.bob@x.test.webhook.secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\
         userprop.ann@x.test.webhook.raw=true\n\
         userprop.cy@x.test.webhook=http://app.test/hook\n\
         userprop.dee@x.test.webhook=http://127.0.0.1:9/hook\n",
    )
    .unwrap();
    let bob = u.webhook("BOB@x.test").unwrap();
    assert_eq!(bob.url.as_deref(), Some("https://app.test/hook"));
    assert!(bob.raw && bob.delete);
    assert!(bob.secret.is_some());
    assert!(u.webhook("ann@x.test").is_none(), "options without a URL");
    assert!(u.webhook("dee@x.test").is_some());
    let texts: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].contains(":6") && texts[0].contains("without userprop.ann@x.test.webhook=URL"),
        "{texts:?}"
    );
    assert!(
        texts[1].contains(":7") && texts[1].contains("plain http"),
        "{texts:?}"
    );
    let err = parse("userprop.bob@x.test.webhook=ftp://app.test/\n").unwrap_err();
    assert!(err.to_string().contains(":1"), "{err}");
    let err = parse("userprop.bob@x.test.webhook.secret=letmein\n").unwrap_err();
    assert!(err.to_string().contains("whsec_"), "{err}");
}

/// Rows of the database store as `Users::from_rows` takes them.
fn row(address: &str, name: Option<&str>, value: &str) -> (String, Option<String>, String) {
    (address.into(), name.map(Into::into), value.into())
}

const DB: &str = "database postgresql://jes@db.test/jes";

/// The database's rows are read by user.conf's reader: the same accounts, forwards and webhooks
/// as the lines they stand for, and the same refusals and warnings, naming the database and the
/// key instead of a line.
#[test]
fn rows_read_as_the_lines_they_stand_for() {
    let rows = [
        row("ann@x.test", None, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"),
        row("bob@x.test", None, "pw"),
        row("bob@x.test", Some("forwardAddresses"), "Bob@X.test, Boss@Remote.test"),
        row("bob@x.test", Some("webhook"), "https://app.test/hook"),
        row("bob@x.test", Some("webhook.raw"), "true"),
        row("cy@x.test", Some("forwardAddresses"), "dee@y.test"),
    ];
    let (u, w) = Users::from_rows(Path::new(DB), &rows).unwrap();
    let text = "user.ann@x.test=$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\n\
                user.bob@x.test=pw\n\
                userprop.bob@x.test.forwardAddresses=Bob@X.test, Boss@Remote.test\n\
                userprop.bob@x.test.webhook=https://app.test/hook\n\
                userprop.bob@x.test.webhook.raw=true\n\
                userprop.cy@x.test.forwardAddresses=dee@y.test\n";
    let (f, fw) = parse(text).unwrap();
    assert_eq!(u.accounts, f.accounts);
    assert_eq!(u.forwards, f.forwards);
    assert_eq!(u.webhooks, f.webhooks);
    assert_eq!(
        u.forwards("BOB@x.test"),
        Some(&["bob@x.test".to_string(), "boss@remote.test".to_string()][..])
    );
    assert!(u.password("bob@x.test").unwrap().verify("pw"));
    assert!(u.webhook("bob@x.test").unwrap().raw);
    // The same warning (cy has forwards and no account), naming the database, no line.
    assert_eq!(fw.len(), 1, "{fw:?}");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].message, fw[0].message);
    assert_eq!(w[0].line, 0);
    assert_eq!(
        w[0].to_string(),
        format!("{DB}: {}", fw[0].message),
        "no line number for a row"
    );
    // No rows: no accounts, nothing to warn about.
    let (u, w) = Users::from_rows(Path::new(DB), &[]).unwrap();
    assert!(u.accounts.is_empty() && w.is_empty());
}

#[test]
fn rows_with_values_user_conf_refuses_are_refused_naming_the_key() {
    for (rows, says) in [
        (
            vec![row("a@x", Some("forwardAddresses"), "b@y, nonsense")],
            "database postgresql://jes@db.test/jes: key 'userprop.a@x.forwardAddresses': \"nonsense\" is not a mail address",
        ),
        (
            vec![row("a@x", None, "")],
            "database postgresql://jes@db.test/jes: key 'user.a@x': the account a@x has an empty password",
        ),
        (
            vec![row("../evil@x", None, "pw")],
            "key 'user.../evil@x': \"../evil@x\" cannot be an account",
        ),
        (
            vec![row("a@x", Some("webhook"), "ftp://app.test/")],
            "key 'userprop.a@x.webhook'",
        ),
    ] {
        let e = Users::from_rows(Path::new(DB), &rows).unwrap_err();
        assert!(matches!(e, ConfigError::Value { line: 0, .. }), "{e:?}");
        assert!(e.to_string().contains(says), "{e} / {says}");
    }
    // Unknown properties and accounts spelled twice are warnings, as in user.conf.
    let (u, w) = Users::from_rows(
        Path::new(DB),
        &[
            row("a@x", None, "1"),
            row("A@X", None, "2"),
            row("a@x", Some("color"), "red"),
        ],
    )
    .unwrap();
    assert_eq!(u.accounts.len(), 1);
    let texts: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("account a@x is defined twice")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("unknown user property 'userprop.a@x.color'")),
        "{texts:?}"
    );
}

/// `jes user set|unset` on user.conf: the line is replaced in place (comments kept), removed, or
/// added; a value the reader refuses and an unknown name leave the file as it was.
#[test]
fn set_and_unset_a_property_in_user_conf() {
    let (_d, path) = temp_with(
        "# keep\nuser.a@x.test=pw\nuserprop.A@x.test.forwardAddresses=old@y.test\n# end\n",
    );
    set_property(&path, "a@x.test", "forwardaddresses", Some("new@y.test")).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "# keep\nuser.a@x.test=pw\nuserprop.a@x.test.forwardAddresses=new@y.test\n# end\n"
    );
    set_property(&path, "a@x.test", "webhook", Some("https://app.test/h")).unwrap();
    let (u, _) = Users::load(&path).unwrap();
    assert_eq!(
        u.forwards("a@x.test"),
        Some(&["new@y.test".to_string()][..])
    );
    assert!(u.webhook("a@x.test").is_some());
    let before = fs::read_to_string(&path).unwrap();
    let e = set_property(&path, "a@x.test", "forwardAddresses", Some("nonsense")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("is not a mail address"), "{e}");
    let e = set_property(&path, "a@x.test", "color", Some("red")).unwrap_err();
    assert!(
        e.to_string().contains("known: forwardAddresses, webhook"),
        "{e}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), before);
    set_property(&path, "a@x.test", "forwardAddresses", None).unwrap();
    let e = set_property(&path, "a@x.test", "forwardAddresses", None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let (u, _) = Users::load(&path).unwrap();
    assert!(u.forwards("a@x.test").is_none());
    assert!(fs::read_to_string(&path).unwrap().starts_with("# keep\n"));
}
