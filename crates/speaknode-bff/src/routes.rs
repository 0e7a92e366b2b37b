//! The widget API's handlers and extractors: thin glue between HTTP, the token issuer and
//! the platform client. Policy decisions (who may mint, what a token allows) are made here
//! in a few lines each, so they can be read in one place.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, ORIGIN};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use speaknode_api::{
    AgentInfo, ConversationView, MintRequest, SessionGrant, StartRequest, StartedConversation,
    TokenGrant, WIDGET_HEADER, WIDGET_HEADER_VALUE, paths,
};

use crate::error::AppError;
use crate::token::{Claims, Grant, Scope, TokenError, TokenIssuer, visitor_id};
use crate::upstream::{Conversation, Upstream, UpstreamError};

/// What every handler shares.
pub(crate) type AppState = Arc<Shared>;

pub(crate) struct Shared {
    pub tokens: TokenIssuer,
    pub upstream: Upstream,
    /// Agent id → the origins allowed to embed it.
    pub agents: HashMap<String, HashSet<String>>,
}

impl Shared {
    fn allows(&self, agent_id: &str, origin: &str) -> bool {
        self.agents
            .get(agent_id)
            .is_some_and(|origins| origins.contains(origin))
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::SESSIONS, post(create_session))
        .route(paths::CONVERSATIONS, post(start_conversation))
        .route(&paths::conversation("{id}"), get(get_conversation))
        .route(&paths::conversation_token("{id}"), post(renew_token))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
}

/// `POST /v1/sessions`: a scoped token for one agent, for a page the agent allows.
async fn create_session(
    State(app): State<AppState>,
    _: WidgetHeader,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(request): JsonBody<MintRequest>,
) -> Result<impl IntoResponse, AppError> {
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
    let agent = app
        .upstream
        .get_agent(&request.agent_id)
        .await
        .map_err(|error| match error {
            UpstreamError::NotFound => AppError::AgentNotFound,
            error => error.into(),
        })?;
    let minted = app.tokens.mint(Grant {
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
            name: agent.title,
        },
    };
    Ok((StatusCode::CREATED, Json(grant)))
}

/// `POST /v1/conversations`: starts a web conversation and trades the minting token for
/// one bound to that conversation.
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
    let conversation = app.upstream.dispatch_web(&claims.agent_id).await?;
    if conversation.agent_id != claims.agent_id {
        let wrong = format!(
            "dispatch returned a conversation of agent {}",
            conversation.agent_id
        );
        return Err(UpstreamError::BadGateway(wrong).into());
    }
    let minted = app.tokens.mint(Grant {
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
    };
    Ok((StatusCode::CREATED, Json(started)))
}

/// `GET /v1/conversations/{id}`: the visible part of the token's own conversation.
async fn get_conversation(
    State(app): State<AppState>,
    Authorized(claims): Authorized,
    RequestOrigin(origin): RequestOrigin,
    PathParam(id): PathParam<String>,
) -> Result<Json<ConversationView>, AppError> {
    let conversation = own_conversation(&app, &claims, origin.as_deref(), &id).await?;
    Ok(Json(conversation.into_view()))
}

/// `POST /v1/conversations/{id}/token`: trades a valid token bound to a running
/// conversation for a fresh one. Renewal ends with the conversation, so a token copied
/// from a page is useful at most until the conversation is over plus one token lifetime.
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
    let minted = app.tokens.mint(Grant {
        sub: claims.sub,
        agent_id: claims.agent_id,
        origin: claims.origin,
        scope: Scope::ConversationRead,
        conversation_id: Some(conversation.id),
    })?;
    Ok(Json(TokenGrant {
        token: minted.token,
        expires_at: minted.expires_at,
    }))
}

/// The conversation `id` if the token is bound to it, it belongs to the token's agent and
/// the request comes from the token's page. Any other id answers exactly like a missing
/// one, so a token reveals nothing about conversations it is not bound to.
async fn own_conversation(
    app: &Shared,
    claims: &Claims,
    origin: Option<&str>,
    id: &str,
) -> Result<Conversation, AppError> {
    if claims.scope != Scope::ConversationRead || claims.conversation_id.as_deref() != Some(id) {
        return Err(AppError::NotFound);
    }
    same_origin(origin, claims)?;
    let conversation = app
        .upstream
        .get_conversation(id)
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

/// `GET /.well-known/jwks.json`: the public keys of widget tokens. Verifiers may cache it
/// briefly; a rotated key stays listed for longer than any token it signed lives.
async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(app.tokens.jwks().clone()),
    )
}

/// A browser always sends `Origin` on these cross-origin calls; when it is there it must
/// be the page the token was minted for, so a token copied to another site is useless.
fn same_origin(origin: Option<&str>, claims: &Claims) -> Result<(), AppError> {
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

/// The `Origin` header as sent; a value that is not text becomes one that matches nothing.
struct RequestOrigin(Option<String>);

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
struct Authorized(Claims);

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

/// `axum::Json` whose rejections are problem documents.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(AppError))]
struct JsonBody<T>(T);

/// `axum::extract::Path` whose rejections are problem documents.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
struct PathParam<T>(T);
