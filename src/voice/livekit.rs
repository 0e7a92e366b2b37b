//! The production [`VoiceTransport`]: the official `livekit-client` behind our small JS
//! bridge (`js/voice-bridge.mjs`), which the build bundles with the SDK into `app/voice.mjs`.
//!
//! Nothing loads with the page: the first [`VoiceTransport::connect`] imports the bundle,
//! relative to the wasm-bindgen glue (a snippet under `app/snippets/…/`), so it comes from
//! wherever the widget itself is served. The bridge reports everything as a JSON string
//! (plus a `MediaStreamTrack` for the two events that carry one); [`decode`] turns that into
//! [`VoiceEvent`]s and is a pure function, tested natively. Failed calls reject with a JSON
//! string as well, read by [`decode_error`].
//!
//! The event schema, one JSON object per event, `type` first:
//!
//! | `type` | other fields | becomes |
//! |---|---|---|
//! | `link` | `state`: `connecting` \| `connected` \| `reconnecting` | [`VoiceEvent::Link`] |
//! | `link` | `state`: `disconnected`, `reason`: `left` \| `room_closed` \| `refused` \| `replaced` \| `network` \| `other`, `detail`: the SDK's `DisconnectReason` name | [`VoiceEvent::Link`] |
//! | `agent_joined` | `identity` | [`VoiceEvent::AgentJoined`] |
//! | `agent_state` | `state` (`lk.agent.state`) | [`VoiceEvent::AgentState`] |
//! | `agent_left` | `identity` | [`VoiceEvent::AgentLeft`] |
//! | `text` | `topic`, `stream_id`, `sender`, `attributes` (object of strings), `text` (a delta), `done`, optional `aborted` | [`VoiceEvent::Text`] |
//! | `agent_track` | the track as the second argument | [`VoiceEvent::AgentTrack`] |
//! | `mic_track` | the track as the second argument | [`VoiceEvent::MicTrack`] |
//! | `playback` | `blocked` | [`VoiceEvent::PlaybackBlocked`] |
//! | `devices` | `devices`: `[{id, label}]` | [`VoiceEvent::Devices`] |
//! | `device` | `id`: the microphone the SDK moved to | [`VoiceEvent::ActiveDevice`] |
//! | `mic` | `name` (the `DOMException` name), `message` | [`VoiceEvent::Mic`] |
//!
//! Anything else (a newer bridge, a malformed event) is ignored. Rejections are
//! `{"code": "refused" | "unreachable" | "timeout" | "mic" | "sdk", "name", "message"}`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use futures_channel::mpsc;
use serde::Deserialize;
use speaknode_api::VoiceGrant;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{
    AgentState, Device, DisconnectReason, LinkState, MicError, MicRequest, TextChunk, VoiceError,
    VoiceEvent, VoiceTransport,
};
use crate::client::LocalFuture;

// wasm-bindgen writes this to `app/snippets/<crate>-<hash>/inline0.js`, two levels below the
// glue, so `../../voice.mjs` is `app/voice.mjs`: same origin and path as the wasm, which is
// what a page's `script-src` already allows.
#[wasm_bindgen(inline_js = "export function loadVoice() {
  return import(new URL('../../voice.mjs', import.meta.url).href);
}")]
extern "C" {
    #[wasm_bindgen(js_name = loadVoice, catch)]
    fn load_voice() -> Result<js_sys::Promise, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// The bundle's module namespace.
    type VoiceModule;

    #[wasm_bindgen(method, catch)]
    fn create(this: &VoiceModule, on_event: &js_sys::Function) -> Result<Bridge, JsValue>;

    /// What `create` returns: one Room and the listeners on it. Every method returns a
    /// promise (they are `async` functions, so they never throw).
    #[derive(Clone)]
    type Bridge;

    #[wasm_bindgen(method)]
    fn connect(this: &Bridge, url: &str, token: &str, options: &JsValue) -> js_sys::Promise;

    #[wasm_bindgen(method, js_name = setMic)]
    fn set_mic(this: &Bridge, on: bool) -> js_sys::Promise;

    #[wasm_bindgen(method, js_name = switchMic)]
    fn switch_mic(this: &Bridge, device_id: &str) -> js_sys::Promise;

    #[wasm_bindgen(method, js_name = listMics)]
    fn list_mics(this: &Bridge) -> js_sys::Promise;

    #[wasm_bindgen(method, js_name = startAudio)]
    fn start_audio(this: &Bridge) -> js_sys::Promise;

    #[wasm_bindgen(method, js_name = sendChat)]
    fn send_chat(this: &Bridge, text: &str) -> js_sys::Promise;

    #[wasm_bindgen(method)]
    fn disconnect(this: &Bridge) -> js_sys::Promise;
}

