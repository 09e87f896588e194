//! `cargo bench --bench postgres -- [--scale medium|large] [--runs N] [--markdown FILE]`: the initial
//! sync into PostgreSQL. Starts a private PostgreSQL 15 server (`tests/common/pg.rs`, with `fsync`
//! back on, as a real server runs) and the built-in fake as its own `fake-api` process, then, `N`
//! times (default 3), syncs into a fresh database with the real binary and measures wall time,
//! records/s, the mirror's CPU and peak RSS (`wait4`), and the server's CPU (the postmaster's and its
//! children's, from /proc, reaped backends included). After each sync the floor loads the same rows
//! with plain binary `COPY` into the same tables of a fresh schema, with the same final indexes
//! (secondary indexes dropped first, built after): the fastest load PostgreSQL offers for them.
//! Figures, not assertions; see BENCHMARKS.md.

#[path = "../tests/common/pg.rs"]
mod pg;
#[path = "../tests/common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kustomer-mirror");
const KEY: &str = "bench-key";
const PG_SCHEMA: &str = include_str!("../src/postgres/schema.sql");

/// The tables a first sync fills: every entity's, and the change log.
fn tables() -> Vec<&'static str> {
    kustomer_mirror::entity::ENTITIES
        .iter()
        .map(|e| e.name)
        .chain(["change_log"])
        .collect()
}

/// One `sync` of the real binary.
fn sync(url: &str, db_url: &str) -> process::Measured {
    let started = Instant::now();
    let child = Command::new(BIN)
        .env_clear()
        .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", url)
        .env("KUSTOMER_API_KEY", KEY)
        .env("KUSTOMER_MIRROR__DATABASE__URL", db_url)
        .env("KUSTOMER_MIRROR__DATABASE__SSLMODE", "disable")
        .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
        .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
        .env("RUST_LOG", "warn")
        .arg("sync")
        .stdout(Stdio::null())
        .spawn()
        .expect("start sync");
    process::wait_measured(child, started)
}

/// CPU seconds the server has used so far: the postmaster's own and its reaped children's (every
/// backend that exited), plus its live children's (background workers, open sessions).
fn server_cpu(data_dir: &Path) -> f64 {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap_or_default();
    let Some(postmaster) = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return 0.0;
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Fields after the command's closing parenthesis: state is [0], ppid [1], utime [11], stime
    // [12], cutime [13], cstime [14].
    let fields = |pid: &str| -> Option<Vec<u64>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        Some(
            rest.split_whitespace()
                .map(|f| f.parse::<i64>().unwrap_or(0).max(0) as u64)
                .collect(),
        )
    };
    let mut total = 0u64;
    if let Some(f) = fields(&postmaster.to_string()) {
        total += f[11] + f[12] + f[13] + f[14];
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(f) = fields(&name)
            && f[1] == u64::from(postmaster)
        {
            total += f[11] + f[12];
        }
    }
    total as f64 / ticks
}

/// The rows of `db`'s mirror as binary COPY data per table, with the columns that are not generated,
/// streamed to files in `dir`. They stay out of this process's memory: a child inherits its parent's
/// peak RSS through fork and exec on Linux, so a large bench process would inflate the next sync's
/// `ru_maxrss`.
fn export(cluster: &pg::Cluster, db: &str, dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut client = cluster.client(db);
    let mut out = Vec::new();
    for table in tables() {
        let columns: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'kustomer' \
                 AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position",
                &[&table],
            )
            .expect("columns")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = columns.join(", ");
        let path = dir.join(format!("{table}.copy"));
        let mut file = std::fs::File::create(&path).expect("create the export file");
        let mut reader = client
            .copy_out(&format!(
                "COPY (SELECT {columns} FROM kustomer.{table}) TO STDOUT (FORMAT binary)"
            ))
            .expect("copy out");
        std::io::copy(&mut reader, &mut file).expect("write copy data");
        drop(reader);
        out.push((table.to_string(), columns, path));
    }
    out
}

