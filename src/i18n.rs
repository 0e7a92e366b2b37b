//! The words the widget shows. Every user-visible string lives here, so adding a language is
//! adding one table: English, German and Arabic (right to left) are bundled.

use crate::session::{ErrorKind, Phase, Session};
use crate::voice::call::{Call, CallFailure, CallPhase, JoinStage, SendState};
use crate::voice::{AgentState, MicError};
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
    pub voice: VoiceMessages,
}

/// The words of a voice call (`voice::call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceMessages {
    /// The button that starts a voice call.
    pub start_call: &'static str,
    /// The button that leaves the call.
    pub hang_up: &'static str,
    /// The status line while the call is being joined.
    pub joining: &'static str,
    /// In the room, the agent not (yet) there.
    pub waiting_for_agent: &'static str,
    /// The agent's `lk.agent.state`, as the status line shows it.
    pub agent_initializing: &'static str,
    pub agent_listening: &'static str,
    pub agent_thinking: &'static str,
    pub agent_speaking: &'static str,
    /// An agent state this version does not know: just connected.
    pub agent_connected: &'static str,
    /// The status line while the call's connection is being restored.
    pub reconnecting: &'static str,
    /// The status line after the call.
    pub call_ended: &'static str,
    /// Microphone notices: what happened, then that typing still works.
    pub mic_denied: &'static str,
    pub mic_missing: &'static str,
    pub mic_busy: &'static str,
    pub mic_other: &'static str,
    /// The join timer ran out: no room, no agent, or an agent that never got ready.
    pub join_timeout_room: &'static str,
    pub join_timeout_agent: &'static str,
    pub join_timeout_ready: &'static str,
    /// The media server refused the call even with a fresh grant.
    pub refused: &'static str,
    /// The media server could not be reached.
    pub unreachable: &'static str,
    /// The connection was lost twice; the Retry button follows.
    pub connection_lost: &'static str,
    /// The agent left and the room stayed open.
    pub agent_left: &'static str,
    /// The same conversation's call was joined from another tab or window, which took it.
    pub replaced: &'static str,
    /// The button that takes the call back into this window.
    pub continue_here: &'static str,
    /// The call failed in a way the widget cannot name.
    pub call_error: &'static str,
    /// The button shown while the browser blocks playback.
    pub enable_audio: &'static str,
    /// The microphone toggle's labels.
    pub mute: &'static str,
    pub unmute: &'static str,
    /// The microphone picker's label.
    pub microphone: &'static str,
    /// A typed message waiting for the connection.
    pub message_queued: &'static str,
    /// A typed message that could not be sent; `resend` retries it.
    pub message_failed: &'static str,
    pub resend: &'static str,
    /// The label of the field a message is typed into.
    pub message_label: &'static str,
    /// The button that sends a typed message.
    pub send: &'static str,
    /// The conversation offers a call this widget cannot join (and so cannot talk in).
    pub call_unavailable: &'static str,
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
    voice: EN_VOICE,
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
    voice: DE_VOICE,
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
    voice: AR_VOICE,
};

const EN_VOICE: VoiceMessages = VoiceMessages {
    start_call: "Start call",
    hang_up: "End call",
    joining: "Joining the call…",
    waiting_for_agent: "Waiting for the agent…",
    agent_initializing: "Getting ready…",
    agent_listening: "Listening",
    agent_thinking: "Thinking…",
    agent_speaking: "Speaking",
    agent_connected: "Connected",
    reconnecting: "Reconnecting the call…",
    call_ended: "Call ended",
    mic_denied: "Microphone access is blocked. You can type instead.",
    mic_missing: "No microphone was found. You can type instead.",
    mic_busy: "Your microphone is in use by another app. You can type instead.",
    mic_other: "The microphone couldn't be started. You can type instead.",
    join_timeout_room: "The call couldn't be connected in time.",
    join_timeout_agent: "The agent didn't join the call.",
    join_timeout_ready: "The agent joined but didn't get ready.",
    refused: "The call wasn't allowed. Please try again.",
    unreachable: "We can't reach the call service. Check your connection and try again.",
    connection_lost: "The call connection was lost. Try again to reconnect.",
    agent_left: "The agent left the call unexpectedly.",
    replaced: "This call continued in another window.",
    continue_here: "Continue here",
    call_error: "The call couldn't start. Please try again.",
    enable_audio: "Enable audio",
    mute: "Mute microphone",
    unmute: "Unmute microphone",
    microphone: "Microphone",
    message_queued: "Waiting to send…",
    message_failed: "Not sent.",
    resend: "Send again",
    message_label: "Type a message",
    send: "Send",
    call_unavailable: "Talking to the agent isn't available in this browser right now. Please try again later.",
};

