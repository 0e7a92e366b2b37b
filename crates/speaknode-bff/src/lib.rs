//! The SpeakNode widget's backend-for-frontend (BFF).
//!
//! The BFF holds the customer's SpeakNode platform credentials and gives browsers only
//! short-lived widget tokens scoped to one agent, one page origin and one action. No
//! platform access token, client secret or signing key ever leaves this process: not in a
//! body, a header, a URL, a log line or an error.
//!
//! - `config`: plain configuration data, validated at start.
//! - `upstream`: the platform client, the only code that knows the platform's wire format.
//! - `token`: minting and verifying widget tokens.
//! - `routes`: the widget API's handlers; `error`: its one error type.
//! - `events`: the conversation event stream (server-sent events fed by the hub).
//! - `limits`: rate limits on minting; `metrics`: Prometheus metrics; `openapi`: the API's
//!   OpenAPI document.
//!
//! Operations routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) share the widget
//! API's router and listener. None reveals a secret; an operator who wants them private
//! blocks them at the ingress.

mod config;
mod error;
mod events;
mod limits;
mod metrics;
mod openapi;
mod routes;
mod token;
mod upstream;

use std::collections::{BTreeSet, HashMap};
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION, RETRY_AFTER,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use config::{AgentPolicy, Config, LimitsConfig, Rate, UpstreamConfig, UpstreamMode};
pub use upstream::login::Login;

use crate::error::AppError;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::routes::Shared;
use crate::token::{SigningKey, TokenIssuer};
use crate::upstream::Upstream;

/// Request bodies are tiny JSON objects; anything larger is refused before parsing.
const BODY_LIMIT_BYTES: usize = 16 * 1024;
/// How long preflight answers may be cached by browsers.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);
/// How long in-flight requests may finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Correlates a request's log lines with what the client saw.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Client-chosen request ids longer than this are replaced.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Builds the BFF's HTTP application. `config.public_url` must be set: it is the issuer
/// and audience of widget tokens.
pub fn router(config: Config) -> anyhow::Result<Router> {
    app(config).map(|(router, _)| router)
}

/// The router, and the token that ends its event streams when cancelled.
fn app(config: Config) -> anyhow::Result<(Router, CancellationToken)> {
    config.validate()?;
    let public_base = config
        .public_base()
        .context("public_url must be set (serve fills it in from the listener)")?;
    let key = signing_key(&config)?;
    let previous = config
        .previous_signing_key_files
        .iter()
        .map(|path| load_key(path).context("in previous_signing_key_files"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tokens = TokenIssuer::new(public_base, config.token_ttl_secs, key, &previous)?;
    let upstream = Upstream::new(&config.upstream)?;
    let cors = cors(&config.agents)?;
    let limits = Limits::new(&config.limits)?;
    let metrics = Metrics::new()?;
    let (routes, doc) = routes::routes().split_for_parts();
    let openapi = serde_json::to_string(&openapi::finish(doc))?;
    let agents: HashMap<_, _> = config
        .agents
        .into_iter()
        .map(|agent| (agent.id, agent.allowed_origins.into_iter().collect()))
        .collect();
    // Each upstream hop (discovery, token, call, one retry) has its own timeout; this
    // deadline only cuts off a request whose hops add up to far more than one.
    let deadline = Duration::from_millis(config.upstream.timeout_ms.saturating_mul(3));
    let closing = CancellationToken::new();
    let state = Arc::new(Shared {
        tokens,
        upstream,
        agents,
        limits,
        metrics: metrics.clone(),
        openapi,
        closing: closing.clone(),
    });
    let layers = ServiceBuilder::new()
        // Marked headers print as "Sensitive" wherever a layer or a log line shows them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            COOKIE,
        ]))
        .layer(SetSensitiveResponseHeadersLayer::new([SET_COOKIE]))
        .layer(MapRequestLayer::new(drop_unusable_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // The matched route, not the raw path: ids in paths stay out of the logs and
                // the span names stay few.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str);
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|id| id.to_str().ok());
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    route = route.unwrap_or("-"),
                    request_id = id.unwrap_or("-"),
                )
            }),
        )
        .layer(middleware::from_fn_with_state(
            metrics,
            metrics::count_refusals,
        ))
        .layer(cors)
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(middleware::from_fn_with_state(deadline, within_deadline))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    let router = routes
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed });
    Ok((router.layer(layers).with_state(state), closing))
}

/// The BFF's log filter: `directives` (`RUST_LOG` syntax), except that tungstenite's
/// client handshake never logs at trace level, where it prints the hub upgrade request
/// with its `Authorization` header, the platform access token.
pub fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    // A later directive for the same target replaces an earlier one, so this one holds
    // even when `directives` names that target.
    tracing_subscriber::EnvFilter::new(format!("{directives},tungstenite::handshake::client=debug"))
}

/// Keeps a client's `x-request-id` only if it is short and plain, so it can go into log
/// lines as it is; otherwise the request gets a fresh one.
fn drop_unusable_request_id(mut request: Request) -> Request {
    let usable = request.headers().get(REQUEST_ID).is_some_and(|id| {
        let id = id.as_bytes();
        (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if !usable {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// The key from `signing_key_file`, or an ephemeral one.
fn signing_key(config: &Config) -> anyhow::Result<SigningKey> {
    let Some(path) = &config.signing_key_file else {
        tracing::warn!(
            "no signing_key_file: widget tokens are signed with an ephemeral key, which \
             other replicas do not share and a restart forgets"
        );
        return SigningKey::generate();
    };
    load_key(path).context("in signing_key_file")
}

fn load_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    std::fs::read_to_string(path)
        .map_err(anyhow::Error::from)
        .and_then(|pem| SigningKey::from_pkcs8_pem(&pem))
        .with_context(|| format!("cannot load the key {}", path.display()))
}

/// CORS for exactly the origins some agent allows: no wildcard, no mirroring, no
/// credentials (widget tokens travel in a header, never in a cookie).
fn cors(agents: &[AgentPolicy]) -> anyhow::Result<CorsLayer> {
    let origins: BTreeSet<&str> = agents
        .iter()
        .flat_map(|agent| agent.allowed_origins.iter().map(String::as_str))
        .collect();
    let origins = origins
        .into_iter()
        .map(HeaderValue::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            CONTENT_TYPE,
            AUTHORIZATION,
            HeaderName::from_static(speaknode_api::WIDGET_HEADER),
        ])
        // The problem body mirrors Retry-After, but a widget may prefer the header; the
        // request id lets a support request name the failed call.
        .expose_headers([RETRY_AFTER, REQUEST_ID])
        .max_age(CORS_MAX_AGE))
}

/// Serves the BFF on `listener` until `shutdown` resolves, then lets running requests
/// finish for a bounded time. Without `public_url`, the listener's address is used.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{}", listener.local_addr()?));
    }
    let (app, closing) = app(config)?;
    let (draining, drain_started) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // Event streams never end by themselves; told now, they close within the drain.
        closing.cancel();
        let _ = draining.send(());
    });
    tokio::select! {
        result = server.into_future() => result.context("the BFF server failed")?,
        () = async {
            match drain_started.await {
                Ok(()) => tokio::time::sleep(DRAIN_TIMEOUT).await,
                // The server ended by itself; the other branch reports how.
                Err(_) => std::future::pending().await,
            }
        } => tracing::warn!("requests still running after the drain timeout were cut off"),
    }
    Ok(())
}

/// Answers 504 problem+json when a request outlives its deadline.
async fn within_deadline(
    State(deadline): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Timeout.into_response(),
    }
}
