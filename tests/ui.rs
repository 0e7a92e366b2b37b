//! The conversation panel as a visitor meets it, in headless Chromium: status wording,
//! the transcript's speakers and times, the typing indicator, the unread badge, ending,
//! rating, downloading, agent Markdown, keyboard focus and the stylesheet. Each test mounts
//! into a fresh shadow root, acts as a user would and reads what the user sees.
#![cfg(target_arch = "wasm32")]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use speaknode_api::{ConversationStatus, Rating, Role};
use speaknode_widget::client::{ClientError, StreamItem, sleep};
use speaknode_widget::resume::{self, Saved};
use speaknode_widget::{Mode, Options, WidgetHandle, mount_with};
use support::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{HtmlElement, ShadowRoot};

wasm_bindgen_test_configure!(run_in_browser);

/// Mounts a widget in `lang` and `mode` into a fresh shadow root.
fn mount_in(
    agent_id: &str,
    backend: Rc<ScriptedBackend>,
    lang: Option<&str>,
    mode: Mode,
) -> (HtmlElement, ShadowRoot, WidgetHandle) {
    let (host, root, container) = shadow_host();
    let options = Options {
        lang: lang.map(Into::into),
        mode,
        ..options(agent_id, "https://bff.invalid")
    };
    let widget = mount_with(container, backend, options, FAST);
    (host, root, widget)
}

/// Opens the widget with the launcher, as a visitor does, and waits for the greeting.
async fn open_and_greet(root: &ShadowRoot) {
    find(root, "sn-launcher").expect("launcher").click();
    until("the greeting", || {
        text(root, "sn-transcript").contains(GREETING)
    })
    .await;
}

fn count(root: &ShadowRoot, selector: &str) -> u32 {
    root.query_selector_all(selector).expect("query").length()
}

#[wasm_bindgen_test]
async fn every_phase_has_words_and_the_indicator_shows_while_the_agent_is_awaited() {
    // Only the start's answer is scripted; the test delivers everything else itself.
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Pending, vec![])]);
    let (_host, root, widget) = mount_in("agent-phases", backend.clone(), None, Mode::Hybrid);
    widget.open();
    until("the pending status", || {
        text(&root, "sn-status") == "Setting up the conversation…"
    })
    .await;
    until("the stream", || backend.streams.borrow().len() == 1).await;
    let thinking = find(&root, "sn-thinking").expect("an indicator while setting up");
    assert_eq!(thinking.get_attribute("role").as_deref(), Some("status"));
    assert_eq!(
        thinking.get_attribute("aria-label").as_deref(),
        Some("Ava is thinking…")
    );

    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Dispatching,
        vec![],
    )));
    until("the dispatching status", || {
        text(&root, "sn-status") == "Calling the agent…"
    })
    .await;
    assert!(find(&root, "sn-thinking").is_some());

    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Active,
        vec![greeting()],
    )));
    until("the active status", || {
        text(&root, "sn-status") == "Connected"
    })
    .await;
    until("the agent has answered", || {
        find(&root, "sn-thinking").is_none()
    })
    .await;

    let question = turn("item_2", Role::User, "Do you ship to Norway?", 5);
    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Active,
        vec![greeting(), question.clone()],
    )));
    until("the indicator after the visitor spoke", || {
        find(&root, "sn-thinking").is_some()
    })
    .await;

    backend.push(StreamItem::Reconnecting);
    until("the reconnecting status", || {
        text(&root, "sn-status") == "Reconnecting…"
    })
    .await;
    backend.push(StreamItem::Open);
    until("connected again", || {
        text(&root, "sn-status") == "Connected"
    })
    .await;

    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Completed,
        vec![greeting(), question],
    )));
    until("the completed status", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    assert!(
        find(&root, "sn-thinking").is_none(),
        "nobody answers a finished conversation"
    );
}