const DE_VOICE: VoiceMessages = VoiceMessages {
    start_call: "Anruf starten",
    hang_up: "Anruf beenden",
    joining: "Anruf wird verbunden …",
    waiting_for_agent: "Warten auf den Agenten …",
    agent_initializing: "Wird vorbereitet …",
    agent_listening: "Hört zu",
    agent_thinking: "Überlegt …",
    agent_speaking: "Spricht",
    agent_connected: "Verbunden",
    reconnecting: "Anruf wird wiederhergestellt …",
    call_ended: "Anruf beendet",
    mic_denied: "Der Zugriff auf das Mikrofon ist blockiert. Sie können stattdessen schreiben.",
    mic_missing: "Es wurde kein Mikrofon gefunden. Sie können stattdessen schreiben.",
    mic_busy: "Ihr Mikrofon wird von einer anderen App verwendet. Sie können stattdessen schreiben.",
    mic_other: "Das Mikrofon konnte nicht gestartet werden. Sie können stattdessen schreiben.",
    join_timeout_room: "Der Anruf konnte nicht rechtzeitig verbunden werden.",
    join_timeout_agent: "Der Agent ist dem Anruf nicht beigetreten.",
    join_timeout_ready: "Der Agent ist beigetreten, wurde aber nicht bereit.",
    refused: "Der Anruf wurde nicht zugelassen. Bitte versuchen Sie es erneut.",
    unreachable: "Der Anrufdienst ist nicht erreichbar. Prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
    connection_lost: "Die Verbindung zum Anruf ist abgebrochen. Versuchen Sie es erneut, um sich neu zu verbinden.",
    agent_left: "Der Agent hat den Anruf unerwartet verlassen.",
    replaced: "Der Anruf wird in einem anderen Fenster fortgesetzt.",
    continue_here: "Hier fortsetzen",
    call_error: "Der Anruf konnte nicht gestartet werden. Bitte versuchen Sie es erneut.",
    enable_audio: "Ton aktivieren",
    mute: "Mikrofon stummschalten",
    unmute: "Stummschaltung aufheben",
    microphone: "Mikrofon",
    message_queued: "Wartet auf Versand …",
    message_failed: "Nicht gesendet.",
    resend: "Erneut senden",
    message_label: "Nachricht schreiben",
    send: "Senden",
    call_unavailable: "Das Gespräch mit dem Agenten ist in diesem Browser gerade nicht verfügbar. Bitte versuchen Sie es später erneut.",
};

