//! Per-caller rate limiting of the REST API: ASP.NET Core's fixed-window limiter,
//! partitioned by the access token's client (`azp`) and subject (`sub`).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Deserialize;

/// How many API requests one caller may make per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window (ASP.NET's `PermitLimit`; default 600).
    pub permit_limit: u32,
    /// The window's length in seconds (default 60).
    pub window_secs: u64,
}

impl Default for RateLimit {
    /// Ten requests a second: the BFF sends every widget's polls with one service account,
    /// so the limit must carry several open widgets polling each second.
    fn default() -> Self {
        Self {
            permit_limit: 600,
            window_secs: 60,
        }
    }
}

impl RateLimit {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.permit_limit >= 1,
            "rate_limit.permit_limit must be at least 1"
        );
        ensure!(
            (1..=MAX_WINDOW_SECS).contains(&self.window_secs),
            "rate_limit.window_secs must be between 1 and {MAX_WINDOW_SECS}"
        );
        Ok(())
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

/// A day: longer windows only hide a mistake, and keep `Instant` arithmetic far from
/// overflowing.
const MAX_WINDOW_SECS: u64 = 86_400;

/// One caller's current window.
#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    used: u32,
}

/// Counts `now`'s request against `window`: `Err` with the wait until the next window when
/// the permits are used up. A window that has ended starts afresh.
fn admit(window: &mut Window, now: Instant, limit: &RateLimit) -> Result<(), Duration> {
    // A window too long to end within `Instant`'s range never ends.
    let end = window.started.checked_add(limit.window());
    if end.is_some_and(|end| now >= end) {
        *window = Window {
            started: now,
            used: 0,
        };
    }
    if window.used < limit.permit_limit {
        window.used += 1;
        Ok(())
    } else {
        Err(end.map_or(limit.window(), |end| end.saturating_duration_since(now)))
    }
}

/// The limiter of one sandbox, with a window per caller.
pub(crate) struct RateLimiter {
    limit: RateLimit,
    // A std lock: never held across an await, and each critical section is one look-up.
    windows: Mutex<HashMap<(String, String), Window>>,
}

/// When this many callers have windows, ended ones are dropped before another is added, so
/// the map cannot grow with every token subject ever seen.
const PRUNE_AT: usize = 1024;

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request of the caller `(client_id, subject)`, or answers how many whole
    /// seconds it should wait (at least 1, as `Retry-After` counts in seconds).
    pub(crate) fn check(&self, client_id: &str, subject: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= PRUNE_AT {
            let length = self.limit.window();
            windows.retain(|_, window| now.duration_since(window.started) < length);
        }
        let window = windows
            .entry((client_id.to_owned(), subject.to_owned()))
            .or_insert(Window {
                started: now,
                used: 0,
            });
        admit(window, now, &self.limit).map_err(|wait| {
            let whole = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            whole.max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_permits_then_waits_for_the_next() {
        let limit = RateLimit {
            permit_limit: 2,
            window_secs: 10,
        };
        let start = Instant::now();
        let mut window = Window {
            started: start,
            used: 0,
        };
        assert_eq!(admit(&mut window, start, &limit), Ok(()));
        assert_eq!(
            admit(&mut window, start + Duration::from_secs(1), &limit),
            Ok(())
        );
        assert_eq!(
            admit(&mut window, start + Duration::from_secs(4), &limit),
            Err(Duration::from_secs(6))
        );
        let next = start + Duration::from_secs(10);
        assert_eq!(admit(&mut window, next, &limit), Ok(()));
        assert_eq!(window.started, next);
    }

    #[test]
    fn a_window_past_the_range_of_instant_does_not_panic() {
        let limit = RateLimit {
            permit_limit: 1,
            window_secs: u64::MAX,
        };
        let now = Instant::now();
        let mut window = Window {
            started: now,
            used: 0,
        };
        assert_eq!(admit(&mut window, now, &limit), Ok(()));
        assert!(admit(&mut window, now, &limit).is_err());
    }

    #[test]
    fn callers_are_limited_apart_and_told_whole_seconds() {
        let limiter = RateLimiter::new(RateLimit {
            permit_limit: 1,
            window_secs: 30,
        });
        assert_eq!(limiter.check("bff", "a"), Ok(()));
        assert_eq!(limiter.check("bff", "b"), Ok(()));
        assert_eq!(limiter.check("other", "a"), Ok(()));
        let wait = limiter.check("bff", "a").expect_err("limited");
        assert!((1..=30).contains(&wait), "{wait}");
    }

    #[test]
    fn rejects_a_limit_that_admits_nothing() {
        let none = RateLimit {
            permit_limit: 0,
            ..RateLimit::default()
        };
        assert!(none.validate().is_err());
        let forever = RateLimit {
            window_secs: u64::MAX,
            ..RateLimit::default()
        };
        assert!(forever.validate().is_err());
        assert!(RateLimit::default().validate().is_ok());
    }
}
