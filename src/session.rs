//! The widget's conversation state: a plain state machine and transcript, free of any browser
//! or reactive type so it is tested with ordinary `#[test]`s.
//!
//! Components only read a [`Session`] and call its methods; the driver (`driver.rs`) feeds it
//! with what the BFF answers. A conversation's call (voice and typed chat in its LiveKit
//! room) is a state machine of its own, `voice::call::Call`, held by the driver in a signal
//! beside this one: the call starts, fails and is retried while the conversation runs on.

use speaknode_api::{ConversationStatus, ConversationView, ErrorCode, Problem, Rating, Role, Turn};

/// Where the widget is in its life with one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing started yet.
    Idle,
    /// Asking the BFF for a token and starting the conversation.
    Connecting,
    /// The conversation exists; its platform status is known.
    Live(ConversationStatus),
    /// Something went wrong; the error says whether retrying can help.
    Error(WidgetError),
}

/// Everything the panel shows about the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub phase: Phase,
    /// The agent's display name, once the BFF told us.
    pub agent_name: Option<String>,
    pub conversation_id: Option<String>,
    pub transcript: Transcript,
    /// The live connection dropped and the browser is re-establishing it; what is shown may
    /// be a little behind until it is back.
    pub reconnecting: bool,
    /// An end request is in flight.
    pub ending: bool,
    /// The visitor's rating of this conversation.
    pub feedback: Feedback,
    /// A failed action (ending, rating) that did not stop the conversation: shown beside it
    /// until the next action.
    pub notice: Option<WidgetError>,
}

impl Default for Session {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            agent_name: None,
            conversation_id: None,
            transcript: Transcript::default(),
            reconnecting: false,
            ending: false,
            feedback: Feedback::NotSent,
            notice: None,
        }
    }
}

/// Where the visitor's rating is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    NotSent,
    Sending(Rating),
    /// The platform has it; a later rating replaces it.
    Sent(Rating),
}

impl Session {
    /// Whether a start request is in flight or the conversation is still running, so a second
    /// start must not be sent.
    pub fn is_busy(&self) -> bool {
        match &self.phase {
            Phase::Connecting => true,
            Phase::Live(status) => !status.is_final(),
            Phase::Idle | Phase::Error(_) => false,
        }
    }

    /// Whether the driver should keep reading the conversation.
    pub fn wants_updates(&self) -> bool {
        matches!(self.phase, Phase::Live(status) if !status.is_final())
    }

    /// A new attempt begins: a new conversation, or catching up with the stored one.
    pub fn connecting(&mut self) {
        self.phase = Phase::Connecting;
        self.reconnecting = false;
        self.ending = false;
        self.notice = None;
    }

    /// A conversation other than the one shown is starting: forget the old one.
    pub fn begin(&mut self, conversation_id: &str) {
        if self.conversation_id.as_deref() != Some(conversation_id) {
            self.transcript = Transcript::default();
            self.feedback = Feedback::NotSent;
            self.conversation_id = Some(conversation_id.to_owned());
        }
    }

    /// Whether the visitor can end the conversation now.
    pub fn can_end(&self) -> bool {
        self.wants_updates() && !self.ending
    }

    /// Whether the visitor can rate the conversation: once it is over, until a rating is
    /// on its way.
    pub fn can_rate(&self) -> bool {
        matches!(self.phase, Phase::Live(status) if status.is_final())
            && !matches!(self.feedback, Feedback::Sending(_))
    }

    /// Whether the agent is expected to speak next: the conversation is being set up, or
    /// the visitor spoke last. Turns of unknown roles are shown as the agent's, so they
    /// count as an answer.
    pub fn awaiting_reply(&self) -> bool {
        if self.ending {
            return false;
        }
        match self.phase {
            Phase::Live(ConversationStatus::Pending | ConversationStatus::Dispatching) => true,
            Phase::Live(ConversationStatus::Active) => self
                .transcript
                .turns()
                .last()
                .is_some_and(|turn| turn.role == Role::User),
            _ => false,
        }
    }

    /// Takes in a fresh read of the conversation. Returns whether anything visible changed.
    pub fn apply(&mut self, view: &ConversationView) -> bool {
        // Completed and Failed are final: an older read still in flight (a stream event
        // sent just before the end) must not bring the conversation back.
        let stale = self.conversation_id.as_deref() == Some(view.id.as_str())
            && matches!(self.phase, Phase::Live(status) if status.is_final())
            && !view.status.is_final();
        if stale {
            return false;
        }
        self.begin(&view.id);
        let phase = Phase::Live(view.status);
        let phase_changed = self.phase != phase;
        self.phase = phase;
        if view.status.is_final() {
            self.ending = false;
        }
        let turns_changed = self.transcript.merge(&view.history);
        phase_changed || turns_changed
    }

