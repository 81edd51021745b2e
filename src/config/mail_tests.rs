//! Unit tests of `mail` (mail.conf), kept apart so that the module stays readable.

use super::*;

fn parse(text: &str) -> Result<(MailConf, Vec<Warning>), ConfigError> {
    MailConf::parse(Path::new("/x/mail.conf"), text)
}

fn ok(text: &str) -> MailConf {
    match parse(text) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    }
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn defaults() {
    let (c, w) = parse("domains=Example.COM, localhost ,\n").unwrap();
    assert!(w.is_empty());
    assert_eq!(c.domains, vec!["example.com", "localhost"]);
    assert!(c.listen_addresses.is_empty());
    assert_eq!((c.smtp_port, c.pop3_port, c.threads), (25, 110, 5));
    assert_eq!(c.max_message_size, 5 * 1024 * 1024);
    assert_eq!(c.delivery_interval, Duration::from_secs(10));
    assert_eq!(c.delivery_threshold, 10);
    assert_eq!(c.default_user, None);
    assert!(c.smart_hosts.is_empty());
    assert!(!c.pop_before_smtp);
    assert_eq!(c.pop_before_smtp_timeout, Duration::from_secs(600));
    assert!(c.relay_ips.is_empty() && c.relay_senders.is_empty());
    assert!(!c.hostname.is_empty());
    assert_eq!(c.allow_clear_text, ClearText::Always);
    assert_eq!(c.delivery_tls, DeliveryTls::Opportunistic);
    assert_eq!(c.bare_lf, BareLf::Normalize);
    assert_eq!(c.max_recipients, 1000);
    assert_eq!((c.max_error_count, c.max_pass_attempts), (20, 3));
    assert_eq!(
        (
            c.smtp_max_connections,
            c.smtp_max_connections_per_ip,
            c.pop3_max_connections
        ),
        (10_000, 50, 10_000)
    );
    assert_eq!(c.min_disk_free, 100 * 1024 * 1024);
    assert_eq!(c.delivery_concurrency, 10);
    assert_eq!(c.delay_warning, Some(Duration::from_secs(4 * 3600)));
    assert_eq!(
        (c.submission_port, c.secure_smtp_port, c.secure_pop3_port),
        (None, None, None)
    );
    assert!(c.tls_certificate.is_none() && c.tls_key.is_none() && c.delivery_ca_file.is_none());
}

#[test]
fn every_key_set() {
    let c = ok("domains=a.example\nhostname=mx.a.example\nlisten.address=127.0.0.1, ::1\n\
         smtpport=2525 \npop3port=1110\nsubmissionport=1587\nsecuresmtpport=1465\nsecurepop3port=1995\n\
         tls.certificate=cert.pem\ntls.key=/etc/key.pem\nallowClearText=ENCRYPTEDONLY\nthreads=8\n\
         smtp.messagesize=0\nmax.valid.rcpt=50\nmax.error.count=5\nmax.pass.attempts=2\n\
         smtp.maxconnections=10\nsmtp.maxconnectionsperip=2\npop3.maxconnections=3\nmindiskfree=0\n\
         smtpdelivery.interval=1\nsmtpdelivery.threshold=3\nsmtpdelivery.concurrency=4\n\
         smtpdelivery.delaywarning=0\nsmtpdelivery.tls=required\nsmtpdelivery.cafile=ca.pem\n\
         defaultuser=Catch@A.example\nrelay.popbeforesmtp=Yes\nrelay.popbeforesmtp.timeout=5\n");
    assert_eq!(c.hostname, "mx.a.example");
    assert_eq!(c.listen_addresses, vec![ip("127.0.0.1"), ip("::1")]);
    assert_eq!((c.smtp_port, c.pop3_port), (2525, 1110));
    assert_eq!(
        (c.submission_port, c.secure_smtp_port, c.secure_pop3_port),
        (Some(1587), Some(1465), Some(1995))
    );
    assert_eq!(c.tls_certificate.as_deref(), Some(Path::new("/x/cert.pem")));
    assert_eq!(c.tls_key.as_deref(), Some(Path::new("/etc/key.pem")));
    assert_eq!(c.allow_clear_text, ClearText::EncryptedOnly);
    assert_eq!(c.threads, 8);
    assert_eq!(c.max_message_size, 0);
    assert_eq!(c.max_recipients, 50);
    assert_eq!((c.max_error_count, c.max_pass_attempts), (5, 2));
    assert_eq!(
        (
            c.smtp_max_connections,
            c.smtp_max_connections_per_ip,
            c.pop3_max_connections
        ),
        (10, 2, 3)
    );
    assert_eq!(c.min_disk_free, 0);
    assert_eq!(c.delivery_interval, Duration::from_secs(1));
    assert_eq!((c.delivery_threshold, c.delivery_concurrency), (3, 4));
    assert_eq!(c.delay_warning, None);
    assert_eq!(c.delivery_tls, DeliveryTls::Required);
    assert_eq!(c.delivery_ca_file.as_deref(), Some(Path::new("/x/ca.pem")));
    assert_eq!(c.default_user.as_deref(), Some("catch@a.example"));
    assert!(c.pop_before_smtp);
    assert_eq!(c.pop_before_smtp_timeout, Duration::from_secs(300));
}

