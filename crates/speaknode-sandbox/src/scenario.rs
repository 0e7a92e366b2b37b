//! Scenarios of the scripted agent: what it says, how it answers each user turn, and how
//! the call ends, read from TOML and decided by pure functions.
//!
//! A scenario is data ([`Scenario`]); [`Scenario::respond`] turns a user's utterance into a
//! [`Response`] (what to say, then whether to go on, hang up or fail). The agent's runner
//! (`agent.rs`) applies responses on its timers; nothing here waits or touches the store.

use std::{collections::HashSet, time::Duration};

use anyhow::{Context as _, bail, ensure};
use serde::Deserialize;
use uuid::Uuid;

use crate::model::speaking_time;

/// What the scripted agent of one agent does. Every member but `agent_id` has a default,
/// and an agent without a scenario runs [`Scenario::greeting_only`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The agent that runs this scenario.
    pub agent_id: Uuid,
    /// The first thing the agent says; `None` keeps the agent's configured greeting.
    #[serde(default)]
    pub greeting: Option<String>,
    /// Delay between a user turn and the agent's reply being appended (default 300 ms).
    #[serde(default = "default_think_ms")]
    pub think_ms: u64,
    /// How long each reply takes to say; `None` means about 15 characters a second.
    #[serde(default)]
    pub speak_ms: Option<u64>,
    /// Replies keyed by pattern, tried in order; the first match wins.
    #[serde(default)]
    pub replies: Vec<Reply>,
    /// What the agent says when no pattern matches; `None` keeps it silent.
    #[serde(default)]
    pub default_reply: Option<String>,
    /// Hang up after replying to this many user turns (`Completed`).
    #[serde(default)]
    pub end_after_turns: Option<u32>,
    /// Fail the conversation at a given point (`Failed` with an `error_message`).
    #[serde(default)]
    pub fail: Option<Failure>,
    /// What the visitor's spoken utterances in a LiveKit call "were", in order: the
    /// sandbox detects speech from the microphone's level but recognises no words. Past
    /// the end of the list (and with none) speech is heard as noise: no transcript, no turn.
    #[serde(default)]
    pub hears: Vec<String>,
}

/// One keyed reply of a [`Scenario`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// A case-insensitive substring of the user's utterance, or, if it contains `*` or
    /// `?`, a case-insensitive glob that must match the whole utterance.
    pub pattern: String,
    /// What the agent says; may be absent only when `error_message` is set.
    #[serde(default)]
    pub reply: Option<String>,
    /// Hang up once the reply has been said (`Completed`).
    #[serde(default)]
    pub end_call: bool,
    /// Fail instead of replying (`Failed` with this `error_message`).
    #[serde(default)]
    pub error_message: Option<String>,
}

/// When and how a [`Scenario`] fails regardless of what the user says.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// `0` fails while the agent joins (the conversation never becomes `Active`); `n` fails
    /// instead of answering the n-th user turn.
    #[serde(default)]
    pub after_turns: u32,
    pub error_message: String,
}

fn default_think_ms() -> u64 {
    300
}

/// The shape of a `scenario_file`: the same `[[scenarios]]` tables as the main config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    scenarios: Vec<Scenario>,
}

/// Reads the `[[scenarios]]` of a scenario file's text.
pub(crate) fn from_toml(text: &str) -> anyhow::Result<Vec<Scenario>> {
    let file: ScenarioFile = toml::from_str(text).context("invalid scenario file")?;
    Ok(file.scenarios)
}

/// What the agent does about one user turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// What it says, after thinking; `None` when it stays silent.
    pub say: Option<String>,
    pub then: Outcome,
}

/// How the conversation goes on after a [`Response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Continue,
    /// Hang up once the reply has been said.
    Complete,
    /// Fail, after thinking, with this error message; nothing is said.
    Fail(String),
}

impl Scenario {
    /// The scenario of an agent that greets and then only listens: the sandbox's behaviour
    /// before scenarios existed, and still the default.
    pub fn greeting_only(agent_id: Uuid) -> Self {
        Self {
            agent_id,
            greeting: None,
            think_ms: default_think_ms(),
            speak_ms: None,
            replies: Vec::new(),
            default_reply: None,
            end_after_turns: None,
            fail: None,
            hears: Vec::new(),
        }
    }

    /// The error message the agent fails with while joining, if it does.
    pub(crate) fn fails_on_join(&self) -> Option<&str> {
        self.fail
            .as_ref()
            .filter(|fail| fail.after_turns == 0)
            .map(|fail| fail.error_message.as_str())
    }

