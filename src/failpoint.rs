//! Failure injection for the tests that drive the real binary: `KUSTOMER_MIRROR_FAILPOINTS` names
//! points where the process misbehaves on purpose, as `point:key` pairs separated by commas (for
//! example `pass:users` panics inside every pass of `users`). Unset (always, in production) it
//! costs one read of an already-parsed list. Only bugs can reach the code these points stand in
//! for, so the tests that prove the daemon survives a bug need a way to cause one.

use std::sync::OnceLock;

/// The environment variable that lists the failpoints.
pub const VARIABLE: &str = "KUSTOMER_MIRROR_FAILPOINTS";

fn points() -> &'static [(String, String)] {
    static POINTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(VARIABLE)
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.trim().split_once(':'))
            .map(|(point, key)| (point.to_string(), key.to_string()))
            .collect()
    })
}

/// Whether failpoint `point` is set for `key`.
pub fn is_set(point: &str, key: &str) -> bool {
    points().iter().any(|(p, k)| p == point && k == key)
}

/// Panics when failpoint `point` is set for `key`: the tests' stand-in for a bug.
pub fn panic_if(point: &str, key: &str) {
    if is_set(point, key) {
        // Deliberate: this is the failure the point injects.
        panic!("failpoint {point}:{key} ({VARIABLE})");
    }
}
