//! A scripted [`VoiceTransport`] for the browser tests: the test pushes [`VoiceEvent`]s into
//! it and reads back what the widget asked for (grants it connected with, microphone
//! toggles, chats sent), with failures set up beforehand (refused joins, a microphone error,
//! failed sends, a join that never answers).
//!
//! Like a LiveKit room, a successful `connect` reports `Connecting` then `Connected` on the
//! event channel before it resolves, and with [`ScriptedVoice::auto_agent`] set the agent
//! joins and starts listening right after.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc;
use speaknode_api::VoiceGrant;
use speaknode_widget::client::LocalFuture;
use speaknode_widget::voice::{
    AgentState, Device, DisconnectReason, LinkState, MicError, MicRequest, TextChunk, VoiceError,
    VoiceEvent, VoiceTransport,
};

/// The agent's identity in scripted rooms.
pub const AGENT_IDENTITY: &str = "agent-AJ_scripted";
/// The visitor's identity in scripted rooms.
pub const VISITOR_IDENTITY: &str = "visitor-1";

pub struct ScriptedVoice {
    sender: mpsc::UnboundedSender<VoiceEvent>,
    receiver: RefCell<Option<mpsc::UnboundedReceiver<VoiceEvent>>>,
    /// Every `connect`, with the grant and microphone request it carried.
    pub connects: RefCell<Vec<(VoiceGrant, MicRequest)>>,
    /// Every `set_mic_enabled`, in order.
    pub mic_toggles: RefCell<Vec<bool>>,
    /// Every `switch_mic`, in order.
    pub switches: RefCell<Vec<String>>,
    /// Every chat the transport accepted, in order (failed sends are not here).
    pub chats: RefCell<Vec<String>>,
    /// Every `send_chat`, accepted or not.
    pub chat_attempts: RefCell<Vec<String>>,
    pub audio_starts: Cell<u32>,
    pub disconnects: Cell<u32>,
    /// The microphones `microphones` lists.
    pub devices: RefCell<Vec<Device>>,
    /// The next this many joins are refused (`VoiceError::Refused`).
    pub refuse_connects: Cell<u32>,
    /// The next join fails with this error instead.
    pub connect_failure: RefCell<Option<VoiceError>>,
    /// Joins never answer (for the join timeout).
    pub hold_connects: Cell<bool>,
    /// Opening the microphone fails with this: reported as an event on `connect` (the join
    /// itself succeeds) and as the error of `set_mic_enabled(true)` and `switch_mic`.
    pub mic_failure: Cell<Option<MicError>>,
    /// The next this many sends fail.
    pub failing_sends: Cell<u32>,
    /// `start_audio` fails (no gesture) while set.
    pub refuse_audio: Cell<bool>,
    /// When set, a successful join is followed by this agent joining and listening.
    pub auto_agent: RefCell<Option<String>>,
}

impl ScriptedVoice {
    pub fn new() -> Rc<Self> {
        let (sender, receiver) = mpsc::unbounded();
        Rc::new(Self {
            sender,
            receiver: RefCell::new(Some(receiver)),
            connects: RefCell::default(),
            mic_toggles: RefCell::default(),
            switches: RefCell::default(),
            chats: RefCell::default(),
            chat_attempts: RefCell::default(),
            audio_starts: Cell::new(0),
            disconnects: Cell::new(0),
            devices: RefCell::new(vec![Device {
                id: "default".into(),
                label: "Default microphone".into(),
            }]),
            refuse_connects: Cell::new(0),
            connect_failure: RefCell::default(),
            hold_connects: Cell::new(false),
            mic_failure: Cell::new(None),
            failing_sends: Cell::new(0),
            refuse_audio: Cell::new(false),
            auto_agent: RefCell::new(Some(AGENT_IDENTITY.into())),
        })
    }

    /// Delivers an event as the transport would.
    pub fn push(&self, event: VoiceEvent) {
        // The widget may have dropped the receiver (the call ended); that is not an error.
        let _ = self.sender.unbounded_send(event);
    }

    /// The grants the widget connected with, in order.
    pub fn grants(&self) -> Vec<VoiceGrant> {
        self.connects
            .borrow()
            .iter()
            .map(|(grant, _)| grant.clone())
            .collect()
    }

    pub fn agent_joins(&self, identity: &str) {
        self.push(VoiceEvent::AgentJoined(identity.into()));
    }

    pub fn agent_state(&self, state: AgentState) {
        self.push(VoiceEvent::AgentState(state));
    }

    /// The agent says `text` as one delta of its stream `stream`; `last` sends the trailer
    /// with `lk.transcription_final` true.
    pub fn agent_says(&self, stream: &str, text: &str, last: bool) {
        self.push(VoiceEvent::Text(transcription(
            AGENT_IDENTITY,
            stream,
            stream,
            text,
            last,
        )));
    }

