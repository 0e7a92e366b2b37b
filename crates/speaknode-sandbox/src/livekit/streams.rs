//! LiveKit text streams over data packets: the agent's `lk.transcription` streams out
//! (header, one chunk per word, trailer) and the visitor's `lk.chat` streams in.

use std::collections::HashMap;

use livekit_protocol as proto;
use prost::Message as _;
use proto::{data_packet::Value, data_stream};

/// The topic of transcriptions (what the agent says, and what it heard).
pub(crate) const TRANSCRIPTION: &str = "lk.transcription";
/// The topic of typed chat messages.
pub(crate) const CHAT: &str = "lk.chat";
const FINAL: &str = "lk.transcription_final";
const SEGMENT: &str = "lk.segment_id";
const TRANSCRIBED_TRACK: &str = "lk.transcribed_track_id";

/// A data packet from `identity` carrying `value`, encoded for a data channel.
///
/// `sequence` stays 0: the client drops packets whose sequence is not above the last it saw
/// from a sender, and skips that check for 0, so reconnects cannot make it drop ours.
pub(crate) fn packet(identity: &str, sid: &str, value: Value) -> Vec<u8> {
    proto::DataPacket {
        participant_identity: identity.to_owned(),
        participant_sid: sid.to_owned(),
        value: Some(value),
        ..Default::default()
    }
    .encode_to_vec()
}

/// One transcription segment as a text stream: what to send, in order.
pub(crate) struct Transcription<'a> {
    pub(crate) stream_id: &'a str,
    pub(crate) segment_id: &'a str,
    /// The track the text transcribes (the speaker's audio), if any.
    pub(crate) track_id: &'a str,
}

