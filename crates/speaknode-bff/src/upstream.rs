//! The SpeakNode platform client: the only module that knows the platform's wire format.
//!
//! Nothing here is from the platform's code; every shape is an assumption written down in
//! `crates/speaknode-sandbox/contract/CONTRACT.md` and its `fixtures/`, which the sandbox
//! answers with and this module's tests read. In short:
//!
//! - **Identity** (`oidc`, `credentials`). The issuer is a Keycloak realm URL, or any
//!   OpenID provider. Discovery is read once from `{issuer}/.well-known/openid-configuration`;
//!   its `issuer` must equal ours (OpenID Connect Discovery §4.3) and its `token_endpoint`
//!   serves the `client_credentials` grant, or in refresh-token mode the `refresh_token`
//!   grant (`login` runs the one authorization code flow behind it), with HTTP Basic client
//!   authentication. The access token is opaque to the BFF: it is never decoded, never
//!   logged and only ever sent as `Bearer` to `api_base`.
//! - **Token lifetime.** A token is reused until 30 s (or 10 % of its lifetime, if that is
//!   less, but at least 1 s) before `expires_in` runs out. One refresh runs at a time, and
//!   requests that waited for a failed refresh share its error instead of queueing one
//!   call each.
//! - **REST.** Routes under `{api_base}/api/v1`, snake_case members, PascalCase enum values,
//!   `null` for absent values. Unknown members are ignored and unknown enum values are read
//!   as `Unknown`, so the platform can grow without breaking the BFF.
//! - **Errors.** 401 means the token was revoked or the realm's key rotated: the token is
//!   dropped and the call retried once. 404 also covers resources of another space. 429
//!   carries `Retry-After` in seconds. Error bodies are RFC 9457 problems whose `traceId`
//!   is logged for correlation; nothing of them reaches a browser.
//! - **Transcript.** `history[]` is ordered by `created_at`, not by position.
//!
//! The DTOs declare only the members the BFF uses. Phone numbers, tool calls and outputs,
//! system prompts, LiveKit ids and error messages are therefore never even deserialised,
//! so no later change in a handler can pass them on to a widget.

mod agent_cache;
mod credentials;
pub(crate) mod login;
mod oidc;
mod token_file;

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use speaknode_api::{ConversationStatus, ConversationView, Role, Turn};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::UpstreamConfig;
use crate::upstream::agent_cache::{AGENT_TTL, AgentCache};
use crate::upstream::credentials::Credentials;

/// The most of a platform response body the BFF reads; real ones are a few KiB.
const MAX_BODY_BYTES: usize = 1 << 20;
/// `Retry-After` values above this are capped, so a widget never waits minutes.
pub(crate) const MAX_RETRY_AFTER_SECS: u64 = 60;
/// Used when a 429 comes without a readable `Retry-After`.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// Why a platform call failed. The messages are for the log only: they may name URLs.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No such resource, or one of another space.
    #[error("the platform has no such resource")]
    NotFound,
    #[error("the platform is rate limiting the BFF (retry after {retry_after} s)")]
    RateLimited { retry_after: u64 },
    #[error("the platform did not answer in time: {0}")]
    Timeout(String),
    /// Discovery or the token endpoint could not be reached or answered with garbage.
    #[error("the platform's identity provider is unavailable: {0}")]
    IdentityUnavailable(String),
    /// The platform failed, refused the BFF or sent something unreadable.
    #[error("the platform failed or refused the BFF: {0}")]
    BadGateway(String),
    /// Refresh-token mode has no usable refresh token: the provider refused it or the file
    /// holds none. Only an operator can fix this.
    #[error(
        "the BFF has no valid authorisation at the platform; run `speaknode-bff login \
         --config <config file>`"
    )]
    NeedsLogin,
}

/// An agent as `GET /api/v1/agents/{id}` returns it (`fixtures/agent.json`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Agent {
    /// The display name.
    pub title: String,
}

/// Body of `POST /api/v1/conversations/dispatch` (`fixtures/dispatch-web-request.json`).
#[derive(Debug, Serialize)]
struct DispatchRequest<'a> {
    agent_id: &'a str,
    channel: &'static str,
    /// Empty until the widget may pass variables; the platform expects the members.
    dynamic_variables: serde_json::Map<String, serde_json::Value>,
    url_parameters: serde_json::Map<String, serde_json::Value>,
}

/// The members of a conversation object (`fixtures/conversation-*.json`) a visitor may see.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Conversation {
    pub id: String,
    pub agent_id: String,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    ended_at: Option<String>,
    #[serde(default)]
    history: Option<Vec<HistoryItem>>,
}

