//! The call's part of the panel: its status (the agent listening, thinking or speaking),
//! the two level meters, mute, the microphone picker, "Enable audio", microphone notices,
//! the message field, and the transcript rows that merge live captions with history.
//!
//! The components only render the [`Call`] and hand the visitor's requests to the driver;
//! every rule is the call's (`voice::call`), the captions' (`voice::captions`) or [`rows`]
//! here, which is plain and tested natively.

use leptos::html;
use leptos::prelude::*;
use speaknode_api::{Role, Turn};

use crate::driver::CallSignals;
use crate::i18n::Messages;
use crate::voice::audio::Level;
use crate::voice::call::{Call, CallFailure, CallPhase, SendState};
use crate::voice::captions::{LineKey, Shown};

/// The visitor's requests about the call, as copyable callbacks.
#[derive(Clone, Copy)]
pub(crate) struct CallIntents {
    pub send: UnsyncCallback<String>,
    pub resend: UnsyncCallback<u64>,
    pub set_mic: UnsyncCallback<bool>,
    pub switch_mic: UnsyncCallback<String>,
    /// Runs inside the click: the browser unblocks playback only then.
    pub enable_audio: UnsyncCallback<()>,
    pub retry: UnsyncCallback<()>,
}

/// One row of the transcript as the panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Stable across updates of the same turn or line, so a growing caption updates its
    /// row in place instead of being announced again as a new one.
    pub key: String,
    pub role: Role,
    pub text: String,
    pub at: Option<String>,
    pub interrupted: bool,
    /// Heard or typed in the call and not in the stored history (yet).
    pub live: bool,
    /// The words will not change any more (always true for history).
    pub is_final: bool,
    /// A message the visitor typed, with where it is.
    pub outgoing: Option<(u64, SendState)>,
}

/// The transcript: the stored `history`, merged with the call's live lines when there is a
/// call (`Call::transcript` drops the lines history already holds).
pub fn rows(history: &[Turn], call: Option<&Call>) -> Vec<Row> {
    let shown = match call {
        Some(call) => call.transcript(history),
        None => history.iter().cloned().map(Shown::History).collect(),
    };
    shown
        .into_iter()
        .map(|shown| match shown {
            Shown::History(turn) => Row {
                key: format!("turn:{}", turn.id),
                role: turn.role,
                text: turn.text,
                at: turn.at,
                interrupted: turn.interrupted,
                live: false,
                is_final: true,
                outgoing: None,
            },
            Shown::Live(line) => {
                let (key, outgoing) = match &line.key {
                    // The role is part of the key: a line heard before the agent's join
                    // event may turn out to be the agent's, and then is a different row.
                    LineKey::Stream { sender, id } => {
                        (format!("live:{sender}:{id}:{:?}", line.role), None)
                    }
                    LineKey::Local(id) => (
                        format!("typed:{id}"),
                        call.and_then(|call| call.outgoing(*id))
                            .map(|message| (message.id, message.state)),
                    ),
                };
                Row {
                    key,
                    role: line.role,
                    text: line.text,
                    at: None,
                    interrupted: false,
                    live: true,
                    is_final: line.is_final,
                    outgoing,
                }
            }
        })
        .collect()
}

/// A name for the call's phase, for styling and tests (`data-call`).
fn phase_name(phase: &CallPhase) -> &'static str {
    match phase {
        CallPhase::Idle => "idle",
        CallPhase::Joining => "joining",
        CallPhase::Connected { agent: None } => "waiting",
        CallPhase::Connected { agent: Some(_) } => "connected",
        CallPhase::Reconnecting => "reconnecting",
        CallPhase::Ended => "ended",
        CallPhase::Failed(_) => "failed",
    }
}

/// How many of a meter's five bars are lit at `level`.
fn bars_lit(level: u8) -> u8 {
    match level {
        0 => 0,
        1..=20 => 1,
        21..=40 => 2,
        41..=60 => 3,
        61..=80 => 4,
        _ => 5,
    }
}

