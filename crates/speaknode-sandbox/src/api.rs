//! The REST API (`/api/v1`): agents, conversations, tools and phone numbers of the
//! caller's space.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, Path, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{
    AppState,
    auth::Caller,
    catalog::{PhoneNumber, Tool},
    error::Error,
    listing::{ListQuery, Listed, Page},
    model::{Agent, Channel, Conversation, Feedback, FeedbackRating, Outcome, Timestamp, is_e164},
};

/// The longest feedback comment, in UTF-16 code units as .NET's `[MaxLength]` counts them.
const MAX_COMMENT_LENGTH: usize = 2000;

/// The caller id the sandbox's phone conversations come from: Twilio's test number
/// for a valid sender, so nothing mistakes it for a real line.
const SANDBOX_FROM_NUMBER: &str = "+15005550006";

/// The API's routes, relative to `/api/v1`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{id}", get(get_agent))
        .route("/conversations", get(list_conversations))
        .route("/conversations/dispatch", post(dispatch))
        .route("/conversations/{id}", get(get_conversation))
        .route("/conversations/{id}/end", post(end_conversation))
        .route("/conversations/{id}/feedback", post(give_feedback))
        .route("/tools", get(list_tools))
        .route("/phone-numbers", get(list_phone_numbers))
}

/// A path parameter whose rejection is a 404 problem: a path that does not parse names no
/// resource, as an ASP.NET route constraint would have it.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(Error))]
pub(crate) struct ApiPath<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for Error {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        Error::NotFound("The requested resource was not found.".into())
    }
}

async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<Agent>>, Error> {
    let page = query.page()?;
    let agents = state.0.store.agents(caller.space_id);
    Ok(Json(page.of(&agents, Agent::clone)))
}

/// Conversations of the caller's space, newest first, without their transcripts.
async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<Listed>>, Error> {
    let (page, filter) = query.conversations()?;
    let now = Timestamp::now();
    let listed = state.0.store.with_conversations(caller.space_id, |all| {
        let mut matching: Vec<_> = all.into_iter().filter(|c| filter.admits(c)).collect();
        // Newest first; the id breaks ties so that pages never overlap or skip.
        matching.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
        page.of(&matching, |conversation| {
            Listed(state.shown((*conversation).clone(), now))
        })
    });
    Ok(Json(listed))
}

async fn list_tools(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<Tool>>, Error> {
    let page = query.page()?;
    Ok(Json(
        page.of(state.0.catalog.tools(caller.space_id), Tool::clone),
    ))
}

async fn list_phone_numbers(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<PhoneNumber>>, Error> {
    let page = query.page()?;
    let numbers = state.0.catalog.phone_numbers(caller.space_id);
    Ok(Json(page.of(numbers, PhoneNumber::clone)))
}

async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agent>, Error> {
    Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| state.0.store.agent(caller.space_id, uuid))
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("Agent '{id}' was not found.")))
}

async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Conversation>, Error> {
    Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| state.0.store.conversation(caller.space_id, uuid))
        .map(|conversation| Json(state.shown(conversation, Timestamp::now())))
        .ok_or_else(|| Error::NotFound(format!("Conversation '{id}' was not found.")))
}

/// `POST /api/v1/conversations/{id}/end`: the caller hangs up. `200` with the conversation
/// `Completed`; `409` if it had already ended.
async fn end_conversation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Conversation>, Error> {
    let not_found = || Error::NotFound(format!("Conversation '{id}' was not found."));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let now = Timestamp::now();
    let ended = state
        .0
        .store
        .update_conversation(caller.space_id, uuid, |conversation| {
            if conversation.end(Outcome::Completed, now) {
                Ok(conversation.clone())
            } else {
                Err(conversation.status)
            }
        })
        .ok_or_else(not_found)?
        .map_err(|status| {
            Error::Conflict(format!(
                "The conversation has already ended ({}).",
                status.name()
            ))
        })?;
    tracing::info!(%uuid, "conversation ended by the caller");
    Ok(Json(state.shown(ended, now)))
}

