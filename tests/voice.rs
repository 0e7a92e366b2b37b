//! A conversation with a call, as a visitor meets it, in headless Chromium: joining, the
//! agent's state in words, live captions merged with the stored history, typed messages
//! (sent, failed and retried), microphone notices, blocked playback, mute, a refused join
//! and destroy. The BFF is the scripted one of the other browser tests; the room is
//! [`ScriptedVoice`], injected through the widget's transport factory.
#![cfg(target_arch = "wasm32")]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use speaknode_api::{ConversationStatus, Role, VoiceGrant};
use speaknode_widget::client::StreamItem;
use speaknode_widget::driver::VoiceFactory;
use speaknode_widget::i18n::Messages;
use speaknode_widget::resume::{self, Saved};
use speaknode_widget::voice::{
    AgentState, Device, LinkState, MicError, VoiceEvent, VoiceTransport,
};
use speaknode_widget::{Mode, Options, WidgetHandle, mount_with_voice};
use support::voice::{AGENT_IDENTITY, ScriptedVoice};
use support::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{HtmlElement, ShadowRoot};

wasm_bindgen_test_configure!(run_in_browser);

/// The English words, which the tests compare with what the visitor sees.
fn en() -> &'static Messages {
    Messages::for_lang(None)
}

fn grant() -> VoiceGrant {
    VoiceGrant {
        url: "wss://lk.invalid".into(),
        token: "join-token-0".into(),
    }
}

/// A BFF whose conversation has a call: pending at start, then active with the greeting.
fn backend_with_call() -> Rc<ScriptedBackend> {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    *backend.voice.borrow_mut() = Some(grant());
    backend
}

/// The transports a widget made, in order: `first` (set up by the test) and then fresh ones.
struct Rooms {
    made: Rc<RefCell<Vec<Rc<ScriptedVoice>>>>,
}

impl Rooms {
    fn factory(first: Rc<ScriptedVoice>) -> (Self, VoiceFactory) {
        let made: Rc<RefCell<Vec<Rc<ScriptedVoice>>>> = Rc::default();
        let pending = RefCell::new(Some(first));
        let list = Rc::clone(&made);
        let factory: VoiceFactory = Rc::new(move || {
            let transport = pending
                .borrow_mut()
                .take()
                .unwrap_or_else(ScriptedVoice::new);
            list.borrow_mut().push(Rc::clone(&transport));
            transport as Rc<dyn VoiceTransport>
        });
        (Self { made }, factory)
    }

    fn count(&self) -> usize {
        self.made.borrow().len()
    }
}

struct Mounted {
    _host: HtmlElement,
    root: ShadowRoot,
    widget: WidgetHandle,
    rooms: Rooms,
}

fn mount_call(
    agent_id: &str,
    backend: Rc<ScriptedBackend>,
    room: Rc<ScriptedVoice>,
    mode: Mode,
) -> Mounted {
    let (host, root, container) = shadow_host();
    let (rooms, factory) = Rooms::factory(room);
    let options = Options {
        mode,
        ..options(agent_id, "https://bff.invalid")
    };
    let widget = mount_with_voice(container, backend, Some(factory), options, FAST);
    Mounted {
        _host: host,
        root,
        widget,
        rooms,
    }
}

fn call_status(root: &ShadowRoot) -> String {
    text(root, "sn-call-status")
}

/// Opens the widget with the launcher (the click that starts the conversation and the
/// call) and waits until the agent listens.
async fn open_and_listen(root: &ShadowRoot) {
    find(root, "sn-launcher").expect("launcher").click();
    until("the agent listening", || {
        call_status(root) == en().voice.agent_listening
    })
    .await;
}

/// The transcript rows' `(text, data-live, data-final)`.
fn rows(root: &ShadowRoot) -> Vec<(String, bool, bool)> {
    let rows = root
        .query_selector_all("[data-testid=\"sn-turn\"]")
        .expect("query");
    (0..rows.length())
        .filter_map(|i| rows.item(i))
        .map(|node| {
            let element: web_sys::Element = node.unchecked_into();
            let text = element
                .query_selector(".sn-text")
                .ok()
                .flatten()
                .and_then(|text| text.text_content())
                .unwrap_or_default();
            (
                text,
                element.has_attribute("data-live"),
                element.has_attribute("data-final"),
            )
        })
        .collect()
}

