//! The LiveKit stand-in's signalling (`/rtc`), as livekit-client meets it: the v1 refusal
//! it falls back on, the token and room checks before the upgrade, and the first messages
//! of a session. Media is left to the browser conformance test
//! (`e2e/livekit-conformance.test.mjs`).

use futures_util::{SinkExt as _, StreamExt as _};
use livekit_protocol as proto;
use prost::Message as _;
use proto::{signal_request, signal_response};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use speaknode_sandbox::{Config, LiveKitConfig, Timing};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{AVA, BFF, Sandbox};

fn config(join_ms: u64) -> Config {
    Config {
        admin_enabled: true,
        livekit: LiveKitConfig {
            api_secret: Some(SecretString::from("secret-of-the-rtc-tests")),
            ..LiveKitConfig::default()
        },
        ..crate::support::config(Timing {
            dispatch_ms: 20,
            join_ms,
        })
    }
}

/// A dispatched web conversation once `accept` takes it, with its join token.
async fn conversation(
    sandbox: &Sandbox,
    accept: impl Fn(&Value) -> bool,
) -> (String, String, String) {
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let read = sandbox
        .conversation_when(&token, &id, "the conversation", accept)
        .await;
    let room = read["live_kit_room_name"]
        .as_str()
        .expect("room")
        .to_owned();
    let join = read["live_kit_participant_token"]
        .as_str()
        .expect("a join token")
        .to_owned();
    (id, room, join)
}

async fn get(sandbox: &Sandbox, path: &str) -> (StatusCode, Option<String>, String) {
    let response = sandbox
        .http
        .get(sandbox.url(path))
        .send()
        .await
        .expect("GET");
    let origin = response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (
        response.status(),
        origin,
        response.text().await.expect("body"),
    )
}

#[tokio::test]
async fn v1_is_refused_so_the_client_falls_back_and_validate_checks_token_and_room() {
    let sandbox = Sandbox::start(config(20)).await;
    let (id, _room, join) = conversation(&sandbox, |c| c["status"] == "Active").await;

    // Not the "room does not exist" text: livekit-client reads this 404 as "no v1 here".
    for path in ["/rtc/v1", "/rtc/v1/validate"] {
        let (status, origin, body) = get(&sandbox, &format!("{path}?access_token={join}")).await;
        assert_eq!(
            (status, origin.as_deref(), body.as_str()),
            (StatusCode::NOT_FOUND, Some("*"), "v1 not served")
        );
    }

    let (status, origin, _) = get(&sandbox, &format!("/rtc/validate?access_token={join}")).await;
    assert_eq!((status, origin.as_deref()), (StatusCode::OK, Some("*")));

    let (status, origin, body) = get(&sandbox, "/rtc/validate?access_token=not.a.token").await;
    assert_eq!(
        (status, origin.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("*"))
    );
    assert!(body.starts_with("invalid token: "), "{body}");

    // The room goes with the conversation: 404 with the text the client maps to NotAllowed.
    let ended = sandbox
        .admin(
            Method::POST,
            &format!("/__sandbox/conversations/{id}/end"),
            None,
        )
        .await;
    assert!(ended.status().is_success());
    let (status, _, body) = get(&sandbox, &format!("/rtc/validate?access_token={join}")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "requested room does not exist")
    );
    let refused = tokio_tungstenite::connect_async(
        sandbox
            .url(&format!("/rtc?access_token={join}"))
            .replacen("http", "ws", 1),
    )
    .await;
    assert!(
        matches!(&refused, Err(tungstenite::Error::Http(response)) if response.status() == StatusCode::NOT_FOUND),
        "{refused:?}"
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_response(socket: &mut Socket) -> signal_response::Message {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a signal response in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Binary(bytes) = frame {
            let response = proto::SignalResponse::decode(bytes).expect("a SignalResponse");
            return response.message.expect("a message");
        }
    }
}