/// `POST /api/v1/conversations/{id}/feedback`: the caller rates a conversation, in any
/// status; a later rating replaces an earlier one. `204`.
async fn give_feedback(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Error> {
    let not_found = || Error::NotFound(format!("Conversation '{id}' was not found."));
    // As in ASP.NET: the route's `{id:guid}` constraint first, then model binding and
    // validation of the body, and only then the action's look-up.
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let feedback = parse_feedback(&json_body(&headers, body)?)?;
    if !state.0.store.set_feedback(caller.space_id, uuid, feedback) {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a feedback body, every member at once, as [`DispatchRequest::parse`] does.
fn parse_feedback(body: &Value) -> Result<Feedback, Error> {
    let Some(fields) = body.as_object() else {
        return Err(Error::BadRequest(
            "The request body must be a JSON object.".into(),
        ));
    };
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let rating = match fields.get("rating").filter(|v| !v.is_null()) {
        None => Err("The rating field is required."),
        Some(value) => match value.as_str() {
            Some("Positive") => Ok(FeedbackRating::Positive),
            Some("Negative") => Ok(FeedbackRating::Negative),
            _ => Err("The rating field must be 'Positive' or 'Negative'."),
        },
    };
    let comment = match fields.get("comment").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Value::String(text)) if text.encode_utf16().count() <= MAX_COMMENT_LENGTH => {
            Ok(Some(text.clone()))
        }
        Some(Value::String(_)) => Err(format!(
            "The field comment must be a string or array type with a maximum length of \
             '{MAX_COMMENT_LENGTH}'."
        )),
        Some(_) => Err("The comment field must be a string.".to_owned()),
    };
    if let Err(message) = &rating {
        errors.insert("rating".into(), vec![(*message).to_owned()]);
    }
    if let Err(message) = &comment {
        errors.insert("comment".into(), vec![message.clone()]);
    }
    match (rating, comment) {
        (Ok(rating), Ok(comment)) => Ok(Feedback { rating, comment }),
        _ => Err(Error::Validation(errors)),
    }
}

async fn dispatch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, Error> {
    let body = json_body(&headers, body)?;
    let request = DispatchRequest::parse(&body)?;
    let agent = state
        .0
        .store
        .agent(caller.space_id, request.agent_id)
        .ok_or_else(|| {
            // The agent is a reference in the body, not the resource the URL names, so an
            // unknown one is a validation error of that member rather than a 404.
            let message = format!("The agent '{}' was not found.", request.agent_id);
            Error::Validation(BTreeMap::from([("agent_id".to_owned(), vec![message])]))
        })?;

    let now = Timestamp::now();
    let conversation = request.into_conversation(&agent, &caller, now);
    let id = conversation.id;
    state
        .0
        .store
        .insert_conversation(caller.space_id, conversation.clone());
    state.0.agents.start(caller.space_id, id, agent);
    tracing::info!(%id, channel = ?conversation.channel, "conversation dispatched");

    let location = format!("/api/v1/conversations/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(state.shown(conversation, now)),
    ))
}

/// A request body read as JSON: too large is 413, not declared JSON 415, malformed 400.
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, Error> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::BadRequest(rejection.body_text()),
    })?;
    if !is_json(headers) {
        return Err(Error::UnsupportedMediaType);
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("The request body is not valid JSON: {e}")))
}

/// Whether the body is declared as JSON (`application/json` or a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A validated `POST /api/v1/conversations/dispatch` body.
#[derive(Debug)]
struct DispatchRequest {
    agent_id: Uuid,
    channel: Channel,
    to_number: Option<String>,
    dynamic_variables: BTreeMap<String, String>,
    url_parameters: BTreeMap<String, String>,
}

impl DispatchRequest {
    /// Checks every member and reports all problems at once, keyed by member, as ASP.NET's
    /// model validation does. Unknown members are ignored, as System.Text.Json does.
    fn parse(body: &Value) -> Result<Self, Error> {
        let Some(fields) = body.as_object() else {
            return Err(Error::BadRequest(
                "The request body must be a JSON object.".into(),
            ));
        };
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut fail = |member: &str, message: &str| {
            errors
                .entry(member.to_owned())
                .or_default()
                .push(message.to_owned());
        };
        let field = |name: &str| fields.get(name).filter(|value| !value.is_null());

        let agent_id = match field("agent_id") {
            None => {
                fail("agent_id", "The agent_id field is required.");
                None
            }
            Some(value) => {
                let id = value.as_str().and_then(|s| Uuid::parse_str(s).ok());
                if id.is_none() {
                    fail("agent_id", "The agent_id field must be a UUID.");
                }
                id
            }
        };
        let channel = match field("channel").map(|value| value.as_str()) {
            None => {
                fail("channel", "The channel field is required.");
                None
            }
            Some(Some("Web")) => Some(Channel::Web),
            Some(Some("Phone")) => Some(Channel::Phone),
            Some(_) => {
                fail("channel", "The channel field must be 'Web' or 'Phone'.");
                None
            }
        };
        let to_number = field("to_number").map(|value| value.as_str());
        match (channel, to_number) {
            (Some(Channel::Phone), None) => {
                fail(
                    "to_number",
                    "The to_number field is required when channel is 'Phone'.",
                );
            }
            (Some(Channel::Phone), Some(number)) if !number.is_some_and(is_e164) => {
                fail(
                    "to_number",
                    "The to_number field must be an E.164 number such as +4930123456789.",
                );
            }
            (Some(Channel::Web), Some(_)) => {
                fail(
                    "to_number",
                    "The to_number field must be null when channel is 'Web'.",
                );
            }
            _ => {}
        }
        let mut string_map = |name: &str| match field(name) {
            None => BTreeMap::new(),
            Some(value) => value.as_object().and_then(strings).unwrap_or_else(|| {
                fail(
                    name,
                    &format!("The {name} field must be an object of strings."),
                );
                BTreeMap::new()
            }),
        };
        let dynamic_variables = string_map("dynamic_variables");
        let url_parameters = string_map("url_parameters");

        match (agent_id, channel) {
            (Some(agent_id), Some(channel)) if errors.is_empty() => Ok(Self {
                agent_id,
                channel,
                to_number: to_number.flatten().map(str::to_owned),
                dynamic_variables,
                url_parameters,
            }),
            _ => Err(Error::Validation(errors)),
        }
    }

