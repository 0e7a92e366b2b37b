//! Talking to the BFF: the [`Backend`] seam and its one production implementation over
//! `fetch` and `EventSource`. The widget talks to nothing else (the platform's API is never
//! called from here); a page may supply scoped tokens itself through a `tokenProvider`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::mpsc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use speaknode_api::{
    AgentInfo, ConversationView, EndReason, FeedbackRequest, MintRequest, Problem, SessionGrant,
    StartRequest, StartedConversation, StreamEnd, TokenGrant, WIDGET_HEADER, WIDGET_HEADER_VALUE,
    paths,
};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::session::WidgetError;

/// A future the widget's single-threaded runtime can hold.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Why a call to the BFF did not give us what we asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// No HTTP answer at all: offline, DNS, CORS refusal, connection reset.
    Network,
    /// An HTTP error status, with the problem document when the BFF sent one.
    Http {
        status: u16,
        problem: Option<Problem>,
    },
    /// A success status whose body was not what the widget API promises.
    Decode,
    /// The page's token provider threw, rejected or returned no usable token.
    Provider,
}

impl From<ClientError> for WidgetError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Network => WidgetError::unreachable(),
            ClientError::Http {
                problem: Some(problem),
                ..
            } => WidgetError::from_problem(&problem),
            // Proxies and load balancers answer 502–504 without our problem body.
            ClientError::Http {
                status: 502..=504,
                problem: None,
            } => WidgetError::unreachable(),
            ClientError::Http { .. } | ClientError::Decode => WidgetError::unexpected(),
            ClientError::Provider => WidgetError::token_refused(),
        }
    }
}

/// Why the widget asks for a new scoped token; a page's token provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintReason {
    /// The visitor starts a conversation.
    Start,
    /// The visitor retries after a failure (an expired or refused token, a lost network).
    Retry,
}

impl MintReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Retry => "retry",
        }
    }
}

/// What the live event stream of a conversation delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// The stream is open (again); the next conversation event is current.
    Open,
    /// The whole conversation as it is now.
    Conversation(ConversationView),
    /// The connection dropped and the browser is re-establishing it on its own.
    Reconnecting,
    /// The BFF ended the stream, saying why.
    End(EndReason),
    /// The stream failed for good (an HTTP error, or not an event stream): ask over REST
    /// what is wrong before opening another.
    Failed,
}

/// A live event stream. Dropping it closes the connection.
pub struct Subscription {
    pub items: mpsc::UnboundedReceiver<StreamItem>,
    /// Whatever keeps the connection open; dropped with the subscription.
    pub guard: Box<dyn std::any::Any>,
}

/// What the widget needs from its backend. The fetch implementation talks to a real BFF;
/// tests script one.
pub trait Backend {
    /// Gets a scoped token for the agent: from the BFF, or from the page's token provider.
    fn mint(
        &self,
        agent_id: &str,
        reason: MintReason,
    ) -> LocalFuture<Result<SessionGrant, ClientError>>;
    /// Starts a conversation with the minting token.
    fn start(&self, token: &str) -> LocalFuture<Result<StartedConversation, ClientError>>;
    /// Reads a conversation with the token bound to it.
    fn conversation(
        &self,
        token: &str,
        id: &str,
    ) -> LocalFuture<Result<ConversationView, ClientError>>;
    /// Follows a conversation as it changes.
    fn events(&self, token: &str, id: &str) -> Subscription;
    /// Trades a token bound to a running conversation for a fresh one.
    fn renew(&self, token: &str, id: &str) -> LocalFuture<Result<TokenGrant, ClientError>>;
    /// Ends the conversation for the visitor.
    fn end(&self, token: &str, id: &str) -> LocalFuture<Result<ConversationView, ClientError>>;
    /// Passes the visitor's rating on.
    fn feedback(
        &self,
        token: &str,
        id: &str,
        request: &FeedbackRequest,
    ) -> LocalFuture<Result<(), ClientError>>;
    /// Waits before trying again.
    fn wait(&self, millis: u32) -> LocalFuture<()>;
    /// The time now, in seconds since the Unix epoch (tokens carry absolute expiries).
    fn now(&self) -> u64;
}

/// The BFF over the browser's `fetch` and `EventSource`.
#[derive(Debug, Clone)]
pub struct FetchBackend {
    base: String,
    /// The page's `tokenProvider`, called instead of the BFF's mint endpoint.
    token_provider: Option<js_sys::Function>,
}

impl FetchBackend {
    /// `session_url` is the BFF's base URL as the page gave it (absolute or page-relative).
    pub fn new(session_url: &str) -> Self {
        Self {
            base: session_url.trim_end_matches('/').to_owned(),
            token_provider: None,
        }
    }

