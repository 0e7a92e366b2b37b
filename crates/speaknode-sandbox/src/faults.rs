//! Injected faults, for testing how clients cope: added latency, server errors, bursts of
//! 429s, a token endpoint outage, a skewed issuer clock and dropped hub connections.
//!
//! Tests set them through `PUT /__sandbox/faults`. One middleware ([`inject`]) applies the
//! HTTP faults to every route but the admin routes; the token endpoint reads the clock skew
//! ([`Faults::issuer_now`]); a notification hub reads [`Faults::drop_hub_connections`] or
//! watches [`Faults::watch_drop_hub_connections`].

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{AppState, admin, error::Error};

/// Marks a response that a fault produced, so that whoever reads a log can tell.
const FAULT_HEADER: HeaderName = HeaderName::from_static("x-sandbox-fault");

/// The faults in force: the body of `PUT /__sandbox/faults` (`fixtures/sandbox-faults.json`).
/// Every member is optional; the default is no fault at all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSet {
    /// Delays before a request is handled; every matching entry adds its delay.
    pub latency: Vec<Latency>,
    /// Random server errors; the first matching entry decides.
    pub errors: Vec<ErrorRate>,
    /// The next requests of a prefix answer 429; the first matching entry with requests
    /// left counts down (`GET /__sandbox/faults` shows what is left).
    pub bursts: Vec<Burst>,
    /// The token endpoint answers 503 `temporarily_unavailable`.
    pub token_endpoint_down: bool,
    /// Seconds added to the issuer's clock for `iat` and `exp` of new tokens (may be
    /// negative); the API's own clock is not skewed.
    pub clock_skew_secs: i64,
    /// Whether the notification hub should drop its connections (and refuse new ones).
    pub drop_hub_connections: bool,
}

/// Added latency for the requests whose path starts with `route_prefix` (`""`: all).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    #[serde(default)]
    pub route_prefix: String,
    pub ms: u64,
}

/// Server errors for a share (`rate`, 0.0 to 1.0) of the requests under `route_prefix`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRate {
    #[serde(default)]
    pub route_prefix: String,
    pub rate: f64,
    /// 500–599 (default 500).
    #[serde(default = "default_error_status")]
    pub status: u16,
}

/// The next `count` requests under `route_prefix` answer 429 with this `Retry-After`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    #[serde(default)]
    pub route_prefix: String,
    pub count: u32,
    /// Seconds (default 1).
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
}

fn default_error_status() -> u16 {
    500
}

fn default_retry_after() -> u64 {
    1
}

/// The longest latency a fault may add, so a typo cannot hang a test run for hours.
const MAX_LATENCY_MS: u64 = 60_000;

impl FaultSet {
    /// What is wrong with each member, keyed by its JSON path (`errors[0].rate`), as
    /// ASP.NET names nested members.
    pub(crate) fn problems(&self) -> BTreeMap<String, Vec<String>> {
        let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut fail = |path: String, message: &str| {
            problems.entry(path).or_default().push(message.to_owned());
        };
        let mut prefix = |path: String, prefix: &str| {
            if !prefix.is_empty() && !prefix.starts_with('/') {
                fail(path, "The route_prefix must be empty or start with '/'.");
            }
        };
        for (i, latency) in self.latency.iter().enumerate() {
            prefix(format!("latency[{i}].route_prefix"), &latency.route_prefix);
        }
        for (i, error) in self.errors.iter().enumerate() {
            prefix(format!("errors[{i}].route_prefix"), &error.route_prefix);
        }
        for (i, burst) in self.bursts.iter().enumerate() {
            prefix(format!("bursts[{i}].route_prefix"), &burst.route_prefix);
        }
        for (i, latency) in self.latency.iter().enumerate() {
            if latency.ms > MAX_LATENCY_MS {
                fail(
                    format!("latency[{i}].ms"),
                    "The field ms must be between 0 and 60000.",
                );
            }
        }
        for (i, error) in self.errors.iter().enumerate() {
            if !(0.0..=1.0).contains(&error.rate) {
                fail(
                    format!("errors[{i}].rate"),
                    "The field rate must be between 0 and 1.",
                );
            }
            if !(500..=599).contains(&error.status) {
                fail(
                    format!("errors[{i}].status"),
                    "The field status must be between 500 and 599.",
                );
            }
        }
        problems
    }
}

