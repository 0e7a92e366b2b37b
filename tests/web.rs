//! The widget's data layer and components in a real browser (headless Chromium through
//! wasm-bindgen-test): mount into a fresh shadow root, act as a user would, and read what the
//! user sees. The scripted BFF lives in `support/`.
#![cfg(target_arch = "wasm32")]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use speaknode_api::{ConversationStatus, Role};
use speaknode_widget::client::{Backend, FetchBackend, StreamItem, sleep};
use speaknode_widget::resume::{self, Saved};
use speaknode_widget::{Options, mount_with};
use support::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::HtmlElement;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn clicking_the_launcher_inside_a_shadow_root_starts_and_shows_the_greeting() {
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Dispatching, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let _widget = mount("agent-launch", backend.clone(), container);
    assert!(find(&root, "sn-panel").is_none(), "the panel starts closed");

    find(&root, "sn-launcher")
        .expect("launcher rendered")
        .click();

    until("the Active status", || {
        text(&root, "sn-status") == "Connected"
    })
    .await;
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    assert_eq!(text(&root, "sn-agent-name"), "Ava");
    let launcher = find(&root, "sn-launcher").expect("launcher");
    assert_eq!(
        launcher.get_attribute("aria-expanded").as_deref(),
        Some("true")
    );
    let log = find(&root, "sn-transcript").expect("transcript");
    assert_eq!(log.get_attribute("role").as_deref(), Some("log"));
    assert_eq!(log.get_attribute("aria-live").as_deref(), Some("polite"));
    assert_eq!(
        *backend.mints.borrow(),
        [speaknode_widget::client::MintReason::Start]
    );
}

#[wasm_bindgen_test]
async fn a_conversation_delivered_again_and_again_never_duplicates_a_turn() {
    let (_host, root, container) = shadow_host();
    let active = view(ConversationStatus::Active, vec![greeting()]);
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        active.clone(),
        active.clone(),
        active,
        view(ConversationStatus::Completed, vec![greeting()]),
    ]);
    let widget = mount("agent-dedup", backend.clone(), container);
    widget.open();
    until("the conversation to end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    assert_eq!(
        turn_texts(&root),
        [GREETING],
        "one greeting, however often it came"
    );
    until("the stream to be closed", || backend.all_streams_closed()).await;
    assert_eq!(backend.streams.borrow().len(), 1, "no stream after the end");
}

