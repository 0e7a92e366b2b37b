//! Shared by the widget's browser tests: a scripted BFF, a scripted voice transport
//! (`voice`), a shadow-root host as the loader makes it, and small helpers to read what the
//! user sees.
#![allow(dead_code)]

pub mod voice;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use speaknode_api::{
    AgentInfo, ConversationStatus, ConversationView, EndReason, FeedbackRequest, Role,
    SessionGrant, StartedConversation, TokenGrant, Turn, VoiceGrant,
};
use speaknode_widget::client::{
    Backend, ClientError, LocalFuture, MintReason, StreamItem, Subscription, sleep,
};
use speaknode_widget::driver::Pacing;
use speaknode_widget::{Options, WidgetHandle, mount_with};
use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, ShadowRoot};

pub const GREETING: &str = "Hi! I'm Ava. How can I help you today?";

/// The scripted clock: tokens expire relative to this.
pub const NOW: u64 = 1_800_000_000;

/// A BFF that answers from a script. `start` returns the first view; each event stream
/// then delivers the remaining views in order (and the last one again on every new
/// stream), ending with `end` once the conversation is final. It checks that every call
/// carries the latest token it handed out.
pub struct ScriptedBackend {
    views: RefCell<VecDeque<ConversationView>>,
    /// The conversation as last delivered.
    pub latest: RefCell<Option<ConversationView>>,
    /// Lifetime of the token returned by `start`.
    start_token_secs: u64,
    pub current_token: RefCell<String>,
    pub renewals: RefCell<u32>,
    /// The scripted clock, starting at [`NOW`]; tests move it on.
    pub clock: std::cell::Cell<u64>,
    /// Lifetime of the tokens `renew` returns.
    pub renew_secs: RefCell<u64>,
    pub mints: RefCell<Vec<MintReason>>,
    pub starts: RefCell<u32>,
    pub reads: RefCell<u32>,
    pub ends: RefCell<u32>,
    pub feedback: RefCell<Vec<FeedbackRequest>>,
    /// The senders of the streams opened so far.
    pub streams: RefCell<Vec<mpsc::UnboundedSender<StreamItem>>>,
    /// Per stream, what the test pushed while the stream's opening items were still being
    /// delivered (`None` once they all were): a push then waits its turn behind them, as it
    /// would behind a real stream's first events.
    backlogs: RefCell<Vec<Backlog>>,
    /// When set, opening a stream fails at once (as an HTTP error would).
    pub refuse_streams: RefCell<u32>,
    /// When set, ending fails with this error.
    pub end_failure: RefCell<Option<ClientError>>,
    /// When set, the end answers only once the sender side fires (or is dropped).
    pub end_gate: RefCell<Option<oneshot::Receiver<()>>>,
    /// When set, rating fails with this error.
    pub feedback_failure: RefCell<Option<ClientError>>,
    /// When set, the conversation has a call: `start` returns this join grant, and each
    /// renewal a fresh one for the same room (its token suffixed with the renewal's number).
    pub voice: RefCell<Option<VoiceGrant>>,
    /// Waits asked for longer than this never end (a call's 20 s join timer, for a test
    /// that watches a join step by step); all others end at once.
    pub endless_waits_over: std::cell::Cell<u32>,
}

impl ScriptedBackend {
    pub fn new(views: Vec<ConversationView>) -> Rc<Self> {
        Self::with_token_lifetime(views, 3600)
    }

    pub fn with_token_lifetime(views: Vec<ConversationView>, start_token_secs: u64) -> Rc<Self> {
        Rc::new(Self {
            views: RefCell::new(views.into()),
            latest: RefCell::new(None),
            start_token_secs,
            current_token: RefCell::new(String::new()),
            renewals: RefCell::new(0),
            renew_secs: RefCell::new(3600),
            clock: std::cell::Cell::new(NOW),
            mints: RefCell::default(),
            starts: RefCell::new(0),
            reads: RefCell::new(0),
            ends: RefCell::new(0),
            feedback: RefCell::default(),
            streams: RefCell::default(),
            backlogs: RefCell::default(),
            refuse_streams: RefCell::new(0),
            end_failure: RefCell::default(),
            end_gate: RefCell::default(),
            feedback_failure: RefCell::default(),
            voice: RefCell::default(),
            endless_waits_over: std::cell::Cell::new(u32::MAX),
        })
    }

    fn take_next(&self) -> Option<ConversationView> {
        let next = self.views.borrow_mut().pop_front();
        if let Some(view) = &next {
            *self.latest.borrow_mut() = Some(view.clone());
        }
        next
    }

    fn check_token(&self, token: &str, what: &str) {
        assert_eq!(
            token,
            *self.current_token.borrow(),
            "{what} uses the latest token"
        );
    }

    /// Sends `item` on the newest open stream.
    pub fn push(&self, item: StreamItem) {
        if let StreamItem::Conversation(view) = &item {
            *self.latest.borrow_mut() = Some(view.clone());
        }
        if let Some(backlog) = self.backlogs.borrow().last()
            && let Some(waiting) = backlog.borrow_mut().as_mut()
        {
            waiting.push(item);
            return;
        }
        let streams = self.streams.borrow();
        let stream = streams.last().expect("a stream is open");
        stream
            .unbounded_send(item)
            .expect("the stream is still read");
    }

