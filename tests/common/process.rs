//! Processes of the real binary for tests and benches: a `fake-api` in a process of its own (killed
//! when dropped), and a child waited for with its resource use (`wait4`). Shared by tests/common and,
//! through `#[path]`, by benches/sync.rs and benches/postgres.rs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `kustomer-mirror fake-api` on a free port of 127.0.0.1.
pub struct FakeProcess {
    /// The process (public so a test can kill -9 it).
    pub child: Child,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
}

impl FakeProcess {
    /// Starts the fake of `binary` accepting `key` at `scale`, with `extra` arguments.
    pub fn start(binary: &Path, key: &str, scale: &str, extra: &[&str]) -> FakeProcess {
        let mut child = Command::new(binary)
            .args([
                "fake-api",
                "--listen",
                "127.0.0.1:0",
                "--api-key",
                key,
                "--scale",
                scale,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-api");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let url = first.rsplit(' ').next().unwrap_or_default().to_string();
        assert!(url.starts_with("http://"), "fake-api said: {first}");
        // Keep draining its stdout so the fake never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        FakeProcess { child, url }
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a waited-for child went.
pub struct Measured {
    /// From `started` to its exit.
    pub wall: Duration,
    /// User plus system CPU.
    pub cpu: Duration,
    /// Peak RSS (`ru_maxrss`, KiB). A child inherits its parent's high-water mark through fork and
    /// exec on Linux: keep the parent small.
    pub peak_rss_kb: i64,
    /// Exited with 0.
    pub ok: bool,
}

/// Waits for `child` (started at `started`) with `wait4`, for its own resource use.
pub fn wait_measured(child: Child, started: Instant) -> Measured {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and usage point at live locals. std's Child is not waited
    // on afterwards, so the pid is reaped exactly once.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let ok = waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    std::mem::forget(child);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall: started.elapsed(),
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss_kb: usage.ru_maxrss,
        ok,
    }
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// Whether `program --version` runs. Under CI a missing program is a failure (`.ci/run` installs
/// it; `why` says what for); elsewhere the caller skips, and this prints why.
pub fn tool_available(program: &str, why: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {program}: {why}"
        );
        eprintln!("{program} not installed ({why}); skipping");
    }
    ok
}