/// What one bridge event is, before the media handle of a track event is attached.
#[derive(Debug, Clone)]
pub enum Decoded {
    Event(VoiceEvent),
    /// `agent_track`: the track is the callback's second argument.
    AgentTrack,
    /// `mic_track`: the track is the callback's second argument.
    MicTrack,
}

/// An event as the bridge writes it: one flat shape for every `type`, so decoding needs no
/// tagged-enum buffering (which is large in wasm) and unknown fields are simply skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    state: Option<String>,
    reason: String,
    detail: String,
    identity: String,
    topic: String,
    stream_id: String,
    sender: String,
    attributes: BTreeMap<String, String>,
    text: String,
    done: bool,
    blocked: Option<bool>,
    devices: Vec<WireDevice>,
    name: String,
    id: String,
}

#[derive(Deserialize)]
struct WireDevice {
    id: String,
    #[serde(default)]
    label: String,
}

impl From<WireDevice> for Device {
    fn from(device: WireDevice) -> Self {
        Self {
            id: device.id,
            label: device.label,
        }
    }
}

/// Reads one bridge event. `None` for an unknown `type` or a malformed event: a newer or
/// broken bridge must not take the call down.
pub fn decode(json: &str) -> Option<Decoded> {
    let wire: Wire = serde_json::from_str(json).ok()?;
    let event = match wire.kind.as_str() {
        "link" => VoiceEvent::Link(match wire.state?.as_str() {
            "connecting" => LinkState::Connecting,
            "connected" => LinkState::Connected,
            "reconnecting" => LinkState::Reconnecting,
            "disconnected" => LinkState::Disconnected(match wire.reason.as_str() {
                "left" => DisconnectReason::Left,
                "room_closed" => DisconnectReason::RoomClosed,
                "refused" => DisconnectReason::Refused,
                "replaced" => DisconnectReason::Replaced,
                "network" => DisconnectReason::Network,
                _ if !wire.detail.is_empty() => DisconnectReason::Other(wire.detail),
                _ => DisconnectReason::Other(wire.reason.clone()),
            }),
            _ => return None,
        }),
        "agent_joined" => VoiceEvent::AgentJoined(wire.identity),
        "agent_state" => VoiceEvent::AgentState(AgentState::parse(&wire.state?)),
        "agent_left" => VoiceEvent::AgentLeft,
        "text" => VoiceEvent::Text(TextChunk {
            topic: wire.topic,
            stream_id: wire.stream_id,
            sender: wire.sender,
            attributes: wire.attributes.into_iter().collect(),
            text: wire.text,
            done: wire.done,
        }),
        "agent_track" => return Some(Decoded::AgentTrack),
        "mic_track" => return Some(Decoded::MicTrack),
        "playback" => VoiceEvent::PlaybackBlocked(wire.blocked?),
        "devices" => VoiceEvent::Devices(wire.devices.into_iter().map(Device::from).collect()),
        "device" if !wire.id.is_empty() => VoiceEvent::ActiveDevice(wire.id),
        "mic" => VoiceEvent::Mic(MicError::from_dom_name(&wire.name)),
        _ => return None,
    };
    Some(Decoded::Event(event))
}