#[wasm_bindgen_test]
async fn a_failed_conversation_says_so_and_offers_to_try_again() {
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Pending, vec![])]);
    let (_host, root, widget) = mount_in("agent-failed", backend.clone(), Some("de"), Mode::Hybrid);
    widget.open();
    until("the stream", || backend.streams.borrow().len() == 1).await;
    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Failed,
        vec![],
    )));
    until("the error message", || {
        text(&root, "sn-status")
            == "Das Gespräch konnte nicht fortgesetzt werden. Bitte versuchen Sie es erneut."
    })
    .await;
    assert_eq!(text(&root, "sn-start"), "Erneut versuchen");
}

#[wasm_bindgen_test]
async fn turns_show_who_spoke_when_and_what_was_cut_off() {
    let mut cut = turn("item_3", Role::Agent, "Yes, in three to", 7);
    cut.interrupted = true;
    let note = turn("item_4", Role::Unknown, "A note from the platform.", 9);
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(
            ConversationStatus::Active,
            vec![
                greeting(),
                turn("item_2", Role::User, "Do you ship to Norway?", 5),
                cut,
                note,
            ],
        ),
    ]);
    let (_host, root, _widget) = mount_in("agent-turns", backend, None, Mode::Hybrid);
    open_and_greet(&root).await;
    until("four turns", || turn_texts(&root).len() == 4).await;

    let turns = root
        .query_selector_all("[data-testid=sn-turn]")
        .expect("turns");
    let turn_at =
        |index: u32| -> web_sys::Element { turns.item(index).expect("a turn").unchecked_into() };
    let speaker = |index: u32| {
        turn_at(index)
            .query_selector(".sn-speaker")
            .ok()
            .flatten()
            .and_then(|s| s.text_content())
            .unwrap_or_default()
    };
    assert_eq!(
        [speaker(0), speaker(1), speaker(2), speaker(3)],
        ["Ava", "You", "Ava", "Ava"],
        "roles other than the visitor's read as the agent's"
    );
    assert_eq!(
        turn_at(3).get_attribute("data-role").as_deref(),
        Some("agent")
    );

    let time = turn_at(0)
        .query_selector("time")
        .ok()
        .flatten()
        .expect("a <time>");
    assert_eq!(
        time.get_attribute("datetime").as_deref(),
        Some("2026-11-29T08:30:01Z")
    );
    assert_eq!(
        time.text_content().unwrap_or_default(),
        local_clock("2026-11-29T08:30:01Z"),
        "HH:MM on the visitor's clock"
    );

    assert_eq!(
        turn_at(2).get_attribute("data-interrupted").as_deref(),
        Some("true")
    );
    let mark = turn_at(2)
        .query_selector(".sn-interrupted")
        .ok()
        .flatten()
        .and_then(|m| m.text_content());
    assert_eq!(mark.as_deref(), Some("(interrupted)"));
    assert!(
        turn_at(0)
            .query_selector(".sn-interrupted")
            .ok()
            .flatten()
            .is_none()
    );
}

#[wasm_bindgen_test]
async fn the_launcher_counts_agent_turns_that_arrived_while_closed() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let (_host, root, _widget) = mount_in("agent-unread", backend.clone(), None, Mode::Hybrid);
    open_and_greet(&root).await;
    assert!(find(&root, "sn-unread").is_none());

    find(&root, "sn-launcher").expect("launcher").click();
    until("the panel to close", || find(&root, "sn-panel").is_none()).await;
    assert!(
        find(&root, "sn-unread").is_none(),
        "the greeting was seen before closing"
    );
    backend.push(StreamItem::Conversation(view(
        ConversationStatus::Active,
        vec![
            greeting(),
            turn("item_2", Role::User, "Hello?", 4),
            turn("item_3", Role::Agent, "Still there?", 6),
            turn("item_4", Role::Agent, "I'll wait.", 8),
        ],
    )));
    until("two unread", || text(&root, "sn-unread") == "2").await;
    assert_eq!(
        attribute(&root, "sn-launcher", "aria-label").as_deref(),
        Some("Talk to us, 2 unread messages")
    );
    assert_eq!(
        attribute(&root, "sn-unread", "aria-hidden").as_deref(),
        Some("true"),
        "the count is read once, in the launcher's name"
    );

    find(&root, "sn-launcher").expect("launcher").click();
    until("the badge to clear", || find(&root, "sn-unread").is_none()).await;
    assert_eq!(
        attribute(&root, "sn-launcher", "aria-label").as_deref(),
        Some("Talk to us")
    );
    find(&root, "sn-launcher").expect("launcher").click();
    until("the panel to close", || find(&root, "sn-panel").is_none()).await;
    sleep(20).await;
    assert!(find(&root, "sn-unread").is_none(), "read stays read");
}

