//! The scripted agent: moves each dispatched conversation through its lifecycle on a timer,
//! and answers user turns as the agent's [`Scenario`] says.
//!
//! The lifecycle is a state machine in two pure functions, [`next`] (what happens next, and
//! after how long) and [`apply`] (what that step changes); replies are [`Response`]s that
//! the scenario decides and [`say`], [`complete`] and [`fail`] apply. [`Runner`] drives one
//! task per conversation and one per pending reply, and stops them all on shutdown.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    config::Timing,
    model::{
        Agent, Conversation, Role, Status, Timestamp, Turn, TurnMetrics, random_hex, room_name,
    },
    scenario::{Outcome, Response, Scenario},
    store::Store,
};

/// One step of the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `Pending` → `Dispatching`: the platform has created the LiveKit room.
    Dispatch,
    /// `Dispatching` → `Active`: the agent has joined, received its instructions and greets.
    Join,
    /// `Dispatching` → `Failed`: the scenario fails the agent's job before it joins.
    FailToJoin,
}

/// The step the script takes next in `conversation`, and how long it waits before it;
/// `None` when the script has nothing more to do by itself.
pub(crate) fn next(
    conversation: &Conversation,
    timing: &Timing,
    scenario: &Scenario,
) -> Option<(Duration, Step)> {
    let join = Duration::from_millis(timing.join_ms);
    match conversation.status {
        Status::Pending => Some((Duration::from_millis(timing.dispatch_ms), Step::Dispatch)),
        Status::Dispatching if scenario.fails_on_join().is_some() => Some((join, Step::FailToJoin)),
        Status::Dispatching => Some((join, Step::Join)),
        Status::Active | Status::Completed | Status::Failed => None,
    }
}

/// Applies `step` to `conversation` as of `now`.
pub(crate) fn apply(
    step: Step,
    conversation: &mut Conversation,
    agent: &Agent,
    scenario: &Scenario,
    now: Timestamp,
) {
    match step {
        Step::Dispatch => {
            conversation.status = Status::Dispatching;
            // A web conversation's room is named at creation; a call's when it is placed.
            let room = room_name(conversation.channel, conversation.id);
            conversation.live_kit_room_name.get_or_insert(room);
            conversation.live_kit_dispatch_id = Some(format!("AD_{}", random_hex(12)));
        }
        Step::Join => {
            conversation.status = Status::Active;
            conversation.started_at = Some(now);
            conversation.live_kit_job_id = Some(format!("AJ_{}", random_hex(12)));
            // Recording starts with the agent, as the platform's room egress does.
            conversation.live_kit_egress_id = Some(format!("EG_{}", random_hex(12)));
            conversation
                .history
                .push(Turn::message(Role::System, instructions(agent), now));
            let greeting = scenario.greeting.as_deref().unwrap_or(&agent.greeting);
            say(conversation, greeting, scenario.speak(greeting), now);
        }
        Step::FailToJoin => {
            let message = scenario
                .fails_on_join()
                .unwrap_or("The agent failed to join.");
            fail(conversation, message, now);
        }
    }
    conversation.updated_at = now;
}

/// Appends the agent's utterance `text`, spoken from `now` for `length`.
pub(crate) fn say(conversation: &mut Conversation, text: &str, length: Duration, now: Timestamp) {
    let mut turn = Turn::message(Role::Assistant, text.to_owned(), now);
    turn.metrics = Some(TurnMetrics::spoken_for(now, length));
    conversation.history.push(turn);
    conversation.updated_at = now;
}

/// Ends the conversation normally: the agent or the caller hung up.
pub(crate) fn complete(conversation: &mut Conversation, now: Timestamp) {
    conversation.status = Status::Completed;
    conversation.ended_at = Some(now);
    conversation.updated_at = now;
}

/// Ends the conversation with an error, as the platform records a crashed agent job.
pub(crate) fn fail(conversation: &mut Conversation, message: &str, now: Timestamp) {
    conversation.status = Status::Failed;
    conversation.error_message = Some(message.to_owned());
    conversation.ended_at = Some(now);
    conversation.updated_at = now;
}

