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
//! so no later change in a handler can pass them on to a widget. The one exception is a web
//! conversation's LiveKit room, URL and join token, which the dispatch answer may carry:
//! they reach a widget only as a `VoiceGrant` that `livekit` has checked.

mod agent_cache;
mod credentials;
pub(crate) mod hub;
mod livekit;
pub(crate) mod login;
mod oidc;
mod token_file;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use speaknode_api::{ConversationStatus, ConversationView, Role, Turn, VoiceGrant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::UpstreamConfig;
use crate::upstream::agent_cache::{AGENT_TTL, AgentCache};
use crate::upstream::credentials::Credentials;
use crate::upstream::hub::Hub;

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
    /// The resource is in a state that does not allow the call (409), e.g. it has ended.
    #[error("the platform refused the call in the resource's current state")]
    Conflict,
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
    #[serde(default)]
    live_kit_room_name: Option<String>,
    #[serde(default)]
    live_kit_url: Option<String>,
    /// A bearer credential for the room: kept out of `Debug` and out of the logs.
    #[serde(default)]
    live_kit_participant_token: Option<SecretString>,
}

/// Body of `POST /api/v1/conversations/{id}/feedback` (`fixtures/feedback-request.json`).
#[derive(Debug, Serialize)]
struct FeedbackBody<'a> {
    rating: &'static str,
    comment: Option<&'a str>,
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
    /// The LiveKit server and join token of a web conversation, checked against its room
    /// and the BFF's policy (see `livekit`), or `None` when the platform sent neither.
    /// Anything doubtful fails the whole call: a widget is better without voice than with a
    /// token wider than it should be.
    pub(crate) fn voice(
        &self,
        max_ttl_secs: u64,
        now: u64,
    ) -> Result<Option<VoiceGrant>, UpstreamError> {
        let refused = |error: livekit::Refused| UpstreamError::BadGateway(error.to_string());
        let (url, token) = match (&self.live_kit_url, &self.live_kit_participant_token) {
            (None, None) => return Ok(None),
            (Some(url), Some(token)) => (url, token.expose_secret()),
            _ => {
                return Err(refused(livekit::Refused(
                    "a LiveKit URL or token came alone",
                )));
            }
        };
        let room = self
            .live_kit_room_name
            .as_deref()
            .ok_or(livekit::Refused("a join token came without its room name"))
            .map_err(refused)?;
        livekit::check_url(url).map_err(refused)?;
        livekit::check_join_token(token, room, max_ttl_secs, now).map_err(refused)?;
        Ok(Some(VoiceGrant {
            url: url.clone(),
            token: token.to_owned(),
        }))
    }

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
    /// Shared with the hub client, which authenticates with the same token.
    credentials: Arc<Credentials>,
    hub: Hub,
    /// The longest a LiveKit join token handed to a widget may still be valid.
    max_voice_token_ttl_secs: u64,
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
        let credentials = Arc::new(Credentials::new(config, http.clone()));
        Ok(Self {
            hub: Hub::new(http.clone(), &api_base, Arc::clone(&credentials))?,
            credentials,
            http,
            api_base,
            max_voice_token_ttl_secs: config.max_voice_token_ttl_secs,
            agents: AgentCache::new(AGENT_TTL),
        })
    }

    /// `GET /api/v1/agents/{id}`.
    pub(crate) async fn get_agent(&self, id: &str) -> Result<Agent, UpstreamError> {
        self.call(Method::GET, &["agents", id], None::<&()>).await
    }

    /// `POST /api/v1/conversations/dispatch` with `channel: "Web"`; with the conversation
    /// comes its checked LiveKit join offer, if the platform made one.
    pub(crate) async fn dispatch_web(
        &self,
        agent_id: &str,
    ) -> Result<(Conversation, Option<VoiceGrant>), UpstreamError> {
        let body = DispatchRequest {
            agent_id,
            channel: "Web",
            dynamic_variables: serde_json::Map::new(),
            url_parameters: serde_json::Map::new(),
        };
        let conversation: Conversation = self
            .call(Method::POST, &["conversations", "dispatch"], Some(&body))
            .await?;
        let voice = self.voice(&conversation)?;
        Ok((conversation, voice))
    }

    /// The checked LiveKit join offer of `conversation` as read just now, under the BFF's
    /// lifetime cap (see [`Conversation::voice`]).
    pub(crate) fn voice(
        &self,
        conversation: &Conversation,
    ) -> Result<Option<VoiceGrant>, UpstreamError> {
        let now = jsonwebtoken::get_current_timestamp();
        conversation.voice(self.max_voice_token_ttl_secs, now)
    }

    /// `POST /api/v1/conversations/{id}/end`: the visitor hangs up. An ended conversation
    /// is [`UpstreamError::Conflict`].
    pub(crate) async fn end_conversation(&self, id: &str) -> Result<Conversation, UpstreamError> {
        self.call(Method::POST, &["conversations", id, "end"], None::<&()>)
            .await
    }

    /// `POST /api/v1/conversations/{id}/feedback` with the platform's rating names.
    pub(crate) async fn send_feedback(
        &self,
        id: &str,
        positive: bool,
        comment: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let body = FeedbackBody {
            rating: if positive { "Positive" } else { "Negative" },
            comment,
        };
        // The contract answers 204; any JSON a 2xx might carry instead is ignored.
        let _: serde::de::IgnoredAny = self
            .call(
                Method::POST,
                &["conversations", id, "feedback"],
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// The platform's notification hub, shared by every event stream.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
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
        // A 204 has no body; reading it as `null` lets `()`-like targets accept it.
        let body = if body.is_empty() { &b"null"[..] } else { &body };
        return serde_json::from_slice(body)
            .map_err(|e| UpstreamError::BadGateway(format!("{what}: unreadable body: {e}")));
    }
    match status {
        StatusCode::NOT_FOUND => return Err(UpstreamError::NotFound),
        StatusCode::CONFLICT => return Err(UpstreamError::Conflict),
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
