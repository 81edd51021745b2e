//! The `jes` command line: `serve`, `demo`, `init`, `check`, `user ...`, `queue ...`, `dkim ...`,
//! `trace`, `migrate`.
//! Nothing else lives here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jes::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "jes",
    version,
    about = "A small, fast, secure mail server: successor of the Java E-mail Server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on a configuration directory (JES's `Mail DIR`; default: the current directory).
    Serve {
        dir: Option<PathBuf>,
        /// Log only to the log file, not also to stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Create a sample configuration in DIR (default ./jes-demo/etc) if there is none, then serve it.
    Demo { dir: Option<PathBuf> },
    /// Write a commented sample configuration into DIR (refuses to overwrite).
    Init {
        dir: PathBuf,
        #[arg(long, default_value_t = 2525)]
        smtp_port: u16,
        #[arg(long, default_value_t = 1100)]
        pop3_port: u16,
    },
    /// Validate a configuration directory and print what the server would do, without starting it.
    Check { dir: Option<PathBuf> },
    /// Manage accounts: user.conf, or the database of store.url (passwords are read from a prompt
    /// or stdin, never arguments).
    User {
        #[command(subcommand)]
        action: UserAction,
        /// Configuration directory (default: the current directory).
        #[arg(long, short, global = true)]
        dir: Option<PathBuf>,
    },
    /// Look at and manage the outgoing queue (safe while the server runs).
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        /// Configuration directory (default: the current directory).
        #[arg(long, short, global = true)]
        dir: Option<PathBuf>,
    },
    /// Mail held by capture mode (capture=true): list, show, release or delete it.
    Capture {
        #[command(subcommand)]
        action: CaptureAction,
        /// Configuration directory (default: the current directory).
        #[arg(long, short, global = true)]
        dir: Option<PathBuf>,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
        /// Configuration directory (default: the current directory); keys go into its dkim/.
        #[arg(long, short, global = true)]
        dir: Option<PathBuf>,
    },
    /// What became of messages: their timelines from the delivery history (creates no file).
    /// Exit 0 with events, 1 with none, 2 on error.
    Trace {
        /// An address (sender or recipient, any case), @domain, <Message-ID>, a message id, or
        /// words of the subject.
        query: Option<String>,
        /// Only messages with an event in the last N minutes, hours or days (30m, 2h, 7d).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// One JSON object per event and line.
        #[arg(long)]
        json: bool,
        /// Remove every event sent by or to ADDRESS (an erasure request).
        #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["query", "since", "json"])]
        forget: Option<String>,
        /// Configuration directory (default: the current directory).
        #[arg(long, short)]
        dir: Option<PathBuf>,
    },
    /// Copy a JES or jes folder (mailboxes with their UIDLs, the queue, accounts, history) into
    /// a PostgreSQL database (--to), or a database back into a folder without mail (--from),
    /// then check the copy; the source is only read. Stop the servers first.
    Migrate {
        /// The configuration directory (JES's `Mail DIR`; the mail is in its store.dir).
        dir: PathBuf,
        /// The database, postgresql://USER@HOST:PORT/DB?sslmode=... (default: store.url of
        /// DIR/mail.conf).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Write this database back into DIR (created with a sample mail.conf if it has none).
        #[arg(long, value_name = "URL", conflicts_with = "to")]
        from: Option<String>,
        /// A file (mode 0600) holding the database password, to keep it off the command line.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// One line per queued message: id, age, attempts, next attempt, sender, recipients, last error.
    List,
    /// A queued message's details: envelope, each recipient's state and error, message headers.
    Show {
        /// The message's id (the digits of smtpID.ser).
        id: String,
    },
    /// Make a message (or all) due now and wake a running server.
    Retry {
        /// The message's id (the digits of smtpID.ser).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every message in the queue.
        #[arg(long)]
        all: bool,
    },
    /// Delete a message (or all) from the queue.
    Delete {
        /// The message's id (the digits of smtpID.ser).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every message in the queue.
        #[arg(long)]
        all: bool,
        /// First send the sender a bounce (delivery status notification) for the undelivered recipients.
        #[arg(long)]
        bounce: bool,
    },
}

