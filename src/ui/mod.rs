//! The widget's view: a launcher (with its unread badge) and a conversation panel.
//! Components stay thin: they read the [`Session`] signal and call back into the driver;
//! decisions live in `session.rs`, `i18n.rs` and the plain modules here (`unread`, `focus`,
//! `feedback`'s draft, `export`, `clock`, `markdown`), each with ordinary `#[test]`s.
//!
//! A conversation that has a call adds its controls and live captions (`call`).
//!
//! Event handlers are attached to their elements directly (leptos' `delegation` feature is off),
//! which is what makes them fire inside a Shadow DOM; `tests/web.rs` and `tests/ui.rs` prove it.

mod call;
pub mod clock;
pub mod export;
pub mod feedback;
pub mod focus;
mod icons;
pub mod markdown;
mod panel;
mod rich_text;
pub mod unread;

use std::time::Duration;

use leptos::html;
use leptos::prelude::*;
use speaknode_api::Rating;

use crate::Mode;
use crate::driver::{CallSignals, Driver};
use crate::i18n::Messages;
use crate::session::{Phase, Session};
use crate::ui::call::CallIntents;
use crate::ui::feedback::FeedbackDraft;
use crate::ui::panel::Panel;
use crate::ui::unread::Unread;

/// What the visitor can ask the widget to do; components only call these.
#[derive(Clone)]
pub struct Actions {
    driver: Driver,
}

impl Actions {
    pub fn new(driver: &Driver) -> Self {
        Self {
            driver: driver.clone(),
        }
    }

    /// Starts a conversation (or retries after a failure); ignored while one runs.
    pub fn start(&self) {
        self.driver.start();
    }

    /// Ends the running conversation.
    pub fn end(&self) {
        self.driver.end();
    }

    /// Rates the conversation once it is over.
    pub fn feedback(&self, rating: Rating, comment: Option<String>) {
        self.driver.feedback(rating, comment);
    }

    /// The call, for the panel to render.
    pub fn call_signals(&self) -> CallSignals {
        self.driver.call_signals()
    }

    /// The widget's `<audio>` element, which plays the agent.
    pub fn attach_audio(&self, element: web_sys::HtmlAudioElement) {
        self.driver.attach_audio_element(element);
    }

    fn call_intents(&self) -> CallIntents {
        let d = [(); 6].map(|()| self.driver.clone());
        let [send, resend, set_mic, switch_mic, enable_audio, retry] = d;
        CallIntents {
            send: UnsyncCallback::new(move |text| send.send_message(text)),
            resend: UnsyncCallback::new(move |id| resend.resend_message(id)),
            set_mic: UnsyncCallback::new(move |on| set_mic.set_mic(on)),
            switch_mic: UnsyncCallback::new(move |id| switch_mic.switch_mic(id)),
            enable_audio: UnsyncCallback::new(move |()| enable_audio.enable_audio()),
            retry: UnsyncCallback::new(move |()| retry.retry_call()),
        }
    }
}

/// The panel's controls' requests, as copyable callbacks for its children.
#[derive(Clone, Copy)]
pub(crate) struct Intents {
    pub start: UnsyncCallback<()>,
    pub end: UnsyncCallback<()>,
    pub feedback: UnsyncCallback<(Rating, Option<String>)>,
    /// Closes the panel and puts focus back on the launcher.
    pub close: UnsyncCallback<()>,
    pub call: CallIntents,
}

