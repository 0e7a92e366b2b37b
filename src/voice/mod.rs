//! Talking in the conversation's LiveKit room: the [`VoiceTransport`] seam.
//!
//! The BFF's start response carries a [`VoiceGrant`] (the LiveKit URL and a join token for
//! one room and one identity, microphone only). A transport joins that room, publishes the
//! visitor's microphone, plays the agent and carries text both ways. The production
//! implementation wraps the official `livekit-client` behind a small JS bridge that is
//! imported only when a call starts; tests use a scripted one.
//!
//! Everything a transport reports arrives as plain data on one channel
//! ([`VoiceTransport::events`]), except the two media tracks, which are browser handles.
//! The pure state that turns those events into what the panel shows lives in Rust modules
//! next to this one, unit-tested natively; `audio` plays and meters the two tracks.

pub mod audio;
pub mod call;
pub mod captions;
pub mod livekit;

use futures_channel::mpsc;
use speaknode_api::VoiceGrant;

use crate::client::LocalFuture;

/// Why a transport call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceError {
    /// The media server refused the join token or the room (LiveKit's `NotAllowed`, HTTP
    /// 401/403, or 404 "requested room does not exist"). A fresh grant may help, once.
    Refused,
    /// The media server could not be reached, or the connection failed to establish.
    Unreachable,
    /// Nothing answered in time (join, publish).
    Timeout,
    /// The microphone could not be opened; text still works.
    Mic(MicError),
    /// The SDK could not be loaded, or failed in a way the widget cannot name.
    Sdk(String),
}

/// Why the microphone is unavailable, from the `DOMException` name `getUserMedia` rejected
/// with. Each gets its own sentence in the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicError {
    /// `NotAllowedError` (also `SecurityError`): the visitor or the browser said no.
    Denied,
    /// `NotFoundError` (also `OverconstrainedError`): there is no microphone.
    Missing,
    /// `NotReadableError` (also `AbortError`): another application holds it.
    Busy,
    /// Anything else.
    Other,
}

impl MicError {
    /// Maps a `DOMException.name`.
    pub fn from_dom_name(name: &str) -> Self {
        match name {
            "NotAllowedError" | "SecurityError" | "PermissionDeniedError" => Self::Denied,
            "NotFoundError" | "OverconstrainedError" | "DevicesNotFoundError" => Self::Missing,
            "NotReadableError" | "AbortError" | "TrackStartError" => Self::Busy,
            _ => Self::Other,
        }
    }
}

/// The state of the connection to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// The SDK lost the connection and is trying again on its own.
    Reconnecting,
    Disconnected(DisconnectReason),
}

/// Why the room connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The widget left (end, close, destroy).
    Left,
    /// The server closed the room or removed the participant: the conversation is over.
    RoomClosed,
    /// The token or the room was refused.
    Refused,
    /// The same participant joined from another connection (another tab), which took over.
    Replaced,
    /// The connection was lost and the SDK's own reconnection gave up.
    Network,
    /// Anything else the SDK reports.
    Other(String),
}

/// The agent's `lk.agent.state` participant attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Initializing,
    Listening,
    Thinking,
    Speaking,
    /// A value this version does not know; shown as connected, never an error.
    Unknown,
}

impl AgentState {
    /// Reads the attribute's value.
    pub fn parse(value: &str) -> Self {
        match value {
            "initializing" => Self::Initializing,
            "listening" => Self::Listening,
            "thinking" => Self::Thinking,
            "speaking" => Self::Speaking,
            _ => Self::Unknown,
        }
    }
}

/// One chunk of a text stream the widget subscribed to (`lk.transcription`, `lk.chat`), as
/// the SDK delivered it: the stream's header attributes on every chunk, the text delta, and
/// on the last one the attributes with the trailer's merged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    pub topic: String,
    pub stream_id: String,
    /// The participant the stream is attributed to (an agent may send on a visitor's behalf).
    pub sender: String,
    pub attributes: Vec<(String, String)>,
    /// The new text of this chunk (a delta, not the text so far).
    pub text: String,
    /// The stream's trailer arrived: no more chunks follow.
    pub done: bool,
}

