//! Live captions: turns the call's text streams into transcript lines and merges them with
//! the conversation's REST `history[]` without showing anything twice.
//!
//! Wiring: feed every [`TextChunk`] the transport reports to [`Captions::push`], tell it the
//! agent's identity when [`VoiceEvent::AgentJoined`](super::VoiceEvent::AgentJoined) arrives
//! ([`Captions::set_agent`]), and echo what the visitor types with [`Captions::push_local`].
//! The panel renders [`Captions::merged`] with the session's transcript turns: history first,
//! in its own order, then the live lines history does not have yet. [`super::call::Call`]
//! owns one of these and does all of that itself; use this directly only without a call.
//!
//! How streams become lines (LiveKit's conventions, `research/voice.md` §2):
//!
//! - A line is keyed by its sender and the stream's `lk.segment_id` (the stream id when
//!   there is none). Chunks of the stream a line is being built from are appended (agent
//!   speech arrives as deltas); a *new* stream for the same segment replaces the line's text
//!   (visitor speech-to-text sends every interim result as a complete short stream).
//! - The sender's identity decides who spoke: the agent's identity is the agent, anyone else
//!   is the visitor. The agent publishes the visitor's transcript on the visitor's behalf, so
//!   who carried the stream does not matter. Roles (and so finality, below) are worked out
//!   when lines are read, so a stream that arrives before the agent's join event is still
//!   attributed correctly.
//! - A line is final once `lk.transcription_final` reads true (leniently: see [`truthy`]).
//!   Agent streams are also final when their trailer arrives (`done`); visitor streams are
//!   not, because every interim result ends with a trailer too — for them the attribute
//!   decides, and only when they carry none does the trailer count.
//!
//! Why merging compares text: segment ids are not turn ids. The platform stores its own turn
//! ids in `history[]`, and the sandbox deliberately uses different ids from its streams so
//! tests exercise this rule rather than an accidental match. A final live line is dropped
//! when a history turn of the same role has the same normalised text ([`normalise`]) — one
//! turn absorbs at most one line, and turns that existed before the call started
//! ([`Captions::set_baseline`]) absorb none, so a visitor saying "yes" twice sees it twice —
//! except an unanswered last agent turn, which agents repeat to a visitor who joins late.
//! A turn that arrived as several segments (a pause mid-sentence) absorbs the run of that
//! role's final lines whose words, joined, are the turn's. Non-final lines never match a
//! turn exactly (they are still changing), but an agent line whose words so far begin a
//! stored agent turn hides in it while that holds (the turn shows those words already).

use speaknode_api::{Role, Turn};

use super::TextChunk;

/// The topic agents publish transcriptions on (theirs and the visitor's).
pub const TRANSCRIPTION_TOPIC: &str = "lk.transcription";
/// The topic typed messages travel on.
pub const CHAT_TOPIC: &str = "lk.chat";
/// The attribute naming the transcription segment a stream belongs to.
pub const SEGMENT_ID: &str = "lk.segment_id";
/// The attribute saying a transcription segment is complete.
pub const TRANSCRIPTION_FINAL: &str = "lk.transcription_final";

/// What identifies a live line across updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LineKey {
    /// Speech (or a received chat stream): the sender's identity and the segment id, or the
    /// stream id for streams without one.
    Stream { sender: String, id: String },
    /// A message typed in this widget, by its outbox id.
    Local(u64),
}

/// One live caption line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub key: LineKey,
    pub role: Role,
    pub text: String,
    /// The text will not change any more.
    pub is_final: bool,
}

/// One entry of the transcript the panel shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// A turn the platform stored.
    History(Turn),
    /// A line heard or typed during the call that history does not hold (yet).
    Live(Line),
}

/// A line as it is being assembled.
#[derive(Debug, Clone)]
struct Entry {
    key: LineKey,
    /// `None` for local lines: they are always the visitor's.
    sender: Option<String>,
    text: String,
    /// What the current stream's `lk.transcription_final` said, if it said anything.
    said: Option<bool>,
    /// The current stream's trailer arrived.
    done: bool,
    /// The stream the text currently comes from; a chunk from another replaces the text.
    stream: String,
}