/// The whole widget: launcher plus panel.
#[component]
pub fn Widget(
    /// The conversation as the driver last saw it.
    session: RwSignal<Session>,
    /// Whether the panel is open.
    open: RwSignal<bool>,
    /// The words to show.
    messages: &'static Messages,
    /// Which ways of talking are offered; it picks the launcher's icon.
    mode: Mode,
    /// What the visitor can do.
    actions: Actions,
) -> impl IntoView {
    let root = NodeRef::<html::Div>::new();
    let launcher = NodeRef::<html::Button>::new();
    let draft = RwSignal::new(FeedbackDraft::default());
    let seen = StoredValue::new(Unread::default());
    // A panel open at mount was reopened from the previous page: focus stays where the
    // page has it. Every later opening moves focus into the panel.
    let restored = StoredValue::new(open.get_untracked());
    let unread = Memo::new(move |_| {
        let is_open = open.get();
        session.with(|s| {
            seen.try_update_value(|seen| {
                seen.observe(s.conversation_id.as_deref(), s.transcript.turns(), is_open)
            })
            .unwrap_or(0)
        })
    });
    // A new conversation is rated afresh.
    Effect::new(move |before: Option<Option<String>>| {
        let now = session.with(|s| s.conversation_id.clone());
        if before.is_some_and(|before| before != now) {
            draft.set(FeedbackDraft::default());
        }
        now
    });

    let call = actions.call_signals();
    let audio = NodeRef::<html::Audio>::new();
    audio.on_load({
        let actions = actions.clone();
        move |element| actions.attach_audio(element)
    });
    let intents = {
        let call = actions.call_intents();
        let (start, end, feedback) = (actions.clone(), actions.clone(), actions);
        Intents {
            call,
            start: UnsyncCallback::new(move |()| start.start()),
            end: UnsyncCallback::new(move |()| end.end()),
            feedback: UnsyncCallback::new(move |(rating, comment)| {
                feedback.feedback(rating, comment)
            }),
            close: UnsyncCallback::new(move |()| {
                open.set(false);
                // Once the panel is gone: a full-screen panel hides the launcher until then.
                set_timeout(
                    move || {
                        if let Some(launcher) = launcher.try_get_untracked().flatten() {
                            let _ = launcher.focus();
                        }
                    },
                    Duration::ZERO,
                );
            }),
        }
    };
    let toggle = move |_| {
        let opening = !open.get_untracked();
        open.set(opening);
        // Opening an idle widget starts talking at once: that is what the click meant.
        if opening && session.with_untracked(|s| s.phase == Phase::Idle) {
            intents.start.run(());
        }
    };
    // Tab and Shift+Tab cycle through the panel and the launcher; Escape closes. While the
    // panel is closed the keyboard is the page's.
    let on_keydown = move |event: web_sys::KeyboardEvent| {
        if !open.get_untracked() || event.default_prevented() || event.is_composing() {
            return;
        }
        match event.key().as_str() {
            "Escape" => {
                event.prevent_default();
                intents.close.run(());
            }
            "Tab" if !event.alt_key() && !event.ctrl_key() && !event.meta_key() => {
                let Some(root) = root.get_untracked() else {
                    return;
                };
                if focus::cycle(&root, event.target().as_ref(), event.shift_key()) {
                    event.prevent_default();
                }
            }
            _ => {}
        }
    };

    view! {
        // The language is the widget's; the direction only the panel's, so the launcher keeps
        // to the page's corner whatever the widget's language.
        <div class="sn-widget" lang=messages.lang node_ref=root on:keydown=on_keydown>
            <Show when=move || open.get()>
                {move || {
                    let take_focus = !restored.get_value();
                    restored.set_value(false);
                    view! { <Panel session messages draft intents take_focus call /> }
                }}
            </Show>
            // The agent plays here, outside the panel, so closing the panel does not silence
            // the call. Without controls an <audio> element is not rendered.
            <audio class="sn-audio" data-testid="sn-agent-audio" autoplay node_ref=audio></audio>
            <button
                type="button"
                part="launcher"
                class="sn-launcher"
                data-testid="sn-launcher"
                aria-label=move || messages.launcher_name(unread.get())
                aria-haspopup="dialog"
                aria-expanded=move || open.get().to_string()
                node_ref=launcher
                on:click=toggle
            >
                {icons::launcher(mode)}
                <Show when=move || { unread.get() > 0 }>
                    // The count is in the launcher's name already; the badge is for the eyes.
                    <span class="sn-badge" part="badge" data-testid="sn-unread" aria-hidden="true">
                        {move || unread::badge_text(unread.get())}
                    </span>
                </Show>
            </button>
        </div>
    }
}
