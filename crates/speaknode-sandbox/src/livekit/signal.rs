//! The `/rtc` signalling messages: binary protobuf `SignalRequest`/`SignalResponse` frames and
//! the few responses the stand-in builds, as pure functions so they can be tested alone.

use std::collections::HashMap;

use livekit_protocol as proto;
use prost::Message as _;
use proto::{signal_request, signal_response};

/// What livekit-client needs to see as the server version: an empty one is refused as
/// `UnsupportedServer`, and 1.9 is past every feature gate the 2.23 client checks.
pub(crate) const SERVER_VERSION: &str = "1.9.0";

/// Seconds between the client's pings, and how long it waits for a pong before it gives up.
pub(crate) const PING_INTERVAL_SECS: i32 = 5;
pub(crate) const PING_TIMEOUT_SECS: i32 = 15;

/// One WebSocket frame from the client; `None` for anything that is not a signal request
/// (a corrupt frame or an empty message), which the session ignores like LiveKit does.
pub(crate) fn decode_request(frame: &[u8]) -> Option<signal_request::Message> {
    proto::SignalRequest::decode(frame).ok()?.message
}

/// One WebSocket frame to the client.
pub(crate) fn encode_response(message: signal_response::Message) -> Vec<u8> {
    proto::SignalResponse {
        message: Some(message),
    }
    .encode_to_vec()
}

/// The visitor a join token admits, as the session needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Visitor {
    /// The participant's identity (`sub`).
    pub identity: String,
    /// The display name (`name`); may be empty.
    pub name: String,
    /// The room the token is for (`video.room`).
    pub room: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
}

