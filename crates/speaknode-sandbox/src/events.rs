//! The event bus: every change to a conversation and every change of a space's usage, as an
//! event that names its space.
//!
//! The store publishes while it still holds its write lock, so every subscriber sees the
//! changes in the order they were made. Subscribers are the hub's connections, each keeping
//! the events of its own space, and the webhook dispatcher.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::{Conversation, Status, Timestamp};

/// The metric the sandbox meters: minutes of conversation, as the platform bills voice.
pub(crate) const VOICE_MINUTES: &str = "voice_minutes";

/// Events a subscriber may fall behind by before it misses some. A hub connection that does
/// is closed, so that its client reconnects and reads the current state over REST.
const CAPACITY: usize = 1024;

#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// A conversation was created (`before` is `None`) or changed from status `before`.
    /// The snapshot is the conversation as a reader would have seen it at that moment.
    Conversation {
        space: Uuid,
        before: Option<Status>,
        conversation: Arc<Conversation>,
    },
    /// A metered quantity of the space changed; `value` is its new total.
    Usage {
        space: Uuid,
        metric_code: &'static str,
        value: f64,
    },
}

impl Event {
    pub(crate) fn space(&self) -> Uuid {
        match self {
            Event::Conversation { space, .. } | Event::Usage { space, .. } => *space,
        }
    }
}

/// Where changes are announced. Cheap to clone; clones share the channel and the meters.
#[derive(Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<Event>,
    /// Voice minutes used so far, per space.
    meters: Arc<Mutex<HashMap<Uuid, f64>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
            meters: Arc::default(),
        }
    }
}

impl EventBus {
    /// Every event published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Announces that `conversation` of `space` was created or changed from status `before`.
    /// A conversation that has just ended adds its minutes to the space's meter, which is
    /// then announced too.
    pub(crate) fn conversation_changed(
        &self,
        space: Uuid,
        before: Option<Status>,
        conversation: &Conversation,
    ) {
        let snapshot = conversation.clone().seen_at(Timestamp::now());
        let ended = snapshot.status.is_final() && !before.is_some_and(Status::is_final);
        let minutes = snapshot.duration_seconds / 60.0;
        self.publish(Event::Conversation {
            space,
            before,
            conversation: Arc::new(snapshot),
        });
        if ended && minutes > 0.0 {
            let value = {
                // Only ever taken under the store's lock, and never the other way round.
                let mut meters = self.meters.lock().unwrap_or_else(PoisonError::into_inner);
                let total = meters.entry(space).or_default();
                *total += minutes;
                *total
            };
            self.publish(Event::Usage {
                space,
                metric_code: VOICE_MINUTES,
                value,
            });
        }
    }

    fn publish(&self, event: Event) {
        // Sending fails only when nobody listens, which is nothing to report.
        let _ = self.sender.send(event);
    }
}

#[cfg(test)]
pub(crate) mod tests {

    use super::*;
    use crate::model::{Agent, Channel, Outcome};

    /// A web conversation, `Pending`.
    pub(crate) fn conversation() -> Conversation {
        let now = Timestamp::now();
        let agent = Agent {
            id: Uuid::new_v4(),
            title: "Ava".into(),
            description: String::new(),
            space_id: Uuid::new_v4(),
            language_id: Uuid::new_v4(),
            locale_id: Uuid::new_v4(),
            language_locale_code: "en-US".into(),
            created_at: now,
            updated_at: now,
            greeting: String::new(),
        };
        let called_by = ("sub".to_owned(), "name".to_owned());
        Conversation::pending(&agent, Channel::Web, called_by, now)
    }

    #[test]
    fn an_ended_conversation_adds_its_minutes_to_its_space_once() {
        let bus = EventBus::default();
        let mut events = bus.subscribe();
        let space = Uuid::new_v4();
        let mut call = conversation();
        let started = Timestamp::now();
        call.status = Status::Active;
        call.started_at = Some(started);
        let mut ended = call.clone();
        assert!(ended.end(Outcome::Completed, started.plus_seconds(90.0)));

        bus.conversation_changed(space, Some(Status::Active), &ended);
        bus.conversation_changed(space, Some(Status::Completed), &ended);
        let mut other = call.clone();
        assert!(other.end(Outcome::Failed("gone".into()), started.plus_seconds(30.0)));
        bus.conversation_changed(space, Some(Status::Active), &other);

        let mut usage = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Usage { value, .. } = event {
                usage.push(value);
            }
        }
        assert_eq!(usage, [1.5, 2.0]);
    }

    #[test]
    fn a_conversation_that_never_started_uses_nothing() {
        let bus = EventBus::default();
        let mut events = bus.subscribe();
        let mut call = conversation();
        assert!(call.end(Outcome::Completed, Timestamp::now()));
        bus.conversation_changed(Uuid::new_v4(), Some(Status::Pending), &call);
        assert!(matches!(events.try_recv(), Ok(Event::Conversation { .. })));
        assert!(events.try_recv().is_err());
    }
}