/// Why a user turn was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UserTurnError {
    #[error("there is no such conversation")]
    UnknownConversation,
    /// Only an `Active` conversation has an agent listening; the status is the one it has.
    #[error("the conversation is {0}, not Active")]
    NotActive(&'static str),
    #[error("the text is empty")]
    EmptyText,
}

/// The system prompt the agent starts with, as the transcript's first turn shows it.
fn instructions(agent: &Agent) -> String {
    match agent.description.trim() {
        "" => format!("You are {}.", agent.title),
        description => format!("You are {}. {description}", agent.title),
    }
}

/// Runs the script of every dispatched conversation until shutdown.
#[derive(Clone)]
pub(crate) struct Runner {
    store: Store,
    timing: Timing,
    /// The scenario of each agent that has one; the others greet only.
    scenarios: Arc<HashMap<Uuid, Arc<Scenario>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Runner {
    pub(crate) fn new(store: Store, timing: Timing, scenarios: Vec<Scenario>) -> Self {
        let scenarios = scenarios
            .into_iter()
            .map(|scenario| (scenario.agent_id, Arc::new(scenario)))
            .collect();
        Self {
            store,
            timing,
            scenarios: Arc::new(scenarios),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
    }

    fn scenario(&self, agent: Uuid) -> Arc<Scenario> {
        self.scenarios
            .get(&agent)
            .cloned()
            .unwrap_or_else(|| Arc::new(Scenario::greeting_only(agent)))
    }

    /// What the `number`th utterance (from 0) the agent of `agent` hears was, if its
    /// scenario says.
    pub(crate) fn heard(&self, agent: Uuid, number: usize) -> Option<String> {
        self.scenario(agent).hears.get(number).cloned()
    }

    /// Appends what the user said to an `Active` conversation and has the agent answer it
    /// after its think time. Returns the user's turn.
    pub(crate) fn user_says(
        &self,
        space: Uuid,
        id: Uuid,
        text: &str,
    ) -> Result<Turn, UserTurnError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UserTurnError::EmptyText);
        }
        let (turn, agent, number) = self
            .store
            .update_conversation(space, id, |conversation| {
                if conversation.status != Status::Active {
                    return Err(UserTurnError::NotActive(conversation.status.name()));
                }
                let now = Timestamp::now();
                let mut turn = Turn::message(Role::User, text.to_owned(), now);
                // The text arrives typed, not transcribed: nothing about it is uncertain.
                turn.transcript_confidence = Some(1.0);
                conversation.history.push(turn.clone());
                conversation.updated_at = now;
                let users = conversation.history.iter().filter(|t| t.role == Role::User);
                let number = u32::try_from(users.count()).unwrap_or(u32::MAX);
                Ok((turn, conversation.agent_id, number))
            })
            .ok_or(UserTurnError::UnknownConversation)??;
        let scenario = self.scenario(agent);
        let response = scenario.respond(text, number);
        let runner = self.clone();
        self.tasks
            .spawn(async move { runner.reply(space, id, &scenario, response).await });
        Ok(turn)
    }

    /// Waits for `delay` unless shutdown comes first; `false` if it did.
    async fn wait(&self, delay: Duration) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// Applies `response` after the scenario's think time, and hangs up once the reply has
    /// been said if it ends the call. A conversation that has ended meanwhile is left alone.
    async fn reply(self, space: Uuid, id: Uuid, scenario: &Scenario, response: Response) {
        if !self.wait(scenario.think()).await {
            return;
        }
        let speaking = response
            .say
            .as_deref()
            .map_or(Duration::ZERO, |text| scenario.speak(text));
        let applied = self.store.update_conversation(space, id, |conversation| {
            if conversation.status != Status::Active {
                return false;
            }
            let now = Timestamp::now();
            if let Some(text) = &response.say {
                say(conversation, text, speaking, now);
                if let Some(metrics) = conversation
                    .history
                    .last_mut()
                    .and_then(|turn| turn.metrics.as_mut())
                {
                    // From the end of the user's turn to the agent's first word.
                    metrics.e2e_latency = Some(scenario.think().as_secs_f64());
                }
            }
            if let Outcome::Fail(message) = &response.then {
                fail(conversation, message, now);
            }
            tracing::debug!(%id, status = ?conversation.status, "scripted agent replied");
            true
        });
        if applied == Some(true) && response.then == Outcome::Complete && self.wait(speaking).await
        {
            self.store.update_conversation(space, id, |conversation| {
                if conversation.status == Status::Active {
                    complete(conversation, Timestamp::now());
                    tracing::debug!(%id, "scripted agent hung up");
                }
            });
        }
    }

    /// Starts the script of a conversation that is already in the store.
    pub(crate) fn start(&self, space: Uuid, conversation: Uuid, agent: Agent) {
        let runner = self.clone();
        self.tasks
            .spawn(async move { runner.run(space, conversation, agent).await });
    }

    /// Stops every script and waits until their tasks have ended.
    pub(crate) async fn shut_down(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn run(self, space: Uuid, id: Uuid, agent: Agent) {
        let scenario = self.scenario(agent.id);
        loop {
            let Some(conversation) = self.store.conversation(space, id) else {
                return;
            };
            let Some((wait, step)) = next(&conversation, &self.timing, &scenario) else {
                return;
            };
            if !self.wait(wait).await {
                return;
            }
            // Something else may have moved the conversation on while the script waited
            // (a hang-up); the step applies only if it is still the next one.
            self.store.update_conversation(space, id, |conversation| {
                if next(conversation, &self.timing, &scenario).map(|(_, s)| s) == Some(step) {
                    apply(step, conversation, &agent, &scenario, Timestamp::now());
                    tracing::debug!(%id, status = ?conversation.status, "scripted agent step");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, Kind};

    fn agent() -> Agent {
        let now = Timestamp::now();
        Agent {
            id: Uuid::new_v4(),
            title: "Ava".into(),
            description: "Front desk agent".into(),
            space_id: Uuid::new_v4(),
            language_id: Uuid::new_v4(),
            locale_id: Uuid::new_v4(),
            language_locale_code: "en-US".into(),
            created_at: now,
            updated_at: now,
            greeting: "Hi! I'm Ava.".into(),
        }
    }

    fn pending(agent: &Agent, channel: Channel) -> Conversation {
        let called_by = ("sub".to_owned(), "name".to_owned());
        Conversation::pending(agent, channel, called_by, Timestamp::now())
    }

    #[test]
    fn script_goes_pending_dispatching_active_then_rests() {
        let timing = Timing {
            dispatch_ms: 1,
            join_ms: 2,
        };
        let agent = agent();
        let scenario = Scenario::greeting_only(agent.id);
        let mut conversation = pending(&agent, Channel::Web);

        let (wait, step) = next(&conversation, &timing, &scenario).expect("a first step");
        assert_eq!((wait, step), (Duration::from_millis(1), Step::Dispatch));
        apply(step, &mut conversation, &agent, &scenario, Timestamp::now());
        assert_eq!(conversation.status, Status::Dispatching);
        let room = format!("web-{}", conversation.id.simple());
        assert_eq!(
            conversation.live_kit_room_name.as_deref(),
            Some(room.as_str())
        );
        assert!(conversation.started_at.is_none() && conversation.history.is_empty());

        let (wait, step) = next(&conversation, &timing, &scenario).expect("a second step");
        assert_eq!((wait, step), (Duration::from_millis(2), Step::Join));
        let joined = Timestamp::now();
        apply(step, &mut conversation, &agent, &scenario, joined);
        assert_eq!(conversation.status, Status::Active);
        assert_eq!(conversation.started_at, Some(joined));
        assert_eq!(conversation.updated_at, joined);
        let roles: Vec<_> = conversation
            .history
            .iter()
            .map(|t| (t.role, t.kind))
            .collect();
        assert_eq!(
            roles,
            [
                (Role::System, Kind::Message),
                (Role::Assistant, Kind::Message)
            ]
        );
        assert_eq!(
            conversation.history[1].content.as_deref(),
            Some("Hi! I'm Ava.")
        );
        assert!(conversation.history[1].id.starts_with("item_"));
        assert_eq!(conversation.history[1].id.len(), "item_".len() + 12);

        assert_eq!(next(&conversation, &timing, &scenario), None);
    }

    #[test]
    fn a_scenario_greets_its_own_way_or_fails_to_join() {
        let agent = agent();
        let timing = Timing::default();
        let greeting = Scenario {
            greeting: Some("Welcome back!".into()),
            speak_ms: Some(500),
            ..Scenario::greeting_only(agent.id)
        };
        let mut conversation = pending(&agent, Channel::Web);
        apply(
            Step::Dispatch,
            &mut conversation,
            &agent,
            &greeting,
            Timestamp::now(),
        );
        apply(
            Step::Join,
            &mut conversation,
            &agent,
            &greeting,
            Timestamp::now(),
        );
        let said = &conversation.history[1];
        assert_eq!(said.content.as_deref(), Some("Welcome back!"));
        let metrics = said.metrics.as_ref().expect("metrics");
        let spoken = metrics.stopped_speaking_at.unwrap_or_default()
            - metrics.started_speaking_at.unwrap_or_default();
        assert!((spoken - 0.5).abs() < 1e-6, "{spoken}");

        let failing = Scenario {
            fail: Some(crate::scenario::Failure {
                after_turns: 0,
                error_message: "No worker available".into(),
            }),
            ..Scenario::greeting_only(agent.id)
        };
        let mut conversation = pending(&agent, Channel::Web);
        apply(
            Step::Dispatch,
            &mut conversation,
            &agent,
            &failing,
            Timestamp::now(),
        );
        let (_, step) = next(&conversation, &timing, &failing).expect("a step");
        assert_eq!(step, Step::FailToJoin);
        let failed_at = Timestamp::now();
        apply(step, &mut conversation, &agent, &failing, failed_at);
        assert_eq!(conversation.status, Status::Failed);
        assert_eq!(
            conversation.error_message.as_deref(),
            Some("No worker available")
        );
        assert_eq!(conversation.ended_at, Some(failed_at));
        assert!(conversation.started_at.is_none() && conversation.history.is_empty());
        assert_eq!(next(&conversation, &timing, &failing), None);
    }

    #[test]
    fn ending_sets_the_end_and_fixes_the_duration() {
        let agent = agent();
        let scenario = Scenario::greeting_only(agent.id);
        let mut conversation = pending(&agent, Channel::Web);
        apply(
            Step::Dispatch,
            &mut conversation,
            &agent,
            &scenario,
            Timestamp::now(),
        );
        apply(
            Step::Join,
            &mut conversation,
            &agent,
            &scenario,
            Timestamp::now(),
        );
        let ended = Timestamp::now();
        complete(&mut conversation, ended);
        assert_eq!(conversation.status, Status::Completed);
        assert_eq!(conversation.ended_at, Some(ended));
        let started = conversation.started_at.expect("started");
        let seen = conversation.seen_at(Timestamp::now());
        assert_eq!(seen.duration_seconds, ended.seconds_since(started));
    }

    #[test]
    fn phone_rooms_are_named_for_calls() {
        let agent = agent();
        let scenario = Scenario::greeting_only(agent.id);
        let mut conversation = pending(&agent, Channel::Phone);
        apply(
            Step::Dispatch,
            &mut conversation,
            &agent,
            &scenario,
            Timestamp::now(),
        );
        let room = conversation.live_kit_room_name.unwrap_or_default();
        assert!(room.starts_with("call-"), "{room}");
    }

    #[test]
    fn duration_counts_from_the_start() {
        let agent = agent();
        let mut conversation = pending(&agent, Channel::Web);
        assert_eq!(
            conversation
                .clone()
                .seen_at(Timestamp::now())
                .duration_seconds,
            0.0
        );
        let scenario = Scenario::greeting_only(agent.id);
        apply(
            Step::Dispatch,
            &mut conversation,
            &agent,
            &scenario,
            Timestamp::now(),
        );
        apply(
            Step::Join,
            &mut conversation,
            &agent,
            &scenario,
            Timestamp::now(),
        );
        assert!(conversation.seen_at(Timestamp::now()).duration_seconds >= 0.0);
    }
}
