//! Talking to the BFF: the [`Backend`] seam and its one production implementation over
//! `fetch`. The widget talks to nothing else (the platform's API is never called from here).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;
use speaknode_api::{
    ConversationView, MintRequest, Problem, SessionGrant, StartRequest, StartedConversation,
    TokenGrant, WIDGET_HEADER, WIDGET_HEADER_VALUE, paths,
};
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
        }
    }
}

/// What the widget needs from its backend. The fetch implementation talks to a real BFF;
/// tests script one.
pub trait Backend {
    /// Mints a scoped token for the agent.
    fn mint(&self, agent_id: &str) -> LocalFuture<Result<SessionGrant, ClientError>>;
    /// Starts a conversation with the minting token.
    fn start(&self, token: &str) -> LocalFuture<Result<StartedConversation, ClientError>>;
    /// Reads a conversation with the token bound to it.
    fn conversation(
        &self,
        token: &str,
        id: &str,
    ) -> LocalFuture<Result<ConversationView, ClientError>>;
    /// Trades a token bound to a running conversation for a fresh one.
    fn renew(&self, token: &str, id: &str) -> LocalFuture<Result<TokenGrant, ClientError>>;
    /// Waits before the next read.
    fn wait(&self, millis: u32) -> LocalFuture<()>;
    /// The time now, in seconds since the Unix epoch (tokens carry absolute expiries).
    fn now(&self) -> u64;
}

/// The BFF over the browser's `fetch`.
#[derive(Debug, Clone)]
pub struct FetchBackend {
    base: String,
}

impl FetchBackend {
    /// `session_url` is the BFF's base URL as the page gave it (absolute or page-relative).
    pub fn new(session_url: &str) -> Self {
        Self {
            base: session_url.trim_end_matches('/').to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Backend for FetchBackend {
    fn mint(&self, agent_id: &str) -> LocalFuture<Result<SessionGrant, ClientError>> {
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

    fn renew(&self, token: &str, id: &str) -> LocalFuture<Result<TokenGrant, ClientError>> {
        let url = self.url(&paths::conversation_token(&encode_segment(id)));
        let token = token.to_owned();
        Box::pin(async move { send::<(), _>("POST", &url, Some(&token), None).await })
    }

    fn wait(&self, millis: u32) -> LocalFuture<()> {
        Box::pin(sleep(millis))
    }

    fn now(&self) -> u64 {
        // Date.now() is milliseconds as an f64; whole seconds are all a token needs.
        (js_sys::Date::now() / 1000.0) as u64
    }
}

/// Percent-encodes a path segment, so an id from a response can never change the path.
fn encode_segment(segment: &str) -> String {
    js_sys::encode_uri_component(segment).into()
}

/// Resolves after `millis` milliseconds on the browser's timer.
pub async fn sleep(millis: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            // A failed setTimeout only means the page is going away; nothing waits then.
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                i32::try_from(millis).unwrap_or(i32::MAX),
            );
        }
    });
    let _ = JsFuture::from(promise).await;
}

async fn send<B: Serialize, R: DeserializeOwned>(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&B>,
) -> Result<R, ClientError> {
    let window = web_sys::window().ok_or(ClientError::Network)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_mode(web_sys::RequestMode::Cors);
    let headers = web_sys::Headers::new().map_err(|_| ClientError::Network)?;
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|_| ClientError::Network);
    set("accept", "application/json, application/problem+json")?;
    set(WIDGET_HEADER, WIDGET_HEADER_VALUE)?;
    if let Some(token) = token {
        set("authorization", &format!("Bearer {token}"))?;
    }
    if let Some(body) = body {
        set("content-type", "application/json")?;
        let json = serde_json::to_string(body).map_err(|_| ClientError::Decode)?;
        init.set_body(&JsValue::from_str(&json));
    }
    init.set_headers(&headers);
    let request =
        web_sys::Request::new_with_str_and_init(url, &init).map_err(|_| ClientError::Network)?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| ClientError::Network)?
        .dyn_into()
        .map_err(|_| ClientError::Network)?;
    let status = response.status();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|v| v.as_string()),
        Err(_) => None,
    }
    .unwrap_or_default();
    if response.ok() {
        serde_json::from_str(&text).map_err(|_| ClientError::Decode)
    } else {
        let problem = serde_json::from_str::<Problem>(&text).ok();
        Err(ClientError::Http { status, problem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ErrorKind;
    use speaknode_api::ErrorCode;

    #[test]
    fn errors_without_a_problem_body_still_say_something_useful() {
        let gateway: WidgetError = ClientError::Http {
            status: 504,
            problem: None,
        }
        .into();
        assert_eq!(gateway.kind, ErrorKind::Unreachable);
        let teapot: WidgetError = ClientError::Http {
            status: 418,
            problem: None,
        }
        .into();
        assert_eq!(teapot.kind, ErrorKind::Unexpected);
        let offline: WidgetError = ClientError::Network.into();
        assert_eq!(offline.code, "network");
    }

    #[test]
    fn problem_codes_reach_the_error_event() {
        let problem = Problem {
            kind: "about:blank".into(),
            title: "Forbidden".into(),
            status: 403,
            detail: None,
            code: ErrorCode::OriginNotAllowed,
            retry_after: None,
        };
        let error: WidgetError = ClientError::Http {
            status: 403,
            problem: Some(problem),
        }
        .into();
        assert_eq!(error.code, "origin_not_allowed");
    }

    #[test]
    fn base_url_joins_paths_without_double_slashes() {
        let backend = FetchBackend::new("https://bff.example/widget/");
        assert_eq!(
            backend.url(paths::SESSIONS),
            "https://bff.example/widget/v1/sessions"
        );
    }
}
