//! The widget's view: a launcher and a conversation panel. Components stay thin: they read
//! the [`Session`] signal and call back into the driver; all decisions live in `session.rs`.
//!
//! Event handlers are attached to their elements directly (leptos' `delegation` feature is off),
//! which is what makes them fire inside a Shadow DOM; `tests/web.rs` proves it.

pub mod markdown;
mod rich_text;

use leptos::prelude::*;
use speaknode_api::{Rating, Role, Turn};

use crate::Mode;
use crate::driver::Driver;
use crate::i18n::Messages;
use crate::session::{Phase, Session};

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
    /// Which ways of talking are offered.
    #[allow(unused_variables)]
    mode: Mode,
    /// What the visitor can do.
    actions: Actions,
) -> impl IntoView {
    let on_start = UnsyncCallback::new(move |()| actions.start());
    let toggle = move |_| {
        let opening = !open.get_untracked();
        open.set(opening);
        // Opening an idle widget starts talking at once: that is what the click meant.
        if opening && session.with_untracked(|s| s.phase == Phase::Idle) {
            on_start.run(());
        }
    };

    view! {
        // The language is the widget's; the direction only the panel's, so the launcher keeps
        // to the page's corner whatever the widget's language.
        <div class="sn-widget" lang=messages.lang>
            <Show when=move || open.get()>
                <Panel session open messages on_start />
            </Show>
            <button
                type="button"
                part="launcher"
                class="sn-launcher"
                data-testid="sn-launcher"
                aria-label=messages.launcher_label
                aria-expanded=move || open.get().to_string()
                on:click=toggle
            >
                <svg class="sn-launcher-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
                    <path d="M12 15a3 3 0 0 0 3-3V6a3 3 0 1 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-2.08A7 7 0 0 0 19 12h-2Z" />
                </svg>
            </button>
        </div>
    }
}

#[component]
fn Panel(
    session: RwSignal<Session>,
    open: RwSignal<bool>,
    messages: &'static Messages,
    on_start: UnsyncCallback<()>,
) -> impl IntoView {
    let agent_name = move || {
        session
            .with(|s| s.agent_name.clone())
            .unwrap_or_else(|| messages.default_agent_name.into())
    };
    let status = move || session.with(|s| messages.phase(&s.phase));
    let phase_name = move || {
        session.with(|s| match &s.phase {
            Phase::Idle => "idle".to_owned(),
            Phase::Connecting => "connecting".to_owned(),
            Phase::Live(status) => format!("{status:?}").to_lowercase(),
            Phase::Error(error) => format!("error {}", error.code),
        })
    };
    // A start (or retry) button shows whenever no conversation is running and trying can help.
    let can_start = move || {
        session.with(|s| match &s.phase {
            Phase::Idle => true,
            Phase::Error(error) => error.retryable(),
            Phase::Live(status) => status.is_final(),
            Phase::Connecting => false,
        })
    };
    let start_label = move || {
        session.with(|s| match s.phase {
            Phase::Error(_) => messages.retry,
            _ => messages.start,
        })
    };
    let turns = move || session.with(|s| s.transcript.turns().to_vec());

    view! {
        <section
            part="panel"
            class="sn-panel"
            role="dialog"
            aria-label=messages.panel_label
            data-testid="sn-panel"
            dir=messages.dir
        >
            <header part="header" class="sn-header">
                <h2 class="sn-title" data-testid="sn-agent-name">{agent_name}</h2>
                <button
                    type="button"
                    class="sn-close"
                    aria-label=messages.close_label
                    on:click=move |_| open.set(false)
                >
                    <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">
                        <path d="M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6Z" />
                    </svg>
                </button>
            </header>
            <p class="sn-status" role="status" data-testid="sn-status" data-phase=phase_name>
                {status}
            </p>
            <ol
                part="messages"
                class="sn-transcript"
                role="log"
                aria-live="polite"
                aria-label=messages.transcript_label
                data-testid="sn-transcript"
            >
                <For each=turns key=|turn| (turn.id.clone(), turn.text.clone()) let:turn>
                    <TurnView turn agent_name=agent_name() messages />
                </For>
            </ol>
            <Show when=can_start>
                <button
                    type="button"
                    class="sn-start"
                    data-testid="sn-start"
                    on:click=move |_| on_start.run(())
                >
                    {start_label}
                </button>
            </Show>
        </section>
    }
}

#[component]
fn TurnView(turn: Turn, agent_name: String, messages: &'static Messages) -> impl IntoView {
    let role = match turn.role {
        Role::Agent | Role::Unknown => "agent",
        Role::User => "user",
    };
    view! {
        <li class="sn-turn" data-role=role data-testid="sn-turn">
            <span class="sn-speaker">{messages.speaker(turn.role, &agent_name)}</span>
            // Each turn sets its own direction from its text: an English answer inside an
            // Arabic panel must not have its punctuation moved.
            <div class="sn-text" dir="auto">
                {match turn.role {
                    // What the visitor said is shown exactly as said, never read as Markdown.
                    Role::User => turn.text.into_any(),
                    Role::Agent | Role::Unknown => rich_text::rich_text(&turn.text).into_any(),
                }}
                {turn.interrupted.then(|| view! { <span class="sn-interrupted">" " {messages.interrupted}</span> })}
            </div>
        </li>
    }
}
