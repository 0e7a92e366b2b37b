//! The call's sound in the browser: the agent played through the widget's own `<audio>`
//! element, and two level meters (agent and microphone) read from `AnalyserNode`s.
//!
//! Why it is shaped like this (`research/voice.md` §3.4 and §5):
//!
//! - The agent is played by an `<audio autoplay>` element inside the Shadow DOM, never
//!   through Web Audio: Chrome's echo cancellation only hears what the WebRTC playout path
//!   plays, so audio routed through an `AudioContext` would be sent back to the agent.
//! - The meters use Web Audio only to listen. An analyser on a *remote* WebRTC stream reads
//!   silence unless an element also consumes that stream, which the playing element does.
//! - An `AudioContext` created outside a click stays `suspended` for good, so
//!   [`Audio::in_gesture`] must run inside the click that starts the call, before anything
//!   is awaited; [`Audio::resume_in_gesture`] does the same for "Enable audio".
//! - The meters are read at about 30 Hz from `requestAnimationFrame` (a hidden tab gets no
//!   frames, so nothing is computed for nobody) and the loop is cancelled by
//!   [`Audio::close`], which also closes the context: nothing outlives the call.
//!
//! The arithmetic ([`level_of`], [`peak_hz`]) is plain Rust with native tests.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{AnalyserNode, AudioContext, HtmlAudioElement, MediaStream, MediaStreamTrack};

/// One meter's reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    /// Loudness, 0 (silence, −60 dBFS or less) to 100 (full scale).
    pub level: u8,
    /// The frequency of the strongest bin, in Hz; 0 when nothing is heard.
    pub peak_hz: u32,
}

/// Both meters' readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Levels {
    pub agent: Level,
    pub mic: Level,
}

/// The quietest level the meters show, in dBFS; anything below reads 0.
const FLOOR_DB: f32 = -60.0;
/// Bins quieter than this (in dB, as `getFloatFrequencyData` reports) are not a peak.
const PEAK_FLOOR_DB: f32 = -100.0;
/// 2048 samples: bins of about 23 Hz at 48 kHz, fine enough to tell two tones apart.
const FFT_SIZE: u32 = 2048;
/// About 30 readings a second are enough for a meter, and half the work of 60.
const FRAME_MILLIS: f64 = 1000.0 / 30.0;

/// The loudness of a block of samples (−1…1): RMS in dBFS, mapped from −60…0 onto 0…100.
pub fn level_of(samples: &[f32]) -> u8 {
    if samples.is_empty() {
        return 0;
    }
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    let rms = power.sqrt();
    if rms <= 0.0 || !rms.is_finite() {
        return 0;
    }
    let db = 20.0 * rms.log10();
    let scaled = ((db - FLOOR_DB) / -FLOOR_DB * 100.0).round();
    scaled.clamp(0.0, 100.0) as u8
}

/// The frequency of the strongest of `bins` (dB values, as `getFloatFrequencyData` gives
/// them for an analyser of `fft_size` at `sample_rate`); 0 when every bin is silent.
pub fn peak_hz(bins: &[f32], sample_rate: f32, fft_size: u32) -> u32 {
    let strongest = bins
        .iter()
        .enumerate()
        .filter(|(_, db)| db.is_finite() && **db > PEAK_FLOOR_DB)
        .max_by(|a, b| a.1.total_cmp(b.1));
    match strongest {
        Some((bin, _)) if fft_size > 0 => {
            (bin as f32 * sample_rate / fft_size as f32).round() as u32
        }
        _ => 0,
    }
}

/// An analyser listening to one stream.
struct Meter {
    /// Kept so it can be disconnected on close (the graph would otherwise hold the stream).
    source: web_sys::MediaStreamAudioSourceNode,
    analyser: AnalyserNode,
    samples: Vec<f32>,
    bins: Vec<f32>,
}