#[wasm_bindgen_test]
async fn the_unread_count_is_named_in_german_and_arabic() {
    for (lang, expected) in [
        ("de", "Mit uns sprechen, 1 ungelesene Nachricht"),
        ("ar", "تحدّث معنا، رسالة واحدة غير مقروءة"),
    ] {
        let backend = ScriptedBackend::new(vec![view(ConversationStatus::Pending, vec![])]);
        let agent = format!("agent-unread-{lang}");
        let (_host, root, widget) = mount_in(&agent, backend.clone(), Some(lang), Mode::Voice);
        // The page starts the conversation without opening the panel.
        widget.start();
        until("the stream", || backend.streams.borrow().len() == 1).await;
        backend.push(StreamItem::Conversation(view(
            ConversationStatus::Active,
            vec![greeting()],
        )));
        until("one unread", || text(&root, "sn-unread") == "1").await;
        assert_eq!(
            attribute(&root, "sn-launcher", "aria-label").as_deref(),
            Some(expected)
        );
        resume::clear(&agent);
    }
}

#[wasm_bindgen_test]
async fn ending_then_rating_with_a_comment_gets_a_thank_you() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let (gate, held) = futures_channel::oneshot::channel();
    *backend.end_gate.borrow_mut() = Some(held);
    let (_host, root, _widget) = mount_in("agent-rate", backend.clone(), None, Mode::Hybrid);
    open_and_greet(&root).await;
    assert!(
        find(&root, "sn-feedback-up").is_none(),
        "no rating while talking"
    );

    let end = find(&root, "sn-end").expect("an end button while talking");
    assert_eq!(end.text_content().as_deref(), Some("End conversation"));
    end.click();
    until("the ending state", || text(&root, "sn-end") == "Ending…").await;
    assert_eq!(
        attribute(&root, "sn-end", "aria-disabled").as_deref(),
        Some("true")
    );
    find(&root, "sn-end").expect("still there").click();
    let _ = gate.send(());
    until("the end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    assert_eq!(
        *backend.ends.borrow(),
        1,
        "a second click while ending sends nothing"
    );
    assert!(find(&root, "sn-end").is_none());

    until("the rating", || find(&root, "sn-feedback-up").is_some()).await;
    assert_eq!(
        attribute(&root, "sn-feedback-up", "aria-pressed").as_deref(),
        Some("false")
    );
    assert_eq!(
        attribute(&root, "sn-feedback-send", "aria-disabled").as_deref(),
        Some("true"),
        "nothing to send before a thumb is chosen"
    );
    find(&root, "sn-feedback-down")
        .expect("thumbs down")
        .click();
    find(&root, "sn-feedback-up").expect("thumbs up").click();
    until("thumbs up pressed", || {
        attribute(&root, "sn-feedback-up", "aria-pressed").as_deref() == Some("true")
    })
    .await;
    assert_eq!(
        attribute(&root, "sn-feedback-down", "aria-pressed").as_deref(),
        Some("false")
    );
    let comment = find(&root, "sn-feedback-comment").expect("a comment box");
    assert_eq!(comment.get_attribute("maxlength").as_deref(), Some("1000"));
    assert_eq!(
        comment
            .unchecked_ref::<web_sys::HtmlTextAreaElement>()
            .value(),
        "",
        "the box starts empty"
    );
    let label = root
        .query_selector("label[for=sn-feedback-comment]")
        .ok()
        .flatten()
        .and_then(|l| l.text_content());
    assert_eq!(label.as_deref(), Some("Comment (optional)"));
    type_into(&root, "sn-feedback-comment", "  Quick and clear.  ");
    find(&root, "sn-feedback-send").expect("send").click();

    until("the thank-you", || {
        text(&root, "sn-feedback-thanks") == "Thanks for your feedback!"
    })
    .await;
    let sent = backend.feedback.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rating, Rating::Up);
    assert_eq!(sent[0].comment.as_deref(), Some("Quick and clear."));
    assert!(find(&root, "sn-feedback-send").is_none());
}

