//! The SignalR hub at `/hubs/notifications`, as ASP.NET Core serves one: the negotiate
//! endpoint, the WebSockets transport and the JSON hub protocol, pushing the events of the
//! caller's space as `AgentSessionUpdated` and `UsageUpdated` invocations.
//!
//! Only what a listening client needs is here: no other transports, no MessagePack, no hub
//! methods to call, no stateful reconnect. `contract/CONTRACT.md` records each choice.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{
        FromRequestParts, Query, State,
        ws::{
            CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::{
    sync::broadcast::{Receiver, error::RecvError},
    time::{Instant, sleep_until},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    AppState,
    auth::Caller,
    config::HubConfig,
    error::Error,
    events::{Event, EventBus},
};

/// The record separator that ends every message of the JSON hub protocol.
const RS: u8 = 0x1e;

/// The largest message a client may send: ASP.NET's default `MaximumReceiveMessageSize`.
const MAX_MESSAGE_SIZE: usize = 32 * 1024;

/// The largest WebSocket frame or message the transport reads; a frame may hold several
/// records, each within [`MAX_MESSAGE_SIZE`].
const MAX_FRAME_SIZE: usize = 2 * MAX_MESSAGE_SIZE;

/// How long a negotiated connection token can be used: a negotiated connection that no
/// transport has taken up is disposed after ASP.NET's `DisconnectTimeout`.
const NEGOTIATION_TTL: Duration = Duration::from_secs(15);

/// How long the server waits for the client's close frame once it has sent its own, so that
/// the client reads everything before the TCP connection closes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

const PING: &str = r#"{"type":6}"#;

/// The hub's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/hubs/notifications", get(connect))
        .route("/hubs/notifications/negotiate", post(negotiate))
}

/// The hub's shared state: negotiated tokens and the connections' tasks.
pub(crate) struct Hub {
    config: HubConfig,
    /// Connection tokens negotiated but not used yet.
    pending: Mutex<HashMap<String, Negotiated>>,
    connections: TaskTracker,
    shutdown: CancellationToken,
}

struct Negotiated {
    connection_id: String,
    expires: Instant,
}

impl Hub {
    /// A hub whose connections close when `shutdown` is cancelled.
    pub(crate) fn new(config: HubConfig, shutdown: CancellationToken) -> Self {
        Self {
            config,
            pending: Mutex::default(),
            connections: TaskTracker::new(),
            shutdown,
        }
    }

    /// Closes every connection with a close message and waits until they have ended.
    pub(crate) async fn shut_down(&self) {
        self.shutdown.cancel();
        self.connections.close();
        self.connections.wait().await;
    }

    // A std lock is enough: it is held for single map operations, never across an await.
    fn pending(&self) -> MutexGuard<'_, HashMap<String, Negotiated>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a negotiated connection until a transport takes it up or it expires.
    fn remember(&self, token: String, connection_id: String) {
        let now = Instant::now();
        let mut pending = self.pending();
        // Pruning here bounds the map by what one TTL's worth of negotiations can add.
        pending.retain(|_, negotiated| negotiated.expires > now);
        let expires = now + NEGOTIATION_TTL;
        pending.insert(
            token,
            Negotiated {
                connection_id,
                expires,
            },
        );
    }

    /// Whether `token` was negotiated and has not expired; it stays usable.
    fn is_pending(&self, token: &str) -> bool {
        self.pending()
            .get(token)
            .is_some_and(|negotiated| negotiated.expires > Instant::now())
    }

    /// Uses a negotiated token up: a token opens one connection only.
    fn redeem(&self, token: &str) -> Option<String> {
        self.pending()
            .remove(token)
            .filter(|negotiated| negotiated.expires > Instant::now())
            .map(|negotiated| negotiated.connection_id)
    }
}

/// The caller of a hub request. Browsers cannot set headers on a WebSocket request, so the
/// token may come as the `access_token` query parameter, which then wins over the header, as
/// in ASP.NET's documented JwtBearer set-up for hubs. Either way it is checked exactly as the
/// REST API checks it.
struct HubCaller(Caller);