fn row_with(root: &ShadowRoot, words: &str) -> Option<web_sys::Element> {
    let rows = root
        .query_selector_all("[data-testid=\"sn-turn\"]")
        .expect("query");
    (0..rows.length())
        .filter_map(|i| rows.item(i))
        .map(|node| node.unchecked_into::<web_sys::Element>())
        .find(|row| row.text_content().unwrap_or_default().contains(words))
}

/// Types into the message field and sends with Enter, as a visitor does.
fn type_and_enter(root: &ShadowRoot, words: &str) {
    type_into(root, "sn-message", words);
    find(root, "sn-message")
        .expect("the message field")
        .focus()
        .expect("focus");
    assert!(
        !press(root, "Enter", false),
        "Enter sends instead of adding a line"
    );
}

#[wasm_bindgen_test]
async fn the_call_joins_and_its_status_follows_the_agent_state() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    // The room answers only when the test says so, so every step can be seen.
    room.hold_connects.set(true);
    *room.auto_agent.borrow_mut() = None;
    // The call's join timer (20 s) must not run out while the test watches; the token's
    // renewal timer is as long and may wait too.
    backend.endless_waits_over.set(10_000);
    let m = mount_call("voice-states", backend, Rc::clone(&room), Mode::Hybrid);
    find(&m.root, "sn-launcher").expect("launcher").click();
    until("joining", || call_status(&m.root) == en().voice.joining).await;
    assert_eq!(
        attribute(&m.root, "sn-call", "data-call").as_deref(),
        Some("joining")
    );
    assert_eq!(
        attribute(&m.root, "sn-call-status", "role").as_deref(),
        Some("status"),
        "the state is announced"
    );
    let connects = room.connects.borrow().clone();
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].0, grant(), "joined with the start's grant");
    assert!(connects[0].1.enabled, "hybrid joins with the microphone on");

    room.push(VoiceEvent::Link(LinkState::Connected));
    until("waiting for the agent", || {
        call_status(&m.root) == en().voice.waiting_for_agent
    })
    .await;
    room.agent_joins(AGENT_IDENTITY);
    until("the agent getting ready", || {
        call_status(&m.root) == en().voice.agent_initializing
    })
    .await;
    for (state, words, name) in [
        (
            AgentState::Listening,
            en().voice.agent_listening,
            "listening",
        ),
        (AgentState::Thinking, en().voice.agent_thinking, "thinking"),
        (AgentState::Speaking, en().voice.agent_speaking, "speaking"),
    ] {
        room.agent_state(state);
        until(words, || call_status(&m.root) == words).await;
        assert_eq!(
            attribute(&m.root, "sn-call-status", "data-agent").as_deref(),
            Some(name)
        );
    }
    // The meters are decorative, and say their reading for tests and themes.
    let meters = find(&m.root, "sn-meter-agent")
        .and_then(|meter| meter.parent_element())
        .expect("the meters");
    assert_eq!(meters.get_attribute("aria-hidden").as_deref(), Some("true"));
    for meter in ["sn-meter-agent", "sn-meter-mic"] {
        assert_eq!(
            attribute(&m.root, meter, "data-level").as_deref(),
            Some("0")
        );
        assert_eq!(
            attribute(&m.root, meter, "data-peak-hz").as_deref(),
            Some("0")
        );
        assert_eq!(attribute(&m.root, meter, "part").as_deref(), Some("meter"));
    }
    assert_eq!(
        attribute(&m.root, "sn-call", "part").as_deref(),
        Some("controls")
    );
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn captions_grow_in_place_finalise_and_never_duplicate_the_stored_turn() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call(
        "voice-captions",
        backend.clone(),
        Rc::clone(&room),
        Mode::Hybrid,
    );
    open_and_listen(&m.root).await;
    until("the greeting", || {
        turn_texts(&m.root).contains(&GREETING.to_owned())
    })
    .await;

    room.agent_says("TR_1", "We open", false);
    until("the caption", || row_with(&m.root, "We open").is_some()).await;
    let caption = row_with(&m.root, "We open").expect("the caption row");
    assert!(caption.has_attribute("data-live"));
    assert!(!caption.has_attribute("data-final"), "still being spoken");
    room.agent_says("TR_1", " at nine.", true);
    until("the finished caption", || {
        rows(&m.root).contains(&("We open at nine.".to_owned(), true, true))
    })
    .await;
    let finished = row_with(&m.root, "We open at nine.").expect("the caption row");
    assert!(
        finished.is_same_node(Some(&caption)),
        "the growing caption is the same row, updated in place, not a new one announced again"
    );

    // The visitor's interim results replace each other in one line.
    room.visitor_says("ST_1", "SG_u1", "and on sun", false);
    room.visitor_says("ST_2", "SG_u1", "And on Sundays?", true);
    until("the visitor's line", || {
        rows(&m.root).contains(&("And on Sundays?".to_owned(), true, true))
    })
    .await;
    assert!(row_with(&m.root, "and on sun").is_none());

    // The platform stores both turns (with its own ids): each shows once.
    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Active,
        vec![
            greeting(),
            turn("item_2", Role::Agent, "We open at nine.", 5),
            turn("item_3", Role::User, "And on Sundays?", 7),
        ],
    )));
    until("the stored turns", || {
        rows(&m.root).iter().all(|(_, live, _)| !live) && rows(&m.root).len() == 3
    })
    .await;
    assert_eq!(
        turn_texts(&m.root),
        [GREETING, "We open at nine.", "And on Sundays?"]
    );
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_typed_message_goes_to_the_agent_and_shows_in_the_transcript() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-chat", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    let field = find(&m.root, "sn-message").expect("the message field");
    assert_eq!(field.get_attribute("part").as_deref(), Some("input"));
    assert_eq!(
        field.get_attribute("aria-label").as_deref(),
        Some(en().voice.message_label)
    );

    type_into(&m.root, "sn-message", "Two lines");
    field.focus().expect("focus");
    assert!(press(&m.root, "Enter", true), "Shift+Enter is a new line");
    assert!(room.chat_attempts.borrow().is_empty());

    type_and_enter(&m.root, "What are your hours?");
    until("the chat", || room.chats.borrow().len() == 1).await;
    assert_eq!(*room.chats.borrow(), ["What are your hours?"]);
    until("the typed line", || {
        rows(&m.root).contains(&("What are your hours?".to_owned(), true, true))
    })
    .await;
    let area: web_sys::HtmlTextAreaElement = field.unchecked_into();
    assert_eq!(
        area.value(),
        "",
        "the field is cleared once the text is in the outbox"
    );

    // The Send button does the same.
    type_into(&m.root, "sn-message", "Thanks");
    find(&m.root, "sn-send-message").expect("send").click();
    until("the second chat", || room.chats.borrow().len() == 2).await;
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_message_typed_while_joining_waits_and_goes_out_once_joined() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    room.hold_connects.set(true);
    backend.endless_waits_over.set(10_000);
    let m = mount_call("voice-queued", backend, Rc::clone(&room), Mode::Hybrid);
    find(&m.root, "sn-launcher").expect("launcher").click();
    until("joining", || call_status(&m.root) == en().voice.joining).await;
    type_and_enter(&m.root, "Hello?");
    until("the queued line", || {
        text(&m.root, "sn-send-note") == en().voice.message_queued
    })
    .await;
    assert!(
        room.chat_attempts.borrow().is_empty(),
        "not sent before the room is joined"
    );
    room.push(VoiceEvent::Link(LinkState::Connected));
    until("the chat", || room.chats.borrow().len() == 1).await;
    until("no note once sent", || {
        find(&m.root, "sn-send-note").is_none()
    })
    .await;
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn the_call_speaks_arabic_right_to_left() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let (_host, root, container) = shadow_host();
    let (_rooms, factory) = Rooms::factory(Rc::clone(&room));
    let options = Options {
        lang: Some("ar".into()),
        ..options("voice-arabic", "https://bff.invalid")
    };
    let mut widget = mount_with_voice(container, backend, Some(factory), options, FAST);
    let ar = Messages::for_lang(Some("ar"));
    find(&root, "sn-launcher").expect("launcher").click();
    until("listening, in Arabic", || {
        text(&root, "sn-call-status") == ar.voice.agent_listening
    })
    .await;
    assert_eq!(attribute(&root, "sn-panel", "dir").as_deref(), Some("rtl"));
    assert_eq!(
        attribute(&root, "sn-message", "aria-label").as_deref(),
        Some(ar.voice.message_label)
    );
    assert_eq!(text(&root, "sn-mute"), ar.voice.mute);
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_message_that_fails_to_send_stays_with_a_retry() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    room.failing_sends.set(1);
    let m = mount_call("voice-resend", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    type_and_enter(&m.root, "Is anyone there?");
    until("the failure", || find(&m.root, "sn-resend").is_some()).await;
    let row = row_with(&m.root, "Is anyone there?").expect("the text is still shown");
    assert_eq!(row.get_attribute("data-send").as_deref(), Some("failed"));
    assert_eq!(text(&m.root, "sn-send-note"), en().voice.message_failed);
    assert!(room.chats.borrow().is_empty());

    find(&m.root, "sn-resend").expect("retry").click();
    until("the resend", || room.chats.borrow().len() == 1).await;
    assert_eq!(*room.chats.borrow(), ["Is anyone there?"]);
    until("sent", || {
        row_with(&m.root, "Is anyone there?")
            .and_then(|row| row.get_attribute("data-send"))
            .as_deref()
            == Some("sent")
    })
    .await;
    assert!(find(&m.root, "sn-resend").is_none());
    assert_eq!(
        rows(&m.root)
            .iter()
            .filter(|(t, ..)| t == "Is anyone there?")
            .count(),
        1
    );
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_denied_microphone_is_said_in_a_sentence_and_typing_still_works() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    room.mic_failure.set(Some(MicError::Denied));
    let m = mount_call("voice-denied", backend, Rc::clone(&room), Mode::Voice);
    open_and_listen(&m.root).await;
    until("the notice", || {
        text(&m.root, "sn-mic-notice") == en().voice.mic_denied
    })
    .await;
    assert_eq!(
        attribute(&m.root, "sn-mute", "aria-pressed").as_deref(),
        Some("true"),
        "the microphone shows as off"
    );
    type_and_enter(&m.root, "I'll type instead");
    until("the chat", || room.chats.borrow().len() == 1).await;
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn blocked_playback_offers_enable_audio_whose_click_starts_audio() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-autoplay", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    assert!(find(&m.root, "sn-enable-audio").is_none());
    room.push(VoiceEvent::PlaybackBlocked(true));
    until("enable audio", || {
        find(&m.root, "sn-enable-audio").is_some()
    })
    .await;
    let button = find(&m.root, "sn-enable-audio").expect("enable audio");
    assert_eq!(
        button.text_content().as_deref(),
        Some(en().voice.enable_audio)
    );
    button.click();
    assert_eq!(
        room.audio_starts.get(),
        1,
        "start_audio ran inside the click, before anything was awaited"
    );
    until("playback", || find(&m.root, "sn-enable-audio").is_none()).await;
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn mute_toggles_the_microphone_and_says_so() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-mute", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    let mute = find(&m.root, "sn-mute").expect("mute");
    assert_eq!(mute.get_attribute("aria-pressed").as_deref(), Some("false"));
    assert_eq!(mute.text_content().as_deref(), Some(en().voice.mute));
    mute.click();
    until("muted", || {
        attribute(&m.root, "sn-mute", "aria-pressed").as_deref() == Some("true")
    })
    .await;
    assert_eq!(*room.mic_toggles.borrow(), [false]);
    find(&m.root, "sn-mute").expect("mute").click();
    until("unmuted", || {
        attribute(&m.root, "sn-mute", "aria-pressed").as_deref() == Some("false")
    })
    .await;
    assert_eq!(*room.mic_toggles.borrow(), [false, true]);
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn the_microphone_picker_lists_devices_and_switches() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-devices", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    let options = || {
        let select: web_sys::HtmlSelectElement = find(&m.root, "sn-mic-select")
            .expect("picker")
            .unchecked_into();
        (0..select.length())
            .filter_map(|i| select.item(i))
            .map(|option| option.text_content().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    // What the room lists once joined.
    until("the picker", || {
        find(&m.root, "sn-mic-select").is_some() && options() == ["Default microphone"]
    })
    .await;
    assert_eq!(
        attribute(&m.root, "sn-mic-select", "aria-label").as_deref(),
        Some(en().voice.microphone)
    );
    // Before permission the browser gives no labels; they follow once it is granted.
    room.push(VoiceEvent::Devices(vec![
        Device {
            id: "a".into(),
            label: String::new(),
        },
        Device {
            id: "b".into(),
            label: String::new(),
        },
    ]));
    until("unlabelled devices", || {
        options() == ["Microphone 1", "Microphone 2"]
    })
    .await;
    room.push(VoiceEvent::Devices(vec![
        Device {
            id: "a".into(),
            label: "Built-in".into(),
        },
        Device {
            id: "b".into(),
            label: "USB headset".into(),
        },
    ]));
    until("the labels", || options() == ["Built-in", "USB headset"]).await;
    let select: web_sys::HtmlSelectElement = find(&m.root, "sn-mic-select")
        .expect("picker")
        .unchecked_into();
    select.set_value("b");
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    let change = web_sys::Event::new_with_event_init_dict("change", &init).expect("event");
    select.dispatch_event(&change).expect("dispatched");
    until("the switch", || room.switches.borrow().len() == 1).await;
    assert_eq!(*room.switches.borrow(), ["b"]);
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_refused_join_is_retried_once_with_a_fresh_grant_then_fails_with_retry() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    room.refuse_connects.set(2);
    let m = mount_call(
        "voice-refused",
        backend.clone(),
        Rc::clone(&room),
        Mode::Hybrid,
    );
    find(&m.root, "sn-launcher").expect("launcher").click();
    until("the failure", || call_status(&m.root) == en().voice.refused).await;
    assert_eq!(*backend.renewals.borrow(), 1, "one fresh grant, no more");
    let grants = room.grants();
    assert_eq!(
        grants.len(),
        2,
        "joined twice: the start's grant, then the renewed one"
    );
    assert_eq!(grants[0], grant());
    assert_eq!(
        attribute(&m.root, "sn-call", "data-call").as_deref(),
        Some("failed")
    );
    assert!(find(&m.root, "sn-call-retry").is_some(), "Retry is offered");
    // The conversation itself goes on.
    assert!(find(&m.root, "sn-end").is_some());
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_join_that_never_answers_times_out_and_leaves_the_room() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    room.hold_connects.set(true);
    let m = mount_call("voice-timeout", backend, Rc::clone(&room), Mode::Hybrid);
    find(&m.root, "sn-launcher").expect("launcher").click();
    // The scripted clock ends the 20 s join timer at once.
    until("the timeout", || {
        call_status(&m.root) == en().voice.join_timeout_room
    })
    .await;
    assert_eq!(room.disconnects.get(), 1, "the half-joined room is left");
    assert!(find(&m.root, "sn-call-retry").is_some());
    assert!(
        find(&m.root, "sn-mute").is_none(),
        "no microphone without a call"
    );
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_text_only_widget_joins_with_the_microphone_off() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-text-mode", backend, Rc::clone(&room), Mode::Text);
    open_and_listen(&m.root).await;
    assert!(!room.connects.borrow()[0].1.enabled, "chat only");
    assert_eq!(
        attribute(&m.root, "sn-mute", "aria-pressed").as_deref(),
        Some("true")
    );
    type_and_enter(&m.root, "Hello");
    until("the chat", || room.chats.borrow().len() == 1).await;
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn ending_the_conversation_leaves_the_room() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-end", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    find(&m.root, "sn-end").expect("end").click();
    until("the room left", || room.disconnects.get() == 1).await;
    until("the call ended", || {
        call_status(&m.root) == en().voice.call_ended
    })
    .await;
    until("the rating", || find(&m.root, "sn-feedback-up").is_some()).await;
    assert!(
        find(&m.root, "sn-message").is_none(),
        "nothing to type into any more"
    );
    let mut widget = m.widget;
    widget.destroy();
    assert_eq!(room.disconnects.get(), 1, "left once");
}

#[wasm_bindgen_test]
async fn destroy_leaves_the_room_and_removes_the_audio() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call(
        "voice-destroy",
        backend.clone(),
        Rc::clone(&room),
        Mode::Hybrid,
    );
    open_and_listen(&m.root).await;
    assert!(find(&m.root, "sn-agent-audio").is_some());
    assert_eq!(room.disconnects.get(), 0);
    let mut widget = m.widget;
    widget.destroy();
    assert_eq!(room.disconnects.get(), 1, "the room is left at once");
    assert!(find(&m.root, "sn-agent-audio").is_none());
    assert!(find(&m.root, "sn-call").is_none());
    // Events the room still reports reach nobody, and nothing is asked of it any more.
    room.agent_state(AgentState::Speaking);
    room.agent_says("TR_late", "Hello?", true);
    sleep_a_little().await;
    assert_eq!(room.connects.borrow().len(), 1);
    assert_eq!(m.rooms.count(), 1);
    assert!(backend.all_streams_closed());
}