/// A microphone the browser offers. Labels are empty until permission is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub label: String,
}

/// What a transport reports.
#[derive(Debug, Clone)]
pub enum VoiceEvent {
    Link(LinkState),
    /// A remote participant of kind `AGENT` joined (its identity).
    AgentJoined(String),
    AgentState(AgentState),
    AgentLeft,
    Text(TextChunk),
    /// The agent's audio track, to be played through an `<audio>` element and metered.
    AgentTrack(web_sys::MediaStreamTrack),
    /// The visitor's published microphone track, for the meter.
    MicTrack(web_sys::MediaStreamTrack),
    /// Whether the browser blocks playback until a click calls [`VoiceTransport::start_audio`].
    PlaybackBlocked(bool),
    /// The microphone list changed (`devicechange`, or labels after permission).
    Devices(Vec<Device>),
    /// The SDK moved to another microphone by itself (this device id): the one in use was
    /// unplugged, or the system default changed.
    ActiveDevice(String),
    /// The microphone failed after the call started (unplugged, taken by another app).
    Mic(MicError),
}

/// How the call should open the microphone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MicRequest {
    /// Whether to publish the microphone at all (`false` for a text-only start).
    pub enabled: bool,
    /// A device the visitor picked earlier.
    pub device_id: Option<String>,
}

/// Joins a conversation's room and talks in it. One transport serves one call.
pub trait VoiceTransport {
    /// Loads the SDK on first use and joins the room. When the microphone is asked for it is
    /// opened in parallel with the pre-connect buffer on, so the first words are kept. A
    /// microphone failure does not fail the join: it is reported as [`VoiceEvent::Mic`] and
    /// the call continues with text.
    fn connect(&self, grant: &VoiceGrant, mic: MicRequest) -> LocalFuture<Result<(), VoiceError>>;
    /// Mutes or unmutes (and on first use, opens) the microphone.
    fn set_mic_enabled(&self, on: bool) -> LocalFuture<Result<(), VoiceError>>;
    /// Switches to another microphone.
    fn switch_mic(&self, device_id: &str) -> LocalFuture<Result<(), VoiceError>>;
    /// Lists the microphones.
    fn microphones(&self) -> LocalFuture<Result<Vec<Device>, VoiceError>>;
    /// Unblocks playback; must run inside a click.
    fn start_audio(&self) -> LocalFuture<Result<(), VoiceError>>;
    /// Sends a typed message to the agent (`lk.chat`). Resolves once the SDK accepted it.
    fn send_chat(&self, text: &str) -> LocalFuture<Result<(), VoiceError>>;
    /// Leaves the room; idempotent.
    fn disconnect(&self) -> LocalFuture<()>;
    /// The transport's events, in order. Called once per transport.
    fn events(&self) -> mpsc::UnboundedReceiver<VoiceEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microphone_failures_map_from_dom_exception_names() {
        for (name, error) in [
            ("NotAllowedError", MicError::Denied),
            ("SecurityError", MicError::Denied),
            ("PermissionDeniedError", MicError::Denied),
            ("NotFoundError", MicError::Missing),
            ("OverconstrainedError", MicError::Missing),
            ("DevicesNotFoundError", MicError::Missing),
            ("NotReadableError", MicError::Busy),
            ("AbortError", MicError::Busy),
            ("TrackStartError", MicError::Busy),
            ("TypeError", MicError::Other),
            ("", MicError::Other),
            // DOMException names are case-sensitive; a lower-case one is not the browser's.
            ("notallowederror", MicError::Other),
        ] {
            assert_eq!(MicError::from_dom_name(name), error, "{name:?}");
        }
    }

    #[test]
    fn agent_states_parse_and_unknown_values_are_tolerated() {
        assert_eq!(AgentState::parse("listening"), AgentState::Listening);
        assert_eq!(AgentState::parse("speaking"), AgentState::Speaking);
        assert_eq!(AgentState::parse("idle"), AgentState::Unknown);
        assert_eq!(
            AgentState::parse("pre-connect-buffering"),
            AgentState::Unknown
        );
    }
}
