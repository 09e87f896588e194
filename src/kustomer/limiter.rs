//! The client-side rate limiter every request goes through: two budgets shared by all concurrent work
//! (the org-wide budget and the separate search budget), each a sliding log of request times over its
//! window, so the daemon never sends more than its share; plus blocks learnt from Kustomer's answers
//! (`x-ratelimit-remaining: 0`, a 429 with `Retry-After` or `x-ratelimit-reset`) that hold every
//! request until the server's window resets. A hold is a hint with a bound: never longer than
//! [`HOLD_WINDOWS`] windows of the budget, whatever the server said, and no arithmetic on instants
//! can overflow.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::hold::Told;

/// The longest hold, in windows of the budget it holds: the server's own window can be no longer
/// than ours by much (both are a minute for Kustomer), so a longer wait is a header misread or a
/// proxy's mistake, and waiting it out would stop the mirror for no reason.
pub const HOLD_WINDOWS: u32 = 2;

/// A budget: at most `requests` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

impl Budget {
    /// `per_minute` requests a minute, counted over `window`: `per_minute × window / 60` per window
    /// (at least one).
    pub fn rate(per_minute: u32, window: Duration) -> Budget {
        let per_window = (f64::from(per_minute) * window.as_secs_f64() / 60.0).floor() as u32;
        Budget {
            requests: per_window.max(1),
            window: window.max(Duration::from_millis(100)),
        }
    }