/// An audio track as a room hands one over (silent: the test's context has no gesture).
fn audio_track() -> (web_sys::AudioContext, web_sys::MediaStreamTrack) {
    let context = web_sys::AudioContext::new().expect("an audio context");
    let destination = context
        .create_media_stream_destination()
        .expect("a stream destination");
    let track = destination
        .stream()
        .get_audio_tracks()
        .get(0)
        .unchecked_into::<web_sys::MediaStreamTrack>();
    (context, track)
}

#[wasm_bindgen_test]
async fn the_agent_plays_through_the_widgets_own_audio_element_until_destroy() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call("voice-playback", backend, Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&m.root).await;
    let element: web_sys::HtmlAudioElement = find(&m.root, "sn-agent-audio")
        .expect("the widget's audio element, inside its shadow root")
        .unchecked_into();
    assert!(element.autoplay());
    assert!(element.src_object().is_none());
    let (context, track) = audio_track();
    // `Clone::clone` on the handle: web-sys' inherent `track.clone()` is the JS method,
    // which would hand over a new track.
    room.push(VoiceEvent::AgentTrack(Clone::clone(&track)));
    until("the agent's stream on the element", || {
        element.src_object().is_some()
    })
    .await;
    let stream: web_sys::MediaStream = element.src_object().expect("a stream").unchecked_into();
    let tracks = stream.get_audio_tracks();
    assert_eq!(tracks.length(), 1);
    assert_eq!(
        tracks
            .get(0)
            .unchecked_into::<web_sys::MediaStreamTrack>()
            .id(),
        track.id(),
        "the agent's own track, never routed through Web Audio"
    );
    let mut widget = m.widget;
    widget.destroy();
    assert!(element.src_object().is_none(), "destroy stops playback");
    let _ = context.close();
}