impl Transcription<'_> {
    /// The header: a text stream on `lk.transcription`, not final yet. The `TextHeader` is
    /// what routes it to the client's text stream handlers.
    pub(crate) fn header(&self) -> Value {
        Value::StreamHeader(data_stream::Header {
            stream_id: self.stream_id.to_owned(),
            timestamp: super::signal::now_ms(),
            topic: TRANSCRIPTION.to_owned(),
            mime_type: "text/plain".to_owned(),
            attributes: HashMap::from([
                (SEGMENT.to_owned(), self.segment_id.to_owned()),
                (TRANSCRIBED_TRACK.to_owned(), self.track_id.to_owned()),
                (FINAL.to_owned(), "false".to_owned()),
            ]),
            content_header: Some(data_stream::header::ContentHeader::TextHeader(
                data_stream::TextHeader {
                    operation_type: data_stream::OperationType::Create as i32,
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
    }

    /// The `index`th piece of the text.
    pub(crate) fn chunk(&self, index: u64, text: &str) -> Value {
        Value::StreamChunk(data_stream::Chunk {
            stream_id: self.stream_id.to_owned(),
            chunk_index: index,
            content: text.as_bytes().to_vec(),
            ..Default::default()
        })
    }

    /// The trailer, which marks the segment final; the client merges its attributes into
    /// the stream's before the reader ends.
    pub(crate) fn trailer(&self) -> Value {
        self.trailer_with(true)
    }

    /// The trailer of an interim text: a complete stream whose segment a later one with
    /// the same `lk.segment_id` replaces.
    pub(crate) fn interim_trailer(&self) -> Value {
        self.trailer_with(false)
    }

    fn trailer_with(&self, is_final: bool) -> Value {
        Value::StreamTrailer(data_stream::Trailer {
            stream_id: self.stream_id.to_owned(),
            reason: String::new(),
            attributes: HashMap::from([(FINAL.to_owned(), is_final.to_string())]),
        })
    }
}

/// `text` in the pieces the agent "says" it in: word by word, each word with the space
/// that follows it, so that the pieces join back into the text.
pub(crate) fn words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            pieces.push(&text[start..at]);
            start = at;
            in_space = false;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The topic of the microphone audio recorded before the agent joined, sent to it as a
/// byte stream.
pub(crate) const PRE_CONNECT_AUDIO: &str = "lk.agent.pre-connect-audio-buffer";

/// A text stream that has arrived in full.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) sender: String,
    pub(crate) text: String,
}

/// What a data packet completes or adds to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A text stream, in full.
    Text(Received),
    /// `length` more bytes of a byte stream on `topic`; byte streams are counted, not kept.
    Bytes { topic: String, length: usize },
}

/// Reassembles incoming text streams from their data packets, and counts byte streams.
#[derive(Default)]
pub(crate) struct Assembler {
    open: HashMap<String, Open>,
}

struct Open {
    topic: String,
    sender: String,
    /// `None` for a byte stream.
    chunks: Option<Vec<(u64, Vec<u8>)>>,
    /// Bytes of text received so far.
    bytes: usize,
}

/// Streams a client may leave open (a tab that closes mid-message): past this many, all
/// open ones are dropped, so a misbehaving client cannot grow the map without bound.
const MAX_OPEN: usize = 64;
/// The longest text stream the stand-in assembles; a longer one is dropped whole, so a client
/// that never sends a trailer cannot grow one stream without bound either.
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;

impl Assembler {
    /// Takes one data packet; returns what it completes or adds, if anything.
    pub(crate) fn take(&mut self, packet: proto::DataPacket) -> Option<Taken> {
        let sender = packet.participant_identity;
        match packet.value? {
            Value::StreamHeader(header) => {
                let text = match header.content_header.as_ref()? {
                    data_stream::header::ContentHeader::TextHeader(_) => true,
                    data_stream::header::ContentHeader::ByteHeader(_) => false,
                };
                if !text {
                    if self.open.len() >= MAX_OPEN {
                        self.open.clear();
                    }
                    let length = header.inline_content.as_ref().map_or(0, Vec::len);
                    self.open.insert(
                        header.stream_id,
                        Open {
                            topic: header.topic.clone(),
                            sender,
                            chunks: None,
                            bytes: 0,
                        },
                    );
                    return (length > 0).then_some(Taken::Bytes {
                        topic: header.topic,
                        length,
                    });
                }
                // Small messages may come whole in the header, with no chunks or trailer.
                if let Some(content) = header.inline_content {
                    return Some(Taken::Text(Received {
                        topic: header.topic,
                        sender,
                        text: String::from_utf8_lossy(&content).into_owned(),
                    }));
                }
                if self.open.len() >= MAX_OPEN {
                    self.open.clear();
                }
                self.open.insert(
                    header.stream_id,
                    Open {
                        topic: header.topic,
                        sender,
                        chunks: Some(Vec::new()),
                        bytes: 0,
                    },
                );
                None
            }
            Value::StreamChunk(chunk) => {
                let open = self.open.get_mut(&chunk.stream_id)?;
                match &mut open.chunks {
                    Some(chunks) => {
                        open.bytes += chunk.content.len();
                        if open.bytes > MAX_TEXT_BYTES {
                            self.open.remove(&chunk.stream_id);
                            return None;
                        }
                        chunks.push((chunk.chunk_index, chunk.content));
                        None
                    }
                    None => Some(Taken::Bytes {
                        topic: open.topic.clone(),
                        length: chunk.content.len(),
                    }),
                }
            }
            Value::StreamTrailer(trailer) => {
                let open = self.open.remove(&trailer.stream_id)?;
                let mut chunks = open.chunks?;
                chunks.sort_by_key(|(index, _)| *index);
                let bytes: Vec<u8> = chunks.into_iter().flat_map(|(_, c)| c).collect();
                Some(Taken::Text(Received {
                    topic: open.topic,
                    sender: open.sender,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> proto::DataPacket {
        proto::DataPacket::decode(bytes).expect("a data packet")
    }

    #[test]
    fn words_keep_their_spaces_and_join_back() {
        let text = "Hello there,  how can I help?";
        let pieces = words(text);
        assert_eq!(
            pieces,
            ["Hello ", "there,  ", "how ", "can ", "I ", "help?"]
        );
        assert_eq!(pieces.concat(), text);
        assert!(words("").is_empty());
    }

    #[test]
    fn a_transcription_round_trips_through_the_assembler() {
        let stream = Transcription {
            stream_id: "s1",
            segment_id: "SG_1",
            track_id: "TR_agent",
        };
        let mut frames = vec![packet("agent-1", "PA_a", stream.header())];
        for (index, word) in words("Hi, how are you?").into_iter().enumerate() {
            frames.push(packet("agent-1", "PA_a", stream.chunk(index as u64, word)));
        }
        frames.push(packet("agent-1", "PA_a", stream.trailer()));

        let header = decode(&frames[0]);
        let Some(Value::StreamHeader(h)) = &header.value else {
            panic!("no header");
        };
        assert_eq!(h.topic, "lk.transcription");
        assert_eq!(
            h.attributes
                .get("lk.transcription_final")
                .map(String::as_str),
            Some("false")
        );

        let mut assembler = Assembler::default();
        let mut done = None;
        for frame in &frames {
            done = assembler.take(decode(frame)).or(done);
        }
        assert_eq!(
            done,
            Some(Taken::Text(Received {
                topic: "lk.transcription".into(),
                sender: "agent-1".into(),
                text: "Hi, how are you?".into(),
            }))
        );
        let Some(Value::StreamTrailer(trailer)) = decode(frames.last().expect("trailer")).value
        else {
            panic!("no trailer");
        };
        assert_eq!(
            trailer
                .attributes
                .get("lk.transcription_final")
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn inline_content_completes_a_stream_at_once() {
        let header = proto::DataPacket {
            participant_identity: "visitor-1".into(),
            value: Some(Value::StreamHeader(data_stream::Header {
                stream_id: "c1".into(),
                topic: CHAT.into(),
                inline_content: Some(b"hello".to_vec()),
                content_header: Some(data_stream::header::ContentHeader::TextHeader(
                    data_stream::TextHeader::default(),
                )),
                ..Default::default()
            })),
            ..Default::default()
        };
        let Some(Taken::Text(received)) = Assembler::default().take(header) else {
            panic!("not complete");
        };
        assert_eq!(received.text, "hello");
        assert_eq!(received.sender, "visitor-1");
    }

    #[test]
    fn chunks_out_of_order_are_put_back_in_order() {
        let mut assembler = Assembler::default();
        let stream = Transcription {
            stream_id: "s2",
            segment_id: "SG_2",
            track_id: "",
        };
        let mut take = |value| assembler.take(decode(&packet("v", "PA_v", value)));
        assert_eq!(take(stream.header()), None);
        assert_eq!(take(stream.chunk(1, "world")), None);
        assert_eq!(take(stream.chunk(0, "hello ")), None);
        let Some(Taken::Text(received)) = take(stream.trailer()) else {
            panic!("not complete");
        };
        assert_eq!(received.text, "hello world");
    }

    #[test]
    fn a_text_stream_past_the_limit_is_dropped_whole() {
        let mut assembler = Assembler::default();
        let stream = Transcription {
            stream_id: "s3",
            segment_id: "SG_3",
            track_id: "",
        };
        let mut take = |value| assembler.take(decode(&packet("v", "PA_v", value)));
        assert_eq!(take(stream.header()), None);
        let piece = "x".repeat(1024);
        for index in 0..=(MAX_TEXT_BYTES / piece.len()) as u64 {
            assert_eq!(take(stream.chunk(index, &piece)), None);
        }
        assert_eq!(
            take(stream.trailer()),
            None,
            "nothing assembled past the limit"
        );
    }

    #[test]
    fn byte_streams_are_counted_chunk_by_chunk_and_never_taken_for_text() {
        let mut assembler = Assembler::default();
        let header = Value::StreamHeader(data_stream::Header {
            stream_id: "b1".into(),
            topic: PRE_CONNECT_AUDIO.into(),
            content_header: Some(data_stream::header::ContentHeader::ByteHeader(
                data_stream::ByteHeader {
                    name: "preconnect-buffer".into(),
                },
            )),
            ..Default::default()
        });
        let mut take = |value| assembler.take(decode(&packet("v", "PA_v", value)));
        assert_eq!(take(header), None);
        let chunk = Value::StreamChunk(data_stream::Chunk {
            stream_id: "b1".into(),
            content: vec![0; 300],
            ..Default::default()
        });
        assert_eq!(
            take(chunk),
            Some(Taken::Bytes {
                topic: PRE_CONNECT_AUDIO.into(),
                length: 300
            })
        );
        let trailer = Value::StreamTrailer(data_stream::Trailer {
            stream_id: "b1".into(),
            ..Default::default()
        });
        assert_eq!(take(trailer), None);
    }
}