#[wasm_bindgen_test]
async fn a_failed_end_or_rating_is_announced_as_an_alert() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    *backend.end_failure.borrow_mut() = Some(ClientError::Network);
    let (_host, root, _widget) = mount_in("agent-notice", backend.clone(), None, Mode::Hybrid);
    open_and_greet(&root).await;
    find(&root, "sn-end").expect("end").click();
    until("the notice", || find(&root, "sn-notice").is_some()).await;
    assert_eq!(
        attribute(&root, "sn-notice", "role").as_deref(),
        Some("alert")
    );
    assert!(
        text(&root, "sn-notice").starts_with("The conversation couldn't be ended."),
        "{}",
        text(&root, "sn-notice")
    );
    assert_eq!(
        text(&root, "sn-end"),
        "End conversation",
        "and it can be tried again"
    );

    *backend.end_failure.borrow_mut() = None;
    *backend.feedback_failure.borrow_mut() = Some(ClientError::Network);
    find(&root, "sn-end").expect("end").click();
    until("the end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    assert!(
        find(&root, "sn-notice").is_none(),
        "a new action clears the notice"
    );
    until("the rating", || find(&root, "sn-feedback-down").is_some()).await;
    find(&root, "sn-feedback-down")
        .expect("thumbs down")
        .click();
    until("thumbs down pressed", || {
        attribute(&root, "sn-feedback-down", "aria-pressed").as_deref() == Some("true")
    })
    .await;
    find(&root, "sn-feedback-send").expect("send").click();
    until("the notice", || find(&root, "sn-notice").is_some()).await;
    assert!(text(&root, "sn-notice").starts_with("Your feedback wasn't sent."));
    assert!(
        find(&root, "sn-feedback-send").is_some(),
        "the rating can be sent again"
    );
}

/// What a click on a download link carried, caught before the browser saves anything.
#[derive(Default)]
struct Download {
    name: Option<String>,
    href: Option<String>,
    body: Option<js_sys::Promise>,
}

#[wasm_bindgen_test]
async fn the_transcript_downloads_as_plain_text_through_a_revoked_blob_url() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(
            ConversationStatus::Active,
            vec![
                greeting(),
                turn("item_2", Role::User, "Do you *ship* to Norway?", 5),
            ],
        ),
    ]);
    let (_host, root, _widget) = mount_in("agent-download", backend, None, Mode::Hybrid);
    open_and_greet(&root).await;
    until("both turns", || turn_texts(&root).len() == 2).await;

    let caught: Rc<RefCell<Download>> = Rc::default();
    let listener = {
        let caught = Rc::clone(&caught);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(link) = event
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlAnchorElement>().ok())
            else {
                return;
            };
            event.prevent_default();
            let href = link.href();
            let window = web_sys::window().expect("window");
            // Read the file while its URL is alive: the widget revokes it right after.
            *caught.borrow_mut() = Download {
                name: Some(link.download()),
                body: Some(window.fetch_with_str(&href)),
                href: Some(href),
            };
        })
    };
    root.add_event_listener_with_callback_and_bool(
        "click",
        listener.as_ref().unchecked_ref(),
        true,
    )
    .expect("listen");

    find(&root, "sn-download")
        .expect("a download button")
        .click();
    let (name, href, body) = {
        let mut caught = caught.borrow_mut();
        (caught.name.take(), caught.href.take(), caught.body.take())
    };
    assert_eq!(name.as_deref(), Some("speaknode-conversation-conv-1.txt"));
    let href = href.expect("a link was clicked");
    assert!(href.starts_with("blob:"), "{href}");
    let response: web_sys::Response = JsFuture::from(body.expect("fetched"))
        .await
        .expect("the file")
        .unchecked_into();
    let text = JsFuture::from(response.text().expect("text"))
        .await
        .expect("text")
        .as_string()
        .unwrap_or_default();
    assert_eq!(
        text,
        format!(
            "[{}] Ava: {GREETING}\n[{}] You: Do you *ship* to Norway?\n",
            local_clock("2026-11-29T08:30:01Z"),
            local_clock("2026-11-29T08:30:05Z"),
        )
    );
    assert_eq!(count(&root, "a[download]"), 0, "the temporary link is gone");

    let mut revoked = false;
    for _ in 0..100 {
        let window = web_sys::window().expect("window");
        if JsFuture::from(window.fetch_with_str(&href)).await.is_err() {
            revoked = true;
            break;
        }
        sleep(10).await;
    }
    assert!(revoked, "the Blob URL is revoked after the download");
    root.remove_event_listener_with_callback_and_bool(
        "click",
        listener.as_ref().unchecked_ref(),
        true,
    )
    .expect("unlisten");
}