#[wasm_bindgen_test]
async fn a_reload_rejoins_the_call_with_a_grant_from_a_renewal() {
    let agent = "voice-resume";
    // The first page: a conversation with a call, which the tab remembers.
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let first = mount_call(agent, backend.clone(), Rc::clone(&room), Mode::Hybrid);
    open_and_listen(&first.root).await;
    let stored = resume::load(agent, NOW).expect("the conversation is stored");
    assert!(stored.call, "the next page is told there was a call");
    let mut widget = first.widget;
    widget.destroy();

    // The next page resumes it and joins the call again without a click.
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![greeting()])]);
    *backend.current_token.borrow_mut() = stored.token.clone();
    *backend.voice.borrow_mut() = Some(grant());
    let room = ScriptedVoice::new();
    let m = mount_call(agent, backend.clone(), Rc::clone(&room), Mode::Hybrid);
    if !stored.open {
        m.widget.show();
    }
    until("the call again", || {
        call_status(&m.root) == en().voice.agent_listening
    })
    .await;
    assert_eq!(*backend.starts.borrow(), 0, "no second conversation");
    assert_eq!(
        *backend.renewals.borrow(),
        1,
        "one renewal brought the join grant"
    );
    assert_eq!(room.grants()[0].token, "join-token-0-renewed-1");
    // The agent repeats its unanswered greeting to the visitor who joined again: the
    // stored turn takes the caption in, so it shows once.
    until("the greeting", || turn_texts(&m.root) == [GREETING]).await;
    let (start, rest) = GREETING.split_at(12);
    room.agent_says("TR_again", start, false);
    // Events are handled in order: once this line shows, the ones before were handled too.
    room.agent_says("TR_next", "Anything else?", false);
    until("the next line", || {
        row_with(&m.root, "Anything else?").is_some()
    })
    .await;
    assert_eq!(
        rows(&m.root),
        [
            (GREETING.to_owned(), false, false),
            ("Anything else?".to_owned(), true, false)
        ],
        "the repetition, still being spoken, hides in the stored turn"
    );
    room.agent_says("TR_again", rest, true);
    room.agent_says("TR_next", "", true);
    until("the next line final", || {
        row_with(&m.root, "Anything else?").is_some_and(|row| row.has_attribute("data-final"))
    })
    .await;
    assert_eq!(
        rows(&m.root),
        [
            (GREETING.to_owned(), false, false),
            ("Anything else?".to_owned(), true, true)
        ]
    );
    let mut widget = m.widget;
    widget.destroy();
    resume::clear(agent);
}