/// The call's line in the status area: the two meters and, in words, where the call is
/// and what the agent does (listening, thinking, speaking).
#[component]
pub fn CallStatus(signals: CallSignals, messages: &'static Messages) -> impl IntoView {
    let call = signals.call;
    let status = move || {
        call.with(|c| {
            c.as_ref()
                .map(|c| messages.call_status(c))
                .unwrap_or_default()
        })
    };
    let phase = move || call.with(|c| c.as_ref().map_or("idle", |c| phase_name(&c.phase())));
    let agent_state = move || {
        call.with(|c| match c.as_ref().map(Call::phase) {
            Some(CallPhase::Connected { agent: Some(state) }) => {
                Some(format!("{state:?}").to_lowercase())
            }
            _ => None,
        })
    };
    view! {
        <div class="sn-call-line" data-call=phase>
            // The meters are for the eyes; the state beside them is what is announced.
            <div class="sn-meters" aria-hidden="true">
                <Meter level=Signal::derive(move || signals.levels.get().agent) source="agent" />
                <Meter level=Signal::derive(move || signals.levels.get().mic) source="mic" />
            </div>
            <p
                class="sn-call-status"
                role="status"
                data-testid="sn-call-status"
                data-agent=agent_state
            >
                {status}
            </p>
        </div>
    }
}