#[wasm_bindgen_test]
async fn agent_markdown_renders_links_and_lists_and_never_markup() {
    let reply = "See [our shipping page](https://example.com/shipping) and:\n\n\
                 - **Norway**: 3–5 days\n- Sweden: `2` days\n\n\
                 <img src=x onerror=alert(1)><script>alert(1)</script> \
                 [click](javascript:alert(1)) ![pixel](https://example.com/p.png)";
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(
            ConversationStatus::Active,
            vec![
                greeting(),
                turn(
                    "item_2",
                    Role::User,
                    "**not bold** [x](https://example.com)",
                    3,
                ),
                turn("item_3", Role::Agent, reply, 5),
            ],
        ),
    ]);
    let (_host, root, _widget) = mount_in("agent-markdown", backend, None, Mode::Hybrid);
    open_and_greet(&root).await;
    until("the reply", || turn_texts(&root).len() == 3).await;

    let links = root.query_selector_all(".sn-transcript a").expect("links");
    assert_eq!(links.length(), 1, "one link, the agent's http(s) one");
    let link: web_sys::Element = links.item(0).expect("a link").unchecked_into();
    assert_eq!(
        link.get_attribute("href").as_deref(),
        Some("https://example.com/shipping")
    );
    assert_eq!(link.get_attribute("target").as_deref(), Some("_blank"));
    assert_eq!(
        link.get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(link.text_content().as_deref(), Some("our shipping page"));
    assert_eq!(count(&root, ".sn-transcript ul > li"), 2);
    assert_eq!(count(&root, ".sn-transcript strong"), 1);
    assert_eq!(count(&root, ".sn-transcript code"), 1);
    assert_eq!(
        count(&root, "script, img, iframe"),
        0,
        "nothing executable or loading"
    );
    let shown = turn_texts(&root)[2].clone();
    assert!(
        shown.contains("<img src=x onerror=alert(1)>")
            && shown.contains("[click](javascript:alert(1))")
            && shown.contains("![pixel](https://example.com/p.png)"),
        "what is refused stays readable: {shown}"
    );
    assert_eq!(
        turn_texts(&root)[1],
        "**not bold** [x](https://example.com)",
        "the visitor's words are shown as typed"
    );
}

#[wasm_bindgen_test]
async fn a_text_only_widget_shows_a_speech_bubble() {
    let icon = |mode| {
        let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![])]);
        let (_host, root, _widget) = mount_in("agent-icon", backend, None, mode);
        root.query_selector(".sn-launcher path")
            .ok()
            .flatten()
            .and_then(|path| path.get_attribute("d"))
            .expect("an icon")
    };
    assert_ne!(icon(Mode::Text), icon(Mode::Voice));
    assert_eq!(icon(Mode::Voice), icon(Mode::Hybrid), "both can listen");
}

