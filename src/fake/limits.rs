//! What the fake does to requests before answering them: Kustomer's rate limits (an org budget per
//! fixed window and a separate search budget, `x-ratelimit-*` headers, 429 when spent) and injected
//! faults at configured rates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::rng::Rng;
use super::{Faults, RateLimit, ResetStyle};

/// One fixed window.
#[derive(Debug)]
pub struct Window {
    pub limit: Option<RateLimit>,
    start: Instant,
    used: u32,
}

impl Window {
    /// A window with `limit` (`None`: unlimited).
    pub fn new(limit: Option<RateLimit>) -> Window {
        Window {
            limit,
            start: Instant::now(),
            used: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        if let Some(limit) = self.limit
            && now.duration_since(self.start) >= limit.window
        {
            let windows =
                now.duration_since(self.start).as_nanos() / limit.window.as_nanos().max(1);
            self.start += limit.window * windows as u32;
            self.used = 0;
        }
    }

    /// Spends one request if the budget allows.
    pub fn try_spend(&mut self, now: Instant) -> bool {
        self.roll(now);
        match self.limit {
            Some(limit) if self.used >= limit.requests => false,
            _ => {
                self.used += 1;
                true
            }
        }
    }

    /// Spends `n` requests regardless (another integration using the org's budget).
    pub fn spend(&mut self, n: u32) {
        self.roll(Instant::now());
        self.used = self.used.saturating_add(n);
    }

    /// (limit, remaining, time until the window resets).
    pub fn headers(&self, now: Instant) -> (u32, u32, Duration) {
        match self.limit {
            None => (100_000, 100_000, Duration::from_secs(60)),
            Some(limit) => {
                let elapsed = now.duration_since(self.start).min(limit.window);
                (
                    limit.requests,
                    limit.requests.saturating_sub(self.used),
                    limit.window - elapsed,
                )
            }
        }
    }
}

/// The value of `x-ratelimit-reset` for a reset `left` from now.
pub fn reset_value(style: ResetStyle, left: Duration) -> String {
    let secs = left.as_secs_f64().ceil() as u64;
    match style {
        ResetStyle::SecondsFromNow => secs.to_string(),
        ResetStyle::EpochSeconds => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            (now + secs).to_string()
        }
    }
}

/// A fault to inject into one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ServerError(u16),
    EmptyBody(u16),
    Truncated,
    Slow,
    Dropped,
    ExpiredToken,
}

/// Decides which fault (if any) hits the next request.
pub fn draw(rng: &mut Rng, faults: &Faults) -> Option<Fault> {
    if rng.chance(faults.expired_token) {
        return Some(Fault::ExpiredToken);
    }
    if rng.chance(faults.server_error) {
        return Some(Fault::ServerError(*rng.pick(&[500u16, 502, 503])));
    }
    if rng.chance(faults.empty_body_error) {
        return Some(Fault::EmptyBody(*rng.pick(&[500u16, 503])));
    }
    if rng.chance(faults.dropped_connection) {
        return Some(Fault::Dropped);
    }
    if rng.chance(faults.truncated_json) {
        return Some(Fault::Truncated);
    }
    if rng.chance(faults.slow) {
        return Some(Fault::Slow);
    }
    None
}