#[test]
fn domains_required() {
    for text in ["smtpport=25\n", "domains=\n", "domains= , ,\n"] {
        let e = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            e,
            "/x/mail.conf: required key 'domains' is missing: name the local domains, e.g. domains=example.com,localhost"
        );
    }
}

#[test]
fn bad_values_name_file_line_and_key() {
    let cases = [
        (
            "domains=a\n\n# c\nsmtpport=abc\n",
            r#"/x/mail.conf:4: key 'smtpport': "abc" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\npop3port=0\n",
            r#"/x/mail.conf:2: key 'pop3port': "0" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\nsmtpport=65536\n",
            r#"/x/mail.conf:2: key 'smtpport': "65536" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\nthreads=-1\n",
            r#"/x/mail.conf:2: key 'threads': "-1" is not a whole number"#,
        ),
        (
            "domains=a\nthreads=0\n",
            r#"/x/mail.conf:2: key 'threads': "0" is too small (at least 1)"#,
        ),
        (
            "domains=a\nsmtp.messagesize=5MB\n",
            r#"/x/mail.conf:2: key 'smtp.messagesize': "5MB" is not a whole number"#,
        ),
        (
            "domains=a\nrelay.popbeforesmtp=maybe\n",
            r#"/x/mail.conf:2: key 'relay.popbeforesmtp': "maybe" is not true or false (or yes/no, on/off)"#,
        ),
        (
            "domains=a\nrelay.ipaddresses=127.0.0.1,192.168.1.x\n",
            r#"/x/mail.conf:2: key 'relay.ipaddresses': "192.168.1.x" is not an IP address, an IPv4 pattern like 192.168.*.* or a CIDR block like 10.0.0.0/8"#,
        ),
        (
            "domains=a\nrelay.ipaddresses=10.0.0.0/33\n",
            r#"/x/mail.conf:2: key 'relay.ipaddresses': "10.0.0.0/33": prefix length 33 is more than 32"#,
        ),
        (
            "domains=a\nrelay.ipaddresses=192.168.*\n",
            r#"/x/mail.conf:2: key 'relay.ipaddresses': "192.168.*" is not an IP address, an IPv4 pattern like 192.168.*.* or a CIDR block like 10.0.0.0/8"#,
        ),
        (
            "domains=a\nrelay.emailaddresses=nobody\n",
            r#"/x/mail.conf:2: key 'relay.emailaddresses': "nobody" is neither an address nor @domain"#,
        ),
        (
            "domains=a\ndefaultsmtpservers=smtp.example.com:99999\n",
            r#"/x/mail.conf:2: key 'defaultsmtpservers': "smtp.example.com:99999": "99999" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\ndefaultsmtpservers=h/useronly\n",
            r#"/x/mail.conf:2: key 'defaultsmtpservers': "h/useronly": expected user:password after '/'"#,
        ),
        (
            "domains=a\nlisten.address=localhost\n",
            r#"/x/mail.conf:2: key 'listen.address': "localhost" is not an IP address"#,
        ),
        (
            "domains=a\nallowClearText=sometimes\n",
            r#"/x/mail.conf:2: key 'allowClearText': "sometimes" is not one of never, encryptedOnly, always"#,
        ),
        (
            "domains=a\nsmtpdelivery.tls=maybe\n",
            r#"/x/mail.conf:2: key 'smtpdelivery.tls': "maybe" is not one of opportunistic, verify, required, off"#,
        ),
        (
            "domains=a\ndefaultuser=.catch@x\n",
            r#"/x/mail.conf:2: key 'defaultuser': ".catch@x" cannot be an account: address starts with a dot or contains '..'"#,
        ),
        (
            "domains=a\nsmtpport=2525\npop3port=2525\n",
            "/x/mail.conf:3: key 'pop3port': port 2525 is also used by 'smtpport'",
        ),
        (
            "domains=a\ntls.certificate=c.pem\n",
            "/x/mail.conf: required key 'tls.key' is missing: tls.certificate is set",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "for {text:?}");
    }
}

