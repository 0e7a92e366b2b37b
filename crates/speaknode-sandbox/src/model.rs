//! The platform's resources in their wire shape (`contract/fixtures/*.json`).
//!
//! Every optional member is an `Option` serialised as `null`, never skipped: the contract
//! says absent values are `null`, and the tests compare key sets with the fixtures.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use time::{OffsetDateTime, macros::format_description};
use uuid::Uuid;

/// A UTC instant that serialises like .NET's round-trip format, `2026-11-29T08:30:00.1234567Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Now, cut to .NET's 100 ns ticks so that what is stored is exactly what is shown.
    pub(crate) fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        let ticks = now.nanosecond() / 100 * 100;
        Self(now.replace_nanosecond(ticks).unwrap_or(now))
    }

    /// Seconds from `earlier` to `self`, fractional; negative if `earlier` is later.
    pub(crate) fn seconds_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0).as_seconds_f64()
    }

    /// Whole seconds since the Unix epoch, the unit of JWT claims.
    pub(crate) fn unix_secs(self) -> u64 {
        u64::try_from(self.0.unix_timestamp()).unwrap_or(0)
    }

    /// Seconds since the Unix epoch, the unit of LiveKit's turn metrics.
    pub(crate) fn unix_seconds(self) -> f64 {
        (self.0 - OffsetDateTime::UNIX_EPOCH).as_seconds_f64()
    }

    /// `seconds` later, for tests that need instants apart by a known span.
    #[cfg(test)]
    pub(crate) fn plus_seconds(self, seconds: f64) -> Self {
        Self(self.0 + time::Duration::seconds_f64(seconds))
    }
}

impl Timestamp {
    /// The same instant in UTC, as every stored timestamp is; `None` if that falls outside
    /// the years 0000 to 9999, as `9999-12-31T23:00:00-02:00` does.
    pub(crate) fn in_utc(at: OffsetDateTime) -> Option<Self> {
        at.checked_to_offset(time::UtcOffset::UTC).map(Self)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
        );
        let text = self.0.format(format).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

/// `digits` random lowercase hex digits, for the platform's opaque ids (`item_…`, `AD_…`).
///
/// The tail of a v4 UUID is 48 random bits; uuid's generator is used because, unlike
/// `getrandom`, it has no error to handle in the middle of a request.
pub(crate) fn random_hex(digits: usize) -> String {
    let mut hex = String::with_capacity(digits + 12);
    while hex.len() < digits {
        hex.push_str(&Uuid::new_v4().simple().to_string()[20..]);
    }
    hex.truncate(digits);
    hex
}

/// An agent as `GET /api/v1/agents/{id}` returns it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Agent {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub space_id: Uuid,
    pub language_id: Uuid,
    pub locale_id: Uuid,
    pub language_locale_code: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// What the scripted agent says first; the platform keeps it in the agent's prompt
    /// configuration, which this endpoint does not show.
    #[serde(skip)]
    pub greeting: String,
}

/// Where the caller talks to the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Channel {
    Web,
    Phone,
}

/// The lifecycle of a conversation: `Pending → Dispatching → Active → Completed | Failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Status {
    Pending,
    Dispatching,
    Active,
    Completed,
    Failed,
}

impl Status {
    pub(crate) const ALL: [Status; 5] = [
        Status::Pending,
        Status::Dispatching,
        Status::Active,
        Status::Completed,
        Status::Failed,
    ];

    /// Whether the conversation is over: nothing moves it on any more.
    pub(crate) fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }

    /// The wire name, `"Pending"` and so on.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Dispatching => "Dispatching",
            Status::Active => "Active",
            Status::Completed => "Completed",
            Status::Failed => "Failed",
        }
    }
}

/// How a conversation ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    /// Failed, with the `error_message` the conversation shows.
    Failed(String),
}