    /// Gets scoped tokens from the page's provider instead of the BFF's mint endpoint.
    pub fn with_token_provider(mut self, provider: Option<js_sys::Function>) -> Self {
        self.token_provider = provider;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Backend for FetchBackend {
    fn mint(
        &self,
        agent_id: &str,
        reason: MintReason,
    ) -> LocalFuture<Result<SessionGrant, ClientError>> {
        if let Some(provider) = self.token_provider.clone() {
            let agent_id = agent_id.to_owned();
            return Box::pin(async move { provide(&provider, &agent_id, reason).await });
        }
        let url = self.url(paths::SESSIONS);
        let body = MintRequest {
            agent_id: agent_id.to_owned(),
        };
        Box::pin(async move { send("POST", &url, None, Some(&body)).await })
    }

    fn start(&self, token: &str) -> LocalFuture<Result<StartedConversation, ClientError>> {
        let url = self.url(paths::CONVERSATIONS);
        let token = token.to_owned();
        Box::pin(async move { send("POST", &url, Some(&token), Some(&StartRequest {})).await })
    }

    fn conversation(
        &self,
        token: &str,
        id: &str,
    ) -> LocalFuture<Result<ConversationView, ClientError>> {
        let url = self.url(&paths::conversation(&encode_segment(id)));
        let token = token.to_owned();
        Box::pin(async move { send::<(), _>("GET", &url, Some(&token), None).await })
    }

    fn events(&self, token: &str, id: &str) -> Subscription {
        // `EventSource` cannot send headers: the BFF takes this route's token from the
        // query (it logs routes, never URIs).
        let url = format!(
            "{}?access_token={}",
            self.url(&paths::conversation_events(&encode_segment(id))),
            encode_segment(token)
        );
        EventSourceStream::open(&url)
    }

    fn renew(&self, token: &str, id: &str) -> LocalFuture<Result<TokenGrant, ClientError>> {
        let url = self.url(&paths::conversation_token(&encode_segment(id)));
        let token = token.to_owned();
        Box::pin(async move { send::<(), _>("POST", &url, Some(&token), None).await })
    }

    fn end(&self, token: &str, id: &str) -> LocalFuture<Result<ConversationView, ClientError>> {
        let url = self.url(&paths::conversation_end(&encode_segment(id)));
        let token = token.to_owned();
        Box::pin(async move { send::<(), _>("POST", &url, Some(&token), None).await })
    }

    fn feedback(
        &self,
        token: &str,
        id: &str,
        request: &FeedbackRequest,
    ) -> LocalFuture<Result<(), ClientError>> {
        let url = self.url(&paths::conversation_feedback(&encode_segment(id)));
        let token = token.to_owned();
        let request = request.clone();
        Box::pin(async move { send("POST", &url, Some(&token), Some(&request)).await })
    }

    fn wait(&self, millis: u32) -> LocalFuture<()> {
        Box::pin(sleep(millis))
    }

    fn now(&self) -> u64 {
        // Date.now() is milliseconds as an f64; whole seconds are all a token needs.
        (js_sys::Date::now() / 1000.0) as u64
    }
}

/// What a page's token provider resolves to.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProvidedToken {
    token: String,
    expires_at: u64,
    #[serde(default)]
    agent: Option<AgentInfo>,
}

/// Asks the page's `tokenProvider({ agentId, reason })` for a scoped token. Whatever goes
/// wrong there is the page's business: the visitor sees one readable error.
async fn provide(
    provider: &js_sys::Function,
    agent_id: &str,
    reason: MintReason,
) -> Result<SessionGrant, ClientError> {
    let request = js_sys::Object::new();
    let set = |key: &str, value: &str| {
        js_sys::Reflect::set(&request, &key.into(), &value.into())
            .map_err(|_| ClientError::Provider)
    };
    set("agentId", agent_id)?;
    set("reason", reason.as_str())?;
    let returned = provider
        .call1(&JsValue::NULL, &request)
        .map_err(|_| ClientError::Provider)?;
    let resolved = JsFuture::from(js_sys::Promise::resolve(&returned))
        .await
        .map_err(|_| ClientError::Provider)?;
    let json: String = js_sys::JSON::stringify(&resolved)
        .map_err(|_| ClientError::Provider)?
        .into();
    let provided: ProvidedToken = serde_json::from_str(&json).map_err(|_| ClientError::Provider)?;
    if provided.token.trim().is_empty() {
        return Err(ClientError::Provider);
    }
    Ok(SessionGrant {
        token: provided.token,
        expires_at: provided.expires_at,
        agent: provided.agent.unwrap_or(AgentInfo {
            id: agent_id.to_owned(),
            name: String::new(),
        }),
    })
}

/// Percent-encodes a path segment or query value, so a value from a response can never
/// change the URL's structure.
fn encode_segment(segment: &str) -> String {
    js_sys::encode_uri_component(segment).into()
}

/// Resolves after `millis` milliseconds on the browser's timer. Dropping the future before
/// then clears the timer, so a destroyed widget leaves none behind.
pub async fn sleep(millis: u32) {
    let handle: Rc<RefCell<Option<i32>>> = Rc::default();
    let slot = Rc::clone(&handle);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            // A failed setTimeout only means the page is going away; nothing waits then.
            *slot.borrow_mut() = window
                .set_timeout_with_callback_and_timeout_and_arguments_0(
                    &resolve,
                    i32::try_from(millis).unwrap_or(i32::MAX),
                )
                .ok();
        }
    });
    let timer = ClearOnDrop(handle);
    let _ = JsFuture::from(promise).await;
    timer.0.borrow_mut().take();
}

