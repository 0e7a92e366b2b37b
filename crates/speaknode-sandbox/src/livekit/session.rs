//! One visitor's session: the signalling WebSocket, the subscriber connection the stand-in
//! offers (the agent's voice and data channels) and the publisher connection the visitor
//! offers (the microphone and the visitor's data channels), and the agent that shares the
//! room with the visitor and follows the conversation's transcript.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::{Bytes, BytesMut};
use livekit_protocol as proto;
use prost::Message as _;
use proto::{signal_request, signal_response};
use rtc::media::Sample;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webrtc::{
    data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit},
    media_stream::{
        track_local::{TrackLocal, static_sample::TrackLocalStaticSample},
        track_remote::{TrackRemote, TrackRemoteEvent},
    },
    peer_connection::{
        PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceGatheringState,
        RTCPeerConnectionState, RTCSessionDescription,
    },
};

use super::{
    RoomStats, media,
    signal::{self, Visitor},
    streams::{self, Assembler, Taken, Transcription},
    vad::{Speech, Vad},
};
use crate::{
    AppState,
    events::Event,
    model::{Conversation, Role, Status, Timestamp, random_hex, speaking_time},
};

/// The agent's tone while it speaks, distinct from the test microphone (440 Hz) and from
/// Chromium's own fake tone (about 400 Hz).
const TONE_HZ: f64 = 880.0;

/// How long ICE gathering on loopback may take before the description goes out as it is.
const GATHERING_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an agent's subscription takes to bind once it sees the visitor's microphone:
/// on LiveKit the agent asks to subscribe, the server offers it a down track, the agent
/// answers, and only then does the publisher get `track_subscribed`. Hundreds of
/// milliseconds on a real deployment; a stand-in answering at once would end the client's
/// pre-connect recording before its first 100 ms chunk, and the agent would get nothing.
const SUBSCRIBE_ROUND_TRIP: Duration = Duration::from_millis(300);

/// How often the detector of the visitor's speech looks at the clock when no packet comes.
const VAD_TICK: Duration = Duration::from_millis(100);

/// The shortest the agent speaks, so that a browser has time to hear a short greeting.
const MIN_SPEECH: Duration = Duration::from_secs(2);

/// Which of the visitor's two connections a message is about (`SignalTarget`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Publisher,
    Subscriber,
}

/// What the connections' callbacks tell the session.
enum Internal {
    /// A data packet from the visitor.
    Data(BytesMut),
    /// The first RTP packet of the visitor's microphone arrived.
    FirstPacket,
    /// The agent's subscription to the visitor's track (this sid) is bound.
    Subscribed(String),
    /// The visitor started or stopped speaking.
    Speech(Speech),
}

