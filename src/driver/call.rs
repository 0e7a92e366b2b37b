//! The driver's side of a voice call: it holds the [`Call`] state machine in a signal, runs
//! the effects the machine asks for on a [`VoiceTransport`], the BFF and the clock, feeds
//! the outcomes and the transport's events back, and plays and meters the two tracks.
//!
//! The loop is the one `voice::call`'s module documentation lays out. Everything runs in
//! tasks kept apart from the conversation's (`Voice::tasks`), so a call can be torn down
//! without touching the stream, and [`Driver::stop`] aborts both: the room is left, the
//! meters' animation frame cancelled and the `AudioContext` closed. Transports come from an
//! injected [`VoiceFactory`], so the driver never names the production one (tests script it).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::StreamExt;
use futures_util::future::{AbortHandle, abortable};
use leptos::prelude::*;
use speaknode_api::{TokenGrant, VoiceGrant};

use super::Driver;
use crate::Mode;
use crate::session::WidgetError;
use crate::voice::audio::{Audio, Levels};
use crate::voice::call::{Call, Effect, Input};
use crate::voice::{MicRequest, VoiceEvent, VoiceTransport};

/// Makes one transport per room connection (a rejoin gets a fresh one).
pub type VoiceFactory = Rc<dyn Fn() -> Rc<dyn VoiceTransport>>;

/// What the panel reads about the call.
#[derive(Debug, Clone, Copy)]
pub struct CallSignals {
    /// `None` while the conversation has no call (no voice grant): the panel is text-free
    /// exactly as before calls existed.
    pub call: ReadSignal<Option<Call>>,
    /// The two meters' readings.
    pub levels: ReadSignal<Levels>,
    /// The BFF offered a call but this widget has no way to join it (no transport), so
    /// neither voice nor typed messages are possible: the panel says so.
    pub unavailable: ReadSignal<bool>,
}

/// A transport in use, with the task that reads its events.
struct Held {
    generation: u32,
    transport: Rc<dyn VoiceTransport>,
    pump: AbortHandle,
}

/// The call's part of the driver.
pub(super) struct Voice {
    factory: Option<VoiceFactory>,
    /// Whether joining opens the microphone (voice and hybrid) or not (text).
    mic_on_join: bool,
    call: RwSignal<Option<Call>>,
    levels: RwSignal<Levels>,
    unavailable: RwSignal<bool>,
    held: RefCell<Option<Held>>,
    /// Counts transports, so events of one already replaced are ignored.
    generation: Cell<u32>,
    tasks: Rc<RefCell<Vec<AbortHandle>>>,
    audio: RefCell<Option<Audio>>,
    /// The widget's `<audio>` element, rendered once by the widget's root so playback goes
    /// on while the panel is closed.
    element: RefCell<Option<web_sys::HtmlAudioElement>>,
    /// The stored conversation had a call: rejoin it once the conversation is read.
    resume: Cell<bool>,
}

impl Voice {
    pub(super) fn new(factory: Option<VoiceFactory>, mode: Mode) -> Self {
        Self {
            factory,
            mic_on_join: mode != Mode::Text,
            call: RwSignal::new(None),
            levels: RwSignal::new(Levels::default()),
            unavailable: RwSignal::new(false),
            held: RefCell::default(),
            generation: Cell::new(0),
            tasks: Rc::default(),
            audio: RefCell::default(),
            element: RefCell::default(),
            resume: Cell::new(false),
        }
    }
}

/// The join grant a renewal carries, if the BFF sent one.
fn voice_of(grant: &TokenGrant) -> Option<VoiceGrant> {
    grant.voice.clone()
}

impl Driver {
    /// Joins calls with transports from `factory` (`None`: this widget cannot join calls),
    /// opening the microphone on join unless `mode` is text only.
    pub fn with_voice(mut self, factory: Option<VoiceFactory>, mode: Mode) -> Self {
        self.voice = Rc::new(Voice::new(factory, mode));
        self
    }

