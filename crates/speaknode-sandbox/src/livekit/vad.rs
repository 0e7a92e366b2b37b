//! When the visitor speaks, as the stand-in's agent tells it: a voice activity detector over
//! the RFC 6464 levels the browser puts on each microphone packet. The stand-in has no
//! speech recognition; what a detected utterance "was" comes from the scenario's `hears`.
//!
//! Pure: it is fed levels and the time, and answers when an utterance starts and ends.

use std::time::{Duration, Instant};

/// Quieter than this (in −dBov; 0 is full scale, 127 silence) is not speech.
const VOICED_BELOW: u8 = 40;
/// Voice held this long starts an utterance (voice-plan §1.6).
const START_AFTER: Duration = Duration::from_millis(300);
/// Dips shorter than this between syllables do not restart the count to a start.
const START_GAP: Duration = Duration::from_millis(200);
/// Silence this long ends an utterance (voice-plan §1.6).
const END_AFTER: Duration = Duration::from_millis(700);

/// A change the detector reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Speech {
    Started,
    Ended,
}

/// One visitor's detector.
#[derive(Debug, Default)]
pub(crate) struct Vad {
    /// Since when the voice has been held, with dips no longer than [`START_GAP`].
    voiced_since: Option<Instant>,
    last_voiced: Option<Instant>,
    speaking: bool,
}

impl Vad {
    /// A packet at `at` whose level is `level` −dBov.
    pub(crate) fn level(&mut self, at: Instant, level: u8) -> Option<Speech> {
        if level >= VOICED_BELOW {
            return self.tick(at);
        }
        let held = match (self.voiced_since, self.last_voiced) {
            (Some(since), Some(last)) if at.saturating_duration_since(last) <= START_GAP => since,
            _ => at,
        };
        self.voiced_since = Some(held);
        self.last_voiced = Some(at);
        if !self.speaking && at.saturating_duration_since(held) >= START_AFTER {
            self.speaking = true;
            return Some(Speech::Started);
        }
        None
    }

    /// Time passing at `at` without voice: a quiet packet, or none at all (a muted or
    /// stopped microphone may send nothing).
    pub(crate) fn tick(&mut self, at: Instant) -> Option<Speech> {
        let silent_for = self
            .last_voiced
            .map_or(Duration::MAX, |last| at.saturating_duration_since(last));
        if silent_for > START_GAP && !self.speaking {
            self.voiced_since = None;
        }
        if self.speaking && silent_for >= END_AFTER {
            self.speaking = false;
            self.voiced_since = None;
            return Some(Speech::Ended);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: Duration = Duration::from_millis(20);

    /// Feeds `duration` of packets at `level` from `*at`, returning what the detector said.
    fn feed(vad: &mut Vad, at: &mut Instant, duration: Duration, level: u8) -> Vec<Speech> {
        let mut said = Vec::new();
        let end = *at + duration;
        while *at < end {
            *at += PACKET;
            said.extend(vad.level(*at, level));
        }
        said
    }

    #[test]
    fn voice_held_for_300_ms_starts_and_700_ms_of_silence_ends_an_utterance() {
        let (mut vad, mut at) = (Vad::default(), Instant::now());
        assert_eq!(feed(&mut vad, &mut at, Duration::from_millis(280), 20), []);
        assert_eq!(
            feed(&mut vad, &mut at, Duration::from_millis(40), 20),
            [Speech::Started]
        );
        assert_eq!(feed(&mut vad, &mut at, Duration::from_secs(2), 20), []);
        assert_eq!(feed(&mut vad, &mut at, Duration::from_millis(680), 127), []);
        assert_eq!(
            feed(&mut vad, &mut at, Duration::from_millis(40), 127),
            [Speech::Ended]
        );
        assert_eq!(feed(&mut vad, &mut at, Duration::from_secs(3), 127), []);
    }

    #[test]
    fn short_sounds_and_quiet_noise_are_not_speech() {
        let (mut vad, mut at) = (Vad::default(), Instant::now());
        for _ in 0..10 {
            // 200 ms clicks with 300 ms pauses never add up to a start.
            assert_eq!(feed(&mut vad, &mut at, Duration::from_millis(200), 10), []);
            assert_eq!(feed(&mut vad, &mut at, Duration::from_millis(300), 127), []);
        }
        assert_eq!(
            feed(&mut vad, &mut at, Duration::from_secs(5), VOICED_BELOW),
            []
        );
    }

    #[test]
    fn dips_between_syllables_neither_restart_the_start_nor_end_the_utterance() {
        let (mut vad, mut at) = (Vad::default(), Instant::now());
        let mut said = Vec::new();
        for _ in 0..4 {
            said.extend(feed(&mut vad, &mut at, Duration::from_millis(120), 25));
            said.extend(feed(&mut vad, &mut at, Duration::from_millis(100), 60));
        }
        assert_eq!(
            said,
            [Speech::Started],
            "syllables 120 ms apart make one utterance"
        );
        for _ in 0..5 {
            said.extend(feed(&mut vad, &mut at, Duration::from_millis(500), 127));
            said.extend(feed(&mut vad, &mut at, Duration::from_millis(100), 25));
        }
        assert_eq!(said, [Speech::Started], "pauses under 700 ms do not end it");
    }

    #[test]
    fn a_microphone_that_stops_sending_ends_the_utterance_on_the_clock() {
        let (mut vad, mut at) = (Vad::default(), Instant::now());
        assert_eq!(
            feed(&mut vad, &mut at, Duration::from_millis(400), 15),
            [Speech::Started]
        );
        assert_eq!(vad.tick(at + Duration::from_millis(600)), None);
        assert_eq!(
            vad.tick(at + Duration::from_millis(700)),
            Some(Speech::Ended)
        );
        assert_eq!(vad.tick(at + Duration::from_millis(900)), None);
        // Talking again is a new utterance.
        at += Duration::from_secs(1);
        assert_eq!(
            feed(&mut vad, &mut at, Duration::from_millis(400), 15),
            [Speech::Started]
        );
    }
}