#[test]
fn hostname_and_domains_must_be_names_or_addresses() {
    let cases = [
        (
            "domains=localhost\n# c\nhostname=h\u{e9}llo\n",
            r#"/x/mail.conf:3: key 'hostname': "héllo" is not ASCII; write its IDNA form "xn--hllo-bpa""#,
        ),
        (
            "domains=localhost\nhostname=b\u{fc}ro.example\n",
            r#"/x/mail.conf:2: key 'hostname': "büro.example" is not ASCII; write its IDNA form "xn--bro-hoa.example""#,
        ),
        (
            "domains=localhost, b\u{fc}ro..example\n",
            r#"/x/mail.conf:1: key 'domains': "xn--bro-hoa..example" is not a host name: it has an empty label"#,
        ),
        (
            "domains=localhost\nhostname=mail_1.example\n",
            r#"/x/mail.conf:2: key 'hostname': "mail_1.example" is not a host name: '_' is not"#,
        ),
        (
            "domains=a..b\n",
            r#"/x/mail.conf:1: key 'domains': "a..b" is not a host name: it has an empty label"#,
        ),
        (
            "domains=x@y\n",
            r#"/x/mail.conf:1: key 'domains': "x@y" is not a host name: '@' is not"#,
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.starts_with(want), "for {text:?}: {got}");
    }
    // What JES's sample and existing folders hold keeps working, with the names as written.
    let c = ok("domains=localhost,127.0.0.1,Example.com.,[10.0.0.1],::1\nhostname=127.0.0.1\n");
    assert_eq!(
        c.domains,
        vec!["localhost", "127.0.0.1", "example.com", "[10.0.0.1]", "::1"]
    );
    assert_eq!(c.hostname, "[127.0.0.1]");
    assert_eq!(
        ok("domains=a\nhostname=mx.a.example.\n").hostname,
        "mx.a.example"
    );
    assert_eq!(
        ok("domains=a\nhostname=[IPv6:::1]\n").hostname,
        "[IPv6:::1]"
    );
    assert_eq!(ok("domains=a\nhostname=::1\n").hostname, "[IPv6:::1]");
    // Unset: the machine's name if it is valid, else the first domain; never an invalid name.
    let c = ok("domains=localhost\n");
    assert_eq!(check_name(&c.hostname), Ok(()), "{}", c.hostname);
}