/// Runs one visitor's session until the visitor leaves, the socket drops or the
/// conversation ends.
pub(crate) async fn run(
    state: AppState,
    conversation: Uuid,
    grant: Visitor,
    stats: Arc<RoomStats>,
    mut socket: WebSocket,
) {
    let stop = CancellationToken::new();
    let (out, mut outgoing) = mpsc::unbounded_channel();
    let (internal, mut internals) = mpsc::unbounded_channel();
    let mut events = state.0.store.events().subscribe();
    let mut severed = stats.severed();
    // Whatever an older session of this visitor still does, it stops now.
    let (number, mut sessions) = stats.new_session();
    let mut dropped = false;
    let mut session = match Session::start(
        state.clone(),
        conversation,
        grant,
        Arc::clone(&stats),
        out,
        internal,
        stop.clone(),
    )
    .await
    {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "LiveKit session did not start");
            return;
        }
    };
    stats.update(|stats| stats.connected = true);
    if let Err(error) = session.begin().await {
        tracing::warn!(%error, "LiveKit session could not offer");
    }
    loop {
        tokio::select! {
            // Outgoing messages first, so the join response leaves before anything else.
            biased;
            Some(message) = outgoing.recv() => {
                let frame = signal::encode_response(message);
                if socket.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            frame = socket.recv() => match frame {
                Some(Ok(Message::Binary(frame))) => {
                    let Some(request) = signal::decode_request(&frame) else { continue };
                    if !session.on_request(request).await {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            Some(internal) = internals.recv() => session.on_internal(internal).await,
            event = events.recv() => match event {
                Ok(Event::Conversation { conversation: snapshot, .. })
                    if snapshot.id == conversation => {
                    if !session.on_conversation(&snapshot).await {
                        // Let the leave reach the client before the socket closes.
                        while let Ok(message) = outgoing.try_recv() {
                            let frame = signal::encode_response(message);
                            let _ = socket.send(Message::Binary(frame.into())).await;
                        }
                        break;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(snapshot) = session.snapshot()
                        && !session.on_conversation(&snapshot).await
                    {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Ok(()) = severed.changed() => {
                dropped = true;
                break;
            }
            Ok(()) = sessions.changed() => {
                // The same identity joined again (another tab, a client that rejoined without
                // leaving): this older connection is told why and closed, as LiveKit does.
                let _ = socket
                    .send(Message::Binary(signal::encode_response(signal::duplicate_identity()).into()))
                    .await;
                break;
            }
            () = stop.cancelled() => break,
            () = state.0.shutdown.cancelled() => break,
        }
    }
    stop.cancel();
    if stats.is_latest(number) {
        stats.update(|stats| {
            stats.connected = false;
            stats.speaking = false;
        });
    }
    session.close().await;
    if !dropped {
        close_normally(socket).await;
    }
}

/// How many typed messages a room's stats keep (the admin route shows the latest).
const MAX_CHATS_KEPT: usize = 100;
/// ICE candidates kept from before the publisher's offer.
const MAX_EARLY_CANDIDATES: usize = 64;

/// How long the stand-in waits for the client's half of the closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Ends the signalling socket as LiveKit's server does: a close frame with code 1000, then
/// the client's reply read before the socket is dropped. livekit-client treats any close that
/// is neither clean nor 1000 as a failure ("WS closed unexpectedly with code 1005"), and
/// dropping a socket with unread frames (the client's `leave`, a ping) resets the connection.
async fn close_normally(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

struct Session {
    state: AppState,
    conversation: Uuid,
    grant: Visitor,
    stats: Arc<RoomStats>,
    room_sid: String,
    visitor_sid: String,
    out: mpsc::UnboundedSender<signal_response::Message>,
    internal: mpsc::UnboundedSender<Internal>,
    stop: CancellationToken,
    subscriber: Arc<dyn PeerConnection>,
    subscriber_gathered: watch::Receiver<bool>,
    subscriber_connected: watch::Receiver<bool>,
    /// The server-made channels, kept so that they stay open; `_reliable` carries the
    /// agent's text streams.
    channels: Vec<Arc<dyn DataChannel>>,
    publisher: Option<(Arc<dyn PeerConnection>, watch::Receiver<bool>)>,
    /// Candidates for the publisher connection that arrived before its offer.
    early_candidates: Vec<RTCIceCandidateInit>,
    level_id: Arc<AtomicU8>,
    /// The id of the last subscriber offer; the client echoes it in its answer.
    offer_id: u32,
    awaiting_answer: bool,
    renegotiate: bool,
    agent: Arc<Agent>,
    agent_joined: bool,
    /// The agent's turns already spoken (or not to be spoken) in this session.
    spoken: usize,
    speech: mpsc::UnboundedSender<String>,
    /// Set once the agent's track has been negotiated and the subscriber connection is up.
    voice_ready: watch::Sender<bool>,
    visitor_track: Option<String>,
    /// The visitor's microphone has reached the stand-in.
    microphone_flowing: bool,
    /// `track_subscribed` has gone out for the microphone.
    agent_subscribed: bool,
    assembler: Assembler,
    /// The visitor's transcriptions to publish, in order.
    visitor_lines: mpsc::UnboundedSender<Vec<proto::data_packet::Value>>,
    /// The segment and text of what the visitor is saying, while they say it.
    utterance: Option<(String, String)>,
}

impl Session {
    async fn start(
        state: AppState,
        conversation: Uuid,
        grant: Visitor,
        stats: Arc<RoomStats>,
        out: mpsc::UnboundedSender<signal_response::Message>,
        internal: mpsc::UnboundedSender<Internal>,
        stop: CancellationToken,
    ) -> webrtc::error::Result<Self> {
        let level_id = Arc::new(AtomicU8::new(0));
        let visitor_sid = format!("PA_{}", random_hex(12));
        let (gathered_tx, subscriber_gathered) = watch::channel(false);
        let (connected_tx, subscriber_connected) = watch::channel(false);
        let handler = Arc::new(Handler {
            target: Target::Subscriber,
            gathered: gathered_tx,
            connected: connected_tx,
            internal: internal.clone(),
            stats: Arc::clone(&stats),
            level_id: Arc::clone(&level_id),
            stop: stop.clone(),
        });
        let subscriber = media::peer_connection(handler, true).await?;
        // The client adopts these by label for what the server sends (§1.6).
        let reliable = subscriber.create_data_channel("_reliable", None).await?;
        let lossy = subscriber
            .create_data_channel(
                "_lossy",
                Some(RTCDataChannelInit {
                    ordered: false,
                    max_retransmits: Some(0),
                    ..Default::default()
                }),
            )
            .await?;
        let (open_tx, open) = watch::channel(false);
        drain_channel(Arc::clone(&reliable), Some(open_tx), None, stop.clone());
        drain_channel(Arc::clone(&lossy), None, None, stop.clone());

        let agent_name = state
            .0
            .store
            .space_of(conversation)
            .and_then(|space| state.0.store.conversation(space, conversation))
            .map(|conversation| conversation.agent_title)
            .unwrap_or_default();
        let agent = Arc::new(Agent {
            sid: stats.ids.agent_sid.clone(),
            identity: stats.ids.agent_identity.clone(),
            name: agent_name,
            track_sid: stats.ids.agent_track_sid.clone(),
            version: AtomicU32::new(0),
            state: Mutex::new("initializing"),
            speaking: AtomicBool::new(false),
            out: out.clone(),
            stats: Arc::clone(&stats),
            channel: reliable.clone(),
            open,
        });
        let (speech, voice_ready) = speaker(Arc::clone(&agent), stop.clone());
        let visitor_lines = visitor_transcriber(
            Arc::clone(&agent),
            grant.identity.clone(),
            visitor_sid.clone(),
            stop.clone(),
        );
        Ok(Self {
            state,
            conversation,
            grant,
            room_sid: stats.ids.room_sid.clone(),
            stats,
            visitor_sid,
            out,
            internal,
            stop,
            subscriber,
            subscriber_gathered,
            subscriber_connected,
            channels: vec![reliable, lossy],
            publisher: None,
            early_candidates: Vec::new(),
            level_id,
            offer_id: 0,
            awaiting_answer: false,
            renegotiate: false,
            agent,
            agent_joined: false,
            spoken: 0,
            speech,
            voice_ready,
            visitor_track: None,
            microphone_flowing: false,
            agent_subscribed: false,
            assembler: Assembler::default(),
            visitor_lines,
            utterance: None,
        })
    }

    fn snapshot(&self) -> Option<Conversation> {
        let store = &self.state.0.store;
        store.conversation(store.space_of(self.conversation)?, self.conversation)
    }

    fn send(&self, message: signal_response::Message) {
        let _ = self.out.send(message);
    }

    /// The join response, then the first subscriber offer. An agent already in the room
    /// is in both, so that no renegotiation is needed.
    async fn begin(&mut self) -> webrtc::error::Result<()> {
        let snapshot = self.snapshot();
        let active = snapshot
            .as_ref()
            .is_some_and(|conversation| conversation.status == Status::Active);
        if let Some(conversation) = &snapshot {
            // A visitor who joins late still hears the agent's last turn, if nobody has
            // answered it yet; everything before that was said to an empty room.
            let assistant = assistant_turns(conversation);
            let last_is_agent = conversation
                .history
                .last()
                .is_some_and(|turn| turn.role == Role::Assistant);
            self.spoken = assistant.len().saturating_sub(usize::from(last_is_agent));
        }
        if active {
            self.add_agent_track().await?;
        }
        let others = if active {
            vec![self.agent.info()]
        } else {
            Vec::new()
        };
        let visitor = signal::visitor_info(&self.grant, &self.visitor_sid);
        self.send(signal::join_response(
            &self.room_sid,
            &self.grant.room,
            visitor,
            others,
        ));
        // A fresh token with the same grants, as LiveKit sends one: a full reconnect after
        // the original token's lifetime then still gets in.
        let grant = super::token::JoinGrant {
            identity: &self.grant.identity,
            name: &self.grant.name,
            room: &self.grant.room,
        };
        match self
            .state
            .join_tokens()
            .mint(&grant, Timestamp::now().unix_secs())
        {
            Ok(token) => self.send(signal_response::Message::RefreshToken(token)),
            Err(error) => tracing::warn!(%error, "cannot mint a refreshed join token"),
        }
        self.offer().await?;
        if active {
            self.agent.set_state("listening");
            if let Some(conversation) = &snapshot {
                self.speak_new_turns(conversation);
            }
        }
        Ok(())
    }

    /// Makes and sends a subscriber offer, with the host candidates in it (no server-side
    /// trickle).
    async fn offer(&mut self) -> webrtc::error::Result<()> {
        let offer = self.subscriber.create_offer(None).await?;
        self.subscriber.set_local_description(offer).await?;
        wait_for(&mut self.subscriber_gathered).await;
        let Some(local) = self.subscriber.local_description().await else {
            return Ok(());
        };
        self.offer_id += 1;
        self.awaiting_answer = true;
        self.renegotiate = false;
        self.send(signal_response::Message::Offer(signal::description(
            "offer",
            local.sdp,
            self.offer_id,
        )));
        Ok(())
    }

    /// Adds the agent's voice to the subscriber connection and starts its tone.
    async fn add_agent_track(&mut self) -> webrtc::error::Result<()> {
        self.agent_joined = true;
        let ssrc = rand_u32();
        let stream_id = format!("{}|{}", self.agent.sid, self.agent.track_sid);
        let track = Arc::new(TrackLocalStaticSample::new(
            Instant::now(),
            media::agent_track(&stream_id, &self.agent.track_sid, ssrc),
        )?);
        self.subscriber
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await?;
        let agent = Arc::clone(&self.agent);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut tone = media::Tone::new(TONE_HZ);
            let mut ticker = tokio::time::interval(media::FRAME);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let sample = Sample {
                    data: Bytes::from(tone.frame(agent.speaking.load(Ordering::Relaxed))),
                    duration: media::FRAME,
                    ..Sample::new(Instant::now())
                };
                // Until the track is negotiated there is nowhere to send to; that is fine.
                let _ = track
                    .sample_writer(ssrc, media::PCMU_PAYLOAD_TYPE)
                    .write_sample(&sample)
                    .await;
            }
        });
        Ok(())
    }

    /// Tells the client that the agent has subscribed to the microphone, one subscription
    /// round trip after the agent is in the room and the microphone's packets arrive, as
    /// LiveKit does when an agent subscribes. It ends the client's pre-connect recording,
    /// which the client then sends the agent: said any earlier, there would be nothing
    /// recorded.
    fn agent_hears(&mut self) {
        if self.agent_subscribed || !self.agent_joined || !self.microphone_flowing {
            return;
        }
        if let Some(sid) = self.visitor_track.clone() {
            self.agent_subscribed = true;
            let internal = self.internal.clone();
            let stop = self.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(SUBSCRIBE_ROUND_TRIP) => {
                        let _ = internal.send(Internal::Subscribed(sid));
                    }
                }
            });
        }
    }

    /// The agent joins a session already under way: it appears, then the subscriber
    /// connection is renegotiated to carry its voice.
    async fn agent_joins(&mut self) -> webrtc::error::Result<()> {
        self.add_agent_track().await?;
        self.send(signal_response::Message::Update(proto::ParticipantUpdate {
            participants: vec![self.agent.info()],
        }));
        if self.awaiting_answer {
            // One offer at a time: the next goes out when the client has answered this one.
            self.renegotiate = true;
        } else {
            self.offer().await?;
        }
        self.agent.set_state("listening");
        self.agent_hears();
        Ok(())
    }

    /// Follows the conversation: the agent joins when it becomes Active, speaks each new
    /// turn, and the session ends with the conversation. `false` when it has ended.
    async fn on_conversation(&mut self, conversation: &Conversation) -> bool {
        if conversation.status.is_final() {
            self.send(signal::room_deleted());
            return false;
        }
        if conversation.status == Status::Active {
            if !self.agent_joined
                && let Err(error) = self.agent_joins().await
            {
                tracing::warn!(%error, "the agent could not join the room");
            }
            self.speak_new_turns(conversation);
        }
        true
    }

    fn speak_new_turns(&mut self, conversation: &Conversation) {
        let turns = assistant_turns(conversation);
        for text in turns.iter().skip(self.spoken) {
            let _ = self.speech.send((*text).to_owned());
        }
        self.spoken = self.spoken.max(turns.len());
    }

    /// Handles one signal request; `false` when the visitor has left.
    async fn on_request(&mut self, request: signal_request::Message) -> bool {
        use signal_request::Message as M;
        let result = match request {
            M::Offer(offer) => self.on_publisher_offer(offer).await,
            M::Answer(answer) => self.on_subscriber_answer(answer).await,
            M::Trickle(trickle) => self.on_trickle(&trickle).await,
            M::AddTrack(request) => {
                let sid = format!("TR_{}", random_hex(12));
                self.visitor_track = Some(sid.clone());
                self.stats.update(|stats| stats.muted = request.muted);
                self.send(signal_response::Message::TrackPublished(
                    proto::TrackPublishedResponse {
                        cid: request.cid.clone(),
                        track: Some(signal::published_track(&request, &sid)),
                    },
                ));
                Ok(())
            }
            M::Mute(mute) => {
                self.stats.update(|stats| stats.muted = mute.muted);
                Ok(())
            }
            M::Ping(_) => {
                self.send(signal_response::Message::Pong(signal::now_ms()));
                Ok(())
            }
            M::PingReq(ping) => {
                self.send(signal::pong(&ping));
                Ok(())
            }
            M::Leave(_) => return false,
            // Subscriptions, track settings, sync state and the rest change nothing here.
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "LiveKit signal request failed");
        }
        true
    }

    async fn on_publisher_offer(
        &mut self,
        offer: proto::SessionDescription,
    ) -> webrtc::error::Result<()> {
        if self.publisher.is_none() {
            let (gathered_tx, gathered) = watch::channel(false);
            let (connected, _) = watch::channel(false);
            let handler = Arc::new(Handler {
                target: Target::Publisher,
                gathered: gathered_tx,
                connected,
                internal: self.internal.clone(),
                stats: Arc::clone(&self.stats),
                level_id: Arc::clone(&self.level_id),
                stop: self.stop.clone(),
            });
            let connection = media::peer_connection(handler, false).await?;
            self.publisher = Some((connection, gathered));
        }
        if let Some(id) = media::audio_level_id(&offer.sdp) {
            self.level_id.store(id, Ordering::Relaxed);
        }
        let Some((connection, gathered)) = &mut self.publisher else {
            return Ok(());
        };
        connection
            .set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
            .await?;
        for candidate in self.early_candidates.drain(..) {
            connection.add_ice_candidate(candidate).await?;
        }
        let answer = connection.create_answer(None).await?;
        connection.set_local_description(answer).await?;
        wait_for(gathered).await;
        if let Some(local) = connection.local_description().await {
            // The same id as the offer: the client drops an answer to another offer.
            self.send(signal_response::Message::Answer(signal::description(
                "answer", local.sdp, offer.id,
            )));
        }
        Ok(())
    }

    async fn on_subscriber_answer(
        &mut self,
        answer: proto::SessionDescription,
    ) -> webrtc::error::Result<()> {
        if answer.id != 0 && answer.id != self.offer_id {
            return Ok(());
        }
        self.subscriber
            .set_remote_description(RTCSessionDescription::answer(answer.sdp)?)
            .await?;
        self.awaiting_answer = false;
        if self.renegotiate {
            self.offer().await?;
        } else if self.agent_joined {
            // The agent's voice is negotiated: it may speak once the connection is up.
            let ready = self.voice_ready.clone();
            let mut connected = self.subscriber_connected.clone();
            tokio::spawn(async move {
                if connected.wait_for(|up| *up).await.is_ok() {
                    ready.send_replace(true);
                }
            });
        }
        Ok(())
    }

    async fn on_trickle(&mut self, trickle: &proto::TrickleRequest) -> webrtc::error::Result<()> {
        let Ok(candidate) = serde_json::from_str::<RTCIceCandidateInit>(&trickle.candidate_init)
        else {
            return Ok(());
        };
        // The end-of-candidates marker has no candidate.
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        let target = if trickle.target == proto::SignalTarget::Subscriber as i32 {
            Target::Subscriber
        } else {
            Target::Publisher
        };
        match (target, &self.publisher) {
            (Target::Subscriber, _) => self.subscriber.add_ice_candidate(candidate).await,
            (Target::Publisher, Some((connection, _))) => {
                connection.add_ice_candidate(candidate).await
            }
            (Target::Publisher, None) => {
                // Browsers trickle a handful; a client sending endless ones is ignored.
                if self.early_candidates.len() < MAX_EARLY_CANDIDATES {
                    self.early_candidates.push(candidate);
                }
                Ok(())
            }
        }
    }

    async fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::FirstPacket => {
                self.microphone_flowing = true;
                self.agent_hears();
            }
            Internal::Speech(speech) => self.on_speech(speech).await,
            Internal::Subscribed(sid) => {
                if self.visitor_track.as_deref() == Some(sid.as_str()) {
                    self.send(signal_response::Message::TrackSubscribed(
                        proto::TrackSubscribed { track_sid: sid },
                    ));
                }
            }
            Internal::Data(bytes) => {
                let Ok(packet) = proto::DataPacket::decode(bytes.freeze()) else {
                    return;
                };
                match self.assembler.take(packet) {
                    Some(Taken::Text(received)) if received.topic == streams::CHAT => {
                        self.on_chat(received.text).await;
                    }
                    Some(Taken::Bytes { topic, length }) if topic == streams::PRE_CONNECT_AUDIO => {
                        self.stats
                            .update(|stats| stats.preconnect_bytes += length as u64);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The visitor typed `text`: it is echoed as the visitor's transcription, and the
    /// conversation takes it as the user's turn, which the scenario answers.
    async fn on_chat(&mut self, text: String) {
        // The stats keep the latest messages only: a chatty client must not grow them forever.
        self.stats.update(|stats| {
            if stats.chats.len() >= MAX_CHATS_KEPT {
                stats.chats.remove(0);
            }
            stats.chats.push(text.clone());
        });
        let segment = format!("SG_{}", random_hex(12));
        self.transcribe_visitor(&segment, &text, true);
        self.take_turn(&text).await;
    }

    /// The conversation takes `text` as the visitor's turn, which the scenario answers.
    async fn take_turn(&self, text: &str) {
        self.agent.set_state("thinking");
        if let Err(error) = self.state.user_says(self.conversation, text).await {
            tracing::debug!(%error, "the visitor's turn not taken");
            self.agent.set_state("listening");
        }
    }

    /// Publishes `text` as the visitor's transcription in segment `segment`: interim (a
    /// later text of the same segment replaces it) or final. The agent sends it on the
    /// visitor's behalf, as LiveKit Agents send what they transcribe. In order, and off the
    /// session's loop: sending waits for the subscriber's channel to open, and the session
    /// must keep answering pings meanwhile.
    fn transcribe_visitor(&self, segment: &str, text: &str, is_final: bool) {
        let stream = format!("TS_{}", random_hex(12));
        let transcription = Transcription {
            stream_id: &stream,
            segment_id: segment,
            track_id: self.visitor_track.as_deref().unwrap_or_default(),
        };
        let _ = self.visitor_lines.send(vec![
            transcription.header(),
            transcription.chunk(0, text),
            if is_final {
                transcription.trailer()
            } else {
                transcription.interim_trailer()
            },
        ]);
    }

    /// The visitor started or stopped speaking. What an utterance was is the scenario's
    /// `hears`, in order; past its end the agent hears noise, and nothing comes of it.
    async fn on_speech(&mut self, speech: Speech) {
        match speech {
            Speech::Started => {
                // Only an agent in the room hears (what came before reaches it as the
                // pre-connect recording, which it does not transcribe).
                if !self.agent_joined {
                    return;
                }
                let number = self.stats.utterance_started();
                let Some(text) = self.state.heard(self.conversation, number) else {
                    return;
                };
                let segment = format!("SG_{}", random_hex(12));
                // The first word as the interim text, as a streaming recogniser has it.
                let first = streams::words(&text)
                    .first()
                    .map_or("", |word| word.trim_end());
                self.transcribe_visitor(&segment, first, false);
                self.utterance = Some((segment, text));
            }
            Speech::Ended => {
                let Some((segment, text)) = self.utterance.take() else {
                    return;
                };
                self.transcribe_visitor(&segment, &text, true);
                self.take_turn(&text).await;
            }
        }
    }

    async fn close(&mut self) {
        for channel in &self.channels {
            let _ = channel.close().await;
        }
        if let Some((connection, _)) = &self.publisher {
            let _ = connection.close().await;
        }
        let _ = self.subscriber.close().await;
    }
}

/// The agent's spoken turns, oldest first.
fn assistant_turns(conversation: &Conversation) -> Vec<&str> {
    conversation
        .history
        .iter()
        .filter(|turn| turn.role == Role::Assistant)
        .filter_map(|turn| turn.content.as_deref())
        .collect()
}

/// The agent as the visitor's room shows it.
struct Agent {
    sid: String,
    identity: String,
    name: String,
    track_sid: String,
    /// The participant info's version: the client ignores an update that does not raise it.
    version: AtomicU32,
    state: Mutex<&'static str>,
    speaking: AtomicBool,
    out: mpsc::UnboundedSender<signal_response::Message>,
    stats: Arc<RoomStats>,
    channel: Arc<dyn DataChannel>,
    open: watch::Receiver<bool>,
}

impl Agent {
    /// The agent's participant info, with a new version.
    fn info(&self) -> proto::ParticipantInfo {
        let state = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        proto::ParticipantInfo {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            // ACTIVE and AGENT together release the client's pre-connect audio buffer.
            state: proto::participant_info::State::Active as i32,
            kind: proto::participant_info::Kind::Agent as i32,
            version: self.version.fetch_add(1, Ordering::Relaxed) + 1,
            joined_at: signal::now_ms() / 1000,
            joined_at_ms: signal::now_ms(),
            attributes: [("lk.agent.state".to_owned(), state.to_owned())].into(),
            tracks: vec![proto::TrackInfo {
                sid: self.track_sid.clone(),
                r#type: proto::TrackType::Audio as i32,
                source: proto::TrackSource::Microphone as i32,
                name: "agent-voice".to_owned(),
                mime_type: "audio/PCMU".to_owned(),
                ..Default::default()
            }],
            is_publisher: true,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: true,
                can_publish: true,
                can_publish_data: true,
                ..Default::default()
            }),
            // Protocol 0 and no capabilities: the browser then sends plain header, chunk
            // and trailer packets to it, never deflated streams.
            client_protocol: 0,
            ..Default::default()
        }
    }

    /// Changes `lk.agent.state` and tells the visitor.
    fn set_state(&self, state: &'static str) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        self.stats.update(|stats| stats.agent_state = Some(state));
        let _ = self
            .out
            .send(signal_response::Message::Update(proto::ParticipantUpdate {
                participants: vec![self.info()],
            }));
    }

    /// Sends `value` on the `_reliable` channel as coming from `identity`, once it is open.
    async fn send_as(&self, identity: &str, sid: &str, value: proto::data_packet::Value) {
        let mut open = self.open.clone();
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let bytes = streams::packet(identity, sid, value);
        if let Err(error) = self.channel.send(BytesMut::from(bytes.as_slice())).await {
            tracing::debug!(%error, "data packet not sent");
        }
    }

    /// Says `text`: state `speaking`, the tone, one chunk per word spread over the speaking
    /// time, then back to `listening`.
    async fn speak(&self, text: &str) {
        self.set_state("speaking");
        self.speaking.store(true, Ordering::Relaxed);
        self.stats.update(|stats| stats.speaking = true);
        let stream = format!("TS_{}", random_hex(12));
        let segment = format!("SG_{}", random_hex(12));
        let transcription = Transcription {
            stream_id: &stream,
            segment_id: &segment,
            track_id: &self.track_sid,
        };
        self.send_as(&self.identity, &self.sid, transcription.header())
            .await;
        let words = streams::words(text);
        let length = speaking_time(text).max(MIN_SPEECH);
        let pause = length / u32::try_from(words.len().max(1)).unwrap_or(u32::MAX);
        for (index, word) in words.iter().enumerate() {
            self.send_as(
                &self.identity,
                &self.sid,
                transcription.chunk(index as u64, word),
            )
            .await;
            // Pacing the words like speech, not waiting for a condition.
            tokio::time::sleep(pause).await;
        }
        self.send_as(&self.identity, &self.sid, transcription.trailer())
            .await;
        self.speaking.store(false, Ordering::Relaxed);
        self.stats.update(|stats| stats.speaking = false);
        self.set_state("listening");
    }
}

/// The agent's mouth: says each text sent to it in turn, once its voice is ready.
fn speaker(
    agent: Arc<Agent>,
    stop: CancellationToken,
) -> (mpsc::UnboundedSender<String>, watch::Sender<bool>) {
    let (speech, mut texts) = mpsc::unbounded_channel::<String>();
    let (ready_tx, mut ready) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let text = tokio::select! {
                () = stop.cancelled() => break,
                text = texts.recv() => match text { Some(text) => text, None => break },
            };
            tokio::select! {
                () = stop.cancelled() => break,
                ready = ready.wait_for(|ready| *ready) => if ready.is_err() { break },
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = agent.speak(&text) => {}
            }
        }
    });
    (speech, ready_tx)
}