    /// The new conversation, `Pending`, as the caller dispatched it at `now`.
    fn into_conversation(self, agent: &Agent, caller: &Caller, now: Timestamp) -> Conversation {
        let phone = self.channel == Channel::Phone;
        let called_by = (caller.id.clone(), caller.name.clone());
        Conversation {
            telecom_provider: phone.then(|| "Twilio".to_owned()),
            from_number: phone.then(|| SANDBOX_FROM_NUMBER.to_owned()),
            to_number: self.to_number,
            dynamic_variables: self.dynamic_variables,
            url_parameters: self.url_parameters,
            ..Conversation::pending(agent, self.channel, called_by, now)
        }
    }
}

/// The object as a map of strings, if every value is a string.
fn strings(object: &Map<String, Value>) -> Option<BTreeMap<String, String>> {
    object
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(body: &Value) -> BTreeMap<String, Vec<String>> {
        match DispatchRequest::parse(body) {
            Err(Error::Validation(errors)) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn e164() {
        for good in ["+4930123456789", "+12", "+123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "4930123456789",
            "+",
            "+1",
            "+0301234",
            "+1234567890123456",
            "+49 30 1234",
            "+４９",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn parses_the_fixtures() -> Result<(), Error> {
        let web: Value = serde_json::from_str(include_str!(
            "../contract/fixtures/dispatch-web-request.json"
        ))
        .map_err(|e| Error::BadRequest(e.to_string()))?;
        let web = DispatchRequest::parse(&web)?;
        assert_eq!((web.channel, web.to_number), (Channel::Web, None));
        let phone: Value = serde_json::from_str(include_str!(
            "../contract/fixtures/dispatch-phone-request.json"
        ))
        .map_err(|e| Error::BadRequest(e.to_string()))?;
        let phone = DispatchRequest::parse(&phone)?;
        assert_eq!(phone.to_number.as_deref(), Some("+4930123456789"));
        assert_eq!(
            phone
                .dynamic_variables
                .get("customer_name")
                .map(String::as_str),
            Some("Jo")
        );
        Ok(())
    }

    #[test]
    fn reports_every_bad_member() {
        let errors = errors_of(&json!({ "channel": "Fax", "dynamic_variables": { "n": 1 } }));
        let members: Vec<_> = errors.keys().map(String::as_str).collect();
        assert_eq!(members, ["agent_id", "channel", "dynamic_variables"]);
        assert_eq!(errors["agent_id"], ["The agent_id field is required."]);
    }

    #[test]
    fn phone_needs_a_number_and_web_must_not_have_one() {
        let agent_id = Uuid::new_v4().to_string();
        let errors = errors_of(&json!({ "agent_id": agent_id, "channel": "Phone" }));
        assert!(errors.contains_key("to_number"));
        let errors =
            errors_of(&json!({ "agent_id": agent_id, "channel": "Phone", "to_number": 49 }));
        assert!(errors.contains_key("to_number"));
        let errors =
            errors_of(&json!({ "agent_id": agent_id, "channel": "Web", "to_number": "+4930123" }));
        assert!(errors.contains_key("to_number"));
    }

    #[test]
    fn a_non_object_body_is_a_bad_request() {
        assert!(matches!(
            DispatchRequest::parse(&json!([])),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn feedback_is_checked_member_by_member() -> Result<(), Error> {
        let fixture: Value =
            serde_json::from_str(include_str!("../contract/fixtures/feedback-request.json"))
                .map_err(|e| Error::BadRequest(e.to_string()))?;
        let feedback = parse_feedback(&fixture)?;
        assert_eq!(feedback.rating, FeedbackRating::Negative);
        let bare = parse_feedback(&json!({ "rating": "Positive", "comment": null }))?;
        assert_eq!(bare.comment, None);
        // 2000 UTF-16 units pass even when they are 1000 astral characters.
        let longest = "😀".repeat(1000);
        parse_feedback(&json!({ "rating": "Positive", "comment": longest }))?;
        let bad = |body: Value| match parse_feedback(&body) {
            Err(Error::Validation(errors)) => errors.into_keys().collect::<Vec<_>>(),
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(bad(json!({})), ["rating"]);
        assert_eq!(bad(json!({ "rating": "positive" })), ["rating"]);
        let long = "a".repeat(2001);
        assert_eq!(
            bad(json!({ "rating": 1, "comment": long })),
            ["comment", "rating"]
        );
        assert_eq!(
            bad(json!({ "rating": "Negative", "comment": 5 })),
            ["comment"]
        );
        assert!(matches!(
            parse_feedback(&json!("Positive")),
            Err(Error::BadRequest(_))
        ));
        Ok(())
    }

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(value),
            );
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
