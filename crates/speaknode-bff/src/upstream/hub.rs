//! The platform's notification hub: one SignalR connection per BFF process, shared by
//! every widget event stream (CONTRACT.md, "Real-time notifications").
//!
//! - **Lazy.** The connection opens when the first stream subscribes and closes, with a
//!   close message, when the last one has gone; the hub has no per-conversation
//!   subscriptions, so one connection hears every conversation of the BFF's space.
//! - **Protocol.** Negotiate (`negotiateVersion=1`), WebSocket, JSON hub protocol: records
//!   end with `0x1E`, a frame may carry several and a record may span frames. The BFF pings
//!   every 15 s, as SignalR clients do, and gives up on a hub it has heard nothing from for
//!   30 s (the hub pings every 15 s).
//! - **Auth.** The BFF's own access token, as `Authorization: Bearer` on negotiate and on the
//!   upgrade. The contract also takes it as the `access_token` query parameter, which only
//!   browsers need (they cannot set headers on a WebSocket request); a header stays out of
//!   the URLs that proxies log. A 401 drops the cached token, so the next attempt fetches a
//!   new one.
//! - **Fan-out.** `AgentSessionUpdated` carries no history and internal members, so only
//!   its `id` is read: it tells the streams of that conversation to re-read it over REST.
//!   Each conversation has a `watch` channel, so notices that arrive before a stream has
//!   read again collapse into one read.
//! - **Reconnects.** A lost connection (close message, socket error or silence) is opened
//!   again after a capped exponential backoff with jitter. Nothing is replayed after a
//!   reconnect, so after every handshake, the first included (events may have come before
//!   it), every stream re-reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::UpstreamError;
use super::credentials::Credentials;

/// The JSON hub protocol's record separator.
const RS: u8 = 0x1E;
const HANDSHAKE: &str = "{\"protocol\":\"json\",\"version\":1}\u{1e}";
const PING: &str = "{\"type\":6}\u{1e}";
const CLOSE: &str = "{\"type\":7}\u{1e}";
/// SignalR clients ping this often; the hub closes a client silent for 30 s.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The hub pings every 15 s, so this much silence means the connection is gone.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// For the WebSocket upgrade plus the handshake answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The first reconnect waits up to this long, each further one twice as long…
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// …up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Hub records are a few KiB; a longer one is a broken hub, not a reason to run out of memory.
const MAX_RECORD_BYTES: usize = 1 << 20;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The hub client of one BFF. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub(crate) struct Hub(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    /// `{api_base}/hubs/notifications`.
    url: Url,
    credentials: Arc<Credentials>,
    // A std lock: never held across an await.
    state: Mutex<State>,
    /// Woken when the last subscription has gone, so the connection can close.
    idle: Notify,
    negotiations: AtomicU64,
    connected: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Conversation id → the channel its streams wait on. The value means nothing: a change
    /// says only "read it again".
    watchers: HashMap<String, watch::Sender<()>>,
    /// Whether the connection task runs.
    running: bool,
}

/// A stream's interest in one conversation; dropping it ends the interest.
pub(crate) struct Subscription {
    hub: Arc<Inner>,
    id: String,
    changes: watch::Receiver<()>,
}

impl Subscription {
    /// Resolves when the conversation may have changed: the hub announced an update, or a
    /// connection was (re-)established and an update may have been missed.
    pub(crate) async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            // The sender lives as long as a receiver does, so this cannot happen; waiting
            // forever is the safe reading of "no more changes".
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        // This receiver still counts; under the lock no other can be added meanwhile.
        if state
            .watchers
            .get(&self.id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            state.watchers.remove(&self.id);
            if state.watchers.is_empty() {
                self.hub.idle.notify_one();
            }
        }
    }
}

impl Hub {
    pub(crate) fn new(
        http: reqwest::Client,
        api_base: &Url,
        credentials: Arc<Credentials>,
    ) -> anyhow::Result<Self> {
        let mut url = api_base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("upstream.api_base cannot hold paths"))?
            .pop_if_empty()
            .extend(["hubs", "notifications"]);
        Ok(Self(Arc::new(Inner {
            http,
            url,
            credentials,
            state: Mutex::default(),
            idle: Notify::new(),
            negotiations: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        })))
    }

    /// Subscribes to the updates of conversation `id`, opening the connection if none is.
    pub(crate) fn subscribe(&self, id: &str) -> Subscription {
        let mut state = self.0.lock();
        let changes = state
            .watchers
            .entry(id.to_owned())
            .or_insert_with(|| watch::Sender::new(()))
            .subscribe();
        if !state.running {
            state.running = true;
            tokio::spawn(Arc::clone(&self.0).run());
        }
        Subscription {
            hub: Arc::clone(&self.0),
            id: id.to_owned(),
            changes,
        }
    }

    /// Negotiations attempted so far (for metrics: each is one connection attempt).
    pub(crate) fn negotiations(&self) -> u64 {
        self.0.negotiations.load(Ordering::Relaxed)
    }

    /// Whether a connection is open and past its handshake (for metrics).
    pub(crate) fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }
}

