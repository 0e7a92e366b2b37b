//! SpeakNode in a box: a local stand-in of the SpeakNode platform for development and tests.
//!
//! It serves a Keycloak-shaped realm (`/realms/{realm}`), the REST API (`/api/v1`), a
//! scripted agent that moves dispatched conversations along, and announces every change on a
//! SignalR hub (`/hubs/notifications`) and by webhooks, in the shapes that
//! `contract/CONTRACT.md` and `contract/fixtures/` define. Everything lives in memory.

mod admin;
mod agent;
mod api;
mod auth;
mod catalog;
mod config;
mod error;
mod events;
mod faults;
mod hub;
mod identity;
mod keys;
mod listing;
pub mod livekit;
mod model;
mod ratelimit;
mod scenario;
mod store;
mod webhooks;

use std::{
    future::{Future, IntoFuture as _},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::header,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Validation;
use secrecy::SecretString;
use tower_http::{sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};
use uuid::Uuid;

pub use agent::UserTurnError;
pub use catalog::{PhoneNumberConfig, ToolConfig, ToolType};
pub use config::{
    AgentConfig, ClientConfig, Config, HubConfig, LiveKitConfig, Timing, UserConfig, WebhookConfig,
    WebhookDelivery, WebhookEvent,
};
pub use faults::{Burst, ErrorRate, FaultSet, Faults, Latency};
pub use model::{Feedback, FeedbackRating};
pub use ratelimit::RateLimit;
pub use scenario::{Failure, Reply, Scenario};
pub use store::LiveKitRoom;

use crate::{
    catalog::Catalog,
    error::Error,
    identity::Client,
    keys::KeySet,
    livekit::token::{JoinClaims, JoinGrant, JoinTokenError, JoinTokens},
    model::{Channel, Conversation, Outcome, Timestamp},
    ratelimit::RateLimiter,
    store::Store,
};

/// The largest request body any route reads.
const BODY_LIMIT: usize = 64 * 1024;

/// How long open connections may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    issuer: String,
    keys: KeySet,
    validation: Validation,
    clients: Vec<Client>,
    sessions: identity::Sessions,
    store: Store,
    agents: agent::Runner,
    catalog: Catalog,
    rate_limiter: RateLimiter,
    faults: Faults,
    hub: hub::Hub,
    webhooks: webhooks::Webhooks,
    livekit: livekit::LiveKit,
    /// Where web conversations' visitors join, `live_kit_url`.
    livekit_url: String,
    /// Signs the join tokens of web conversations; the stand-in verifies with it.
    join_tokens: JoinTokens,
    /// Cancelled when shutdown begins: hub connections close, webhook deliveries stop.
    shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// The state of a sandbox reachable at `base_url` (`scheme://host:port`), with a fresh
    /// signing key. With webhooks configured it must be made inside a Tokio runtime, as their
    /// dispatcher starts here.
    pub fn new(config: Config, base_url: &str) -> anyhow::Result<Self> {
        Self::with_keys(config, base_url, KeySet::generate()?)
    }

    /// Like [`AppState::new`], but signing with the Ed25519 key of `seed`: for reproducible
    /// set-ups, and for tests that must sign tokens the sandbox would not issue (expired,
    /// for another audience).
    pub fn with_signing_seed(
        config: Config,
        base_url: &str,
        seed: [u8; 32],
    ) -> anyhow::Result<Self> {
        Self::with_keys(config, base_url, KeySet::from_seed(&seed)?)
    }

    fn with_keys(config: Config, base_url: &str, keys: KeySet) -> anyhow::Result<Self> {
        config.validate()?;
        let scenarios = config.all_scenarios()?;
        let issuer = format!("{}/realms/{}", base_url.trim_end_matches('/'), config.realm);
        let now = Timestamp::now();
        let store = Store::seeded(&config.agents, now);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let join_tokens = JoinTokens {
            api_key: config.livekit.api_key.clone(),
            api_secret: match &config.livekit.api_secret {
                Some(secret) => secret.clone(),
                None => random_secret()?,
            },
            ttl_secs: config.livekit.token_ttl_secs,
        };
        Ok(Self(Arc::new(Inner {
            livekit_url: config.livekit.url_for(base_url),
            join_tokens,
            validation: auth::validation(&issuer),
            issuer,
            keys: keys.rotating_every(config.key_rotation_secs),
            clients: config.clients.iter().cloned().map(Client::new).collect(),
            sessions: identity::Sessions::default(),
            agents: agent::Runner::new(store.clone(), config.timing, scenarios),
            hub: hub::Hub::new(config.hub, shutdown.child_token()),
            webhooks: webhooks::Webhooks::start(&config, store.events(), shutdown.child_token())?,
            livekit: livekit::LiveKit::default(),
            shutdown,
            store,
            catalog: Catalog::new(&config.tools, &config.phone_numbers, now),
            rate_limiter: RateLimiter::new(config.rate_limit),
            faults: Faults::default(),
            config,
        })))
    }

    /// The realm's issuer URL, `{base_url}/realms/{realm}`.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The LiveKit server URL web conversations name (`live_kit_url`): `livekit.url`, or the
    /// sandbox's own address as `ws://…`, where the stand-in serves `/rtc`.
    pub fn livekit_url(&self) -> &str {
        &self.0.livekit_url
    }

    /// The LiveKit API key and secret join tokens are signed with (`livekit.api_key`, and
    /// `livekit.api_secret` or the random secret made at start-up), and their lifetime.
    pub fn join_tokens(&self) -> &JoinTokens {
        &self.0.join_tokens
    }

    /// Verifies a join token as LiveKit does when a participant connects now (see
    /// [`livekit::token::verify`]). It says nothing about the room: look that up with
    /// [`AppState::livekit_room`] and compare the identity.
    pub fn verify_join_token(&self, token: &str) -> Result<JoinClaims, JoinTokenError> {
        self.0
            .join_tokens
            .verify(token, Timestamp::now().unix_secs())
    }

    /// The conversation whose LiveKit room is `room`, as the stand-in needs it: its id, its
    /// agent, its status and the identity its visitor joins as. `None` for an unknown room.
    pub fn livekit_room(&self, room: &str) -> Option<LiveKitRoom> {
        self.0.store.livekit_room(room)
    }

    /// Decides a connect to the LiveKit stand-in at `now` as a LiveKit server would: the
    /// token must verify ([`AppState::verify_join_token`]), and its room must be the room of
    /// a conversation that has not ended. The identity is not compared with the room's
    /// visitor: LiveKit admits whoever a valid token names, and only the platform mints
    /// tokens. Answers the claims and the room.
    pub fn admit_to_room(&self, token: &str) -> Result<(JoinClaims, LiveKitRoom), JoinRefused> {
        let claims = self
            .verify_join_token(token)
            .map_err(JoinRefused::InvalidToken)?;
        let room = self
            .livekit_room(&claims.room)
            .filter(|room| !room.ended)
            .ok_or(JoinRefused::NoSuchRoom)?;
        Ok((claims, room))
    }

    /// `conversation` as a REST answer shows it at `now`: with its duration so far and, for
    /// a web conversation that has not ended, the LiveKit URL and a join token minted for
    /// this answer. Ended and phone conversations show neither; stored conversations never
    /// hold a token.
    pub(crate) fn shown(&self, conversation: Conversation, now: Timestamp) -> Conversation {
        let mut conversation = conversation.seen_at(now);
        let offer = match (
            &conversation.live_kit_room_name,
            &conversation.visitor_identity,
        ) {
            (Some(room), Some(identity))
                if conversation.channel == Channel::Web && !conversation.status.is_final() =>
            {
                let grant = JoinGrant {
                    identity,
                    name: "Visitor",
                    room,
                };
                match self.0.join_tokens.mint(&grant, now.unix_secs()) {
                    Ok(token) => Some((self.0.livekit_url.clone(), token)),
                    Err(error) => {
                        // The URL goes with the token or not at all: a reader must see both
                        // or neither.
                        tracing::error!(%error, "cannot mint a LiveKit join token");
                        None
                    }
                }
            }
            _ => None,
        };
        (
            conversation.live_kit_url,
            conversation.live_kit_participant_token,
        ) = offer.unzip();
        conversation
    }

    /// The faults in force, which tests set through `/__sandbox/faults`.
    pub fn faults(&self) -> &Faults {
        &self.0.faults
    }

    /// The user says `text` in conversation `conversation_id`: appends the user's turn
    /// (role `User`, kind `Message`) and lets the agent's scenario answer it after its
    /// think time. This is the voice channel's way in; the conversation must be `Active`.
    pub async fn user_says(&self, conversation_id: Uuid, text: &str) -> Result<(), UserTurnError> {
        let space = self
            .0
            .store
            .space_of(conversation_id)
            .ok_or(UserTurnError::UnknownConversation)?;
        self.0.agents.user_says(space, conversation_id, text)?;
        Ok(())
    }

    /// What the `number`th utterance (from 0) the visitor speaks in conversation
    /// `conversation_id` was, as its agent's scenario has it (`hears`).
    pub(crate) fn heard(&self, conversation_id: Uuid, number: usize) -> Option<String> {
        let store = &self.0.store;
        let conversation = store.conversation(store.space_of(conversation_id)?, conversation_id)?;
        self.0.agents.heard(conversation.agent_id, number)
    }

    /// Makes a fresh key the realm's signing key and returns its `kid`, as an administrator
    /// adding a key provider of higher priority would. Older keys stay published until
    /// every token they signed has expired.
    pub fn rotate_keys(&self) -> anyhow::Result<String> {
        self.0.keys.rotate()
    }

    /// Ends conversation `id` as `Completed` now, whatever its status: the caller hung up
    /// or the agent ended the call. `false` if there is no such conversation or it had
    /// already ended. Hub clients and webhooks hear of it like of any other step.
    pub fn complete_conversation(&self, id: Uuid) -> bool {
        self.end_conversation(id, Outcome::Completed)
    }

    /// The feedback last given on conversation `id` (`POST
    /// /api/v1/conversations/{id}/feedback`), for tests: the platform shows it only in its
    /// UI, and the contract's conversation object has no member for it.
    pub fn feedback(&self, id: Uuid) -> Option<Feedback> {
        self.0.store.feedback(id)
    }

    /// Ends conversation `id` as `Failed` now, with `error_message`; otherwise like
    /// [`AppState::complete_conversation`].
    pub fn fail_conversation(&self, id: Uuid, error_message: &str) -> bool {
        self.end_conversation(id, Outcome::Failed(error_message.to_owned()))
    }

    fn end_conversation(&self, id: Uuid, outcome: Outcome) -> bool {
        let store = &self.0.store;
        store
            .space_of_conversation(id)
            .and_then(|space| {
                store.update_conversation(space, id, |conversation| {
                    conversation.end(outcome, Timestamp::now())
                })
            })
            .unwrap_or(false)
    }
}