/// A conversation (the platform's agent session), with its transcript.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Conversation {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub agent_title: String,
    pub channel: Channel,
    pub called_by_id: String,
    pub called_by_name: String,
    pub language_id: Uuid,
    pub locale_id: Uuid,
    pub language_locale_code: String,
    pub status: Status,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub live_kit_room_name: Option<String>,
    pub live_kit_egress_id: Option<String>,
    pub live_kit_dispatch_id: Option<String>,
    pub live_kit_job_id: Option<String>,
    /// Filled in only when the conversation is shown (see `AppState::shown`), never stored.
    pub live_kit_url: Option<String>,
    /// A join token minted when the conversation is shown, never stored.
    pub live_kit_participant_token: Option<String>,
    /// The LiveKit identity the visitor of a web conversation joins as, `visitor-<12 hex>`,
    /// fixed at creation. The platform keeps it inside the join token only.
    #[serde(skip)]
    pub visitor_identity: Option<String>,
    pub transcription_path: Option<String>,
    pub has_audio: bool,
    /// Derived from `started_at` when read (see [`Conversation::seen_at`]), never stored stale.
    pub duration_seconds: f64,
    pub error_message: Option<String>,
    pub telecom_provider: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub test_run_id: Option<Uuid>,
    pub test_id: Option<Uuid>,
    pub test_status: Option<String>,
    /// Only agent test runs have one; the sandbox has none yet, so its shape stays open.
    pub test_eval_result: Option<serde_json::Value>,
    pub dynamic_variables: BTreeMap<String, String>,
    pub url_parameters: BTreeMap<String, String>,
    pub history: Vec<Turn>,
}

impl Conversation {
    /// A new conversation with `agent`, `Pending` since `now`, dispatched by the caller
    /// `called_by` (id, name); everything that only later steps fill in is empty. A web
    /// conversation has its LiveKit room (`web-<id without dashes>`) and its visitor's
    /// identity from the start, so that its first answer can already offer a join token.
    pub(crate) fn pending(
        agent: &Agent,
        channel: Channel,
        called_by: (String, String),
        now: Timestamp,
    ) -> Self {
        let id = Uuid::new_v4();
        let web = channel == Channel::Web;
        Conversation {
            id,
            agent_id: agent.id,
            agent_title: agent.title.clone(),
            channel,
            called_by_id: called_by.0,
            called_by_name: called_by.1,
            language_id: agent.language_id,
            locale_id: agent.locale_id,
            language_locale_code: agent.language_locale_code.clone(),
            status: Status::Pending,
            created_at: now,
            updated_at: now,
            started_at: None,
            ended_at: None,
            live_kit_room_name: web.then(|| room_name(channel, id)),
            live_kit_egress_id: None,
            live_kit_dispatch_id: None,
            live_kit_job_id: None,
            live_kit_url: None,
            live_kit_participant_token: None,
            visitor_identity: web.then(|| format!("visitor-{}", random_hex(12))),
            transcription_path: None,
            has_audio: false,
            duration_seconds: 0.0,
            error_message: None,
            telecom_provider: None,
            from_number: None,
            to_number: None,
            test_run_id: None,
            test_id: None,
            test_status: None,
            test_eval_result: None,
            dynamic_variables: BTreeMap::new(),
            url_parameters: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    /// The conversation as a reader sees it at `now`: with its duration so far.
    pub(crate) fn seen_at(mut self, now: Timestamp) -> Self {
        self.duration_seconds = match self.started_at {
            Some(started) => self.ended_at.unwrap_or(now).seconds_since(started).max(0.0),
            None => 0.0,
        };
        self
    }

    /// Ends the conversation at `now`. An ended conversation stays as it ended, so this
    /// answers `false` and changes nothing when it is called again.
    pub(crate) fn end(&mut self, outcome: Outcome, now: Timestamp) -> bool {
        if self.status.is_final() {
            return false;
        }
        (self.status, self.error_message) = match outcome {
            Outcome::Completed => (Status::Completed, None),
            Outcome::Failed(message) => (Status::Failed, Some(message)),
        };
        self.ended_at = Some(now);
        self.updated_at = now;
        true
    }
}

/// The LiveKit room of a conversation: `web-<id without dashes>` or `call-<id without dashes>`.
pub(crate) fn room_name(channel: Channel, id: Uuid) -> String {
    let prefix = match channel {
        Channel::Web => "web",
        Channel::Phone => "call",
    };
    format!("{prefix}-{}", id.simple())
}

/// A caller's rating of a conversation, as `POST /api/v1/conversations/{id}/feedback` took
/// it. Kept beside the conversation, not in its wire shape: the contract's conversation
/// object has no feedback member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feedback {
    pub rating: FeedbackRating,
    pub comment: Option<String>,
}

/// Thumbs up or down; `"Positive"` or `"Negative"` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackRating {
    Positive,
    Negative,
}

