//! The widget's DOM events for the host page: `speaknode:status`, `speaknode:message`,
//! `speaknode:error`, `speaknode:ended`, `speaknode:open` and `speaknode:close`. They bubble
//! and are composed, so they cross the shadow boundary and reach listeners on the
//! `<speaknode-widget>` element and on the document.

use leptos::prelude::*;
use serde_json::{Value, json};
use speaknode_api::Role;
use wasm_bindgen::JsValue;

use crate::i18n::Messages;
use crate::session::{Phase, Session, WidgetError};

/// What the last events told the page, so each change is reported once.
#[derive(Debug, Clone, PartialEq)]
struct Told {
    phase: Phase,
    conversation_id: Option<String>,
    /// Ids of the turns already told, by identity: a late turn inserted earlier in the
    /// transcript is told too, and no turn twice.
    told_turns: Vec<String>,
    open: bool,
    notice: Option<WidgetError>,
}

/// Reports every change of `session` and `open` as DOM events dispatched on `target`.
pub fn report(
    target: web_sys::HtmlElement,
    session: RwSignal<Session>,
    open: RwSignal<bool>,
    messages: &'static Messages,
) {
    Effect::new(move |told: Option<Told>| {
        let now = session.with(|s| Told {
            phase: s.phase.clone(),
            conversation_id: s.conversation_id.clone(),
            told_turns: Vec::new(),
            open: open.get(),
            notice: s.notice,
        });
        let mut before = told.unwrap_or(Told {
            phase: Phase::Idle,
            conversation_id: None,
            told_turns: Vec::new(),
            open: false,
            notice: None,
        });
        // Another conversation's turns are all new.
        if now.conversation_id != before.conversation_id {
            before.told_turns.clear();
        }
        if now.open != before.open {
            let name = if now.open { "open" } else { "close" };
            dispatch(&target, name, &json!({}));
        }
        if now.phase != before.phase {
            match &now.phase {
                Phase::Idle => {}
                Phase::Connecting => {
                    dispatch(&target, "status", &json!({ "status": "Connecting" }));
                }
                Phase::Live(status) => {
                    let status = format!("{status:?}");
                    dispatch(&target, "status", &json!({ "status": status }));
                }
                Phase::Error(error) => {
                    let detail =
                        json!({ "code": error.code, "message": messages.error(error.kind) });
                    dispatch(&target, "error", &detail);
                }
            }
        }
        // A failed action (ending, rating) leaves the conversation as it was, but the page
        // hears about it like any other error.
        if let Some(notice) = now.notice
            && now.notice != before.notice
        {
            let detail = json!({ "code": notice.code, "message": messages.error(notice.kind) });
            dispatch(&target, "error", &detail);
        }
        let mut now = now;
        now.told_turns = std::mem::take(&mut before.told_turns);
        {
            let told = &mut now.told_turns;
            session.with(|s| {
                for turn in s.transcript.turns() {
                    if told.contains(&turn.id) {
                        continue;
                    }
                    told.push(turn.id.clone());
                    let role = match turn.role {
                        Role::Agent | Role::Unknown => "agent",
                        Role::User => "user",
                    };
                    let detail =
                        json!({ "id": turn.id, "role": role, "text": turn.text, "at": turn.at });
                    dispatch(&target, "message", &detail);
                }
            });
        }
        // The end comes last, after the turns that led to it.
        if now.phase != before.phase
            && let Phase::Live(status) = &now.phase
            && status.is_final()
        {
            dispatch(
                &target,
                "ended",
                &json!({ "status": format!("{status:?}") }),
            );
        }
        now
    });
}

/// Dispatches `speaknode:{name}` with `detail` as a plain object; a page that broke
/// `CustomEvent` loses the event, never the widget.
fn dispatch(target: &web_sys::HtmlElement, name: &str, detail: &Value) {
    let detail = js_sys::JSON::parse(&detail.to_string()).unwrap_or(JsValue::NULL);
    let init = web_sys::CustomEventInit::new();
    init.set_bubbles(true);
    init.set_composed(true);
    init.set_detail(&detail);
    if let Ok(event) =
        web_sys::CustomEvent::new_with_event_init_dict(&format!("speaknode:{name}"), &init)
    {
        let _ = target.dispatch_event(&event);
    }
}