/// The platform's conversation lifecycle; new values read as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Status {
    Pending,
    Dispatching,
    Active,
    Completed,
    Failed,
    #[serde(other)]
    Unknown,
}

/// One `history[]` item, reduced to what a visible turn needs.
#[derive(Debug, Clone, Deserialize)]
struct HistoryItem {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    role: Option<HistoryRole>,
    #[serde(default)]
    kind: Option<HistoryKind>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    interrupted: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum HistoryRole {
    System,
    User,
    /// The agent.
    Assistant,
    Tool,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum HistoryKind {
    Message,
    FunctionCall,
    FunctionCallOutput,
    AgentHandoff,
    #[serde(other)]
    Unknown,
}

/// The members of a platform problem body worth logging.
#[derive(Debug, Default, Deserialize)]
struct UpstreamProblem {
    #[serde(default, rename = "traceId")]
    trace_id: Option<String>,
}

impl Conversation {
    /// Whether the conversation has ended (Completed or Failed) and can no longer change.
    pub(crate) fn is_final(&self) -> bool {
        matches!(self.status, Some(Status::Completed | Status::Failed))
    }

    /// What a visitor may see: the status, timestamps and the spoken messages of the agent
    /// and the visitor, oldest first. System prompts, tool calls, tool output and handoffs
    /// are left out, and so are turns without text.
    pub(crate) fn into_view(self) -> ConversationView {
        let mut turns: Vec<(Option<OffsetDateTime>, Turn)> = self
            .history
            .unwrap_or_default()
            .into_iter()
            .filter(|item| item.kind == Some(HistoryKind::Message))
            .filter_map(|item| {
                let role = match item.role? {
                    HistoryRole::Assistant => Role::Agent,
                    HistoryRole::User => Role::User,
                    HistoryRole::System | HistoryRole::Tool | HistoryRole::Unknown => return None,
                };
                let text = item.content.filter(|text| !text.trim().is_empty())?;
                let at = item.created_at.and_then(|at| {
                    let parsed = OffsetDateTime::parse(&at, &Rfc3339).ok()?;
                    Some((parsed, at))
                });
                let turn = Turn {
                    id: item.id?,
                    role,
                    text,
                    at: at.as_ref().map(|(_, raw)| raw.clone()),
                    interrupted: item.interrupted.unwrap_or(false),
                };
                Some((at.map(|(parsed, _)| parsed), turn))
            })
            .collect();
        // The platform does not promise array order. A stable sort keeps the array order
        // among equal times, and turns without a readable time go last.
        turns.sort_by_key(|(at, _)| (at.is_none(), *at));
        ConversationView {
            id: self.id,
            agent_id: self.agent_id,
            status: match self.status.unwrap_or(Status::Unknown) {
                Status::Pending => ConversationStatus::Pending,
                Status::Dispatching => ConversationStatus::Dispatching,
                Status::Active => ConversationStatus::Active,
                Status::Completed => ConversationStatus::Completed,
                Status::Failed => ConversationStatus::Failed,
                Status::Unknown => ConversationStatus::Unknown,
            },
            created_at: self.created_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            history: turns.into_iter().map(|(_, turn)| turn).collect(),
        }
    }
}

/// A client of one platform deployment with one set of BFF credentials.
pub(crate) struct Upstream {
    http: reqwest::Client,
    api_base: Url,
    credentials: Credentials,
    /// Titles of recently looked-up agents, for minting (see `agent_cache`).
    pub(crate) agents: AgentCache,
}

impl Upstream {
    pub(crate) fn new(config: &UpstreamConfig) -> anyhow::Result<Self> {
        let http = http_client(config)?;
        let api_base = Url::parse(&config.api_base)?;
        anyhow::ensure!(
            !api_base.cannot_be_a_base(),
            "upstream.api_base cannot hold paths"
        );
        Ok(Self {
            credentials: Credentials::new(config, http.clone()),
            http,
            api_base,
            agents: AgentCache::new(AGENT_TTL),
        })
    }

    /// `GET /api/v1/agents/{id}`.
    pub(crate) async fn get_agent(&self, id: &str) -> Result<Agent, UpstreamError> {
        self.call(Method::GET, &["agents", id], None::<&()>).await
    }

    /// `POST /api/v1/conversations/dispatch` with `channel: "Web"`.
    pub(crate) async fn dispatch_web(&self, agent_id: &str) -> Result<Conversation, UpstreamError> {
        let body = DispatchRequest {
            agent_id,
            channel: "Web",
            dynamic_variables: serde_json::Map::new(),
            url_parameters: serde_json::Map::new(),
        };
        self.call(Method::POST, &["conversations", "dispatch"], Some(&body))
            .await
    }

    /// `GET /api/v1/conversations/{id}`.
    pub(crate) async fn get_conversation(&self, id: &str) -> Result<Conversation, UpstreamError> {
        self.call(Method::GET, &["conversations", id], None::<&()>)
            .await
    }

    /// One API call, retried once with a new token if the platform refuses the cached one.
    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<T, UpstreamError> {
        let url = self.api_url(path)?;
        let (mut response, token) = self.send(&method, &url, body).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            tracing::info!("the platform refused the cached access token; fetching a new one");
            self.credentials.invalidate(&token).await;
            (response, _) = self.send(&method, &url, body).await?;
        }
        read_json(response, url.path()).await
    }

    async fn send<B: Serialize>(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&B>,
    ) -> Result<(reqwest::Response, SecretString), UpstreamError> {
        let token = self.credentials.access_token().await?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&e, url.path(), UpstreamError::BadGateway))?;
        Ok((response, token))
    }

    /// `{api_base}/api/v1/{path…}`, each part percent-encoded as one segment.
    fn api_url(&self, path: &[&str]) -> Result<Url, UpstreamError> {
        // `Url` silently drops "." and ".." segments, which would turn an id into another
        // route; ids like that are refused before they get there.
        if path
            .iter()
            .any(|part| part.is_empty() || *part == "." || *part == "..")
        {
            return Err(UpstreamError::NotFound);
        }
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| UpstreamError::BadGateway("api_base cannot hold paths".into()))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(path);
        Ok(url)
    }
}