struct ClearOnDrop(Rc<RefCell<Option<i32>>>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        if let (Some(id), Some(window)) = (self.0.borrow_mut().take(), web_sys::window()) {
            window.clear_timeout_with_handle(id);
        }
    }
}

/// Aborts its request when dropped, so a destroyed widget leaves no request in flight.
struct AbortOnDrop(web_sys::AbortController);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `body` as JSON and reads the answer as `R` (a problem+json body as the error). The
/// generic part stays this thin: one copy of the request code serves every call.
async fn send<B: Serialize, R: DeserializeOwned>(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&B>,
) -> Result<R, ClientError> {
    let json = match body {
        Some(body) => Some(serde_json::to_string(body).map_err(|_| ClientError::Decode)?),
        None => None,
    };
    let (ok, status, text) = exchange(method, url, token, json.as_deref()).await?;
    if ok {
        // 204 No Content reads as JSON null, which is what `()` deserialises from.
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|_| ClientError::Decode)
    } else {
        let problem = serde_json::from_str::<Problem>(&text).ok();
        Err(ClientError::Http { status, problem })
    }
}

/// One request with the widget's headers: whether the answer was a success, its status
/// and its body's text.
async fn exchange(
    method: &str,
    url: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Result<(bool, u16, String), ClientError> {
    let window = web_sys::window().ok_or(ClientError::Network)?;
    let abort = AbortOnDrop(web_sys::AbortController::new().map_err(|_| ClientError::Network)?);
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_mode(web_sys::RequestMode::Cors);
    init.set_signal(Some(&abort.0.signal()));
    let headers = web_sys::Headers::new().map_err(|_| ClientError::Network)?;
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|_| ClientError::Network);
    set("accept", "application/json, application/problem+json")?;
    set(WIDGET_HEADER, WIDGET_HEADER_VALUE)?;
    if let Some(token) = token {
        set("authorization", &format!("Bearer {token}"))?;
    }
    if let Some(json) = json {
        set("content-type", "application/json")?;
        init.set_body(&JsValue::from_str(json));
    }
    init.set_headers(&headers);
    let request =
        web_sys::Request::new_with_str_and_init(url, &init).map_err(|_| ClientError::Network)?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| ClientError::Network)?
        .dyn_into()
        .map_err(|_| ClientError::Network)?;
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|v| v.as_string()),
        Err(_) => None,
    }
    .unwrap_or_default();
    Ok((response.ok(), response.status(), text))
}

/// Turns one `EventSource` event into what the stream delivers, if anything.
type Translate = dyn FnMut(&web_sys::Event) -> Option<StreamItem>;

/// A browser `EventSource` as a stream of [`StreamItem`]s. It closes the source when
/// dropped, and on `end` itself, since a browser would otherwise reconnect.
struct EventSourceStream {
    source: web_sys::EventSource,
    _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

impl EventSourceStream {
    fn open(url: &str) -> Subscription {
        let (sender, items) = mpsc::unbounded();
        let Ok(source) = web_sys::EventSource::new(url) else {
            // A URL the browser refuses: report it as a failed stream.
            let _ = sender.unbounded_send(StreamItem::Failed);
            return Subscription {
                items,
                guard: Box::new(()),
            };
        };
        let mut listeners = Vec::new();
        let mut listen = |name: &str, mut on: Box<Translate>| {
            let sender = sender.clone();
            let closure =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                    if let Some(item) = on(&event) {
                        let _ = sender.unbounded_send(item);
                    }
                });
            let _ = source.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            listeners.push(closure);
        };
        listen("open", Box::new(|_| Some(StreamItem::Open)));
        listen(
            "conversation",
            Box::new(|event| parse::<ConversationView>(event).map(StreamItem::Conversation)),
        );
        let closer = source.clone();
        listen(
            "end",
            Box::new(move |event| {
                closer.close();
                let reason = parse::<StreamEnd>(event).map_or(EndReason::Unknown, |end| end.reason);
                Some(StreamItem::End(reason))
            }),
        );
        let watched = source.clone();
        listen(
            "error",
            Box::new(move |_| {
                // CONNECTING: the browser retries by itself (a network drop); CLOSED: it gave
                // up (an HTTP error or not an event stream).
                if watched.ready_state() == web_sys::EventSource::CONNECTING {
                    Some(StreamItem::Reconnecting)
                } else {
                    watched.close();
                    Some(StreamItem::Failed)
                }
            }),
        );
        Subscription {
            items,
            guard: Box::new(Self {
                source,
                _listeners: listeners,
            }),
        }
    }
}

impl Drop for EventSourceStream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// The event's `data` as JSON of type `T`. Each event type is read into its own shape
/// (never through the tagged [`speaknode_api::ConversationEvent`] enum, whose buffering code is large).
fn parse<T: DeserializeOwned>(event: &web_sys::Event) -> Option<T> {
    let data = event
        .dyn_ref::<web_sys::MessageEvent>()?
        .data()
        .as_string()?;
    serde_json::from_str(&data).ok()
}
