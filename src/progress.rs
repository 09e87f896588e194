//! What `sync` shows while it runs, in the form its output can take: live bars per entity on a
//! terminal (indicatif: records fetched out of the total Kustomer reports, records/s, ETA, with a
//! header line for the rate budgets' use), one log line per running entity every
//! `log.progress_interval` without one (cron, systemd, CI), nothing with `--quiet`. Fed by the
//! engine's progress events; reads the client's budget usage. Knows neither HTTP nor SQL.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::kustomer::Client;
use crate::kustomer::limiter::Usage;
use crate::sync::{ProgressEvent, ProgressFn};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live bars on the terminal (stderr).
    Bars,
    /// A log line per running entity every `every`.
    Lines {
        /// The interval.
        every: Duration,
    },
    /// Nothing.
    Quiet,
}

impl Mode {
    /// Bars when stderr is a terminal, lines otherwise, nothing when `quiet`.
    pub fn detect(quiet: bool, every: Duration) -> Mode {
        use std::io::IsTerminal;
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines { every }
        }
    }
}

/// One entity's pass as the display knows it.
#[derive(Debug)]
struct Entry {
    fetched: u64,
    expected: Option<u64>,
    changed: u64,
    started: Instant,
    done: bool,
    bar: Option<ProgressBar>,
}

impl Entry {
    fn per_second(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.fetched as f64 / secs
        } else {
            0.0
        }
    }

    fn eta(&self) -> Option<Duration> {
        let rate = self.per_second();
        let left = self.expected?.saturating_sub(self.fetched);
        if rate > 0.0 {
            Duration::try_from_secs_f64(left as f64 / rate).ok()
        } else {
            None
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    entries: BTreeMap<String, Entry>,
}

/// The display of one `sync`: [`Progress::new`] before logging starts (for
/// [`Progress::log_writer`]), [`Progress::start`] once the client exists, hand
/// [`Progress::callback`] to the engine, and [`Progress::finish`] when it returns.
pub struct Progress {
    mode: Mode,
    shared: Arc<Mutex<Shared>>,
    multi: Option<MultiProgress>,
    /// Dropping it wakes the ticker thread at once and ends it (a flag polled between sleeps kept
    /// every `sync` waiting up to a sleep at its end: ~5% of a medium sync).
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .finish()
    }
}

/// The budgets' use as one short text: `org 12% · search 40%`.
pub fn budget_text(usage: Usage) -> String {
    format!(
        "org {:.0}% · search {:.0}%",
        100.0 * Usage::share(usage.org),
        100.0 * Usage::share(usage.search)
    )
}

/// `95 s` → `1m35s`.
fn short(d: Duration) -> String {
    crate::status::human_secs(d.as_secs() as i64)
}

