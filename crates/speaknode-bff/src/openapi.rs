//! The widget API's OpenAPI document, served at `GET /openapi.json`.
//!
//! The paths come from the handlers' `#[utoipa::path]` attributes, collected by
//! `utoipa_axum` as the routes are registered, so a route cannot be served without being
//! documented. The schemas of the wire types are declared here, not in `speaknode-api`:
//! that crate stays serde-only for the widget's sake. The `*Doc` types are therefore
//! schema-only mirrors, never built; a test checks them against the real types' JSON so
//! they cannot drift apart silently.

#![allow(dead_code)] // The mirrors exist for their schemas only.

use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{OpenApi, PartialSchema as _, ToSchema};

/// The name of the bearer security scheme of the token routes (the `security` of their
/// `#[utoipa::path]` must spell it out: the attribute takes only a literal).
pub(crate) const WIDGET_TOKEN: &str = "widget_token";
pub(crate) const TAG_WIDGET: &str = "widget";
pub(crate) const TAG_OPERATIONS: &str = "operations";
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// The document's fixed parts; `routes` adds the paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SpeakNode widget BFF",
        description = "The backend-for-frontend of the SpeakNode web widget. It mints \
            short-lived widget tokens scoped to one agent, one page origin and one action, \
            and proxies the few platform calls a widget needs. No platform credential ever \
            reaches a browser. Every error is an RFC 9457 problem document \
            (`application/problem+json`) with a stable `code`."
    ),
    tags(
        (name = "widget", description = "What the widget calls from the visitor's page."),
        (name = "operations", description = "Health, readiness, metrics and this document; \
            for operators and probes, not for browsers."),
    ),
    // Header parameters and problem bodies are not collected from the handlers.
    components(schemas(ProblemDoc, ErrorCodeDoc, WidgetProtocolDoc)),
)]
pub(crate) struct ApiDoc;

/// Completes the collected document: the bearer scheme, and problem content (plus
/// `Retry-After` where the BFF sends it) on every 4xx and 5xx response, so each handler's
/// attribute lists only statuses and what they mean.
pub(crate) fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    // utoipa copies the crate's license, which is empty for an unpublished crate.
    doc.info.license = None;
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        WIDGET_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A widget token from `POST /v1/sessions` or `POST /v1/conversations`.",
                ))
                .build(),
        ),
    );
    let problem = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let retry_after = HeaderBuilder::new()
        .schema(Some(u64::schema()))
        .description(Some(
            "Seconds to wait before retrying; also `retry_after` in the body.",
        ))
        .build();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in &mut operation.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                response
                    .content
                    .entry(PROBLEM_JSON.into())
                    .or_insert_with(|| RefOr::T(problem.clone()));
                if matches!(status.as_str(), "429" | "503") {
                    response
                        .headers
                        .entry("Retry-After".into())
                        .or_insert_with(|| RefOr::T(retry_after.clone()));
                }
            }
        }
    }
    doc
}

/// The only accepted value of the `x-speaknode-widget` header: the wire protocol version.
#[derive(Serialize, ToSchema)]
#[schema(as = WidgetProtocol)]
pub(crate) enum WidgetProtocolDoc {
    #[serde(rename = "1")]
    V1,
}

/// Body of `POST /v1/sessions`.
#[derive(Serialize, ToSchema)]
#[schema(as = MintRequest)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintRequestDoc {
    /// The agent the visitor wants to talk to; it must be allowed for the calling origin.
    #[schema(
        min_length = 1,
        max_length = 128,
        example = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    )]
    agent_id: String,
}

/// A short-lived widget token scoped to one agent and the calling page.
#[derive(Serialize, ToSchema)]
#[schema(as = SessionGrant)]
pub(crate) struct SessionGrantDoc {
    /// The widget token, sent back as `Authorization: Bearer …`.
    token: String,
    /// When the token stops being accepted, in seconds since the Unix epoch.
    expires_at: u64,
    agent: AgentInfoDoc,
}

/// What a visitor may know about an agent.
#[derive(Serialize, ToSchema)]
#[schema(as = AgentInfo)]
pub(crate) struct AgentInfoDoc {
    id: String,
    /// The agent's display name.
    name: String,
}

/// Body of `POST /v1/conversations`: empty today, an object so options can be added.
#[derive(Serialize, ToSchema)]
#[schema(as = StartRequest)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRequestDoc {}

/// A started conversation and a token bound to it, which replaces the minting token.
#[derive(Serialize, ToSchema)]
#[schema(as = StartedConversation)]
pub(crate) struct StartedConversationDoc {
    conversation: ConversationViewDoc,
    token: String,
    /// When that token stops being accepted, in seconds since the Unix epoch.
    expires_at: u64,
    /// Present when the platform offers voice for this conversation.
    voice: Option<VoiceGrantDoc>,
}

