//! Wire types between the SpeakNode widget and its backend-for-frontend (BFF).
//!
//! This crate is the only home of the widget API's JSON shapes, so the widget (wasm32) and
//! the BFF (native) cannot drift apart. It is serde only: it must never depend on axum,
//! tokio, web-sys or leptos (xtask's `tidy` test checks this with `cargo tree`).
//!
//! The platform's own wire format is not here: only the BFF's `upstream` module knows it.

use serde::{Deserialize, Serialize};

/// Paths of the widget API, relative to the BFF's base URL.
pub mod paths {
    /// `POST`: mint a scoped widget token for one agent.
    pub const SESSIONS: &str = "/v1/sessions";
    /// `POST`: start a conversation with the agent the token is scoped to.
    pub const CONVERSATIONS: &str = "/v1/conversations";
    /// `GET /v1/conversations/{id}`: the conversation's status and visible transcript.
    pub fn conversation(id: &str) -> String {
        format!("{CONVERSATIONS}/{id}")
    }
    /// `POST /v1/conversations/{id}/token`: a fresh token for a conversation still running.
    pub fn conversation_token(id: &str) -> String {
        format!("{CONVERSATIONS}/{id}/token")
    }
    /// `POST /v1/conversations/{id}/end`: the visitor hangs up.
    pub fn conversation_end(id: &str) -> String {
        format!("{CONVERSATIONS}/{id}/end")
    }
    /// `POST /v1/conversations/{id}/feedback`: the visitor rates the conversation.
    pub fn conversation_feedback(id: &str) -> String {
        format!("{CONVERSATIONS}/{id}/feedback")
    }
    /// `GET /v1/conversations/{id}/events`: the conversation as a stream of server-sent
    /// events ([`crate::ConversationEvent`]).
    pub fn conversation_events(id: &str) -> String {
        format!("{CONVERSATIONS}/{id}/events")
    }
}

/// The header every widget request carries. A custom header turns a cross-origin call into
/// a preflighted one, so a plain HTML form or `<img>` on another site can never mint.
pub const WIDGET_HEADER: &str = "x-speaknode-widget";
/// The only accepted value of [`WIDGET_HEADER`]: the wire protocol version.
pub const WIDGET_HEADER_VALUE: &str = "1";

/// Body of `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// The agent the visitor wants to talk to; it must be allowed for the calling origin.
    pub agent_id: String,
}

/// A short-lived scoped token and what it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    /// The scoped widget token, sent back as `Authorization: Bearer …`.
    pub token: String,
    /// When the token stops being accepted, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The agent the token is scoped to.
    pub agent: AgentInfo,
}

/// What a visitor may know about an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: String,
    /// The agent's display name, shown in the widget's header.
    pub name: String,
}

/// Body of `POST /v1/conversations`. Empty today; it is an object so that options
/// (variables, page parameters) can be added without breaking old widgets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {}

/// Answer to `POST /v1/conversations`: the conversation and a token bound to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedConversation {
    pub conversation: ConversationView,
    /// A scoped token bound to this conversation; it replaces the minting token.
    pub token: String,
    /// When that token stops being accepted, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// Where and how the widget joins the conversation's audio, when the platform offers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceGrant>,
}

/// The media server and a join token for exactly one room, microphone only. The BFF checked
/// the token's claims (room, grants, lifetime) before passing it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceGrant {
    /// The LiveKit server, `wss://…`.
    pub url: String,
    /// A LiveKit join token (a JWT), valid for a few minutes to join once.
    pub token: String,
}

/// Body of `POST /v1/conversations/{id}/feedback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub rating: Rating,
    /// Free text, at most [`MAX_FEEDBACK_COMMENT_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The longest feedback comment the BFF takes, in Unicode scalar values.
pub const MAX_FEEDBACK_COMMENT_CHARS: usize = 1000;

/// Thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Up,
    Down,
}

