//! The widget API's handlers and extractors: thin glue between HTTP, the token issuer and
//! the platform client. Policy decisions (who may mint, what a token allows) are made here
//! in a few lines each, so they can be read in one place.
//!
//! Each handler's `#[utoipa::path]` is its entry in the OpenAPI document; `routes!`
//! registers the handler at exactly the path and method that entry names.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use speaknode_api::{
    AgentInfo, ConversationView, FeedbackRequest, MAX_FEEDBACK_COMMENT_CHARS, MintRequest, Rating,
    SessionGrant, StartRequest, StartedConversation, TokenGrant, WIDGET_HEADER,
    WIDGET_HEADER_VALUE,
};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::limits::{LimitError, Limits};
use crate::metrics::{Call, HubStats, Metrics};
use crate::openapi::{
    ApiDoc, ConversationViewDoc, FeedbackRequestDoc, JwkSetDoc, MintRequestDoc, SessionGrantDoc,
    StartRequestDoc, StartedConversationDoc, TAG_OPERATIONS, TAG_WIDGET, TokenGrantDoc,
    WidgetProtocolDoc,
};
use crate::token::{Claims, Grant, Minted, Scope, TokenError, TokenIssuer, visitor_id};
use crate::upstream::{Conversation, Upstream, UpstreamError};

/// What every handler shares.
pub(crate) type AppState = Arc<Shared>;

pub(crate) struct Shared {
    pub tokens: TokenIssuer,
    pub upstream: Upstream,
    /// Agent id → the origins allowed to embed it.
    pub agents: HashMap<String, HashSet<String>>,
    pub limits: Limits,
    pub metrics: Metrics,
    /// The OpenAPI document, rendered once.
    pub openapi: String,
    /// Cancelled when shutdown begins, so event streams end instead of holding the drain.
    pub closing: tokio_util::sync::CancellationToken,
}

impl Shared {
    fn allows(&self, agent_id: &str, origin: &str) -> bool {
        self.agents
            .get(agent_id)
            .is_some_and(|origins| origins.contains(origin))
    }

    /// Mints a token and counts it.
    fn mint(&self, grant: Grant) -> Result<Minted, AppError> {
        let scope = grant.scope;
        let minted = self.tokens.mint(grant)?;
        self.metrics.minted(scope);
        Ok(minted)
    }

    /// Counts a rate limit refusal before it becomes a problem response.
    fn limited(&self, result: Result<(), LimitError>) -> Result<(), AppError> {
        if let Err(LimitError::Exceeded { limit, .. }) = &result {
            self.metrics.rate_limited(*limit);
        }
        Ok(result?)
    }
}

/// The routes and, collected from the same handlers, their OpenAPI document.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_session))
        .routes(routes!(start_conversation))
        .routes(routes!(get_conversation))
        .routes(routes!(renew_token))
        .routes(routes!(end_conversation))
        .routes(routes!(give_feedback))
        .routes(routes!(crate::events::conversation_events))
        .routes(routes!(jwks))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