impl FromRequestParts<AppState> for HubCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(token) = query(&parts.uri, "access_token").filter(|t| !t.is_empty()) {
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Error::Unauthorized { token_sent: true })?;
            value.set_sensitive(true);
            parts.headers.insert(header::AUTHORIZATION, value);
        }
        Caller::from_request_parts(parts, state).await.map(Self)
    }
}

/// The first value of query parameter `name`; names match case-insensitively, as ASP.NET's
/// query collection does.
fn query(uri: &Uri, name: &str) -> Option<String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).ok()?;
    pairs
        .into_iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// 16 random bytes in base64url, the form of ASP.NET's connection ids and tokens. The bytes
/// of a v4 UUID carry 122 random bits, and uuid's generator has no error to handle.
fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Negotiation<'a> {
    negotiate_version: u8,
    connection_id: &'a str,
    /// Version 1 only: the secret the transport request names; version 0 uses the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_token: Option<&'a str>,
    available_transports: [Transport; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Transport {
    transport: &'static str,
    transfer_formats: [&'static str; 2],
}

/// `POST /hubs/notifications/negotiate?negotiateVersion=1`.
async fn negotiate(
    State(state): State<AppState>,
    HubCaller(caller): HubCaller,
    uri: Uri,
) -> Response {
    // ASP.NET answers a version it cannot use with 200 and an `error` member.
    let version = match query(&uri, "negotiateVersion").map(|v| v.parse::<i32>()) {
        None => 0,
        Some(Ok(version)) if version >= 1 => 1,
        Some(Ok(0)) => 0,
        Some(Ok(version)) => {
            let error = format!(
                "The client requested version '{version}', but the server does not support this version."
            );
            return Json(json!({ "error": error })).into_response();
        }
        Some(Err(_)) => {
            let error = "The client requested a non-integer protocol version.";
            return Json(json!({ "error": error })).into_response();
        }
    };
    let connection_id = random_id();
    let token = (version == 1).then(random_id);
    let key = token.clone().unwrap_or_else(|| connection_id.clone());
    state.0.hub.remember(key, connection_id.clone());
    tracing::debug!(connection = %connection_id, space = %caller.space_id, "hub negotiated");
    Json(Negotiation {
        negotiate_version: version,
        connection_id: &connection_id,
        connection_token: token.as_deref(),
        available_transports: [Transport {
            transport: "WebSockets",
            transfer_formats: ["Text", "Binary"],
        }],
    })
    .into_response()
}

/// The plain-text answers of ASP.NET's connection dispatcher.
fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text.into()).into_response()
}

/// `GET /hubs/notifications?id=<connectionToken>`, a WebSocket upgrade.
async fn connect(
    State(state): State<AppState>,
    HubCaller(caller): HubCaller,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let hub = &state.0.hub;
    let token = query(&uri, "id").filter(|id| !id.is_empty());
    let Ok(upgrade) = upgrade else {
        // ASP.NET serves a GET that is not a WebSocket request as Server-Sent Events or long
        // polling, which this hub does not offer; its answers are mirrored here.
        return match token {
            None => plain(StatusCode::BAD_REQUEST, "Connection ID required"),
            Some(token) if !hub.is_pending(&token) => {
                plain(StatusCode::NOT_FOUND, "No Connection with that ID")
            }
            Some(_) => {
                let event_stream = headers
                    .get(header::ACCEPT)
                    .and_then(|accept| accept.to_str().ok())
                    .is_some_and(|accept| accept.contains("text/event-stream"));
                let transport = if event_stream {
                    "ServerSentEvents"
                } else {
                    "LongPolling"
                };
                let text = format!("{transport} transport not supported by this end point type");
                plain(StatusCode::NOT_FOUND, text)
            }
        };
    };
    let connection_id = match token {
        // Without an id the client skipped negotiation, which the WebSockets transport allows.
        None => random_id(),
        Some(token) => match hub.redeem(&token) {
            Some(connection_id) => connection_id,
            None => return plain(StatusCode::NOT_FOUND, "No Connection with that ID"),
        },
    };
    let space = caller.space_id;
    upgrade
        .max_frame_size(MAX_FRAME_SIZE)
        .max_message_size(MAX_FRAME_SIZE)
        .on_upgrade(move |socket| async move {
            let hub = &state.0.hub;
            let connection = Connection {
                socket,
                id: connection_id,
                space,
                config: hub.config,
                shutdown: hub.shutdown.clone(),
                dropped: state.faults().watch_drop_hub_connections(),
                records: Records::default(),
            };
            hub.connections
                .track_future(connection.run(state.0.store.events()))
                .await;
        })
}

