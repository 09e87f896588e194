//! Parsing and printing of the value types settings use: durations (`500ms`, `30s`, `5m`, `1h30m` or
//! plain seconds), bounded whole numbers, cron expressions, and "did you mean" for misspelt names.

use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `2h`, `1h30m`, `1d` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Prints a duration the way [`parse_duration`] reads it: `5m`, `1h30m`, `1500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.is_zero() {
        return if d.is_zero() {
            "0s".to_string()
        } else {
            format!("{}ms", d.as_millis())
        };
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Checks a cron expression with the very parser the daemon's scheduler uses (tokio-cron-scheduler
/// building a job, which parses with croner, seconds first), so `check-config` accepts exactly what
/// `run` accepts: `99 * * * * *` passes a shape check but no parser.
pub fn valid_cron(expr: &str) -> bool {
    // Six or seven fields: the scheduler would also take English ("every 5 minutes") through a
    // translation we do not document, so only cron syntax is accepted here.
    let fields = expr.split_whitespace().count();
    (6..=7).contains(&fields)
        && tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {})).is_ok()
}

/// Edit distance between two short strings.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest of `known` to `name`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (levenshtein(&name.to_lowercase(), k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_back() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn typos_find_their_key() {
        assert_eq!(
            did_you_mean("sync.pagesize", ["sync.page_size", "sync.overlap"]),
            Some("sync.page_size")
        );
        assert_eq!(did_you_mean("colour", ["sync.page_size"]), None);
        assert!(valid_cron("0 */5 * * * *"));
        assert!(valid_cron("0 0 3 * * SUN"));
        assert!(!valid_cron("*/5 * * * *"));
        // The shape is right, the values are not: the scheduler refuses these.
        assert!(!valid_cron("99 * * * * *"));
        assert!(!valid_cron("0 0 25 * * *"));
        assert!(!valid_cron("0 0 0 32 * *"));
    }
}
