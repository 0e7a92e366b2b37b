//! The conversation event stream: `GET /v1/conversations/{id}/events` as server-sent events.
//!
//! Every event is a whole [`ConversationView`] read over REST, never a hub payload: the hub's
//! carries no history and internal members. The first event is the conversation as it is;
//! each later one follows an `AgentSessionUpdated` for it or a reconnect of the hub (when
//! anything may have been missed), and is sent only if the conversation changed. Events
//! carry increasing `id:`s, the first a `retry:` hint, and a comment keeps idle streams open
//! every 15 s. A `Last-Event-ID` needs no replay: the first event of a new stream is the
//! whole conversation.
//!
//! The stream ends with an `end` event when the conversation is over, its token expires or
//! the BFF shuts down; the widget closes its `EventSource` on it, since a browser would
//! otherwise reconnect. If a re-read fails, the stream just closes: the browser reconnects
//! after the `retry:` hint and starts again from a fresh read, or gets a problem document.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use prometheus::IntGauge;
use serde::Deserialize;
use speaknode_api::{ConversationEvent, ConversationView, EndReason, StreamEnd};
use tokio::time::{Instant, sleep_until};

use crate::error::AppError;
use crate::openapi::TAG_WIDGET;
use crate::routes::{
    AppState, Authorized, PathParam, RequestOrigin, own_conversation, same_origin,
};
use crate::token::{Claims, Scope, TokenError};
use crate::upstream::hub::Subscription;

/// Proxies commonly close connections idle for 30 to 60 s.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a browser waits before reconnecting a stream that closed without `end`.
const RETRY: Duration = Duration::from_secs(3);

/// The verified claims of the stream's widget token: from `Authorization: Bearer` like every
/// other route, or else from the `access_token` query parameter. Only this route takes the
/// parameter: a browser's `EventSource` cannot send headers. The request span logs the
/// matched route, never the URI, so the token stays out of the BFF's logs; it may still
/// reach a proxy's, which its short lifetime and its binding to one conversation and one
/// origin make tolerable (SignalR makes the same trade-off).
pub(crate) struct StreamToken(Claims);

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

impl FromRequestParts<AppState> for StreamToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let Authorized(claims) = Authorized::from_request_parts(parts, app).await?;
            return Ok(Self(claims));
        }
        let token = Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(query)| query.access_token)
            .ok_or_else(|| TokenError::Invalid("no bearer token".into()))?;
        Ok(Self(app.tokens.verify(token.trim())?))
    }
}

/// Follow the conversation
///
/// The conversation as server-sent events: `conversation` with the whole conversation as
/// a visitor may see it, first as it is and then after every change, and `end` (with a
/// `reason`: `conversation_ended`, `token_expired` or `shutting_down`) before the BFF
/// closes the stream; close the `EventSource` on `end`. Authorised like reading the
/// conversation; since `EventSource` cannot send headers, the token may instead come as
/// the `access_token` query parameter.
#[utoipa::path(
    get, path = "/v1/conversations/{id}/events", tag = TAG_WIDGET,
    security(("widget_token" = [])),
    params(
        ("id" = String, Path, description = "The conversation the token is bound to."),
        ("access_token" = Option<String>, Query,
            description = "The widget token, when it cannot be sent as `Authorization: Bearer`."),
        ("Origin" = Option<String>, Header,
            description = "When present, it must be the page the token was minted for."),
    ),
    responses(
        (status = 200, description = "Server-sent events until `end`.", body = String,
            content_type = "text/event-stream"),
        (status = 401, description = "`invalid_token` or `token_expired`."),
        (status = 403, description = "`origin_not_allowed`: another page."),
        (status = 404, description = "`not_found`: not this token's conversation."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
pub(crate) async fn conversation_events(
    State(app): State<AppState>,
    StreamToken(claims): StreamToken,
    RequestOrigin(origin): RequestOrigin,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, AppError> {
    // Checked before subscribing, so a refused request opens no hub connection.
    if claims.scope != Scope::ConversationRead || claims.conversation_id.as_deref() != Some(&id) {
        return Err(AppError::NotFound);
    }
    same_origin(origin.as_deref(), &claims)?;
    // Subscribed before the first read, so an update between the two is not lost.
    let subscription = app.upstream.hub().subscribe(&id);
    let first = own_conversation(&app, &claims, None, &id)
        .await?
        .into_view();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let feed = Feed {
        expires: Instant::now() + Duration::from_secs(claims.exp.saturating_sub(now)),
        _open: OpenStream::new(app.metrics.event_streams.clone()),
        app,
        claims,
        id,
        subscription,
        last: None,
        sent: 0,
        step: Step::First(first),
    };
    let stream = futures_util::stream::unfold(feed, Feed::next);
    Ok((
        // Tells nginx-style proxies not to buffer the stream.
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    ))
}

/// One open stream's state.
struct Feed {
    app: AppState,
    claims: Claims,
    id: String,
    subscription: Subscription,
    /// When the stream's token expires.
    expires: Instant,
    /// The last conversation sent, so that re-reads which find no change send nothing.
    last: Option<ConversationView>,
    /// Events sent so far; the next one's `id:`.
    sent: u64,
    step: Step,
    _open: OpenStream,
}

/// What the stream sends next.
enum Step {
    First(ConversationView),
    Live,
    End(EndReason),
    Done,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, axum::Error>, Self)> {
        let event = match std::mem::replace(&mut self.step, Step::Done) {
            Step::Done => return None,
            Step::End(reason) => ConversationEvent::End(StreamEnd { reason }),
            Step::First(view) => self.send(view),
            Step::Live => self.wait().await?,
        };
        self.sent += 1;
        let sse = Event::default()
            .event(event.name())
            .id(self.sent.to_string());
        let sse = if self.sent == 1 {
            sse.retry(RETRY)
        } else {
            sse
        };
        let sse = match &event {
            ConversationEvent::Conversation(view) => sse.json_data(view),
            ConversationEvent::End(end) => sse.json_data(end),
        };
        Some((sse, self))
    }

    /// Waits for a change, the token's expiry or shutdown; `None` closes the stream.
    async fn wait(&mut self) -> Option<ConversationEvent> {
        loop {
            let end = |reason| Some(ConversationEvent::End(StreamEnd { reason }));
            tokio::select! {
                biased;
                () = self.app.closing.cancelled() => return end(EndReason::ShuttingDown),
                () = sleep_until(self.expires) => return end(EndReason::TokenExpired),
                () = self.subscription.changed() => {}
            }
            let view = match own_conversation(&self.app, &self.claims, None, &self.id).await {
                Ok(conversation) => conversation.into_view(),
                Err(error) => {
                    tracing::warn!(%error, "cannot re-read a streamed conversation; closing the stream");
                    return None;
                }
            };
            if self.last.as_ref() != Some(&view) {
                return Some(self.send(view));
            }
        }
    }

    /// Records `view` as sent and decides what follows it.
    fn send(&mut self, view: ConversationView) -> ConversationEvent {
        self.step = if view.status.is_final() {
            Step::End(EndReason::ConversationEnded)
        } else {
            Step::Live
        };
        self.last = Some(view.clone());
        ConversationEvent::Conversation(view)
    }
}

/// Counts an open stream for as long as it lives.
struct OpenStream(IntGauge);

impl OpenStream {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}