/// The live caption assembler. See the module documentation for the rules.
#[derive(Debug, Clone, Default)]
pub struct Captions {
    agent: Option<String>,
    entries: Vec<Entry>,
    /// Ids of history turns that existed before the call: they never absorb a live line.
    baseline: Vec<String>,
    /// The unanswered last agent turn as the call started, which the agent may repeat.
    open: Option<String>,
}

impl Captions {
    /// Who the agent is (from [`super::VoiceEvent::AgentJoined`]).
    pub fn set_agent(&mut self, identity: &str) {
        self.agent = Some(identity.to_owned());
    }

    /// Remembers the history turns that exist as the call starts, so an old turn with the
    /// same words never hides a new line.
    ///
    /// One exception: when history ends with an agent turn nobody answered, that turn stays
    /// open. An agent repeats its last unanswered turn to a visitor who joins late (a rejoin
    /// after a reload, a join after the greeting was stored), and the caption of that
    /// repetition must fall into the stored turn instead of showing it twice.
    pub fn set_baseline(&mut self, history: &[Turn]) {
        let open = history.last().filter(|turn| turn.role == Role::Agent);
        self.baseline = history
            .iter()
            .filter(|turn| open.is_none_or(|open| open.id != turn.id))
            .map(|turn| turn.id.clone())
            .collect();
        self.open = open.map(|turn| turn.id.clone());
    }

    /// Takes in one chunk of a text stream. Returns whether a line changed; chunks of other
    /// topics are ignored.
    pub fn push(&mut self, chunk: &TextChunk) -> bool {
        if chunk.topic != TRANSCRIPTION_TOPIC && chunk.topic != CHAT_TOPIC {
            return false;
        }
        let id = attribute(chunk, SEGMENT_ID)
            .filter(|id| !id.trim().is_empty())
            .unwrap_or(&chunk.stream_id);
        let key = LineKey::Stream {
            sender: chunk.sender.clone(),
            id: id.to_owned(),
        };
        let said = attribute(chunk, TRANSCRIPTION_FINAL).map(truthy);
        match self.entries.iter_mut().find(|entry| entry.key == key) {
            Some(entry) => {
                let before = (entry.text.len(), entry.said, entry.done);
                if entry.stream == chunk.stream_id {
                    entry.text.push_str(&chunk.text);
                    // Within one stream, final is sticky: a later chunk cannot take it back.
                    if entry.said != Some(true) && said.is_some() {
                        entry.said = said;
                    }
                    entry.done |= chunk.done;
                    !chunk.text.is_empty() || before != (entry.text.len(), entry.said, entry.done)
                } else {
                    entry.stream.clone_from(&chunk.stream_id);
                    entry.text.clone_from(&chunk.text);
                    entry.said = said;
                    entry.done = chunk.done;
                    true
                }
            }
            None => {
                self.entries.push(Entry {
                    key,
                    sender: Some(chunk.sender.clone()),
                    text: chunk.text.clone(),
                    said,
                    done: chunk.done,
                    stream: chunk.stream_id.clone(),
                });
                true
            }
        }
    }

    /// Shows a message the visitor typed, keyed by its outbox id. Typed text is complete,
    /// so the line is final and disappears once history holds the same words.
    pub fn push_local(&mut self, id: u64, text: &str) {
        let key = LineKey::Local(id);
        if self.entries.iter().any(|entry| entry.key == key) {
            return;
        }
        self.entries.push(Entry {
            key,
            sender: None,
            text: text.to_owned(),
            said: Some(true),
            done: true,
            stream: String::new(),
        });
    }

    /// The connection is gone: text streams in flight will never finish. An agent line says
    /// all it will say, so a stored turn that starts with its words absorbs it; a visitor's
    /// interim text was only a guess, and goes (the stored turn, if any, has the real words).
    pub fn cut_off(&mut self) {
        let agent = self.agent.clone();
        self.entries.retain_mut(|entry| {
            if matches!(entry.key, LineKey::Local(_)) {
                return true;
            }
            let from_agent = agent.is_some() && entry.sender == agent;
            if !from_agent && entry.said == Some(false) {
                return false;
            }
            entry.done = true;
            true
        });
    }