/// Publishes the visitor's transcriptions on their behalf, each stream whole and in the
/// order given, so that a final text never overtakes the interim one it replaces.
fn visitor_transcriber(
    agent: Arc<Agent>,
    identity: String,
    sid: String,
    stop: CancellationToken,
) -> mpsc::UnboundedSender<Vec<proto::data_packet::Value>> {
    let (lines, mut queue) = mpsc::unbounded_channel::<Vec<proto::data_packet::Value>>();
    tokio::spawn(async move {
        loop {
            let packets = tokio::select! {
                () = stop.cancelled() => break,
                packets = queue.recv() => match packets { Some(packets) => packets, None => break },
            };
            for value in packets {
                agent.send_as(&identity, &sid, value).await;
            }
        }
    });
    lines
}

/// Waits until ICE gathering has completed, or the timeout has passed.
async fn wait_for(gathered: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(GATHERING_TIMEOUT, gathered.wait_for(|done| *done)).await;
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // An SSRC only needs to differ from the other side's; a fixed fallback would do.
    let _ = getrandom::getrandom(&mut bytes);
    u32::from_be_bytes(bytes)
}

/// Reads a data channel's events until it closes: marks it open, and forwards messages.
fn drain_channel(
    channel: Arc<dyn DataChannel>,
    open: Option<watch::Sender<bool>>,
    messages: Option<mpsc::UnboundedSender<Internal>>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => break,
                event = channel.poll() => event,
            };
            match event {
                Some(DataChannelEvent::OnOpen) => {
                    if let Some(open) = &open {
                        open.send_replace(true);
                    }
                }
                Some(DataChannelEvent::OnMessage(message)) => {
                    if let Some(messages) = &messages {
                        let _ = messages.send(Internal::Data(message.data));
                    }
                }
                Some(DataChannelEvent::OnClose) | None => break,
                Some(_) => {}
            }
        }
    });
}

