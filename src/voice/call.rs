//! The call: a pure state machine over one conversation's LiveKit room, driven by inputs and
//! answering with the effects to run. No browser types, no timers and nothing awaited in the
//! machine: the driver owns those, so every rule here is tested with plain `#[test]`s.
//!
//! Wiring (the driver's loop):
//!
//! 1. The visitor clicks "Start call": `call.set_baseline(session.transcript.turns())`, then
//!    `call.handle(Input::Start { grant, mic })` with the start response's [`VoiceGrant`].
//! 2. Run every [`Effect`] returned, in order, and feed each outcome back as an input
//!    ([`Effect::run_on`] does that for the effects on the transport):
//!    [`Effect::Connect`] → `transport.connect(..)` → [`Input::Joined`] (with the same
//!    `attempt`); [`Effect::RenewGrant`] and [`Effect::Reconnect`] → the BFF's token renewal →
//!    [`Input::Grant`]; [`Effect::StartTimer`] → sleep `millis` → [`Input::Timer`] (with the
//!    same id; a timer the call no longer waits for is ignored, so timers need no cancelling);
//!    [`Effect::SendChat`] → `send_chat` → [`Input::Sent`]; [`Effect::SetMic`] →
//!    [`Input::MicSet`]; [`Effect::SwitchMic`] → [`Input::MicSwitched`];
//!    [`Effect::StartAudio`] → [`Input::AudioStarted`] (it must run inside the click that
//!    asked for it, so run it before awaiting anything); [`Effect::Disconnect`] →
//!    `disconnect()`, nothing to feed back.
//! 3. Turn every transport event into an input with [`Input::from_event`] (the two media
//!    tracks are not inputs: they go straight to the audio elements and meters).
//! 4. Render from [`Call::phase`], [`Call::mic`], [`Call::playback_blocked`],
//!    [`Call::outbox`] and [`Call::transcript`]; `i18n::Messages::call_status` and friends
//!    word them.
//!
//! The rules, in one place:
//!
//! - Joining has [`Policy::join_timeout_millis`] (20 s, as LiveKit's own components) to get
//!   the room connected *and* the agent ready (listening, thinking or speaking); on expiry the
//!   call fails naming what was missing ([`JoinStage`]).
//! - A refused token or room (on connect or as the disconnect reason) asks for a fresh grant
//!   once ([`Effect::RenewGrant`]); a second refusal fails the call.
//! - The SDK's own reconnection runs first (phase [`CallPhase::Reconnecting`]). When it gives
//!   up (`Disconnected(Network)`), the call rejoins once by itself with a fresh grant
//!   ([`Effect::Reconnect`]); the next loss fails with Retry offered. Retry restores both
//!   budgets.
//! - The agent leaving is not yet the end: the room closing usually follows. The call waits
//!   [`Policy::agent_gone_millis`] for the room to close (→ Ended) or the agent to come back,
//!   and otherwise fails with [`CallFailure::AgentLeft`].
//! - A microphone failure never ends the call: it sets a notice and the call goes on in
//!   text. Muting is shown as asked at once and corrected if the transport says otherwise.
//! - Typed messages go into an outbox with a local id, are shown at once, are sent one at a
//!   time and in order while connected, and stay (queued, or failed with a retry) otherwise:
//!   nothing typed is lost, including across a reconnect. A send in flight when the
//!   connection goes is queued again (it may arrive twice, never not at all, unless its
//!   success still comes in); what is queued when the call ends shows as not sent.

use speaknode_api::{Turn, VoiceGrant};

use super::captions::{Captions, Shown};
use super::{
    AgentState, Device, DisconnectReason, LinkState, MicError, MicRequest, TextChunk, VoiceError,
    VoiceEvent, VoiceTransport,
};
use crate::client::LocalFuture;
use crate::session::WidgetError;

/// How patient the call is, and how often it recovers by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// From Start (or a rejoin) until the room is connected and the agent is ready.
    pub join_timeout_millis: u32,
    /// How long the agent may be gone before the call fails, waiting for the room to close.
    pub agent_gone_millis: u32,
    /// Fresh grants asked for after a refusal, per Start or Retry.
    pub renewals: u32,
    /// Automatic rejoins after the SDK's reconnection gave up, per Start or Retry.
    pub rejoins: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            // LiveKit components' DEFAULT_AGENT_CONNECT_TIMEOUT_MILLISECONDS.
            join_timeout_millis: 20_000,
            agent_gone_millis: 5_000,
            renewals: 1,
            rejoins: 1,
        }
    }
}

/// What remains of the automatic recoveries [`Policy`] allows; the visitor's Retry refills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    renewals: u32,
    rejoins: u32,
}

impl Budget {
    pub fn new(policy: &Policy) -> Self {
        Self {
            renewals: policy.renewals,
            rejoins: policy.rejoins,
        }
    }

    /// Takes one grant renewal, if any is left.
    pub fn take_renewal(&mut self) -> bool {
        take(&mut self.renewals)
    }

    /// Takes one automatic rejoin, if any is left.
    pub fn take_rejoin(&mut self) -> bool {
        take(&mut self.rejoins)
    }
}

fn take(left: &mut u32) -> bool {
    let some = *left > 0;
    *left = left.saturating_sub(1);
    some
}

/// What the panel shows about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallPhase {
    Idle,
    /// Getting into the room (or a fresh grant for it).
    Joining,
    /// In the room; `None` while the agent is not (or no longer) there.
    Connected {
        agent: Option<AgentState>,
    },
    /// The connection dropped and is being restored (by the SDK, or by a rejoin).
    Reconnecting,
    /// The call is over (hung up, or the conversation or room ended).
    Ended,
    /// The call stopped; Retry is offered.
    Failed(CallFailure),
}

/// What was missing when the join timer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStage {
    /// The room connection itself.
    Room,
    /// The agent never joined the room.
    Agent,
    /// The agent joined but never got ready.
    AgentReady,
}

/// Why the call stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    JoinTimeout(JoinStage),
    /// The media server refused the token or the room, even with a fresh grant.
    Refused,
    /// The media server could not be reached for the first join.
    Unreachable,
    /// The connection was lost and the one automatic rejoin did not bring it back.
    ConnectionLost,
    /// The agent left and the room did not close.
    AgentLeft,
    /// The same visitor joined the call from elsewhere (another tab), which took it over;
    /// this one does not take it back unless the visitor asks.
    Replaced,
    /// The BFF gave no fresh grant.
    Grant(WidgetError),
    /// The SDK failed in a way the widget cannot name.
    Sdk(String),
}

/// The two timers a call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    Join,
    AgentGone,
}