/// How a connection ended.
enum Ended {
    /// No stream is left; closed cleanly.
    Idle,
    /// Lost; the reason is for the log.
    Lost(String),
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single map operation, so a poisoned lock still holds a whole map.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the task should end because no stream is left; if so, it is marked as ended
    /// under the same lock a new subscription takes, so the next one starts a new task.
    fn stop_if_idle(&self) -> bool {
        let mut state = self.lock();
        if state.watchers.is_empty() {
            state.running = false;
        }
        !state.running
    }

    /// Tells the streams of conversation `id`, if any, to read it again.
    fn notify(&self, id: &str) {
        if let Some(sender) = self.lock().watchers.get(id) {
            sender.send_replace(());
        }
    }

    /// Tells every stream to read its conversation again.
    fn resync(&self) {
        for sender in self.lock().watchers.values() {
            sender.send_replace(());
        }
    }

    /// The connection task: connects, serves and reconnects until no stream is left.
    async fn run(self: Arc<Self>) {
        let mut failures = 0u32;
        while !self.stop_if_idle() {
            match self.connect().await {
                Ok(connection) => {
                    failures = 0;
                    self.connected.store(true, Ordering::Relaxed);
                    tracing::info!("connected to the platform's notification hub");
                    self.resync();
                    let ended = self.serve(connection).await;
                    self.connected.store(false, Ordering::Relaxed);
                    match ended {
                        Ended::Idle => {
                            tracing::info!(
                                "closed the notification hub connection: no stream left"
                            );
                            continue;
                        }
                        Ended::Lost(reason) => {
                            tracing::warn!(reason, "lost the platform's notification hub");
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot connect to the platform's notification hub");
                }
            }
            let delay = backoff(failures);
            failures = failures.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // No stream left: stop waiting, the loop condition ends the task.
                () = self.idle.notified() => {}
            }
        }
    }

    /// Negotiates, upgrades and completes the handshake.
    async fn connect(&self) -> Result<Connection, UpstreamError> {
        let token = self.credentials.access_token().await?;
        let connection_token = self.negotiate(&token).await?;
        let mut url = self.url.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| UpstreamError::BadGateway("the hub URL takes no ws scheme".into()))?;
        url.query_pairs_mut().append_pair("id", &connection_token);
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| hub_error("cannot build the upgrade request", &e))?;
        request.headers_mut().insert(AUTHORIZATION, bearer(&token)?);
        let handshake = async {
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .map_err(|e| hub_error("WebSocket upgrade failed", &e))?;
            socket
                .send(Message::text(HANDSHAKE))
                .await
                .map_err(|e| hub_error("cannot send the handshake", &e))?;
            let mut records = Records::default();
            let answer = loop {
                if let Some(record) = records.next() {
                    break record;
                }
                match socket.next().await {
                    Some(Ok(frame)) => records.take(&frame)?,
                    Some(Err(e)) => return Err(hub_error("no handshake answer", &e)),
                    None => {
                        return Err(UpstreamError::BadGateway("hub closed in handshake".into()));
                    }
                }
            };
            let answer: HandshakeAnswer = serde_json::from_slice(&answer).map_err(|e| {
                UpstreamError::BadGateway(format!("unreadable hub handshake answer: {e}"))
            })?;
            if let Some(error) = answer.error {
                return Err(UpstreamError::BadGateway(format!(
                    "the hub refused the handshake: {error}"
                )));
            }
            Ok(Connection { socket, records })
        };
        timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| UpstreamError::Timeout("hub upgrade and handshake".into()))?
    }

    /// `POST {hub}/negotiate?negotiateVersion=1`; the connection token.
    async fn negotiate(&self, token: &SecretString) -> Result<String, UpstreamError> {
        self.negotiations.fetch_add(1, Ordering::Relaxed);
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| UpstreamError::BadGateway("the hub URL cannot hold paths".into()))?
            .push("negotiate");
        url.query_pairs_mut().append_pair("negotiateVersion", "1");
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION, bearer(token)?)
            .send()
            .await
            .map_err(|e| hub_error("negotiate failed", &e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                // Revoked, or the realm's key rotated: the next attempt fetches a new token.
                self.credentials.invalidate(token).await;
                return Err(UpstreamError::BadGateway("negotiate: 401".into()));
            }
            status => {
                return Err(UpstreamError::BadGateway(format!("negotiate: {status}")));
            }
        }
        let negotiation: Negotiation = response
            .json()
            .await
            .map_err(|e| hub_error("negotiate: unreadable answer", &e))?;
        if let Some(error) = negotiation.error {
            return Err(UpstreamError::BadGateway(format!("negotiate: {error}")));
        }
        // Version 1 names the transport request by its token; version 0 by the id.
        negotiation
            .connection_token
            .or(negotiation.connection_id)
            .ok_or_else(|| UpstreamError::BadGateway("negotiate: no connection token".into()))
    }

    /// Reads records and pings until the connection ends or no stream is left.
    async fn serve(&self, mut connection: Connection) -> Ended {
        let socket = &mut connection.socket;
        let mut last_sent = Instant::now();
        let mut last_received = Instant::now();
        loop {
            while let Some(record) = connection.records.next() {
                match parse(&record) {
                    Ok(Incoming::Updated(id)) => self.notify(&id),
                    Ok(Incoming::Close(error)) => {
                        return Ended::Lost(format!(
                            "the hub closed the connection: {}",
                            error.as_deref().unwrap_or("no reason given")
                        ));
                    }
                    Ok(Incoming::Other) => {}
                    // One unreadable record costs at most one missed update, which the
                    // next reconnect's re-read would cover; the connection stays.
                    Err(error) => tracing::warn!(%error, "unreadable hub record"),
                }
            }
            tokio::select! {
                () = self.idle.notified() => {
                    if self.lock().watchers.is_empty() {
                        // The close message, then a close frame; the hub may be gone already.
                        let _ = socket.send(Message::text(CLOSE)).await;
                        let _ = socket.close(None).await;
                        return Ended::Idle;
                    }
                }
                () = sleep_until(last_sent + PING_INTERVAL) => {
                    if let Err(error) = socket.send(Message::text(PING)).await {
                        return Ended::Lost(format!("cannot ping: {error}"));
                    }
                    last_sent = Instant::now();
                }
                () = sleep_until(last_received + SERVER_TIMEOUT) => {
                    return Ended::Lost("nothing from the hub for 30 s".into());
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Close(_))) | None => {
                        return Ended::Lost("the socket closed".into());
                    }
                    Some(Ok(frame)) => {
                        last_received = Instant::now();
                        if let Err(error) = connection.records.take(&frame) {
                            return Ended::Lost(error.to_string());
                        }
                    }
                    Some(Err(error)) => return Ended::Lost(format!("socket error: {error}")),
                },
            }
        }
    }
}

