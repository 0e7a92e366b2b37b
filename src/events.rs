//! The widget's DOM events for the host page: `speaknode:status`, `speaknode:message`,
//! `speaknode:error`, `speaknode:ended`, `speaknode:open` and `speaknode:close`. They bubble
//! and are composed, so they cross the shadow boundary and reach listeners on the
//! `<speaknode-widget>` element and on the document.

use js_sys::{Array, Object};
use leptos::prelude::*;
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
            dispatch(&target, name, &[]);
        }
        if now.phase != before.phase {
            match &now.phase {
                Phase::Idle => {}
                Phase::Connecting => {
                    dispatch(&target, "status", &[("status", "Connecting".into())]);
                }
                Phase::Live(status) => {
                    let status = format!("{status:?}");
                    dispatch(&target, "status", &[("status", status.into())]);
                }
                Phase::Error(error) => {
                    dispatch(&target, "error", &error_detail(error, messages));
                }
            }
        }
        // A failed action (ending, rating) leaves the conversation as it was, but the page
        // hears about it like any other error.
        if let Some(notice) = now.notice
            && now.notice != before.notice
        {
            dispatch(&target, "error", &error_detail(&notice, messages));
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
                    let at = turn.at.as_deref().map_or(JsValue::NULL, JsValue::from_str);
                    let detail = [
                        ("id", turn.id.as_str().into()),
                        ("role", role.into()),
                        ("text", turn.text.as_str().into()),
                        ("at", at),
                    ];
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
                &[("status", format!("{status:?}").into())],
            );
        }
        now
    });
}

/// An error's detail: its stable code and the message the visitor sees.
fn error_detail(error: &WidgetError, messages: &Messages) -> [(&'static str, JsValue); 2] {
    [
        ("code", error.code.into()),
        ("message", messages.error(error.kind).into()),
    ]
}

/// Dispatches `speaknode:{name}` with `detail` as a plain object of those fields (own data
/// properties, as `Object.fromEntries` makes them: a setter a page put on
/// `Object.prototype` never runs); a page that broke `CustomEvent` loses the event, never
/// the widget.
fn dispatch(target: &web_sys::HtmlElement, name: &str, fields: &[(&str, JsValue)]) {
    let entries: Array = fields
        .iter()
        .map(|(key, value)| Array::of2(&JsValue::from_str(key), value))
        .collect();
    let detail = Object::from_entries(&entries).map_or(JsValue::NULL, JsValue::from);
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