#[wasm_bindgen_test]
async fn a_token_about_to_expire_is_renewed_and_the_stream_reopened_with_it() {
    let (_host, root, container) = shadow_host();
    // The start token lives 30 s, less than twice the renewal margin: renewed at 15 s.
    let backend = ScriptedBackend::with_token_lifetime(
        vec![
            view(ConversationStatus::Pending, vec![]),
            view(ConversationStatus::Active, vec![greeting()]),
        ],
        30,
    );
    let widget = mount("agent-renew", backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    assert_eq!(
        *backend.renewals.borrow(),
        0,
        "not due yet: half its life is left"
    );
    backend.clock.set(NOW + 16);
    until("the renewal", || *backend.renewals.borrow() == 1).await;
    // The BFF ends a stream when its token expires; the widget reopens with the new one
    // (the scripted BFF asserts that it is the latest token).
    backend.push(StreamItem::End(speaknode_api::EndReason::TokenExpired));
    until("a second stream", || backend.streams.borrow().len() == 2).await;
    assert_eq!(*backend.renewals.borrow(), 1, "the fresh token lasts");
    assert_eq!(turn_texts(&root), [GREETING]);
}

#[wasm_bindgen_test]
async fn a_dropped_connection_comes_back_with_the_exact_transcript() {
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let widget = mount("agent-drop", backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;

    // The browser lost the connection and gets it back; meanwhile two turns were spoken.
    backend.push(StreamItem::Reconnecting);
    backend.push(StreamItem::Open);
    let later = view(
        ConversationStatus::Active,
        vec![
            greeting(),
            turn("item_2", Role::User, "Do you ship to Norway?", 5),
            turn("item_3", Role::Agent, "Yes, in three to five days.", 7),
        ],
    );
    backend.push(StreamItem::Conversation(later.clone()));
    backend.push(StreamItem::Conversation(later));
    until("the turns spoken offline", || turn_texts(&root).len() == 3).await;
    sleep(20).await;
    assert_eq!(
        turn_texts(&root),
        [
            GREETING,
            "Do you ship to Norway?",
            "Yes, in three to five days."
        ],
        "nothing doubled, nothing missing, in spoken order"
    );
    assert_eq!(
        backend.streams.borrow().len(),
        1,
        "the browser reconnected the same stream"
    );
}

#[wasm_bindgen_test]
async fn a_refused_stream_is_checked_over_rest_and_reopened() {
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    *backend.refuse_streams.borrow_mut() = 1;
    let widget = mount("agent-refused", backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    until("a second stream", || backend.streams.borrow().len() == 2).await;
    assert_eq!(
        *backend.reads.borrow(),
        1,
        "one REST read learned the stream's fate"
    );
    assert_eq!(text(&root, "sn-status"), "Connected");
}

#[wasm_bindgen_test]
async fn a_reload_resumes_the_stored_conversation_without_starting_another() {
    let agent = "agent-resume";
    resume::save(
        agent,
        &Saved {
            conversation_id: "conv-1".into(),
            token: "conversation-token-0".into(),
            expires_at: NOW + 300,
            open: true,
            agent_name: Some("Ava".into()),
            call: false,
        },
    );
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![view(
        ConversationStatus::Active,
        vec![greeting(), turn("item_2", Role::User, "Hello again", 4)],
    )]);
    *backend.current_token.borrow_mut() = "conversation-token-0".into();
    let _widget = mount(agent, backend.clone(), container);
    until("the panel to reopen by itself", || {
        find(&root, "sn-panel").is_some()
    })
    .await;
    until("the stored transcript", || turn_texts(&root).len() == 2).await;
    assert_eq!(text(&root, "sn-status"), "Connected");
    assert_eq!(
        text(&root, "sn-agent-name"),
        "Ava",
        "the agent keeps its name"
    );
    assert!(backend.mints.borrow().is_empty(), "no new token was minted");
    assert_eq!(*backend.starts.borrow(), 0, "no second conversation");
    until("the stream", || backend.streams.borrow().len() == 1).await;
    resume::clear(agent);
}

#[wasm_bindgen_test]
async fn a_stored_conversation_whose_token_expired_is_not_resumed() {
    let agent = "agent-stale";
    resume::save(
        agent,
        &Saved {
            conversation_id: "conv-1".into(),
            token: "old".into(),
            expires_at: NOW - 1,
            open: true,
            agent_name: None,
            call: false,
        },
    );
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![])]);
    let _widget = mount(agent, backend.clone(), container);
    sleep(20).await;
    assert!(find(&root, "sn-panel").is_none(), "nothing to reopen");
    assert_eq!(*backend.reads.borrow(), 0);
    let key = resume::key(agent);
    assert_eq!(
        session_storage().get_item(&key).ok().flatten(),
        None,
        "the stale record is removed"
    );
}

