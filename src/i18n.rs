//! The words the widget shows. Every user-visible string lives here, so adding a language is
//! adding one table: English, German and Arabic (right to left) are bundled.

use crate::session::{ErrorKind, Phase};
use speaknode_api::{ConversationStatus, Role};

/// One language's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messages {
    /// The BCP 47 language the table is written in.
    pub lang: &'static str,
    /// Writing direction, `ltr` or `rtl`, set on the widget's root.
    pub dir: &'static str,
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
    pub error_token_refused: &'static str,
    /// The status line while the live connection is being re-established.
    pub reconnecting: &'static str,
}

pub const EN: Messages = Messages {
    lang: "en",
    dir: "ltr",
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
    error_token_refused: "We couldn't get permission to start the conversation. Please try again.",
    reconnecting: "Reconnecting…",
};

pub const DE: Messages = Messages {
    lang: "de",
    dir: "ltr",
    launcher_label: "Mit uns sprechen",
    close_label: "Schließen",
    panel_label: "Gespräch",
    default_agent_name: "Assistent",
    idle: "Bereit, wenn Sie es sind",
    connecting: "Verbindung wird hergestellt …",
    pending: "Das Gespräch wird vorbereitet …",
    dispatching: "Der Agent wird gerufen …",
    active: "Verbunden",
    completed: "Gespräch beendet",
    failed: "Das Gespräch konnte nicht fortgesetzt werden",
    unknown_status: "Einen Moment …",
    transcript_label: "Verlauf",
    agent: "Agent",
    you: "Sie",
    interrupted: "(unterbrochen)",
    start: "Gespräch starten",
    retry: "Erneut versuchen",
    error_unreachable: "Der Dienst ist gerade nicht erreichbar. Prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
    error_not_allowed: "Dieses Gespräch ist auf dieser Seite nicht verfügbar.",
    error_rate_limited: "Zu viele Versuche. Bitte warten Sie {seconds} s und versuchen Sie es dann erneut.",
    error_expired: "Ihre Sitzung ist abgelaufen. Starten Sie neu, um fortzufahren.",
    error_failed: "Das Gespräch konnte nicht fortgesetzt werden. Bitte versuchen Sie es erneut.",
    error_unexpected: "Bei uns ist etwas schiefgelaufen. Bitte versuchen Sie es erneut.",
    error_token_refused: "Wir haben keine Freigabe für das Gespräch erhalten. Bitte versuchen Sie es erneut.",
    reconnecting: "Verbindung wird wiederhergestellt …",
};

pub const AR: Messages = Messages {
    lang: "ar",
    dir: "rtl",
    launcher_label: "تحدّث معنا",
    close_label: "إغلاق",
    panel_label: "محادثة",
    default_agent_name: "المساعد",
    idle: "نحن جاهزون متى شئت",
    connecting: "جارٍ الاتصال…",
    pending: "جارٍ إعداد المحادثة…",
    dispatching: "جارٍ استدعاء الوكيل…",
    active: "متصل",
    completed: "انتهت المحادثة",
    failed: "تعذّر استمرار المحادثة",
    unknown_status: "لحظة من فضلك…",
    transcript_label: "نص المحادثة",
    agent: "الوكيل",
    you: "أنت",
    interrupted: "(مقاطَع)",
    start: "ابدأ المحادثة",
    retry: "حاول مرة أخرى",
    error_unreachable: "تعذّر الوصول إلى الخدمة حاليًا. تحقّق من اتصالك وحاول مرة أخرى.",
    error_not_allowed: "هذه المحادثة غير متاحة على هذه الصفحة.",
    error_rate_limited: "محاولات كثيرة جدًا. يُرجى الانتظار {seconds} ثانية ثم المحاولة مرة أخرى.",
    error_expired: "انتهت صلاحية جلستك. ابدأ من جديد للمتابعة.",
    error_failed: "تعذّر استمرار المحادثة. يُرجى المحاولة مرة أخرى.",
    error_unexpected: "حدث خطأ من جهتنا. يُرجى المحاولة مرة أخرى.",
    error_token_refused: "تعذّر الحصول على إذن لبدء المحادثة. يُرجى المحاولة مرة أخرى.",
    reconnecting: "جارٍ إعادة الاتصال…",
};

impl Messages {
    /// The messages for a BCP 47 language tag (`de`, `de-AT`, `ar-EG`, …), chosen by its
    /// primary subtag; English for anything not bundled.
    pub fn for_lang(lang: Option<&str>) -> &'static Messages {
        let primary = lang
            .and_then(|tag| tag.split(['-', '_']).next())
            .map(str::to_ascii_lowercase);
        match primary.as_deref() {
            Some("de") => &DE,
            Some("ar") => &AR,
            _ => &EN,
        }
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
            ErrorKind::TokenRefused => self.error_token_refused.into(),
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
    fn the_language_is_chosen_by_its_primary_subtag() {
        assert_eq!(Messages::for_lang(Some("de-AT")).lang, "de");
        assert_eq!(Messages::for_lang(Some("AR_eg")).lang, "ar");
        assert_eq!(Messages::for_lang(Some("ar")).dir, "rtl");
        assert_eq!(Messages::for_lang(Some("fr")).lang, "en");
        assert_eq!(Messages::for_lang(Some("")).lang, "en");
        assert_eq!(Messages::for_lang(None).dir, "ltr");
    }

    #[test]
    fn every_table_says_every_thing_and_names_the_wait() {
        for table in [&EN, &DE, &AR] {
            let text = table.error(ErrorKind::RateLimited { seconds: 42 });
            assert!(
                text.contains("42") && !text.contains('{'),
                "{}: {text}",
                table.lang
            );
            for status in [
                ConversationStatus::Pending,
                ConversationStatus::Active,
                ConversationStatus::Failed,
            ] {
                assert!(!table.status(status).is_empty(), "{}", table.lang);
            }
            assert!(!table.launcher_label.is_empty() && !table.retry.is_empty());
        }
        assert_ne!(DE.active, EN.active, "German is not English");
        assert_ne!(AR.active, EN.active, "Arabic is not English");
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
