//! The words the widget shows. Every user-visible string lives here, so adding a language is
//! adding one table: English, German and Arabic (right to left) are bundled.

use crate::session::{ErrorKind, Phase, Session};
use speaknode_api::{ConversationStatus, Role};

/// A countable phrase in the plural forms a language distinguishes (CLDR's categories);
/// `{n}` stands for the number. English and German use only `one` and `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plural {
    pub one: &'static str,
    pub two: &'static str,
    pub few: &'static str,
    pub many: &'static str,
    pub other: &'static str,
}

/// One language's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messages {
    /// The BCP 47 language the table is written in.
    pub lang: &'static str,
    /// Writing direction, `ltr` or `rtl`, set on the widget's root.
    pub dir: &'static str,
    pub launcher_label: &'static str,
    pub close_label: &'static str,
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
    /// Joins the launcher's name and its unread count.
    pub list_separator: &'static str,
    pub unread: Plural,
    /// The typing indicator's label; `{name}` is the agent's name.
    pub thinking: &'static str,
    pub end: &'static str,
    /// The end button while the end request is on its way.
    pub ending: &'static str,
    pub feedback_prompt: &'static str,
    pub feedback_up: &'static str,
    pub feedback_down: &'static str,
    pub feedback_comment: &'static str,
    pub feedback_send: &'static str,
    pub feedback_sending: &'static str,
    pub feedback_thanks: &'static str,
    pub download: &'static str,
    /// Leads the notice when ending failed.
    pub notice_end: &'static str,
    /// Leads the notice when the rating failed.
    pub notice_feedback: &'static str,
}

pub const EN: Messages = Messages {
    lang: "en",
    dir: "ltr",
    launcher_label: "Talk to us",
    close_label: "Close",
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
    list_separator: ", ",
    unread: Plural {
        one: "1 unread message",
        two: "{n} unread messages",
        few: "{n} unread messages",
        many: "{n} unread messages",
        other: "{n} unread messages",
    },
    thinking: "{name} is thinking…",
    end: "End conversation",
    ending: "Ending…",
    feedback_prompt: "How was this conversation?",
    feedback_up: "Helpful",
    feedback_down: "Not helpful",
    feedback_comment: "Comment (optional)",
    feedback_send: "Send feedback",
    feedback_sending: "Sending…",
    feedback_thanks: "Thanks for your feedback!",
    download: "Download transcript",
    notice_end: "The conversation couldn't be ended.",
    notice_feedback: "Your feedback wasn't sent.",
};

pub const DE: Messages = Messages {
    lang: "de",
    dir: "ltr",
    launcher_label: "Mit uns sprechen",
    close_label: "Schließen",
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
    list_separator: ", ",
    unread: Plural {
        one: "1 ungelesene Nachricht",
        two: "{n} ungelesene Nachrichten",
        few: "{n} ungelesene Nachrichten",
        many: "{n} ungelesene Nachrichten",
        other: "{n} ungelesene Nachrichten",
    },
    thinking: "{name} überlegt …",
    end: "Gespräch beenden",
    ending: "Wird beendet …",
    feedback_prompt: "Wie war das Gespräch?",
    feedback_up: "Hilfreich",
    feedback_down: "Nicht hilfreich",
    feedback_comment: "Kommentar (optional)",
    feedback_send: "Feedback senden",
    feedback_sending: "Wird gesendet …",
    feedback_thanks: "Vielen Dank für Ihr Feedback!",
    download: "Verlauf herunterladen",
    notice_end: "Das Gespräch konnte nicht beendet werden.",
    notice_feedback: "Ihr Feedback wurde nicht gesendet.",
};