#[wasm_bindgen_test]
async fn ending_completes_the_conversation_and_forgets_it_for_the_next_page() {
    let agent = "agent-end";
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let widget = mount(agent, backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    let key = resume::key(agent);
    let stored = session_storage()
        .get_item(&key)
        .ok()
        .flatten()
        .expect("stored");
    let stored: Saved = serde_json::from_str(&stored).expect("a record");
    assert_eq!(stored.conversation_id, "conv-1");
    assert!(stored.open, "the open panel is remembered");

    widget.end();
    until("the end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    assert_eq!(*backend.ends.borrow(), 1);
    assert_eq!(
        session_storage().get_item(&key).ok().flatten(),
        None,
        "an ended conversation is not resumed"
    );
    assert_eq!(
        turn_texts(&root),
        [GREETING],
        "the transcript stays to read"
    );
}

#[wasm_bindgen_test]
async fn arabic_renders_right_to_left_in_arabic() {
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![greeting()])]);
    let options = Options {
        lang: Some("ar-EG".into()),
        ..options("agent-arabic", "https://bff.invalid")
    };
    let widget = mount_with(container, backend, options, FAST);
    let widget_root = root
        .query_selector(".sn-widget")
        .ok()
        .flatten()
        .expect("the widget's root");
    assert_eq!(widget_root.get_attribute("lang").as_deref(), Some("ar"));
    let launcher = find(&root, "sn-launcher").expect("launcher");
    assert_eq!(
        launcher.get_attribute("aria-label").as_deref(),
        Some("تحدّث معنا")
    );
    widget.open();
    until("the Arabic status", || text(&root, "sn-status") == "متصل").await;
    let panel = find(&root, "sn-panel").expect("panel");
    assert_eq!(
        panel.get_attribute("dir").as_deref(),
        Some("rtl"),
        "the panel reads right to left"
    );
    let turn = root
        .query_selector(".sn-text")
        .ok()
        .flatten()
        .expect("a turn");
    assert_eq!(
        turn.get_attribute("dir").as_deref(),
        Some("auto"),
        "each turn follows its own text"
    );
}

/// Records the widget's DOM events as `name detail-json` lines, as a host page would see
/// them: listening on the shadow host, outside the shadow root.
fn record_events(host: &HtmlElement) -> Rc<RefCell<Vec<String>>> {
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    for name in ["status", "message", "error", "ended", "open", "close"] {
        let log = Rc::clone(&seen);
        let listener = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::CustomEvent)>::new(
            move |event: web_sys::CustomEvent| {
                let detail = js_sys::JSON::stringify(&event.detail())
                    .map(String::from)
                    .unwrap_or_default();
                log.borrow_mut().push(format!("{} {detail}", event.type_()));
            },
        );
        host.add_event_listener_with_callback(
            &format!("speaknode:{name}"),
            listener.as_ref().unchecked_ref(),
        )
        .expect("listen");
        listener.forget();
    }
    seen
}

