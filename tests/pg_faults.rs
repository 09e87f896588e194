//! PostgreSQL faults, through the real binary and a real server: each problem a user can meet
//! (refused, wrong password, missing database, no CREATE privilege, a statement_timeout, TLS not
//! offered, a certificate that does not verify, a second mirror on the schema) gives one `error:`
//! line that names it, exit 1, and never the password; a server restart mid-sync, a SIGKILL
//! mid-upsert and a connection cut during COMMIT end with a mirror equal to the fake. Expected
//! texts are literals; expected data comes from the fake.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::pg::{Cluster, SUPERUSER_PASSWORD};
use crate::common::*;
use kustomer_mirror::fake::{FakeServer, Scale};
use kustomer_mirror::sync::SyncOptions;

/// A mirror in a fresh database of `cluster`.
fn db_on(cluster: &'static Cluster) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unused.db");
    Db {
        dir,
        path,
        pg: Some(PgDb {
            cluster,
            name: cluster.create_database("faults"),
            schema: "kustomer".to_string(),
        }),
    }
}

/// A private server this test may restart or reconfigure (its watcher removes it after the run).
fn private_cluster() -> Option<&'static Cluster> {
    Cluster::start().map(|c| &*Box::leak(Box::new(c)))
}

/// `sync` into `db` with `env` on top (later values win), run to the end.
async fn sync_with(server: &FakeServer, db: &Db, env: &[(&str, String)]) -> Output {
    let mut cmd = mirror_cmd_db(&server.base_url(), KEY, db);
    cmd.arg("sync");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(cmd).await
}