/// Opens `/rtc` with the join token `join`, as livekit-client does, and reads the join
/// response that must come first.
async fn join_room(sandbox: &Sandbox, join: &str) -> (Socket, proto::JoinResponse) {
    let url = sandbox
        .url(&format!("/rtc?access_token={join}"))
        .replacen("http", "ws", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade");
    let signal_response::Message::Join(joined) = next_response(&mut socket).await else {
        panic!("no join response first");
    };
    (socket, joined)
}

async fn send(socket: &mut Socket, message: signal_request::Message) {
    let frame = proto::SignalRequest {
        message: Some(message),
    }
    .encode_to_vec();
    socket
        .send(Message::Binary(frame.into()))
        .await
        .expect("send");
}

#[tokio::test]
async fn a_session_starts_with_the_join_then_the_subscriber_offer_and_ends_with_the_conversation() {
    let sandbox = Sandbox::start(config(20)).await;
    let (id, room, join) = conversation(&sandbox, |c| c["status"] == "Active").await;
    let url = sandbox
        .url(&format!("/rtc?access_token={join}&protocol=17&sdk=js"))
        .replacen("http", "ws", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade");

    let signal_response::Message::Join(joined) = next_response(&mut socket).await else {
        panic!("the first message is not the join response");
    };
    assert_eq!(
        joined.room.as_ref().map(|r| r.name.as_str()),
        Some(room.as_str())
    );
    assert_eq!(
        joined
            .server_info
            .as_ref()
            .map(|info| info.version.as_str()),
        Some("1.9.0")
    );
    assert!(joined.subscriber_primary);
    let visitor = joined.participant.expect("the visitor");
    assert!(visitor.identity.starts_with("visitor-"));
    assert!(
        visitor
            .permission
            .is_some_and(|p| p.can_publish && p.can_publish_data)
    );
    // The agent is already in the room: it comes with the join, with its voice and state.
    let [agent] = joined.other_participants.as_slice() else {
        panic!("not one other participant: {:?}", joined.other_participants);
    };
    assert!(agent.identity.starts_with("agent-"));
    assert_eq!(agent.kind, proto::participant_info::Kind::Agent as i32);
    assert_eq!(agent.state, proto::participant_info::State::Active as i32);
    assert_eq!(
        agent.attributes.get("lk.agent.state").map(String::as_str),
        Some("initializing")
    );
    assert_eq!(agent.tracks.len(), 1);

    // Then the subscriber offer, with data channels and loopback host candidates in it,
    // and the agent's voice as PCMU in a stream named after the agent and its track.
    let mut offer = None;
    let mut versions = vec![agent.version];
    let mut refreshed = false;
    while offer.is_none() {
        match next_response(&mut socket).await {
            signal_response::Message::Offer(description) => offer = Some(description),
            signal_response::Message::RefreshToken(token) => {
                let claims = crate::support::claims_of(&token);
                let original = crate::support::claims_of(&join);
                assert_eq!(
                    (&claims["sub"], &claims["video"]),
                    (&original["sub"], &original["video"])
                );
                refreshed = true;
            }
            signal_response::Message::Update(update) => {
                versions.extend(update.participants.iter().map(|p| p.version));
            }
            other => panic!("unexpected before the offer: {other:?}"),
        }
    }
    let offer = offer.expect("an offer");
    assert!(refreshed, "a refreshed token comes before the offer");
    assert_eq!((offer.r#type.as_str(), offer.id), ("offer", 1));
    assert!(offer.sdp.contains("m=application"), "{}", offer.sdp);
    assert!(offer.sdp.contains("a=candidate:") && offer.sdp.contains("127.0.0.1"));
    assert!(offer.sdp.contains("PCMU/8000"));
    assert!(
        offer
            .sdp
            .contains(&format!("{}|{}", agent.sid, agent.tracks[0].sid)),
        "msid names the agent and its track: {}",
        offer.sdp
    );

    send(
        &mut socket,
        signal_request::Message::PingReq(proto::Ping {
            timestamp: 4242,
            rtt: 0,
        }),
    )
    .await;
    loop {
        match next_response(&mut socket).await {
            signal_response::Message::PongResp(pong) => {
                assert_eq!(pong.last_ping_timestamp, 4242);
                break;
            }
            signal_response::Message::Update(update) => {
                versions.extend(update.participants.iter().map(|p| p.version));
            }
            other => panic!("unexpected before the pong: {other:?}"),
        }
    }
    // Each update raises the agent's version, or the client would ignore it.
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );

    // The conversation ends: the stand-in says so and closes.
    let ended = sandbox
        .admin(
            Method::POST,
            &format!("/__sandbox/conversations/{id}/end"),
            None,
        )
        .await;
    assert!(ended.status().is_success());
    loop {
        match next_response(&mut socket).await {
            signal_response::Message::Leave(leave) => {
                assert_eq!(leave.reason, proto::DisconnectReason::RoomDeleted as i32);
                assert_eq!(
                    leave.action,
                    proto::leave_request::Action::Disconnect as i32
                );
                break;
            }
            signal_response::Message::Update(_) => {}
            other => panic!("unexpected before the leave: {other:?}"),
        }
    }
    // Then a normal close (1000), as LiveKit's server sends: livekit-client reports any other
    // close as "WS closed unexpectedly" (it saw 1005 when the frame had no code).
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(
                    frame.code,
                    tungstenite::protocol::frame::coding::CloseCode::Normal
                );
                break;
            }
            Some(Ok(Message::Binary(_))) => {}
            other => panic!("expected a close frame with a code, got {other:?}"),
        }
    }
}