/// What the middleware does with one request.
#[derive(Debug)]
struct Plan {
    delay: Duration,
    /// Answer with this instead of handling the request, and the fault's name.
    answer: Option<(Error, &'static str)>,
}

/// The sandbox's faults, shared by the middleware, the issuer, the admin routes and the hub.
#[derive(Clone)]
pub struct Faults(Arc<Shared>);

struct Shared {
    // A std lock: never held across an await.
    set: Mutex<FaultSet>,
    /// Mirrors `drop_hub_connections`, so that a hub can await changes.
    hub: watch::Sender<bool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self(Arc::new(Shared {
            set: Mutex::new(FaultSet::default()),
            hub: watch::Sender::new(false),
        }))
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultSet> {
        // Every update is a single assignment, so a poisoned lock still holds a whole set.
        self.0.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the faults in force with `faults`.
    pub fn set(&self, faults: FaultSet) {
        let drop_hub = faults.drop_hub_connections;
        *self.lock() = faults;
        self.0.hub.send_replace(drop_hub);
    }

    /// Lifts every fault.
    pub fn clear(&self) {
        self.set(FaultSet::default());
    }

    /// The faults in force, with the bursts' remaining counts.
    pub fn current(&self) -> FaultSet {
        self.lock().clone()
    }

    /// Whether the notification hub should drop its connections and refuse new ones.
    pub fn drop_hub_connections(&self) -> bool {
        *self.0.hub.borrow()
    }

    /// A receiver that sees every change of [`Faults::drop_hub_connections`]: a hub awaits
    /// `changed()` to drop the connections it holds when the fault is set.
    pub fn watch_drop_hub_connections(&self) -> watch::Receiver<bool> {
        self.0.hub.subscribe()
    }

    /// Seconds added to the issuer's clock.
    pub fn clock_skew_secs(&self) -> i64 {
        self.lock().clock_skew_secs
    }

    /// The issuer's clock in Unix seconds, for `iat` and `exp` of a new token.
    pub fn issuer_now(&self) -> u64 {
        jsonwebtoken::get_current_timestamp().saturating_add_signed(self.clock_skew_secs())
    }

    /// Decides what happens to a request for `path`; `roll` is a uniform draw from
    /// [0, 1) for the error rates. Counts down the burst it uses.
    fn plan(&self, path: &str, token_path: &str, roll: f64) -> Plan {
        let mut set = self.lock();
        let delay = set
            .latency
            .iter()
            .filter(|latency| path.starts_with(&latency.route_prefix))
            .map(|latency| Duration::from_millis(latency.ms))
            // `Sum` panics on overflow, and `set` takes sets that were never validated.
            .fold(Duration::ZERO, Duration::saturating_add);
        let answer = if set.token_endpoint_down && path == token_path {
            Some((Error::TokenEndpointUnavailable, "token-endpoint-down"))
        } else if let Some(burst) = set
            .bursts
            .iter_mut()
            .find(|burst| burst.count > 0 && path.starts_with(&burst.route_prefix))
        {
            burst.count -= 1;
            let retry_after_secs = burst.retry_after_secs;
            Some((Error::RateLimited { retry_after_secs }, "burst"))
        } else {
            set.errors
                .iter()
                .find(|error| path.starts_with(&error.route_prefix))
                .filter(|error| roll < error.rate)
                .map(|error| {
                    let status = StatusCode::from_u16(error.status)
                        .ok()
                        .filter(StatusCode::is_server_error)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    (Error::Fault(status), "error")
                })
        };
        Plan { delay, answer }
    }
}

/// A uniform draw from [0, 1): the low 53 bits of a v4 UUID, which are all random.
fn roll() -> f64 {
    const BITS: u32 = 53;
    let random = Uuid::new_v4().as_u128() & ((1 << BITS) - 1);
    random as f64 / (1u64 << BITS) as f64
}

/// The middleware that applies the faults in force to every request but the admin routes.
pub(crate) async fn inject(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // Faults never apply to the admin routes, so that a test can always lift them.
    if path.starts_with(admin::PREFIX) {
        return next.run(request).await;
    }
    let token_path = format!(
        "/realms/{}/protocol/openid-connect/token",
        state.0.config.realm
    );
    let plan = state.faults().plan(path, &token_path, roll());
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match plan.answer {
        None => next.run(request).await,
        Some((error, fault)) => {
            tracing::info!(fault, "answering with an injected fault");
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(FAULT_HEADER, HeaderValue::from_static(fault));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "/realms/speaknode/protocol/openid-connect/token";

    fn kind(plan: &Plan) -> Option<&'static str> {
        plan.answer.as_ref().map(|(_, kind)| *kind)
    }

    #[test]
    fn no_faults_plan_nothing() {
        let faults = Faults::default();
        let plan = faults.plan("/api/v1/agents", TOKEN, 0.0);
        assert_eq!(plan.delay, Duration::ZERO);
        assert!(plan.answer.is_none());
    }

    #[test]
    fn latencies_of_matching_prefixes_add_up() {
        let faults = Faults::default();
        faults.set(FaultSet {
            latency: vec![
                Latency {
                    route_prefix: String::new(),
                    ms: 10,
                },
                Latency {
                    route_prefix: "/api/v1/conversations".into(),
                    ms: 100,
                },
            ],
            ..FaultSet::default()
        });
        let delay = |path| faults.plan(path, TOKEN, 0.5).delay;
        assert_eq!(delay("/api/v1/agents"), Duration::from_millis(10));
        assert_eq!(delay("/api/v1/conversations/x"), Duration::from_millis(110));
    }

    #[test]
    fn a_burst_counts_down_then_lets_requests_through() {
        let faults = Faults::default();
        faults.set(FaultSet {
            bursts: vec![Burst {
                route_prefix: "/api".into(),
                count: 2,
                retry_after_secs: 3,
            }],
            ..FaultSet::default()
        });
        for _ in 0..2 {
            let plan = faults.plan("/api/v1/agents", TOKEN, 0.5);
            assert!(matches!(
                plan.answer,
                Some((
                    Error::RateLimited {
                        retry_after_secs: 3
                    },
                    "burst"
                ))
            ));
        }
        assert!(faults.plan("/realms/x", TOKEN, 0.5).answer.is_none());
        assert!(faults.plan("/api/v1/agents", TOKEN, 0.5).answer.is_none());
        assert_eq!(faults.current().bursts[0].count, 0);
    }

    #[test]
    fn errors_strike_at_their_rate_with_their_status() {
        let faults = Faults::default();
        faults.set(FaultSet {
            errors: vec![ErrorRate {
                route_prefix: "/api".into(),
                rate: 0.25,
                status: 503,
            }],
            ..FaultSet::default()
        });
        let plan = faults.plan("/api/v1/tools", TOKEN, 0.1);
        assert!(matches!(
            plan.answer,
            Some((Error::Fault(status), "error")) if status == StatusCode::SERVICE_UNAVAILABLE
        ));
        assert!(faults.plan("/api/v1/tools", TOKEN, 0.25).answer.is_none());
        assert!(faults.plan(TOKEN, TOKEN, 0.0).answer.is_none());
    }

    #[test]
    fn the_token_endpoint_outage_hits_only_the_token_endpoint() {
        let faults = Faults::default();
        faults.set(FaultSet {
            token_endpoint_down: true,
            ..FaultSet::default()
        });
        assert_eq!(
            kind(&faults.plan(TOKEN, TOKEN, 0.5)),
            Some("token-endpoint-down")
        );
        assert_eq!(
            kind(&faults.plan(
                "/realms/speaknode/protocol/openid-connect/certs",
                TOKEN,
                0.5
            )),
            None
        );
    }

    #[test]
    fn the_hub_flag_is_watched_and_the_skew_moves_the_issuer_clock() {
        let faults = Faults::default();
        let watcher = faults.watch_drop_hub_connections();
        assert!(!faults.drop_hub_connections());
        faults.set(FaultSet {
            drop_hub_connections: true,
            clock_skew_secs: -3600,
            ..FaultSet::default()
        });
        assert!(faults.drop_hub_connections());
        assert!(watcher.has_changed().unwrap_or(false) && *watcher.borrow());
        let skewed = faults.issuer_now();
        let real = jsonwebtoken::get_current_timestamp();
        assert!(
            real - skewed >= 3599 && real - skewed <= 3601,
            "{real} {skewed}"
        );
        faults.clear();
        assert!(!faults.drop_hub_connections());
        assert_eq!(faults.clock_skew_secs(), 0);
    }

    #[test]
    fn problems_name_the_bad_members() {
        let set = FaultSet {
            latency: vec![Latency {
                route_prefix: "api".into(),
                ms: 60_001,
            }],
            errors: vec![ErrorRate {
                route_prefix: String::new(),
                rate: 1.5,
                status: 404,
            }],
            ..FaultSet::default()
        };
        let problems = set.problems();
        let paths: Vec<_> = problems.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "errors[0].rate",
                "errors[0].status",
                "latency[0].ms",
                "latency[0].route_prefix"
            ]
        );
        assert!(FaultSet::default().problems().is_empty());
    }

    #[test]
    fn the_fixture_is_a_valid_fault_set() -> serde_json::Result<()> {
        let set: FaultSet =
            serde_json::from_str(include_str!("../contract/fixtures/sandbox-faults.json"))?;
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        assert_eq!(set.clock_skew_secs, -120);
        Ok(())
    }

    #[test]
    fn unvalidated_latencies_saturate_instead_of_panicking() {
        let faults = Faults::default();
        let huge = Latency {
            route_prefix: String::new(),
            ms: u64::MAX,
        };
        // A thousand of the longest latencies add up to more than `Duration` holds.
        faults.set(FaultSet {
            latency: vec![huge; 1001],
            ..FaultSet::default()
        });
        assert_eq!(faults.plan("/", TOKEN, 0.5).delay, Duration::MAX);
    }

    #[test]
    fn rolls_are_in_the_unit_interval() {
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&roll()));
        }
    }
}