/// The LiveKit server and a join token for the conversation's room, microphone only.
#[derive(Serialize, ToSchema)]
#[schema(as = VoiceGrant)]
pub(crate) struct VoiceGrantDoc {
    /// The LiveKit server, `wss://…`.
    url: String,
    /// A LiveKit join token (JWT) for one room and one participant, valid for minutes.
    token: String,
}

/// Body of `POST /v1/conversations/{id}/feedback`.
#[derive(Serialize, ToSchema)]
#[schema(as = FeedbackRequest)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackRequestDoc {
    rating: RatingDoc,
    /// Free text for the agent's owner.
    #[schema(max_length = 1000)]
    comment: Option<String>,
}

/// Thumbs up or down.
#[derive(Serialize, ToSchema)]
#[schema(as = Rating)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RatingDoc {
    Up,
    Down,
}

/// A fresh token bound to the same conversation.
#[derive(Serialize, ToSchema)]
#[schema(as = TokenGrant)]
pub(crate) struct TokenGrantDoc {
    token: String,
    /// When the new token stops being accepted, in seconds since the Unix epoch.
    expires_at: u64,
    /// Present when the platform offers voice: a fresh join token for the same room and
    /// participant.
    voice: Option<VoiceGrantDoc>,
}

/// A conversation as a visitor may see it.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversationView)]
pub(crate) struct ConversationViewDoc {
    id: String,
    agent_id: String,
    status: ConversationStatusDoc,
    /// RFC 3339.
    created_at: Option<String>,
    /// RFC 3339.
    started_at: Option<String>,
    /// RFC 3339.
    ended_at: Option<String>,
    /// The transcript so far, oldest first.
    history: Vec<TurnDoc>,
}

/// Pending → Dispatching → Active → Completed | Failed; readers must tolerate new values.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversationStatus)]
pub(crate) enum ConversationStatusDoc {
    Pending,
    Dispatching,
    Active,
    Completed,
    Failed,
    Unknown,
}

/// One visible turn of the transcript.
#[derive(Serialize, ToSchema)]
#[schema(as = Turn)]
pub(crate) struct TurnDoc {
    /// Stable across reads.
    id: String,
    role: RoleDoc,
    text: String,
    /// RFC 3339.
    at: Option<String>,
    /// The speaker was cut off before finishing.
    interrupted: bool,
}

/// Who spoke a turn.
#[derive(Serialize, ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RoleDoc {
    Agent,
    User,
    Unknown,
}

/// An RFC 9457 problem document.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemDoc {
    /// `about:blank`: the status says it all.
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: Option<String>,
    code: ErrorCodeDoc,
    /// Seconds to wait before retrying, mirrored from `Retry-After` (429, 503).
    retry_after: Option<u64>,
}

/// Stable machine-readable error codes; new ones may appear.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorCode)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCodeDoc {
    InvalidRequest,
    MissingWidgetHeader,
    OriginNotAllowed,
    AgentNotFound,
    InvalidToken,
    TokenExpired,
    Forbidden,
    NotFound,
    ConversationEnded,
    RateLimited,
    UpstreamUnavailable,
    Internal,
    Unknown,
}

/// The public keys of widget tokens (RFC 7517), Ed25519 only.
#[derive(Serialize, ToSchema)]
#[schema(as = JwkSet)]
pub(crate) struct JwkSetDoc {
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use speaknode_api as api;

    use super::*;