    /// `n` requests per minute.
    pub fn per_minute(n: u32) -> Budget {
        Budget {
            requests: n.max(1),
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Log {
    budget: Budget,
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Log {
    fn new(budget: Budget) -> Log {
        // Requests reach the server a little after we send them; counting each against a window 2%
        // longer (at most a second) than the server's keeps any server window within budget.
        let margin = (budget.window / 50).min(Duration::from_secs(1));
        let budget = Budget {
            window: budget.window.saturating_add(margin),
            ..budget
        };
        Log {
            budget,
            sent: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Requests sent within the window that ends `now`, and the window's budget.
    fn usage(&mut self, now: Instant) -> (u32, u32) {
        self.forget(now);
        let used = u32::try_from(self.sent.len()).unwrap_or(u32::MAX);
        (used, self.budget.requests)
    }

    /// Drops the requests that left the window.
    fn forget(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.budget.window)
        {
            self.sent.pop_front();
        }
    }

    /// When a request may go, counting from `now`; `None` means now.
    fn wait(&mut self, now: Instant) -> Option<Instant> {
        self.forget(now);
        let mut at = self.blocked_until.filter(|b| *b > now);
        if self.sent.len() >= self.budget.requests as usize {
            // Cannot fail: the log holds at least `requests` ≥ 1 entries here.
            let oldest = self.sent[self.sent.len() - self.budget.requests as usize];
            // A window too long to add is as good as "a window from now", which is longer still.
            let free = oldest
                .checked_add(self.budget.window)
                .unwrap_or_else(|| far(now));
            at = Some(at.map_or(free, |a| a.max(free)));
        }
        at
    }

    /// The longest hold of this budget.
    fn cap(&self) -> Duration {
        self.budget.window.saturating_mul(HOLD_WINDOWS)
    }
}

/// A day from `now`, or `now` itself on a clock that cannot add one: a bound for instants that
/// would otherwise overflow.
fn far(now: Instant) -> Instant {
    now.checked_add(Duration::from_secs(86_400)).unwrap_or(now)
}

/// What the limiter made of the servers' rate-limit headers so far, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holds {
    /// Holds cut to [`HOLD_WINDOWS`] windows because the server asked for longer.
    pub capped: u64,
    /// Rate-limit headers that could not be read (a window's hold was used instead).
    pub unreadable: u64,
    /// Holds in force now: the longest remaining one, in milliseconds.
    pub remaining_ms: u64,
}

/// Requests sent within the current window and the window's budget, per budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The org budget (every request): used, allowed.
    pub org: (u32, u32),
    /// The search budget: used, allowed.
    pub search: (u32, u32),
}

impl Usage {
    /// The share of a budget in use, 0.0–1.0.
    pub fn share((used, allowed): (u32, u32)) -> f64 {
        if allowed == 0 {
            return 0.0;
        }
        (f64::from(used) / f64::from(allowed)).min(1.0)
    }
}

/// Whether a request is a search (which spends both budgets) or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET` lists and by-id reads.
    Read,
    /// `POST /v1/customers/search`.
    Search,
}

/// Two budgets shared by every request of the process.
#[derive(Debug)]
pub struct Limiter {
    org: Mutex<Log>,
    search: Mutex<Log>,
    capped: AtomicU64,
    unreadable: AtomicU64,
}

impl Limiter {
    /// A limiter with the org budget and the search budget.
    pub fn new(org: Budget, search: Budget) -> Limiter {
        Limiter {
            org: Mutex::new(Log::new(org)),
            search: Mutex::new(Log::new(search)),
            capped: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
        }
    }

    /// A limiter that never waits (tests, benchmarks against an unlimited fake).
    pub fn unlimited() -> Limiter {
        let huge = Budget {
            requests: u32::MAX / 2,
            window: Duration::from_secs(1),
        };
        Limiter::new(huge, huge)
    }

    /// How much of each budget the requests of the current window use, for progress displays.
    pub fn usage(&self) -> Usage {
        let now = Instant::now();
        // A poisoned lock: see `acquire`.
        let org = self
            .org
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .usage(now);
        let search = self
            .search
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .usage(now);
        Usage { org, search }
    }

    /// Waits until a request of `kind` may be sent, then records it.
    pub async fn acquire(&self, kind: Kind) {
        loop {
            let now = Instant::now();
            let wait = {
                // A poisoned lock only means another task panicked mid-update of plain data; the
                // log is still usable, so recover it rather than failing every later request.
                let mut org = self.org.lock().unwrap_or_else(|p| p.into_inner());
                let mut search = self.search.lock().unwrap_or_else(|p| p.into_inner());
                let org_at = org.wait(now);
                let search_at = if kind == Kind::Search {
                    search.wait(now)
                } else {
                    None
                };
                match org_at.max(search_at) {
                    None => {
                        org.sent.push_back(now);
                        if kind == Kind::Search {
                            search.sent.push_back(now);
                        }
                        return;
                    }
                    Some(at) => at,
                }
            };
            tokio::time::sleep_until(wait).await;
        }
    }

    /// What the rate-limit headers did so far, and the hold in force now.
    pub fn holds(&self) -> Holds {
        let now = Instant::now();
        let remaining = [&self.org, &self.search]
            .iter()
            .filter_map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).blocked_until)
            .map(|b| b.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        Holds {
            capped: self.capped.load(Ordering::Relaxed),
            unreadable: self.unreadable.load(Ordering::Relaxed),
            remaining_ms: u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Learns from an answer: with no requests remaining (or a 429), hold all requests of that budget
    /// for what the server `told` (its window's reset), or a whole window of ours when it did not
    /// say or said something unreadable; never longer than [`HOLD_WINDOWS`] windows. A capped or
    /// unreadable header is logged as a warning with its text, once per hold.
    pub fn observe(&self, kind: Kind, remaining: Option<u64>, told: &Told, limited: bool) {
        if !limited && remaining != Some(0) {
            return;
        }
        let now = Instant::now();
        let log = match (kind, limited) {
            // A 429 on a search may be the search budget; hold searches, and reads too if the org
            // budget is the one spent (remaining 0 says so).
            (Kind::Search, true) if remaining != Some(0) => &self.search,
            _ => &self.org,
        };
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        let already_held = log.blocked_until.is_some_and(|b| b > now);
        let cap = log.cap();
        let header = told.header.as_deref().unwrap_or("");
        if told.unreadable {
            self.unreadable.fetch_add(1, Ordering::Relaxed);
            if !already_held {
                tracing::warn!(
                    header,
                    hold_ms = log.budget.window.as_millis() as u64,
                    "could not read the server's rate-limit header; holding requests for one window instead"
                );
            }
        }
        let mut hold = told.hold.unwrap_or(log.budget.window);
        if hold > cap {
            self.capped.fetch_add(1, Ordering::Relaxed);
            if !already_held {
                tracing::warn!(
                    header,
                    told_s = hold.as_secs(),
                    hold_ms = cap.as_millis() as u64,
                    "the server asked for a longer rate-limit wait than {HOLD_WINDOWS} windows; holding for {HOLD_WINDOWS} windows instead"
                );
            }
            hold = cap;
        }
        let until = now.checked_add(hold).unwrap_or_else(|| far(now));
        log.blocked_until = Some(log.blocked_until.map_or(until, |b| b.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_budget_in_any_window() {
        let limiter = Limiter::new(
            Budget {
                requests: 5,
                window: Duration::from_secs(10),
            },
            Budget {
                requests: 2,
                window: Duration::from_secs(10),
            },
        );
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            limiter.acquire(Kind::Read).await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times
                .iter()
                .filter(|u| **u >= *t && **u < *t + Duration::from_secs(10))
                .count();
            assert!(in_window <= 5, "request {i}: {in_window} in one window");
        }
        assert_eq!(times[5], Duration::from_millis(10_200));
        assert_eq!(times[10], Duration::from_millis(20_400));
    }

    #[tokio::test(start_paused = true)]
    async fn searches_spend_both_budgets() {
        let limiter = Limiter::new(
            Budget {
                requests: 100,
                window: Duration::from_secs(60),
            },
            Budget {
                requests: 2,
                window: Duration::from_secs(60),
            },
        );
        let start = Instant::now();
        limiter.acquire(Kind::Search).await;
        limiter.acquire(Kind::Search).await;
        limiter.acquire(Kind::Read).await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "reads are not held by the search budget"
        );
        limiter.acquire(Kind::Search).await;
        assert_eq!(start.elapsed(), Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn usage_counts_the_requests_of_the_current_window() {
        let limiter = Limiter::new(
            Budget {
                requests: 10,
                window: Duration::from_secs(60),
            },
            Budget {
                requests: 4,
                window: Duration::from_secs(60),
            },
        );
        assert_eq!(
            limiter.usage(),
            Usage {
                org: (0, 10),
                search: (0, 4)
            }
        );
        limiter.acquire(Kind::Search).await;
        limiter.acquire(Kind::Read).await;
        limiter.acquire(Kind::Read).await;
        assert_eq!(
            limiter.usage(),
            Usage {
                org: (3, 10),
                search: (1, 4)
            }
        );
        assert_eq!(Usage::share(limiter.usage().search), 0.25);
        // The window is counted 2% long, at most a second longer (61 s): still in it at 60 s,
        // gone at 61 s.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(limiter.usage().org, (3, 10));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limiter.usage().org, (0, 10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_requests_until_the_reset() {
        let limiter = Limiter::new(Budget::per_minute(1000), Budget::per_minute(100));
        limiter.observe(Kind::Read, Some(0), &told(Some(7), false), true);
        let start = Instant::now();
        limiter.acquire(Kind::Read).await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    fn told(secs: Option<u64>, unreadable: bool) -> Told {
        Told {
            hold: secs.map(Duration::from_secs),
            header: Some("x-ratelimit-reset: test".into()),
            unreadable,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_never_longer_than_two_windows() {
        // A 10 s window (counted 10.2 s): the longest hold is 20.4 s, whatever the server says.
        let limiter = Limiter::new(
            Budget {
                requests: 100,
                window: Duration::from_secs(10),
            },
            Budget {
                requests: 100,
                window: Duration::from_secs(10),
            },
        );
        for asked in [Some(u64::MAX), Some(3_600), None] {
            let start = Instant::now();
            let t = Told {
                hold: asked.map(Duration::from_secs),
                header: None,
                unreadable: false,
            };
            limiter.observe(Kind::Read, Some(0), &t, true);
            assert!(limiter.holds().remaining_ms > 0);
            limiter.acquire(Kind::Read).await;
            let expected = if asked.is_some() { 20_400 } else { 10_200 };
            assert_eq!(
                start.elapsed(),
                Duration::from_millis(expected),
                "{asked:?}"
            );
        }
        // Duration::MAX itself: no overflow, the same cap.
        let start = Instant::now();
        let t = Told {
            hold: Some(Duration::MAX),
            header: None,
            unreadable: false,
        };
        limiter.observe(Kind::Search, None, &t, true);
        limiter.acquire(Kind::Search).await;
        assert_eq!(start.elapsed(), Duration::from_millis(20_400));
        let holds = limiter.holds();
        assert_eq!(
            (holds.capped, holds.unreadable, holds.remaining_ms),
            (3, 0, 0)
        );
        // An unreadable header holds one window and is counted.
        let start = Instant::now();
        limiter.observe(Kind::Read, Some(0), &told(None, true), true);
        limiter.acquire(Kind::Read).await;
        assert_eq!(start.elapsed(), Duration::from_millis(10_200));
        assert_eq!(limiter.holds().unreadable, 1);
    }
}