/// A rejection as the bridge writes it.
#[derive(Deserialize)]
struct Failure {
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
}

/// Reads a bridge rejection. Anything that is not one is an SDK failure carrying the text.
pub fn decode_error(json: &str) -> VoiceError {
    let Ok(failure) = serde_json::from_str::<Failure>(json) else {
        return VoiceError::Sdk(json.to_owned());
    };
    match failure.code.as_str() {
        "refused" => VoiceError::Refused,
        "unreachable" => VoiceError::Unreachable,
        "timeout" => VoiceError::Timeout,
        "mic" => VoiceError::Mic(MicError::from_dom_name(&failure.name)),
        _ if failure.message.is_empty() => VoiceError::Sdk(failure.name),
        _ => VoiceError::Sdk(format!("{}: {}", failure.name, failure.message)),
    }
}

/// Reads the bridge's microphone list.
pub fn decode_devices(json: &str) -> Result<Vec<Device>, VoiceError> {
    serde_json::from_str::<Vec<WireDevice>>(json)
        .map(|devices| devices.into_iter().map(Device::from).collect())
        .map_err(|_| VoiceError::Sdk("unreadable microphone list".to_owned()))
}

/// What a rejected promise means: the bridge's JSON, or (from the import or the glue) an
/// `Error` whose message is all there is to say.
fn error_from_js(value: &JsValue) -> VoiceError {
    if let Some(json) = value.as_string() {
        return decode_error(&json);
    }
    let message = value
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .unwrap_or_else(|| "unknown error".to_owned());
    VoiceError::Sdk(message)
}

/// Turns a bridge callback into an event for the channel.
fn to_event(json: &str, track: JsValue) -> Option<VoiceEvent> {
    match decode(json)? {
        Decoded::Event(event) => Some(event),
        Decoded::AgentTrack => track.dyn_into().ok().map(VoiceEvent::AgentTrack),
        Decoded::MicTrack => track.dyn_into().ok().map(VoiceEvent::MicTrack),
    }
}

type OnEvent = Closure<dyn FnMut(String, JsValue)>;

struct Inner {
    sender: mpsc::UnboundedSender<VoiceEvent>,
    receiver: Option<mpsc::UnboundedReceiver<VoiceEvent>>,
    bridge: Option<Bridge>,
    /// The callback the bridge holds; dropped only after the bridge was told to stop calling.
    on_event: Option<OnEvent>,
    /// `disconnect` ran or the transport was dropped: a bundle that finishes loading after
    /// that must not open a room.
    closed: bool,
}

/// livekit-client through `app/voice.mjs`. One transport serves one call; dropping it leaves
/// the room and unregisters everything, like [`VoiceTransport::disconnect`].
pub struct LiveKitJs {
    inner: Rc<RefCell<Inner>>,
}

impl Default for LiveKitJs {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveKitJs {
    pub fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded();
        Self {
            inner: Rc::new(RefCell::new(Inner {
                sender,
                receiver: Some(receiver),
                bridge: None,
                on_event: None,
                closed: false,
            })),
        }
    }

    /// Tells the bridge to leave (it stops calling back at once, before its promise settles),
    /// then drops the callback and the bridge and ends the event channel: whoever reads the
    /// events sees the end instead of waiting forever. Returns the bridge's promise, if there
    /// was a bridge.
    fn shut(inner: &RefCell<Inner>) -> Option<js_sys::Promise> {
        let mut inner = inner.borrow_mut();
        inner.closed = true;
        let leaving = inner.bridge.take().map(|bridge| bridge.disconnect());
        inner.on_event = None;
        inner.sender.close_channel();
        leaving
    }

    fn bridge(&self) -> Result<Bridge, VoiceError> {
        self.inner
            .borrow()
            .bridge
            .clone()
            .ok_or_else(|| VoiceError::Sdk("not connected".to_owned()))
    }