pub const AR: Messages = Messages {
    lang: "ar",
    dir: "rtl",
    launcher_label: "تحدّث معنا",
    close_label: "إغلاق",
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
    list_separator: "، ",
    // Arabic counts in six forms; the noun and its adjective agree with the number.
    unread: Plural {
        one: "رسالة واحدة غير مقروءة",
        two: "رسالتان غير مقروءتين",
        few: "{n} رسائل غير مقروءة",
        many: "{n} رسالة غير مقروءة",
        other: "{n} رسالة غير مقروءة",
    },
    // A verbal noun, so the phrase does not depend on the agent's grammatical gender.
    thinking: "جارٍ إعداد الرد…",
    end: "إنهاء المحادثة",
    ending: "جارٍ الإنهاء…",
    feedback_prompt: "كيف كانت المحادثة؟",
    feedback_up: "مفيدة",
    feedback_down: "غير مفيدة",
    feedback_comment: "تعليق (اختياري)",
    feedback_send: "إرسال التقييم",
    feedback_sending: "جارٍ الإرسال…",
    feedback_thanks: "شكرًا على تقييمك!",
    download: "تنزيل نص المحادثة",
    notice_end: "تعذّر إنهاء المحادثة.",
    notice_feedback: "لم يُرسَل تقييمك.",
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

    /// The status line: the phase, or that the live connection is being re-established.
    pub fn status_line(&self, session: &Session) -> String {
        match session.phase {
            Phase::Live(status) if session.reconnecting && !status.is_final() => {
                self.reconnecting.into()
            }
            ref phase => self.phase(phase),
        }
    }

    /// "2 unread messages", in the plural form the number takes in this language.
    pub fn unread_count(&self, n: usize) -> String {
        let forms = &self.unread;
        let form = if self.lang == "ar" {
            match (n, n % 100) {
                (1, _) => forms.one,
                (2, _) => forms.two,
                (_, 3..=10) => forms.few,
                (_, 11..=99) => forms.many,
                _ => forms.other,
            }
        } else if n == 1 {
            forms.one
        } else {
            forms.other
        };
        form.replace("{n}", &n.to_string())
    }

    /// The launcher's accessible name, with the unread count when there is one.
    pub fn launcher_name(&self, unread: usize) -> String {
        if unread == 0 {
            self.launcher_label.into()
        } else {
            format!(
                "{}{}{}",
                self.launcher_label,
                self.list_separator,
                self.unread_count(unread)
            )
        }
    }

    pub fn thinking_label(&self, agent_name: &str) -> String {
        self.thinking.replace("{name}", agent_name)
    }

    /// The notice for a failed end or rating: what failed, then why.
    pub fn notice(&self, session: &Session) -> Option<String> {
        let error = session.notice?;
        // Rating is only possible once the conversation is over, ending only before.
        let action = match session.phase {
            Phase::Live(status) if status.is_final() => self.notice_feedback,
            _ => self.notice_end,
        };
        Some(format!("{action} {}", self.error(error.kind)))
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
            for text in [
                table.thinking,
                table.end,
                table.ending,
                table.feedback_prompt,
                table.feedback_up,
                table.feedback_down,
                table.feedback_comment,
                table.feedback_send,
                table.feedback_sending,
                table.feedback_thanks,
                table.download,
                table.notice_end,
                table.notice_feedback,
            ] {
                assert!(!text.trim().is_empty(), "{}", table.lang);
            }
            assert_ne!(table.feedback_up, table.feedback_down);
        }
        assert_ne!(DE.download, EN.download);
        assert_ne!(AR.download, EN.download);
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

    #[test]
    fn the_launcher_names_its_unread_count_in_every_language() {
        assert_eq!(EN.launcher_name(0), "Talk to us");
        assert_eq!(EN.launcher_name(1), "Talk to us, 1 unread message");
        assert_eq!(EN.launcher_name(2), "Talk to us, 2 unread messages");
        assert_eq!(
            DE.launcher_name(2),
            "Mit uns sprechen, 2 ungelesene Nachrichten"
        );
        assert_eq!(
            DE.launcher_name(1),
            "Mit uns sprechen, 1 ungelesene Nachricht"
        );
        assert_eq!(AR.launcher_name(2), "تحدّث معنا، رسالتان غير مقروءتين");
        assert_eq!(AR.launcher_name(1), "تحدّث معنا، رسالة واحدة غير مقروءة");
    }

    #[test]
    fn arabic_plural_forms_follow_the_number() {
        assert_eq!(AR.unread_count(3), "3 رسائل غير مقروءة");
        assert_eq!(AR.unread_count(10), "10 رسائل غير مقروءة");
        assert_eq!(AR.unread_count(11), "11 رسالة غير مقروءة");
        assert_eq!(AR.unread_count(100), "100 رسالة غير مقروءة");
        assert_eq!(AR.unread_count(103), "103 رسائل غير مقروءة");
        assert_eq!(EN.unread_count(11), "11 unread messages");
    }

    #[test]
    fn the_status_line_says_when_the_connection_is_coming_back() {
        let mut session = Session {
            phase: Phase::Live(ConversationStatus::Active),
            reconnecting: true,
            ..Session::default()
        };
        assert_eq!(EN.status_line(&session), "Reconnecting…");
        session.reconnecting = false;
        assert_eq!(EN.status_line(&session), "Connected");
        let failed = Session {
            phase: Phase::Error(crate::session::WidgetError::unreachable()),
            ..Session::default()
        };
        assert_eq!(EN.status_line(&failed), EN.error_unreachable);
        assert_eq!(EN.status_line(&Session::default()), EN.idle);
        let connecting = Session {
            phase: Phase::Connecting,
            ..Session::default()
        };
        assert_eq!(DE.status_line(&connecting), DE.connecting);
    }

    #[test]
    fn a_notice_says_what_failed_and_why() {
        let mut session = Session {
            phase: Phase::Live(ConversationStatus::Active),
            notice: Some(crate::session::WidgetError::unreachable()),
            ..Session::default()
        };
        let text = EN.notice(&session).expect("a notice");
        assert!(
            text.starts_with(EN.notice_end) && text.contains("can't reach"),
            "{text}"
        );
        session.phase = Phase::Live(ConversationStatus::Completed);
        let text = EN.notice(&session).expect("a notice");
        assert!(text.starts_with(EN.notice_feedback), "{text}");
        session.notice = None;
        assert_eq!(EN.notice(&session), None);
    }
}