    /// The live lines, in the order they started.
    pub fn lines(&self) -> Vec<Line> {
        self.entries
            .iter()
            .map(|entry| {
                let role = self.role_of(entry);
                // Agent speech ends with its trailer; a visitor's interim result ends with a
                // trailer too, so for the visitor the attribute decides when there is one.
                let is_final = entry.said == Some(true)
                    || (entry.done && (entry.said.is_none() || role == Role::Agent));
                Line {
                    key: entry.key.clone(),
                    role,
                    text: entry.text.clone(),
                    is_final,
                }
            })
            .collect()
    }

    /// The transcript to show: every history turn in its order, then the live lines that
    /// history does not hold yet, in the order they started. Blank live lines (a stream's
    /// header before its first words) are left out.
    pub fn merged(&self, history: &[Turn]) -> Vec<Shown> {
        let mut absorbed: Vec<bool> = history
            .iter()
            .map(|turn| self.baseline.contains(&turn.id))
            .collect();
        let keys: Vec<String> = history.iter().map(|turn| normalise(&turn.text)).collect();
        let lines: Vec<Line> = self
            .lines()
            .into_iter()
            .filter(|line| !line.text.trim().is_empty())
            .collect();
        let mut dropped = vec![false; lines.len()];
        // A typed message comes back as the visitor's transcription (the agent publishes
        // what it took in, typed or spoken): that echo is the typed line, not a second
        // message. Each typed line takes the first final visitor line after it with its words.
        for l in 0..lines.len() {
            if !matches!(lines[l].key, LineKey::Local(_)) {
                continue;
            }
            let text = normalise(&lines[l].text);
            let echo = (l + 1..lines.len()).find(|&i| {
                !dropped[i]
                    && lines[i].is_final
                    && lines[i].role == Role::User
                    && matches!(lines[i].key, LineKey::Stream { .. })
                    && normalise(&lines[i].text) == text
            });
            if let Some(i) = echo {
                dropped[i] = true;
            }
        }
        // First one line per turn, so a turn spoken as one segment finds its own line.
        for (line, dropped) in lines.iter().zip(&mut dropped) {
            if !line.is_final || *dropped {
                continue;
            }
            let text = normalise(&line.text);
            let matching = (0..history.len())
                .find(|&t| !absorbed[t] && history[t].role == line.role && keys[t] == text);
            if let Some(t) = matching {
                absorbed[t] = true;
                *dropped = true;
            }
        }
        // Then turns the platform stored whole but that arrived as several segments (a
        // visitor who paused mid-sentence): a run of that role's remaining final lines
        // whose words, joined, are the turn's.
        for t in 0..history.len() {
            if absorbed[t] {
                continue;
            }
            let candidates: Vec<usize> = (0..lines.len())
                .filter(|&i| !dropped[i] && lines[i].is_final && lines[i].role == history[t].role)
                .collect();
            if let Some(run) = run_matching(&lines, &candidates, &keys[t]) {
                absorbed[t] = true;
                for i in run {
                    dropped[i] = true;
                }
            }
        }
        // The agent's words that a stored agent turn already shows: a line cut off (the
        // visitor spoke over it, its stream ended early) or one still being spoken (an agent
        // saying a turn the platform stored before the speech caught up, or repeating its
        // unanswered turn to a visitor who joined late) whose words so far are the turn's
        // first words. Such a line adds nothing; should its words go another way, it no
        // longer matches and shows, so nothing said is hidden for good.
        // A line still being spoken is not hidden in the newest agent turn, though: that is
        // the turn the agent is saying now, and its caption is shown as it grows (unless it
        // is the repetition of the turn that was open when the call started).
        let newest = (0..history.len())
            .rev()
            .find(|&t| history[t].role == Role::Agent)
            .filter(|&t| self.open.as_ref() != Some(&history[t].id));
        for i in 0..lines.len() {
            if dropped[i] || lines[i].role != Role::Agent {
                continue;
            }
            let text = normalise(&lines[i].text);
            let spoken_now = !lines[i].is_final;
            let shown_in = (0..history.len()).find(|&t| {
                !absorbed[t]
                    && history[t].role == Role::Agent
                    && !(spoken_now && Some(t) == newest)
                    && starts_with_words(&keys[t], &text)
            });
            if let Some(t) = shown_in {
                absorbed[t] = true;
                dropped[i] = true;
            }
        }
        let mut shown: Vec<Shown> = history.iter().cloned().map(Shown::History).collect();
        shown.extend(
            lines
                .into_iter()
                .zip(dropped)
                .filter(|(_, dropped)| !dropped)
                .map(|(line, _)| Shown::Live(line)),
        );
        shown
    }

