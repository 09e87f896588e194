//! A throwaway PostgreSQL 15 server for the integration tests.
//!
//! [`Cluster::start`] runs `initdb` and `pg_ctl start` in a fresh temp dir: superuser `postgres`
//! with password [`SUPERUSER_PASSWORD`] over TCP on 127.0.0.1 (scram-sha-256), a free port, a
//! private Unix socket directory, `fsync=off`. [`shared`] gives one such server per test binary.
//!
//! The helpers' own connections ([`Cluster::execute`], [`Cluster::client`], ...) go through the
//! private Unix socket (`trust`), so they keep working when a test rewrites the `host` lines of
//! `pg_hba.conf` (e.g. to demand TLS); the code under test uses [`Cluster::url`] (TCP + password).
//!
//! As root (CI), `initdb` and `pg_ctl` run as the `postgres` user through `runuser`, and the temp
//! dir is handed to that user. Each server gets a watcher process that stops it and removes its
//! directory once the test process is gone, so neither a shared server (a static, never dropped)
//! nor a server of a killed test outlives the test run.
#![allow(dead_code)]

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The password of the superuser `postgres`; tests check it never shows up in output.
pub const SUPERUSER_PASSWORD: &str = "pg-test-secret";

/// Where the PostgreSQL 15 binaries live.
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How many ports `start` tries before giving up.
const PORT_ATTEMPTS: usize = 5;

/// Counter behind the names `create_database` hands out (unique within the test process).
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private PostgreSQL server in a temp dir; stopped and removed on drop.
pub struct Cluster {
    /// Owns the temp dir (removed on drop); `None` only while dropping.
    dir: Option<tempfile::TempDir>,
    /// Everything lives below this: `data/`, `sock/`, `server.log`.
    root: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    log_file: PathBuf,
    port: u16,
    /// `Some((uid, gid))` of the `postgres` user when running as root.
    run_as: Option<(u32, u32)>,
    /// The watcher process (its own process group) that cleans up after the test process exits.
    watcher: Mutex<Option<Child>>,
}

/// Why the server cannot be started here, or `None` when it can.
fn missing_prerequisite() -> Option<String> {
    for tool in ["initdb", "pg_ctl", "postgres"] {
        let path = Path::new(BIN_DIR).join(tool);
        if !path.is_file() {
            return Some(format!("PostgreSQL binary {} not found", path.display()));
        }
    }
    if is_root() {
        if postgres_ids().is_none() {
            return Some(
                "running as root and there is no `postgres` user to run the server".into(),
            );
        }
        if !Path::new("/usr/sbin/runuser").is_file() && !Path::new("/sbin/runuser").is_file() {
            return Some("running as root and `runuser` is not available".into());
        }
    }
    None
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user.
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: the name is a valid NUL-terminated string; the returned record is read at once,
    // before any other getpw* call in this thread could overwrite it.
    unsafe {
        let pw = libc::getpwnam(c"postgres".as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A free TCP port on 127.0.0.1 (free when we looked; `start` retries if it gets taken).
fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to pick a port");
    listener
        .local_addr()
        .expect("local_addr of the port probe")
        .port()
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A readable description of a client error, including the server's message when there is one.
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(postgres::error::ErrorPosition::Original(position)) = db.position() {
                text.push_str(&format!(" at character {position}"));
            }
            if let Some(detail) = db.detail() {
                text.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("\nHINT: {hint}"));
            }
            if let Some(context) = db.where_() {
                text.push_str(&format!("\nCONTEXT: {context}"));
            }
            text
        }
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

fn output_text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end()
    )
}