    /// Runs a bridge method that resolves to nothing.
    fn call(
        &self,
        method: impl FnOnce(&Bridge) -> js_sys::Promise,
    ) -> LocalFuture<Result<(), VoiceError>> {
        let promise = self.bridge().map(|bridge| method(&bridge));
        Box::pin(async move {
            JsFuture::from(promise?)
                .await
                .map(drop)
                .map_err(|error| error_from_js(&error))
        })
    }
}

impl Drop for LiveKitJs {
    fn drop(&mut self) {
        // Nothing outlives the widget: the room is left even if nobody awaits the promise.
        let _ = Self::shut(&self.inner);
    }
}

/// Imports the bundle and creates the bridge, once.
async fn open(inner: &Rc<RefCell<Inner>>) -> Result<Bridge, VoiceError> {
    if let Some(bridge) = inner.borrow().bridge.clone() {
        return Ok(bridge);
    }
    let loading = load_voice().map_err(|error| error_from_js(&error))?;
    let module: VoiceModule = JsFuture::from(loading)
        .await
        .map_err(|error| error_from_js(&error))?
        .unchecked_into();
    let mut state = inner.borrow_mut();
    if state.closed {
        return Err(VoiceError::Sdk("disconnected".to_owned()));
    }
    if let Some(bridge) = state.bridge.clone() {
        return Ok(bridge);
    }
    let sender = state.sender.clone();
    let on_event = OnEvent::new(move |json: String, track: JsValue| {
        if let Some(event) = to_event(&json, track) {
            let _ = sender.unbounded_send(event);
        }
    });
    let bridge = module
        .create(on_event.as_ref().unchecked_ref())
        .map_err(|error| error_from_js(&error))?;
    state.on_event = Some(on_event);
    state.bridge = Some(bridge.clone());
    Ok(bridge)
}

impl VoiceTransport for LiveKitJs {
    fn connect(&self, grant: &VoiceGrant, mic: MicRequest) -> LocalFuture<Result<(), VoiceError>> {
        let inner = Rc::clone(&self.inner);
        let (url, token) = (grant.url.clone(), grant.token.clone());
        Box::pin(async move {
            let bridge = open(&inner).await?;
            let options = js_sys::Object::new();
            let set = |key: &str, value: JsValue| {
                js_sys::Reflect::set(&options, &key.into(), &value)
                    .map_err(|error| error_from_js(&error))
            };
            set("mic", mic.enabled.into())?;
            set(
                "deviceId",
                mic.device_id.map_or(JsValue::NULL, JsValue::from),
            )?;
            JsFuture::from(bridge.connect(&url, &token, &options))
                .await
                .map(drop)
                .map_err(|error| error_from_js(&error))
        })
    }

    fn set_mic_enabled(&self, on: bool) -> LocalFuture<Result<(), VoiceError>> {
        self.call(|bridge| bridge.set_mic(on))
    }

    fn switch_mic(&self, device_id: &str) -> LocalFuture<Result<(), VoiceError>> {
        self.call(|bridge| bridge.switch_mic(device_id))
    }

    fn microphones(&self) -> LocalFuture<Result<Vec<Device>, VoiceError>> {
        let promise = self.bridge().map(|bridge| bridge.list_mics());
        Box::pin(async move {
            let json = JsFuture::from(promise?)
                .await
                .map_err(|error| error_from_js(&error))?;
            decode_devices(&json.as_string().unwrap_or_default())
        })
    }

    fn start_audio(&self) -> LocalFuture<Result<(), VoiceError>> {
        self.call(|bridge| bridge.start_audio())
    }

    fn send_chat(&self, text: &str) -> LocalFuture<Result<(), VoiceError>> {
        self.call(|bridge| bridge.send_chat(text))
    }

    fn disconnect(&self) -> LocalFuture<()> {
        // Done now, not when the future is first polled: leaving must not wait on a caller.
        let leaving = Self::shut(&self.inner);
        Box::pin(async move {
            if let Some(leaving) = leaving {
                let _ = JsFuture::from(leaving).await;
            }
        })
    }