    pub fn fail(&mut self, error: WidgetError) {
        self.phase = Phase::Error(error);
        self.reconnecting = false;
        self.ending = false;
    }
}

/// The visible transcript: turns kept unique by id and ordered by time, so repeated or
/// overlapping reads never duplicate or reorder what the user already saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    turns: Vec<Turn>,
}

impl Transcript {
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// Merges turns into the transcript: a known id is updated in place (a turn's text may
    /// grow while it is spoken), a new id is inserted by timestamp. Returns whether anything
    /// changed.
    pub fn merge(&mut self, incoming: &[Turn]) -> bool {
        let mut changed = false;
        for turn in incoming {
            match self.turns.iter_mut().find(|known| known.id == turn.id) {
                Some(known) if known == turn => {}
                Some(known) => {
                    *known = turn.clone();
                    changed = true;
                }
                None => {
                    // RFC 3339 timestamps in UTC sort correctly as strings; turns without one
                    // go last, in arrival order.
                    let at = turn.at.as_deref();
                    let index = self
                        .turns
                        .iter()
                        .position(|known| match (at, known.at.as_deref()) {
                            (Some(new), Some(old)) => new < old,
                            (Some(_), None) => true,
                            (None, _) => false,
                        })
                        .unwrap_or(self.turns.len());
                    self.turns.insert(index, turn.clone());
                    changed = true;
                }
            }
        }
        changed
    }
}

/// What went wrong, in terms the user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service could not be reached (offline, blocked, down).
    Unreachable,
    /// This page may not talk to this agent, or the agent does not exist.
    NotAllowed,
    /// Too many attempts; wait this many seconds.
    RateLimited { seconds: u64 },
    /// The token expired or was refused; starting again gets a new one.
    SessionExpired,
    /// The platform could not run the conversation.
    ConversationFailed,
    /// The site's own token provider gave no usable token.
    TokenRefused,
    /// The service answered with something we did not expect.
    Unexpected,
}

/// A widget error: the kind decides the message, the code is what the `:error` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidgetError {
    pub kind: ErrorKind,
    /// A stable code for integrators (`speaknode:error` event detail).
    pub code: &'static str,
}

impl WidgetError {
    pub fn unreachable() -> Self {
        Self {
            kind: ErrorKind::Unreachable,
            code: "network",
        }
    }

    pub fn unexpected() -> Self {
        Self {
            kind: ErrorKind::Unexpected,
            code: "unexpected_response",
        }
    }

    pub fn token_refused() -> Self {
        Self {
            kind: ErrorKind::TokenRefused,
            code: "token_provider_failed",
        }
    }

    pub fn conversation_failed() -> Self {
        Self {
            kind: ErrorKind::ConversationFailed,
            code: "conversation_failed",
        }
    }

    /// Whether a retry button makes sense: it does unless the page is simply not allowed.
    pub fn retryable(self) -> bool {
        !matches!(self.kind, ErrorKind::NotAllowed)
    }

    /// Maps a problem document from the BFF to what the user can do about it.
    pub fn from_problem(problem: &Problem) -> Self {
        let kind = match problem.code {
            ErrorCode::OriginNotAllowed | ErrorCode::AgentNotFound | ErrorCode::Forbidden => {
                ErrorKind::NotAllowed
            }
            ErrorCode::RateLimited => ErrorKind::RateLimited {
                seconds: problem.retry_after.unwrap_or(1),
            },
            ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::NotFound
            | ErrorCode::ConversationEnded => ErrorKind::SessionExpired,
            ErrorCode::UpstreamUnavailable => ErrorKind::Unreachable,
            ErrorCode::InvalidRequest
            | ErrorCode::MissingWidgetHeader
            | ErrorCode::Internal
            | ErrorCode::Unknown => ErrorKind::Unexpected,
        };
        Self {
            kind,
            code: problem.code.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str, at: Option<&str>, text: &str) -> Turn {
        Turn {
            id: id.into(),
            role: Role::Agent,
            text: text.into(),
            at: at.map(Into::into),
            interrupted: false,
        }
    }

    fn view(status: ConversationStatus, history: Vec<Turn>) -> ConversationView {
        ConversationView {
            id: "c1".into(),
            agent_id: "a1".into(),
            status,
            created_at: None,
            started_at: None,
            ended_at: None,
            history,
        }
    }

    #[test]
    fn repeated_reads_do_not_duplicate_turns() {
        let mut transcript = Transcript::default();
        let history = vec![turn("1", Some("2026-01-01T00:00:01Z"), "Hi")];
        assert!(transcript.merge(&history));
        assert!(
            !transcript.merge(&history),
            "an identical read changes nothing"
        );
        assert_eq!(transcript.turns().len(), 1);
    }

    #[test]
    fn late_turns_are_placed_by_time_not_arrival() {
        let mut transcript = Transcript::default();
        transcript.merge(&[turn("b", Some("2026-01-01T00:00:05Z"), "second")]);
        transcript.merge(&[turn("a", Some("2026-01-01T00:00:01Z"), "first")]);
        transcript.merge(&[turn("c", None, "undated")]);
        let texts: Vec<_> = transcript.turns().iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["first", "second", "undated"]);
    }