impl Progress {
    /// A display in `mode`, not drawing yet.
    pub fn new(mode: Mode) -> Progress {
        let multi = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            mode,
            shared: Arc::new(Mutex::new(Shared::default())),
            multi,
            stop: None,
            ticker: None,
        }
    }

    /// Starts drawing (bars) or logging (lines); `client`'s limiter gives the budgets' use.
    pub fn start(&mut self, client: Arc<Client>) {
        let shared = self.shared.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        self.stop = Some(stop);
        // Waits `d`; false once the display is finishing.
        let wait =
            move |d: Duration| matches!(stopped.recv_timeout(d), Err(RecvTimeoutError::Timeout));
        self.ticker = match (self.mode, &self.multi) {
            (Mode::Quiet, _) | (Mode::Bars, None) => None,
            (Mode::Bars, Some(multi)) => {
                let header = multi.insert(0, ProgressBar::new_spinner());
                header.set_style(
                    ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let ticker = std::thread::spawn(move || {
                    loop {
                        header.set_message(header_text(&shared, client.budget_usage()));
                        header.tick();
                        if !wait(Duration::from_millis(250)) {
                            break;
                        }
                    }
                    header.finish_and_clear();
                });
                Some(ticker)
            }
            (Mode::Lines { every }, _) => {
                let ticker = std::thread::spawn(move || {
                    while wait(every) {
                        log_lines(&shared, client.budget_usage());
                    }
                });
                Some(ticker)
            }
        };
    }

    /// The engine's progress callback.
    pub fn callback(&self) -> ProgressFn {
        let shared = self.shared.clone();
        let multi = self.multi.clone();
        Arc::new(move |event: ProgressEvent| {
            // A poisoned lock: a panic elsewhere mid-update of plain counters; keep showing.
            let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
            let entry = shared
                .entries
                .entry(event.key.clone())
                .or_insert_with(|| Entry {
                    fetched: 0,
                    expected: None,
                    changed: 0,
                    started: event.started.unwrap_or_else(Instant::now),
                    done: false,
                    bar: multi.as_ref().map(|m| new_bar(m, &event.key)),
                });
            entry.fetched = event.fetched;
            entry.changed = event.changed;
            if event.expected.is_some() {
                entry.expected = event.expected;
            }
            entry.done = event.done;
            if let Some(bar) = &entry.bar {
                show(bar, entry);
            }
        })
    }

    /// A writer for log lines that keeps them from tearing the bars (stderr otherwise).
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            multi: self.multi.clone(),
        }
    }

    /// Stops the display: bars are left as their final lines (the header goes).
    pub fn finish(mut self) {
        self.stop = None;
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

fn new_bar(multi: &MultiProgress, key: &str) -> ProgressBar {
    let bar = multi.add(ProgressBar::no_length());
    bar.set_prefix(key.to_string());
    bar
}

/// Redraws `bar` from `entry`: a bar with the total when Kustomer reported one, a counter
/// otherwise, a ✓ line at the end.
fn show(bar: &ProgressBar, entry: &Entry) {
    let pace = format!("{:.0}/s", entry.per_second());
    if entry.done {
        bar.set_style(
            ProgressStyle::with_template("  ✓ {prefix:<26} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.finish_with_message(format!(
            "{} records, {} written, {pace}",
            entry.fetched, entry.changed
        ));
        return;
    }
    match entry.expected {
        Some(total) => {
            bar.set_style(
                ProgressStyle::with_template(
                    "  {spinner} {prefix:<26} [{bar:30}] {pos:>8}/{len:<8} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_length(total.max(entry.fetched));
            let eta = entry.eta().map_or("?".to_string(), short);
            bar.set_message(format!("{pace}, ETA {eta}"));
        }
        None => {
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:<26} {pos:>8} records {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("{pace} (total not reported)"));
        }
    }
    bar.set_position(entry.fetched);
}

fn header_text(shared: &Mutex<Shared>, usage: Usage) -> String {
    let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let running = shared.entries.values().filter(|e| !e.done).count();
    let fetched: u64 = shared.entries.values().map(|e| e.fetched).sum();
    format!(
        "syncing: {running} running, {fetched} records fetched; rate budget in use: {}",
        budget_text(usage)
    )
}

/// One INFO line per running entity with the same figures as the bars.
fn log_lines(shared: &Mutex<Shared>, usage: Usage) {
    let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    for (key, e) in shared.entries.iter().filter(|(_, e)| !e.done) {
        let percent = e
            .expected
            .filter(|t| *t > 0)
            .map(|t| format!("{:.0}%", 100.0 * (e.fetched as f64 / t as f64).min(1.0)));
        tracing::info!(
            entity = %key,
            fetched = e.fetched,
            expected = e.expected,
            percent = percent.as_deref().unwrap_or("?"),
            per_second = format!("{:.0}", e.per_second()).as_str(),
            eta = e.eta().map_or("?".to_string(), short).as_str(),
            budget = budget_text(usage).as_str(),
            "progress"
        );
    }
}

/// Log output that suspends the bars while a line is written (see [`Progress::log_writer`]).
#[derive(Clone)]
pub struct LogWriter {
    multi: Option<MultiProgress>,
}

/// One log line, written to stderr when dropped.
pub struct LogLine {
    multi: Option<MultiProgress>,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let write = || {
            let _ = std::io::stderr().write_all(&buf);
        };
        match &self.multi {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}