    /// How the agent answers `utterance`, the `turn`-th user turn (counting from 1).
    ///
    /// A scheduled failure comes first, then the first matching reply, then the default
    /// reply; `end_after_turns` ends the call after whatever was said.
    pub(crate) fn respond(&self, utterance: &str, turn: u32) -> Response {
        if let Some(fail) = self.fail.as_ref().filter(|fail| fail.after_turns == turn) {
            return Response {
                say: None,
                then: Outcome::Fail(fail.error_message.clone()),
            };
        }
        let keyed = self
            .replies
            .iter()
            .find(|reply| matches(&reply.pattern, utterance));
        let (say, end_call) = match keyed {
            Some(Reply {
                error_message: Some(message),
                ..
            }) => {
                return Response {
                    say: None,
                    then: Outcome::Fail(message.clone()),
                };
            }
            Some(reply) => (reply.reply.clone(), reply.end_call),
            None => (self.default_reply.clone(), false),
        };
        let then = if end_call || self.end_after_turns.is_some_and(|n| n <= turn) {
            Outcome::Complete
        } else {
            Outcome::Continue
        };
        Response { say, then }
    }

    /// How long the agent thinks before it replies.
    pub(crate) fn think(&self) -> Duration {
        Duration::from_millis(self.think_ms)
    }

    /// How long saying `text` takes.
    pub(crate) fn speak(&self, text: &str) -> Duration {
        self.speak_ms
            .map_or_else(|| speaking_time(text), Duration::from_millis)
    }

    /// Rejects scenarios that could only fail later or be ambiguous.
    fn validate(&self) -> anyhow::Result<()> {
        let agent = self.agent_id;
        for (i, reply) in self.replies.iter().enumerate() {
            ensure!(
                !reply.pattern.is_empty(),
                "scenario of agent {agent}: reply {i} has an empty pattern"
            );
            match (&reply.reply, &reply.error_message) {
                (Some(_), Some(_)) => {
                    bail!(
                        "scenario of agent {agent}: reply {i} has both a reply and an error_message"
                    )
                }
                (None, None) => {
                    bail!("scenario of agent {agent}: reply {i} needs a reply or an error_message")
                }
                (None, Some(_)) if reply.end_call => {
                    bail!("scenario of agent {agent}: reply {i} fails, so it cannot end_call")
                }
                _ => {}
            }
        }
        ensure!(
            self.end_after_turns != Some(0),
            "scenario of agent {agent}: end_after_turns must be at least 1"
        );
        if let Some(i) = self.hears.iter().position(|heard| heard.trim().is_empty()) {
            bail!("scenario of agent {agent}: hears[{i}] is empty, and a turn needs words");
        }
        if let Some(fail) = &self.fail {
            ensure!(
                !fail.error_message.trim().is_empty(),
                "scenario of agent {agent}: fail.error_message is empty"
            );
        }
        Ok(())
    }
}

/// Checks every scenario, that each names a configured agent, and that no agent has two.
pub(crate) fn validate(scenarios: &[Scenario], agents: &HashSet<Uuid>) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    for scenario in scenarios {
        let agent = scenario.agent_id;
        ensure!(
            agents.contains(&agent),
            "a scenario names agent {agent}, which is not configured"
        );
        ensure!(seen.insert(agent), "agent {agent} has two scenarios");
        scenario.validate()?;
    }
    Ok(())
}

/// Whether `pattern` matches `text`, ignoring case: a glob (`*` any run of characters, `?`
/// one character) against the whole text if it has a wildcard, otherwise a substring.
pub(crate) fn matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let text = text.to_lowercase();
    if pattern.contains(['*', '?']) {
        let pattern: Vec<char> = pattern.chars().collect();
        let text: Vec<char> = text.chars().collect();
        glob(&pattern, &text)
    } else {
        text.contains(&pattern)
    }
}