/// Asserts a failed run: `code`, exactly one `error:` line, containing every one of `needles`, and
/// no password anywhere in the output.
fn assert_one_error(out: &Output, code: i32, needles: &[&str]) -> String {
    let all = text(out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{all}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "{needle:?} not in {:?}",
            errors[0]
        );
    }
    for secret in [SUPERUSER_PASSWORD, "wrong-pass-123", "limited-pass-456"] {
        assert!(!all.contains(secret), "a password leaked:\n{all}");
    }
    errors[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_problem_is_one_line_that_says_what_to_do() {
    let Some(db) = Db::postgres() else { return };
    let server = fake(Scale::Small).await;
    let pg = db.pg.as_ref().unwrap();
    let port = pg.cluster.port();
    let url = |user: &str, password: &str, port: u16, name: &str| {
        (
            "KUSTOMER_MIRROR__DATABASE__URL",
            format!("postgres://{user}:{password}@127.0.0.1:{port}/{name}"),
        )
    };

    // Nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = sync_with(
        &server,
        &db,
        &[url("postgres", SUPERUSER_PASSWORD, closed, &pg.name)],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &[
            "cannot connect to PostgreSQL at",
            "connection refused",
            "is the server running",
        ],
    );

    // A wrong password.
    let out = sync_with(
        &server,
        &db,
        &[url("postgres", "wrong-pass-123", port, &pg.name)],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &[
            "password authentication failed for user postgres",
            "fix the password in database.url",
        ],
    );

    // A database that does not exist.
    let out = sync_with(
        &server,
        &db,
        &[url("postgres", SUPERUSER_PASSWORD, port, "no_such_db")],
    )
    .await;
    assert_one_error(&out, 1, &["\"no_such_db\" does not exist", "create it"]);

    // A user that may connect but not create the schema.
    pg.cluster.execute(
        &pg.name,
        "CREATE ROLE limited LOGIN PASSWORD 'limited-pass-456'; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    );
    let out = sync_with(
        &server,
        &db,
        &[url("limited", "limited-pass-456", port, &pg.name)],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &[
            "permission denied",
            "lacks a privilege",
            "CREATE on the database",
        ],
    );

    // A statement_timeout too short for the work (set for the session through the URL's options).
    let out = sync_with(
        &server,
        &db,
        &[(
            "KUSTOMER_MIRROR__DATABASE__URL",
            format!(
                "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{port}/{}?options=-c%20statement_timeout%3D1",
                pg.name
            ),
        )],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &["statement_timeout", "raise it for the mirror's user"],
    );

    // TLS demanded from a server that does not offer it.
    let out = sync_with(
        &server,
        &db,
        &[("KUSTOMER_MIRROR__DATABASE__SSLMODE", "require".into())],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &["sslmode is require but the server does not offer TLS"],
    );

    // A URL that is not one is a configuration error: exit 2, and the password is not echoed.
    let out = sync_with(
        &server,
        &db,
        &[(
            "KUSTOMER_MIRROR__DATABASE__URL",
            format!("postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:notaport/x"),
        )],
    )
    .await;
    assert_one_error(&out, 2, &["database.url"]);

    // And with the right settings the same database syncs.
    let out = sync_with(&server, &db, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db, &server.handle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_mirror_on_the_same_schema_is_refused_and_another_schema_is_not() {
    let Some(db) = Db::postgres() else { return };
    let server = fake(Scale::Small).await;
    let pg = db.pg.as_ref().unwrap();
    // Another mirror's session holds the schema's lock (as a running daemon does), on a thread of
    // its own (the blocking client cannot run on the async runtime's threads).
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<bool>();
    let cluster = pg.cluster;
    let name = pg.name.clone();
    let holder = std::thread::spawn(move || {
        let mut client = cluster.client(&name);
        let held: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1)",
                &[&kustomer_mirror::postgres::lock_key("kustomer")],
            )
            .unwrap()
            .get(0);
        held_tx.send(held).unwrap();
        let _ = released.recv();
    });
    assert!(held_rx.recv().unwrap());
    let started = std::time::Instant::now();
    let out = sync_with(&server, &db, &[]).await;
    let line = assert_one_error(
        &out,
        1,
        &[
            "another kustomer-mirror",
            "is writing schema kustomer",
            "sync --wait",
        ],
    );
    assert!(
        line.contains(&format!("127.0.0.1:{}", pg.cluster.port())),
        "{line}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // One server holds several orgs' mirrors side by side: another schema is free.
    let out = sync_with(
        &server,
        &db,
        &[("KUSTOMER_MIRROR__DATABASE__SCHEMA", "second_org".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second = Db {
        dir: tempfile::tempdir().unwrap(),
        path: db.path.clone(),
        pg: Some(PgDb {
            cluster: pg.cluster,
            name: pg.name.clone(),
            schema: "second_org".into(),
        }),
    };
    assert_mirror_equals_fake(&second, &server.handle());
    // The refused mirror wrote nothing, not even its tables.
    assert!(db.try_query("SELECT COUNT(*) FROM sync_runs").is_none());
    // Once the holder lets go, `sync --wait` (and plain sync) go ahead.
    release.send(()).unwrap();
    holder.join().unwrap();
    let out = sync_with(&server, &db, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db, &server.handle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_against_sslrootcert_and_a_certificate_that_does_not_verify_is_refused() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let db = db_on(cluster);
    let server = fake(Scale::Small).await;
    // A private CA and a server certificate it signed for 127.0.0.1, made with the openssl tool.
    let certs = tempfile::tempdir().unwrap();
    let at = |f: &str| certs.path().join(f).display().to_string();
    let (ca, cert, key) = (at("ca.crt"), at("server.crt"), at("server.key"));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl tool (CI installs it)");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        &at("ca.key"),
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &at("server.csr"),
    ]);
    std::fs::write(
        at("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &at("server.csr"),
        "-CA",
        &ca,
        "-CAkey",
        &at("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &at("ext.cnf"),
        "-out",
        &cert,
    ]);
    // The server's copies: owned by the server's user, key mode 0600.
    let data = cluster.data_dir();
    let owner = std::fs::metadata(data).unwrap();
    for (from, to) in [(&cert, "server.crt"), (&key, "server.key")] {
        let to = data.join(to);
        std::fs::copy(from, &to).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let conf = data.join("postgresql.conf");
    let mut text_conf = std::fs::read_to_string(&conf).unwrap();
    text_conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(&conf, text_conf).unwrap();
    // TCP clients must use TLS from now on.
    let hba = data.join("pg_hba.conf");
    let hba_text: String = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("host ") || l.starts_with("host\t") {
                l.replacen("host", "hostssl", 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&hba, hba_text + "\n").unwrap();
    cluster.reload();

    // Without TLS the server turns the mirror away.
    let out = sync_with(
        &server,
        &db,
        &[("KUSTOMER_MIRROR__DATABASE__SSLMODE", "disable".into())],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &[
            "does not allow user postgres to connect",
            "database.sslmode",
        ],
    );
    // verify-full with the platform's roots: the self-signed certificate does not verify.
    let out = sync_with(
        &server,
        &db,
        &[("KUSTOMER_MIRROR__DATABASE__SSLMODE", "verify-full".into())],
    )
    .await;
    assert_one_error(
        &out,
        1,
        &["certificate does not verify", "database.sslrootcert"],
    );
    // verify-full with the certificate as the root: verified, and the sync runs over TLS.
    let out = sync_with(
        &server,
        &db,
        &[
            ("KUSTOMER_MIRROR__DATABASE__SSLMODE", "verify-full".into()),
            ("KUSTOMER_MIRROR__DATABASE__SSLROOTCERT", ca.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db, &server.handle());
    // require: encrypted, certificate not checked (as libpq).
    let out = sync_with(
        &server,
        &db,
        &[("KUSTOMER_MIRROR__DATABASE__SSLMODE", "require".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_sync_is_ridden_out_and_the_sync_ends_equal_to_the_fake() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let db = db_on(cluster);
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    let restarted = Arc::new(AtomicBool::new(false));
    let flag = restarted.clone();
    // A fast restart (every session cut) while pages are being stored.
    fake.on_request(
        40,
        Box::new(move |_| {
            std::thread::spawn(move || {
                cluster.restart();
                flag.store(true, Ordering::SeqCst);
            });
        }),
    );
    let options = SyncOptions {
        page_size: 100,
        ..SyncOptions::default()
    };
    let report = sync_ok(&engine(&server, &db, options.clone())).await;
    assert!(
        restarted.load(Ordering::SeqCst),
        "the restart should have finished before the sync did"
    );
    assert!(cluster.log().contains("received fast shutdown request"));
    assert!(report.totals().0.changed() > 0);
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
    // The next sync finds nothing to do.
    let again = sync_ok(&engine(&server, &db, options)).await;
    assert_eq!(again.totals().0.changed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_killed_mid_upsert_shows_nothing_half_written_and_the_next_run_completes() {
    let Some(db) = Db::postgres() else { return };
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    let out = sync_with(&server, &db, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Many updates, so the next sync is a long run of upserts (UPDATE … FROM unnest) to kill.
    let updated = fake.update_many("messages", 20_000);
    let n = updated.len() as i64;
    assert!(n > 5_000, "{n} messages updated");
    let logged = "SELECT COUNT(*) FROM change_log WHERE entity = 'messages' AND op = 'update'";
    let mut cmd = mirror_cmd_db(&server.base_url(), KEY, &db);
    cmd.arg("sync")
        .env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        if scalar(&db, logged) >= 3_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed before it finished");
    // Nothing half-written: every row stored in its new version has its change-log row, and no
    // update is logged whose row is not stored.
    let logged_now = scalar(&db, logged);
    assert!(
        logged_now > 0 && logged_now < n,
        "{logged_now} updates logged"
    );
    let updated_ids: std::collections::HashSet<&str> = updated.iter().map(String::as_str).collect();
    let fresh = fake
        .records("messages")
        .into_iter()
        .filter(|r| r["id"].as_str().is_some_and(|id| updated_ids.contains(id)))
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["attributes"]["updatedAt"].as_str().unwrap().to_string(),
            )
        })
        .collect::<std::collections::HashMap<_, _>>();
    let stored = db.query(
        "SELECT id, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM messages",
    );
    let new_rows = stored
        .iter()
        .filter(|r| {
            let id = r[0].as_deref().unwrap();
            fresh.get(id).map(String::as_str) == r[1].as_deref()
        })
        .count() as i64;
    assert_eq!(
        new_rows, logged_now,
        "rows with the new version = logged updates"
    );
    // The next run completes, equal to the fake, with each update logged once.
    let out = sync_with(&server, &db, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
    assert_eq!(scalar(&db, logged), n);
}

/// A TCP proxy in front of PostgreSQL that cuts one connection in the middle of a `COMMIT`: the
/// first `COMMIT` sent on a connection after it sent a `COPY` (a batch of pages with new rows) is
/// passed on to the server, which commits it, and the server's answer is never passed back; both
/// sides are then closed. The client cannot tell whether its transaction committed.
struct CommitCutter {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl CommitCutter {
    fn start(server_port: u16) -> CommitCutter {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let fired = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    return;
                };
                // Set when this connection's COMMIT is on its way: the answer must not get back.
                let silenced = Arc::new(AtomicBool::new(false));
                let (mut client_r, mut server_w) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (fired, quiet) = (fired.clone(), silenced.clone());
                std::thread::spawn(move || {
                    // A simple-protocol query message: 'Q', length 4 + 7, "COMMIT\0".
                    const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
                    let mut copied = false;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        copied |= chunk.windows(5).any(|w| w == b"COPY ");
                        let cut_here = copied
                            && chunk.windows(COMMIT.len()).any(|w| w == COMMIT)
                            && !fired.swap(true, Ordering::SeqCst);
                        if cut_here {
                            quiet.store(true, Ordering::SeqCst);
                        }
                        if server_w.write_all(chunk).is_err() {
                            break;
                        }
                        if cut_here {
                            // Give the server time to commit, then cut both sides.
                            std::thread::sleep(Duration::from_millis(500));
                            let _ = server_w.shutdown(Shutdown::Both);
                            let _ = client_r.shutdown(Shutdown::Both);
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if silenced.load(Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                });
            }
        });
        CommitCutter { port, cut }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_commit_neither_loses_nor_recounts_the_batch() {
    let Some(db) = Db::postgres() else { return };
    let pg = db.pg.as_ref().unwrap();
    let cutter = CommitCutter::start(pg.cluster.port());
    let url = pg.cluster.url(&pg.name).replace(
        &format!(":{}/", pg.cluster.port()),
        &format!(":{}/", cutter.port),
    );
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let out = sync_with(&server, &db, &[("KUSTOMER_MIRROR__DATABASE__URL", url)]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        cutter.cut.load(Ordering::SeqCst),
        "no COMMIT was cut:\n{all}"
    );
    assert!(all.contains("lost the connection to PostgreSQL"), "{all}");
    assert!(!all.contains(SUPERUSER_PASSWORD), "{all}");
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
    // A first sync inserts every record once: the runs' counters say so, whether or not the cut
    // batch had committed before the connection went.
    let upstream: i64 = kustomer_mirror::entity::ENTITIES
        .iter()
        .map(|e| fake.records(e.name).len() as i64)
        .sum();
    assert_eq!(scalar(&db, "SELECT SUM(inserted) FROM sync_runs"), upstream);
    assert_eq!(scalar(&db, "SELECT SUM(unchanged) FROM sync_runs"), 0);
    let summary = format!("{upstream} inserted, 0 updated, 0 deleted, 0 unchanged");
    assert!(all.contains(&summary), "{summary:?} expected in:\n{all}");
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM change_log WHERE op = 'insert'"),
        upstream
    );
}

/// A TCP proxy in front of PostgreSQL that plays a network dropping without a FIN: on the first
/// connection that sends a `COPY`, the client's side is closed (the mirror sees the connection
/// lost) while the server's side stays open and silent, so its backend still holds the schema's
/// lock, as after a half-open connection. Later connections pass through.
struct HalfOpener {
    port: u16,
    fired: Arc<AtomicBool>,
}

impl HalfOpener {
    fn start(server_port: u16) -> HalfOpener {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        // Server sides kept open (never closed) for the whole test.
        let kept: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    return;
                };
                let (mut client_r, mut server_w) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (flag, kept) = (flag.clone(), kept.clone());
                let gone = Arc::new(AtomicBool::new(false));
                let gone_w = gone.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        if chunk.windows(5).any(|w| w == b"COPY ")
                            && !flag.swap(true, Ordering::SeqCst)
                        {
                            // The client's side goes; the server's stays open and hears nothing.
                            gone_w.store(true, Ordering::SeqCst);
                            kept.lock().unwrap().push(server_w);
                            let _ = client_r.shutdown(Shutdown::Both);
                            return;
                        }
                        if server_w.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = server_w.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if gone.load(Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        HalfOpener { port, fired }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_half_open_connection_the_old_session_is_ended_and_the_sync_goes_on() {
    let Some(db) = Db::postgres() else { return };
    let pg = db.pg.as_ref().unwrap();
    let opener = HalfOpener::start(pg.cluster.port());
    let url = pg.cluster.url(&pg.name).replace(
        &format!(":{}/", pg.cluster.port()),
        &format!(":{}/", opener.port),
    );
    let server = fake(Scale::Small).await;
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        sync_with(&server, &db, &[("KUSTOMER_MIRROR__DATABASE__URL", url)]),
    )
    .await
    .expect("the sync hung after the half-open connection");
    let all = text(&out);
    assert!(
        opener.fired.load(Ordering::SeqCst),
        "no connection was cut:\n{all}"
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("lost the connection to PostgreSQL"), "{all}");
    assert!(
        all.contains("ended this mirror's previous PostgreSQL session"),
        "{all}"
    );
    assert!(!all.contains(SUPERUSER_PASSWORD), "{all}");
    assert_mirror_equals_fake(&db, &server.handle());
}