#[wasm_bindgen_test]
async fn the_host_page_hears_open_status_messages_and_the_end() {
    let (host, root, container) = shadow_host();
    let seen = record_events(&host);
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
        view(ConversationStatus::Completed, vec![greeting()]),
    ]);
    let widget = mount("agent-events", backend, container);
    widget.open();
    until("the end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    until("the ended event", || {
        seen.borrow()
            .iter()
            .any(|e| e.starts_with("speaknode:ended"))
    })
    .await;
    let seen = seen.borrow();
    let names: Vec<&str> = seen
        .iter()
        .map(|e| e.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(names.first(), Some(&"speaknode:open"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| e == r#"speaknode:status {"status":"Active"}"#),
        "{seen:?}"
    );
    let messages: Vec<_> = seen
        .iter()
        .filter(|e| e.starts_with("speaknode:message"))
        .collect();
    assert_eq!(messages.len(), 1, "the greeting is told once: {seen:?}");
    assert!(messages[0].contains(GREETING) && messages[0].contains(r#""role":"agent""#));
    assert_eq!(names.last(), Some(&"speaknode:ended"), "{seen:?}");
}

#[wasm_bindgen_test]
async fn an_unreachable_bff_shows_a_readable_error_with_retry() {
    let (host, root, container) = shadow_host();
    let seen = record_events(&host);
    // Port 9 (discard) refuses connections: fetch fails without any HTTP answer.
    let backend: Rc<dyn Backend> = Rc::new(FetchBackend::new("http://127.0.0.1:9"));
    let widget = mount("agent-unreachable", backend, container);
    widget.open();
    until("the error message", || {
        text(&root, "sn-status").contains("can't reach the service")
    })
    .await;
    until("the error event", || {
        seen.borrow()
            .iter()
            .any(|e| e.starts_with(r#"speaknode:error {"code":"network""#))
    })
    .await;
    let status = find(&root, "sn-status").expect("status");
    assert_eq!(
        status.get_attribute("data-phase").as_deref(),
        Some("error network")
    );
    assert_eq!(text(&root, "sn-start"), "Try again");
}

#[wasm_bindgen_test]
async fn closing_keeps_the_conversation_and_destroy_removes_everything() {
    let agent = "agent-destroy";
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let mut widget = mount(agent, backend.clone(), container.clone());
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;

    find(&root, "sn-launcher").expect("launcher").click();
    until("the panel to close", || find(&root, "sn-panel").is_none()).await;
    widget.open();
    until("the panel to reopen", || find(&root, "sn-panel").is_some()).await;
    assert!(
        text(&root, "sn-transcript").contains(GREETING),
        "reopening keeps the transcript"
    );
    assert!(
        !backend.all_streams_closed(),
        "the conversation is followed"
    );

    widget.destroy();
    assert_eq!(
        container.child_element_count(),
        0,
        "destroy leaves no nodes behind"
    );
    until("the stream to be closed", || backend.all_streams_closed()).await;
    assert_eq!(
        backend.streams.borrow().len(),
        1,
        "and none is opened again"
    );
    resume::clear(agent);
}

/// A page's `tokenProvider` as the loader passes it: a JS function of `{ agentId, reason }`.
/// This one refuses the first time and then hands out a token; it records each reason.
fn token_provider() -> (js_sys::Function, js_sys::Array) {
    let calls = js_sys::Array::new();
    let provider = js_sys::Function::new_with_args(
        "calls, request",
        "calls.push(request.reason + ' ' + request.agentId); \
         return calls.length === 1 \
           ? Promise.reject(new Error('the site said no')) \
           : Promise.resolve({ token: 'site-token', expiresAt: 4000000000 });",
    )
    .bind1(&wasm_bindgen::JsValue::NULL, &calls);
    (provider.unchecked_into(), calls)
}

#[wasm_bindgen_test]
async fn a_token_provider_is_asked_at_start_and_again_on_retry() {
    let (host, root, container) = shadow_host();
    let seen = record_events(&host);
    let (provider, calls) = token_provider();
    // Port 9 refuses connections: after the provider's token, starting fails too.
    let backend: Rc<dyn Backend> =
        Rc::new(FetchBackend::new("http://127.0.0.1:9").with_token_provider(Some(provider)));
    let widget = mount_with(
        container,
        backend,
        options("agent-provider", "http://127.0.0.1:9"),
        FAST,
    );
    widget.open();
    until("the provider's refusal", || {
        seen.borrow()
            .iter()
            .any(|e| e.starts_with(r#"speaknode:error {"code":"token_provider_failed""#))
    })
    .await;
    assert!(text(&root, "sn-status").contains("permission"));
    find(&root, "sn-start").expect("a retry button").click();
    until("the network error after the provider's token", || {
        seen.borrow()
            .iter()
            .any(|e| e.starts_with(r#"speaknode:error {"code":"network""#))
    })
    .await;
    let calls: Vec<String> = calls.iter().filter_map(|c| c.as_string()).collect();
    assert_eq!(calls, ["start agent-provider", "retry agent-provider"]);
}

#[wasm_bindgen_test]
async fn a_failed_end_keeps_the_conversation_and_tells_the_page() {
    let agent = "agent-end-fails";
    let (host, root, container) = shadow_host();
    let seen = record_events(&host);
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    *backend.end_failure.borrow_mut() = Some(speaknode_widget::client::ClientError::Http {
        status: 503,
        problem: Some(speaknode_api::Problem {
            kind: "about:blank".into(),
            title: "Service Unavailable".into(),
            status: 503,
            detail: None,
            code: speaknode_api::ErrorCode::UpstreamUnavailable,
            retry_after: Some(5),
        }),
    });
    let widget = mount(agent, backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    widget.end();
    until("the error event", || {
        seen.borrow()
            .iter()
            .any(|e| e.starts_with(r#"speaknode:error {"code":"upstream_unavailable""#))
    })
    .await;
    assert_eq!(
        text(&root, "sn-status"),
        "Connected",
        "the conversation goes on"
    );
    assert!(!backend.all_streams_closed(), "and is still followed");
    resume::clear(agent);
}

#[wasm_bindgen_test]
async fn an_end_asked_for_while_catching_up_is_carried_out() {
    let agent = "agent-end-early";
    resume::save(
        agent,
        &Saved {
            conversation_id: "conv-1".into(),
            token: "conversation-token-0".into(),
            expires_at: NOW + 300,
            open: false,
            agent_name: None,
            call: false,
        },
    );
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![greeting()])]);
    *backend.current_token.borrow_mut() = "conversation-token-0".into();
    let widget = mount(agent, backend.clone(), container);
    // Right after mounting, before the stored conversation has been read back.
    widget.end();
    widget.open();
    until("the end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    assert_eq!(*backend.ends.borrow(), 1);
    assert_eq!(*backend.starts.borrow(), 0, "opening did not start another");
}

#[wasm_bindgen_test]
async fn short_lived_tokens_are_renewed_once_per_lifetime_not_in_a_loop() {
    let agent = "agent-short-tokens";
    let (_host, root, container) = shadow_host();
    // 30 s tokens, shorter than the renewal margin: each is renewed at half its life.
    let backend = ScriptedBackend::with_token_lifetime(
        vec![
            view(ConversationStatus::Pending, vec![]),
            view(ConversationStatus::Active, vec![greeting()]),
        ],
        30,
    );
    *backend.renew_secs.borrow_mut() = 30;
    let widget = mount(agent, backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    backend.clock.set(NOW + 16);
    until("the first renewal", || *backend.renewals.borrow() == 1).await;
    // The clock stands still now: the renewed 30 s token is due in 15 s. A renewal loop
    // (renewing whatever expires within the 60 s margin) would go on renewing meanwhile.
    sleep(50).await;
    assert_eq!(
        *backend.renewals.borrow(),
        1,
        "one renewal per token lifetime"
    );
    resume::clear(agent);
}

#[wasm_bindgen_test]
async fn a_late_turn_placed_earlier_is_still_told_to_the_page_once() {
    let agent = "agent-late-turn";
    let (host, root, container) = shadow_host();
    let seen = record_events(&host);
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(
            ConversationStatus::Active,
            vec![greeting(), turn("item_3", Role::Agent, "Anything else?", 9)],
        ),
    ]);
    let widget = mount(agent, backend.clone(), container);
    widget.open();
    until("two turns", || turn_texts(&root).len() == 2).await;
    // The visitor's turn was transcribed late: it sorts between the two agent turns.
    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Active,
        vec![
            greeting(),
            turn("item_2", Role::User, "Thanks!", 5),
            turn("item_3", Role::Agent, "Anything else?", 9),
        ],
    )));
    until("three turns", || turn_texts(&root).len() == 3).await;
    until("the late turn's event", || {
        seen.borrow().iter().any(|e| e.contains("Thanks!"))
    })
    .await;
    let messages: Vec<String> = seen
        .borrow()
        .iter()
        .filter(|e| e.starts_with("speaknode:message"))
        .cloned()
        .collect();
    assert_eq!(messages.len(), 3, "each turn once: {messages:?}");
    resume::clear(agent);
}
