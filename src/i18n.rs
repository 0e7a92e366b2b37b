//! The words the widget shows. Every user-visible string lives here, so adding a language is
//! adding one table (German and Arabic come with the embed-contract work).

use crate::session::{ErrorKind, Phase};
use speaknode_api::{ConversationStatus, Role};

/// One language's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messages {
    pub launcher_label: &'static str,
    pub close_label: &'static str,
    pub panel_label: &'static str,
    pub default_agent_name: &'static str,
    pub idle: &'static str,
    pub connecting: &'static str,
    pub pending: &'static str,
    pub dispatching: &'static str,
    pub active: &'static str,
    pub completed: &'static str,
    pub failed: &'static str,
    pub unknown_status: &'static str,
    pub transcript_label: &'static str,
    pub agent: &'static str,
    pub you: &'static str,
    pub interrupted: &'static str,
    pub start: &'static str,
    pub retry: &'static str,
    pub error_unreachable: &'static str,
    pub error_not_allowed: &'static str,
    pub error_rate_limited: &'static str,
    pub error_expired: &'static str,
    pub error_failed: &'static str,
    pub error_unexpected: &'static str,
}

pub const EN: Messages = Messages {
    launcher_label: "Talk to us",
    close_label: "Close",
    panel_label: "Conversation",
    default_agent_name: "Assistant",
    idle: "Ready when you are",
    connecting: "Connecting…",
    pending: "Setting up the conversation…",
    dispatching: "Calling the agent…",
    active: "Connected",
    completed: "Conversation ended",
    failed: "The conversation could not continue",
    unknown_status: "Working…",
    transcript_label: "Transcript",
    agent: "Agent",
    you: "You",
    interrupted: "(interrupted)",
    start: "Start conversation",
    retry: "Try again",
    error_unreachable: "We can't reach the service right now. Check your connection and try again.",
    error_not_allowed: "This conversation isn't available on this page.",
    error_rate_limited: "Too many attempts. Please wait {seconds} s and try again.",
    error_expired: "Your session has expired. Start again to continue.",
    error_failed: "The conversation could not continue. Please try again.",
    error_unexpected: "Something went wrong on our side. Please try again.",
};

impl Messages {
    /// The messages for a BCP 47 language tag; English until more tables exist.
    pub fn for_lang(_lang: Option<&str>) -> &'static Messages {
        &EN
    }

    /// The status line for a phase.
    pub fn phase(&self, phase: &Phase) -> String {
        match phase {
            Phase::Idle => self.idle.into(),
            Phase::Connecting => self.connecting.into(),
            Phase::Live(status) => self.status(*status).into(),
            Phase::Error(error) => self.error(error.kind),
        }
    }

    pub fn status(&self, status: ConversationStatus) -> &'static str {
        match status {
            ConversationStatus::Pending => self.pending,
            ConversationStatus::Dispatching => self.dispatching,
            ConversationStatus::Active => self.active,
            ConversationStatus::Completed => self.completed,
            ConversationStatus::Failed => self.failed,
            ConversationStatus::Unknown => self.unknown_status,
        }
    }

    pub fn error(&self, kind: ErrorKind) -> String {
        match kind {
            ErrorKind::Unreachable => self.error_unreachable.into(),
            ErrorKind::NotAllowed => self.error_not_allowed.into(),
            ErrorKind::RateLimited { seconds } => self
                .error_rate_limited
                .replace("{seconds}", &seconds.to_string()),
            ErrorKind::SessionExpired => self.error_expired.into(),
            ErrorKind::ConversationFailed => self.error_failed.into(),
            ErrorKind::Unexpected => self.error_unexpected.into(),
        }
    }

    pub fn speaker(&self, role: Role, agent_name: &str) -> String {
        match role {
            Role::Agent | Role::Unknown => agent_name.into(),
            Role::User => self.you.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_message_names_the_wait() {
        let text = EN.error(ErrorKind::RateLimited { seconds: 12 });
        assert!(text.contains("12 s"), "{text}");
    }

    #[test]
    fn every_platform_status_has_human_wording() {
        for status in [
            ConversationStatus::Pending,
            ConversationStatus::Dispatching,
            ConversationStatus::Active,
            ConversationStatus::Completed,
            ConversationStatus::Failed,
            ConversationStatus::Unknown,
        ] {
            let text = EN.status(status);
            assert!(!text.is_empty());
            assert_ne!(
                text,
                format!("{status:?}"),
                "raw enum names are not for users"
            );
        }
    }
}
