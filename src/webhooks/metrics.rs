//! What the receiver and the drain count, for `/metrics`: events received, refused (by reason),
//! ignored, applied (changed or not), stale and rejected (by reason); the time from receipt to
//! commit and the freshness (commit time minus the record's `updatedAt`) as histograms; the
//! events waiting in the inbox. Lock-free counters; rendered as Prometheus text.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Why the receiver refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No signature, or one that matches no token (401).
    Signature,
    /// A body over `webhooks.max_body` (413).
    TooLarge,
    /// A client that did not send its body within `webhooks.read_timeout` (408).
    Timeout,
    /// A body that could not be read (the connection dropped).
    Body,
    /// The inbox could not store the event (503: Kustomer retries).
    Inbox,
}

impl Refused {
    const ALL: [Refused; 5] = [
        Refused::Signature,
        Refused::TooLarge,
        Refused::Timeout,
        Refused::Body,
        Refused::Inbox,
    ];

    fn label(self) -> &'static str {
        match self {
            Refused::Signature => "signature",
            Refused::TooLarge => "too_large",
            Refused::Timeout => "timeout",
            Refused::Body => "body",
            Refused::Inbox => "inbox",
        }
    }
}

/// Why a stored event was set aside in `rejected_records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The body is not a JSON object.
    Body,
    /// `data` is missing or null.
    NoData,
    /// `data` could not be decoded as a record.
    Record,
    /// `data.type` is not the event's resource.
    Type,
}

impl Rejection {
    const ALL: [Rejection; 4] = [
        Rejection::Body,
        Rejection::NoData,
        Rejection::Record,
        Rejection::Type,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejection::Body => "body",
            Rejection::NoData => "no_data",
            Rejection::Record => "record",
            Rejection::Type => "type",
        }
    }
}

/// Upper bounds (seconds) of the histogram buckets.
const BOUNDS: [f64; 19] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
];

/// A Prometheus histogram of seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    /// Microseconds.
    sum: AtomicU64,
}

impl Histogram {
    /// Adds one observation (negative ones count as zero: clocks of two hosts).
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) estimated as Prometheus's `histogram_quantile` does: linear within
    /// the bucket it falls in; `None` without observations or past the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            let upto = bucket.load(Ordering::Relaxed);
            if upto as f64 >= rank {
                let inside = (upto - below).max(1) as f64;
                return Some(lower + (bound - lower) * ((rank - below as f64) / inside));
            }
            below = upto;
            lower = *bound;
        }
        None
    }

    fn render(&self, o: &mut String, name: &str, help: &str) {
        o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            o.push_str(&format!(
                "{name}_bucket{{le=\"{bound}\"}} {}\n",
                bucket.load(Ordering::Relaxed)
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        o.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
        o.push_str(&format!(
            "{name}_sum {}\n{name}_count {count}\n",
            self.sum.load(Ordering::Relaxed) as f64 / 1e6
        ));
    }
}

/// The receiver's and the drain's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Verified events stored in the inbox.
    pub received: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
    /// Verified events with a name the mirror does not apply (answered 2xx, not stored).
    pub ignored: AtomicU64,
    /// Events committed that changed a row.
    pub changed: AtomicU64,
    /// Events committed that left their row as it was (identical content).
    pub unchanged: AtomicU64,
    /// Events not newer than their row.
    pub stale: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    /// Receipt to commit.
    pub commit_seconds: Histogram,
    /// Commit time minus the record's `updatedAt`.
    pub freshness_seconds: Histogram,
    /// Events waiting in the inbox, as the drain last saw.
    pub waiting: AtomicI64,
}

impl Metrics {
    /// Counts a refused request.
    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an event set aside.
    pub fn rejected(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text of every counter and histogram.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: &AtomicU64| {
            o.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        };
        counter(
            &mut o,
            "kustomer_mirror_webhook_received_total",
            "Verified webhook events stored in the inbox.",
            &self.received,
        );
        o.push_str("# HELP kustomer_mirror_webhook_refused_total Webhook requests refused, by reason.\n# TYPE kustomer_mirror_webhook_refused_total counter\n");
        for why in Refused::ALL {
            o.push_str(&format!(
                "kustomer_mirror_webhook_refused_total{{reason=\"{}\"}} {}\n",
                why.label(),
                self.refused[why as usize].load(Ordering::Relaxed)
            ));
        }
        counter(
            &mut o,
            "kustomer_mirror_webhook_ignored_total",
            "Verified webhook events of a kind the mirror does not apply (answered 2xx).",
            &self.ignored,
        );
        o.push_str("# HELP kustomer_mirror_webhook_applied_total Webhook events committed to the mirror, by whether they changed the row.\n# TYPE kustomer_mirror_webhook_applied_total counter\n");
        o.push_str(&format!(
            "kustomer_mirror_webhook_applied_total{{result=\"changed\"}} {}\nkustomer_mirror_webhook_applied_total{{result=\"unchanged\"}} {}\n",
            self.changed.load(Ordering::Relaxed),
            self.unchanged.load(Ordering::Relaxed)
        ));
        counter(
            &mut o,
            "kustomer_mirror_webhook_stale_total",
            "Webhook events not newer than the stored row (duplicates, late deliveries), left alone.",
            &self.stale,
        );
        o.push_str("# HELP kustomer_mirror_webhook_rejected_total Webhook events set aside in rejected_records, by reason.\n# TYPE kustomer_mirror_webhook_rejected_total counter\n");
        for why in Rejection::ALL {
            o.push_str(&format!(
                "kustomer_mirror_webhook_rejected_total{{reason=\"{}\"}} {}\n",
                why.label(),
                self.rejected[why as usize].load(Ordering::Relaxed)
            ));
        }
        self.commit_seconds.render(
            &mut o,
            "kustomer_mirror_webhook_commit_seconds",
            "Time from a webhook event's receipt to its commit in the mirror.",
        );
        self.freshness_seconds.render(
            &mut o,
            "kustomer_mirror_webhook_freshness_seconds",
            "Commit time of a pushed record minus its updatedAt upstream.",
        );
        o.push_str(&format!(
            "# HELP kustomer_mirror_webhook_inbox_events Webhook events in the inbox waiting to be applied.\n# TYPE kustomer_mirror_webhook_inbox_events gauge\nkustomer_mirror_webhook_inbox_events {}\n",
            self.waiting.load(Ordering::Relaxed)
        ));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_every_bucket_above_it() {
        let h = Histogram::default();
        h.observe(0.2);
        h.observe(3.0);
        h.observe(-1.0);
        let mut o = String::new();
        h.render(&mut o, "x", "help");
        assert!(o.contains("x_bucket{le=\"0.1\"} 1\n"), "{o}");
        assert!(o.contains("x_bucket{le=\"0.25\"} 2\n"), "{o}");
        assert!(o.contains("x_bucket{le=\"2\"} 2\n"), "{o}");
        assert!(o.contains("x_bucket{le=\"5\"} 3\n"), "{o}");
        assert!(o.contains("x_bucket{le=\"+Inf\"} 3\n"), "{o}");
        assert!(o.contains("x_sum 3.2\nx_count 3\n"), "{o}");
        // Ranks 1.5 of 3 (0.1..0.25 bucket, holding 1) and 3 (2..3, holding 1): linear inside.
        assert!((h.quantile(0.5).unwrap() - 0.175).abs() < 1e-12);
        assert_eq!(h.quantile(1.0), Some(3.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