    /// Whether every stream handed out has been dropped by the widget.
    pub fn all_streams_closed(&self) -> bool {
        self.streams.borrow().iter().all(|s| s.is_closed())
    }
}

impl Backend for ScriptedBackend {
    fn mint(
        &self,
        agent_id: &str,
        reason: MintReason,
    ) -> LocalFuture<Result<SessionGrant, ClientError>> {
        self.mints.borrow_mut().push(reason);
        let grant = SessionGrant {
            token: "scoped-mint-token".into(),
            expires_at: NOW + 300,
            agent: AgentInfo {
                id: agent_id.into(),
                name: "Ava".into(),
            },
        };
        Box::pin(async move { Ok(grant) })
    }

    fn start(&self, token: &str) -> LocalFuture<Result<StartedConversation, ClientError>> {
        assert_eq!(token, "scoped-mint-token", "start uses the minted token");
        *self.starts.borrow_mut() += 1;
        *self.current_token.borrow_mut() = "conversation-token-0".into();
        let started = StartedConversation {
            conversation: self.take_next().expect("the script has a first view"),
            token: "conversation-token-0".into(),
            expires_at: NOW + self.start_token_secs,
            voice: self.voice.borrow().clone(),
        };
        Box::pin(async move { Ok(started) })
    }

    fn conversation(
        &self,
        token: &str,
        _id: &str,
    ) -> LocalFuture<Result<ConversationView, ClientError>> {
        self.check_token(token, "a read");
        *self.reads.borrow_mut() += 1;
        let view = self
            .take_next()
            .or_else(|| self.latest.borrow().clone())
            .expect("the script has a view");
        Box::pin(async move { Ok(view) })
    }

    fn events(&self, token: &str, _id: &str) -> Subscription {
        self.check_token(token, "a stream");
        let (sender, items) = mpsc::unbounded();
        let backlog: Backlog = Rc::new(RefCell::new(None));
        if *self.refuse_streams.borrow() > 0 {
            *self.refuse_streams.borrow_mut() -= 1;
            let _ = sender.unbounded_send(StreamItem::Failed);
        } else {
            // Like a real stream, one event per turn of the browser's event loop.
            let mut items = vec![StreamItem::Open];
            while let Some(view) = self.take_next() {
                items.push(StreamItem::Conversation(view));
            }
            let latest = self.latest.borrow().clone();
            if let Some(view) = latest {
                let final_ = view.status.is_final();
                if items.len() == 1 {
                    items.push(StreamItem::Conversation(view));
                }
                if final_ {
                    items.push(StreamItem::End(EndReason::ConversationEnded));
                }
            }
            let sender = sender.clone();
            *backlog.borrow_mut() = Some(Vec::new());
            let backlog = backlog.clone();
            wasm_bindgen_futures::spawn_local(async move {
                for item in items {
                    if sender.unbounded_send(item).is_err() {
                        return;
                    }
                    sleep(1).await;
                }
                // Then what the test pushed meanwhile, in order; later pushes go straight in.
                for item in backlog.borrow_mut().take().unwrap_or_default() {
                    let _ = sender.unbounded_send(item);
                }
            });
        }
        self.backlogs.borrow_mut().push(backlog);
        self.streams.borrow_mut().push(sender);
        Subscription {
            items,
            guard: Box::new(()),
        }
    }

    fn renew(&self, token: &str, _id: &str) -> LocalFuture<Result<TokenGrant, ClientError>> {
        self.check_token(token, "renewal");
        *self.renewals.borrow_mut() += 1;
        let fresh = format!("conversation-token-{}", self.renewals.borrow());
        *self.current_token.borrow_mut() = fresh.clone();
        let grant = TokenGrant {
            token: fresh,
            expires_at: self.clock.get() + *self.renew_secs.borrow(),
            voice: self.voice.borrow().clone().map(|voice| VoiceGrant {
                token: format!("{}-renewed-{}", voice.token, self.renewals.borrow()),
                ..voice
            }),
        };
        Box::pin(async move { Ok(grant) })
    }

    fn end(&self, token: &str, _id: &str) -> LocalFuture<Result<ConversationView, ClientError>> {
        self.check_token(token, "ending");
        *self.ends.borrow_mut() += 1;
        if let Some(error) = self.end_failure.borrow().clone() {
            return Box::pin(async move { Err(error) });
        }
        if let Some(gate) = self.end_gate.borrow_mut().take() {
            let mut view = self.latest.borrow().clone().expect("a conversation to end");
            view.status = ConversationStatus::Completed;
            *self.latest.borrow_mut() = Some(view.clone());
            return Box::pin(async move {
                let _ = gate.await;
                Ok(view)
            });
        }
        let mut view = self.latest.borrow().clone().expect("a conversation to end");
        view.status = ConversationStatus::Completed;
        *self.latest.borrow_mut() = Some(view.clone());
        Box::pin(async move { Ok(view) })
    }