    /// The member names of component `name`, and which are required.
    fn members(doc: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = &doc["components"]["schemas"][name];
        let properties = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties: {schema}"));
        let required = schema["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (properties.keys().cloned().collect(), required)
    }

    fn keys(value: &impl Serialize) -> BTreeSet<String> {
        let value = serde_json::to_value(value).expect("serialises");
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    fn schema_enum(doc: &Value, name: &str) -> Vec<Value> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is no enum"))
            .clone()
    }

    /// Every mirror has exactly the members the real type serialises (all optional ones
    /// filled in), and its enums the same values, so the two cannot drift apart.
    #[test]
    fn the_schemas_match_the_wire_types() {
        let mut doc = ApiDoc::openapi();
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, schema) in [
            ("MintRequest", MintRequestDoc::schema()),
            ("SessionGrant", SessionGrantDoc::schema()),
            ("AgentInfo", AgentInfoDoc::schema()),
            ("StartRequest", StartRequestDoc::schema()),
            ("StartedConversation", StartedConversationDoc::schema()),
            ("TokenGrant", TokenGrantDoc::schema()),
            ("VoiceGrant", VoiceGrantDoc::schema()),
            ("FeedbackRequest", FeedbackRequestDoc::schema()),
            ("Rating", RatingDoc::schema()),
            ("ConversationView", ConversationViewDoc::schema()),
            ("ConversationStatus", ConversationStatusDoc::schema()),
            ("Turn", TurnDoc::schema()),
            ("Role", RoleDoc::schema()),
        ] {
            components.schemas.insert(name.into(), schema);
        }
        let doc = serde_json::to_value(&doc).expect("json");

        let agent = api::AgentInfo {
            id: "a".into(),
            name: "Ava".into(),
        };
        let turn = api::Turn {
            id: "t".into(),
            role: api::Role::Agent,
            text: "hi".into(),
            at: Some("2026-01-01T00:00:00Z".into()),
            interrupted: false,
        };
        let view = api::ConversationView {
            id: "c".into(),
            agent_id: "a".into(),
            status: api::ConversationStatus::Active,
            created_at: Some(String::new()),
            started_at: Some(String::new()),
            ended_at: Some(String::new()),
            history: vec![turn.clone()],
        };
        let voice = api::VoiceGrant {
            url: "wss://livekit.example".into(),
            token: "t".into(),
        };
        let problem = api::Problem {
            kind: "about:blank".into(),
            title: "Too Many Requests".into(),
            status: 429,
            detail: Some("d".into()),
            code: api::ErrorCode::RateLimited,
            retry_after: Some(1),
        };
        let cases: Vec<(&str, BTreeSet<String>)> = vec![
            (
                "MintRequest",
                keys(&api::MintRequest {
                    agent_id: "a".into(),
                }),
            ),
            (
                "SessionGrant",
                keys(&api::SessionGrant {
                    token: "t".into(),
                    expires_at: 1,
                    agent: agent.clone(),
                }),
            ),
            ("AgentInfo", keys(&agent)),
            (
                "StartedConversation",
                keys(&api::StartedConversation {
                    conversation: view.clone(),
                    token: "t".into(),
                    expires_at: 1,
                    voice: Some(voice.clone()),
                }),
            ),
            ("VoiceGrant", keys(&voice)),
            (
                "FeedbackRequest",
                keys(&api::FeedbackRequest {
                    rating: api::Rating::Up,
                    comment: Some("c".into()),
                }),
            ),
            (
                "TokenGrant",
                keys(&api::TokenGrant {
                    token: "t".into(),
                    expires_at: 1,
                    voice: Some(voice.clone()),
                }),
            ),
            ("ConversationView", keys(&view)),
            ("Turn", keys(&turn)),
            ("Problem", keys(&problem)),
        ];
        for (name, real) in cases {
            let (documented, required) = members(&doc, name);
            assert_eq!(documented, real, "{name}: documented vs serialised members");
            assert!(required.is_subset(&real), "{name}: required {required:?}");
        }
        assert_eq!(
            doc["components"]["schemas"]["StartRequest"]["additionalProperties"],
            json!(false)
        );

        use api::{ConversationStatus as S, ErrorCode as E, Rating as G, Role as R};
        // These matches stop compiling when a variant is added, pointing here.
        let status = |s: S| match s {
            S::Pending | S::Dispatching | S::Active | S::Completed | S::Failed | S::Unknown => {
                json!(s)
            }
        };
        let role = |r: R| match r {
            R::Agent | R::User | R::Unknown => json!(r),
        };
        let rating = |g: G| match g {
            G::Up | G::Down => json!(g),
        };
        let code = |c: E| match c {
            E::InvalidRequest
            | E::MissingWidgetHeader
            | E::OriginNotAllowed
            | E::AgentNotFound
            | E::InvalidToken
            | E::TokenExpired
            | E::Forbidden
            | E::NotFound
            | E::ConversationEnded
            | E::RateLimited
            | E::UpstreamUnavailable
            | E::Internal
            | E::Unknown => json!(c.as_str()),
        };
        let statuses = [
            S::Pending,
            S::Dispatching,
            S::Active,
            S::Completed,
            S::Failed,
            S::Unknown,
        ];
        let codes = [
            E::InvalidRequest,
            E::MissingWidgetHeader,
            E::OriginNotAllowed,
            E::AgentNotFound,
            E::InvalidToken,
            E::TokenExpired,
            E::Forbidden,
            E::NotFound,
            E::ConversationEnded,
            E::RateLimited,
            E::UpstreamUnavailable,
            E::Internal,
            E::Unknown,
        ];
        let listed = |name| schema_enum(&doc, name);
        assert_eq!(listed("ConversationStatus"), statuses.map(status).to_vec());
        assert_eq!(
            listed("Role"),
            [R::Agent, R::User, R::Unknown].map(role).to_vec()
        );
        assert_eq!(listed("ErrorCode"), codes.map(code).to_vec());
        assert_eq!(listed("Rating"), [G::Up, G::Down].map(rating).to_vec());
        assert_eq!(
            doc["components"]["schemas"]["FeedbackRequest"]["additionalProperties"],
            json!(false)
        );
    }
}
