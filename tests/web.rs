//! The widget's components in a real browser (headless Chromium through wasm-bindgen-test):
//! mount into a fresh shadow root, act as a user would, and read what the user sees.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use speaknode_api::{
    AgentInfo, ConversationStatus, ConversationView, Role, SessionGrant, StartedConversation,
    TokenGrant, Turn,
};
use speaknode_widget::client::{Backend, ClientError, FetchBackend, LocalFuture, sleep};
use speaknode_widget::driver::Pacing;
use speaknode_widget::{Options, WidgetHandle, mount_with};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{HtmlElement, ShadowRoot};

wasm_bindgen_test_configure!(run_in_browser);

const GREETING: &str = "Hi! I'm Ava. How can I help you today?";

/// The scripted clock: tokens expire relative to this.
const NOW: u64 = 1_800_000_000;

/// A BFF that answers from a script: each read returns the next view, the last one repeats.
/// It checks that every read carries the latest token it handed out.
struct ScriptedBackend {
    views: RefCell<VecDeque<ConversationView>>,
    reads: RefCell<u32>,
    /// Lifetime of the token returned by `start`.
    start_token_secs: u64,
    current_token: RefCell<String>,
    renewals: RefCell<u32>,
}

impl ScriptedBackend {
    fn new(views: Vec<ConversationView>) -> Rc<Self> {
        Self::with_token_lifetime(views, 3600)
    }

    fn with_token_lifetime(views: Vec<ConversationView>, start_token_secs: u64) -> Rc<Self> {
        Rc::new(Self {
            views: RefCell::new(views.into()),
            reads: RefCell::new(0),
            start_token_secs,
            current_token: RefCell::new(String::new()),
            renewals: RefCell::new(0),
        })
    }

    fn next(&self) -> ConversationView {
        *self.reads.borrow_mut() += 1;
        let mut views = self.views.borrow_mut();
        if views.len() > 1 {
            views.pop_front()
        } else {
            views.front().cloned()
        }
        .expect("the script has at least one view")
    }
}

impl Backend for ScriptedBackend {
    fn mint(&self, agent_id: &str) -> LocalFuture<Result<SessionGrant, ClientError>> {
        let grant = SessionGrant {
            token: "scoped-mint-token".into(),
            expires_at: 4_000_000_000,
            agent: AgentInfo {
                id: agent_id.into(),
                name: "Ava".into(),
            },
        };
        Box::pin(async move { Ok(grant) })
    }

    fn start(&self, _token: &str) -> LocalFuture<Result<StartedConversation, ClientError>> {
        *self.current_token.borrow_mut() = "conversation-token-0".into();
        let started = StartedConversation {
            conversation: self.next(),
            token: "conversation-token-0".into(),
            expires_at: NOW + self.start_token_secs,
            voice: None,
        };
        Box::pin(async move { Ok(started) })
    }

    fn conversation(
        &self,
        token: &str,
        _id: &str,
    ) -> LocalFuture<Result<ConversationView, ClientError>> {
        assert_eq!(
            token,
            *self.current_token.borrow(),
            "reads use the latest conversation-bound token"
        );
        let view = self.next();
        Box::pin(async move { Ok(view) })
    }

    fn renew(&self, token: &str, _id: &str) -> LocalFuture<Result<TokenGrant, ClientError>> {
        assert_eq!(
            token,
            *self.current_token.borrow(),
            "renewal presents the current token"
        );
        *self.renewals.borrow_mut() += 1;
        let fresh = format!("conversation-token-{}", self.renewals.borrow());
        *self.current_token.borrow_mut() = fresh.clone();
        let grant = TokenGrant {
            token: fresh,
            expires_at: NOW + 3600,
        };
        Box::pin(async move { Ok(grant) })
    }

    fn wait(&self, _millis: u32) -> LocalFuture<()> {
        Box::pin(sleep(1))
    }

    fn now(&self) -> u64 {
        NOW
    }
}

fn view(status: ConversationStatus, history: Vec<Turn>) -> ConversationView {
    ConversationView {
        id: "conv-1".into(),
        agent_id: "agent-1".into(),
        status,
        created_at: Some("2026-11-29T08:30:00Z".into()),
        started_at: None,
        ended_at: None,
        history,
    }
}

fn greeting() -> Turn {
    Turn {
        id: "item_1".into(),
        role: Role::Agent,
        text: GREETING.into(),
        at: Some("2026-11-29T08:30:01Z".into()),
        interrupted: false,
    }
}