    fn role_of(&self, entry: &Entry) -> Role {
        match (&entry.sender, &self.agent) {
            (Some(sender), Some(agent)) if sender == agent => Role::Agent,
            _ => Role::User,
        }
    }
}

/// An attribute's value (the last one wins, as when a trailer is merged over the header).
fn attribute<'a>(chunk: &'a TextChunk, name: &str) -> Option<&'a str> {
    chunk
        .attributes
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Whether `text` is the whole of `key` or its first words (a cut at a word boundary), both
/// normalised; empty `text` is not.
fn starts_with_words(key: &str, text: &str) -> bool {
    !text.is_empty()
        && key.starts_with(text)
        && key[text.len()..]
            .chars()
            .next()
            .is_none_or(|next| !next.is_alphanumeric())
}

/// The first run of two or more consecutive `candidates` (indices into `lines`) whose texts,
/// joined by spaces, normalise to `key`.
fn run_matching(lines: &[Line], candidates: &[usize], key: &str) -> Option<Vec<usize>> {
    for start in 0..candidates.len() {
        let mut joined = String::new();
        for end in start..candidates.len() {
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(&lines[candidates[end]].text);
            let text = normalise(&joined);
            if end > start && text == key {
                return Some(candidates[start..=end].to_vec());
            }
            // Once the words so far are not how the turn begins, no longer run will match.
            if !key.starts_with(&text) {
                break;
            }
        }
    }
    None
}

