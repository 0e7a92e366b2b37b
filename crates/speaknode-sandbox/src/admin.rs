//! The sandbox's admin routes (`/__sandbox`) for tests: speak as the user, hang up, and set
//! or lift faults. They are no part of the platform, take no token, and are mounted only
//! when the configuration sets `admin_enabled`.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use uuid::Uuid;

use crate::{
    AppState, agent,
    agent::UserTurnError,
    api::{ApiPath, json_body},
    error::Error,
    faults::FaultSet,
    model::{Conversation, Timestamp, Turn},
};

/// Where the admin routes are mounted.
pub(crate) const PREFIX: &str = "/__sandbox";

/// The admin routes, relative to [`PREFIX`].
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations/{id}/user-turns", post(user_turn))
        .route("/conversations/{id}/end", post(end))
        .route(
            "/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .merge(crate::livekit::admin_router())
}

/// The conversation a path names, and its space; unknown or malformed ids are a 404.
fn find(state: &AppState, id: &str) -> Result<(Uuid, Uuid), Error> {
    Uuid::parse_str(id)
        .ok()
        .and_then(|uuid| Some((state.0.store.space_of(uuid)?, uuid)))
        .ok_or_else(|| Error::NotFound(format!("Conversation '{id}' was not found.")))
}

/// `POST /__sandbox/conversations/{id}/user-turns` with `{"text": "…"}`: the user says
/// something. Answers `202 Accepted` with the user's turn; the agent's reply follows after
/// the scenario's think time.
async fn user_turn(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Turn>), Error> {
    let body = json_body(&headers, body)?;
    let text = body.get("text").and_then(|text| text.as_str());
    let (space, conversation) = find(&state, &id)?;
    let turn = state
        .0
        .agents
        .user_says(space, conversation, text.unwrap_or_default())
        .map_err(|error| match error {
            UserTurnError::UnknownConversation => {
                Error::NotFound(format!("Conversation '{id}' was not found."))
            }
            UserTurnError::NotActive(status) => Error::Conflict(format!(
                "The conversation is {status}; only an Active conversation takes user turns."
            )),
            UserTurnError::EmptyText => Error::Validation(BTreeMap::from([(
                "text".to_owned(),
                vec!["The text field is required.".to_owned()],
            )])),
        })?;
    Ok((StatusCode::ACCEPTED, Json(turn)))
}

/// `POST /__sandbox/conversations/{id}/end`: the caller hangs up. The conversation becomes
/// `Completed`, whatever status it had, unless it had already ended (409).
async fn end(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Conversation>, Error> {
    let (space, conversation) = find(&state, &id)?;
    let now = Timestamp::now();
    let ended = state
        .0
        .store
        .update_conversation(space, conversation, |conversation| {
            if conversation.status.is_final() {
                return Err(conversation.status);
            }
            agent::complete(conversation, now);
            Ok(conversation.clone())
        })
        .ok_or_else(|| Error::NotFound(format!("Conversation '{id}' was not found.")))?
        .map_err(|status| {
            Error::Conflict(format!(
                "The conversation has already ended ({}).",
                status.name()
            ))
        })?;
    Ok(Json(state.shown(ended, now)))
}

/// `GET /__sandbox/faults`: the faults in force, with what is left of each burst.
async fn get_faults(State(state): State<AppState>) -> Json<FaultSet> {
    Json(state.faults().current())
}

/// `PUT /__sandbox/faults`: replaces the faults in force; answers them.
async fn put_faults(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FaultSet>, Error> {
    let body = json_body(&headers, body)?;
    let faults: FaultSet = serde_json::from_value(body)
        .map_err(|e| Error::BadRequest(format!("The request body is not a fault set: {e}")))?;
    let problems = faults.problems();
    if !problems.is_empty() {
        return Err(Error::Validation(problems));
    }
    tracing::info!(?faults, "faults set");
    state.faults().set(faults);
    Ok(Json(state.faults().current()))
}

/// `DELETE /__sandbox/faults`: lifts every fault.
async fn delete_faults(State(state): State<AppState>) -> StatusCode {
    state.faults().clear();
    tracing::info!("faults lifted");
    StatusCode::NO_CONTENT
}
