//! A LiveKit stand-in for web conversations: the v0 `/rtc` signalling WebSocket, two peer
//! connections per visitor, and a fake agent that joins the conversation's room, speaks its
//! turns as a tone with `lk.transcription` text streams, and hears `lk.chat` messages and the
//! visitor's speech (`vad`; what was said is the scenario's `hears`).
//! `token` mints the join tokens web conversations hand out and verifies them here.
//!
//! Only what livekit-client 2.23 needs for one visitor and one agent is served; see
//! `docs/design/voice-plan.md` §1.5–1.7 for the order of messages and why each is there.

mod media;
mod session;
mod signal;
mod streams;
pub mod token;
mod vad;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::rejection::BytesRejection,
    extract::{
        Path, Query, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;
use uuid::Uuid;

use signal::Visitor;

use crate::{AppState, api::json_body, error::Error, model::random_hex};

/// The largest signalling message the stand-in reads.
const MAX_SIGNAL_BYTES: usize = 1 << 20;
/// The stand-in's shared state: each room's statistics.
#[derive(Clone, Default)]
pub(crate) struct LiveKit(Arc<Shared>);

#[derive(Default)]
struct Shared {
    rooms: Mutex<HashMap<String, Arc<RoomStats>>>,
}

impl LiveKit {
    /// The statistics of `room`, made on first use.
    fn room(&self, room: &str) -> Arc<RoomStats> {
        let mut rooms = self.0.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(rooms.entry(room.to_owned()).or_default())
    }

    fn existing_room(&self, room: &str) -> Option<Arc<RoomStats>> {
        let rooms = self.0.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.get(room).cloned()
    }
}

/// A room as the stand-in keeps it across its visitor's sessions: the ids every session
/// uses, what tests can see (`GET /__sandbox/livekit/rooms/{room}`), and the admin's
/// severing.
pub(crate) struct RoomStats {
    stats: Mutex<Stats>,
    /// The same in every session, so that a visitor who rejoins meets the same agent.
    pub(crate) ids: RoomIds,
    /// Raised by `sever`: open sessions end as if the network had failed.
    severed: watch::Sender<u64>,
    /// Until when `sever` refuses new sessions.
    refuse_until: Mutex<Option<Instant>>,
    /// The number of the room's latest session. A room has one visitor identity, so a new
    /// session replaces the one before it (LiveKit's `DUPLICATE_IDENTITY`).
    sessions: watch::Sender<u64>,
}

/// LiveKit's ids of a room and of its agent.
pub(crate) struct RoomIds {
    pub(crate) room_sid: String,
    pub(crate) agent_sid: String,
    pub(crate) agent_identity: String,
    pub(crate) agent_track_sid: String,
}

impl Default for RoomStats {
    fn default() -> Self {
        Self {
            stats: Mutex::default(),
            ids: RoomIds {
                room_sid: format!("RM_{}", random_hex(12)),
                agent_sid: format!("PA_{}", random_hex(12)),
                agent_identity: format!("agent-{}", random_hex(12)),
                agent_track_sid: format!("TR_{}", random_hex(12)),
            },
            severed: watch::Sender::new(0),
            refuse_until: Mutex::new(None),
            sessions: watch::Sender::new(0),
        }
    }
}

#[derive(Default)]
struct Stats {
    connected: bool,
    packets: u64,
    bytes: u64,
    /// The levels of the last half second of packets, for a "recent" level that one quiet
    /// packet does not hide.
    levels: VecDeque<(Instant, u8)>,
    muted: bool,
    /// Bytes of the microphone audio the client recorded before the agent was there.
    preconnect_bytes: u64,
    chats: Vec<String>,
    /// Utterances the agent has detected the visitor speaking, across sessions.
    utterances: usize,
    agent_state: Option<&'static str>,
    speaking: bool,
}

/// How far back the recent uplink level looks.
const RECENT: Duration = Duration::from_millis(500);

impl RoomStats {
    fn update<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A new session of the room's visitor: its number, and a receiver that changes when a
    /// later one replaces it.
    pub(crate) fn new_session(&self) -> (u64, watch::Receiver<u64>) {
        let mut number = 0;
        self.sessions.send_modify(|latest| {
            *latest += 1;
            number = *latest;
        });
        let mut sessions = self.sessions.subscribe();
        sessions.mark_unchanged();
        (number, sessions)
    }

    /// Whether session `number` is the room's latest: only that one speaks for the visitor
    /// in the stats.
    pub(crate) fn is_latest(&self, number: u64) -> bool {
        *self.sessions.borrow() == number
    }

    /// Changes each time the room is severed.
    pub(crate) fn severed(&self) -> watch::Receiver<u64> {
        self.severed.subscribe()
    }

    /// Ends the room's sessions without a leave, and refuses new ones for `refuse`.
    fn sever(&self, refuse: Duration) {
        *self
            .refuse_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + refuse);
        self.severed.send_modify(|generation| *generation += 1);
    }

    fn refusing(&self) -> bool {
        self.refuse_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// The visitor has started another utterance: its number, counted from 0.
    pub(crate) fn utterance_started(&self) -> usize {
        self.update(|stats| {
            stats.utterances += 1;
            stats.utterances - 1
        })
    }

    /// One RTP packet from the visitor, `bytes` long, with its level if it has one.
    pub(crate) fn packet(&self, bytes: usize, level: Option<u8>) {
        let now = Instant::now();
        self.update(|stats| {
            stats.packets += 1;
            stats.bytes += bytes as u64;
            if let Some(level) = level {
                stats.levels.push_back((now, level));
            }
            while stats
                .levels
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > RECENT)
            {
                stats.levels.pop_front();
            }
        });
    }

    fn json(&self) -> serde_json::Value {
        self.update(|stats| {
            let now = Instant::now();
            // The loudest recent packet: 0 is full scale, 127 silence (RFC 6464).
            let level = stats
                .levels
                .iter()
                .filter(|(at, _)| now.duration_since(*at) <= RECENT)
                .map(|(_, level)| *level)
                .min();
            serde_json::json!({
                "visitor": {
                    "connected": stats.connected,
                    "uplink": {
                        "packets": stats.packets,
                        "bytes": stats.bytes,
                        "level_dbov_recent": level,
                        "muted": stats.muted,
                    },
                    "preconnect_bytes": stats.preconnect_bytes,
                    "chats": stats.chats,
                    "utterances": stats.utterances,
                },
                "agent": {
                    "state": stats.agent_state,
                    "speaking": stats.speaking,
                },
            })
        })
    }
}