/// An open connection past its handshake, with records already read after the answer.
struct Connection {
    socket: Socket,
    records: Records,
}

/// `Authorization: Bearer …`, marked sensitive so no layer prints it.
fn bearer(token: &SecretString) -> Result<HeaderValue, UpstreamError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
        .map_err(|_| UpstreamError::BadGateway("the access token is not a header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn hub_error(what: &str, error: &dyn std::fmt::Display) -> UpstreamError {
    UpstreamError::BadGateway(format!("hub: {what}: {error}"))
}

/// The wait before reconnect attempt `failures + 1`: exponential, capped, and with "equal
/// jitter" (half fixed, half random), so BFF replicas that lost the hub together do not
/// come back in step.
fn backoff(failures: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(BACKOFF_CAP);
    let mut bytes = [0u8; 4];
    // Without randomness the wait is merely not jittered.
    let _ = getrandom::getrandom(&mut bytes);
    let fraction = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX);
    ceiling / 2 + (ceiling / 2).mul_f64(fraction)
}

/// The negotiate answer's members the BFF uses (`fixtures/hub-negotiate-*.json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Negotiation {
    connection_token: Option<String>,
    connection_id: Option<String>,
    error: Option<String>,
}

/// `{}` or `{"error": …}` (`fixtures/hub-handshake-*.json`).
#[derive(Deserialize)]
struct HandshakeAnswer {
    error: Option<String>,
}

/// A record's envelope; the arguments are read only for the one target the BFF uses.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: i64,
    target: Option<String>,
    error: Option<String>,
}

/// `AgentSessionUpdated`'s argument, reduced to its id: the rest is internal or stale by the
/// time a stream re-reads the conversation.
#[derive(Deserialize)]
struct Invocation {
    arguments: (SessionRef,),
}