impl Meter {
    fn new(context: &AudioContext, stream: &MediaStream) -> Option<Self> {
        let source = context.create_media_stream_source(stream).ok()?;
        let analyser = context.create_analyser().ok()?;
        analyser.set_fft_size(FFT_SIZE);
        // Only into the analyser, never on to the destination: playback is the element's.
        source.connect_with_audio_node(&analyser).ok()?;
        Some(Self {
            source,
            samples: vec![0.0; analyser.fft_size() as usize],
            bins: vec![0.0; analyser.frequency_bin_count() as usize],
            analyser,
        })
    }

    fn read(&mut self, sample_rate: f32) -> Level {
        self.analyser.get_float_time_domain_data(&mut self.samples);
        self.analyser.get_float_frequency_data(&mut self.bins);
        let level = level_of(&self.samples);
        Level {
            level,
            peak_hz: if level == 0 {
                0
            } else {
                peak_hz(&self.bins, sample_rate, self.analyser.fft_size())
            },
        }
    }

    fn close(&self) {
        let _ = self.source.disconnect();
    }
}

type FrameLoop = Rc<RefCell<Option<Closure<dyn FnMut(f64)>>>>;

/// The sound of one call. Create it with [`Audio::in_gesture`] inside the click that starts
/// the call; [`Audio::close`] ends everything it started.
pub struct Audio {
    /// `None` where the browser has no Web Audio: playback still works, the meters stay 0.
    context: Option<AudioContext>,
    element: RefCell<Option<HtmlAudioElement>>,
    agent: Rc<RefCell<Option<Meter>>>,
    mic: Rc<RefCell<Option<Meter>>>,
    frame: Rc<Cell<Option<i32>>>,
    frame_loop: FrameLoop,
    on_levels: Rc<dyn Fn(Levels)>,
    /// Closing twice would reject the second `close()` promise with nobody listening.
    closed: Cell<bool>,
}

impl Audio {
    /// Creates the `AudioContext` and asks it to run. Must be called synchronously inside a
    /// click (the browser lets a context start only then). `on_levels` hears each reading.
    pub fn in_gesture(on_levels: Rc<dyn Fn(Levels)>) -> Self {
        let context = AudioContext::new().ok();
        if let Some(context) = &context {
            // The promise settles later; what counts is that resume() ran in the click.
            let _ = context.resume();
        }
        Self {
            context,
            element: RefCell::default(),
            agent: Rc::default(),
            mic: Rc::default(),
            frame: Rc::default(),
            frame_loop: Rc::default(),
            on_levels,
            closed: Cell::new(false),
        }
    }

    /// Whether the context is running (false while the browser holds it suspended).
    pub fn running(&self) -> bool {
        self.context
            .as_ref()
            .is_some_and(|context| context.state() == web_sys::AudioContextState::Running)
    }

    /// The visitor clicked "Enable audio": resume the context and start the element, inside
    /// the click. Returns the element's `play()` promise, if it has something to play.
    pub fn resume_in_gesture(&self) -> Option<js_sys::Promise> {
        if let Some(context) = &self.context {
            let _ = context.resume();
        }
        let element = self.element.borrow();
        let element = element.as_ref()?;
        element.src_object()?;
        element.play().ok()
    }

    /// Plays the agent's track through `element` (the widget's own `<audio autoplay>`) and
    /// meters it. Returns the element's `play()` promise: a rejection means the browser
    /// blocks playback until a click.
    pub fn play_agent(
        &self,
        element: &HtmlAudioElement,
        track: &MediaStreamTrack,
    ) -> Option<js_sys::Promise> {
        let stream = stream_of(track)?;
        element.set_src_object(Some(&stream));
        *self.element.borrow_mut() = Some(element.clone());
        self.attach(&self.agent, &stream);
        element.play().ok()
    }

    /// Meters the visitor's published microphone track.
    pub fn meter_mic(&self, track: &MediaStreamTrack) {
        if let Some(stream) = stream_of(track) {
            self.attach(&self.mic, &stream);
        }
    }

    fn attach(&self, slot: &Rc<RefCell<Option<Meter>>>, stream: &MediaStream) {
        let Some(context) = &self.context else {
            return;
        };
        if let Some(old) = slot.borrow_mut().take() {
            old.close();
        }
        *slot.borrow_mut() = Meter::new(context, stream);
        self.start_loop();
    }