/// What a webrtc-rs client in the visitor's place saw on its connections.
#[derive(Default)]
struct Seen {
    /// Data packets from the server's `_reliable` channel.
    packets: std::sync::Mutex<Vec<proto::DataPacket>>,
    /// RTP packets of the agent's voice, and their payload types.
    rtp: std::sync::Mutex<Vec<u8>>,
    /// The server-made channels by label, once open.
    labels: std::sync::Mutex<Vec<String>>,
}

struct Client {
    seen: std::sync::Arc<Seen>,
    gathered: tokio::sync::watch::Sender<bool>,
}

#[async_trait::async_trait]
impl webrtc::peer_connection::PeerConnectionEventHandler for Client {
    async fn on_ice_gathering_state_change(
        &self,
        state: webrtc::peer_connection::RTCIceGatheringState,
    ) {
        if state == webrtc::peer_connection::RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_data_channel(
        &self,
        channel: std::sync::Arc<dyn webrtc::data_channel::DataChannel>,
    ) {
        let seen = std::sync::Arc::clone(&self.seen);
        tokio::spawn(async move {
            let label = channel.label().await.unwrap_or_default();
            while let Some(event) = channel.poll().await {
                match event {
                    webrtc::data_channel::DataChannelEvent::OnOpen => {
                        seen.labels.lock().expect("labels").push(label.clone());
                    }
                    webrtc::data_channel::DataChannelEvent::OnMessage(message) => {
                        if let Ok(packet) = proto::DataPacket::decode(message.data.freeze()) {
                            seen.packets.lock().expect("packets").push(packet);
                        }
                    }
                    webrtc::data_channel::DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
        });
    }

    async fn on_track(
        &self,
        track: std::sync::Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    ) {
        let seen = std::sync::Arc::clone(&self.seen);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let webrtc::media_stream::track_remote::TrackRemoteEvent::OnRtpPacket(packet) =
                    event
                {
                    seen.rtp
                        .lock()
                        .expect("rtp")
                        .push(packet.header.payload_type);
                }
            }
        });
    }
}