#[derive(Deserialize)]
struct SessionRef {
    id: String,
}

#[derive(Debug, PartialEq)]
enum Incoming {
    /// `AgentSessionUpdated` for this conversation id.
    Updated(String),
    /// A close message, with the hub's reason.
    Close(Option<String>),
    /// Pings, other targets, completions and anything newer.
    Other,
}

fn parse(record: &[u8]) -> serde_json::Result<Incoming> {
    let envelope: Envelope = serde_json::from_slice(record)?;
    Ok(match (envelope.kind, envelope.target.as_deref()) {
        (1, Some("AgentSessionUpdated")) => {
            let Invocation {
                arguments: (session,),
            } = serde_json::from_slice(record)?;
            Incoming::Updated(session.id)
        }
        (7, _) => Incoming::Close(envelope.error),
        _ => Incoming::Other,
    })
}

/// Cuts the byte stream of a connection's frames into records at the separator.
#[derive(Default)]
struct Records {
    buffer: Vec<u8>,
}

impl Records {
    fn take(&mut self, frame: &Message) -> Result<(), UpstreamError> {
        let bytes: &[u8] = match frame {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            // WebSocket pings are answered by tungstenite itself.
            _ => return Ok(()),
        };
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > MAX_RECORD_BYTES && !self.buffer.contains(&RS) {
            return Err(UpstreamError::BadGateway(format!(
                "hub record over {MAX_RECORD_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// The next whole record, without its separator.
    fn next(&mut self) -> Option<Vec<u8>> {
        let end = self.buffer.iter().position(|&b| b == RS)?;
        let mut record: Vec<u8> = self.buffer.drain(..=end).collect();
        record.pop();
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../speaknode-sandbox/contract/fixtures"
    );

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).expect("a fixture")
    }

    #[test]
    fn records_are_cut_at_the_separator_within_and_across_frames() {
        let mut records = Records::default();
        records
            .take(&Message::text("{\"type\":6}\u{1e}{\"ty"))
            .expect("take");
        assert_eq!(records.next().as_deref(), Some(&b"{\"type\":6}"[..]));
        assert_eq!(records.next(), None, "half a record is not one");
        records
            .take(&Message::binary(b"pe\":7}\x1e{}\x1e".to_vec()))
            .expect("take");
        assert_eq!(records.next().as_deref(), Some(&b"{\"type\":7}"[..]));
        assert_eq!(records.next().as_deref(), Some(&b"{}"[..]));
        assert_eq!(records.next(), None);
    }

    #[test]
    fn an_endless_record_is_refused() {
        let mut records = Records::default();
        let chunk = Message::binary(vec![b' '; MAX_RECORD_BYTES / 2 + 1]);
        records.take(&chunk).expect("half is fine");
        assert!(records.take(&chunk).is_err());
    }

    #[test]
    fn fixtures_parse_to_what_the_bff_needs() {
        assert_eq!(
            parse(&fixture("hub-agent-session-updated.json")).expect("parses"),
            Incoming::Updated("a3bb189e-8bf9-3888-9912-ace4e6543002".into())
        );
        assert_eq!(
            parse(&fixture("hub-close.json")).expect("parses"),
            Incoming::Close(Some("Server is shutting down.".into()))
        );
        for other in [
            "hub-ping.json",
            "hub-usage-updated.json",
            "hub-completion-error.json",
        ] {
            assert_eq!(
                parse(&fixture(other)).expect(other),
                Incoming::Other,
                "{other}"
            );
        }
        assert_eq!(
            parse(br#"{"type":7}"#).expect("parses"),
            Incoming::Close(None)
        );
        assert!(parse(b"[1]").is_err());
        let answer: HandshakeAnswer =
            serde_json::from_slice(&fixture("hub-handshake-error.json")).expect("parses");
        assert!(answer.error.is_some());
        let negotiation: Negotiation =
            serde_json::from_slice(&fixture("hub-negotiate-response.json")).expect("parses");
        assert_eq!(
            negotiation.connection_token.as_deref(),
            Some("Xj3mR8vK2pLq9sT4uW7yZa")
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        for failures in [0, 1, 2, 5, 40] {
            let ceiling = BACKOFF_BASE
                .saturating_mul(2u32.pow(failures.min(16)))
                .min(BACKOFF_CAP);
            let delay = backoff(failures);
            assert!(
                ceiling / 2 <= delay && delay <= ceiling,
                "{failures}: {delay:?}"
            );
        }
        assert!(backoff(u32::MAX) <= BACKOFF_CAP);
    }
}