/// Mint a widget token
///
/// A token that may start one conversation with one agent, from the calling page only.
/// Counted against the client's, the agent's and the global rate limits.
#[utoipa::path(
    post, path = "/v1/sessions", tag = TAG_WIDGET,
    params(
        ("x-speaknode-widget" = WidgetProtocolDoc, Header,
            description = "Proves the widget's script sent the request: a custom header makes \
                every cross-origin call preflighted."),
        ("Origin" = String, Header, example = "https://shop.example",
            description = "The embedding page, as browsers send it; it must be allowed for the agent."),
    ),
    request_body = MintRequestDoc,
    responses(
        (status = 201, description = "A token scoped to the agent and this page.", body = SessionGrantDoc),
        (status = 400, description = "`missing_widget_header`, or `invalid_request`: the body is malformed or has unknown members."),
        (status = 403, description = "`origin_not_allowed`: this page may not use this agent."),
        (status = 404, description = "`agent_not_found`: no such agent for this widget."),
        (status = 413, description = "`invalid_request`: the body is too large."),
        (status = 415, description = "`invalid_request`: the body is not declared as JSON."),
        (status = 429, description = "`rate_limited`: too many mints; wait `Retry-After` seconds."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform or the rate limit store is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
async fn create_session(
    State(app): State<AppState>,
    _: WidgetHeader,
    ClientIp(client): ClientIp,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(request): JsonBody<MintRequest>,
) -> Result<impl IntoResponse, AppError> {
    app.limited(app.limits.check_client(client).await)?;
    // Pages that may embed no agent at all learn nothing, not even which agents exist.
    let origin = origin
        .filter(|origin| app.agents.values().any(|origins| origins.contains(origin)))
        .ok_or(AppError::OriginNotAllowed)?;
    if !app.agents.contains_key(&request.agent_id) {
        return Err(AppError::AgentNotFound);
    }
    if !app.allows(&request.agent_id, &origin) {
        return Err(AppError::OriginNotAllowed);
    }
    // Only now, with the platform about to be asked, do the agent and the BFF as a whole
    // spend their allowance.
    app.limited(app.limits.check_agent(&request.agent_id).await)?;
    // A cached title spares the platform a call per visitor (see `upstream::agent_cache`).
    let title = match app.upstream.agents.title(&request.agent_id) {
        Some(title) => title,
        None => {
            let agent = app
                .metrics
                .time(Call::GetAgent, app.upstream.get_agent(&request.agent_id))
                .await
                .map_err(|error| match error {
                    UpstreamError::NotFound => AppError::AgentNotFound,
                    error => error.into(),
                })?;
            app.upstream.agents.insert(&request.agent_id, &agent.title);
            agent.title
        }
    };
    let minted = app.mint(Grant {
        sub: visitor_id()?,
        agent_id: request.agent_id.clone(),
        origin,
        scope: Scope::ConversationStart,
        conversation_id: None,
    })?;
    let grant = SessionGrant {
        token: minted.token,
        expires_at: minted.expires_at,
        agent: AgentInfo {
            id: request.agent_id,
            name: title,
        },
    };
    Ok((StatusCode::CREATED, Json(grant)))
}

/// Start a conversation
///
/// Starts a web conversation with the token's agent and trades the minting token for one
/// bound to that conversation. When the platform offers voice, `voice` carries the LiveKit
/// server and a join token whose room, grants (microphone, subscribe, data) and lifetime
/// the BFF has checked; a token that fails any check fails the start with 502.
#[utoipa::path(
    post, path = "/v1/conversations", tag = TAG_WIDGET,
    security(("widget_token" = [])),
    params(
        ("Origin" = Option<String>, Header,
            description = "When present, it must be the page the token was minted for."),
    ),
    request_body = StartRequestDoc,
    responses(
        (status = 201, description = "The conversation and a token bound to it.", body = StartedConversationDoc),
        (status = 400, description = "`invalid_request`: the body is malformed or has unknown members."),
        (status = 401, description = "`invalid_token` or `token_expired`."),
        (status = 403, description = "`forbidden`: the token may not start a conversation; `origin_not_allowed`: another page."),
        (status = 413, description = "`invalid_request`: the body is too large."),
        (status = 415, description = "`invalid_request`: the body is not declared as JSON."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
async fn start_conversation(
    State(app): State<AppState>,
    Authorized(claims): Authorized,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(StartRequest {}): JsonBody<StartRequest>,
) -> Result<impl IntoResponse, AppError> {
    if claims.scope != Scope::ConversationStart {
        return Err(AppError::Forbidden);
    }
    same_origin(origin.as_deref(), &claims)?;
    // The configuration may have changed since the token was minted (a rolling deploy).
    if !app.allows(&claims.agent_id, &claims.origin) {
        return Err(AppError::Forbidden);
    }
    let (conversation, voice) = app
        .metrics
        .time(
            Call::DispatchWeb,
            app.upstream.dispatch_web(&claims.agent_id),
        )
        .await?;
    if conversation.agent_id != claims.agent_id {
        let wrong = format!(
            "dispatch returned a conversation of agent {}",
            conversation.agent_id
        );
        return Err(UpstreamError::BadGateway(wrong).into());
    }
    let minted = app.mint(Grant {
        sub: claims.sub,
        agent_id: claims.agent_id,
        origin: claims.origin,
        scope: Scope::ConversationRead,
        conversation_id: Some(conversation.id.clone()),
    })?;
    let started = StartedConversation {
        conversation: conversation.into_view(),
        token: minted.token,
        expires_at: minted.expires_at,
        voice,
    };
    Ok((StatusCode::CREATED, Json(started)))
}

/// Read the conversation
///
/// The status and visible transcript of the token's own conversation. Any other id
/// answers 404, whether it exists or not.
#[utoipa::path(
    get, path = "/v1/conversations/{id}", tag = TAG_WIDGET,
    security(("widget_token" = [])),
    params(
        ("id" = String, Path, description = "The conversation the token is bound to."),
        ("Origin" = Option<String>, Header,
            description = "When present, it must be the page the token was minted for."),
    ),
    responses(
        (status = 200, description = "The conversation as a visitor may see it.", body = ConversationViewDoc),
        (status = 401, description = "`invalid_token` or `token_expired`."),
        (status = 403, description = "`origin_not_allowed`: another page."),
        (status = 404, description = "`not_found`: not this token's conversation."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
async fn get_conversation(
    State(app): State<AppState>,
    Authorized(claims): Authorized,
    RequestOrigin(origin): RequestOrigin,
    PathParam(id): PathParam<String>,
) -> Result<Json<ConversationView>, AppError> {
    let conversation = own_conversation(&app, &claims, origin.as_deref(), &id).await?;
    Ok(Json(conversation.into_view()))
}

/// Renew a conversation token
///
/// Trades a valid token bound to a running conversation for a fresh one. Renewal ends with
/// the conversation, so a token copied from a page is useful at most until the
/// conversation is over plus one token lifetime. When the platform offers voice, `voice`
/// carries a fresh LiveKit join token for the same room, checked as at the start; a token
/// that fails a check fails the renewal with 502.
#[utoipa::path(
    post, path = "/v1/conversations/{id}/token", tag = TAG_WIDGET,
    security(("widget_token" = [])),
    params(
        ("id" = String, Path, description = "The conversation the token is bound to."),
        ("Origin" = Option<String>, Header,
            description = "When present, it must be the page the token was minted for."),
    ),
    responses(
        (status = 200, description = "A fresh token bound to the same conversation.", body = TokenGrantDoc),
        (status = 401, description = "`invalid_token` or `token_expired`."),
        (status = 403, description = "`forbidden`: the conversation has ended; `origin_not_allowed`: another page."),
        (status = 404, description = "`not_found`: not this token's conversation."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
async fn renew_token(
    State(app): State<AppState>,
    Authorized(claims): Authorized,
    RequestOrigin(origin): RequestOrigin,
    PathParam(id): PathParam<String>,
) -> Result<Json<TokenGrant>, AppError> {
    let conversation = own_conversation(&app, &claims, origin.as_deref(), &id).await?;
    if conversation.is_final() || !app.allows(&claims.agent_id, &claims.origin) {
        return Err(AppError::Forbidden);
    }
    // The read above carries a join token minted for it; it gets the same checks as the
    // one of the start, so renewing needs no second platform call.
    let voice = app.upstream.voice(&conversation)?;
    let minted = app.mint(Grant {
        sub: claims.sub,
        agent_id: claims.agent_id,
        origin: claims.origin,
        scope: Scope::ConversationRead,
        conversation_id: Some(conversation.id),
    })?;
    Ok(Json(TokenGrant {
        token: minted.token,
        expires_at: minted.expires_at,
        voice,
    }))
}

/// End the conversation
///
/// The visitor hangs up; answers the conversation as it ended. One that has already ended
/// answers 409 `conversation_ended` and stays as it was (read it for its final state):
/// the platform refuses to end it twice, and this route makes exactly one platform call.
#[utoipa::path(
    post, path = "/v1/conversations/{id}/end", tag = TAG_WIDGET,
    security(("widget_token" = [])),
    params(
        ("id" = String, Path, description = "The conversation the token is bound to."),
        ("Origin" = Option<String>, Header,
            description = "When present, it must be the page the token was minted for."),
    ),
    responses(
        (status = 200, description = "The conversation, now ended.", body = ConversationViewDoc),
        (status = 401, description = "`invalid_token` or `token_expired`."),
        (status = 403, description = "`origin_not_allowed`: another page."),
        (status = 404, description = "`not_found`: not this token's conversation."),
        (status = 409, description = "`conversation_ended`: it had already ended."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
async fn end_conversation(
    State(app): State<AppState>,
    Authorized(claims): Authorized,
    RequestOrigin(origin): RequestOrigin,
    PathParam(id): PathParam<String>,
) -> Result<Json<ConversationView>, AppError> {
    bound_to(&claims, origin.as_deref(), &id)?;
    let conversation = app
        .metrics
        .time(Call::EndConversation, app.upstream.end_conversation(&id))
        .await
        .map_err(|error| match error {
            UpstreamError::NotFound => AppError::NotFound,
            UpstreamError::Conflict => AppError::ConversationEnded,
            error => error.into(),
        })?;
    // The binding was signed by this BFF for a conversation of the token's agent, so the
    // call was allowed; a conversation of another agent in the answer is the platform
    // misbehaving, and nothing of it is shown.
    if conversation.agent_id != claims.agent_id {
        let wrong = format!(
            "ending returned a conversation of agent {}",
            conversation.agent_id
        );
        return Err(UpstreamError::BadGateway(wrong).into());
    }
    Ok(Json(conversation.into_view()))
}

/// Rate the conversation
///
/// Thumbs up or down and an optional comment, passed on to the platform; a later rating
/// replaces an earlier one. Allowed while the token lives, so also right after the
/// conversation has ended.
#[utoipa::path(
    post, path = "/v1/conversations/{id}/feedback", tag = TAG_WIDGET,
    security(("widget_token" = [])),
    params(
        ("id" = String, Path, description = "The conversation the token is bound to."),
        ("Origin" = Option<String>, Header,
            description = "When present, it must be the page the token was minted for."),
    ),
    request_body = FeedbackRequestDoc,
    responses(
        (status = 204, description = "The platform has the rating."),
        (status = 400, description = "`invalid_request`: the body is malformed, has unknown members or too long a comment."),
        (status = 401, description = "`invalid_token` or `token_expired`."),
        (status = 403, description = "`origin_not_allowed`: another page."),
        (status = 404, description = "`not_found`: not this token's conversation."),
        (status = 413, description = "`invalid_request`: the body is too large."),
        (status = 415, description = "`invalid_request`: the body is not declared as JSON."),
        (status = 500, description = "`internal`: a fault in the BFF."),
        (status = 502, description = "`upstream_unavailable`: the platform failed or refused the BFF."),
        (status = 503, description = "`upstream_unavailable`: the platform is unavailable."),
        (status = 504, description = "`upstream_unavailable`: the platform did not answer in time."),
    ),
)]
async fn give_feedback(
    State(app): State<AppState>,
    Authorized(claims): Authorized,
    RequestOrigin(origin): RequestOrigin,
    PathParam(id): PathParam<String>,
    JsonBody(request): JsonBody<FeedbackRequest>,
) -> Result<StatusCode, AppError> {
    bound_to(&claims, origin.as_deref(), &id)?;
    // A blank comment says nothing; sending it as one would only clutter the platform.
    let comment = request
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|comment| !comment.is_empty());
    if comment.is_some_and(|comment| comment.chars().count() > MAX_FEEDBACK_COMMENT_CHARS) {
        return Err(AppError::InvalidRequest(format!(
            "comment: at most {MAX_FEEDBACK_COMMENT_CHARS} characters"
        )));
    }
    let positive = request.rating == Rating::Up;
    app.metrics
        .time(
            Call::SendFeedback,
            app.upstream.send_feedback(&id, positive, comment),
        )
        .await
        .map_err(|error| match error {
            UpstreamError::NotFound => AppError::NotFound,
            error => error.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses, exactly as a missing conversation, any `id` the token is not bound to, and any
/// request from another page than the token's: a token reveals nothing about, and can do
/// nothing to, conversations it is not bound to.
fn bound_to(claims: &Claims, origin: Option<&str>, id: &str) -> Result<(), AppError> {
    if claims.scope != Scope::ConversationRead || claims.conversation_id.as_deref() != Some(id) {
        return Err(AppError::NotFound);
    }
    same_origin(origin, claims)
}

/// The conversation `id` if the token is bound to it (see [`bound_to`]) and it belongs to
/// the token's agent; a conversation of another agent answers exactly like a missing one.
pub(crate) async fn own_conversation(
    app: &Shared,
    claims: &Claims,
    origin: Option<&str>,
    id: &str,
) -> Result<Conversation, AppError> {
    bound_to(claims, origin, id)?;
    let conversation = app
        .metrics
        .time(Call::GetConversation, app.upstream.get_conversation(id))
        .await
        .map_err(|error| match error {
            UpstreamError::NotFound => AppError::NotFound,
            error => error.into(),
        })?;
    if conversation.agent_id != claims.agent_id {
        return Err(AppError::NotFound);
    }
    Ok(conversation)
}

/// The public keys of widget tokens
///
/// Verifiers may cache it briefly; a rotated key stays listed for longer than any token it
/// signed lives.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = TAG_WIDGET,
    responses((status = 200, description = "The JWK set.", body = JwkSetDoc)),
)]
async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(app.tokens.jwks().clone()),
    )
}

/// Liveness
///
/// The process serves requests; nothing else is checked.
#[utoipa::path(
    get, path = "/healthz", tag = TAG_OPERATIONS,
    responses((status = 200, description = "Alive.", body = String, example = "ok")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness
///
/// Ready when a platform access token can be had (the cached one or a fresh fetch) and,
/// with Redis configured, the rate limit store answers: without either, no mint succeeds.
#[utoipa::path(
    get, path = "/readyz", tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "Ready.", body = String, example = "ready"),
        (status = 503, description = "`upstream_unavailable`: not ready."),
    ),
)]
async fn readyz(State(app): State<AppState>) -> Result<&'static str, AppError> {
    if let Err(error) = app.upstream.ready().await {
        return Err(AppError::Unavailable(format!("no platform token: {error}")));
    }
    app.limits
        .ping()
        .await
        .map_err(|error| AppError::Unavailable(error.to_string()))?;
    Ok("ready")
}

/// Prometheus metrics
///
/// The text exposition format: mints, refusals by code, rate limit refusals, platform call
/// latency, token fetches and open event streams.
#[utoipa::path(
    get, path = "/metrics", tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 500, description = "`internal`: the metrics could not be rendered."),
    ),
)]
async fn metrics(State(app): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let hub = app.upstream.hub();
    let hub = HubStats {
        negotiations: hub.negotiations(),
        connected: hub.connected(),
    };
    let text = app.metrics.render(app.upstream.token_fetches(), hub)?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    ))
}