#[test]
fn error_fields() {
    match parse("domains=a\nsmtpport=abc\n") {
        Err(ConfigError::Value {
            path, line, key, ..
        }) => {
            assert_eq!(
                (path.as_path(), line, key.as_str()),
                (Path::new("/x/mail.conf"), 2, "smtpport")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_keys_warn_with_suggestion() {
    let (c, w) = parse("domains=a\nsmtport=2525\nfrobnicate=1\n").unwrap();
    assert_eq!(c.smtp_port, 25);
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].line, 2);
    assert_eq!(
        w[0].to_string(),
        "/x/mail.conf:2: unknown key 'smtport' ignored; did you mean 'smtpport'?"
    );
    assert_eq!(
        w[1].to_string(),
        "/x/mail.conf:3: unknown key 'frobnicate' ignored"
    );
}

#[test]
fn ip_patterns() {
    let p = |s: &str| IpPattern::parse(s).unwrap();
    assert!(p("127.0.0.1").matches(ip("127.0.0.1")));
    assert!(!p("127.0.0.1").matches(ip("127.0.0.2")));
    assert!(p("127.0.0.1").matches(ip("::ffff:127.0.0.1")));
    assert!(!p("127.0.0.1").matches(ip("::1")));
    assert!(p("192.168.*.*").matches(ip("192.168.7.9")));
    assert!(p("192.168.*.*").matches(ip("::ffff:192.168.0.1")));
    assert!(!p("192.168.*.*").matches(ip("192.169.7.9")));
    assert!(p("*.*.*.1").matches(ip("10.9.8.1")));
    assert!(p("10.0.0.0/8").matches(ip("10.200.3.4")));
    assert!(!p("10.0.0.0/8").matches(ip("11.0.0.1")));
    assert!(p("172.16.0.0/12").matches(ip("172.31.255.255")));
    assert!(!p("172.16.0.0/12").matches(ip("172.32.0.0")));
    assert!(p("0.0.0.0/0").matches(ip("8.8.8.8")));
    assert!(p("::1").matches(ip("::1")));
    assert!(!p("::1").matches(ip("127.0.0.1")));
    assert!(p("fd00::/8").matches(ip("fd12:3456::1")));
    assert!(!p("fd00::/8").matches(ip("fe80::1")));
    assert!(p("::ffff:127.0.0.1").matches(ip("127.0.0.1")));
    assert!(p("::ffff:10.0.0.0/104").matches(ip("10.1.2.3")));
    assert_eq!(p("192.168.*.*").to_string(), "192.168.*.*");
    assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(p("::1").to_string(), "::1");
    for bad in [
        "",
        "1.2.3",
        "1.2.3.256",
        "1.2.*.x",
        "*",
        "10.0.0.0/x",
        "::1/129",
        "a::g",
    ] {
        assert!(IpPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn relay_rules() {
    let c = ok("domains=a\nrelay.ipaddresses=127.0.0.1, 192.168.*.*,::1\nrelay.emailaddresses=App@Example.com,@Trusted.org\n");
    assert!(c.relay_ip_allowed(ip("127.0.0.1")));
    assert!(c.relay_ip_allowed(ip("::ffff:127.0.0.1")));
    assert!(c.relay_ip_allowed(ip("192.168.1.1")));
    assert!(c.relay_ip_allowed(ip("::1")));
    assert!(!c.relay_ip_allowed(ip("10.0.0.1")));
    assert!(c.relay_sender_allowed("app@example.com"));
    assert!(c.relay_sender_allowed("APP@EXAMPLE.COM"));
    assert!(c.relay_sender_allowed("anyone@trusted.org"));
    assert!(c.relay_sender_allowed("Anyone@TRUSTED.org"));
    assert!(!c.relay_sender_allowed("anyone@sub.trusted.org"));
    assert!(!c.relay_sender_allowed("other@example.com"));
    assert!(!c.relay_sender_allowed(""));
    assert!(!c.relay_sender_allowed("trusted.org"));
}

#[test]
fn limits_exempt_defaults_to_the_relay_addresses_and_none_exempts_nobody() {
    let c = ok("domains=a\nrelay.ipaddresses=127.0.0.1,192.168.*.*\n");
    assert!(c.limits_exempt(ip("127.0.0.1")));
    assert!(c.limits_exempt(ip("::ffff:127.0.0.1")));
    assert!(c.limits_exempt(ip("192.168.7.8")));
    assert!(!c.limits_exempt(ip("10.0.0.1")));
    assert!(
        !ok("domains=a\n").limits_exempt(ip("127.0.0.1")),
        "no relay list, nobody exempt"
    );

    let none = ok("domains=a\nrelay.ipaddresses=127.0.0.1\nlimits.exempt=None\n");
    assert!(none.limits_exempt.is_empty());
    assert!(!none.limits_exempt(ip("127.0.0.1")));
    assert!(
        none.relay_ip_allowed(ip("127.0.0.1")),
        "relaying is not touched"
    );

    let own = ok("domains=a\nrelay.ipaddresses=127.0.0.1\nlimits.exempt=10.0.0.0/8, ::1\n");
    assert!(own.limits_exempt(ip("10.1.2.3")));
    assert!(own.limits_exempt(ip("::1")));
    assert!(
        !own.limits_exempt(ip("127.0.0.1")),
        "an own list replaces the default"
    );
    let (_, warnings) = parse("domains=a\nlimits.exempt=none\n").unwrap();
    assert!(warnings.is_empty(), "a known key: {warnings:?}");

    assert_eq!(
        err("domains=a\nlimits.exempt=127.0.0.1,nobody\n"),
        r#"/x/mail.conf:2: key 'limits.exempt': "nobody" is not an IP address, an IPv4 pattern like 192.168.*.* or a CIDR block like 10.0.0.0/8"#
    );
}

#[test]
fn smart_hosts() {
    let c = ok("domains=a\ndefaultsmtpservers=smtp.example.com:587/user:pa:ss, relay.example.org ,[::1]:2525,h2/u@x:p/w\n");
    assert_eq!(
        c.smart_hosts,
        vec![
            SmartHost {
                host: "smtp.example.com".into(),
                port: 587,
                credentials: Some(("user".into(), "pa:ss".into()))
            },
            SmartHost {
                host: "relay.example.org".into(),
                port: 25,
                credentials: None
            },
            SmartHost {
                host: "::1".into(),
                port: 2525,
                credentials: None
            },
            SmartHost {
                host: "h2".into(),
                port: 25,
                credentials: Some(("u@x".into(), "p/w".into()))
            },
        ]
    );
    assert_eq!(
        c.smart_hosts[0].to_string(),
        "smtp.example.com:587/user:***"
    );
    // Errors do not echo a password either.
    assert!(SmartHost::parse("h:x/u:secret")
        .err()
        .is_some_and(|e| !e.contains("secret")));
}

#[test]
fn local_domains() {
    let c = ok("domains=localhost,127.0.0.1,Example.com,::1\n");
    assert!(c.is_local_domain("LOCALHOST"));
    assert!(c.is_local_domain("127.0.0.1"));
    assert!(c.is_local_domain("[127.0.0.1]"));
    assert!(c.is_local_domain("[IPv6:::1]"));
    assert!(c.is_local_domain("example.com."));
    assert!(!c.is_local_domain("[127.0.0.2]"));
    assert!(!c.is_local_domain("other.com"));
}

#[test]
fn hostname_rules() {
    assert_eq!(
        ok("domains=a\nhostname=127.0.0.1\n").hostname,
        "[127.0.0.1]"
    );
    assert_eq!(ok("domains=a\nhostname=::1\n").hostname, "[IPv6:::1]");
    assert_eq!(
        ok("domains=a\nhostname=[10.0.0.1]\n").hostname,
        "[10.0.0.1]"
    );
    assert_eq!(bracket_if_ip("mx.example.com"), "mx.example.com");
    let h = default_hostname("fallback.example");
    assert!(!h.is_empty() && !h.contains(char::is_whitespace), "{h}");
}

#[test]
fn connection_cache_seconds() {
    let c = ok("domains=a\n");
    assert_eq!(c.delivery_connection_cache, Duration::from_secs(2));
    let c = ok("domains=a\nsmtpdelivery.connectioncache=30\n");
    assert_eq!(c.delivery_connection_cache, Duration::from_secs(30));
    let c = ok("domains=a\nsmtpdelivery.connectioncache=0\n");
    assert_eq!(c.delivery_connection_cache, Duration::ZERO);
    assert_eq!(
        err("domains=a\nsmtpdelivery.connectioncache=2s\n"),
        r#"/x/mail.conf:2: key 'smtpdelivery.connectioncache': "2s" is not a whole number"#
    );
}

#[test]
fn dns_servers_and_mx_port() {
    let c = ok("domains=a\n");
    assert!(c.dns_servers.is_empty());
    assert_eq!(c.mx_port, 25);
    let c = ok("domains=a\ndns.servers=127.0.0.1:5353, 192.0.2.1 ,[::1]:53535,2001:db8::1,[2001:db8::2]\nsmtpdelivery.mxport=2525\n");
    let want: Vec<SocketAddr> = [
        "127.0.0.1:5353",
        "192.0.2.1:53",
        "[::1]:53535",
        "[2001:db8::1]:53",
        "[2001:db8::2]:53",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(c.dns_servers, want);
    assert_eq!(c.mx_port, 2525);
    let cases = [
        (
            "domains=a\ndns.servers=1.1.1.1,ns.example.com\n",
            r#"/x/mail.conf:2: key 'dns.servers': "ns.example.com" is not an IP address with an optional :port"#,
        ),
        (
            "domains=a\n\ndns.servers=127.0.0.1:0\n",
            r#"/x/mail.conf:3: key 'dns.servers': "127.0.0.1:0": "0" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\ndns.servers=127.0.0.1:x\n",
            r#"/x/mail.conf:2: key 'dns.servers': "127.0.0.1:x": "x" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\ndns.servers=::1:53x\n",
            r#"/x/mail.conf:2: key 'dns.servers': "::1:53x" is not an IP address with an optional :port"#,
        ),
        (
            "domains=a\nsmtpdelivery.mxport=0\n",
            r#"/x/mail.conf:2: key 'smtpdelivery.mxport': "0" is not a port number (1-65535)"#,
        ),
        (
            "domains=a\nsmtpdelivery.mxport=70000\n",
            r#"/x/mail.conf:2: key 'smtpdelivery.mxport': "70000" is not a port number (1-65535)"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "for {text:?}");
    }
}

#[test]
fn bare_lf_setting() {
    assert_eq!(
        ok("domains=a\nsmtp.barelf=reject\n").bare_lf,
        BareLf::Reject
    );
    assert_eq!(
        ok("domains=a\nsmtp.barelf=Normalize\n").bare_lf,
        BareLf::Normalize
    );
    let e = err("domains=a\nsmtp.barelf=strip\n");
    assert!(
        e.contains(":2:") && e.contains("smtp.barelf") && e.contains("normalize, reject"),
        "{e}"
    );
}

#[test]
fn history_keys() {
    let c = ok("domains=a\n");
    assert_eq!((c.history_days, c.history_subjects), (30, true));
    let c = ok("domains=a\nhistory.days=0\nhistory.subjects=false\n");
    assert_eq!((c.history_days, c.history_subjects), (0, false));
    let c = ok("domains=a\nhistory.days=365\n");
    assert_eq!(c.history_days, 365);
    assert_eq!(
        err("domains=a\nhistory.days=30d\n"),
        r#"/x/mail.conf:2: key 'history.days': "30d" is not a whole number"#
    );
    assert!(err("domains=a\n\nhistory.subjects=maybe\n")
        .starts_with("/x/mail.conf:3: key 'history.subjects':"));
}

/// An IDN in `domains` may be written in Unicode or as A-labels; mail to either spelling is
/// local (issue 19, part 3).
#[test]
fn idn_domains_match_in_both_forms() {
    for written in [
        "b\u{fc}ro.example",
        "xn--bro-hoa.example",
        "B\u{dc}RO.example",
    ] {
        let conf = ok(&format!("domains=localhost,{written}\n"));
        assert_eq!(
            conf.domains,
            ["localhost", "xn--bro-hoa.example"],
            "{written}"
        );
        for mail_to in [
            "b\u{fc}ro.example",
            "XN--BRO-HOA.example",
            "b\u{fc}ro.example.",
        ] {
            assert_eq!(
                conf.local_domain(mail_to),
                Some("xn--bro-hoa.example"),
                "{mail_to}"
            );
        }
        assert!(!conf.is_local_domain("bro.example"));
    }
}

#[test]
fn node_name_is_checked_and_defaults_to_the_machine() {
    assert_eq!(ok("domains=a\nnode.name=mx-2.b_1\n").node_name, "mx-2.b_1");
    assert!(err("domains=a\nnode.name=mx 2\n")
        .starts_with("/x/mail.conf:2: key 'node.name': \"mx 2\": ' ' is not a letter"));
    let long = "n".repeat(64);
    assert!(err(&format!("domains=a\nnode.name={long}\n")).contains("1 to 63 characters"));
    // Unset: the machine's own name (what `hostname` prints), not the `hostname` key.
    let c = ok("domains=a\nhostname=mx.a.example\n");
    let machine = crate::config::hostname::machine_name().unwrap_or_default();
    if check_node_name(&machine).is_ok() {
        assert_eq!(c.node_name, machine);
    } else {
        assert_eq!(c.node_name, "mx.a.example");
    }
}