/// The visitor as the room sees it.
pub(crate) fn visitor_info(grant: &Visitor, sid: &str) -> proto::ParticipantInfo {
    proto::ParticipantInfo {
        sid: sid.to_owned(),
        identity: grant.identity.clone(),
        name: grant.name.clone(),
        state: proto::participant_info::State::Joined as i32,
        kind: proto::participant_info::Kind::Standard as i32,
        version: 1,
        joined_at: now_ms() / 1000,
        joined_at_ms: now_ms(),
        // Without a permission the client refuses to publish ("no permissions present").
        permission: Some(proto::ParticipantPermission {
            can_subscribe: grant.can_subscribe,
            can_publish: grant.can_publish,
            can_publish_data: grant.can_publish_data,
            can_publish_sources: vec![proto::TrackSource::Microphone as i32],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The first message of every session: the room, the visitor, who else is there, and the
/// server settings the client keys its behaviour on.
pub(crate) fn join_response(
    room_sid: &str,
    room_name: &str,
    participant: proto::ParticipantInfo,
    others: Vec<proto::ParticipantInfo>,
) -> signal_response::Message {
    let publishers =
        u32::try_from(others.iter().filter(|p| !p.tracks.is_empty()).count()).unwrap_or(u32::MAX);
    signal_response::Message::Join(proto::JoinResponse {
        room: Some(proto::Room {
            sid: room_sid.to_owned(),
            name: room_name.to_owned(),
            creation_time: now_ms() / 1000,
            creation_time_ms: now_ms(),
            num_participants: u32::try_from(others.len() + 1).unwrap_or(u32::MAX),
            num_publishers: publishers,
            ..Default::default()
        }),
        participant: Some(participant),
        other_participants: others,
        server_version: SERVER_VERSION.to_owned(),
        server_info: Some(proto::ServerInfo {
            edition: proto::server_info::Edition::Standard as i32,
            version: SERVER_VERSION.to_owned(),
            protocol: 16,
            ..Default::default()
        }),
        // v0 with two peer connections: the server offers the subscriber connection first.
        subscriber_primary: true,
        ping_interval: PING_INTERVAL_SECS,
        ping_timeout: PING_TIMEOUT_SECS,
        // The stand-in cannot resume a session (no ICE restart, no state replay), so the
        // client must rejoin in full after a drop.
        client_configuration: Some(proto::ClientConfiguration {
            resume_connection: proto::ClientConfigSetting::Disabled as i32,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A session description for the client's `target` connection, numbered `id`.
pub(crate) fn description(kind: &str, sdp: String, id: u32) -> proto::SessionDescription {
    proto::SessionDescription {
        r#type: kind.to_owned(),
        sdp,
        id,
        mid_to_track_id: HashMap::new(),
    }
}

/// The answer to `ping_req`: the client's timestamp back, and ours.
pub(crate) fn pong(ping: &proto::Ping) -> signal_response::Message {
    signal_response::Message::PongResp(proto::Pong {
        last_ping_timestamp: ping.timestamp,
        timestamp: now_ms(),
    })
}

/// The visitor's published track, as `track_published` answers `add_track`.
pub(crate) fn published_track(request: &proto::AddTrackRequest, sid: &str) -> proto::TrackInfo {
    proto::TrackInfo {
        sid: sid.to_owned(),
        r#type: request.r#type,
        name: request.name.clone(),
        muted: request.muted,
        source: request.source,
        mime_type: "audio/opus".to_owned(),
        audio_features: request.audio_features.clone(),
        stream: request.stream.clone(),
        ..Default::default()
    }
}

/// `leave` telling the client the room is gone and it should not come back.
pub(crate) fn room_deleted() -> signal_response::Message {
    signal_response::Message::Leave(proto::LeaveRequest {
        can_reconnect: false,
        reason: proto::DisconnectReason::RoomDeleted as i32,
        action: proto::leave_request::Action::Disconnect as i32,
        regions: None,
    })
}

/// `leave` telling the client that another connection joined with its identity, as LiveKit
/// says to the older of two participants with one identity.
pub(crate) fn duplicate_identity() -> signal_response::Message {
    signal_response::Message::Leave(proto::LeaveRequest {
        can_reconnect: false,
        reason: proto::DisconnectReason::DuplicateIdentity as i32,
        action: proto::leave_request::Action::Disconnect as i32,
        regions: None,
    })
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Visitor {
        Visitor {
            identity: "visitor-1".into(),
            name: "Visitor".into(),
            room: "web-1".into(),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        }
    }

    #[test]
    fn a_request_frame_decodes_to_its_message() {
        let frame = proto::SignalRequest {
            message: Some(signal_request::Message::Ping(42)),
        }
        .encode_to_vec();
        assert_eq!(
            decode_request(&frame),
            Some(signal_request::Message::Ping(42))
        );
        assert_eq!(decode_request(&[0xff, 0xff]), None);
    }

    #[test]
    fn the_join_response_carries_what_the_client_insists_on() {
        let visitor = visitor_info(&grant(), "PA_v");
        let frame = encode_response(join_response("RM_1", "web-1", visitor, vec![]));
        let decoded = proto::SignalResponse::decode(frame.as_slice()).expect("decodes");
        let Some(signal_response::Message::Join(join)) = decoded.message else {
            panic!("not a join response: {decoded:?}");
        };
        assert_eq!(
            join.server_info.map(|info| info.version).as_deref(),
            Some("1.9.0")
        );
        assert!(join.subscriber_primary);
        assert_eq!(
            join.client_configuration.map(|c| c.resume_connection),
            Some(proto::ClientConfigSetting::Disabled as i32)
        );
        let participant = join.participant.expect("participant");
        let permission = participant.permission.expect("permission");
        assert!(permission.can_publish && permission.can_publish_data);
        assert_eq!(participant.identity, "visitor-1");
    }

    #[test]
    fn pong_echoes_the_ping_timestamp() {
        let message = pong(&proto::Ping {
            timestamp: 1234,
            rtt: 0,
        });
        let signal_response::Message::PongResp(pong) = message else {
            panic!("not a pong");
        };
        assert_eq!(pong.last_ping_timestamp, 1234);
        assert!(pong.timestamp > 0);
    }
}
