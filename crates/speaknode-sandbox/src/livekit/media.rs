//! The media half of the stand-in, on webrtc-rs: peer connections bound to loopback, the
//! agent's voice (a generated tone as G.711 μ-law) and the RFC 6464 audio level of what the
//! visitor sends. Everything WebRTC-specific stays in this module, so that another stack
//! (str0m) could replace it.

use std::{f64::consts::TAU, sync::Arc, time::Duration};

use rtc::{
    media_stream::MediaStreamTrack,
    peer_connection::transport::RTCDtlsRole,
    rtp_transceiver::{
        RTCRtpTransceiverDirection,
        rtp_sender::{
            RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
            RTCRtpHeaderExtensionCapability, RtpCodecKind,
        },
    },
};
use webrtc::{
    error::Result,
    peer_connection::{
        MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
        RTCConfigurationBuilder, Registry, SettingEngineBuilder, register_default_interceptors,
    },
};

/// The RFC 6464 client-to-mixer audio level extension Chrome offers on audio.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// G.711 runs at 8 kHz; 20 ms is 160 samples, one byte each.
pub(crate) const SAMPLE_RATE: u32 = 8000;
pub(crate) const FRAME: Duration = Duration::from_millis(20);
const FRAME_SAMPLES: usize = 160;

/// A new peer connection whose events go to `handler`, with its ICE candidates on loopback
/// only: the visitor's browser runs on the same machine, and a loopback-only candidate list
/// keeps the SDP free of the host's other addresses.
///
/// The subscriber connection (`sends_voice`) offers PCMU alone, so that the browser cannot
/// pick a codec the agent's track does not send; the publisher connection takes the
/// default set, as it only receives whatever the browser chooses (Opus).
pub(crate) async fn peer_connection(
    handler: Arc<dyn PeerConnectionEventHandler>,
    sends_voice: bool,
) -> Result<Arc<dyn PeerConnection>> {
    let mut media_engine = MediaEngine::default();
    if sends_voice {
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: pcmu(),
                payload_type: PCMU_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )?;
    } else {
        media_engine.register_default_codecs()?;
    }
    // Registered so that the answer to the visitor's offer keeps the extension, and its
    // packets carry their level.
    media_engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        Some(RTCRtpTransceiverDirection::Sendrecv),
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    // As the answerer (publisher connection) webrtc-rs takes the DTLS client role by default,
    // and then runs SCTP as a client only: it refuses the browser's SCTP INIT ("refusing
    // first packet due to empty server_config") and, having no channel of its own there,
    // never opens an association, so the browser's data channels never open. As DTLS server
    // it accepts the browser's association, as it does on the subscriber connection.
    let settings = SettingEngineBuilder::new()
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .build();
    let builder = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec!["127.0.0.1:0"]);
    // The builder's future is some 20 KB; boxed, so that every caller's future is not.
    let connection = Box::pin(builder.build()).await?;
    Ok(Arc::new(connection))
}

/// The agent's audio track: PCMU, mono, in the stream `stream_id` with track id
/// `track_id`. livekit-client reads the participant and track sids from the stream id
/// (`PA_…|TR_…`), so those must be LiveKit sids.
pub(crate) fn agent_track(stream_id: &str, track_id: &str, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        stream_id.to_owned(),
        track_id.to_owned(),
        "agent-voice".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: pcmu(),
            ..Default::default()
        }],
    )
}

/// PCMU's static payload type (RFC 3551).
pub(crate) const PCMU_PAYLOAD_TYPE: u8 = 0;

fn pcmu() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/PCMU".to_owned(),
        clock_rate: SAMPLE_RATE,
        channels: 1,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// A sine tone, frame by frame, continuing its phase across frames so that there is no
/// click every 20 ms (which would smear the spectrum the browser test measures).
pub(crate) struct Tone {
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl Tone {
    /// A tone of `hz` at −6 dBFS.
    pub(crate) fn new(hz: f64) -> Self {
        Self {
            step: TAU * hz / f64::from(SAMPLE_RATE),
            phase: 0.0,
            amplitude: 0.5 * f64::from(i16::MAX),
        }
    }

    /// The next 20 ms, μ-law encoded; silence when `sounding` is false.
    pub(crate) fn frame(&mut self, sounding: bool) -> Vec<u8> {
        (0..FRAME_SAMPLES)
            .map(|_| {
                let sample = if sounding {
                    (self.amplitude * self.phase.sin()) as i16
                } else {
                    0
                };
                self.phase = (self.phase + self.step) % TAU;
                mu_law(sample)
            })
            .collect()
    }
}

/// G.711 μ-law encoding of one 16-bit sample (ITU-T G.711, the segment table as in the
/// reference `linear2ulaw`).
pub(crate) fn mu_law(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let exponent = (0..8).rev().find(|e| value & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// The level of an RFC 6464 extension payload in −dBov (0 loudest, 127 silence), and its
/// voice-activity bit.
pub(crate) fn audio_level(payload: &[u8]) -> Option<(u8, bool)> {
    let byte = *payload.first()?;
    Some((byte & 0x7f, byte & 0x80 != 0))
}

/// The id the offer `sdp` gives the audio level extension, if it offers it.
pub(crate) fn audio_level_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        // The id may carry a direction (`3/sendrecv`).
        let id = id.split('/').next()?;
        (uri.trim() == AUDIO_LEVEL_URI).then(|| id.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference decoder, to check the encoder against.
    fn mu_law_decode(byte: u8) -> i16 {
        let byte = !byte;
        let sign = byte & 0x80;
        let exponent = (byte >> 4) & 0x07;
        let mantissa = i32::from(byte & 0x0f);
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        let magnitude = i16::try_from(magnitude).expect("in range");
        if sign != 0 { -magnitude } else { magnitude }
    }

    #[test]
    fn mu_law_matches_the_g711_reference_points() {
        assert_eq!(mu_law(0), 0xff);
        assert_eq!(mu_law(-1), 0x7f);
        assert_eq!(mu_law(i16::MAX), 0x80);
        assert_eq!(mu_law(i16::MIN), 0x00);
        for sample in [-20000_i16, -1000, -100, 100, 1000, 8000, 30000] {
            let back = mu_law_decode(mu_law(sample));
            // μ-law keeps about 4 % relative precision.
            assert!(
                (i32::from(back) - i32::from(sample)).abs() <= i32::from(sample).abs() / 16 + 8,
                "{sample} came back as {back}"
            );
        }
    }

    #[test]
    fn the_tone_has_its_frequency_and_silence_is_silent() {
        let mut tone = Tone::new(880.0);
        let samples: Vec<i16> = (0..50)
            .flat_map(|_| tone.frame(true))
            .map(mu_law_decode)
            .collect();
        // Zero crossings per second = 2 × frequency.
        let crossings = samples
            .windows(2)
            .filter(|pair| (pair[0] < 0) != (pair[1] < 0))
            .count();
        let hz = crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(SAMPLE_RATE));
        assert!((hz - 880.0).abs() < 5.0, "measured {hz} Hz");
        assert!(tone.frame(false).iter().all(|&byte| byte == 0xff));
    }

    #[test]
    fn the_audio_level_id_is_read_from_the_offer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n";
        assert_eq!(audio_level_id(sdp), Some(1));
        assert_eq!(
            audio_level_id("a=extmap:4/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            Some(4)
        );
        assert_eq!(audio_level_id("v=0\r\n"), None);
        assert_eq!(audio_level(&[0x80 | 12]), Some((12, true)));
        assert_eq!(audio_level(&[127]), Some((127, false)));
    }
}
