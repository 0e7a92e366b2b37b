//! The BFF's Prometheus metrics, served as text at `GET /metrics`.
//!
//! Each router owns its registry (no global recorder), so tests and several BFFs in one
//! process count separately. Labels take only fixed values (scopes, error codes, call
//! names), never ids or addresses, so the number of series stays small.

use std::future::Future;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use speaknode_api::ErrorCode;
use tokio::time::Instant;

use crate::limits::Limit;
use crate::token::Scope;

/// The calls to the platform API, a label of the latency histogram.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    GetAgent,
    DispatchWeb,
    GetConversation,
    EndConversation,
    SendFeedback,
}

impl Call {
    fn as_str(self) -> &'static str {
        match self {
            Self::GetAgent => "get_agent",
            Self::DispatchWeb => "dispatch_web",
            Self::GetConversation => "get_conversation",
            Self::EndConversation => "end_conversation",
            Self::SendFeedback => "send_feedback",
        }
    }
}

/// What the notification hub client counts itself, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HubStats {
    /// Connection attempts (each begins with a negotiation).
    pub negotiations: u64,
    pub connected: bool,
}

/// The metrics of one BFF. Clones share the same series.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    minted: IntCounterVec,
    refusals: IntCounterVec,
    rate_limited: IntCounterVec,
    upstream_seconds: HistogramVec,
    /// Open server-sent event streams (`events::OpenStream` counts them).
    pub(crate) event_streams: IntGauge,
}

impl Metrics {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let minted = IntCounterVec::new(
            Opts::new(
                "speaknode_bff_tokens_minted_total",
                "Widget tokens minted, by scope (conversation:start is a new session).",
            ),
            &["scope"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "speaknode_bff_refusals_total",
                "Requests answered with a problem document, by its code.",
            ),
            &["code"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "speaknode_bff_rate_limited_total",
                "Mints refused by a rate limit, by limit (ip, agent, global).",
            ),
            &["limit"],
        )?;
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "speaknode_bff_upstream_request_duration_seconds",
                "Duration of platform API calls, including any token fetch and retry.",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["call"],
        )?;
        let event_streams = IntGauge::new(
            "speaknode_bff_open_event_streams",
            "Server-sent event streams currently open to widgets.",
        )?;
        registry.register(Box::new(minted.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(upstream_seconds.clone()))?;
        registry.register(Box::new(event_streams.clone()))?;
        Ok(Self {
            registry,
            minted,
            refusals,
            rate_limited,
            upstream_seconds,
            event_streams,
        })
    }

    pub(crate) fn minted(&self, scope: Scope) {
        let scope = match scope {
            Scope::ConversationStart => "conversation:start",
            Scope::ConversationRead => "conversation:read",
        };
        self.minted.with_label_values(&[scope]).inc();
    }

    pub(crate) fn rate_limited(&self, limit: Limit) {
        self.rate_limited.with_label_values(&[limit.as_str()]).inc();
    }

    /// Runs a platform call and records how long it took, whatever its outcome.
    pub(crate) async fn time<T>(&self, call: Call, future: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = future.await;
        self.upstream_seconds
            .with_label_values(&[call.as_str()])
            .observe(started.elapsed().as_secs_f64());
        output
    }

    /// The text exposition. `token_fetches` is read from the platform client at scrape time,
    /// since that client keeps the count itself.
    pub(crate) fn render(&self, token_fetches: u64, hub: HubStats) -> anyhow::Result<String> {
        let fetches = IntCounter::new(
            "speaknode_bff_upstream_token_fetches_total",
            "Attempts to fetch a platform access token, successful or not.",
        )?;
        fetches.inc_by(token_fetches);
        let negotiations = IntCounter::new(
            "speaknode_bff_hub_connection_attempts_total",
            "Attempts to connect to the platform's notification hub (negotiations).",
        )?;
        negotiations.inc_by(hub.negotiations);
        let connected = IntGauge::new(
            "speaknode_bff_hub_connected",
            "1 while the connection to the platform's notification hub is open.",
        )?;
        connected.set(i64::from(hub.connected));
        let mut families = self.registry.gather();
        families.extend(fetches.collect());
        families.extend(negotiations.collect());
        families.extend(connected.collect());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut text = Vec::new();
        TextEncoder::new().encode(&families, &mut text)?;
        Ok(String::from_utf8(text)?)
    }
}

/// Counts every problem response by its code; `AppError` leaves the code in the
/// response's extensions, so this sees refusals from handlers, extractors and fallbacks.
pub(crate) async fn count_refusals(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        metrics.refusals.with_label_values(&[code.as_str()]).inc();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_series_is_exposed_with_its_type() {
        let metrics = Metrics::new().expect("metrics");
        metrics.minted(Scope::ConversationStart);
        metrics.rate_limited(Limit::Agent);
        metrics.time(Call::GetAgent, async {}).await;
        let hub = HubStats {
            negotiations: 2,
            connected: true,
        };
        let text = metrics.render(3, hub).expect("render");
        for line in [
            "# TYPE speaknode_bff_tokens_minted_total counter",
            "speaknode_bff_tokens_minted_total{scope=\"conversation:start\"} 1",
            "speaknode_bff_rate_limited_total{limit=\"agent\"} 1",
            "# TYPE speaknode_bff_upstream_request_duration_seconds histogram",
            "speaknode_bff_upstream_request_duration_seconds_count{call=\"get_agent\"} 1",
            "# TYPE speaknode_bff_upstream_token_fetches_total counter",
            "speaknode_bff_upstream_token_fetches_total 3",
            "speaknode_bff_open_event_streams 0",
            "speaknode_bff_hub_connection_attempts_total 2",
            "speaknode_bff_hub_connected 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