/// Answer to `POST /v1/conversations/{id}/token`: a new token bound to the same
/// conversation, so a conversation can outlive any one short-lived token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub token: String,
    /// When the new token stops being accepted, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// A fresh LiveKit join offer for the same room and participant, when the platform
    /// offers voice: join tokens live minutes, so a widget that must (re)join the room
    /// later gets a new one here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceGrant>,
}

/// A conversation as a visitor may see it: no phone numbers, internal ids or tool calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: String,
    pub agent_id: String,
    pub status: ConversationStatus,
    /// RFC 3339 timestamps.
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// The transcript so far, oldest first.
    pub history: Vec<Turn>,
}

/// The platform's conversation lifecycle: Pending → Dispatching → Active → Completed | Failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConversationStatus {
    Pending,
    Dispatching,
    Active,
    Completed,
    Failed,
    /// A status this version does not know yet; readers must tolerate new values.
    #[serde(other)]
    Unknown,
}

impl ConversationStatus {
    /// Whether the conversation can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One visible turn of the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Stable across reads, so the widget can merge updates without duplicates.
    pub id: String,
    pub role: Role,
    pub text: String,
    /// RFC 3339 timestamp.
    pub at: Option<String>,
    /// The speaker was cut off before finishing.
    #[serde(default)]
    pub interrupted: bool,
}

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    User,
    #[serde(other)]
    Unknown,
}

/// One server-sent event of `GET /v1/conversations/{id}/events`: the SSE `event:` field is
/// the tag (`conversation` or `end`), its `data:` the content as JSON. Serialised as a
/// whole, it reads `{"event": "conversation", "data": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ConversationEvent {
    /// The whole conversation as a visitor may see it, sent first and after every change:
    /// a widget replaces what it shows, so a missed event never leaves it wrong.
    Conversation(ConversationView),
    /// The last event before the BFF closes the stream. A browser's `EventSource` would
    /// reconnect after a close, so the widget must `close()` it on this event.
    End(StreamEnd),
}

impl ConversationEvent {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Conversation(_) => "conversation",
            Self::End(_) => "end",
        }
    }
}

/// Why an event stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    pub reason: EndReason,
}

/// Why an event stream ends, and what the widget does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The conversation is over (`Completed` or `Failed`); nothing more will come.
    ConversationEnded,
    /// The stream's token has expired: renew it and open a new stream.
    TokenExpired,
    /// The BFF is shutting down: open a new stream after a moment (another replica).
    ShuttingDown,
    #[serde(other)]
    Unknown,
}

/// An RFC 9457 problem document, as every widget API error is sent
/// (`Content-Type: application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A stable machine-readable code the widget maps to a message (extension member).
    pub code: ErrorCode,
    /// Seconds to wait before retrying, mirrored from `Retry-After` for 429 and 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Stable error codes of the widget API. New codes may appear; old widgets read them as
