//! A real PostgreSQL for the database store's tests: Debian's server binaries (installed by
//! `scripts/install-test-deps`), a cluster made by `initdb` in a temporary folder and run by
//! `pg_ctl` on a free loopback port, stopped (immediately) when the value drops.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user the
//! package creates and every server command runs through `runuser -u postgres --`; as any other
//! user it runs as that user. Password logins over TCP use SCRAM with the password `PASSWORD`, so
//! the tests exercise the real authentication (and `store.passwordfile`), not `trust`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::free_port;

/// The password of the cluster's superuser `jes` (SCRAM over TCP).
pub const PASSWORD: &str = "pg-secret";

pub struct Postgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    run_as: Option<&'static str>,
    pub port: u16,
    /// The server's `-o` options, kept for `start_again`.
    options: String,
}

/// How a test's cluster runs.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// Also offer TLS with a self-signed certificate for 127.0.0.1.
    pub tls: bool,
    /// `synchronous_commit=on`: a commit survives the server's crash (`stop`), as in production.
    /// Off by default for speed (fsync stays off either way: the tests crash processes, not
    /// the machine, so written WAL survives in the page cache).
    pub durable: bool,
}

/// The newest Debian server binaries (`/usr/lib/postgresql/<major>/bin`), else `initdb` on PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    if let Some((_, bin)) = majors.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// Starts a cluster with a database `jes`, or prints `SKIPPED <test>: <why>` and returns
    /// `None` when no PostgreSQL can be run here (no binaries; root without a `postgres` user).
    pub fn start(test: &str) -> Option<Postgres> {
        Postgres::start_with(test, false)
    }

    /// With `tls`, the server also offers TLS with a self-signed certificate for 127.0.0.1
    /// (`tls_cert` returns its path, for `sslrootcert`).
    pub fn start_with(test: &str, tls: bool) -> Option<Postgres> {
        Postgres::start_opts(
            test,
            Options {
                tls,
                ..Options::default()
            },
        )
    }

    /// Whether a cluster can run here (else prints `SKIPPED <test>: <why>`): the binaries and
    /// the user to run them as.
    fn runnable(test: &str) -> Option<(PathBuf, Option<&'static str>)> {
        let Some(bin) = bin_dir() else {
            println!(
                "SKIPPED {test}: no PostgreSQL server binaries (run scripts/install-test-deps)"
            );
            return None;
        };
        let run_as = if is_root() {
            let known = Command::new("id")
                .arg("-u")
                .arg("postgres")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !known {
                println!("SKIPPED {test}: running as root and there is no `postgres` user to run PostgreSQL as");
                return None;
            }
            Some("postgres")
        } else {
            None
        };
        Some((bin, run_as))
    }

    /// A folder for a cluster, owned by the user that runs it.
    fn cluster_dir(run_as: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("jes-pg")
            .tempdir()
            .expect("tempdir");
        if run_as.is_some() {
            let st = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown of the cluster folder failed");
        }
        dir
    }

    pub fn start_opts(test: &str, opts: Options) -> Option<Postgres> {
        let (bin, run_as) = Postgres::runnable(test)?;
        let tls = opts.tls;
        let dir = Postgres::cluster_dir(run_as);
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_path_buf();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if run_as.is_some() {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&pwfile)
                .status()
                .unwrap();
        }
        let port = free_port();
        let mut pg = Postgres {
            _dir: dir,
            data,
            socket_dir,
            bin,
            run_as,
            port,
            options: String::new(),
        };
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data.to_str().unwrap(),
                "-U",
                "jes",
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
            ],
        );
        let mut options = pg.base_options(opts.durable);
        if tls {
            let (cert, key) = crate::common::self_signed(&pg.socket_dir);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            if pg.run_as.is_some() {
                for f in [&cert, &key] {
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(f)
                        .status()
                        .unwrap();
                }
            }
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
        }
        pg.options = options;
        pg.start_again();
        pg.create_db("jes");
        Some(pg)
    }

    fn base_options(&self, durable: bool) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit={} -c max_connections=200",
            self.port,
            self.socket_dir.display(),
            if durable { "on" } else { "off" }
        )
    }

    /// Starts the server (again, after `stop`) on the same port and data, waiting until it
    /// accepts connections.
    pub fn start_again(&self) {
        let log = self.socket_dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &self.options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// A streaming-replication standby of this cluster (`pg_basebackup -R` over the socket),
    /// started on a port of its own: read-only until `promote`.
    pub fn standby(&self, durable: bool) -> Postgres {
        let dir = Postgres::cluster_dir(self.run_as);
        let data = dir.path().join("data");
        let mut standby = Postgres {
            data,
            socket_dir: dir.path().to_path_buf(),
            _dir: dir,
            bin: self.bin.clone(),
            run_as: self.run_as,
            port: free_port(),
            options: String::new(),
        };
        self.run(
            "pg_basebackup",
            &[
                "-h",
                self.socket_dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "jes",
                "-D",
                standby.data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                // An immediate checkpoint: the default spreads it over minutes.
                "-c",
                "fast",
            ],
        );
        standby.options = standby.base_options(durable);
        standby.start_again();
        standby
    }

    /// Makes a standby the primary (`pg_ctl promote`, waiting until it accepts writes).
    pub fn promote(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "promote",
            ],
        );
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL through `psql` over the cluster's socket (as the superuser), returning its
    /// unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "jes"])
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .arg("-c")
            .arg(sql)
            .current_dir("/")
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// A `store.url` for database `db`, without the password (see `password_file`).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://jes@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// The server's certificate when started with TLS.
    pub fn tls_cert(&self) -> PathBuf {
        self.socket_dir.join("cert.pem")
    }

    /// Writes the password into `dir/pgpass` with mode 0600 and returns its path.
    pub fn password_file(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("pgpass");
        std::fs::write(&path, format!("{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// A jes server (not started) whose mail.conf has `extra` and puts it on `url` (a `store.url`
    /// of this cluster) with the password in a 0600 file; with `users`, those accounts go into
    /// the database (beside store.url, user.conf is ignored).
    pub fn server_on(&self, url: &str, extra: &str, users: Option<&str>) -> crate::common::Server {
        let server = crate::common::Server::prepare(extra, users.unwrap_or(""));
        let pw = self.password_file(&server.etc);
        let conf = server.etc.join("mail.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "store.url={url}\nstore.passwordfile={}\n",
            pw.display()
        ));
        std::fs::write(&conf, text).unwrap();
        if let Some(users) = users {
            add_accounts(&server.etc, users);
        }
        server
    }

    /// The mail.conf lines that put a jes server on database `db`.
    pub fn store_conf(&self, etc: &Path, db: &str) -> String {
        let pw = self.password_file(etc);
        format!(
            "store.url={}\nstore.passwordfile={}\n",
            self.url(db),
            pw.display()
        )
    }
}

/// Puts the accounts of `users` (`user.ADDRESS=PASSWORD` lines, as `Server::prepare` takes them)
/// into the database `etc/mail.conf` names, with `jes user add --dir etc` (with `store.url`,
/// `user.conf` is ignored); accounts already there are left as they are. Brings the schema up
/// to date, as `jes user` does.
pub fn add_accounts(etc: &Path, users: &str) {
    use std::io::Write;
    for line in users.lines() {
        let Some((address, password)) = line.strip_prefix("user.").and_then(|l| l.split_once('='))
        else {
            continue;
        };
        let mut child = Command::new(crate::common::jes_bin())
            .args(["user", "add", address, "--dir"])
            .arg(etc)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run jes");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        // Servers on one database share the accounts: the second server's folder finds them.
        let shared = String::from_utf8_lossy(&out.stderr).contains("already has an account");
        assert!(
            out.status.success() || shared,
            "jes user add {address}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Postgres {
    /// Freezes the server and every backend (SIGSTOP), or thaws them (SIGCONT): a database that
    /// takes connections into its backlog and answers nothing, as behind a dead network path.
    /// Never panics (it also thaws from `Drop`); a server that is not running is left alone.
    pub fn freeze(&self, frozen: bool) {
        let pid_file =
            std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        let Some(postmaster) = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return;
        };
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // The postmaster first, so that no backend starts while the others are found.
        // SAFETY: kill has no memory preconditions; a process gone meanwhile is ESRCH.
        unsafe { libc::kill(postmaster, signal) };
        let mut pids = Vec::new();
        let Ok(proc) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in proc.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the fields after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            // SAFETY: kill has no memory preconditions; a process gone meanwhile is ESRCH.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Stops the server at once (as a crash would), keeping its folder.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A test that failed while its database was frozen.
        self.freeze(false);
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                self.data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .current_dir("/")
            .output();
    }
}