    /// The call as the panel reads it.
    pub fn call_signals(&self) -> CallSignals {
        CallSignals {
            call: self.voice.call.read_only(),
            levels: self.voice.levels.read_only(),
            unavailable: self.voice.unavailable.read_only(),
        }
    }

    /// The widget's `<audio>` element, which plays the agent.
    pub fn attach_audio_element(&self, element: web_sys::HtmlAudioElement) {
        *self.voice.element.borrow_mut() = Some(element);
    }

    /// The visitor typed a message for the agent.
    pub fn send_message(&self, text: String) {
        self.feed(Input::Send(text));
    }

    /// The visitor retries a message that was not sent.
    pub fn resend_message(&self, id: u64) {
        self.feed(Input::RetrySend(id));
    }

    /// Mutes (`false`) or unmutes the microphone.
    pub fn set_mic(&self, on: bool) {
        self.feed(Input::SetMic(on));
    }

    pub fn switch_mic(&self, device_id: String) {
        self.feed(Input::SwitchMic(device_id));
    }

    /// The visitor clicked "Enable audio": everything that needs the click runs before this
    /// returns (the context, the element and the transport's `start_audio`).
    pub fn enable_audio(&self) {
        {
            let mut audio = self.voice.audio.borrow_mut();
            let audio = audio.get_or_insert_with(|| self.new_audio());
            if let Some(playing) = audio.resume_in_gesture() {
                let driver = self.clone();
                self.spawn_call(async move {
                    if wasm_bindgen_futures::JsFuture::from(playing).await.is_ok() {
                        driver.feed(Input::PlaybackBlocked(false));
                    }
                });
            }
        }
        self.feed(Input::EnableAudio);
    }

    /// After a failed call: join again with a fresh grant. The click is a gesture, so the
    /// sound is set up again here if the failure closed it.
    pub fn retry_call(&self) {
        if self.voice.audio.borrow().is_none() {
            let audio = self.new_audio();
            *self.voice.audio.borrow_mut() = Some(audio);
        }
        self.feed(Input::Retry);
    }

    /// Whether the conversation has a call (for the next page to rejoin it).
    pub(super) fn has_call(&self) -> bool {
        self.voice.call.try_with_untracked(Option::is_some) == Some(true)
    }

    /// The stored conversation had a call (or not).
    pub(super) fn resume_call(&self, had_call: bool) {
        self.voice.resume.set(had_call && self.can_call());
    }

    /// Whether a call is to be rejoined now; asks only once.
    pub(super) fn take_call_to_resume(&self) -> bool {
        self.voice.resume.take() && !self.has_call()
    }

    /// Whether calls can be joined at all (a transport factory is configured).
    pub(super) fn can_call(&self) -> bool {
        self.voice.factory.is_some()
    }

    /// Creates the `AudioContext` inside the click that starts a conversation, before
    /// anything is awaited: only a context created in a gesture may play. Whether the
    /// conversation brings a call is known only after the start answers, so the context is
    /// made on the chance and closed again if no call comes.
    pub(super) fn prime_audio(&self) {
        if !self.can_call() {
            return;
        }
        let audio = self.new_audio();
        if let Some(old) = self.voice.audio.borrow_mut().replace(audio) {
            old.close();
        }
    }

    fn new_audio(&self) -> Audio {
        let levels = self.voice.levels;
        Audio::in_gesture(Rc::new(move |reading| {
            let _ = levels.try_set(reading);
        }))
    }

    fn close_audio(&self) {
        if let Some(audio) = self.voice.audio.borrow_mut().take() {
            audio.close();
        }
    }