/// A webrtc-rs peer connection on loopback, and a receiver that turns true when its ICE
/// gathering is complete.
async fn client_connection(
    seen: &std::sync::Arc<Seen>,
) -> (
    std::sync::Arc<dyn webrtc::peer_connection::PeerConnection>,
    tokio::sync::watch::Receiver<bool>,
) {
    use webrtc::peer_connection::{
        MediaEngine, PeerConnectionBuilder, RTCConfigurationBuilder, Registry,
        register_default_interceptors,
    };
    let (gathered, gathered_rx) = tokio::sync::watch::channel(false);
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().expect("codecs");
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).expect("interceptors");
    let builder = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(std::sync::Arc::new(Client {
            seen: std::sync::Arc::clone(seen),
            gathered,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0"]);
    let connection = Box::pin(builder.build()).await.expect("a peer connection");
    (std::sync::Arc::new(connection), gathered_rx)
}

/// The text of the complete text streams among `packets`, with their senders.
fn texts(packets: &[proto::DataPacket]) -> Vec<(String, String)> {
    use proto::data_packet::Value;
    let mut open = std::collections::HashMap::<String, String>::new();
    let mut done = Vec::new();
    for packet in packets {
        match &packet.value {
            Some(Value::StreamHeader(header)) => {
                open.insert(header.stream_id.clone(), String::new());
            }
            Some(Value::StreamChunk(chunk)) => {
                if let Some(text) = open.get_mut(&chunk.stream_id) {
                    text.push_str(&String::from_utf8_lossy(&chunk.content));
                }
            }
            Some(Value::StreamTrailer(trailer)) => {
                if let Some(text) = open.remove(&trailer.stream_id) {
                    done.push((packet.participant_identity.clone(), text));
                }
            }
            _ => {}
        }
    }
    done
}

#[tokio::test]
async fn a_webrtc_client_gets_the_agents_voice_and_greeting_and_its_chat_is_answered() {
    use crate::support::{AVA_GREETING, eventually};
    use speaknode_sandbox::Scenario;

    let mut config = config(20);
    config.scenarios = vec![Scenario {
        think_ms: 50,
        default_reply: Some("Noted, thank you.".to_owned()),
        ..Scenario::greeting_only(AVA)
    }];
    let sandbox = Sandbox::start(config).await;
    let (_id, room, join) = conversation(&sandbox, |c| c["status"] == "Active").await;
    let (mut socket, joined) = join_room(&sandbox, &join).await;
    let identity = joined.participant.expect("visitor").identity;
    let agent = joined.other_participants[0].identity.clone();

    // The subscriber connection: answer the server's offer as the browser would.
    let seen = std::sync::Arc::new(Seen::default());
    let (subscriber, mut subscriber_gathered) = client_connection(&seen).await;
    let offer = loop {
        if let signal_response::Message::Offer(offer) = next_response(&mut socket).await {
            break offer;
        }
    };
    subscriber
        .set_remote_description(
            webrtc::peer_connection::RTCSessionDescription::offer(offer.sdp).expect("an offer"),
        )
        .await
        .expect("the offer applies");
    let answer = subscriber.create_answer(None).await.expect("an answer");
    subscriber
        .set_local_description(answer)
        .await
        .expect("the answer applies");
    subscriber_gathered
        .wait_for(|done| *done)
        .await
        .expect("gathering");
    let answer = subscriber.local_description().await.expect("local answer");
    send(
        &mut socket,
        signal_request::Message::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.sdp,
            id: offer.id,
            ..Default::default()
        }),
    )
    .await;

    // The publisher connection: the client offers, with its own `_reliable` channel.
    let (publisher, mut publisher_gathered) =
        client_connection(&std::sync::Arc::new(Seen::default())).await;
    let chat_channel = publisher
        .create_data_channel("_reliable", None)
        .await
        .expect("a channel");
    let (open_tx, mut open) = tokio::sync::watch::channel(false);
    {
        let channel = std::sync::Arc::clone(&chat_channel);
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                if matches!(event, webrtc::data_channel::DataChannelEvent::OnOpen) {
                    open_tx.send_replace(true);
                }
            }
        });
    }
    let publisher_offer = publisher.create_offer(None).await.expect("an offer");
    publisher
        .set_local_description(publisher_offer)
        .await
        .expect("the offer applies");
    publisher_gathered
        .wait_for(|done| *done)
        .await
        .expect("gathering");
    let local = publisher.local_description().await.expect("local offer");
    send(
        &mut socket,
        signal_request::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: local.sdp,
            id: 7,
            ..Default::default()
        }),
    )
    .await;

    // Keep reading signals (the publisher answer among them) while the media flows.
    let (frames_tx, mut frames) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let message = next_response(&mut socket).await;
            if frames_tx.send(message).is_err() {
                break;
            }
        }
    });
    let publisher_answer = loop {
        if let Some(signal_response::Message::Answer(answer)) = frames.recv().await {
            break answer;
        }
    };
    assert_eq!(publisher_answer.id, 7, "the answer echoes the offer's id");
    publisher
        .set_remote_description(
            webrtc::peer_connection::RTCSessionDescription::answer(publisher_answer.sdp)
                .expect("an answer"),
        )
        .await
        .expect("the answer applies");

    // The server's channels open, the agent's PCMU voice arrives, and so does its greeting.
    eventually("the server's data channels to open", || async {
        let labels = seen.labels.lock().expect("labels").clone();
        (labels.contains(&"_reliable".to_owned()) && labels.contains(&"_lossy".to_owned()))
            .then_some(())
    })
    .await;
    eventually("the agent's voice", || async {
        let rtp = seen.rtp.lock().expect("rtp").clone();
        (rtp.len() > 10).then_some(())
    })
    .await;
    assert!(
        seen.rtp.lock().expect("rtp").iter().all(|pt| *pt == 0),
        "PCMU only"
    );
    eventually("the greeting", || async {
        let texts = texts(&seen.packets.lock().expect("packets"));
        texts
            .contains(&(agent.clone(), AVA_GREETING.to_owned()))
            .then_some(())
    })
    .await;

    // A chat message on the publisher connection is echoed as the visitor's words and
    // answered by the scenario.
    open.wait_for(|open| *open)
        .await
        .expect("the chat channel opens");
    let chat = proto::DataPacket {
        participant_identity: identity.clone(),
        value: Some(proto::data_packet::Value::StreamHeader(
            proto::data_stream::Header {
                stream_id: "chat-1".into(),
                topic: "lk.chat".into(),
                inline_content: Some(b"hello there".to_vec()),
                content_header: Some(proto::data_stream::header::ContentHeader::TextHeader(
                    proto::data_stream::TextHeader::default(),
                )),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    chat_channel
        .send(bytes::BytesMut::from(chat.encode_to_vec().as_slice()))
        .await
        .expect("the chat is sent");
    eventually("the echo and the reply", || async {
        let texts = texts(&seen.packets.lock().expect("packets"));
        (texts.contains(&(identity.clone(), "hello there".to_owned()))
            && texts.contains(&(agent.clone(), "Noted, thank you.".to_owned())))
        .then_some(())
    })
    .await;
    let stats: Value = sandbox
        .admin(
            Method::GET,
            &format!("/__sandbox/livekit/rooms/{room}"),
            None,
        )
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(
        stats["visitor"]["chats"],
        serde_json::json!(["hello there"])
    );
    assert_eq!(stats["visitor"]["connected"], true);
}

#[tokio::test]
async fn a_severed_room_drops_its_visitor_without_a_leave_and_refuses_it_for_a_while() {
    let sandbox = Sandbox::start(config(20)).await;
    let (_id, room, join) = conversation(&sandbox, |c| c["status"] == "Active").await;
    let (mut socket, _) = join_room(&sandbox, &join).await;

    let severed = sandbox
        .admin(
            Method::POST,
            &format!("/__sandbox/livekit/rooms/{room}/sever"),
            Some(&serde_json::json!({ "refuse_ms": 60_000 })),
        )
        .await;
    assert_eq!(severed.status(), StatusCode::NO_CONTENT);
    // Whatever was still queued may arrive, but no leave and no close frame.
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("the socket ends in time")
        {
            Some(Ok(Message::Binary(bytes))) => {
                let response = proto::SignalResponse::decode(bytes).expect("a SignalResponse");
                assert!(
                    !matches!(response.message, Some(signal_response::Message::Leave(_))),
                    "a severed session says nothing"
                );
            }
            Some(Ok(Message::Close(frame))) => panic!("a close frame: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }

    let (status, _, body) = get(&sandbox, &format!("/rtc/validate?access_token={join}")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "room unavailable")
    );
    let unknown = sandbox
        .admin(
            Method::POST,
            "/__sandbox/livekit/rooms/web-00000000000000000000000000000000/sever",
            None,
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_second_connection_of_the_visitor_replaces_the_first_which_is_told_why() {
    let sandbox = Sandbox::start(config(20)).await;
    let (_id, room, join) = conversation(&sandbox, |c| c["status"] == "Active").await;
    let (mut first, _) = join_room(&sandbox, &join).await;
    // The same identity again, as from a second tab of the same conversation.
    let (mut second, _) = join_room(&sandbox, &join).await;

    // The first is told, with LiveKit's reason, and closed normally; nothing else ends it.
    let leave = loop {
        if let signal_response::Message::Leave(leave) = next_response(&mut first).await {
            break leave;
        }
    };
    assert_eq!(
        (leave.reason, leave.action, leave.can_reconnect),
        (
            proto::DisconnectReason::DuplicateIdentity as i32,
            proto::leave_request::Action::Disconnect as i32,
            false
        )
    );
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), first.next())
            .await
            .expect("the first socket ends in time")
        {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(
                    frame.expect("a close code").code,
                    tungstenite::protocol::frame::coding::CloseCode::Normal
                );
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    // The room's stats are the second session's: its visitor is still connected.
    let stats: Value = sandbox
        .admin(
            Method::GET,
            &format!("/__sandbox/livekit/rooms/{room}"),
            None,
        )
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(stats["visitor"]["connected"], true);
    send(&mut second, signal_request::Message::Ping(1)).await;
    let pong = loop {
        if let signal_response::Message::Pong(pong) = next_response(&mut second).await {
            break pong;
        }
    };
    assert!(
        pong > 0,
        "the second session still answers, with the server's time"
    );
}
