//! The scripted agent: moves each dispatched conversation through its lifecycle on a timer.
//!
//! The script is a state machine in two pure functions, [`next`] (what happens next, and
//! after how long) and [`apply`] (what that step changes), so that later steps (replies,
//! failures, completion) are new [`Step`]s rather than new tasks. [`Runner`] drives one
//! task per conversation and stops them all on shutdown.

use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    config::Timing,
    model::{Agent, Channel, Conversation, Role, Status, Timestamp, Turn, TurnMetrics, random_hex},
    store::Store,
};

/// One step of the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `Pending` → `Dispatching`: the platform has created the LiveKit room.
    Dispatch,
    /// `Dispatching` → `Active`: the agent has joined, received its instructions and greets.
    Join,
}

/// The step the script takes next in `conversation`, and how long it waits before it;
/// `None` when the script has nothing more to do by itself.
pub(crate) fn next(conversation: &Conversation, timing: &Timing) -> Option<(Duration, Step)> {
    match conversation.status {
        Status::Pending => Some((Duration::from_millis(timing.dispatch_ms), Step::Dispatch)),
        Status::Dispatching => Some((Duration::from_millis(timing.join_ms), Step::Join)),
        Status::Active | Status::Completed | Status::Failed => None,
    }
}

/// Applies `step` to `conversation` as of `now`.
pub(crate) fn apply(step: Step, conversation: &mut Conversation, agent: &Agent, now: Timestamp) {
    match step {
        Step::Dispatch => {
            conversation.status = Status::Dispatching;
            let prefix = match conversation.channel {
                Channel::Web => "web",
                Channel::Phone => "call",
            };
            conversation.live_kit_room_name =
                Some(format!("{prefix}-{}", conversation.id.simple()));
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
            let mut greeting = Turn::message(Role::Assistant, agent.greeting.clone(), now);
            greeting.metrics = Some(TurnMetrics::spoken(&agent.greeting, now));
            conversation.history.push(greeting);
        }
    }
    conversation.updated_at = now;
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
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Runner {
    pub(crate) fn new(store: Store, timing: Timing) -> Self {
        Self {
            store,
            timing,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
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
        loop {
            let Some(conversation) = self.store.conversation(space, id) else {
                return;
            };
            let Some((wait, step)) = next(&conversation, &self.timing) else {
                return;
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            // Something else may have moved the conversation on while the script waited
            // (later: a hang-up); the step applies only if it is still the next one.
            self.store.update_conversation(space, id, |conversation| {
                if next(conversation, &self.timing).map(|(_, s)| s) == Some(step) {
                    apply(step, conversation, &agent, Timestamp::now());
                    tracing::debug!(%id, status = ?conversation.status, "scripted agent step");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Kind;

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
        let now = Timestamp::now();
        Conversation {
            id: Uuid::new_v4(),
            agent_id: agent.id,
            agent_title: agent.title.clone(),
            channel,
            called_by_id: "sub".into(),
            called_by_name: "name".into(),
            language_id: agent.language_id,
            locale_id: agent.locale_id,
            language_locale_code: agent.language_locale_code.clone(),
            status: Status::Pending,
            created_at: now,
            updated_at: now,
            started_at: None,
            ended_at: None,
            live_kit_room_name: None,
            live_kit_egress_id: None,
            live_kit_dispatch_id: None,
            live_kit_job_id: None,
            live_kit_url: None,
            live_kit_participant_token: None,
            transcription_path: None,
            has_audio: false,
            duration_seconds: 0.0,
            error_message: None,
            telecom_provider: None,
            from_number: None,
            to_number: None,
            test_run_id: None,
            test_id: None,
            test_status: None,
            test_eval_result: None,
            dynamic_variables: BTreeMap::new(),
            url_parameters: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    #[test]
    fn script_goes_pending_dispatching_active_then_rests() {
        let timing = Timing {
            dispatch_ms: 1,
            join_ms: 2,
        };
        let agent = agent();
        let mut conversation = pending(&agent, Channel::Web);

        let (wait, step) = next(&conversation, &timing).expect("a first step");
        assert_eq!((wait, step), (Duration::from_millis(1), Step::Dispatch));
        apply(step, &mut conversation, &agent, Timestamp::now());
        assert_eq!(conversation.status, Status::Dispatching);
        let room = format!("web-{}", conversation.id.simple());
        assert_eq!(
            conversation.live_kit_room_name.as_deref(),
            Some(room.as_str())
        );
        assert!(conversation.started_at.is_none() && conversation.history.is_empty());

        let (wait, step) = next(&conversation, &timing).expect("a second step");
        assert_eq!((wait, step), (Duration::from_millis(2), Step::Join));
        let joined = Timestamp::now();
        apply(step, &mut conversation, &agent, joined);
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

        assert_eq!(next(&conversation, &timing), None);
    }

    #[test]
    fn phone_rooms_are_named_for_calls() {
        let agent = agent();
        let mut conversation = pending(&agent, Channel::Phone);
        apply(Step::Dispatch, &mut conversation, &agent, Timestamp::now());
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
        apply(Step::Dispatch, &mut conversation, &agent, Timestamp::now());
        apply(Step::Join, &mut conversation, &agent, Timestamp::now());
        assert!(conversation.seen_at(Timestamp::now()).duration_seconds >= 0.0);
    }
}
