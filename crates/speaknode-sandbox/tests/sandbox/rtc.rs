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
}