/// This document
#[utoipa::path(
    get, path = "/openapi.json", tag = TAG_OPERATIONS,
    responses((status = 200, description = "The OpenAPI document of this API.", body = Object)),
)]
async fn openapi_json(State(app): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], app.openapi.clone())
}

/// A browser always sends `Origin` on these cross-origin calls; when it is there it must
/// be the page the token was minted for, so a token copied to another site is useless.
pub(crate) fn same_origin(origin: Option<&str>, claims: &Claims) -> Result<(), AppError> {
    match origin {
        Some(origin) if origin != claims.origin => Err(AppError::OriginNotAllowed),
        _ => Ok(()),
    }
}

/// Proof that the widget's script sent the request: a custom header makes any
/// cross-origin call preflighted, so a plain form or `<img>` elsewhere cannot mint.
struct WidgetHeader;

impl<S: Send + Sync> FromRequestParts<S> for WidgetHeader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        match parts.headers.get(WIDGET_HEADER) {
            Some(value) if value == WIDGET_HEADER_VALUE => Ok(Self),
            _ => Err(AppError::MissingWidgetHeader),
        }
    }
}

/// The client's address for rate limiting: the TCP peer, or behind a trusted proxy the
/// address it forwards (see `Limits::client_ip`). A router served without connect info
/// (as `oneshot` tests do) puts every request under one address, which is strict, not lax.
struct ClientIp(IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(Self(app.limits.client_ip(peer, &parts.headers)))
    }
}

/// The `Origin` header as sent; a value that is not text becomes one that matches nothing.
pub(crate) struct RequestOrigin(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let origin = parts
            .headers
            .get(ORIGIN)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        Ok(Self(origin))
    }
}

/// The verified claims of the request's `Authorization: Bearer` widget token.
pub(crate) struct Authorized(pub Claims);

impl FromRequestParts<AppState> for Authorized {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| TokenError::Invalid("no bearer token".into()))?;
        Ok(Self(app.tokens.verify(token)?))
    }
}

/// `axum::Json` that takes only a JSON object and whose rejections are problem documents.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        let Json(ObjectOnly(value)) = Json::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// Deserialises `T` from a JSON object only. serde also reads a struct from an array of its
/// fields in order (`["agent"]` for `{"agent_id":"agent"}`), a second spelling of every
/// body that the API does not document and no widget sends. Going through the map, not a
/// `Value`, keeps serde's refusal of duplicate and unknown members.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(Object(PhantomData)).map(Self)
    }
}

/// `axum::extract::Path` whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub(crate) struct PathParam<T>(pub T);