#[wasm_bindgen_test]
async fn focus_moves_in_cycles_through_panel_and_launcher_and_escape_returns_it() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let (_host, root, _widget) = mount_in("agent-keys", backend, None, Mode::Hybrid);
    open_and_greet(&root).await;
    until("focus in the panel", || {
        focused(&root).as_deref() == Some("sn-close")
    })
    .await;
    let panel = find(&root, "sn-panel").expect("panel");
    assert_eq!(panel.get_attribute("role").as_deref(), Some("dialog"));
    assert_eq!(
        attribute(&root, "sn-launcher", "aria-haspopup").as_deref(),
        Some("dialog")
    );
    let title = root.get_element_by_id(&panel.get_attribute("aria-labelledby").expect("labelled"));
    assert_eq!(
        title.and_then(|t| t.text_content()).as_deref(),
        Some("Ava"),
        "the dialog is named by its title"
    );

    let mut order = Vec::new();
    for _ in 0..4 {
        assert!(!press(&root, "Tab", false), "the widget moves focus itself");
        order.push(focused(&root).unwrap_or_default());
    }
    assert_eq!(
        order,
        ["sn-end", "sn-download", "sn-launcher", "sn-close"],
        "Tab cycles through the panel and the launcher"
    );
    assert!(!press(&root, "Tab", true));
    assert_eq!(
        focused(&root).as_deref(),
        Some("sn-launcher"),
        "Shift+Tab wraps back"
    );
    assert!(!press(&root, "Tab", true));
    assert_eq!(focused(&root).as_deref(), Some("sn-download"));

    // Every control has a name a screen reader can say.
    let controls = root
        .query_selector_all("button, textarea")
        .expect("controls");
    for index in 0..controls.length() {
        let control: web_sys::Element = controls.item(index).expect("control").unchecked_into();
        let name = control
            .get_attribute("aria-label")
            .or_else(|| control.text_content())
            .unwrap_or_default();
        assert!(
            !name.trim().is_empty(),
            "{:?} has no name",
            control.outer_html()
        );
    }

    assert!(!press(&root, "Escape", false));
    until("the panel to close", || find(&root, "sn-panel").is_none()).await;
    until("focus on the launcher", || {
        focused(&root).as_deref() == Some("sn-launcher")
    })
    .await;
    assert!(
        press(&root, "Tab", false),
        "with the panel closed, Tab is the page's"
    );

    find(&root, "sn-launcher").expect("launcher").click();
    until("focus in the panel", || {
        focused(&root).as_deref() == Some("sn-close")
    })
    .await;
    find(&root, "sn-close").expect("close").click();
    until("the panel to close", || find(&root, "sn-panel").is_none()).await;
    until("focus on the launcher", || {
        focused(&root).as_deref() == Some("sn-launcher")
    })
    .await;
}