/// One client's WebSocket, from handshake to close.
struct Connection {
    socket: WebSocket,
    id: String,
    space: Uuid,
    config: HubConfig,
    shutdown: CancellationToken,
    /// The "dropped hub connections" fault: when it is switched on, the connection ends
    /// without a close message or close frame, as a network failure would end it.
    dropped: tokio::sync::watch::Receiver<bool>,
    records: Records,
}

/// A close message, `{"type":7}`, with an error and `allowReconnect` where they apply.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Close {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_reconnect: bool,
}

impl Close {
    fn new(error: Option<String>, allow_reconnect: bool) -> Self {
        Self {
            kind: 7,
            error,
            allow_reconnect,
        }
    }

    /// The close of a client that broke the protocol; ASP.NET's text with its detailed
    /// errors on, as a development server has them.
    fn protocol_error(reason: &str) -> Self {
        let error = format!("Connection closed with an error. InvalidDataException: {reason}");
        Self::new(Some(error), false)
    }
}

/// Resolves when the drop fault is switched on; never if its sender is gone.
async fn dropped(flag: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if flag.changed().await.is_err() {
            return std::future::pending().await;
        }
        if *flag.borrow_and_update() {
            return;
        }
    }
}

impl Connection {
    async fn run(mut self, bus: &EventBus) {
        if *self.dropped.borrow_and_update() {
            // Dropped before it began: the client sees its socket vanish.
            return;
        }
        if let Some(mut events) = self.handshake(bus).await {
            tracing::debug!(connection = %self.id, space = %self.space, "hub connection open");
            let mut flag = self.dropped.clone();
            let close = tokio::select! {
                close = self.serve(&mut events) => close,
                () = dropped(&mut flag) => {
                    tracing::debug!(connection = %self.id, "hub connection dropped by a fault");
                    // No close message, no close frame: the socket is simply gone.
                    return;
                }
            };
            if let Some(close) = close {
                tracing::debug!(connection = %self.id, ?close, "hub connection closing");
                if let Ok(text) = serde_json::to_string(&close) {
                    // The client may be gone already; the close frame below ends it anyway.
                    let _ = self.send(text).await;
                }
            }
        }
        self.finish().await;
    }

    /// Reads the handshake request and answers it; the event subscription on success.
    async fn handshake(&mut self, bus: &EventBus) -> Option<Receiver<Event>> {
        let deadline = Instant::now() + Duration::from_millis(self.config.handshake_timeout_ms);
        loop {
            let record = match self.records.next() {
                Ok(Some(record)) => record,
                Ok(None) => {
                    tokio::select! {
                        () = self.shutdown.cancelled() => return None,
                        () = sleep_until(deadline) => {
                            self.refuse("Handshake was canceled.").await;
                            return None;
                        }
                        frame = self.socket.recv() => if !self.records.take(frame) {
                            return None;
                        },
                    }
                    continue;
                }
                Err(_) => {
                    self.refuse("Handshake was canceled.").await;
                    return None;
                }
            };
            return match parse_handshake(&record) {
                Ok(()) => {
                    // Subscribing before answering: a client gets every event published
                    // after it has read the answer.
                    let events = bus.subscribe();
                    self.send("{}".into()).await.ok()?;
                    Some(events)
                }
                Err(error) => {
                    self.refuse(&error).await;
                    None
                }
            };
        }
    }

    async fn refuse(&mut self, error: &str) {
        tracing::debug!(connection = %self.id, error, "hub handshake refused");
        let _ = self.send(json!({ "error": error }).to_string()).await;
    }