/// [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a parameter is malformed.
    InvalidRequest,
    /// The widget header is missing or has another value.
    MissingWidgetHeader,
    /// The page's origin may not use this agent.
    OriginNotAllowed,
    /// No such agent for this widget.
    AgentNotFound,
    /// No token, or a token that is malformed, forged or for someone else.
    InvalidToken,
    /// The token was valid but has expired; mint a new one.
    TokenExpired,
    /// The token is valid but does not allow this action.
    Forbidden,
    /// No such conversation for this token.
    NotFound,
    /// The conversation has already ended; nothing more can be done to it.
    ConversationEnded,
    /// Too many requests; see `retry_after`.
    RateLimited,
    /// The SpeakNode platform could not be reached or refused the BFF.
    UpstreamUnavailable,
    /// A fault in the BFF itself.
    Internal,
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::MissingWidgetHeader => "missing_widget_header",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::AgentNotFound => "agent_not_found",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::ConversationEnded => "conversation_ended",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_and_role_are_tolerated() {
        let turn: Turn =
            serde_json::from_str(r#"{"id":"1","role":"narrator","text":"hi","at":null}"#)
                .expect("a turn with an unknown role still parses");
        assert_eq!(turn.role, Role::Unknown);
        assert!(!turn.interrupted);
        let status: ConversationStatus =
            serde_json::from_str(r#""Transferring""#).expect("unknown status parses");
        assert_eq!(status, ConversationStatus::Unknown);
    }

    #[test]
    fn error_code_wire_names_match_as_str() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::MissingWidgetHeader,
            ErrorCode::OriginNotAllowed,
            ErrorCode::AgentNotFound,
            ErrorCode::InvalidToken,
            ErrorCode::TokenExpired,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::ConversationEnded,
            ErrorCode::RateLimited,
            ErrorCode::UpstreamUnavailable,
            ErrorCode::Internal,
            ErrorCode::Unknown,
        ] {
            let json = serde_json::to_string(&code).expect("codes serialise");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn problem_uses_the_rfc9457_member_names() {
        let problem = Problem {
            kind: "about:blank".into(),
            title: "Too Many Requests".into(),
            status: 429,
            detail: None,
            code: ErrorCode::RateLimited,
            retry_after: Some(3),
        };
        let value = serde_json::to_value(&problem).expect("problem serialises");
        assert_eq!(value["type"], "about:blank");
        assert_eq!(value["code"], "rate_limited");
        assert_eq!(value["retry_after"], 3);
        assert!(value.get("detail").is_none());
    }

    #[test]
    fn feedback_takes_up_or_down_and_an_optional_comment_only() {
        let parsed: FeedbackRequest =
            serde_json::from_str(r#"{"rating":"down"}"#).expect("a bare rating parses");
        assert_eq!((parsed.rating, parsed.comment), (Rating::Down, None));
        for bad in [
            r#"{"rating":"Up"}"#,
            r#"{"rating":"meh"}"#,
            r#"{"comment":"x"}"#,
            r#"{"rating":"up","stars":5}"#,
        ] {
            assert!(
                serde_json::from_str::<FeedbackRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_start_without_voice_has_no_voice_member() {
        let view = ConversationView {
            id: "c".into(),
            agent_id: "a".into(),
            status: ConversationStatus::Pending,
            created_at: None,
            started_at: None,
            ended_at: None,
            history: Vec::new(),
        };
        let started = StartedConversation {
            conversation: view,
            token: "t".into(),
            expires_at: 1,
            voice: None,
        };
        let value = serde_json::to_value(&started).expect("serialises");
        assert!(value.get("voice").is_none());
        let back: StartedConversation = serde_json::from_value(value).expect("old shape parses");
        assert_eq!(back, started);
    }

    #[test]
    fn a_renewal_carries_voice_only_when_offered() {
        let plain: TokenGrant =
            serde_json::from_str(r#"{"token":"t","expires_at":1}"#).expect("old shape parses");
        assert_eq!(plain.voice, None);
        let value = serde_json::to_value(&plain).expect("serialises");
        assert!(value.get("voice").is_none());
        let with_voice = TokenGrant {
            voice: Some(VoiceGrant {
                url: "wss://livekit.example".into(),
                token: "j".into(),
            }),
            ..plain
        };
        let value = serde_json::to_value(&with_voice).expect("serialises");
        assert_eq!(value["voice"]["url"], "wss://livekit.example");
        let back: TokenGrant = serde_json::from_value(value).expect("parses");
        assert_eq!(back, with_voice);
    }

    #[test]
    fn conversation_events_carry_their_sse_name_as_tag() {
        let end = ConversationEvent::End(StreamEnd {
            reason: EndReason::TokenExpired,
        });
        let value = serde_json::to_value(&end).expect("events serialise");
        assert_eq!(value["event"], end.name());
        assert_eq!(value["data"]["reason"], "token_expired");
        let later: StreamEnd =
            serde_json::from_str(r#"{"reason":"moved"}"#).expect("new reasons parse");
        assert_eq!(later.reason, EndReason::Unknown);
    }

    #[test]
    fn mint_request_rejects_extra_fields() {
        let err = serde_json::from_str::<MintRequest>(r#"{"agent_id":"a","admin":true}"#);
        assert!(err.is_err(), "extra fields must not be silently accepted");
    }
}