/// Reads a boolean attribute leniently, because agents disagree on how to write one:
/// `true`, `1` and `yes` in any case and with surrounding whitespace are true, and so is a
/// JSON string holding one of them (`"true"`, as a bridge that JSON-encodes values sends).
/// Everything else — `false`, `0`, `no`, the empty string, garbage — is false.
pub fn truthy(value: &str) -> bool {
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .map_or(value, str::trim);
    ["true", "1", "yes"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
}

/// The text two lines are compared by: whitespace collapsed to single spaces, lower case,
/// and trailing punctuation trimmed (speech-to-text and the stored turn often disagree on a
/// final full stop or question mark).
pub fn normalise(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .to_lowercase()
        .trim_end_matches(|c: char| {
            c.is_whitespace()
                || c.is_ascii_punctuation()
                || matches!(c, '…' | '。' | '？' | '！' | '؟' | '،' | '؛' | '¿' | '¡')
        })
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "agent-7";
    const VISITOR: &str = "visitor-1";

    fn chunk(sender: &str, stream: &str, text: &str, attributes: &[(&str, &str)]) -> TextChunk {
        TextChunk {
            topic: TRANSCRIPTION_TOPIC.into(),
            stream_id: stream.into(),
            sender: sender.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            text: text.into(),
            done: false,
        }
    }

    fn done(mut chunk: TextChunk) -> TextChunk {
        chunk.done = true;
        chunk
    }

    fn captions() -> Captions {
        let mut captions = Captions::default();
        captions.set_agent(AGENT);
        captions
    }

    fn turn(id: &str, role: Role, text: &str) -> Turn {
        Turn {
            id: id.into(),
            role,
            text: text.into(),
            at: None,
            interrupted: false,
        }
    }

    fn texts(shown: &[Shown]) -> Vec<String> {
        shown
            .iter()
            .map(|entry| match entry {
                Shown::History(turn) => format!("history:{}", turn.text),
                Shown::Live(line) => format!("live:{}", line.text),
            })
            .collect()
    }

    #[test]
    fn agent_speech_is_appended_delta_by_delta_and_final_with_its_trailer() {
        let mut captions = captions();
        let header = [(SEGMENT_ID, "SG_1"), (TRANSCRIPTION_FINAL, "false")];
        captions.push(&chunk(AGENT, "s1", "Hello", &header));
        captions.push(&chunk(AGENT, "s1", " there,", &header));
        let lines = captions.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "Hello there,");
        assert_eq!(lines[0].role, Role::Agent);
        assert!(!lines[0].is_final, "no trailer yet");
        // The trailer's attributes are merged over the header's on the last chunk; even
        // when it does not repeat the final flag, the trailer ends agent speech.
        captions.push(&done(chunk(AGENT, "s1", " friend.", &header)));
        let line = &captions.lines()[0];
        assert_eq!(line.text, "Hello there, friend.");
        assert!(line.is_final);
    }

    #[test]
    fn a_call_cut_off_mid_sentence_leaves_no_half_line_beside_the_stored_turn() {
        let mut captions = captions();
        let history = [turn("t1", Role::Agent, "You're welcome. Goodbye!")];
        let speaking = [(SEGMENT_ID, "SG_a"), (TRANSCRIPTION_FINAL, "false")];
        captions.push(&chunk(AGENT, "a1", "You're welcome.", &speaking));
        let interim = [(SEGMENT_ID, "SG_u"), (TRANSCRIPTION_FINAL, "false")];
        captions.push(&done(chunk(VISITOR, "u1", "Thanks", &interim)));
        // While the agent is saying the newest turn, its caption grows in view.
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                "history:You're welcome. Goodbye!",
                "live:You're welcome.",
                "live:Thanks"
            ]
        );
        // The room went away before the trailer: the agent's words so far are the stored
        // turn's, and the visitor's guess is gone.
        captions.cut_off();
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:You're welcome. Goodbye!"]
        );
        // Words that went another way still show.
        let mut captions = self::captions();
        captions.push(&chunk(AGENT, "a1", "Before you go", &speaking));
        captions.cut_off();
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:You're welcome. Goodbye!", "live:Before you go"]
        );
    }

    #[test]
    fn the_final_attribute_finalises_without_a_trailer() {
        let mut captions = captions();
        captions.push(&chunk(
            AGENT,
            "s1",
            "Done.",
            &[(SEGMENT_ID, "SG_1"), (TRANSCRIPTION_FINAL, " TRUE ")],
        ));
        assert!(captions.lines()[0].is_final);
    }

    #[test]
    fn visitor_interim_results_replace_the_segment_until_final() {
        let mut captions = captions();
        let interim = [(SEGMENT_ID, "SG_u"), (TRANSCRIPTION_FINAL, "false")];
        captions.push(&done(chunk(VISITOR, "u1", "what are", &interim)));
        let line = &captions.lines()[0];
        assert_eq!(line.role, Role::User);
        assert_eq!(line.text, "what are");
        assert!(
            !line.is_final,
            "an interim result's trailer does not finalise the visitor's line"
        );
        captions.push(&done(chunk(VISITOR, "u2", "what are your", &interim)));
        captions.push(&chunk(VISITOR, "u3", "what are your ", &interim));
        captions.push(&done(chunk(
            VISITOR,
            "u3",
            "hours?",
            &[(SEGMENT_ID, "SG_u"), (TRANSCRIPTION_FINAL, "1")],
        )));
        let lines = captions.lines();
        assert_eq!(lines.len(), 1, "one segment is one line");
        assert_eq!(lines[0].text, "what are your hours?");
        assert!(lines[0].is_final);
    }

    #[test]
    fn a_visitor_stream_without_the_attribute_is_final_with_its_trailer() {
        let mut captions = captions();
        captions.push(&done(chunk(VISITOR, "u1", "hi", &[])));
        assert!(captions.lines()[0].is_final);
    }

    #[test]
    fn lenient_booleans() {
        for yes in [
            "true", "TRUE", " True\n", "1", "yes", "YES", "\"true\"", " \"1\" ",
        ] {
            assert!(truthy(yes), "{yes:?} is true");
        }
        for no in [
            "false",
            "FALSE",
            "0",
            "",
            "  ",
            "no",
            "nope",
            "2",
            "\"false\"",
            "t",
        ] {
            assert!(!truthy(no), "{no:?} is false");
        }
        let mut captions = captions();
        captions.push(&chunk(
            VISITOR,
            "u1",
            "x",
            &[(SEGMENT_ID, "a"), (TRANSCRIPTION_FINAL, "0")],
        ));
        captions.push(&chunk(
            VISITOR,
            "u2",
            "y",
            &[(SEGMENT_ID, "b"), (TRANSCRIPTION_FINAL, "")],
        ));
        assert!(captions.lines().iter().all(|line| !line.is_final));
    }

    #[test]
    fn lines_are_attributed_by_sender_even_before_the_agent_is_known() {
        let mut captions = Captions::default();
        captions.push(&chunk(AGENT, "s1", "Hi!", &[(SEGMENT_ID, "SG_1")]));
        captions.push(&chunk(VISITOR, "u1", "Hello", &[(SEGMENT_ID, "SG_2")]));
        // An unknown participant (a second tab, a supervisor) is never the agent.
        captions.push(&chunk("someone", "x1", "psst", &[]));
        captions.set_agent(AGENT);
        let roles: Vec<Role> = captions.lines().iter().map(|line| line.role).collect();
        assert_eq!(roles, [Role::Agent, Role::User, Role::User]);
    }

    #[test]
    fn finality_follows_the_sender_even_when_the_agent_is_named_late() {
        let mut captions = Captions::default();
        let said_false = [(SEGMENT_ID, "SG_1"), (TRANSCRIPTION_FINAL, "false")];
        captions.push(&done(chunk(AGENT, "s1", "Welcome.", &said_false)));
        assert!(
            !captions.lines()[0].is_final,
            "unknown senders are visitors, whose trailers end only an interim result"
        );
        captions.set_agent(AGENT);
        assert!(
            captions.lines()[0].is_final,
            "the agent's trailer ends its speech"
        );
    }

    #[test]
    fn same_segment_ids_from_different_senders_are_different_lines() {
        let mut captions = captions();
        captions.push(&chunk(AGENT, "s1", "a", &[(SEGMENT_ID, "SG_1")]));
        captions.push(&chunk(VISITOR, "u1", "b", &[(SEGMENT_ID, "SG_1")]));
        assert_eq!(captions.lines().len(), 2);
    }

    #[test]
    fn other_topics_are_ignored_and_chat_streams_are_lines() {
        let mut captions = captions();
        let mut rpc = chunk(AGENT, "r1", "{}", &[]);
        rpc.topic = "lk.rpc_request".into();
        assert!(!captions.push(&rpc));
        let mut chat = done(chunk(AGENT, "c1", "Typed reply", &[]));
        chat.topic = CHAT_TOPIC.into();
        assert!(captions.push(&chat));
        let lines = captions.lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].is_final && lines[0].role == Role::Agent);
    }

    #[test]
    fn typed_messages_are_final_visitor_lines_in_order() {
        let mut captions = captions();
        captions.push(&chunk(AGENT, "s1", "Hi!", &[(SEGMENT_ID, "SG_1")]));
        captions.push_local(1, "Opening hours?");
        captions.push_local(1, "Opening hours?");
        let lines = captions.lines();
        assert_eq!(lines.len(), 2, "the same local id is one line");
        assert_eq!(lines[1].key, LineKey::Local(1));
        assert_eq!(lines[1].role, Role::User);
        assert!(lines[1].is_final);
    }

    #[test]
    fn history_wins_and_live_lines_not_yet_stored_follow() {
        let mut captions = captions();
        captions.push(&done(chunk(
            AGENT,
            "s1",
            "Hi! How can I help?",
            &[(SEGMENT_ID, "SG_1")],
        )));
        captions.push(&done(chunk(
            VISITOR,
            "u1",
            "  opening   HOURS ",
            &[(SEGMENT_ID, "SG_2"), (TRANSCRIPTION_FINAL, "true")],
        )));
        captions.push(&chunk(AGENT, "s2", "We open at", &[(SEGMENT_ID, "SG_3")]));
        // The platform stores turns under its own ids, with its own punctuation.
        let history = vec![
            turn("item_1", Role::Agent, "Hi!  How can I help"),
            turn("item_2", Role::User, "Opening hours?"),
        ];
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                "history:Hi!  How can I help",
                "history:Opening hours?",
                "live:We open at",
            ]
        );
    }

    #[test]
    fn a_turn_spoken_as_several_segments_absorbs_them_all() {
        let mut captions = captions();
        let last = [(TRANSCRIPTION_FINAL, "true")];
        captions.push(&done(chunk(VISITOR, "u1", "I'd like to book", &last)));
        captions.push(&done(chunk(AGENT, "s1", "Mm-hm.", &[])));
        captions.push(&done(chunk(VISITOR, "u2", "a table for two.", &last)));
        captions.push(&done(chunk(VISITOR, "u3", "Tonight?", &last)));
        let history = vec![
            turn("t1", Role::User, "I'd like to book a table for two."),
            turn("t2", Role::Agent, "Mm-hm."),
        ];
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                "history:I'd like to book a table for two.",
                "history:Mm-hm.",
                "live:Tonight?",
            ]
        );
        // A run that does not make up the whole turn hides nothing.
        let history = vec![turn("t1", Role::User, "I'd like to book a table for four")];
        assert_eq!(
            captions.merged(&history).len(),
            5,
            "the turn and all four live lines"
        );
    }

    #[test]
    fn a_non_final_line_shows_unless_a_stored_turn_already_shows_its_words() {
        let mut captions = captions();
        captions.push(&chunk(AGENT, "s1", "Hello", &[(SEGMENT_ID, "SG_1")]));
        let history = vec![turn("item_1", Role::Agent, "Hello, and welcome")];
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:Hello, and welcome", "live:Hello"],
            "the newest turn is the one being said: its caption shows as it grows"
        );
        let history = vec![
            turn("item_1", Role::Agent, "Hello, and welcome"),
            turn("item_2", Role::User, "Hi"),
            turn("item_3", Role::Agent, "How can I help?"),
        ];
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                "history:Hello, and welcome",
                "history:Hi",
                "history:How can I help?"
            ],
            "a late joiner hears an older turn: the stored turn shows its words"
        );
        // The words go another way: the line shows, nothing is lost.
        captions.push(&chunk(AGENT, "s1", " there, Sam", &[(SEGMENT_ID, "SG_1")]));
        assert_eq!(captions.merged(&history).len(), 4);
        // The visitor's interim results are not the agent's: they show until final.
        let mut captions = self::captions();
        captions.push(&chunk(
            VISITOR,
            "u1",
            "Where",
            &[(TRANSCRIPTION_FINAL, "false")],
        ));
        let history = vec![turn("item_2", Role::User, "Where is my order?")];
        assert_eq!(captions.merged(&history).len(), 2);
    }

    #[test]
    fn a_match_needs_the_same_role() {
        let mut captions = captions();
        captions.push(&done(chunk(VISITOR, "u1", "Thanks", &[])));
        let history = vec![turn("item_1", Role::Agent, "Thanks")];
        assert_eq!(captions.merged(&history).len(), 2);
    }

    #[test]
    fn each_turn_absorbs_one_line_and_old_turns_none() {
        let mut captions = captions();
        let history_before = vec![turn("item_0", Role::User, "Yes")];
        captions.set_baseline(&history_before);
        captions.push(&done(chunk(VISITOR, "u1", "yes.", &[(SEGMENT_ID, "a")])));
        captions.push(&done(chunk(VISITOR, "u2", "Yes!", &[(SEGMENT_ID, "b")])));
        assert_eq!(
            texts(&captions.merged(&history_before)),
            ["history:Yes", "live:yes.", "live:Yes!"],
            "a turn from before the call hides nothing said in it"
        );
        let mut history = history_before.clone();
        history.push(turn("item_1", Role::User, "Yes"));
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:Yes", "history:Yes", "live:Yes!"]
        );
        history.push(turn("item_2", Role::User, "yes"));
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:Yes", "history:Yes", "history:yes"]
        );
    }

    #[test]
    fn the_unanswered_last_agent_turn_absorbs_its_repetition_to_a_late_joiner() {
        // A rejoin after a reload: the agent repeats what it said last, nobody having
        // answered it; the stored turn shows once.
        let mut captions = captions();
        let history = vec![
            turn("item_1", Role::Agent, "Hi! How can I help?"),
            turn("item_2", Role::User, "Where is my order?"),
            turn("item_3", Role::Agent, "It ships tomorrow."),
        ];
        captions.set_baseline(&history);
        // While it is being said, the repetition hides in the stored turn too.
        captions.push(&chunk(AGENT, "s9", "It ships", &[]));
        assert_eq!(captions.merged(&history).len(), 3);
        // Words that go another way are shown.
        captions.push(&chunk(AGENT, "s8", "Something else", &[]));
        assert_eq!(captions.merged(&history).len(), 4);
        captions.push(&done(chunk(AGENT, "s8", " entirely.", &[])));
        captions.push(&done(chunk(AGENT, "s9", " tomorrow.", &[])));
        captions.push(&done(chunk(AGENT, "s10", "Hi! How can I help?", &[])));
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                "history:Hi! How can I help?",
                "history:Where is my order?",
                "history:It ships tomorrow.",
                "live:Something else entirely.",
                "live:Hi! How can I help?"
            ],
            "only the open turn absorbs; an older one said again is new"
        );
        // Answered turns stay closed.
        let mut captions = self::captions();
        let answered = &history[..2];
        captions.set_baseline(answered);
        captions.push(&done(chunk(AGENT, "s11", "Hi! How can I help?", &[])));
        assert_eq!(captions.merged(answered).len(), 3);
    }

    #[test]
    fn an_agent_cut_off_mid_turn_shows_the_stored_turn_once() {
        let mut captions = captions();
        let greeting = "Hi! I'm Ava. How can I help you today?";
        // The visitor spoke over the greeting: its stream ended after two words.
        captions.push(&done(chunk(AGENT, "s1", "Hi! I'm", &[])));
        captions.push(&done(chunk(VISITOR, "u1", "Where is my order?", &[])));
        let history = vec![
            turn("item_1", Role::Agent, greeting),
            turn("item_2", Role::User, "Where is my order?"),
        ];
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                format!("history:{greeting}"),
                "history:Where is my order?".to_owned()
            ]
        );
        // Only at a word boundary, and only into the agent's turns.
        let mut captions = self::captions();
        captions.push(&done(chunk(AGENT, "s2", "His", &[])));
        captions.push(&done(chunk(VISITOR, "u2", "Hi!", &[])));
        assert_eq!(
            texts(&captions.merged(&history)),
            [
                format!("history:{greeting}"),
                "history:Where is my order?".to_owned(),
                "live:His".to_owned(),
                "live:Hi!".to_owned()
            ]
        );
        assert!(starts_with_words("hi! i'm ava", "hi"));
        assert!(!starts_with_words("history", "hi"));
        assert!(!starts_with_words("hi", ""));
    }

    #[test]
    fn typed_text_disappears_into_history() {
        let mut captions = captions();
        captions.push_local(1, "Do you ship to Austria?");
        assert_eq!(captions.merged(&[]).len(), 1);
        let history = vec![turn("t9", Role::User, "do you ship to austria")];
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:do you ship to austria"]
        );
    }

    #[test]
    fn the_echo_of_a_typed_message_is_the_typed_line() {
        // Found by e2e/voice.test.mjs: the agent publishes the typed text back as the
        // visitor's transcription; before and after history has it, it shows once.
        let mut captions = captions();
        captions.push_local(1, "Where is my order?");
        captions.push(&done(chunk(
            VISITOR,
            "s2",
            "Where is my order?",
            &[(SEGMENT_ID, "SG_2"), (TRANSCRIPTION_FINAL, "true")],
        )));
        assert_eq!(texts(&captions.merged(&[])), ["live:Where is my order?"]);
        let history = vec![turn("t9", Role::User, "Where is my order?")];
        assert_eq!(
            texts(&captions.merged(&history)),
            ["history:Where is my order?"]
        );
        // The same words said again later are a message of their own.
        captions.push(&done(chunk(
            VISITOR,
            "s3",
            "Where is my order?",
            &[(SEGMENT_ID, "SG_3"), (TRANSCRIPTION_FINAL, "true")],
        )));
        assert_eq!(captions.merged(&history).len(), 2);
    }

    #[test]
    fn blank_lines_are_not_shown() {
        let mut captions = captions();
        captions.push(&chunk(AGENT, "s1", "", &[(SEGMENT_ID, "SG_1")]));
        assert_eq!(captions.lines().len(), 1);
        assert!(captions.merged(&[]).is_empty());
    }

    #[test]
    fn normalisation_collapses_space_case_and_trailing_punctuation() {
        assert_eq!(normalise("  Hello,\n  WORLD?! "), "hello, world");
        assert_eq!(normalise("Wait…"), "wait");
        assert_eq!(normalise("مرحبا؟"), "مرحبا");
        assert_eq!(normalise("Grüße."), "grüße");
        assert_eq!(normalise("..."), "");
    }
}