    /// Joins the room of a conversation that was just started (or resumed) with `grant`.
    pub(super) fn start_call(&self, grant: VoiceGrant) {
        if !self.can_call() {
            // Typed messages travel through the room too, so without a transport there is
            // no way to talk at all: say so instead of showing a dead input.
            self.close_audio();
            let _ = self.voice.unavailable.try_set(true);
            return;
        }
        let baseline = self
            .session
            .try_with_untracked(|s| s.transcript.turns().to_vec())
            .unwrap_or_default();
        let mut call = Call::default();
        call.set_baseline(&baseline);
        if self.voice.call.try_set(Some(call)).is_some() {
            return;
        }
        let mic = MicRequest {
            enabled: self.voice.mic_on_join,
            device_id: None,
        };
        self.feed(Input::Start { grant, mic });
    }

    /// A start that brought no call: nothing to keep the context for.
    pub(super) fn no_call(&self) {
        self.close_audio();
    }

    /// The conversation is over (or failed): the call ends with it.
    pub(super) fn call_over(&self) {
        self.feed(Input::ConversationOver);
    }

    /// Forgets the call of the conversation shown so far, leaving its room: a new
    /// conversation is starting.
    pub(super) fn reset_call(&self) {
        self.stop_call();
        self.voice.resume.set(false);
        let _ = self.voice.call.try_set(None);
        let _ = self.voice.unavailable.try_set(false);
    }

    /// Stops everything the call runs: its tasks, the transport (left at once), the meters
    /// and the `AudioContext`.
    pub(super) fn stop_call(&self) {
        for task in self.voice.tasks.borrow_mut().drain(..) {
            task.abort();
        }
        if let Some(held) = self.voice.held.borrow_mut().take() {
            held.pump.abort();
            // The transport acts when called; its future only reports completion, and no
            // task is left to await it.
            drop(held.transport.disconnect());
        }
        self.close_audio();
    }

    /// Hands one input to the call and runs the effects it answers with.
    pub(super) fn feed(&self, input: Input) {
        let effects = self
            .voice
            .call
            .try_update(|call| call.as_mut().map(|call| call.handle(input)))
            .flatten()
            .unwrap_or_default();
        for effect in effects {
            self.run(effect);
        }
        // A call that is over plays and meters nothing more; a failed one keeps its sound
        // for the Retry the panel offers.
        let ended = self.voice.call.try_with_untracked(|call| {
            call.as_ref()
                .is_some_and(|call| call.phase() == crate::voice::call::CallPhase::Ended)
        });
        if ended == Some(true) {
            self.close_audio();
        }
    }

    fn run(&self, effect: Effect) {
        let transport = match &effect {
            Effect::Connect { .. } => self.transport(),
            _ => self
                .voice
                .held
                .borrow()
                .as_ref()
                .map(|held| Rc::clone(&held.transport)),
        };
        let leaving = matches!(effect, Effect::Disconnect);
        let effect = match transport {
            Some(transport) => match effect.run_on(transport.as_ref()) {
                Ok(answer) => {
                    if leaving {
                        self.release_transport();
                    }
                    let driver = self.clone();
                    self.spawn_call(async move {
                        let Some(input) = answer.await else {
                            return;
                        };
                        let joined = matches!(input, Input::Joined { result: Ok(()), .. });
                        driver.feed(input);
                        // The picker starts with what the browser lists once in the room;
                        // `Devices` events keep it current (and bring labels after the
                        // microphone is allowed).
                        if joined && let Ok(devices) = transport.microphones().await {
                            driver.feed(Input::Devices(devices));
                        }
                    });
                    return;
                }
                Err(effect) => effect,
            },
            // Nothing to run a transport effect on: the room is being rejoined, and the new
            // connection takes the call's current choices (microphone, queued messages).
            None => effect,
        };
        match effect {
            Effect::RenewGrant => self.renew_voice_grant(),
            Effect::Reconnect => {
                if let Some(held) = self.release_transport() {
                    drop(held.disconnect());
                }
                self.renew_voice_grant();
            }
            Effect::StartTimer { id, millis } => {
                let driver = self.clone();
                let wait = self.backend.wait(millis);
                self.spawn_call(async move {
                    wait.await;
                    driver.feed(Input::Timer(id));
                });
            }
            _ => {}
        }
    }