    /// Pushes events, pings and answers the client until one side ends the connection;
    /// `None` if the client went away, else the close message to send.
    async fn serve(&mut self, events: &mut Receiver<Event>) -> Option<Close> {
        let keep_alive = Duration::from_millis(self.config.keep_alive_interval_ms);
        let client_timeout = Duration::from_millis(self.config.client_timeout_ms);
        let mut last_sent = Instant::now();
        let mut last_received = Instant::now();
        loop {
            // Records come several to a frame (the handshake's frame may hold some too), so
            // all that have arrived are handled before waiting for more.
            loop {
                let record = match self.records.next() {
                    Ok(Some(record)) => record,
                    Ok(None) => break,
                    Err(reason) => return Some(Close::protocol_error(&reason)),
                };
                last_received = Instant::now();
                match parse_message(&record) {
                    Ok(Incoming::Close) => return Some(Close::new(None, false)),
                    Ok(Incoming::Invocation {
                        invocation_id: Some(invocation_id),
                        target,
                    }) => {
                        // The hub has no methods: ASP.NET's answer to an unknown one.
                        let error = format!(
                            "Failed to invoke '{target}' due to an error on the server. \
                             HubException: Method does not exist."
                        );
                        let completion = Completion {
                            kind: 3,
                            invocation_id: &invocation_id,
                            error: &error,
                        };
                        let text = serde_json::to_string(&completion).ok()?;
                        self.send(text).await.ok()?;
                        last_sent = Instant::now();
                    }
                    Ok(_) => {}
                    Err(reason) => return Some(Close::protocol_error(&reason)),
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    return Some(Close::new(Some("Server is shutting down.".into()), true));
                }
                () = sleep_until(last_received + client_timeout) => {
                    let error = "Server timeout elapsed without receiving a message from the client.";
                    return Some(Close::new(Some(error.into()), true));
                }
                () = sleep_until(last_sent + keep_alive) => {
                    self.send(PING.into()).await.ok()?;
                    last_sent = Instant::now();
                }
                event = events.recv() => match event {
                    Ok(event) if event.space() == self.space => {
                        if let Some(text) = invocation(&event) {
                            self.send(text).await.ok()?;
                            last_sent = Instant::now();
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        // Never skip events silently: a reconnecting client re-reads state.
                        let error = format!(
                            "Connection closed with an error. {missed} events could not be sent in time."
                        );
                        return Some(Close::new(Some(error), true));
                    }
                    Err(RecvError::Closed) => {
                        return Some(Close::new(Some("Server is shutting down.".into()), true));
                    }
                },
                frame = self.socket.recv() => if !self.records.take(frame) {
                    return None;
                },
            }
        }
    }

    /// Sends one record in a text frame, as the JSON protocol's transfer format is text.
    async fn send(&mut self, mut json: String) -> Result<(), axum::Error> {
        json.push(char::from(RS));
        self.socket.send(Message::Text(json.into())).await
    }

    /// Sends a close frame (unless the client sent one first, which was answered) and waits a
    /// little for the client's, so that the client reads all that was sent before.
    async fn finish(&mut self) {
        let frame = CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(_)) = self.socket.recv().await {}
        })
        .await;
    }
}

/// The `{"type":1,...}` invocation that tells a client about `event`.
fn invocation(event: &Event) -> Option<String> {
    let (target, argument) = match event {
        Event::Conversation { conversation, .. } => {
            let mut session = serde_json::to_value(&**conversation).ok()?;
            // The documented AgentSessionUpdated members have no transcript; it stays behind
            // `GET /api/v1/conversations/{id}`.
            session.as_object_mut()?.remove("history");
            ("AgentSessionUpdated", session)
        }
        Event::Usage {
            metric_code, value, ..
        } => (
            "UsageUpdated",
            json!({ "metric_code": metric_code, "value": value }),
        ),
    };
    let message = Invocation {
        kind: 1,
        target,
        arguments: [argument],
    };
    serde_json::to_string(&message).ok()
}

/// The server's messages to the client, members in the order ASP.NET writes them.
#[derive(Serialize)]
struct Invocation<'a> {
    #[serde(rename = "type")]
    kind: u8,
    target: &'a str,
    arguments: [Value; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Completion<'a> {
    #[serde(rename = "type")]
    kind: u8,
    invocation_id: &'a str,
    error: &'a str,
}