/// The HTTP client of every call to the platform and its identity provider.
fn http_client(config: &UpstreamConfig) -> anyhow::Result<reqwest::Client> {
    let timeout = Duration::from_millis(config.timeout_ms);
    // Never follow redirects: a redirect could carry the client secret or the access
    // token to another host (the oauth2 crate's SSRF warning).
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("speaknode-bff/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        let body = read_capped(response, what).await?;
        return serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::BadGateway(format!("{what}: unreadable body: {e}")));
    }
    match status {
        StatusCode::NOT_FOUND => return Err(UpstreamError::NotFound),
        StatusCode::TOO_MANY_REQUESTS => {
            return Err(UpstreamError::RateLimited {
                retry_after: retry_after(response.headers()),
            });
        }
        _ => {}
    }
    let trace_id = read_capped(response, what)
        .await
        .ok()
        .and_then(|body| serde_json::from_slice::<UpstreamProblem>(&body).ok())
        .unwrap_or_default()
        .trace_id
        .unwrap_or_default();
    let reason = match status {
        StatusCode::UNAUTHORIZED => "refused a freshly fetched access token",
        StatusCode::FORBIDDEN => "forbade the BFF's client this call",
        _ => "answered with an unexpected status",
    };
    Err(UpstreamError::BadGateway(format!(
        "{what}: {status} {reason} (traceId {trace_id:?})"
    )))
}

/// Reads a body up to [`MAX_BODY_BYTES`], so a broken platform cannot exhaust memory.
async fn read_capped(
    mut response: reqwest::Response,
    what: &str,
) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, what, UpstreamError::BadGateway))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(UpstreamError::BadGateway(format!(
                "{what}: body over {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A timeout, or `otherwise` for any other failure to send or receive.
fn transport_error(
    error: &reqwest::Error,
    what: &str,
    otherwise: fn(String) -> UpstreamError,
) -> UpstreamError {
    let message = format!("{what}: {error}");
    if error.is_timeout() {
        UpstreamError::Timeout(message)
    } else {
        otherwise(message)
    }
}

/// The platform's `Retry-After` in seconds, capped; HTTP dates are not used by the
/// platform (CONTRACT.md) and fall back to the default.
fn retry_after(headers: &HeaderMap) -> u64 {
    headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
        .clamp(1, MAX_RETRY_AFTER_SECS)
}

/// What the BFF's operations routes read: readiness and the token fetch count.
impl Upstream {
    /// Whether an access token can be had now (the cached one, or a fresh fetch).
    pub(crate) async fn ready(&self) -> Result<(), UpstreamError> {
        self.credentials.access_token().await.map(drop)
    }

    /// Token fetches attempted so far, successful or not.
    pub(crate) fn token_fetches(&self) -> u64 {
        self.credentials.fetch_attempts()
    }
}

#[cfg(test)]
mod oidc_tests;
#[cfg(test)]
mod tests;