/// Glob matching in linear space: on a mismatch, the last `*` takes one more character.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has consumed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern.iter().skip(p).all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(pattern: &str, text: &str) -> Reply {
        Reply {
            pattern: pattern.into(),
            reply: Some(text.into()),
            end_call: false,
            error_message: None,
        }
    }

    fn scenario(replies: Vec<Reply>) -> Scenario {
        Scenario {
            replies,
            default_reply: Some("Sorry?".into()),
            ..Scenario::greeting_only(Uuid::new_v4())
        }
    }

    fn says(text: &str) -> Response {
        Response {
            say: Some(text.into()),
            then: Outcome::Continue,
        }
    }

    #[test]
    fn substrings_match_anywhere_ignoring_case() {
        assert!(matches("order", "Where is my ORDER?"));
        assert!(matches("ÄRGER", "So ein Ärger!"));
        assert!(!matches("refund", "Where is my order?"));
    }

    #[test]
    fn globs_match_the_whole_utterance() {
        assert!(matches("*order*", "Where is my order?"));
        assert!(matches("where*", "Where is my order?"));
        assert!(!matches("order*", "Where is my order?"));
        assert!(matches("h?llo", "Hello"));
        assert!(!matches("h?llo", "Hllo"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("**x", "x"));
        assert!(matches("*ab", "aab"));
    }

    #[test]
    fn the_first_matching_reply_wins_else_the_default() {
        let scenario = scenario(vec![
            reply("order", "It has shipped."),
            reply("order status", "Never said."),
        ]);
        assert_eq!(
            scenario.respond("What's my order status?", 1),
            says("It has shipped.")
        );
        assert_eq!(scenario.respond("Hello", 1), says("Sorry?"));
        let silent = Scenario::greeting_only(Uuid::new_v4());
        assert_eq!(
            silent.respond("Hello", 1),
            Response {
                say: None,
                then: Outcome::Continue
            }
        );
    }

    #[test]
    fn a_reply_can_end_the_call_or_fail_it() {
        let mut bye = reply("bye", "Goodbye!");
        bye.end_call = true;
        let crash = Reply {
            pattern: "crash".into(),
            reply: None,
            end_call: false,
            error_message: Some("LLM provider timed out".into()),
        };
        let scenario = scenario(vec![bye, crash]);
        assert_eq!(
            scenario.respond("Bye now", 1),
            Response {
                say: Some("Goodbye!".into()),
                then: Outcome::Complete
            }
        );
        assert_eq!(
            scenario.respond("crash please", 1),
            Response {
                say: None,
                then: Outcome::Fail("LLM provider timed out".into())
            }
        );
    }

    #[test]
    fn turns_count_towards_the_end_and_a_scheduled_failure() {
        let ending = Scenario {
            end_after_turns: Some(2),
            ..scenario(Vec::new())
        };
        assert_eq!(ending.respond("one", 1).then, Outcome::Continue);
        assert_eq!(
            ending.respond("two", 2),
            Response {
                say: Some("Sorry?".into()),
                then: Outcome::Complete
            }
        );
        let failing = Scenario {
            fail: Some(Failure {
                after_turns: 2,
                error_message: "boom".into(),
            }),
            ..scenario(vec![reply("two", "Never said.")])
        };
        assert_eq!(failing.fails_on_join(), None);
        assert_eq!(failing.respond("one", 1), says("Sorry?"));
        assert_eq!(failing.respond("two", 2).then, Outcome::Fail("boom".into()));
        let at_join = Scenario {
            fail: Some(Failure {
                after_turns: 0,
                error_message: "no worker".into(),
            }),
            ..scenario(Vec::new())
        };
        assert_eq!(at_join.fails_on_join(), Some("no worker"));
    }

    #[test]
    fn think_and_speak_times() {
        let mut scenario = scenario(Vec::new());
        scenario.think_ms = 40;
        assert_eq!(scenario.think(), Duration::from_millis(40));
        assert_eq!(scenario.speak("fifteen chars!!"), Duration::from_secs(1));
        scenario.speak_ms = Some(250);
        assert_eq!(scenario.speak("anything"), Duration::from_millis(250));
    }

    #[test]
    fn reads_a_scenario_file() -> anyhow::Result<()> {
        let scenarios = from_toml(
            r#"
            [[scenarios]]
            agent_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
            default_reply = "Sorry?"
            end_after_turns = 3
            hears = ["Where is my order?", "Bye!"]

            [[scenarios.replies]]
            pattern = "*order*"
            reply = "It has shipped."
            end_call = true
            "#,
        )?;
        assert_eq!(scenarios.len(), 1);
        let scenario = &scenarios[0];
        assert_eq!((scenario.think_ms, scenario.speak_ms), (300, None));
        assert!(scenario.replies[0].end_call);
        assert_eq!(scenario.hears, ["Where is my order?", "Bye!"]);
        let agents = HashSet::from([scenario.agent_id]);
        validate(&scenarios, &agents)?;
        let mute = Scenario {
            hears: vec!["Hello".into(), " ".into()],
            ..scenario.clone()
        };
        let error = validate(&[mute], &agents).expect_err("a blank utterance");
        assert!(error.to_string().contains("hears[1] is empty"), "{error}");
        assert!(validate(&scenarios, &HashSet::new()).is_err());
        let twice = [scenario.clone(), scenario.clone()];
        assert!(validate(&twice, &agents).is_err());
        Ok(())
    }

    #[test]
    fn rejects_ambiguous_replies() {
        let agent = Uuid::new_v4();
        let agents = HashSet::from([agent]);
        let with = |reply: Reply| {
            let scenario = Scenario {
                replies: vec![reply],
                ..Scenario::greeting_only(agent)
            };
            validate(&[scenario], &agents)
        };
        assert!(with(reply("hi", "Hello")).is_ok());
        assert!(with(reply("", "Hello")).is_err());
        let neither = Reply {
            reply: None,
            ..reply("hi", "")
        };
        assert!(with(neither).is_err());
        let both = Reply {
            error_message: Some("x".into()),
            ..reply("hi", "Hello")
        };
        assert!(with(both).is_err());
    }
}