    fn events(&self) -> mpsc::UnboundedReceiver<VoiceEvent> {
        // A second caller gets a channel that is already closed.
        self.inner
            .borrow_mut()
            .receiver
            .take()
            .unwrap_or_else(|| mpsc::unbounded().1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> VoiceEvent {
        match decode(json) {
            Some(Decoded::Event(event)) => event,
            other => panic!("{json} decoded to {other:?}"),
        }
    }

    fn link(json: &str) -> LinkState {
        match event(json) {
            VoiceEvent::Link(state) => state,
            other => panic!("{json} decoded to {other:?}"),
        }
    }

    #[test]
    fn link_states() {
        assert_eq!(
            link(r#"{"type":"link","state":"connecting"}"#),
            LinkState::Connecting
        );
        assert_eq!(
            link(r#"{"type":"link","state":"connected"}"#),
            LinkState::Connected
        );
        assert_eq!(
            link(r#"{"type":"link","state":"reconnecting"}"#),
            LinkState::Reconnecting
        );
    }

    #[test]
    fn disconnect_reasons() {
        let reason = |reason: &str, detail: &str| {
            link(&format!(
                r#"{{"type":"link","state":"disconnected","reason":"{reason}","detail":"{detail}"}}"#
            ))
        };
        let gone = LinkState::Disconnected;
        assert_eq!(
            reason("left", "CLIENT_INITIATED"),
            gone(DisconnectReason::Left)
        );
        assert_eq!(
            reason("room_closed", "ROOM_DELETED"),
            gone(DisconnectReason::RoomClosed)
        );
        assert_eq!(
            reason("refused", "USER_REJECTED"),
            gone(DisconnectReason::Refused)
        );
        assert_eq!(
            reason("network", "SIGNAL_CLOSE"),
            gone(DisconnectReason::Network)
        );
        assert_eq!(
            reason("replaced", "DUPLICATE_IDENTITY"),
            gone(DisconnectReason::Replaced)
        );
        // A reason a newer bridge adds is still an end, named by what it said.
        assert_eq!(
            reason("migrated", ""),
            gone(DisconnectReason::Other("migrated".to_owned()))
        );
    }

    #[test]
    fn agent_presence_and_state() {
        assert!(matches!(
            event(r#"{"type":"agent_joined","identity":"agent-7"}"#),
            VoiceEvent::AgentJoined(identity) if identity == "agent-7"
        ));
        assert!(matches!(
            event(r#"{"type":"agent_state","state":"thinking"}"#),
            VoiceEvent::AgentState(AgentState::Thinking)
        ));
        assert!(matches!(
            event(r#"{"type":"agent_state","state":"daydreaming"}"#),
            VoiceEvent::AgentState(AgentState::Unknown)
        ));
        assert!(matches!(
            event(r#"{"type":"agent_left","identity":"agent-7"}"#),
            VoiceEvent::AgentLeft
        ));
    }

    #[test]
    fn text_chunks_keep_stream_sender_attributes_and_delta() {
        let chunk = |json: &str| match event(json) {
            VoiceEvent::Text(chunk) => chunk,
            other => panic!("{json} decoded to {other:?}"),
        };
        assert_eq!(
            chunk(
                r#"{"type":"text","topic":"lk.transcription","stream_id":"S1","sender":"visitor",
                "attributes":{"lk.transcription_final":"false","lk.segment_id":"SG1"},
                "text":"Hel","done":false}"#
            ),
            TextChunk {
                topic: "lk.transcription".to_owned(),
                stream_id: "S1".to_owned(),
                sender: "visitor".to_owned(),
                attributes: vec![
                    ("lk.segment_id".to_owned(), "SG1".to_owned()),
                    ("lk.transcription_final".to_owned(), "false".to_owned()),
                ],
                text: "Hel".to_owned(),
                done: false,
            }
        );
        // The closing event: no text, the trailer's attributes merged in, and a flag the
        // widget does not need.
        let last = chunk(
            r#"{"type":"text","topic":"lk.transcription","stream_id":"S1","sender":"visitor",
            "attributes":{"lk.transcription_final":"true"},"text":"","done":true,"aborted":true}"#,
        );
        assert!(last.done);
        assert_eq!(last.text, "");
        assert_eq!(
            last.attributes,
            vec![("lk.transcription_final".to_owned(), "true".to_owned())]
        );
    }

    #[test]
    fn track_events_wait_for_their_handle() {
        assert!(matches!(
            decode(r#"{"type":"agent_track"}"#),
            Some(Decoded::AgentTrack)
        ));
        assert!(matches!(
            decode(r#"{"type":"mic_track"}"#),
            Some(Decoded::MicTrack)
        ));
    }

    #[test]
    fn playback_devices_and_microphone_failures() {
        assert!(matches!(
            event(r#"{"type":"playback","blocked":true}"#),
            VoiceEvent::PlaybackBlocked(true)
        ));
        match event(
            r#"{"type":"devices","devices":[{"id":"default","label":"Default"},{"id":"usb"}]}"#,
        ) {
            VoiceEvent::Devices(devices) => assert_eq!(
                devices,
                vec![
                    Device {
                        id: "default".to_owned(),
                        label: "Default".to_owned()
                    },
                    Device {
                        id: "usb".to_owned(),
                        label: String::new()
                    },
                ]
            ),
            other => panic!("devices decoded to {other:?}"),
        }
        assert!(matches!(
            event(r#"{"type":"mic","name":"NotReadableError","message":"busy"}"#),
            VoiceEvent::Mic(MicError::Busy)
        ));
        assert!(matches!(
            event(r#"{"type":"device","id":"usb-2"}"#),
            VoiceEvent::ActiveDevice(id) if id == "usb-2"
        ));
        assert!(
            decode(r#"{"type":"device"}"#).is_none(),
            "no id, nothing to show"
        );
    }

    #[test]
    fn unknown_or_malformed_events_are_ignored() {
        for json in [
            r#"{"type":"quality","score":3}"#,
            r#"{"type":"link","state":"teleporting"}"#,
            r#"{"type":"link"}"#,
            r#"{"type":"playback"}"#,
            r#"{"type":"playback","blocked":"yes"}"#,
            r#"{"type":"text","attributes":{"n":1}}"#,
            r#"{"no":"type"}"#,
            r#"[]"#,
            "not json",
            "",
        ] {
            assert!(decode(json).is_none(), "{json} was not ignored");
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(
            decode_error(r#"{"code":"refused","name":"ConnectionError","message":"401"}"#),
            VoiceError::Refused
        );
        assert_eq!(
            decode_error(r#"{"code":"unreachable","name":"ConnectionError","message":""}"#),
            VoiceError::Unreachable
        );
        assert_eq!(
            decode_error(r#"{"code":"timeout","name":"ConnectionError","message":""}"#),
            VoiceError::Timeout
        );
        assert_eq!(
            decode_error(r#"{"code":"mic","name":"NotAllowedError","message":"denied"}"#),
            VoiceError::Mic(MicError::Denied)
        );
        assert_eq!(
            decode_error(r#"{"code":"sdk","name":"DataStreamError","message":"too big"}"#),
            VoiceError::Sdk("DataStreamError: too big".to_owned())
        );
        assert_eq!(
            decode_error("something odd"),
            VoiceError::Sdk("something odd".to_owned())
        );
    }

    #[test]
    fn microphone_lists() {
        assert_eq!(
            decode_devices(r#"[{"id":"a","label":"Built-in"}]"#),
            Ok(vec![Device {
                id: "a".to_owned(),
                label: "Built-in".to_owned()
            }])
        );
        assert!(decode_devices("{}").is_err());
    }
}