/// The floor: the exported rows into a fresh schema of a fresh database by plain binary COPY, with
/// the secondary indexes dropped before and built after. Returns the time from the first COPY to the
/// last index.
fn floor(cluster: &pg::Cluster, rows: &[(String, String, PathBuf)]) -> Duration {
    let db = cluster.create_database("floor");
    let tables = &PG_SCHEMA[..PG_SCHEMA.find("\n-- @views\n").expect("the views marker")];
    let mut client = cluster.client(&db);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA kustomer; SET search_path TO kustomer; {tables}"
        ))
        .expect("create the floor's tables");
    let indexes: Vec<(String, String)> = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'kustomer' \
             AND indexdef NOT LIKE 'CREATE UNIQUE%'",
            &[],
        )
        .expect("indexes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, _) in &indexes {
        client
            .batch_execute(&format!("DROP INDEX kustomer.{name}"))
            .expect("drop index");
    }
    let started = Instant::now();
    for (table, columns, path) in rows {
        let mut data = std::fs::File::open(path).expect("open the export file");
        let mut writer = client
            .copy_in(&format!(
                "COPY kustomer.{table} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .expect("copy in");
        std::io::copy(&mut data, &mut writer).expect("copy data");
        writer.finish().expect("finish copy");
    }
    for (_, def) in &indexes {
        client.batch_execute(def).expect("build index");
    }
    started.elapsed()
}

fn count(cluster: &pg::Cluster, db: &str) -> i64 {
    let sql = tables()
        .iter()
        .filter(|t| **t != "change_log")
        .map(|t| format!("(SELECT COUNT(*) FROM kustomer.{t})"))
        .collect::<Vec<_>>()
        .join(" + ");
    cluster.query(db, &format!("SELECT {sql}"))[0][0]
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median_range(values: &[f64], decimals: usize) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    if n < 2 {
        return format!("{median:.decimals$}");
    }
    format!(
        "{median:.decimals$} ({:.decimals$}–{:.decimals$})",
        sorted[0],
        sorted[n - 1]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let scale = arg("--scale").unwrap_or_else(|| "medium".into());
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    let cluster =
        pg::Cluster::start().expect("PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin");
    // The test helper turns fsync off; a real server has it on.
    let conf = cluster.data_dir().join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
    text.push_str("\nfsync = on\n");
    std::fs::write(&conf, text).expect("write postgresql.conf");
    cluster.restart();
    let fake = process::FakeProcess::start(Path::new(BIN), KEY, &scale, &[]);
    let mut rows_per_s = Vec::new();
    let mut walls = Vec::new();
    let mut mirror_cpu = Vec::new();
    let mut server = Vec::new();
    let mut rss = Vec::new();
    let mut floors = Vec::new();
    let mut floor_rate = Vec::new();
    let mut ratios = Vec::new();
    let mut rows = 0;
    for run in 0..runs {
        let db = cluster.create_database("bench");
        let before = server_cpu(cluster.data_dir());
        let r = sync(&fake.url, &cluster.url(&db));
        let after = server_cpu(cluster.data_dir());
        assert!(r.ok, "the sync failed");
        rows = count(&cluster, &db);
        let dir = tempfile::tempdir().expect("a temp dir for the exported rows");
        let exported = export(&cluster, &db, dir.path());
        let f = floor(&cluster, &exported);
        let rate = rows as f64 / r.wall.as_secs_f64();
        let frate = rows as f64 / f.as_secs_f64();
        eprintln!(
            "run {}: {rows} rows in {:.2} s = {rate:.0}/s; mirror CPU {:.2} s, server CPU {:.2} s, \
             peak RSS {:.1} MB; COPY floor {:.2} s = {frate:.0}/s",
            run + 1,
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            after - before,
            r.peak_rss_kb as f64 / 1024.0,
            f.as_secs_f64()
        );
        walls.push(r.wall.as_secs_f64());
        rows_per_s.push(rate);
        mirror_cpu.push(r.cpu.as_secs_f64());
        server.push(after - before);
        rss.push(r.peak_rss_kb as f64 / 1024.0);
        floors.push(f.as_secs_f64());
        floor_rate.push(frate);
        ratios.push(rate / frate);
    }
    let table = format!(
        "| measure ({scale}, {runs} runs: median (range)) | value |\n|---|---|\n\
         | rows mirrored | {rows} |\n\
         | initial sync into PostgreSQL: wall time (s) | {} |\n\
         | initial sync: records/s end to end | {} |\n\
         | mirror CPU, user + system (s) | {} |\n\
         | server CPU, all PostgreSQL processes (s) | {} |\n\
         | mirror peak RSS (MB) | {} |\n\
         | COPY floor: same rows, same tables and final indexes (s) | {} |\n\
         | COPY floor: records/s | {} |\n\
         | end to end ÷ COPY floor (per run) | {} |\n",
        median_range(&walls, 2),
        median_range(&rows_per_s, 0),
        median_range(&mirror_cpu, 2),
        median_range(&server, 2),
        median_range(&rss, 1),
        median_range(&floors, 2),
        median_range(&floor_rate, 0),
        median_range(&ratios, 2),
    );
    print!("{table}");
    if let Some(path) = arg("--markdown") {
        std::fs::write(&path, &table).expect("write the markdown table");
        eprintln!("wrote {path}");
    }
}