#[wasm_bindgen_test]
async fn after_ending_from_the_keyboard_focus_lands_on_the_rating() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let (_host, root, _widget) = mount_in("agent-end-focus", backend, None, Mode::Hybrid);
    open_and_greet(&root).await;
    until("focus in the panel", || {
        focused(&root).as_deref() == Some("sn-close")
    })
    .await;
    press(&root, "Tab", false);
    assert_eq!(focused(&root).as_deref(), Some("sn-end"));
    find(&root, "sn-end").expect("end").click();
    until("focus on the rating", || {
        focused(&root).as_deref() == Some("sn-feedback-up")
    })
    .await;
    find(&root, "sn-feedback-up").expect("up").click();
    find(&root, "sn-feedback-send").expect("send").click();
    until("focus on the thank-you", || {
        focused(&root).as_deref() == Some("sn-feedback-thanks")
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_panel_reopened_by_a_reload_leaves_focus_to_the_page() {
    let agent = "agent-no-steal";
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
    let (_host, root, _widget) = mount_in(agent, backend, None, Mode::Hybrid);
    until("the stored transcript", || turn_texts(&root).len() == 1).await;
    sleep(20).await;
    assert_eq!(focused(&root), None, "nothing in the widget took focus");
    resume::clear(agent);
}

/// Adopts the widget's stylesheet into `root`, as the loader does.
fn adopt_stylesheet(root: &ShadowRoot) {
    let sheet = web_sys::CssStyleSheet::new().expect("a stylesheet");
    sheet
        .replace_sync(include_str!("../style/speaknode-widget.css"))
        .expect("the stylesheet parses");
    js_sys::Reflect::set(
        root,
        &"adoptedStyleSheets".into(),
        &js_sys::Array::of1(&sheet),
    )
    .expect("adopted");
}

fn computed(element: &web_sys::Element, property: &str) -> String {
    web_sys::window()
        .expect("window")
        .get_computed_style(element)
        .ok()
        .flatten()
        .and_then(|style| style.get_property_value(property).ok())
        .unwrap_or_default()
}

#[wasm_bindgen_test]
async fn the_stylesheet_themes_and_places_the_widget_and_ignores_hostile_page_css() {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("document");
    let hostile = document.create_element("style").expect("style");
    hostile.set_text_content(Some(
        "* { color: rgb(255, 0, 0) !important; font-size: 40px !important; \
           font-family: serif !important; letter-spacing: 9px !important; } \
         button, p, li { display: none !important; }",
    ));
    document
        .head()
        .expect("head")
        .append_child(&hostile)
        .expect("added");

    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let (host, root, _widget) = mount_in("agent-style", backend, None, Mode::Hybrid);
    adopt_stylesheet(&root);
    open_and_greet(&root).await;

    let panel = find(&root, "sn-panel").expect("panel");
    let turn_text = root
        .query_selector(".sn-text")
        .ok()
        .flatten()
        .expect("a turn");
    let launcher = find(&root, "sn-launcher").expect("launcher");
    assert_ne!(computed(&launcher, "display"), "none");
    assert_ne!(
        computed(&turn_text, "color"),
        "rgb(255, 0, 0)",
        "page colours stay out"
    );
    assert_eq!(computed(&turn_text, "font-size"), "15px");
    assert_eq!(computed(&turn_text, "letter-spacing"), "normal");
    assert_eq!(
        computed(&panel, "background-color"),
        "rgb(255, 255, 255)",
        "light by default"
    );
    assert_eq!(computed(&host, "right"), "20px", "bottom-right by default");
    assert_eq!(computed(&host, "bottom"), "20px");

    host.set_attribute("theme", "dark").expect("attribute");
    assert_eq!(computed(&panel, "background-color"), "rgb(17, 24, 39)");
    host.set_attribute("theme", "auto").expect("attribute");
    let dark = web_sys::window()
        .expect("window")
        .match_media("(prefers-color-scheme: dark)")
        .ok()
        .flatten()
        .is_some_and(|query| query.matches());
    assert_eq!(
        computed(&panel, "background-color"),
        if dark {
            "rgb(17, 24, 39)"
        } else {
            "rgb(255, 255, 255)"
        },
        "auto follows the visitor's setting"
    );

    host.set_attribute("position", "top-left")
        .expect("attribute");
    assert_eq!(computed(&host, "left"), "20px");
    assert_eq!(computed(&host, "top"), "20px");

    let comment_box = root.query_selector("textarea").ok().flatten();
    assert!(comment_box.is_none(), "no rating while talking");
    assert_eq!(
        count(&root, "[style]"),
        0,
        "no inline styles: a strict CSP forbids them"
    );
    hostile.remove();
}

#[wasm_bindgen_test]
async fn nothing_the_widget_renders_carries_an_inline_style() {
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let (_host, root, _widget) = mount_in("agent-csp", backend, None, Mode::Hybrid);
    open_and_greet(&root).await;
    find(&root, "sn-end").expect("end").click();
    until("the rating", || find(&root, "sn-feedback-up").is_some()).await;
    find(&root, "sn-feedback-up").expect("up").click();
    type_into(&root, "sn-feedback-comment", "Thanks");
    let textarea = find(&root, "sn-feedback-comment").expect("comment");
    assert_eq!(textarea.get_attribute("part").as_deref(), Some("input"));
    assert_eq!(count(&root, "[style]"), 0);
    for part in ["launcher", "panel", "header", "messages", "status", "input"] {
        assert_eq!(count(&root, &format!("[part~={part}]")), 1, "part {part}");
    }
}
