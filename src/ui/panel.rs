//! The conversation panel: header, status line, transcript, typing indicator, the call's
//! controls when the conversation has a call, and the visitor's actions (start, end, rate,
//! download). It renders the [`Session`] and the call; every decision is a method of
//! `Session`, `Call`, `Messages` or a plain helper module.

use std::time::Duration;

use leptos::html;
use leptos::prelude::*;
use speaknode_api::Role;
use wasm_bindgen::JsCast;

use crate::driver::CallSignals;
use crate::i18n::Messages;
use crate::session::{Phase, Session};
use crate::ui::call::{self, CallControls, CallStatus, Row};
use crate::ui::feedback::{FeedbackDraft, FeedbackForm};
use crate::ui::{Intents, clock, export, focus, icons, rich_text};
use crate::voice::call::SendState;

/// The panel, shown while the widget is open.
#[component]
pub fn Panel(
    session: RwSignal<Session>,
    messages: &'static Messages,
    draft: RwSignal<FeedbackDraft>,
    intents: Intents,
    /// Move focus into the panel once it is shown (not when it reopens by itself on load).
    take_focus: bool,
    /// The conversation's call, if it has one.
    call: CallSignals,
) -> impl IntoView {
    let panel = NodeRef::<html::Section>::new();
    let log = NodeRef::<html::Div>::new();
    // Whether the transcript is scrolled to its end, so new turns keep it there; a visitor
    // reading back is not yanked down.
    let pinned = StoredValue::new(true);
    let agent_name = Memo::new(move |_| {
        session
            .with(|s| s.agent_name.clone())
            .unwrap_or_else(|| messages.default_agent_name.to_owned())
    });
    let status = move || session.with(|s| messages.status_line(s));
    let phase_name = move || {
        session.with(|s| match &s.phase {
            Phase::Idle => "idle".to_owned(),
            Phase::Connecting => "connecting".to_owned(),
            Phase::Live(status) => format!("{status:?}").to_lowercase(),
            Phase::Error(error) => format!("error {}", error.code),
        })
    };
    let show_start = move || session.with(can_start);
    let start_label = move || {
        session.with(|s| match s.phase {
            Phase::Error(_) => messages.retry,
            _ => messages.start,
        })
    };
    // Live captions and typed lines join the stored turns while there is a call.
    let rows = Memo::new(move |_| {
        call.call
            .with(|c| session.with(|s| call::rows(s.transcript.turns(), c.as_ref())))
    });
    let has_call = move || call.call.with(Option::is_some);
    let thinking = move || session.with(Session::awaiting_reply);
    let running = move || session.with(Session::wants_updates);
    let can_end = move || session.with(Session::can_end);
    let ending = move || session.with(|s| s.ending);
    let over =
        move || session.with(|s| matches!(s.phase, Phase::Live(status) if status.is_final()));
    let notice = move || session.with(|s| messages.notice(s));
    let has_transcript =
        move || session.with(|s| s.conversation_id.is_some() && !s.transcript.turns().is_empty());

    let download = move |_| {
        let Some(parent) = panel.get_untracked() else {
            return;
        };
        let (name, text) = session.with_untracked(|s| {
            let id = s.conversation_id.as_deref().unwrap_or("conversation");
            let text = export::transcript_text(
                s.transcript.turns(),
                &agent_name.get_untracked(),
                messages,
                clock::local_offset_minutes,
            );
            (export::file_name(id), text)
        });
        if let Err(error) = export::save(&parent, &name, &text) {
            leptos::logging::warn!(
                "SpeakNode widget: the transcript could not be saved: {error:?}"
            );
        }
    };
    // Ending removes the end button, and the focus with it; the rating that replaces it
    // takes the focus instead, so a keyboard user carries on where they were.
    let end_pressed = StoredValue::new(false);
    let end = move |_| {
        if can_end() {
            end_pressed.set_value(true);
            intents.end.run(());
        }
    };
    Effect::new(move |_| {
        if over() && end_pressed.get_value() {
            end_pressed.set_value(false);
            // Once the rating is rendered.
            set_timeout(
                move || {
                    if let Some(panel) = panel.try_get_untracked().flatten() {
                        focus_first(&panel, &[focus::Initial::Rate.selector()]);
                    }
                },
                Duration::ZERO,
            );
        }
    });
    // Starting removes the start button, and the focus with it; the close button takes it,
    // so Escape and Tab keep working for a keyboard user.
    let start_pressed = StoredValue::new(false);
    let start = move |_| {
        start_pressed.set_value(true);
        intents.start.run(());
    };
    Effect::new(move |_| {
        if !show_start() && start_pressed.get_value() {
            start_pressed.set_value(false);
            set_timeout(
                move || {
                    if let Some(panel) = panel.try_get_untracked().flatten() {
                        focus_first(&panel, &[focus::Initial::Close.selector()]);
                    }
                },
                Duration::ZERO,
            );
        }
    });

    if take_focus {
        Effect::new(move |done: Option<bool>| {
            if done == Some(true) {
                return true;
            }
            let Some(panel) = panel.get() else {
                return false;
            };
            let target = session.with_untracked(|s| focus::Initial::for_session(s, can_start(s)));
            focus_first(
                &panel,
                &[target.selector(), focus::Initial::Close.selector()],
            );
            true
        });
    }
    Effect::new(move |_| {
        rows.track();
        if pinned.get_value() {
            // After this update is laid out, so the height includes the new turn.
            // The panel may be gone by the next frame (closed in the same task): a
            // disposed reference reads as nothing.
            request_animation_frame(move || {
                if let Some(log) = log.try_get_untracked().flatten() {
                    log.set_scroll_top(log.scroll_height());
                }
            });
        }
    });
    let on_scroll = move |_| {
        if let Some(log) = log.get_untracked() {
            pinned.set_value(log.scroll_top() + log.client_height() + 32 >= log.scroll_height());
        }
    };

    view! {
        <section
            part="panel"
            class="sn-panel"
            role="dialog"
            aria-labelledby="sn-title"
            data-testid="sn-panel"
            dir=messages.dir
            node_ref=panel
        >
            <header part="header" class="sn-header">
                // Ids are scoped to the widget's shadow root, so fixed ones cannot clash.
                <h2 class="sn-title" id="sn-title" data-testid="sn-agent-name">
                    {move || agent_name.get()}
                </h2>
                <button
                    type="button"
                    class="sn-close"
                    data-testid="sn-close"
                    aria-label=messages.close_label
                    title=messages.close_label
                    on:click=move |_| intents.close.run(())
                >
                    {icons::close()}
                </button>
            </header>
            <p part="status" class="sn-status" role="status" data-testid="sn-status" data-phase=phase_name>
                {status}
            </p>
            <Show when=has_call>
                <CallStatus signals=call messages />
            </Show>
            // The log region wraps the list: `role="log"` on the <ol> itself would take
            // its list semantics, leaving the turns as list items outside any list.
            <div
                part="messages"
                class="sn-transcript"
                role="log"
                aria-live="polite"
                aria-label=messages.transcript_label
                data-testid="sn-transcript"
                node_ref=log
                on:scroll=on_scroll
            >
                <ol class="sn-turns">
                    // Keyed by the turn's (or line's) id alone: a turn whose words grow is
                    // updated in place, not removed and announced again.
                    <For each=move || rows.get() key=|row| row.key.clone() let:row>
                        <TurnView
                            key=row.key
                            rows
                            agent_name=agent_name.get_untracked()
                            messages
                            resend=intents.call.resend
                        />
                    </For>
                </ol>
            </div>
            <Show when=has_call>
                <CallControls signals=call messages intents=intents.call running=Signal::derive(running) />
            </Show>
            <Show when=move || call.unavailable.get()>
                <p class="sn-notice sn-call-unavailable" role="status" data-testid="sn-call-unavailable">
                    {messages.voice.call_unavailable}
                </p>
            </Show>
            <Show when=thinking>
                <div
                    class="sn-thinking"
                    data-testid="sn-thinking"
                    role="status"
                    aria-label=move || messages.thinking_label(&agent_name.get())
                >
                    <span class="sn-dot" aria-hidden="true"></span>
                    <span class="sn-dot" aria-hidden="true"></span>
                    <span class="sn-dot" aria-hidden="true"></span>
                </div>
            </Show>
            <div class="sn-actions">
                <Show when=move || notice().is_some()>
                    <p class="sn-notice" role="alert" data-testid="sn-notice">
                        {move || notice().unwrap_or_default()}
                    </p>
                </Show>
                <Show when=running>
                    // Stays focusable while the end is on its way (aria-disabled), so the
                    // visitor's focus is not lost; the label says what is happening.
                    <button
                        type="button"
                        class="sn-button sn-end"
                        data-testid="sn-end"
                        aria-disabled=move || ending().then_some("true")
                        on:click=end
                    >
                        {move || if ending() { messages.ending } else { messages.end }}
                    </button>
                </Show>
                <Show when=over>
                    <FeedbackForm session draft messages on_send=intents.feedback />
                </Show>
                <Show when=show_start>
                    <button
                        type="button"
                        class="sn-button sn-primary sn-start"
                        data-testid="sn-start"
                        on:click=start
                    >
                        {start_label}
                    </button>
                </Show>
                <Show when=has_transcript>
                    <button
                        type="button"
                        class="sn-button sn-download"
                        data-testid="sn-download"
                        on:click=download
                    >
                        {messages.download}
                    </button>
                </Show>
            </div>
        </section>
    }
}