#[wasm_bindgen_test]
async fn a_reload_of_a_conversation_without_a_call_asks_for_no_grant() {
    let agent = "voice-resume-plain";
    resume::save(
        agent,
        &Saved {
            conversation_id: "conv-1".into(),
            token: "conversation-token-0".into(),
            expires_at: NOW + 300,
            open: true,
            agent_name: None,
            call: false,
        },
    );
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![greeting()])]);
    *backend.current_token.borrow_mut() = "conversation-token-0".into();
    let room = ScriptedVoice::new();
    let m = mount_call(agent, backend.clone(), room, Mode::Hybrid);
    until("the stored transcript", || turn_texts(&m.root).len() == 1).await;
    until("the stream", || backend.streams.borrow().len() == 1).await;
    assert_eq!(
        *backend.renewals.borrow(),
        0,
        "resumes exactly as without calls"
    );
    assert_eq!(m.rooms.count(), 0);
    assert!(find(&m.root, "sn-call").is_none());
    let mut widget = m.widget;
    widget.destroy();
    resume::clear(agent);
}

#[wasm_bindgen_test]
async fn a_connection_the_sdk_gives_up_on_is_rejoined_once_with_a_fresh_room() {
    let backend = backend_with_call();
    let room = ScriptedVoice::new();
    let m = mount_call(
        "voice-rejoin",
        backend.clone(),
        Rc::clone(&room),
        Mode::Hybrid,
    );
    open_and_listen(&m.root).await;
    room.drop_connection();
    // A new transport joins with the renewal's grant, and the agent listens again.
    until("the second room", || m.rooms.count() == 2).await;
    let second = Rc::clone(&m.rooms.made.borrow()[1]);
    until("listening again", || {
        call_status(&m.root) == en().voice.agent_listening && second.connects.borrow().len() == 1
    })
    .await;
    assert_eq!(room.disconnects.get(), 1, "the old room is left");
    assert_eq!(second.grants()[0].token, "join-token-0-renewed-1");
    // Typing goes through the new room.
    type_and_enter(&m.root, "Still there?");
    until("the chat", || second.chats.borrow().len() == 1).await;
    assert!(room.chats.borrow().is_empty());
    let mut widget = m.widget;
    widget.destroy();
    assert_eq!(second.disconnects.get(), 1);
}