impl Cluster {
    /// Starts a new private server. None (after printing "skipping: <reason>" to stderr) when
    /// the PostgreSQL binaries are missing and the env var CI is unset; panics with the reason
    /// when CI is set. Any other failure (initdb, pg_ctl start) panics with the server log's tail.
    pub fn start() -> Option<Cluster> {
        if let Some(reason) = missing_prerequisite() {
            if ci() {
                panic!("cannot start PostgreSQL for the tests (CI is set): {reason}");
            }
            eprintln!("skipping: {reason}");
            return None;
        }
        let run_as = if is_root() { postgres_ids() } else { None };

        let dir = tempfile::Builder::new()
            .prefix("kmirror-pg-")
            .tempdir()
            .expect("create a temp dir for PostgreSQL");
        let root = dir.path().to_path_buf();
        let mut cluster = Cluster {
            data: root.join("data"),
            sock: root.join("sock"),
            log_file: root.join("server.log"),
            root,
            dir: Some(dir),
            port: 0,
            run_as,
            watcher: Mutex::new(None),
        };
        // tempfile makes the dir 0700; the postgres user must be able to enter and write it.
        std::fs::set_permissions(&cluster.root, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the PostgreSQL temp dir");
        cluster.hand_over(&cluster.root);
        cluster.make_dir(&cluster.sock, 0o755);
        // The watcher comes first so that even a test process killed during initdb or start
        // leaves nothing behind. From here on a panic drops `cluster`, which stops whatever was
        // started.
        cluster.spawn_watcher();
        cluster.init_db();
        cluster.configure();
        cluster.start_server();
        Some(cluster)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// postgres://postgres:<password>@127.0.0.1:<port>/<db>
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Creates a fresh database with a unique name (prefix + counter) and returns its name.
    /// The prefix is lower-cased and anything but `[a-z0-9_]` becomes `_`. Safe to call from
    /// inside a tokio runtime.
    pub fn create_database(&self, prefix: &str) -> String {
        let mut clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
            clean.insert(0, 'd');
        }
        clean.truncate(48);
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{clean}_{n}");
        self.execute("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// Runs SQL as the superuser in database `db` (simple query, several statements allowed);
    /// panics with the server's message on error. Safe to call from inside a tokio runtime: the
    /// work runs on a fresh thread.
    pub fn execute(&self, db: &str, sql: &str) {
        let result = self.on_thread(db, |client| {
            client.batch_execute(sql).map_err(|e| describe(&e))
        });
        if let Err(message) = result {
            let shown: String = sql.chars().take(2000).collect();
            panic!(
                "SQL failed in database {db:?}: {message}\nSQL:\n{shown}\n{}",
                self.log_tail()
            );
        }
    }

    /// Runs one query as the superuser in `db` over the simple (text) protocol and returns every
    /// row's columns as PostgreSQL prints them (NULL as None). Safe inside a tokio runtime.
    pub fn query(&self, db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_query_inner(db, sql)
            .unwrap_or_else(|message| panic!("query failed in {db:?}: {message}\nSQL: {sql}"))
    }

    /// [`Cluster::query`], None on any error (a table not created yet).
    pub fn try_query(&self, db: &str, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        self.try_query_inner(db, sql).ok()
    }

    fn try_query_inner(&self, db: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        self.on_thread(db, |client| {
            let messages = client.simple_query(sql).map_err(|e| describe(&e))?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect())
        })
    }

    /// A connected superuser client on `db` (postgres::Client, NoTls, via the private Unix
    /// socket). The sync client runs its own runtime: do not call this or use the client on a
    /// tokio runtime thread (it panics with "Cannot start a runtime from within a runtime"); in
    /// async tests use it inside `tokio::task::spawn_blocking` or a std thread.
    pub fn client(&self, db: &str) -> postgres::Client {
        self.connect(db).unwrap_or_else(|message| {
            panic!(
                "connecting to database {db:?} failed: {message}\n{}",
                self.log_tail()
            )
        })
    }

    /// pg_ctl restart -m fast (waits until it accepts connections again).
    pub fn restart(&self) {
        let output = self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60", "-l"], true);
        self.check("pg_ctl restart", &output);
    }

    /// pg_ctl stop -m immediate; start() again is possible via `start_again`.
    pub fn stop(&self) {
        let output = self.pg_ctl(&["stop", "-m", "immediate", "-w"], false);
        self.check("pg_ctl stop", &output);
    }

    /// Starts the server again after `stop`, on the same port and data dir (waits until it
    /// accepts connections).
    pub fn start_again(&self) {
        let output = self.pg_ctl(&["start", "-w", "-t", "60", "-l"], true);
        self.check("pg_ctl start", &output);
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_file)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The data directory (tests edit postgresql.conf / pg_hba.conf for TLS tests); call
    /// `reload()` to apply. As root, files created here must be readable by the `postgres` user
    /// (server keys: owned by it and mode 0600). The helper's own settings (listen_addresses,
    /// unix_socket_directories, fsync, max_connections) are appended at the end of
    /// postgresql.conf; lines appended after them win.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// pg_ctl reload, then waits (up to 10 s) until new connections see the reloaded
    /// configuration (pg_conf_load_time changes), so pg_hba.conf / TLS changes are in effect
    /// when this returns. Panics with the log's tail if the reload does not take effect (e.g. a
    /// broken postgresql.conf).
    pub fn reload(&self) {
        let before = self.conf_load_time();
        let output = self.pg_ctl(&["reload"], false);
        self.check("pg_ctl reload", &output);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.conf_load_time() == before {
            if Instant::now() > deadline {
                panic!(
                    "pg_ctl reload: the server did not reload its configuration within 10 s\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // ----- internals -----

    fn conf_load_time(&self) -> String {
        self.on_thread("postgres", |client| {
            client
                .query_one("SELECT pg_conf_load_time()::text", &[])
                .map(|row| row.get::<_, String>(0))
                .map_err(|e| describe(&e))
        })
        .unwrap_or_else(|message| {
            panic!(
                "reading pg_conf_load_time() failed: {message}\n{}",
                self.log_tail()
            )
        })
    }

    /// Connects to `db` and runs `work` on a fresh std thread (the sync client must not run on a
    /// tokio runtime thread). A panic in `work` is propagated.
    fn on_thread<T: Send>(
        &self,
        db: &str,
        work: impl FnOnce(&mut postgres::Client) -> Result<T, String> + Send,
    ) -> Result<T, String> {
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                let mut client = self.connect(db)?;
                work(&mut client)
            });
            handle
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
        })
    }

    fn connect(&self, db: &str) -> Result<postgres::Client, String> {
        postgres::Config::new()
            .host_path(&self.sock)
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .application_name("kustomer-mirror-tests")
            .connect_timeout(Duration::from_secs(30))
            .connect(postgres::NoTls)
            .map_err(|e| describe(&e))
    }

    /// "server log (last lines):\n..." for panic messages.
    fn log_tail(&self) -> String {
        format!(
            "--- server log {} (last 40 lines) ---\n{}",
            self.log_file.display(),
            tail(&self.log(), 40)
        )
    }

    fn check(&self, what: &str, output: &Output) {
        if !output.status.success() {
            panic!(
                "{what} failed\n{}\n{}",
                output_text(output),
                self.log_tail()
            );
        }
    }

    /// `BIN_DIR/tool`, run as `postgres` through runuser when we are root.
    fn command(&self, tool: &str) -> Command {
        let path = Path::new(BIN_DIR).join(tool);
        let mut command = if self.run_as.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The test's cwd may not be readable by the postgres user.
        command.current_dir(&self.root).stdin(Stdio::null());
        command
    }

    /// The postmaster options (`pg_ctl -o`). Only the port: the other settings are in
    /// postgresql.conf (see `configure`).
    fn server_options(&self) -> String {
        format!("-p {}", self.port)
    }

    /// Appends the test settings to postgresql.conf. They live there rather than in `pg_ctl -o`
    /// because a command-line `-c max_connections` that differs from the file's value makes
    /// every reload log "parameter ... cannot be changed without restarting the server" and
    /// "configuration file ... contains errors".
    fn configure(&self) {
        let sock = self.sock.display().to_string().replace('\'', "''");
        let settings = format!(
            "\n# kustomer-mirror tests (tests/common/pg.rs)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sock}'\n\
             fsync = off\n\
             max_connections = 200\n"
        );
        let conf = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .unwrap_or_else(|e| panic!("open {}: {e}", conf.display()));
        std::io::Write::write_all(&mut file, settings.as_bytes())
            .unwrap_or_else(|e| panic!("append to {}: {e}", conf.display()));
    }

    /// Runs `pg_ctl -D DATA <args>`; with `with_options`, `-o OPTIONS` and the log file path
    /// (after a trailing `-l` in `args`) are appended.
    fn pg_ctl(&self, args: &[&str], with_options: bool) -> Output {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(&self.data).args(args);
        if with_options {
            command
                .arg(&self.log_file)
                .arg("-o")
                .arg(self.server_options());
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("running pg_ctl {args:?}: {e}"))
    }

    /// Gives `path` to the postgres user when running as root.
    fn hand_over(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }

    fn make_dir(&self, path: &Path, mode: u32) {
        std::fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        self.hand_over(path);
    }

    /// initdb with locale C.UTF-8, falling back to C where that locale does not exist.
    fn init_db(&self) {
        let pwfile = self.root.join("pwfile");
        std::fs::write(&pwfile, format!("{SUPERUSER_PASSWORD}\n"))
            .expect("write the initdb password file");
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the initdb password file");
        self.hand_over(&pwfile);

        let mut failures = Vec::new();
        for locale in ["C.UTF-8", "C"] {
            if self.data.exists() {
                let _ = std::fs::remove_dir_all(&self.data);
            }
            self.make_dir(&self.data, 0o700);
            let output = self
                .command("initdb")
                .arg("-D")
                .arg(&self.data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .args(["-E", "UTF8", "--no-instructions"])
                .arg(format!("--locale={locale}"))
                .output()
                .unwrap_or_else(|e| panic!("running initdb: {e}"));
            if output.status.success() {
                let _ = std::fs::remove_file(&pwfile);
                return;
            }
            failures.push(format!(
                "initdb --locale={locale}:\n{}",
                output_text(&output)
            ));
        }
        let _ = std::fs::remove_file(&pwfile);
        panic!("initdb failed\n{}", failures.join("\n"));
    }

    /// pg_ctl start on a free port, retrying with another port when the chosen one got taken.
    fn start_server(&mut self) {
        for attempt in 1..=PORT_ATTEMPTS {
            self.port = free_port();
            let log_before = self.log().len();
            let output = self.pg_ctl(&["start", "-w", "-t", "60", "-l"], true);
            if output.status.success() {
                return;
            }
            let log = self.log();
            let new_log = log.get(log_before..).unwrap_or(&log);
            let port_taken = new_log.contains("Address already in use")
                || new_log.contains("could not bind IPv4 address");
            if !port_taken || attempt == PORT_ATTEMPTS {
                // Don't let Drop try to stop a server that never came up with this port.
                let _ = self.pg_ctl(&["stop", "-m", "immediate"], false);
                panic!(
                    "pg_ctl start failed (attempt {attempt}, port {})\n{}\n{}",
                    self.port,
                    output_text(&output),
                    self.log_tail()
                );
            }
        }
    }

    /// A process (in its own process group, so a Ctrl-C to the test does not reach it) that
    /// waits for the test process to end, then stops the server and removes the temp dir. It
    /// runs as the invoking user (as root it uses runuser for pg_ctl: `kill -0` from the
    /// postgres user on a root process would fail at once).
    fn spawn_watcher(&self) {
        let script = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
"$@" >/dev/null 2>&1
rm -rf "$dir""#;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("pg-watcher")
            .arg(std::process::id().to_string())
            .arg(&self.root);
        if self.run_as.is_some() {
            command.args(["runuser", "-u", "postgres", "--"]);
        }
        command
            .arg(Path::new(BIN_DIR).join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate"])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the PostgreSQL watcher: {e}"));
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    }
}

impl Drop for Cluster {
    /// pg_ctl stop -m immediate (errors ignored), end the watcher, remove the temp dir.
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"], false);
        }
        let watcher = self
            .watcher
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = watcher {
            if let Ok(pgid) = i32::try_from(child.id()) {
                // SAFETY: kill has no memory-safety preconditions; the group is the watcher's own
                // (process_group(0)), which we started.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// One server shared by all tests of a test binary (started on first use, via
/// std::sync::OnceLock); None when skipped as above. Never dropped: its watcher stops it and
/// removes its directory once the test process has exited.
pub fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    SHARED.get_or_init(Cluster::start).as_ref()
}