/// Bytes from the client, cut into records at the record separator. A record may span
/// frames, and a frame may hold several records.
#[derive(Default)]
struct Records {
    buffer: Vec<u8>,
}

impl Records {
    /// Takes in what the socket read; `false` when the client has gone or is closing.
    fn take(&mut self, frame: Option<Result<Message, axum::Error>>) -> bool {
        match frame {
            Some(Ok(Message::Text(text))) => self.buffer.extend_from_slice(text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => self.buffer.extend_from_slice(&bytes),
            // The WebSocket layer answers pings itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
        }
        true
    }

    /// The next complete record, without its separator; an error when a record is, or is
    /// growing, larger than a message may be.
    fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        let end = self.buffer.iter().position(|&byte| byte == RS);
        if end.unwrap_or(self.buffer.len()) > MAX_MESSAGE_SIZE {
            return Err(format!(
                "The maximum message size of {MAX_MESSAGE_SIZE}B was exceeded. \
                 The message size can be configured in AddHubOptions."
            ));
        }
        Ok(end.map(|end| {
            let mut record: Vec<u8> = self.buffer.drain(..=end).collect();
            record.pop();
            record
        }))
    }
}

/// Checks a handshake request; the error is the text of the handshake response.
fn parse_handshake(record: &[u8]) -> Result<(), String> {
    let invalid = |reason: &str| {
        format!(
            "An unexpected error occurred during connection handshake. \
             InvalidDataException: {reason}"
        )
    };
    let request: Value =
        serde_json::from_slice(record).map_err(|e| invalid(&format!("Error reading JSON: {e}")))?;
    let protocol = request
        .get("protocol")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Missing required property 'protocol'."))?;
    let version = request
        .get("version")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("Missing required property 'version'."))?;
    if protocol != "json" {
        return Err(format!("The protocol '{protocol}' is not supported."));
    }
    // The JSON protocol is at version 1 and accepts any version up to its own.
    if version > 1 {
        return Err(format!(
            "The server does not support version {version} of the '{protocol}' protocol."
        ));
    }
    Ok(())
}

/// What the server does with a client's message.
#[derive(Debug, PartialEq, Eq)]
enum Incoming {
    /// An invocation of a hub method; without an id the caller expects no answer.
    Invocation {
        invocation_id: Option<String>,
        target: String,
    },
    /// The client closes the connection.
    Close,
    /// A ping (it only shows that the client is there), or a message the hub has no use for,
    /// such as a message type newer than this server.
    Other,
}