/// A peer connection's events, turned into the session's.
struct Handler {
    target: Target,
    gathered: watch::Sender<bool>,
    connected: watch::Sender<bool>,
    internal: mpsc::UnboundedSender<Internal>,
    stats: Arc<RoomStats>,
    level_id: Arc<AtomicU8>,
    stop: CancellationToken,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(target = ?self.target, %state, "LiveKit peer connection");
        self.connected
            .send_replace(state == RTCPeerConnectionState::Connected);
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // The visitor's own `_reliable`/`_lossy` channels, on the publisher connection.
        drain_channel(
            channel,
            None,
            Some(self.internal.clone()),
            self.stop.clone(),
        );
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let stats = Arc::clone(&self.stats);
        let level_id = Arc::clone(&self.level_id);
        let internal = self.internal.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut first = true;
            let mut vad = Vad::default();
            // A microphone may go quiet by sending nothing at all: the clock ends its
            // utterance then.
            let mut clock = tokio::time::interval(VAD_TICK);
            clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => break,
                    _ = clock.tick() => {
                        if let Some(speech) = vad.tick(Instant::now()) {
                            let _ = internal.send(Internal::Speech(speech));
                        }
                        continue;
                    }
                    event = track.poll() => event,
                };
                match event {
                    Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                        let id = level_id.load(Ordering::Relaxed);
                        let level = (id != 0)
                            .then(|| packet.header.get_extension(id))
                            .flatten()
                            .and_then(|payload| media::audio_level(&payload))
                            .map(|(level, _voice)| level);
                        stats.packet(packet.payload.len(), level);
                        if first {
                            first = false;
                            let _ = internal.send(Internal::FirstPacket);
                        }
                        if let Some(speech) =
                            level.and_then(|level| vad.level(Instant::now(), level))
                        {
                            let _ = internal.send(Internal::Speech(speech));
                        }
                    }
                    Some(TrackRemoteEvent::OnEnded) | None => break,
                    Some(_) => {}
                }
            }
        });
    }
}