/// Who produced a transcript turn. The contract also has `Tool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Role {
    System,
    User,
    Assistant,
}

/// What a transcript turn is. The contract also has `FunctionCall`, `FunctionCallOutput`
/// and `AgentHandoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Kind {
    Message,
}

/// One item of a conversation's `history[]` (a LiveKit Agents chat item).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Turn {
    pub id: String,
    pub role: Role,
    pub kind: Kind,
    pub content: Option<String>,
    pub created_at: Timestamp,
    pub interrupted: bool,
    pub transcript_confidence: Option<f64>,
    pub metrics: Option<TurnMetrics>,
    pub tool_name: Option<String>,
    pub tool_call_id: Option<String>,
    pub tool_arguments_json: Option<String>,
    pub tool_output: Option<String>,
    pub tool_is_error: Option<bool>,
    pub handoff_to_agent_id: Option<Uuid>,
    pub instructions: Option<String>,
    pub tools_added: Option<Vec<String>>,
}

impl Turn {
    /// A plain message turn; the tool, handoff and metrics members stay `null`.
    pub(crate) fn message(role: Role, content: String, created_at: Timestamp) -> Self {
        Self {
            id: format!("item_{}", random_hex(12)),
            role,
            kind: Kind::Message,
            content: Some(content),
            created_at,
            interrupted: false,
            transcript_confidence: None,
            metrics: None,
            tool_name: None,
            tool_call_id: None,
            tool_arguments_json: None,
            tool_output: None,
            tool_is_error: None,
            handoff_to_agent_id: None,
            instructions: None,
            tools_added: None,
        }
    }
}

/// LiveKit Agents' per-turn timings: instants in Unix seconds, delays in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct TurnMetrics {
    pub started_speaking_at: Option<f64>,
    pub stopped_speaking_at: Option<f64>,
    pub transcription_delay: Option<f64>,
    pub end_of_turn_delay: Option<f64>,
    pub on_user_turn_completed_delay: Option<f64>,
    pub llm_node_ttft: Option<f64>,
    pub tts_node_ttfb: Option<f64>,
    pub e2e_latency: Option<f64>,
}

impl TurnMetrics {
    /// Metrics of an utterance spoken from `start` for `length`.
    pub(crate) fn spoken_for(start: Timestamp, length: std::time::Duration) -> Self {
        let start = start.unix_seconds();
        Self {
            started_speaking_at: Some(start),
            stopped_speaking_at: Some(start + length.as_secs_f64()),
            ..Self::default()
        }
    }
}

/// How long saying `text` takes at about 15 characters a second, a calm speaking pace.
pub(crate) fn speaking_time(text: &str) -> std::time::Duration {
    std::time::Duration::from_secs_f64(text.chars().count() as f64 / 15.0)
}

/// E.164: a `+`, then up to 15 digits, the first not zero (ITU-T E.164 §6).
pub(crate) fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_use_seven_fraction_digits_like_dotnet() -> serde_json::Result<()> {
        let at = Timestamp(datetime!(2026-11-29 08:30:00.1234567 UTC));
        assert_eq!(
            serde_json::to_string(&at)?,
            r#""2026-11-29T08:30:00.1234567Z""#
        );
        let whole = Timestamp(datetime!(2026-11-01 09:00:00 UTC));
        assert_eq!(
            serde_json::to_string(&whole)?,
            r#""2026-11-01T09:00:00.0000000Z""#
        );
        Ok(())
    }

    #[test]
    fn now_is_whole_ticks() {
        assert_eq!(Timestamp::now().0.nanosecond() % 100, 0);
    }

    #[test]
    fn random_hex_has_the_requested_length() {
        for digits in [0, 1, 12, 16, 32] {
            let hex = random_hex(digits);
            assert_eq!(hex.len(), digits);
            assert!(
                hex.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
}