/// Reads one record of the JSON hub protocol; the error names what is wrong.
fn parse_message(record: &[u8]) -> Result<Incoming, String> {
    let message: Value =
        serde_json::from_slice(record).map_err(|e| format!("Error reading JSON: {e}"))?;
    let Some(message) = message.as_object() else {
        return Err("Unexpected JSON Token Type. Expected a JSON Object.".into());
    };
    let kind = message
        .get("type")
        .ok_or("Missing required property 'type'.")?
        .as_i64()
        .ok_or("Expected 'type' to be of type Integer.")?;
    Ok(match kind {
        // Invocation and StreamInvocation.
        1 | 4 => {
            let target = message
                .get("target")
                .and_then(Value::as_str)
                .ok_or("Missing required property 'target'.")?;
            let invocation_id = match message.get("invocationId") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(id.clone()),
                Some(_) => return Err("Expected 'invocationId' to be of type String.".into()),
            };
            Incoming::Invocation {
                invocation_id,
                target: target.to_owned(),
            }
        }
        7 => Incoming::Close,
        _ => Incoming::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(chunks: &[&str]) -> (Vec<String>, Records) {
        let mut records = Records::default();
        let mut complete = Vec::new();
        for chunk in chunks {
            assert!(records.take(Some(Ok(Message::Text((*chunk).into())))));
            while let Ok(Some(record)) = records.next() {
                complete.push(String::from_utf8(record).expect("UTF-8"));
            }
        }
        (complete, records)
    }

    #[test]
    fn records_are_cut_at_the_separator_across_and_within_frames() {
        let (complete, rest) = records(&[
            "{\"type\":6}\u{1e}{\"type\":1,",
            "\"target\":\"A\"}\u{1e}\u{1e}{\"ty",
        ]);
        assert_eq!(
            complete,
            [r#"{"type":6}"#, r#"{"type":1,"target":"A"}"#, ""]
        );
        assert_eq!(rest.buffer, b"{\"ty");
    }

    #[test]
    fn an_oversized_record_is_an_error_even_before_it_ends() {
        let mut records = Records::default();
        let big = "x".repeat(MAX_MESSAGE_SIZE + 1);
        records.take(Some(Ok(Message::Text(big.into()))));
        assert!(records.next().is_err());
        let mut records = Records::default();
        let fits = format!("{}\u{1e}", "x".repeat(MAX_MESSAGE_SIZE));
        records.take(Some(Ok(Message::Text(fits.into()))));
        assert!(matches!(records.next(), Ok(Some(record)) if record.len() == MAX_MESSAGE_SIZE));
    }

    #[test]
    fn a_closing_or_gone_client_ends_reading() {
        let mut records = Records::default();
        assert!(!records.take(None));
        assert!(!records.take(Some(Ok(Message::Close(None)))));
        assert!(records.take(Some(Ok(Message::Ping(Default::default())))));
    }

    #[test]
    fn handshakes() {
        assert_eq!(
            parse_handshake(br#"{"protocol":"json","version":1}"#),
            Ok(())
        );
        assert_eq!(
            parse_handshake(br#"{"protocol":"messagepack","version":1}"#),
            Err("The protocol 'messagepack' is not supported.".into())
        );
        assert_eq!(
            parse_handshake(br#"{"protocol":"json","version":2}"#),
            Err("The server does not support version 2 of the 'json' protocol.".into())
        );
        for bad in [
            &b"{\"version\":1}"[..],
            b"{\"protocol\":\"json\"}",
            b"[",
            b"",
        ] {
            let error = parse_handshake(bad).expect_err("invalid");
            assert!(error.starts_with("An unexpected error occurred"), "{error}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(parse_message(br#"{"type":6}"#), Ok(Incoming::Other));
        assert_eq!(
            parse_message(br#"{"type":7,"error":null}"#),
            Ok(Incoming::Close)
        );
        assert_eq!(parse_message(br#"{"type":42,"x":[]}"#), Ok(Incoming::Other));
        assert_eq!(
            parse_message(br#"{"type":1,"invocationId":"7","target":"Join","arguments":[]}"#),
            Ok(Incoming::Invocation {
                invocation_id: Some("7".into()),
                target: "Join".into()
            })
        );
        assert_eq!(
            parse_message(br#"{"type":1,"target":"Join","arguments":[]}"#),
            Ok(Incoming::Invocation {
                invocation_id: None,
                target: "Join".into()
            })
        );
        for bad in [
            &b"{}"[..],
            b"{\"type\":\"6\"}",
            b"[6]",
            b"{\"type\":1}",
            b"{\"type\":1,\"target\":\"A\",\"invocationId\":7}",
            b"not json",
        ] {
            assert!(
                parse_message(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn close_messages_carry_only_what_applies() -> serde_json::Result<()> {
        assert_eq!(
            serde_json::to_string(&Close::new(None, false))?,
            r#"{"type":7}"#
        );
        assert_eq!(
            serde_json::to_string(&Close::new(Some("Bye.".into()), true))?,
            r#"{"type":7,"error":"Bye.","allowReconnect":true}"#
        );
        Ok(())
    }

    #[test]
    fn query_names_match_in_any_case() {
        let uri: Uri = "/hubs/notifications?ID=abc&access_token=a%2Bb"
            .parse()
            .expect("URI");
        assert_eq!(query(&uri, "id").as_deref(), Some("abc"));
        assert_eq!(query(&uri, "access_token").as_deref(), Some("a+b"));
        assert_eq!(query(&uri, "negotiateVersion"), None);
    }

    #[test]
    fn connection_ids_look_like_aspnets() {
        let id = random_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(id, random_id());
    }
}