    #[test]
    fn a_growing_turn_is_updated_in_place() {
        let mut transcript = Transcript::default();
        transcript.merge(&[turn("1", Some("2026-01-01T00:00:01Z"), "Hel")]);
        assert!(transcript.merge(&[turn("1", Some("2026-01-01T00:00:01Z"), "Hello")]));
        assert_eq!(transcript.turns().len(), 1);
        assert_eq!(transcript.turns()[0].text, "Hello");
    }

    #[test]
    fn session_follows_the_lifecycle_and_stops_wanting_updates_when_final() {
        let mut session = Session::default();
        assert!(!session.is_busy());
        session.connecting();
        assert!(session.is_busy());
        assert!(session.apply(&view(ConversationStatus::Pending, vec![])));
        assert!(session.wants_updates());
        assert!(!session.apply(&view(ConversationStatus::Pending, vec![])));
        assert!(session.apply(&view(ConversationStatus::Completed, vec![])));
        assert!(!session.wants_updates());
        assert!(
            !session.is_busy(),
            "a finished conversation can be followed by a new one"
        );
    }

    #[test]
    fn a_stale_read_never_brings_an_ended_conversation_back() {
        let mut session = Session::default();
        session.apply(&view(ConversationStatus::Active, vec![]));
        session.apply(&view(ConversationStatus::Completed, vec![]));
        assert!(!session.apply(&view(ConversationStatus::Active, vec![])));
        assert_eq!(session.phase, Phase::Live(ConversationStatus::Completed));
    }

    #[test]
    fn problems_map_to_actionable_errors() {
        let problem = |code, retry_after| Problem {
            kind: "about:blank".into(),
            title: String::new(),
            status: 400,
            detail: None,
            code,
            retry_after,
        };
        let limited = WidgetError::from_problem(&problem(ErrorCode::RateLimited, Some(7)));
        assert_eq!(limited.kind, ErrorKind::RateLimited { seconds: 7 });
        assert_eq!(limited.code, "rate_limited");
        let denied = WidgetError::from_problem(&problem(ErrorCode::OriginNotAllowed, None));
        assert!(!denied.retryable());
        let expired = WidgetError::from_problem(&problem(ErrorCode::TokenExpired, None));
        assert_eq!(expired.kind, ErrorKind::SessionExpired);
        assert!(expired.retryable());
    }

    #[test]
    fn the_agent_is_awaited_while_setting_up_and_after_the_visitor_spoke() {
        let mut session = Session::default();
        assert!(!session.awaiting_reply());
        session.apply(&view(ConversationStatus::Pending, vec![]));
        assert!(session.awaiting_reply());
        session.apply(&view(ConversationStatus::Dispatching, vec![]));
        assert!(session.awaiting_reply());
        let greeting = turn("1", Some("2026-01-01T00:00:01Z"), "Hi");
        session.apply(&view(ConversationStatus::Active, vec![greeting.clone()]));
        assert!(!session.awaiting_reply(), "the agent spoke last");
        let question = Turn {
            role: Role::User,
            ..turn("2", Some("2026-01-01T00:00:02Z"), "Hours?")
        };
        session.apply(&view(
            ConversationStatus::Active,
            vec![greeting.clone(), question.clone()],
        ));
        assert!(session.awaiting_reply(), "the visitor spoke last");
        session.ending = true;
        assert!(
            !session.awaiting_reply(),
            "no answer comes while hanging up"
        );
        session.ending = false;
        let note = Turn {
            role: Role::Unknown,
            ..turn("3", Some("2026-01-01T00:00:03Z"), "(system note)")
        };
        session.apply(&view(
            ConversationStatus::Active,
            vec![greeting, question, note],
        ));
        assert!(
            !session.awaiting_reply(),
            "unknown roles speak for the agent"
        );
        session.apply(&view(ConversationStatus::Completed, vec![]));
        assert!(!session.awaiting_reply());
    }
}