    /// The transport in use, or a new one (with its event task) if there is none.
    fn transport(&self) -> Option<Rc<dyn VoiceTransport>> {
        if let Some(held) = self.voice.held.borrow().as_ref() {
            return Some(Rc::clone(&held.transport));
        }
        let factory = self.voice.factory.as_ref()?;
        let transport = factory();
        let generation = self.voice.generation.get() + 1;
        self.voice.generation.set(generation);
        let mut events = transport.events();
        let driver = self.clone();
        let (pump, handle) = abortable(async move {
            while let Some(event) = events.next().await {
                driver.on_event(generation, event);
            }
        });
        leptos::task::spawn_local(async move {
            let _ = pump.await;
        });
        *self.voice.held.borrow_mut() = Some(Held {
            generation,
            transport: Rc::clone(&transport),
            pump: handle,
        });
        Some(transport)
    }

    /// Lets go of the transport in use (the call left its room); the next join makes a new
    /// one. Returns it, for a caller that still has to leave the room.
    fn release_transport(&self) -> Option<Rc<dyn VoiceTransport>> {
        let held = self.voice.held.borrow_mut().take()?;
        held.pump.abort();
        Some(held.transport)
    }

    fn on_event(&self, generation: u32, event: VoiceEvent) {
        let current = self
            .voice
            .held
            .borrow()
            .as_ref()
            .is_some_and(|held| held.generation == generation);
        if !current {
            return;
        }
        match event {
            VoiceEvent::AgentTrack(track) => self.play_agent(&track),
            VoiceEvent::MicTrack(track) => {
                let mut audio = self.voice.audio.borrow_mut();
                audio
                    .get_or_insert_with(|| self.new_audio())
                    .meter_mic(&track);
            }
            other => {
                if let Some(input) = Input::from_event(other) {
                    self.feed(input);
                }
            }
        }
    }

    fn play_agent(&self, track: &web_sys::MediaStreamTrack) {
        let Some(element) = self.voice.element.borrow().clone() else {
            return;
        };
        let playing = {
            let mut audio = self.voice.audio.borrow_mut();
            // A resumed conversation has no click to make the context in: it is made now,
            // and "Enable audio" resumes it if the browser holds it.
            audio
                .get_or_insert_with(|| self.new_audio())
                .play_agent(&element, track)
        };
        if let Some(playing) = playing {
            let driver = self.clone();
            self.spawn_call(async move {
                // The browser refused to play without a click: offer "Enable audio".
                if wasm_bindgen_futures::JsFuture::from(playing).await.is_err() {
                    driver.feed(Input::PlaybackBlocked(true));
                }
            });
        }
    }

    /// Asks the BFF for a fresh join grant (a renewal of the conversation's token carries
    /// one) and feeds the answer to the call.
    fn renew_voice_grant(&self) {
        let driver = self.clone();
        self.spawn_call(async move {
            let result = match driver.renew_token().await {
                Ok(Some(grant)) => voice_of(&grant).ok_or_else(WidgetError::unexpected),
                Ok(None) => Err(WidgetError::unexpected()),
                Err(error) => Err(error.into()),
            };
            driver.feed(Input::Grant(result));
        });
    }

    /// On resume: a conversation still running gets its call back through a renewal, whose
    /// answer carries a join grant when the conversation has a room.
    pub(super) async fn rejoin_call(&self) {
        if !self.can_call() {
            return;
        }
        match self.renew_token().await {
            Ok(Some(grant)) => match voice_of(&grant) {
                Some(voice) => self.start_call(voice),
                None => self.no_call(),
            },
            // The conversation's own renewal timer reports a token the BFF refuses.
            _ => self.no_call(),
        }
    }

    fn spawn_call(&self, task: impl Future<Output = ()> + 'static) {
        Self::spawn_into(&self.voice.tasks, task);
    }
}