/// A fresh host element with an open shadow root, as the loader makes it.
fn shadow_host() -> (HtmlElement, ShadowRoot, HtmlElement) {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("a document");
    let host: HtmlElement = document
        .create_element("div")
        .expect("div")
        .unchecked_into();
    document
        .body()
        .expect("body")
        .append_child(&host)
        .expect("append host");
    let root = host
        .attach_shadow(&web_sys::ShadowRootInit::new(web_sys::ShadowRootMode::Open))
        .expect("shadow root");
    let container: HtmlElement = document
        .create_element("div")
        .expect("div")
        .unchecked_into();
    root.append_child(&container).expect("append container");
    (host, root, container)
}

fn options(session_url: &str) -> Options {
    Options {
        agent_id: "agent-1".into(),
        session_url: session_url.into(),
        lang: None,
    }
}

fn find(root: &ShadowRoot, test_id: &str) -> Option<HtmlElement> {
    root.query_selector(&format!("[data-testid=\"{test_id}\"]"))
        .ok()
        .flatten()
        .map(JsCast::unchecked_into)
}

fn text(root: &ShadowRoot, test_id: &str) -> String {
    find(root, test_id)
        .and_then(|el| el.text_content())
        .unwrap_or_default()
}

/// Waits until `condition` holds, yielding to the browser between checks; fails after 5 s.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        sleep(10).await;
    }
    panic!("timed out waiting for {what}");
}

fn mount(backend: Rc<dyn Backend>, container: HtmlElement) -> WidgetHandle {
    mount_with(
        container,
        backend,
        options("https://bff.invalid"),
        Pacing {
            poll_millis: 1,
            max_network_failures: 2,
        },
    )
}

#[wasm_bindgen_test]
async fn clicking_the_launcher_inside_a_shadow_root_starts_and_shows_the_greeting() {
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![
        view(ConversationStatus::Pending, vec![]),
        view(ConversationStatus::Dispatching, vec![]),
        view(ConversationStatus::Active, vec![greeting()]),
    ]);
    let _widget = mount(backend.clone(), container);
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
}

#[wasm_bindgen_test]
async fn repeated_reads_never_duplicate_a_turn() {
    let (_host, root, container) = shadow_host();
    let active = view(ConversationStatus::Active, vec![greeting()]);
    let backend = ScriptedBackend::new(vec![
        active.clone(),
        active.clone(),
        active.clone(),
        view(ConversationStatus::Completed, vec![greeting()]),
    ]);
    let widget = mount(backend.clone(), container);
    widget.open();
    until("the conversation to end", || {
        text(&root, "sn-status") == "Conversation ended"
    })
    .await;
    let turns = root
        .query_selector_all("[data-testid=\"sn-turn\"]")
        .expect("query");
    assert_eq!(turns.length(), 1, "one greeting, however often it was read");
    assert!(
        *backend.reads.borrow() >= 4,
        "the driver read until the conversation was final"
    );
}

#[wasm_bindgen_test]
async fn a_token_about_to_expire_is_renewed_before_the_next_read() {
    let (_host, root, container) = shadow_host();
    // The start token has 30 s left: less than the renewal margin.
    let backend = ScriptedBackend::with_token_lifetime(
        vec![
            view(ConversationStatus::Pending, vec![]),
            view(ConversationStatus::Active, vec![greeting()]),
        ],
        30,
    );
    let widget = mount(backend.clone(), container);
    widget.open();
    until("the greeting", || {
        text(&root, "sn-transcript").contains(GREETING)
    })
    .await;
    assert_eq!(
        *backend.renewals.borrow(),
        1,
        "renewed once, then the fresh token lasts"
    );
}

#[wasm_bindgen_test]
async fn arabic_renders_right_to_left_in_arabic() {
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![greeting()])]);
    let options = Options {
        lang: Some("ar-EG".into()),
        ..options("https://bff.invalid")
    };
    let widget = mount_with(
        container,
        backend,
        options,
        Pacing {
            poll_millis: 1,
            max_network_failures: 2,
        },
    );
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
    let widget = mount(backend, container);
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
    let widget = mount(backend, container);
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
    let (_host, root, container) = shadow_host();
    let backend = ScriptedBackend::new(vec![view(ConversationStatus::Active, vec![greeting()])]);
    let mut widget = mount(backend.clone(), container.clone());
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

    widget.destroy();
    assert_eq!(
        container.child_element_count(),
        0,
        "destroy leaves no nodes behind"
    );
    let reads = *backend.reads.borrow();
    // Absence can only be shown by waiting: 50 ms is fifty polling periods of this driver.
    sleep(50).await;
    assert_eq!(*backend.reads.borrow(), reads, "destroy stops the driver");
}