/// Names one timer run; an expiry for any other run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId {
    pub kind: TimerKind,
    pub seq: u32,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Join the room; answer with [`Input::Joined`] carrying `attempt`.
    Connect {
        attempt: u32,
        grant: VoiceGrant,
        mic: MicRequest,
    },
    /// Ask the BFF for a fresh grant (the old one was refused); answer with [`Input::Grant`].
    RenewGrant,
    /// The room connection is gone for good: leave it (a new transport may replace the old
    /// one), ask the BFF for a fresh grant and answer with [`Input::Grant`].
    Reconnect,
    /// Sleep `millis`, then feed [`Input::Timer`] with `id`.
    StartTimer { id: TimerId, millis: u32 },
    /// Send a typed message; answer with [`Input::Sent`].
    SendChat { id: u64, text: String },
    /// Mute (`false`) or unmute; answer with [`Input::MicSet`].
    SetMic(bool),
    /// Answer with [`Input::MicSwitched`].
    SwitchMic(String),
    /// Unblock playback, inside the current click; answer with [`Input::AudioStarted`].
    StartAudio,
    /// Leave the room (idempotent).
    Disconnect,
}

impl Effect {
    /// Runs an effect that needs only the transport and resolves to the input to feed back
    /// (`None` after [`Effect::Disconnect`]). The transport is called before this returns,
    /// so [`Effect::StartAudio`] run from a click handler is inside the click even though the
    /// answer is awaited later. The effects the driver runs itself ([`Effect::RenewGrant`],
    /// [`Effect::Reconnect`], [`Effect::StartTimer`]) come back as `Err`.
    pub fn run_on(
        self,
        transport: &dyn VoiceTransport,
    ) -> Result<LocalFuture<Option<Input>>, Effect> {
        Ok(match self {
            Effect::Connect {
                attempt,
                grant,
                mic,
            } => {
                let joined = transport.connect(&grant, mic);
                Box::pin(async move {
                    Some(Input::Joined {
                        attempt,
                        result: joined.await,
                    })
                })
            }
            Effect::SendChat { id, text } => {
                let sent = transport.send_chat(&text);
                Box::pin(async move {
                    Some(Input::Sent {
                        id,
                        result: sent.await,
                    })
                })
            }
            Effect::SetMic(on) => {
                let set = transport.set_mic_enabled(on);
                Box::pin(async move {
                    Some(Input::MicSet {
                        on,
                        result: set.await,
                    })
                })
            }
            Effect::SwitchMic(device) => {
                let switched = transport.switch_mic(&device);
                Box::pin(async move { Some(Input::MicSwitched(switched.await)) })
            }
            Effect::StartAudio => {
                let started = transport.start_audio();
                Box::pin(async move { Some(Input::AudioStarted(started.await)) })
            }
            Effect::Disconnect => {
                let left = transport.disconnect();
                Box::pin(async move {
                    left.await;
                    None
                })
            }
            other @ (Effect::RenewGrant | Effect::Reconnect | Effect::StartTimer { .. }) => {
                return Err(other);
            }
        })
    }
}

/// Everything that moves the call: the visitor, the transport, the BFF and the timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The visitor starts a call with the grant from the start response.
    Start {
        grant: VoiceGrant,
        mic: MicRequest,
    },
    Hangup,
    /// After a failure: try again with a fresh grant and full budgets.
    Retry,
    /// The visitor typed a message.
    Send(String),
    /// The visitor retries a message that failed.
    RetrySend(u64),
    /// The visitor unmutes (`true`) or mutes.
    SetMic(bool),
    SwitchMic(String),
    /// The visitor clicked "enable audio".
    EnableAudio,
    /// The outcome of [`Effect::Connect`].
    Joined {
        attempt: u32,
        result: Result<(), VoiceError>,
    },
    /// The outcome of [`Effect::RenewGrant`] or [`Effect::Reconnect`].
    Grant(Result<VoiceGrant, WidgetError>),
    /// The outcome of [`Effect::SendChat`].
    Sent {
        id: u64,
        result: Result<(), VoiceError>,
    },
    /// The outcome of [`Effect::SetMic`], with what was asked.
    MicSet {
        on: bool,
        result: Result<(), VoiceError>,
    },
    MicSwitched(Result<(), VoiceError>),
    AudioStarted(Result<(), VoiceError>),
    Timer(TimerId),
    /// The BFF reports the conversation Completed or Failed.
    ConversationOver,
    /// Transport events ([`Input::from_event`]).
    Link(LinkState),
    AgentJoined(String),
    AgentState(AgentState),
    AgentLeft,
    Text(TextChunk),
    PlaybackBlocked(bool),
    Devices(Vec<Device>),
    ActiveDevice(String),
    MicFailed(MicError),
}

impl Input {
    /// The input for a transport event; `None` for the media tracks, which the audio code
    /// takes directly.
    pub fn from_event(event: VoiceEvent) -> Option<Self> {
        Some(match event {
            VoiceEvent::Link(state) => Self::Link(state),
            VoiceEvent::AgentJoined(identity) => Self::AgentJoined(identity),
            VoiceEvent::AgentState(state) => Self::AgentState(state),
            VoiceEvent::AgentLeft => Self::AgentLeft,
            VoiceEvent::Text(chunk) => Self::Text(chunk),
            VoiceEvent::PlaybackBlocked(blocked) => Self::PlaybackBlocked(blocked),
            VoiceEvent::Devices(devices) => Self::Devices(devices),
            VoiceEvent::ActiveDevice(id) => Self::ActiveDevice(id),
            VoiceEvent::Mic(error) => Self::MicFailed(error),
            VoiceEvent::AgentTrack(_) | VoiceEvent::MicTrack(_) => return None,
        })
    }
}

/// The microphone as the panel shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mic {
    /// Unmuted (as asked; corrected when the transport says otherwise).
    pub on: bool,
    /// Why the microphone is unavailable: shown with "you can type instead".
    pub notice: Option<MicError>,
    pub devices: Vec<Device>,
    /// The device the visitor picked.
    pub device: Option<String>,
}

/// Where a typed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Waiting for the call to be connected (or for the one before it to go out).
    Queued,
    Sending,
    Sent,
    /// The transport refused it while connected; the visitor can retry.
    Failed,
}

/// A typed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Local, increasing; also the caption line's key ([`super::captions::LineKey::Local`]).
    pub id: u64,
    pub text: String,
    pub state: SendState,
}

/// Where the connection is, inside the machine. [`CallPhase`] adds the agent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Idle,
    Joining,
    Connected,
    /// `rejoin`: the call itself is rejoining (after the SDK gave up, or a refusal);
    /// otherwise the SDK is reconnecting on its own.
    Reconnecting {
        rejoin: bool,
    },
    Ended,
    Failed(CallFailure),
}

/// One call. See the module documentation for the wiring and the rules.
#[derive(Debug, Clone)]
pub struct Call {
    policy: Policy,
    budget: Budget,
    stage: Stage,
    agent: Option<AgentState>,
    attempt: u32,
    awaiting_grant: bool,
    timer_seq: u32,
    join_timer: Option<u32>,
    agent_timer: Option<u32>,
    mic: Mic,
    playback_blocked: bool,
    outbox: Vec<Outgoing>,
    next_id: u64,
    captions: Captions,
}

