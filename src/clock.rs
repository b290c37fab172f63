//! Wall-clock time as whole Unix seconds, and how people read it.
//!
//! Every timestamp convene writes goes through [`now`], so tests and demos can
//! pin the clock with `CONVENE_NOW=<unix seconds>` and get stable output.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds (or `CONVENE_NOW` when set and valid).
pub fn now() -> i64 {
    if let Some(fixed) = std::env::var("CONVENE_NOW")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        return fixed;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The first second of `date` (YYYY-MM-DD) in UTC.
pub fn start_of_day(date: &str) -> Option<i64> {
    let day: jiff::civil::Date = date.parse().ok()?;
    let at = jiff::tz::TimeZone::UTC
        .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(at.as_second())
}

/// RFC 3339 in UTC, e.g. `2026-11-29T03:41:14Z`, for machine output.
pub fn rfc3339(at: i64) -> String {
    match jiff::Timestamp::from_second(at) {
        Ok(ts) => ts.to_string(),
        Err(_) => at.to_string(),
    }
}

/// A short relative form for people: `just now`, `5 min ago`, `3 d ago`.
pub fn relative(at: i64, now: i64) -> String {
    let delta = now.saturating_sub(at);
    let (amount, future) = if delta < 0 {
        (delta.saturating_neg(), true)
    } else {
        (delta, false)
    };
    let text = match amount {
        0..=59 => return "just now".to_string(),
        60..=3_599 => format!("{} min", amount / 60),
        3_600..=86_399 => format!("{} h", amount / 3_600),
        86_400..=2_591_999 => format!("{} d", amount / 86_400),
        _ => return rfc3339(at).chars().take(10).collect(),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_forms() {
        assert_eq!(relative(100, 120), "just now");
        assert_eq!(relative(0, 300), "5 min ago");
        assert_eq!(
            relative(i64::MIN, i64::MAX),
            rfc3339(i64::MIN)[..10.min(rfc3339(i64::MIN).len())].to_string()
        );
        assert_eq!(relative(0, 7_200), "2 h ago");
        assert_eq!(relative(0, 3 * 86_400), "3 d ago");
        assert_eq!(relative(7_200, 0), "in 2 h");
        assert_eq!(relative(0, 400 * 86_400), "1970-01-01");
    }

    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