const AR_VOICE: VoiceMessages = VoiceMessages {
    start_call: "ابدأ المكالمة",
    hang_up: "إنهاء المكالمة",
    joining: "جارٍ الانضمام إلى المكالمة…",
    waiting_for_agent: "في انتظار الوكيل…",
    agent_initializing: "جارٍ التجهيز…",
    // Agent states as verbal nouns, so they do not depend on the agent's grammatical gender.
    agent_listening: "جارٍ الاستماع",
    agent_thinking: "جارٍ التفكير…",
    agent_speaking: "جارٍ التحدث",
    agent_connected: "متصل",
    reconnecting: "جارٍ إعادة الاتصال بالمكالمة…",
    call_ended: "انتهت المكالمة",
    mic_denied: "الوصول إلى الميكروفون محظور. يمكنك الكتابة بدلًا من ذلك.",
    mic_missing: "لم يُعثر على ميكروفون. يمكنك الكتابة بدلًا من ذلك.",
    mic_busy: "الميكروفون مستخدَم في تطبيق آخر. يمكنك الكتابة بدلًا من ذلك.",
    mic_other: "تعذّر تشغيل الميكروفون. يمكنك الكتابة بدلًا من ذلك.",
    join_timeout_room: "تعذّر الاتصال بالمكالمة في الوقت المحدد.",
    join_timeout_agent: "لم ينضم الوكيل إلى المكالمة.",
    join_timeout_ready: "انضم الوكيل لكنه لم يصبح جاهزًا.",
    refused: "لم يُسمح بالمكالمة. يُرجى المحاولة مرة أخرى.",
    unreachable: "تعذّر الوصول إلى خدمة المكالمات. تحقّق من اتصالك وحاول مرة أخرى.",
    connection_lost: "انقطع الاتصال بالمكالمة. حاول مرة أخرى لإعادة الاتصال.",
    agent_left: "غادر الوكيل المكالمة بشكل غير متوقع.",
    replaced: "انتقلت المكالمة إلى نافذة أخرى.",
    continue_here: "المتابعة هنا",
    call_error: "تعذّر بدء المكالمة. يُرجى المحاولة مرة أخرى.",
    enable_audio: "تفعيل الصوت",
    mute: "كتم الميكروفون",
    unmute: "إلغاء كتم الميكروفون",
    microphone: "الميكروفون",
    message_queued: "في انتظار الإرسال…",
    message_failed: "لم تُرسَل.",
    resend: "إعادة الإرسال",
    message_label: "اكتب رسالة",
    send: "إرسال",
    call_unavailable: "التحدث إلى الوكيل غير متاح في هذا المتصفح حاليًا. يُرجى المحاولة لاحقًا.",
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

    /// The call's status line: where the call is, the agent's state, or why it stopped.
    pub fn call_status(&self, call: &Call) -> String {
        let voice = &self.voice;
        match call.phase() {
            CallPhase::Idle => String::new(),
            CallPhase::Joining => voice.joining.into(),
            CallPhase::Connected { agent: None } => voice.waiting_for_agent.into(),
            CallPhase::Connected { agent: Some(state) } => self.agent_state(state).into(),
            CallPhase::Reconnecting => voice.reconnecting.into(),
            CallPhase::Ended => voice.call_ended.into(),
            CallPhase::Failed(failure) => self.call_failure(&failure),
        }
    }

    pub fn agent_state(&self, state: AgentState) -> &'static str {
        let voice = &self.voice;
        match state {
            AgentState::Initializing => voice.agent_initializing,
            AgentState::Listening => voice.agent_listening,
            AgentState::Thinking => voice.agent_thinking,
            AgentState::Speaking => voice.agent_speaking,
            AgentState::Unknown => voice.agent_connected,
        }
    }

    /// Why the call stopped; the panel offers [`Messages::retry`] beside it.
    pub fn call_failure(&self, failure: &CallFailure) -> String {
        let voice = &self.voice;
        match failure {
            CallFailure::JoinTimeout(JoinStage::Room) => voice.join_timeout_room.into(),
            CallFailure::JoinTimeout(JoinStage::Agent) => voice.join_timeout_agent.into(),
            CallFailure::JoinTimeout(JoinStage::AgentReady) => voice.join_timeout_ready.into(),
            CallFailure::Refused => voice.refused.into(),
            CallFailure::Unreachable => voice.unreachable.into(),
            CallFailure::ConnectionLost => voice.connection_lost.into(),
            CallFailure::AgentLeft => voice.agent_left.into(),
            CallFailure::Replaced => voice.replaced.into(),
            // The BFF's answer already has its wording.
            CallFailure::Grant(error) => self.error(error.kind),
            CallFailure::Sdk(_) => voice.call_error.into(),
        }
    }

    /// Why the microphone is unavailable, and that typing still works.
    pub fn mic_notice(&self, error: MicError) -> &'static str {
        let voice = &self.voice;
        match error {
            MicError::Denied => voice.mic_denied,
            MicError::Missing => voice.mic_missing,
            MicError::Busy => voice.mic_busy,
            MicError::Other => voice.mic_other,
        }
    }

    /// The microphone toggle's label: what a click does.
    pub fn mic_toggle(&self, on: bool) -> &'static str {
        if on {
            self.voice.mute
        } else {
            self.voice.unmute
        }
    }

    /// The note beside a typed message, if it needs one.
    pub fn send_state(&self, state: SendState) -> Option<&'static str> {
        match state {
            SendState::Queued => Some(self.voice.message_queued),
            SendState::Failed => Some(self.voice.message_failed),
            SendState::Sending | SendState::Sent => None,
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

    #[test]
    fn every_table_words_the_call() {
        for table in [&EN, &DE, &AR] {
            let v = &table.voice;
            let all = [
                v.start_call,
                v.hang_up,
                v.joining,
                v.waiting_for_agent,
                v.agent_initializing,
                v.agent_listening,
                v.agent_thinking,
                v.agent_speaking,
                v.agent_connected,
                v.reconnecting,
                v.call_ended,
                v.mic_denied,
                v.mic_missing,
                v.mic_busy,
                v.mic_other,
                v.join_timeout_room,
                v.join_timeout_agent,
                v.join_timeout_ready,
                v.refused,
                v.unreachable,
                v.connection_lost,
                v.agent_left,
                v.replaced,
                v.continue_here,
                v.call_error,
                v.enable_audio,
                v.mute,
                v.unmute,
                v.microphone,
                v.message_queued,
                v.message_failed,
                v.resend,
                v.message_label,
                v.send,
                v.call_unavailable,
            ];
            for text in all {
                assert!(
                    !text.trim().is_empty() && !text.contains('{'),
                    "{}: {text:?}",
                    table.lang
                );
            }
            // Each microphone problem has its own sentence, and each says typing works.
            let notices = [
                MicError::Denied,
                MicError::Missing,
                MicError::Busy,
                MicError::Other,
            ]
            .map(|error| table.mic_notice(error));
            let fallback = notices[0].rsplit_once(". ").map(|(_, tail)| tail);
            for (i, notice) in notices.iter().enumerate() {
                assert!(notices[..i].iter().all(|other| other != notice));
                assert_eq!(
                    notice.rsplit_once(". ").map(|(_, tail)| tail),
                    fallback,
                    "{}",
                    table.lang
                );
            }
            assert_ne!(table.mic_toggle(true), table.mic_toggle(false));
        }
        assert_ne!(DE.voice.mic_denied, EN.voice.mic_denied);
        assert_ne!(AR.voice.mic_denied, EN.voice.mic_denied);
        assert_ne!(AR.voice.enable_audio, EN.voice.enable_audio);
    }

    #[test]
    fn the_call_status_follows_the_call() {
        use crate::voice::call::{Effect, Input};
        use crate::voice::{LinkState, MicRequest};
        use speaknode_api::VoiceGrant;

        let mut call = Call::default();
        assert_eq!(EN.call_status(&call), "");
        let effects = call.handle(Input::Start {
            grant: VoiceGrant {
                url: "wss://lk.invalid".into(),
                token: "t".into(),
            },
            mic: MicRequest::default(),
        });
        assert_eq!(EN.call_status(&call), EN.voice.joining);
        call.handle(Input::Link(LinkState::Connected));
        assert_eq!(EN.call_status(&call), EN.voice.waiting_for_agent);
        call.handle(Input::AgentState(AgentState::Speaking));
        assert_eq!(DE.call_status(&call), "Spricht");
        call.handle(Input::AgentState(AgentState::Unknown));
        assert_eq!(EN.call_status(&call), EN.voice.agent_connected);
        call.handle(Input::Link(LinkState::Reconnecting));
        assert_eq!(AR.call_status(&call), AR.voice.reconnecting);
        let join = effects
            .iter()
            .find_map(|effect| match effect {
                Effect::StartTimer { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a join timer");
        call.handle(Input::Link(LinkState::Connected));
        call.handle(Input::Hangup);
        call.handle(Input::Timer(join));
        assert_eq!(EN.call_status(&call), "Call ended");
    }

    #[test]
    fn call_failures_have_their_own_words() {
        let failures = [
            CallFailure::JoinTimeout(JoinStage::Room),
            CallFailure::JoinTimeout(JoinStage::Agent),
            CallFailure::JoinTimeout(JoinStage::AgentReady),
            CallFailure::Refused,
            CallFailure::Unreachable,
            CallFailure::ConnectionLost,
            CallFailure::AgentLeft,
            CallFailure::Replaced,
            CallFailure::Sdk("TypeError: x".into()),
        ];
        let texts: Vec<String> = failures.iter().map(|f| EN.call_failure(f)).collect();
        for (i, text) in texts.iter().enumerate() {
            assert!(texts[..i].iter().all(|other| other != text), "{text}");
            assert!(!text.contains("TypeError"), "SDK details are not for users");
        }
        assert_eq!(
            EN.call_failure(&CallFailure::Grant(
                crate::session::WidgetError::unreachable()
            )),
            EN.error_unreachable
        );
        assert_eq!(EN.send_state(SendState::Failed), Some("Not sent."));
        assert_eq!(EN.send_state(SendState::Sent), None);
    }
}