/// Why the LiveKit stand-in refuses a participant; `Display` is the text LiveKit answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    /// `401`, `invalid token: …`: livekit-client reports it as `NotAllowed`.
    #[error("invalid token: {0}")]
    InvalidToken(JoinTokenError),
    /// `404` for an unknown or ended room, with the text livekit-client recognises as
    /// `NotAllowed` too.
    #[error("requested room does not exist")]
    NoSuchRoom,
}

impl JoinRefused {
    /// The HTTP status a LiveKit server answers the refused connect with.
    pub fn status(&self) -> axum::http::StatusCode {
        match self {
            JoinRefused::InvalidToken(_) => axum::http::StatusCode::UNAUTHORIZED,
            JoinRefused::NoSuchRoom => axum::http::StatusCode::NOT_FOUND,
        }
    }
}

/// 32 random bytes, base64url: a LiveKit API secret when the configuration sets none.
fn random_secret() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the LiveKit API secret: {e}"))?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// All routes of the sandbox.
pub fn router(state: AppState) -> Router {
    let realm = format!("/realms/{}", state.0.config.realm);
    let mut router = Router::new()
        // Nesting at the configured realm only makes every other realm an unknown route.
        .nest(&realm, identity::router())
        .nest("/api/v1", api::router())
        .merge(hub::router())
        .merge(livekit::router());
    if state.0.config.admin_enabled {
        // Unmounted unless enabled, so that a sandbox reachable by others cannot be steered.
        router = router.nest(admin::PREFIX, admin::router());
    }
    router
        .fallback(|| async { Error::NotFound("No resource matches the request URL.".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Inside the trace layer, so that injected faults are traced like real answers.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // The route template, not the raw path, so ids do not multiply log keys.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route)
            }),
        )
        // Outside the trace layer, so that it has marked the headers before anything logs.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains gracefully.
///
/// Open requests get five seconds to finish; the scripted agents stop before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let base_url = match &config.public_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let state = AppState::new(config, &base_url)?;
    serve_state(listener, state, shutdown).await
}

/// [`serve`] with a state the caller made and may keep, to act on the sandbox while it runs
/// (for instance [`AppState::complete_conversation`]).
///
/// When `shutdown` resolves, hub connections get a close message and webhook deliveries
/// stop; all of them have ended when this returns.
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(issuer = state.issuer(), "sandbox ready");

    // The token outlives the caller's `shutdown` future, so the drain deadline below can
    // start when shutdown does.
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        // WebSockets leave the server's connection tracking once upgraded, so the hub's
        // connections are told to close here rather than drained with the requests.
        let closing = state.0.shutdown.clone();
        async move {
            shutdown.await;
            stop.cancel();
            closing.cancel();
        }
    };
    let server = axum::serve(listener, router(state.clone())).with_graceful_shutdown(signal);
    let result = tokio::select! {
        result = server.into_future() => result.context("server failed"),
        () = async { stop.cancelled().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
            tracing::warn!("connections still open after the drain timeout; closing them");
            Ok(())
        }
    };
    state.0.agents.shut_down().await;
    state.0.hub.shut_down().await;
    state.0.webhooks.shut_down().await;
    result
}