impl Default for Call {
    fn default() -> Self {
        Self::new(Policy::default())
    }
}

impl Call {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            budget: Budget::new(&policy),
            stage: Stage::Idle,
            agent: None,
            attempt: 0,
            awaiting_grant: false,
            timer_seq: 0,
            join_timer: None,
            agent_timer: None,
            mic: Mic::default(),
            playback_blocked: false,
            outbox: Vec::new(),
            next_id: 1,
            captions: Captions::default(),
        }
    }

    pub fn phase(&self) -> CallPhase {
        match &self.stage {
            Stage::Idle => CallPhase::Idle,
            Stage::Joining => CallPhase::Joining,
            Stage::Connected => CallPhase::Connected { agent: self.agent },
            Stage::Reconnecting { .. } => CallPhase::Reconnecting,
            Stage::Ended => CallPhase::Ended,
            Stage::Failed(failure) => CallPhase::Failed(failure.clone()),
        }
    }

    pub fn mic(&self) -> &Mic {
        &self.mic
    }

    /// Whether the panel shows "enable audio".
    pub fn playback_blocked(&self) -> bool {
        self.playback_blocked
    }

    /// Every message typed in this call, in order.
    pub fn outbox(&self) -> &[Outgoing] {
        &self.outbox
    }

    /// The typed message behind a local caption line.
    pub fn outgoing(&self, id: u64) -> Option<&Outgoing> {
        self.outbox.iter().find(|message| message.id == id)
    }

    pub fn captions(&self) -> &Captions {
        &self.captions
    }

    /// The transcript to show: `history` (the session's turns) and the live lines it does
    /// not hold yet.
    pub fn transcript(&self, history: &[Turn]) -> Vec<Shown> {
        self.captions.merged(history)
    }

    /// Remembers the turns that exist before the call, so they never hide a live line.
    pub fn set_baseline(&mut self, history: &[Turn]) {
        self.captions.set_baseline(history);
    }

    /// Whether the call runs on text only: the microphone is unavailable.
    pub fn text_only(&self) -> bool {
        self.mic.notice.is_some()
    }

    /// Whether a call is being joined or held, so a second Start must not be sent.
    pub fn is_live(&self) -> bool {
        matches!(
            self.stage,
            Stage::Joining | Stage::Connected | Stage::Reconnecting { .. }
        )
    }

    /// Takes one input; returns the effects to run, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Start { grant, mic } => self.start(grant, mic, &mut effects),
            Input::Hangup => {
                if self.is_live() || matches!(self.stage, Stage::Failed(_)) {
                    self.end(&mut effects);
                }
            }
            Input::Retry => {
                if matches!(self.stage, Stage::Failed(_)) {
                    self.budget = Budget::new(&self.policy);
                    self.stage = Stage::Joining;
                    self.agent = None;
                    self.awaiting_grant = true;
                    effects.push(Effect::RenewGrant);
                    self.start_join_timer(&mut effects);
                }
            }
            Input::Send(text) => {
                if !text.trim().is_empty() {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.captions.push_local(id, &text);
                    self.outbox.push(Outgoing {
                        id,
                        text,
                        state: SendState::Queued,
                    });
                    self.flush(&mut effects);
                }
            }
            Input::RetrySend(id) => {
                if let Some(message) = self
                    .outbox
                    .iter_mut()
                    .find(|m| m.id == id && m.state == SendState::Failed)
                {
                    message.state = SendState::Queued;
                }
                self.flush(&mut effects);
            }
            Input::SetMic(on) => {
                self.mic.on = on;
                if self.is_live() {
                    effects.push(Effect::SetMic(on));
                }
            }
            Input::SwitchMic(device) => {
                self.mic.device = Some(device.clone());
                if self.is_live() {
                    effects.push(Effect::SwitchMic(device));
                }
            }
            Input::EnableAudio => {
                if self.is_live() {
                    effects.push(Effect::StartAudio);
                }
            }
            Input::Joined { attempt, result } => self.joined(attempt, result, &mut effects),
            Input::Grant(result) => self.granted(result, &mut effects),
            Input::Sent { id, result } => {
                let connected = self.stage == Stage::Connected;
                if let Some(message) = self.outbox.iter_mut().find(|m| m.id == id) {
                    message.state = match (result, message.state) {
                        // Delivered, even if the call stopped waiting for the answer and
                        // queued it again: sending it twice would help nobody.
                        (Ok(()), _) => SendState::Sent,
                        // A send that failed because the connection is going away is sent
                        // again once it is back; only a failure while connected is shown.
                        (Err(_), SendState::Sending) if connected => SendState::Failed,
                        (Err(_), SendState::Sending) => SendState::Queued,
                        (Err(_), state) => state,
                    };
                }
                self.flush(&mut effects);
            }
            Input::MicSet { on, result } => match result {
                Ok(()) => {
                    self.mic.on = on;
                    if on {
                        self.mic.notice = None;
                    }
                }
                // Never show a microphone as muted that is not: a failed mute leaves it on.
                Err(error) => {
                    self.mic.on = !on;
                    self.mic.notice = Some(mic_error(&error));
                }
            },
            Input::MicSwitched(result) => match result {
                Ok(()) => self.mic.notice = None,
                Err(error) => self.mic.notice = Some(mic_error(&error)),
            },
            Input::AudioStarted(result) => {
                if result.is_ok() {
                    self.playback_blocked = false;
                }
            }
            Input::Timer(id) => self.timer(id, &mut effects),
            Input::ConversationOver => {
                if self.stage != Stage::Idle && self.stage != Stage::Ended {
                    self.end(&mut effects);
                }
            }
            Input::Link(state) => self.link(state, &mut effects),
            Input::AgentJoined(identity) => {
                self.captions.set_agent(&identity);
                self.agent_timer = None;
                self.agent.get_or_insert(AgentState::Initializing);
                self.check_ready();
            }
            Input::AgentState(state) => {
                self.agent = Some(state);
                self.agent_timer = None;
                self.check_ready();
            }
            Input::AgentLeft => {
                self.agent = None;
                if self.is_live() {
                    self.timer_seq += 1;
                    self.agent_timer = Some(self.timer_seq);
                    effects.push(Effect::StartTimer {
                        id: TimerId {
                            kind: TimerKind::AgentGone,
                            seq: self.timer_seq,
                        },
                        millis: self.policy.agent_gone_millis,
                    });
                }
            }
            Input::Text(chunk) => {
                self.captions.push(&chunk);
            }
            Input::PlaybackBlocked(blocked) => self.playback_blocked = blocked,
            Input::Devices(devices) => self.mic.devices = devices,
            // Already switched: the picker and the next join follow, nothing to do.
            Input::ActiveDevice(id) => self.mic.device = Some(id),
            Input::MicFailed(error) => {
                self.mic.on = false;
                self.mic.notice = Some(error);
            }
        }
        effects
    }

    fn start(&mut self, grant: VoiceGrant, mic: MicRequest, effects: &mut Vec<Effect>) {
        if self.is_live() {
            return;
        }
        self.budget = Budget::new(&self.policy);
        self.stage = Stage::Joining;
        self.agent = None;
        self.awaiting_grant = false;
        self.mic.on = mic.enabled;
        self.mic.notice = None;
        if mic.device_id.is_some() {
            self.mic.device = mic.device_id;
        }
        self.connect(grant, effects);
        self.start_join_timer(effects);
    }

    fn connect(&mut self, grant: VoiceGrant, effects: &mut Vec<Effect>) {
        self.attempt += 1;
        effects.push(Effect::Connect {
            attempt: self.attempt,
            grant,
            mic: MicRequest {
                enabled: self.mic.on,
                device_id: self.mic.device.clone(),
            },
        });
    }

    fn start_join_timer(&mut self, effects: &mut Vec<Effect>) {
        self.timer_seq += 1;
        self.join_timer = Some(self.timer_seq);
        effects.push(Effect::StartTimer {
            id: TimerId {
                kind: TimerKind::Join,
                seq: self.timer_seq,
            },
            millis: self.policy.join_timeout_millis,
        });
    }

    fn joined(&mut self, attempt: u32, result: Result<(), VoiceError>, effects: &mut Vec<Effect>) {
        let joining = matches!(
            self.stage,
            Stage::Joining | Stage::Reconnecting { rejoin: true }
        );
        if attempt != self.attempt || !joining || self.awaiting_grant {
            return;
        }
        let rejoin = self.stage != Stage::Joining;
        match result {
            Ok(()) => self.connected(effects),
            // The transport promises a microphone failure does not fail the join; should
            // one arrive here anyway, the room is joined and the call goes on in text.
            Err(VoiceError::Mic(error)) => {
                self.mic.on = false;
                self.mic.notice = Some(error);
                self.connected(effects);
            }
            Err(VoiceError::Refused) => self.refused(effects),
            Err(VoiceError::Unreachable) if rejoin => {
                self.fail(CallFailure::ConnectionLost, effects)
            }
            Err(VoiceError::Unreachable) => self.fail(CallFailure::Unreachable, effects),
            Err(VoiceError::Timeout) if rejoin => self.fail(CallFailure::ConnectionLost, effects),
            Err(VoiceError::Timeout) => {
                self.fail(CallFailure::JoinTimeout(JoinStage::Room), effects)
            }
            Err(VoiceError::Sdk(message)) => self.fail(CallFailure::Sdk(message), effects),
        }
    }

    fn granted(&mut self, result: Result<VoiceGrant, WidgetError>, effects: &mut Vec<Effect>) {
        if !self.awaiting_grant || !self.is_live() {
            return;
        }
        self.awaiting_grant = false;
        match result {
            Ok(grant) => self.connect(grant, effects),
            Err(error) => self.fail(CallFailure::Grant(error), effects),
        }
    }

    fn link(&mut self, state: LinkState, effects: &mut Vec<Effect>) {
        match state {
            LinkState::Connecting => {}
            LinkState::Connected => {
                if matches!(self.stage, Stage::Joining | Stage::Reconnecting { .. })
                    && !self.awaiting_grant
                {
                    self.connected(effects);
                }
            }
            LinkState::Reconnecting => {
                if self.stage == Stage::Connected {
                    self.stage = Stage::Reconnecting { rejoin: false };
                }
            }
            LinkState::Disconnected(reason) => {
                // While a connect is pending its result decides (the transport reports a
                // failed join both ways; counting both would spend the budget twice), and
                // while a grant is awaited the old connection's last words are moot.
                let held = matches!(
                    self.stage,
                    Stage::Connected | Stage::Reconnecting { rejoin: false }
                );
                if reason == DisconnectReason::RoomClosed && self.is_live() {
                    return self.end(effects);
                }
                if !held {
                    return;
                }
                match reason {
                    // Only the widget leaves; whatever made it leave already set the phase.
                    // An old transport replaced by a rejoin reports this too.
                    DisconnectReason::Left => {}
                    DisconnectReason::RoomClosed => self.end(effects),
                    DisconnectReason::Refused => self.refused(effects),
                    // Rejoining on its own would take the call back, and the other tab
                    // would do the same: the two would fight over it.
                    DisconnectReason::Replaced => self.fail(CallFailure::Replaced, effects),
                    DisconnectReason::Network | DisconnectReason::Other(_) => self.lost(effects),
                }
            }
        }
    }

    fn connected(&mut self, effects: &mut Vec<Effect>) {
        self.stage = Stage::Connected;
        self.check_ready();
        self.flush(effects);
    }

    /// The join timer stops once the room is connected and the agent is ready.
    fn check_ready(&mut self) {
        let ready = matches!(
            self.agent,
            Some(AgentState::Listening | AgentState::Thinking | AgentState::Speaking)
                | Some(AgentState::Unknown)
        );
        if ready && self.stage == Stage::Connected {
            self.join_timer = None;
        }
    }

    fn refused(&mut self, effects: &mut Vec<Effect>) {
        if !self.budget.take_renewal() {
            return self.fail(CallFailure::Refused, effects);
        }
        if self.stage != Stage::Joining {
            self.leave_for_rejoin();
            self.start_join_timer(effects);
        }
        self.awaiting_grant = true;
        effects.push(Effect::RenewGrant);
    }

    /// The SDK gave up: rejoin once with a fresh grant, or fail with Retry offered.
    fn lost(&mut self, effects: &mut Vec<Effect>) {
        if !self.budget.take_rejoin() {
            return self.fail(CallFailure::ConnectionLost, effects);
        }
        self.leave_for_rejoin();
        self.awaiting_grant = true;
        effects.push(Effect::Reconnect);
        self.start_join_timer(effects);
    }

    fn leave_for_rejoin(&mut self) {
        self.stage = Stage::Reconnecting { rejoin: true };
        self.captions.cut_off();
        // The new connection reports the agent afresh.
        self.agent = None;
        self.agent_timer = None;
        self.requeue();
    }

    fn timer(&mut self, id: TimerId, effects: &mut Vec<Effect>) {
        match id.kind {
            TimerKind::Join => {
                if self.join_timer != Some(id.seq) {
                    return;
                }
                self.join_timer = None;
                let failure = match (&self.stage, self.agent) {
                    (Stage::Reconnecting { rejoin: true }, _) => CallFailure::ConnectionLost,
                    (Stage::Joining, _) => CallFailure::JoinTimeout(JoinStage::Room),
                    (_, None) => CallFailure::JoinTimeout(JoinStage::Agent),
                    (_, Some(_)) => CallFailure::JoinTimeout(JoinStage::AgentReady),
                };
                if self.is_live() {
                    self.fail(failure, effects);
                }
            }
            TimerKind::AgentGone => {
                if self.agent_timer != Some(id.seq) {
                    return;
                }
                self.agent_timer = None;
                if self.agent.is_none() && self.is_live() {
                    self.fail(CallFailure::AgentLeft, effects);
                }
            }
        }
    }

    fn end(&mut self, effects: &mut Vec<Effect>) {
        self.stop(Stage::Ended);
        // No connection will come back for what is still queued: show it as not sent (with
        // its retry, for a next call) instead of waiting forever.
        for message in &mut self.outbox {
            if message.state == SendState::Queued {
                message.state = SendState::Failed;
            }
        }
        effects.push(Effect::Disconnect);
    }

    fn fail(&mut self, failure: CallFailure, effects: &mut Vec<Effect>) {
        self.stop(Stage::Failed(failure));
        effects.push(Effect::Disconnect);
    }

    fn stop(&mut self, stage: Stage) {
        self.stage = stage;
        self.captions.cut_off();
        self.agent = None;
        self.awaiting_grant = false;
        self.join_timer = None;
        self.agent_timer = None;
        self.requeue();
    }

    /// Messages in flight on a connection that is gone go back to the queue: sent again
    /// (possibly twice, never lost) once a connection is back.
    fn requeue(&mut self) {
        for message in &mut self.outbox {
            if message.state == SendState::Sending {
                message.state = SendState::Queued;
            }
        }
    }

    /// Sends the oldest queued message when connected and nothing else is on its way, so
    /// messages arrive in the order they were typed.
    fn flush(&mut self, effects: &mut Vec<Effect>) {
        if self.stage != Stage::Connected
            || self.outbox.iter().any(|m| m.state == SendState::Sending)
        {
            return;
        }
        if let Some(message) = self
            .outbox
            .iter_mut()
            .find(|m| m.state == SendState::Queued)
        {
            message.state = SendState::Sending;
            effects.push(Effect::SendChat {
                id: message.id,
                text: message.text.clone(),
            });
        }
    }
}