    fn feedback(
        &self,
        token: &str,
        _id: &str,
        request: &FeedbackRequest,
    ) -> LocalFuture<Result<(), ClientError>> {
        self.check_token(token, "feedback");
        if let Some(error) = self.feedback_failure.borrow().clone() {
            return Box::pin(async move { Err(error) });
        }
        self.feedback.borrow_mut().push(request.clone());
        Box::pin(async move { Ok(()) })
    }

    fn wait(&self, millis: u32) -> LocalFuture<()> {
        if millis > self.endless_waits_over.get() {
            return Box::pin(std::future::pending());
        }
        Box::pin(sleep(1))
    }

    fn now(&self) -> u64 {
        self.clock.get()
    }
}

pub fn view(status: ConversationStatus, history: Vec<Turn>) -> ConversationView {
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

pub fn turn(id: &str, role: Role, text: &str, second: u32) -> Turn {
    Turn {
        id: id.into(),
        role,
        text: text.into(),
        at: Some(format!("2026-11-29T08:30:{second:02}Z")),
        interrupted: false,
    }
}

pub fn greeting() -> Turn {
    turn("item_1", Role::Agent, GREETING, 1)
}

/// A fresh host element with an open shadow root, as the loader makes it.
pub fn shadow_host() -> (HtmlElement, ShadowRoot, HtmlElement) {
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

/// Options for a test widget. Each test uses its own agent id, so what one test stores
/// for resuming is never picked up by another.
pub fn options(agent_id: &str, session_url: &str) -> Options {
    Options {
        agent_id: agent_id.into(),
        session_url: session_url.into(),
        ..Options::default()
    }
}

pub const FAST: Pacing = Pacing {
    retry_millis: 1,
    max_network_failures: 2,
};

pub fn mount(agent_id: &str, backend: Rc<dyn Backend>, container: HtmlElement) -> WidgetHandle {
    mount_with(
        container,
        backend,
        options(agent_id, "https://bff.invalid"),
        FAST,
    )
}

pub fn find(root: &ShadowRoot, test_id: &str) -> Option<HtmlElement> {
    root.query_selector(&format!("[data-testid=\"{test_id}\"]"))
        .ok()
        .flatten()
        .map(JsCast::unchecked_into)
}

pub fn text(root: &ShadowRoot, test_id: &str) -> String {
    find(root, test_id)
        .and_then(|el| el.text_content())
        .unwrap_or_default()
}

/// The texts of the transcript's turns, in order.
pub fn turn_texts(root: &ShadowRoot) -> Vec<String> {
    let turns = root
        .query_selector_all("[data-testid=\"sn-turn\"] .sn-text")
        .expect("query");
    (0..turns.length())
        .filter_map(|i| turns.item(i))
        .map(|node| node.text_content().unwrap_or_default())
        .collect()
}

/// Items pushed to a stream before its opening items were all delivered.
type Backlog = Rc<RefCell<Option<Vec<StreamItem>>>>;

/// Waits until `condition` holds, yielding to the browser between checks; fails after 5 s.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        sleep(10).await;
    }
    panic!("timed out waiting for {what}");
}

/// The browser's `sessionStorage`.
pub fn session_storage() -> web_sys::Storage {
    web_sys::window()
        .and_then(|w| w.session_storage().ok().flatten())
        .expect("sessionStorage")
}

/// The `data-testid` of the element focused inside `root`, if any.
pub fn focused(root: &ShadowRoot) -> Option<String> {
    root.active_element()
        .and_then(|element| element.get_attribute("data-testid"))
}

/// Presses `key` (with Shift when `shift`) on what has focus in `root`, as a keyboard
/// would: a bubbling, cancelable `keydown`. Returns whether the widget let the browser's
/// default happen (false: it handled the key itself).
pub fn press(root: &ShadowRoot, key: &str, shift: bool) -> bool {
    let target = root.active_element().expect("something has focus");
    let init = web_sys::KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    init.set_composed(true);
    let event = web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init)
        .expect("a keyboard event");
    target.dispatch_event(&event).expect("dispatched")
}

/// An attribute of the element with `test_id`.
pub fn attribute(root: &ShadowRoot, test_id: &str, name: &str) -> Option<String> {
    find(root, test_id).and_then(|element| element.get_attribute(name))
}

/// Types `text` into the text area with `test_id`, as the browser reports typing.
pub fn type_into(root: &ShadowRoot, test_id: &str, text: &str) {
    let area: web_sys::HtmlTextAreaElement =
        find(root, test_id).expect("a text area").unchecked_into();
    area.set_value(text);
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    let event = web_sys::Event::new_with_event_init_dict("input", &init).expect("an input event");
    area.dispatch_event(&event).expect("dispatched");
}

/// `HH:MM` of an RFC 3339 instant on the browser's clock, worked out by the browser itself.
pub fn local_clock(at: &str) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(at));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}