/// Focuses the first control inside `scope` matching one of `selectors`, in their order.
fn focus_first(scope: &web_sys::Element, selectors: &[&str]) {
    let control = selectors
        .iter()
        .find_map(|selector| scope.query_selector(selector).ok().flatten())
        .and_then(|control| control.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(control) = control {
        let _ = control.focus();
    }
}

/// Whether a start (or retry) button helps: no conversation is running and trying can work.
fn can_start(session: &Session) -> bool {
    match &session.phase {
        Phase::Idle => true,
        Phase::Error(error) => error.retryable(),
        Phase::Live(status) => status.is_final(),
        Phase::Connecting => false,
    }
}

/// One row of the transcript. It looks its row up by key in `rows`, so the text, the
/// interruption and a typed message's state update in place.
#[component]
fn TurnView(
    key: String,
    rows: Memo<Vec<Row>>,
    agent_name: String,
    messages: &'static Messages,
    resend: UnsyncCallback<u64>,
) -> impl IntoView {
    let first = rows
        .with_untracked(|rows| rows.iter().find(|row| row.key == key).cloned())
        .expect("a row is rendered for a key in the list");
    let row = Memo::new(move |_| {
        rows.with(|rows| rows.iter().find(|row| row.key == key).cloned())
            .unwrap_or_else(|| first.clone())
    });
    let initial = row.get_untracked();
    // Roles other than the visitor's (tools never reach the widget) read as the agent's.
    let role = match initial.role {
        Role::User => "user",
        Role::Agent | Role::Unknown => "agent",
    };
    let time = move || {
        row.with(|row| row.at.clone())
            .as_deref()
            .and_then(clock::parse_rfc3339)
            .map(|at| {
                let shown = clock::hh_mm(at, clock::local_offset_minutes(at));
                view! { <time class="sn-time" datetime=clock::iso_utc(at)>{shown}</time> }
            })
    };
    let text = move || row.with(|row| row.text.clone());
    let body = match initial.role {
        // What the visitor said is shown exactly as said, never read as Markdown.
        Role::User => view! { <p class="sn-text sn-plain" dir="auto">{text}</p> }.into_any(),
        // Each turn sets its own direction from its text: an English answer inside an
        // Arabic panel must not have its punctuation moved.
        Role::Agent | Role::Unknown => {
            let bubble = NodeRef::<html::Div>::new();
            Effect::new(move |_| {
                let text = text();
                if let Some(bubble) = bubble.get() {
                    bubble.set_text_content(None);
                    rich_text::render_into(&bubble, &text);
                }
            });
            view! { <div class="sn-text" dir="auto" node_ref=bubble></div> }.into_any()
        }
    };
    let interrupted = move || row.with(|row| row.interrupted);
    let send_state = move || row.with(|row| row.outgoing.map(|(_, state)| state));
    let note = move || send_state().and_then(|state| messages.send_state(state));
    let failed = move || send_state() == Some(SendState::Failed);
    let retry = move |_| {
        if let Some((id, _)) = row.with_untracked(|row| row.outgoing) {
            resend.run(id);
        }
    };
    view! {
        <li
            class="sn-turn"
            data-role=role
            data-testid="sn-turn"
            data-interrupted=move || interrupted().then_some("true")
            data-live=move || row.with(|row| row.live).then_some("true")
            data-final=move || row.with(|row| row.live && row.is_final).then_some("true")
            data-send=move || send_state().map(|state| format!("{state:?}").to_lowercase())
        >
            <div class="sn-meta">
                <span class="sn-speaker">{messages.speaker(initial.role, &agent_name)}</span>
                {time}
            </div>
            {body}
            {move || interrupted().then(|| view! { <span class="sn-interrupted">{messages.interrupted}</span> })}
            {move || note().map(|note| view! { <span class="sn-send-note" data-testid="sn-send-note">{note}</span> })}
            <Show when=failed>
                <button
                    type="button"
                    class="sn-button sn-resend"
                    data-testid="sn-resend"
                    on:click=retry
                >
                    {messages.voice.resend}
                </button>
            </Show>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::WidgetError;
    use speaknode_api::ConversationStatus;

    #[test]
    fn start_is_offered_when_nothing_runs_and_trying_can_help() {
        let with = |phase| Session {
            phase,
            ..Session::default()
        };
        assert!(can_start(&with(Phase::Idle)));
        assert!(can_start(&with(Phase::Live(ConversationStatus::Completed))));
        assert!(can_start(&with(Phase::Error(WidgetError::unreachable()))));
        assert!(!can_start(&with(Phase::Connecting)));
        assert!(!can_start(&with(Phase::Live(ConversationStatus::Active))));
    }
}