/// The call's controls, shown while the conversation has a call.
#[component]
pub fn CallControls(
    signals: CallSignals,
    messages: &'static Messages,
    intents: CallIntents,
    /// Whether the conversation still runs (typing makes sense).
    running: Signal<bool>,
) -> impl IntoView {
    let voice = &messages.voice;
    let call = signals.call;
    let with_call = move |read: fn(&Call) -> bool| call.with(|c| c.as_ref().is_some_and(read));
    let phase = move || call.with(|c| c.as_ref().map_or("idle", |c| phase_name(&c.phase())));
    let failed = move || with_call(|c| matches!(c.phase(), CallPhase::Failed(_)));
    let replaced =
        move || with_call(|c| matches!(c.phase(), CallPhase::Failed(CallFailure::Replaced)));
    let live = move || with_call(Call::is_live);
    let mic_on = move || with_call(|c| c.mic().on);
    let blocked = move || with_call(Call::playback_blocked);
    let notice = move || {
        call.with(|c| {
            c.as_ref()
                .and_then(|c| c.mic().notice)
                .map(|error| messages.mic_notice(error))
        })
    };
    let devices = move || {
        call.with(|c| {
            c.as_ref()
                .map(|c| (c.mic().devices.clone(), c.mic().device.clone()))
                .unwrap_or_default()
        })
    };
    let toggle_mic = move |_| intents.set_mic.run(!mic_on());
    let pick = move |event: web_sys::Event| {
        let device = event_target_value(&event);
        if !device.is_empty() {
            intents.switch_mic.run(device);
        }
    };

    view! {
        <div part="controls" class="sn-controls" data-testid="sn-call" data-call=phase>
            <Show when=move || notice().is_some()>
                <p class="sn-mic-notice" role="status" data-testid="sn-mic-notice">
                    {move || notice().unwrap_or_default()}
                </p>
            </Show>
            <div class="sn-call-buttons">
                <Show when=blocked>
                    <button
                        type="button"
                        class="sn-button sn-primary"
                        data-testid="sn-enable-audio"
                        on:click=move |_| intents.enable_audio.run(())
                    >
                        {voice.enable_audio}
                    </button>
                </Show>
                <Show when=live>
                    // A toggle keeps one name; aria-pressed says whether it is on.
                    <button
                        type="button"
                        class="sn-button sn-mute"
                        data-testid="sn-mute"
                        aria-pressed=move || (!mic_on()).to_string()
                        on:click=toggle_mic
                    >
                        {voice.mute}
                    </button>
                </Show>
                <Show when=move || live() && !devices().0.is_empty()>
                    <select
                        class="sn-mic-select"
                        data-testid="sn-mic-select"
                        aria-label=voice.microphone
                        on:change=pick
                    >
                        {move || {
                            let (devices, chosen) = devices();
                            devices
                                .into_iter()
                                .enumerate()
                                .map(|(i, device)| {
                                    // Labels stay empty until the visitor allowed the microphone.
                                    let label = if device.label.trim().is_empty() {
                                        format!("{} {}", voice.microphone, i + 1)
                                    } else {
                                        device.label
                                    };
                                    let selected = chosen.as_deref() == Some(device.id.as_str());
                                    view! { <option value=device.id selected=selected>{label}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </Show>
                <Show when=failed>
                    <button
                        type="button"
                        class="sn-button sn-primary"
                        data-testid="sn-call-retry"
                        on:click=move |_| intents.retry.run(())
                    >
                        {move || if replaced() { voice.continue_here } else { messages.retry }}
                    </button>
                </Show>
            </div>
            <Show when=move || running.get()>
                <Composer messages send=intents.send />
            </Show>
        </div>
    }
}

/// One level meter: five bars, lit by attribute (no inline style: the page's CSP may
/// forbid it), with the reading on `data-level` and `data-peak-hz`.
#[component]
fn Meter(level: Signal<Level>, source: &'static str) -> impl IntoView {
    let bar = move |n: u8| {
        view! {
            <span class="sn-bar" data-on=move || (bars_lit(level.get().level) >= n).then_some("")></span>
        }
    };
    view! {
        <span
            part="meter"
            class="sn-meter"
            data-testid=format!("sn-meter-{source}")
            data-source=source
            data-level=move || level.get().level.to_string()
            data-peak-hz=move || level.get().peak_hz.to_string()
        >
            {(1..=5).map(bar).collect_view()}
        </span>
    }
}

/// The message field: Enter sends, Shift+Enter starts a new line. What is typed goes into
/// the call's outbox, which keeps it until it is sent.
#[component]
fn Composer(messages: &'static Messages, send: UnsyncCallback<String>) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let field = NodeRef::<html::Textarea>::new();
    let submit = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        send.run(text);
        draft.set(String::new());
        // The property, not the attribute: the field shows what was typed until cleared.
        if let Some(field) = field.get_untracked() {
            field.set_value("");
        }
    };
    let on_keydown = move |event: web_sys::KeyboardEvent| {
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
            event.prevent_default();
            submit();
        }
    };
    view! {
        <div class="sn-composer">
            <textarea
                part="input"
                class="sn-message"
                data-testid="sn-message"
                rows="1"
                aria-label=messages.voice.message_label
                placeholder=messages.voice.message_label
                dir="auto"
                node_ref=field
                on:input=move |event| draft.set(event_target_value(&event))
                on:keydown=on_keydown
            ></textarea>
            <button
                type="button"
                class="sn-button sn-primary sn-send-message"
                data-testid="sn-send-message"
                on:click=move |_| submit()
            >
                {messages.voice.send}
            </button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::call::{Effect, Input};
    use crate::voice::{AgentState, MicRequest, TextChunk};
    use speaknode_api::VoiceGrant;

    fn turn(id: &str, role: Role, text: &str) -> Turn {
        Turn {
            id: id.into(),
            role,
            text: text.into(),
            at: Some("2026-11-29T08:30:01Z".into()),
            interrupted: false,
        }
    }

    fn connected() -> Call {
        let mut call = Call::default();
        let effects = call.handle(Input::Start {
            grant: VoiceGrant {
                url: "wss://lk.invalid".into(),
                token: "t".into(),
            },
            mic: MicRequest {
                enabled: true,
                device_id: None,
            },
        });
        let attempt = effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Connect { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .expect("a connect");
        call.handle(Input::Joined {
            attempt,
            result: Ok(()),
        });
        call.handle(Input::AgentJoined("agent".into()));
        call.handle(Input::AgentState(AgentState::Listening));
        call
    }

    fn agent_says(call: &mut Call, text: &str, last: bool) {
        call.handle(Input::Text(TextChunk {
            topic: "lk.transcription".into(),
            stream_id: "s1".into(),
            sender: "agent".into(),
            attributes: vec![("lk.segment_id".into(), "SG_1".into())],
            text: text.into(),
            done: last,
        }));
    }

    #[test]
    fn without_a_call_the_rows_are_the_history() {
        let history = [turn("t1", Role::Agent, "Hello")];
        let rows = rows(&history, None);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, "turn:t1");
        assert!(!rows[0].live && rows[0].is_final);
    }

    #[test]
    fn a_growing_caption_keeps_its_key_and_goes_once_history_has_it() {
        let mut call = connected();
        agent_says(&mut call, "Hello", false);
        let first = rows(&[], Some(&call));
        agent_says(&mut call, " there", true);
        let second = rows(&[], Some(&call));
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].key, second[0].key,
            "the same row, updated in place"
        );
        assert_eq!(second[0].text, "Hello there");
        assert!(!first[0].is_final && second[0].is_final);
        let stored = rows(&[turn("t9", Role::Agent, "Hello there")], Some(&call));
        assert_eq!(stored.len(), 1, "history absorbs the caption");
        assert_eq!(stored[0].key, "turn:t9");
    }

    #[test]
    fn typed_messages_carry_their_send_state() {
        let mut call = connected();
        call.handle(Input::Send("Hi".into()));
        let shown = rows(&[], Some(&call));
        assert_eq!(shown[0].key, "typed:1");
        assert_eq!(shown[0].role, Role::User);
        assert_eq!(shown[0].outgoing, Some((1, SendState::Sending)));
    }

    #[test]
    fn meters_light_a_bar_per_fifth() {
        assert_eq!(bars_lit(0), 0);
        assert_eq!(bars_lit(1), 1);
        assert_eq!(bars_lit(50), 3);
        assert_eq!(bars_lit(100), 5);
    }
}