#[wasm_bindgen_test]
async fn a_conversation_without_a_call_shows_no_call_controls() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let room = ScriptedVoice::new();
    let m = mount_call("voice-none", backend, room, Mode::Hybrid);
    find(&m.root, "sn-launcher").expect("launcher").click();
    until("the greeting", || {
        turn_texts(&m.root).contains(&GREETING.to_owned())
    })
    .await;
    assert!(find(&m.root, "sn-call").is_none());
    assert!(find(&m.root, "sn-message").is_none());
    assert!(find(&m.root, "sn-call-unavailable").is_none());
    assert_eq!(m.rooms.count(), 0, "no transport is made");
    let mut widget = m.widget;
    widget.destroy();
}

#[wasm_bindgen_test]
async fn a_call_this_widget_cannot_join_is_shown_as_unavailable() {
    let backend = backend_with_call();
    let (_host, root, container) = shadow_host();
    // No transport: what a build without one does.
    let mut widget = mount_with_voice(
        container,
        backend,
        None,
        options("voice-unavailable", "https://bff.invalid"),
        FAST,
    );
    find(&root, "sn-launcher").expect("launcher").click();
    until("the notice", || {
        text(&root, "sn-call-unavailable") == en().voice.call_unavailable
    })
    .await;
    assert!(find(&root, "sn-message").is_none());
    widget.destroy();
}

/// Lets queued tasks run (for asserting that nothing happens).
async fn sleep_a_little() {
    speaknode_widget::client::sleep(30).await;
}