fn mic_error(error: &VoiceError) -> MicError {
    match error {
        VoiceError::Mic(error) => *error,
        _ => MicError::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(token: &str) -> VoiceGrant {
        VoiceGrant {
            url: "wss://lk.invalid".into(),
            token: token.into(),
        }
    }

    fn voice() -> MicRequest {
        MicRequest {
            enabled: true,
            device_id: None,
        }
    }

    /// A call that was started; returns the effects of the start.
    fn started() -> (Call, Vec<Effect>) {
        let mut call = Call::default();
        let effects = call.handle(Input::Start {
            grant: grant("t0"),
            mic: voice(),
        });
        (call, effects)
    }

    fn attempt_of(effects: &[Effect]) -> u32 {
        effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Connect { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .expect("a connect effect")
    }

    fn timer_of(effects: &[Effect], kind: TimerKind) -> TimerId {
        effects
            .iter()
            .find_map(|effect| match effect {
                Effect::StartTimer { id, .. } if id.kind == kind => Some(*id),
                _ => None,
            })
            .expect("a timer effect")
    }

    fn sent_ids(effects: &[Effect]) -> Vec<u64> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::SendChat { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// A call in the room with the agent listening.
    fn connected() -> Call {
        let (mut call, effects) = started();
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        call.handle(Input::AgentJoined("agent".into()));
        call.handle(Input::AgentState(AgentState::Listening));
        assert_eq!(
            call.phase(),
            CallPhase::Connected {
                agent: Some(AgentState::Listening)
            }
        );
        call
    }

    fn states(call: &Call) -> Vec<SendState> {
        call.outbox().iter().map(|message| message.state).collect()
    }

    #[test]
    fn starting_connects_with_the_grant_and_the_microphone_and_starts_the_join_timer() {
        let (call, effects) = started();
        assert_eq!(call.phase(), CallPhase::Joining);
        assert!(call.is_live());
        assert_eq!(
            effects,
            [
                Effect::Connect {
                    attempt: 1,
                    grant: grant("t0"),
                    mic: voice()
                },
                Effect::StartTimer {
                    id: TimerId {
                        kind: TimerKind::Join,
                        seq: 1
                    },
                    millis: 20_000
                },
            ]
        );
    }

    #[test]
    fn the_join_timer_names_what_was_missing() {
        // Nothing connected at all.
        let (mut call, effects) = started();
        let timer = timer_of(&effects, TimerKind::Join);
        assert_eq!(call.handle(Input::Timer(timer)), [Effect::Disconnect]);
        assert_eq!(
            call.phase(),
            CallPhase::Failed(CallFailure::JoinTimeout(JoinStage::Room))
        );

        // In the room, but the agent never came.
        let (mut call, effects) = started();
        call.handle(Input::Link(LinkState::Connected));
        assert_eq!(call.phase(), CallPhase::Connected { agent: None });
        call.handle(Input::Timer(timer_of(&effects, TimerKind::Join)));
        assert_eq!(
            call.phase(),
            CallPhase::Failed(CallFailure::JoinTimeout(JoinStage::Agent))
        );

        // The agent came but stayed initializing.
        let (mut call, effects) = started();
        call.handle(Input::Link(LinkState::Connected));
        call.handle(Input::AgentJoined("agent".into()));
        call.handle(Input::Timer(timer_of(&effects, TimerKind::Join)));
        assert_eq!(
            call.phase(),
            CallPhase::Failed(CallFailure::JoinTimeout(JoinStage::AgentReady))
        );
    }

    #[test]
    fn a_ready_agent_stops_the_join_timer() {
        let (mut call, effects) = started();
        call.handle(Input::AgentState(AgentState::Listening));
        call.handle(Input::Link(LinkState::Connected));
        assert!(
            call.handle(Input::Timer(timer_of(&effects, TimerKind::Join)))
                .is_empty()
        );
        assert_eq!(
            call.phase(),
            CallPhase::Connected {
                agent: Some(AgentState::Listening)
            }
        );
    }

    #[test]
    fn a_refusal_renews_the_grant_once_then_fails() {
        let (mut call, effects) = started();
        let effects = call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Refused),
        });
        assert_eq!(effects, [Effect::RenewGrant]);
        assert_eq!(call.phase(), CallPhase::Joining);
        // The transport may also report the refusal as its disconnect reason: one refusal.
        assert!(
            call.handle(Input::Link(LinkState::Disconnected(
                DisconnectReason::Refused
            )))
            .is_empty()
        );
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        assert_eq!(attempt_of(&effects), 2);
        assert!(matches!(&effects[0], Effect::Connect { grant: g, .. } if g.token == "t1"));
        // A late answer to the first attempt changes nothing.
        assert!(
            call.handle(Input::Joined {
                attempt: 1,
                result: Err(VoiceError::Refused)
            })
            .is_empty()
        );
        let effects = call.handle(Input::Joined {
            attempt: 2,
            result: Err(VoiceError::Refused),
        });
        assert_eq!(effects, [Effect::Disconnect]);
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::Refused));
    }

    #[test]
    fn a_refused_disconnect_while_connected_rejoins_with_a_fresh_grant() {
        let mut call = connected();
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Refused,
        )));
        assert_eq!(call.phase(), CallPhase::Reconnecting);
        assert!(effects.contains(&Effect::RenewGrant));
        timer_of(&effects, TimerKind::Join);
    }

    #[test]
    fn no_fresh_grant_fails_with_the_bff_error() {
        let (mut call, effects) = started();
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Refused),
        });
        call.handle(Input::Grant(Err(WidgetError::unreachable())));
        assert_eq!(
            call.phase(),
            CallPhase::Failed(CallFailure::Grant(WidgetError::unreachable()))
        );
    }

    #[test]
    fn the_first_join_failing_is_unreachable_and_a_timeout_names_the_room() {
        let (mut call, effects) = started();
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Unreachable),
        });
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::Unreachable));
        let (mut call, effects) = started();
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Timeout),
        });
        assert_eq!(
            call.phase(),
            CallPhase::Failed(CallFailure::JoinTimeout(JoinStage::Room))
        );
        let (mut call, effects) = started();
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Sdk("import failed".into())),
        });
        assert_eq!(
            call.phase(),
            CallPhase::Failed(CallFailure::Sdk("import failed".into()))
        );
    }

    #[test]
    fn one_automatic_rejoin_after_the_sdk_gives_up_then_retry() {
        let mut call = connected();
        assert!(call.handle(Input::Link(LinkState::Reconnecting)).is_empty());
        assert_eq!(call.phase(), CallPhase::Reconnecting);
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        assert_eq!(effects[0], Effect::Reconnect);
        timer_of(&effects, TimerKind::Join);
        assert_eq!(call.phase(), CallPhase::Reconnecting);
        // The old transport's goodbye is not a second loss.
        assert!(
            call.handle(Input::Link(LinkState::Disconnected(
                DisconnectReason::Network
            )))
            .is_empty()
        );
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        let attempt = attempt_of(&effects);
        call.handle(Input::Joined {
            attempt,
            result: Ok(()),
        });
        assert_eq!(call.phase(), CallPhase::Connected { agent: None });

        // The second loss is final, with Retry offered.
        call.handle(Input::Link(LinkState::Reconnecting));
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        assert_eq!(effects, [Effect::Disconnect]);
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::ConnectionLost));

        // Retry refills the budget: the next loss rejoins by itself again.
        let effects = call.handle(Input::Retry);
        assert_eq!(effects[0], Effect::RenewGrant);
        assert_eq!(call.phase(), CallPhase::Joining);
        let effects = call.handle(Input::Grant(Ok(grant("t2"))));
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        assert_eq!(effects[0], Effect::Reconnect);
    }

    #[test]
    fn a_call_taken_over_by_another_tab_waits_for_the_visitor_to_take_it_back() {
        let mut call = connected();
        call.handle(Input::Send("kept".into()));
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Replaced,
        )));
        // No rejoin of its own, though the budget is full: that would take the call back
        // and the other tab would do the same.
        assert_eq!(effects, [Effect::Disconnect]);
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::Replaced));
        // What was being sent waits, unlost.
        assert_eq!(call.outbox()[0].state, SendState::Queued);
        // "Continue here" joins again with a fresh grant, and sends it then.
        let effects = call.handle(Input::Retry);
        assert_eq!(effects[0], Effect::RenewGrant);
        assert_eq!(call.phase(), CallPhase::Joining);
        let effects = call.handle(Input::Grant(Ok(grant("t2"))));
        let effects = call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        assert!(
            effects
                .iter()
                .any(|effect| matches!(effect, Effect::SendChat { text, .. } if text == "kept")),
            "{effects:?}"
        );
    }

    #[test]
    fn the_sdk_recovering_by_itself_keeps_the_budget() {
        let mut call = connected();
        call.handle(Input::Link(LinkState::Reconnecting));
        call.handle(Input::Link(LinkState::Connected));
        assert_eq!(
            call.phase(),
            CallPhase::Connected {
                agent: Some(AgentState::Listening)
            }
        );
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        assert_eq!(effects[0], Effect::Reconnect);
    }

    #[test]
    fn a_rejoin_that_does_not_connect_in_time_is_a_lost_connection() {
        let mut call = connected();
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        call.handle(Input::Timer(timer_of(&effects, TimerKind::Join)));
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::ConnectionLost));
        let mut call = connected();
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Unreachable),
        });
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::ConnectionLost));
    }

    #[test]
    fn retry_is_only_for_a_failed_call() {
        let mut call = connected();
        assert!(call.handle(Input::Retry).is_empty());
        assert!(Call::default().handle(Input::Retry).is_empty());
    }

    #[test]
    fn the_room_closing_ends_the_call() {
        let mut call = connected();
        let effects = call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::RoomClosed,
        )));
        assert_eq!(effects, [Effect::Disconnect]);
        assert_eq!(call.phase(), CallPhase::Ended);
        assert!(!call.is_live());
        // Nothing after the end brings it back.
        call.handle(Input::Link(LinkState::Connected));
        assert_eq!(call.phase(), CallPhase::Ended);
    }

    #[test]
    fn the_agent_leaving_ends_with_the_room_or_fails_if_the_room_stays() {
        let mut call = connected();
        let effects = call.handle(Input::AgentLeft);
        let timer = timer_of(&effects, TimerKind::AgentGone);
        assert_eq!(call.phase(), CallPhase::Connected { agent: None });
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::RoomClosed,
        )));
        call.handle(Input::Timer(timer));
        assert_eq!(call.phase(), CallPhase::Ended, "the room closed in time");

        let mut call = connected();
        let effects = call.handle(Input::AgentLeft);
        call.handle(Input::Timer(timer_of(&effects, TimerKind::AgentGone)));
        assert_eq!(call.phase(), CallPhase::Failed(CallFailure::AgentLeft));

        let mut call = connected();
        let effects = call.handle(Input::AgentLeft);
        call.handle(Input::ConversationOver);
        call.handle(Input::Timer(timer_of(&effects, TimerKind::AgentGone)));
        assert_eq!(call.phase(), CallPhase::Ended, "the platform ended it");

        let mut call = connected();
        let effects = call.handle(Input::AgentLeft);
        call.handle(Input::AgentJoined("agent".into()));
        call.handle(Input::Timer(timer_of(&effects, TimerKind::AgentGone)));
        assert!(matches!(
            call.phase(),
            CallPhase::Connected { agent: Some(_) }
        ));
    }

    #[test]
    fn hanging_up_leaves_the_room() {
        let mut call = connected();
        assert_eq!(call.handle(Input::Hangup), [Effect::Disconnect]);
        assert_eq!(call.phase(), CallPhase::Ended);
        assert!(
            call.handle(Input::Link(LinkState::Disconnected(DisconnectReason::Left)))
                .is_empty()
        );
        assert!(call.handle(Input::Hangup).is_empty(), "already over");
    }

    #[test]
    fn microphone_errors_keep_the_call_going_in_text() {
        for error in [
            MicError::Denied,
            MicError::Missing,
            MicError::Busy,
            MicError::Other,
        ] {
            let (mut call, effects) = started();
            call.handle(Input::MicFailed(error));
            call.handle(Input::Joined {
                attempt: attempt_of(&effects),
                result: Ok(()),
            });
            assert_eq!(call.phase(), CallPhase::Connected { agent: None });
            assert_eq!(call.mic().notice, Some(error));
            assert!(!call.mic().on);
            assert!(call.text_only());
            let effects = call.handle(Input::Send("I can't talk right now".into()));
            assert_eq!(sent_ids(&effects), [1], "{error:?}: text still goes out");
        }
    }

    #[test]
    fn a_microphone_error_from_connect_is_a_notice_not_a_failure() {
        let (mut call, effects) = started();
        call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Err(VoiceError::Mic(MicError::Denied)),
        });
        assert_eq!(call.phase(), CallPhase::Connected { agent: None });
        assert_eq!(call.mic().notice, Some(MicError::Denied));
    }

    #[test]
    fn mute_is_shown_at_once_and_corrected_by_the_transport() {
        let mut call = connected();
        assert!(call.mic().on);
        assert_eq!(call.handle(Input::SetMic(false)), [Effect::SetMic(false)]);
        assert!(!call.mic().on);
        call.handle(Input::MicSet {
            on: false,
            result: Err(VoiceError::Sdk("no".into())),
        });
        assert!(call.mic().on, "a mute that failed never shows as muted");
        call.handle(Input::SetMic(true));
        call.handle(Input::MicSet {
            on: true,
            result: Err(VoiceError::Mic(MicError::Busy)),
        });
        assert!(!call.mic().on);
        assert_eq!(call.mic().notice, Some(MicError::Busy));
        call.handle(Input::SetMic(true));
        call.handle(Input::MicSet {
            on: true,
            result: Ok(()),
        });
        assert!(call.mic().on);
        assert_eq!(call.mic().notice, None, "the microphone works again");
    }

    #[test]
    fn a_rejoin_keeps_the_microphone_choice() {
        let mut call = connected();
        call.handle(Input::Devices(vec![Device {
            id: "usb".into(),
            label: "USB".into(),
        }]));
        assert_eq!(
            call.handle(Input::SwitchMic("usb".into())),
            [Effect::SwitchMic("usb".into())]
        );
        call.handle(Input::SetMic(false));
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        assert!(matches!(
            &effects[0],
            Effect::Connect { mic, .. } if !mic.enabled && mic.device_id.as_deref() == Some("usb")
        ));
        assert_eq!(call.mic().devices.len(), 1);

        // The SDK moving to another microphone by itself (the USB one unplugged) is the
        // choice from then on, shown and kept for the next join.
        let mut call = connected();
        assert!(
            call.handle(Input::ActiveDevice("default".into()))
                .is_empty()
        );
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        assert!(matches!(
            &effects[0],
            Effect::Connect { mic, .. } if mic.device_id.as_deref() == Some("default")
        ));
    }

    #[test]
    fn blocked_playback_offers_enable_audio_until_it_starts() {
        let mut call = connected();
        call.handle(Input::PlaybackBlocked(true));
        assert!(call.playback_blocked());
        assert_eq!(call.handle(Input::EnableAudio), [Effect::StartAudio]);
        call.handle(Input::AudioStarted(Err(VoiceError::Sdk(
            "no gesture".into(),
        ))));
        assert!(call.playback_blocked());
        call.handle(Input::AudioStarted(Ok(())));
        assert!(!call.playback_blocked());
    }

    #[test]
    fn typed_messages_wait_for_the_connection_and_go_out_in_order() {
        let (mut call, effects) = started();
        assert!(sent_ids(&call.handle(Input::Send("first".into()))).is_empty());
        assert!(sent_ids(&call.handle(Input::Send("second".into()))).is_empty());
        assert!(call.handle(Input::Send("   ".into())).is_empty());
        assert_eq!(states(&call), [SendState::Queued, SendState::Queued]);
        assert_eq!(call.transcript(&[]).len(), 2, "shown while queued");
        let effects = call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        assert_eq!(
            effects,
            [Effect::SendChat {
                id: 1,
                text: "first".into()
            }]
        );
        let effects = call.handle(Input::Sent {
            id: 1,
            result: Ok(()),
        });
        assert_eq!(sent_ids(&effects), [2]);
        call.handle(Input::Sent {
            id: 2,
            result: Ok(()),
        });
        assert_eq!(states(&call), [SendState::Sent, SendState::Sent]);
    }

    #[test]
    fn a_failed_send_is_kept_and_can_be_retried() {
        let mut call = connected();
        call.handle(Input::Send("one".into()));
        call.handle(Input::Send("two".into()));
        let effects = call.handle(Input::Sent {
            id: 1,
            result: Err(VoiceError::Sdk("closed".into())),
        });
        assert_eq!(
            sent_ids(&effects),
            [2],
            "a failure does not hold back the rest"
        );
        assert_eq!(call.outgoing(1).map(|m| m.state), Some(SendState::Failed));
        call.handle(Input::Sent {
            id: 2,
            result: Ok(()),
        });
        let effects = call.handle(Input::RetrySend(1));
        assert_eq!(sent_ids(&effects), [1]);
        call.handle(Input::Sent {
            id: 1,
            result: Ok(()),
        });
        assert_eq!(states(&call), [SendState::Sent, SendState::Sent]);
        assert_eq!(call.outgoing(1).map(|m| m.text.as_str()), Some("one"));
    }

    #[test]
    fn the_outbox_survives_reconnecting_and_a_rejoin() {
        let mut call = connected();
        call.handle(Input::Send("in flight".into()));
        call.handle(Input::Link(LinkState::Reconnecting));
        call.handle(Input::Send("typed while reconnecting".into()));
        // The send that was on its way fails as the connection drops: queued again.
        assert!(
            sent_ids(&call.handle(Input::Sent {
                id: 1,
                result: Err(VoiceError::Unreachable)
            }))
            .is_empty()
        );
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        call.handle(Input::Send("typed while rejoining".into()));
        assert_eq!(states(&call), [SendState::Queued; 3]);
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        let effects = call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        assert_eq!(sent_ids(&effects), [1]);
        let effects = call.handle(Input::Sent {
            id: 1,
            result: Ok(()),
        });
        assert_eq!(sent_ids(&effects), [2]);
        let effects = call.handle(Input::Sent {
            id: 2,
            result: Ok(()),
        });
        assert_eq!(sent_ids(&effects), [3]);
    }

    #[test]
    fn a_late_success_for_a_requeued_message_is_not_sent_twice() {
        let mut call = connected();
        call.handle(Input::Send("hello".into()));
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        assert_eq!(states(&call), [SendState::Queued]);
        call.handle(Input::Sent {
            id: 1,
            result: Ok(()),
        });
        assert_eq!(states(&call), [SendState::Sent]);
        let effects = call.handle(Input::Grant(Ok(grant("t1"))));
        let effects = call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        assert!(sent_ids(&effects).is_empty());
    }

    #[test]
    fn what_is_still_queued_when_the_call_ends_shows_as_not_sent() {
        let (mut call, _) = started();
        call.handle(Input::Send("anyone there?".into()));
        call.handle(Input::Hangup);
        assert_eq!(states(&call), [SendState::Failed]);
        assert_eq!(
            call.outgoing(1).map(|m| m.text.as_str()),
            Some("anyone there?")
        );
    }

    #[test]
    fn a_send_in_flight_when_the_call_fails_is_queued_for_the_retry() {
        let mut call = connected();
        call.handle(Input::Send("hello?".into()));
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        call.handle(Input::Link(LinkState::Disconnected(
            DisconnectReason::Network,
        )));
        let effects = call.handle(Input::Grant(Err(WidgetError::unreachable())));
        assert_eq!(effects, [Effect::Disconnect]);
        assert_eq!(states(&call), [SendState::Queued]);
        call.handle(Input::Retry);
        let effects = call.handle(Input::Grant(Ok(grant("t2"))));
        let effects = call.handle(Input::Joined {
            attempt: attempt_of(&effects),
            result: Ok(()),
        });
        assert_eq!(sent_ids(&effects), [1]);
    }

    #[test]
    fn captions_and_typed_lines_share_the_transcript() {
        let mut call = connected();
        call.handle(Input::Text(TextChunk {
            topic: "lk.transcription".into(),
            stream_id: "s1".into(),
            sender: "agent".into(),
            attributes: vec![("lk.segment_id".into(), "SG_1".into())],
            text: "Hello!".into(),
            done: true,
        }));
        call.handle(Input::Send("Hi".into()));
        let shown = call.transcript(&[]);
        assert_eq!(shown.len(), 2);
        assert!(matches!(&shown[0], Shown::Live(line) if line.role == speaknode_api::Role::Agent));
        assert!(matches!(&shown[1], Shown::Live(line) if line.text == "Hi"));
    }

    #[test]
    fn media_tracks_are_not_inputs() {
        assert_eq!(
            Input::from_event(VoiceEvent::Mic(MicError::Busy)),
            Some(Input::MicFailed(MicError::Busy))
        );
        assert_eq!(
            Input::from_event(VoiceEvent::AgentLeft),
            Some(Input::AgentLeft)
        );
    }

    /// A transport whose calls answer at once, recording what was asked.
    #[derive(Default)]
    struct Recorder {
        calls: std::cell::RefCell<Vec<String>>,
    }

    impl VoiceTransport for Recorder {
        fn connect(
            &self,
            grant: &VoiceGrant,
            mic: MicRequest,
        ) -> LocalFuture<Result<(), VoiceError>> {
            self.calls
                .borrow_mut()
                .push(format!("connect {} {}", grant.token, mic.enabled));
            Box::pin(async { Ok(()) })
        }
        fn set_mic_enabled(&self, on: bool) -> LocalFuture<Result<(), VoiceError>> {
            self.calls.borrow_mut().push(format!("mic {on}"));
            Box::pin(async { Err(VoiceError::Mic(MicError::Denied)) })
        }
        fn switch_mic(&self, device_id: &str) -> LocalFuture<Result<(), VoiceError>> {
            self.calls.borrow_mut().push(format!("switch {device_id}"));
            Box::pin(async { Ok(()) })
        }
        fn microphones(&self) -> LocalFuture<Result<Vec<Device>, VoiceError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn start_audio(&self) -> LocalFuture<Result<(), VoiceError>> {
            self.calls.borrow_mut().push("audio".into());
            Box::pin(async { Ok(()) })
        }
        fn send_chat(&self, text: &str) -> LocalFuture<Result<(), VoiceError>> {
            self.calls.borrow_mut().push(format!("chat {text}"));
            Box::pin(async { Ok(()) })
        }
        fn disconnect(&self) -> LocalFuture<()> {
            self.calls.borrow_mut().push("disconnect".into());
            Box::pin(async {})
        }
        fn events(&self) -> futures_channel::mpsc::UnboundedReceiver<VoiceEvent> {
            futures_channel::mpsc::unbounded().1
        }
    }

    /// Polls a future that is ready at once (the recorder's all are).
    fn ready<T>(future: LocalFuture<T>) -> T {
        let mut future = future;
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("the recorder answers at once"),
        }
    }

    #[test]
    fn transport_effects_run_on_the_transport_and_answer_with_their_input() {
        let transport = Recorder::default();
        let mut call = Call::default();
        let mut inputs = Vec::new();
        let mut driver_effects = Vec::new();
        let mut run = |call: &mut Call, input: Input, inputs: &mut Vec<Input>| {
            for effect in call.handle(input) {
                match effect.run_on(&transport) {
                    Ok(answer) => inputs.extend(ready(answer)),
                    Err(effect) => driver_effects.push(effect),
                }
            }
        };
        run(
            &mut call,
            Input::Start {
                grant: grant("t0"),
                mic: voice(),
            },
            &mut inputs,
        );
        for input in std::mem::take(&mut inputs) {
            run(&mut call, input, &mut inputs);
        }
        assert_eq!(call.phase(), CallPhase::Connected { agent: None });
        run(&mut call, Input::Send("hi".into()), &mut inputs);
        run(&mut call, Input::SetMic(false), &mut inputs);
        run(&mut call, Input::SwitchMic("usb".into()), &mut inputs);
        run(&mut call, Input::EnableAudio, &mut inputs);
        assert_eq!(
            inputs,
            [
                Input::Sent {
                    id: 1,
                    result: Ok(())
                },
                Input::MicSet {
                    on: false,
                    result: Err(VoiceError::Mic(MicError::Denied))
                },
                Input::MicSwitched(Ok(())),
                Input::AudioStarted(Ok(())),
            ]
        );
        run(&mut call, Input::Hangup, &mut inputs);
        assert_eq!(
            *transport.calls.borrow(),
            [
                "connect t0 true",
                "chat hi",
                "mic false",
                "switch usb",
                "audio",
                "disconnect"
            ]
        );
        assert!(matches!(driver_effects[..], [Effect::StartTimer { .. }]));
        assert_eq!(
            Effect::RenewGrant.run_on(&transport).err(),
            Some(Effect::RenewGrant)
        );
    }

    #[test]
    fn start_audio_reaches_the_transport_before_anything_is_awaited() {
        let transport = Recorder::default();
        let pending = Effect::StartAudio.run_on(&transport);
        assert_eq!(
            *transport.calls.borrow(),
            ["audio"],
            "called inside the click"
        );
        drop(pending);
    }

    #[test]
    fn the_budget_gives_what_the_policy_allows() {
        let mut budget = Budget::new(&Policy {
            rejoins: 2,
            ..Policy::default()
        });
        assert!(budget.take_renewal());
        assert!(!budget.take_renewal());
        assert!(budget.take_rejoin() && budget.take_rejoin());
        assert!(!budget.take_rejoin());
    }
}