    /// Reads both meters about 30 times a second, on animation frames.
    fn start_loop(&self) {
        if self.frame_loop.borrow().is_some() {
            return;
        }
        let Some(context) = self.context.clone() else {
            return;
        };
        let (agent, mic, frame, on_levels) = (
            Rc::clone(&self.agent),
            Rc::clone(&self.mic),
            Rc::clone(&self.frame),
            Rc::clone(&self.on_levels),
        );
        let frame_loop = Rc::clone(&self.frame_loop);
        // The closure schedules itself; it holds its own slot only weakly, so dropping the
        // slot's value (close) ends the loop without a reference cycle.
        let weak = Rc::downgrade(&self.frame_loop);
        let last = Cell::new(f64::NEG_INFINITY);
        let tick = Closure::<dyn FnMut(f64)>::new(move |now: f64| {
            if now - last.get() >= FRAME_MILLIS {
                last.set(now);
                let rate = context.sample_rate();
                let read = |meter: &RefCell<Option<Meter>>| {
                    meter
                        .borrow_mut()
                        .as_mut()
                        .map(|meter| meter.read(rate))
                        .unwrap_or_default()
                };
                on_levels(Levels {
                    agent: read(&agent),
                    mic: read(&mic),
                });
            }
            if let Some(slot) = weak.upgrade()
                && let Some(tick) = slot.borrow().as_ref()
            {
                frame.set(request_frame(tick));
            }
        });
        self.frame.set(request_frame(&tick));
        *frame_loop.borrow_mut() = Some(tick);
    }

    /// Stops the meters and the element and closes the context; idempotent.
    pub fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        if let Some(id) = self.frame.take()
            && let Some(window) = web_sys::window()
        {
            let _ = window.cancel_animation_frame(id);
        }
        self.frame_loop.borrow_mut().take();
        for meter in [&self.agent, &self.mic] {
            if let Some(meter) = meter.borrow_mut().take() {
                meter.close();
            }
        }
        if let Some(element) = self.element.borrow_mut().take() {
            let _ = element.pause();
            element.set_src_object(None);
        }
        if let Some(context) = &self.context {
            let _ = context.close();
        }
        (self.on_levels)(Levels::default());
    }
}

impl Drop for Audio {
    fn drop(&mut self) {
        self.close();
    }
}

fn stream_of(track: &MediaStreamTrack) -> Option<MediaStream> {
    let tracks = js_sys::Array::of1(track);
    MediaStream::new_with_tracks(&tracks).ok()
}

fn request_frame(tick: &Closure<dyn FnMut(f64)>) -> Option<i32> {
    web_sys::window()?
        .request_animation_frame(tick.as_ref().unchecked_ref())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_reads_zero_and_full_scale_reads_a_hundred() {
        assert_eq!(level_of(&[]), 0);
        assert_eq!(level_of(&[0.0; 64]), 0);
        assert_eq!(level_of(&[1.0, -1.0, 1.0, -1.0]), 100);
        // −60 dBFS and below is the floor.
        assert_eq!(level_of(&[0.0005; 16]), 0);
    }

    #[test]
    fn levels_grow_with_loudness_on_a_decibel_scale() {
        // −20 dBFS (RMS 0.1) sits two thirds up the −60…0 range.
        assert_eq!(level_of(&[0.1, -0.1, 0.1, -0.1]), 67);
        assert!(level_of(&[0.01; 8]) < level_of(&[0.1; 8]));
    }

    #[test]
    fn the_peak_is_the_strongest_audible_bin() {
        let mut bins = vec![f32::NEG_INFINITY; 1024];
        assert_eq!(peak_hz(&bins, 48_000.0, 2048), 0, "silence has no peak");
        bins[19] = -30.0;
        bins[37] = -12.0;
        bins[38] = -20.0;
        // Bin 37 of a 2048-point FFT at 48 kHz: 37 × 23.4375 Hz.
        assert_eq!(peak_hz(&bins, 48_000.0, 2048), 867);
        assert_eq!(peak_hz(&[-120.0; 8], 48_000.0, 16), 0, "below the floor");
    }
}