/// The signalling routes, for the sandbox's router. Every answer allows any origin: the
/// client's `/rtc/validate` fetch is cross-origin, and a CORS failure there would turn the
/// v1 → v0 fallback into "server unreachable".
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .route("/rtc/v1", get(v1))
        .route("/rtc/v1/validate", get(v1))
        .layer(SetResponseHeaderLayer::overriding(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
}

/// The admin route, relative to the admin prefix.
pub(crate) fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/livekit/rooms/{room}", get(room_stats))
        .route("/livekit/rooms/{room}/sever", post(sever))
}

/// `/rtc/v1` (single peer connection) is not served: a 404 without the "room does not
/// exist" text makes livekit-client fall back to v0.
async fn v1() -> Response {
    (StatusCode::NOT_FOUND, "v1 not served").into_response()
}

#[derive(Deserialize)]
struct Params {
    access_token: Option<String>,
}

/// The conversation a visitor joins: the room must be a web conversation's that has not
/// ended.
struct Joining {
    grant: Visitor,
    conversation: Uuid,
}

/// Checks the token and the room before anything else, as LiveKit does before upgrading;
/// the texts are the ones livekit-client maps to `NotAllowed`.
fn admit(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Joining, (StatusCode, String)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = params.access_token.as_deref().or(bearer) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "invalid token: missing".to_owned(),
        ));
    };
    let (claims, room) = state
        .admit_to_room(token)
        .map_err(|refused| (refused.status(), refused.to_string()))?;
    // A severed room stays unreachable for a while, as after a network failure; a 5xx is
    // what makes the client keep retrying rather than give up as refused.
    if state
        .0
        .livekit
        .existing_room(&claims.room)
        .is_some_and(|room| room.refusing())
    {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "room unavailable".to_owned(),
        ));
    }
    Ok(Joining {
        grant: Visitor {
            identity: claims.identity,
            name: claims.name,
            room: claims.room,
            can_publish: claims.permission.can_publish,
            can_subscribe: claims.permission.can_subscribe,
            can_publish_data: claims.permission.can_publish_data,
        },
        conversation: room.conversation_id,
    })
}

/// `GET /rtc/validate`: what the client asks after a failed WebSocket, to tell a refusal
/// from an unreachable server.
async fn validate(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    match admit(&state, &params, &headers) {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /rtc`: the signalling WebSocket of one visitor.
async fn rtc(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let joining = match admit(&state, &params, &headers) {
        Ok(joining) => joining,
        Err(refusal) => return refusal.into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let stats = state.0.livekit.room(&joining.grant.room);
    // Signalling messages are small (SDP, candidates, a few hundred bytes of protobuf); axum's
    // 64 MiB default would let one client make the stand-in buffer that much.
    let upgrade = upgrade
        .max_message_size(MAX_SIGNAL_BYTES)
        .max_frame_size(MAX_SIGNAL_BYTES);
    upgrade.on_upgrade(move |socket| async move {
        // Boxed: a session holds two peer connections' worth of state across awaits.
        Box::pin(session::run(
            state,
            joining.conversation,
            joining.grant,
            stats,
            socket,
        ))
        .await;
    })
}

/// `POST /__sandbox/livekit/rooms/{room}/sever` with `{"refuse_ms": n}` (optional): the
/// visitor's sessions end at once with no leave and no close frame, and new ones are
/// refused (`503`) for `refuse_ms`, so that the client goes through its reconnection.
async fn sever(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Error> {
    let refuse_ms = match body {
        Ok(bytes) if bytes.is_empty() => 0,
        body => json_body(&headers, body)?
            .get("refuse_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    };
    let stats = state
        .0
        .livekit
        .existing_room(&room)
        .ok_or_else(|| Error::NotFound(format!("Room '{room}' has had no visitor.")))?;
    stats.sever(Duration::from_millis(refuse_ms));
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /__sandbox/livekit/rooms/{room}`: the room's statistics.
async fn room_stats(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    state
        .0
        .livekit
        .existing_room(&room)
        .map(|stats| Json(stats.json()))
        .ok_or_else(|| Error::NotFound(format!("Room '{room}' has had no visitor.")))
}