    /// The visitor's speech as the agent's speech-to-text publishes it: each call is a
    /// complete short stream for `segment` (interim unless `last`).
    pub fn visitor_says(&self, stream: &str, segment: &str, text: &str, last: bool) {
        let mut chunk = transcription(VISITOR_IDENTITY, stream, segment, text, last);
        // Interim results are whole streams too: the trailer always comes.
        chunk.done = true;
        self.push(VoiceEvent::Text(chunk));
    }

    /// The SDK loses the connection, tries once and gives up.
    pub fn drop_connection(&self) {
        self.push(VoiceEvent::Link(LinkState::Reconnecting));
        self.push(VoiceEvent::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
    }

    /// The server closes the room (the conversation is over).
    pub fn close_room(&self) {
        self.push(VoiceEvent::AgentLeft);
        self.push(VoiceEvent::Link(LinkState::Disconnected(
            DisconnectReason::RoomClosed,
        )));
    }

    fn mic_result(&self) -> Result<(), VoiceError> {
        match self.mic_failure.get() {
            Some(error) => Err(VoiceError::Mic(error)),
            None => Ok(()),
        }
    }
}

/// A one-chunk `lk.transcription` stream.
pub fn transcription(
    sender: &str,
    stream: &str,
    segment: &str,
    text: &str,
    last: bool,
) -> TextChunk {
    TextChunk {
        topic: "lk.transcription".into(),
        stream_id: stream.into(),
        sender: sender.into(),
        attributes: vec![
            ("lk.segment_id".into(), segment.into()),
            (
                "lk.transcription_final".into(),
                if last { "true" } else { "false" }.into(),
            ),
        ],
        text: text.into(),
        done: last,
    }
}

impl VoiceTransport for ScriptedVoice {
    fn connect(&self, grant: &VoiceGrant, mic: MicRequest) -> LocalFuture<Result<(), VoiceError>> {
        self.connects
            .borrow_mut()
            .push((grant.clone(), mic.clone()));
        if self.hold_connects.get() {
            return Box::pin(std::future::pending());
        }
        self.push(VoiceEvent::Link(LinkState::Connecting));
        if self.refuse_connects.get() > 0 {
            self.refuse_connects.set(self.refuse_connects.get() - 1);
            self.push(VoiceEvent::Link(LinkState::Disconnected(
                DisconnectReason::Refused,
            )));
            return Box::pin(async { Err(VoiceError::Refused) });
        }
        if let Some(error) = self.connect_failure.borrow_mut().take() {
            return Box::pin(async move { Err(error) });
        }
        self.push(VoiceEvent::Link(LinkState::Connected));
        if mic.enabled
            && let Some(error) = self.mic_failure.get()
        {
            self.push(VoiceEvent::Mic(error));
        }
        if let Some(agent) = self.auto_agent.borrow().clone() {
            self.push(VoiceEvent::AgentJoined(agent));
            self.push(VoiceEvent::AgentState(AgentState::Listening));
        }
        Box::pin(async { Ok(()) })
    }

    fn set_mic_enabled(&self, on: bool) -> LocalFuture<Result<(), VoiceError>> {
        self.mic_toggles.borrow_mut().push(on);
        let result = if on { self.mic_result() } else { Ok(()) };
        Box::pin(async move { result })
    }

    fn switch_mic(&self, device_id: &str) -> LocalFuture<Result<(), VoiceError>> {
        self.switches.borrow_mut().push(device_id.into());
        let result = self.mic_result();
        Box::pin(async move { result })
    }

    fn microphones(&self) -> LocalFuture<Result<Vec<Device>, VoiceError>> {
        let devices = self.devices.borrow().clone();
        Box::pin(async move { Ok(devices) })
    }

    fn start_audio(&self) -> LocalFuture<Result<(), VoiceError>> {
        self.audio_starts.set(self.audio_starts.get() + 1);
        if self.refuse_audio.get() {
            return Box::pin(async { Err(VoiceError::Sdk("NotAllowedError".into())) });
        }
        self.push(VoiceEvent::PlaybackBlocked(false));
        Box::pin(async { Ok(()) })
    }

    fn send_chat(&self, text: &str) -> LocalFuture<Result<(), VoiceError>> {
        self.chat_attempts.borrow_mut().push(text.into());
        if self.failing_sends.get() > 0 {
            self.failing_sends.set(self.failing_sends.get() - 1);
            return Box::pin(async { Err(VoiceError::Sdk("the data channel closed".into())) });
        }
        self.chats.borrow_mut().push(text.into());
        Box::pin(async { Ok(()) })
    }

    fn disconnect(&self) -> LocalFuture<()> {
        self.disconnects.set(self.disconnects.get() + 1);
        self.push(VoiceEvent::Link(LinkState::Disconnected(
            DisconnectReason::Left,
        )));
        Box::pin(async {})
    }

    fn events(&self) -> mpsc::UnboundedReceiver<VoiceEvent> {
        self.receiver
            .borrow_mut()
            .take()
            .expect("events() is called once per transport")
    }
}