#[derive(Subcommand)]
enum CaptureAction {
    /// One line per captured message: id, age, sender, held recipients, subject.
    List,
    /// A captured message: envelope and text.
    Show {
        /// The message's queue id (as `list` shows it).
        id: String,
    },
    /// Send a captured message (or all) now, even while capture stays on.
    Release {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every captured message.
        #[arg(long)]
        all: bool,
        /// Send it to this address instead of its held recipients (the envelope only).
        #[arg(long, value_name = "ADDRESS")]
        to: Option<String>,
    },
    /// Delete a captured message (or all); nobody is told.
    Delete {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every captured message.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum DkimAction {
    /// Make a signing key (DIR/dkim/DOMAIN.SELECTOR.key, mode 0600; never overwrites one) and print
    /// the mail.conf line and the DNS record to publish.
    Keygen {
        /// The From: domain the key signs for.
        domain: String,
        /// The selector (default: s and the year and month, such as s202611).
        #[arg(long)]
        selector: Option<String>,
        /// rsa (2048 bits, verified everywhere) or ed25519 (RFC 8463; not every receiver checks it).
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add an account.
    Add { address: String },
    /// Change an account's password.
    Passwd { address: String },
    /// Delete an account (its mailbox is kept).
    Del { address: String },
    /// List accounts.
    List,
    /// Set a user property: forwardAddresses, webhook, webhook.secret, webhook.raw, webhook.delete.
    Set {
        address: String,
        name: String,
        value: String,
    },
    /// Remove a user property.
    Unset { address: String, name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trace {
            query,
            since,
            json,
            forget,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            return trace(&dir, query, since, json, forget);
        }
        Command::Serve { dir, quiet } => serve(dir.unwrap_or_else(|| PathBuf::from(".")), !quiet),
        Command::Demo { dir } => demo(dir.unwrap_or_else(|| PathBuf::from("jes-demo/etc"))),
        Command::Init {
            dir,
            smtp_port,
            pop3_port,
        } => init(&dir, smtp_port, pop3_port),
        Command::Check { dir } => check(&dir.unwrap_or_else(|| PathBuf::from("."))),
        Command::User { action, dir } => user(action, &dir.unwrap_or_else(|| PathBuf::from("."))),
        Command::Queue { action, dir } => queue(action, &dir.unwrap_or_else(|| PathBuf::from("."))),
        Command::Capture { action, dir } => {
            capture(action, &dir.unwrap_or_else(|| PathBuf::from(".")))
        }
        Command::Dkim { action, dir } => dkim(action, &dir.unwrap_or_else(|| PathBuf::from("."))),
        Command::Migrate {
            dir,
            to,
            from,
            password_file,
        } => {
            let args = jes::cli::migrate::Args {
                dir,
                to,
                from,
                password_file,
            };
            jes::cli::migrate::migrate(&args, &mut std::io::stdout().lock())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("jes: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(dir: PathBuf, log_to_stderr: bool) -> Result<(), String> {
    if !dir.join("mail.conf").exists() {
        return Err(format!(
            "{} has no mail.conf: name the configuration directory (jes serve DIR), create one with `jes init DIR`, or try `jes demo`",
            dir.display()
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime
        .block_on(jes::server::serve(jes::server::ServeOptions {
            dir,
            log_to_stderr,
        }))
        .map_err(|e| e.to_string())
}

fn demo(dir: PathBuf) -> Result<(), String> {
    if !dir.join("mail.conf").exists() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        config::sample::write_sample(&dir, 2525, 1100).map_err(|e| e.to_string())?;
        // The demo also opens the web console, so a first look needs no editing.
        let mail_conf = dir.join("mail.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&mail_conf)
            .map_err(|e| format!("cannot open {}: {e}", mail_conf.display()))?;
        f.write_all(
            b"\n# The demo's web console (`jes demo` added these lines).\n\
              http.port=8025\nhttp.admins=analyst@localhost\n",
        )
        .map_err(|e| format!("cannot write {}: {e}", mail_conf.display()))?;
    }
    let abs = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let console = Config::load(&dir)
        .ok()
        .and_then(|(c, _)| {
            let admin = c.mail.http.admins.first()?.clone();
            Some((c.mail.http.address, c.mail.http.port?, admin))
        })
        .map(|(ip, port, admin)| {
            format!("\n  console: http://{ip}:{port}/ (user {admin}; the sample gives it the password `password`)")
        })
        .unwrap_or_default();
    eprintln!(
        "jes demo: configuration and mail in {dir}\n\
         \x20 send:  printf 'Subject: hello\\r\\n\\r\\nFirst task.\\r\\n' > msg.txt\n\
         \x20        curl smtp://127.0.0.1:2525 --mail-from you@example.org --mail-rcpt trackstudio@127.0.0.1 -T msg.txt\n\
         \x20 read:  curl pop3://127.0.0.1:1100/1 -u 'trackstudio@127.0.0.1:secret'\n\
         \x20 files: {dir}/users/trackstudio@127.0.0.1/ (mailbox), {dir}/smtp/ (queue), {log} (log)\n\
         \x20 stop:  Ctrl-C{console}",
        dir = abs.display(),
        log = abs.parent().map(|p| p.join("log/jes.log")).unwrap_or_default().display()
    );
    serve(dir, true)
}

fn init(dir: &Path, smtp_port: u16, pop3_port: u16) -> Result<(), String> {
    let stdout = std::io::stdout();
    jes::cli::init::init(dir, smtp_port, pop3_port, &mut stdout.lock())
}

fn check(dir: &Path) -> Result<(), String> {
    let stdout = std::io::stdout();
    jes::cli::check::check(dir, &mut stdout.lock())
}

fn user(action: UserAction, dir: &Path) -> Result<(), String> {
    use jes::cli::user::{self as user_cli, Action};
    let action = match action {
        UserAction::Add { address } => Action::Add { address },
        UserAction::Passwd { address } => Action::Passwd { address },
        UserAction::Del { address } => Action::Del { address },
        UserAction::List => Action::List,
        UserAction::Set {
            address,
            name,
            value,
        } => Action::Set {
            address,
            name,
            value,
        },
        UserAction::Unset { address, name } => Action::Unset { address, name },
    };
    let stdout = std::io::stdout();
    user_cli::run(dir, action, &mut stdout.lock())
}

fn queue(action: QueueAction, dir: &Path) -> Result<(), String> {
    use jes::cli::queue::{self as queue_cli, Target};
    let target = |id: Option<String>, all: bool| match (id, all) {
        (Some(id), false) => Target::One(id),
        _ => Target::All,
    };
    let stdout = std::io::stdout();
    let out = &mut stdout.lock();
    match action {
        QueueAction::List => queue_cli::list(dir, out),
        QueueAction::Show { id } => queue_cli::show(dir, &id, out),
        QueueAction::Retry { id, all } => queue_cli::retry(dir, &target(id, all), out),
        QueueAction::Delete { id, all, bounce } => {
            queue_cli::delete(dir, &target(id, all), bounce, out)
        }
    }
}

fn capture(action: CaptureAction, dir: &Path) -> Result<(), String> {
    use jes::cli::capture as cli;
    use jes::cli::queue::Target;
    let target = |id: Option<String>, all: bool| match (id, all) {
        (Some(id), false) => Target::One(id),
        _ => Target::All,
    };
    let stdout = std::io::stdout();
    let out = &mut stdout.lock();
    match action {
        CaptureAction::List => cli::list(dir, out),
        CaptureAction::Show { id } => cli::show(dir, &id, out),
        CaptureAction::Release { id, all, to } => {
            cli::release(dir, &target(id, all), to.as_deref(), out)
        }
        CaptureAction::Delete { id, all } => cli::delete(dir, &target(id, all), out),
    }
}

fn dkim(action: DkimAction, dir: &Path) -> Result<(), String> {
    use jes::dkim::keygen::Algorithm;
    match action {
        DkimAction::Keygen {
            domain,
            selector,
            algorithm,
        } => {
            let algorithm = match algorithm {
                KeyAlgorithm::Rsa => Algorithm::Rsa,
                KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
            };
            let stdout = std::io::stdout();
            jes::cli::dkim::keygen(
                dir,
                &domain,
                selector.as_deref(),
                algorithm,
                &mut stdout.lock(),
            )
        }
    }
}

/// `jes trace`: exit 0 with events, 1 with none, 2 on error (as grep).
fn trace(
    dir: &Path,
    query: Option<String>,
    since: Option<String>,
    json: bool,
    forget: Option<String>,
) -> ExitCode {
    use jes::cli::trace::{self, Traced};
    if let Some(address) = forget {
        return match trace::forget(dir, &address) {
            Ok(n) => {
                println!("removed {n} events sent by or to {address} from the delivery history");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("jes: {e}");
                ExitCode::from(2)
            }
        };
    }
    let stdout = std::io::stdout();
    match trace::trace(
        dir,
        query.as_deref(),
        since.as_deref(),
        json,
        &mut stdout.lock(),
    ) {
        Ok(Traced::Found) => ExitCode::SUCCESS,
        Ok(Traced::NothingFound(why)) => {
            eprintln!("jes: {why}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("jes: {e}");
            ExitCode::from(2)
        }
    }
}
