//! The sandbox's in-memory data, partitioned by space.
//!
//! Every look-up takes the caller's space first, so a resource of another space is not
//! there at all for the caller: the API's "404 as if it did not exist" follows from the
//! shape of the data rather than from a check each handler must remember.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use uuid::Uuid;

use crate::{
    config::AgentConfig,
    events::EventBus,
    model::{Agent, Conversation, Feedback, Timestamp},
};

/// A conversation's LiveKit room as the LiveKit stand-in sees it
/// ([`crate::AppState::livekit_room`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveKitRoom {
    /// The room's name, `web-<conversation id without dashes>`.
    pub name: String,
    pub conversation_id: Uuid,
    pub space_id: Uuid,
    pub agent_id: Uuid,
    /// The agent's display name, for its participant in the room.
    pub agent_title: String,
    /// The identity the conversation's join tokens name (`sub`), `visitor-<12 hex>`: the
    /// only participant besides the agent that may join. `None` for a phone call's room.
    pub visitor_identity: Option<String>,
    /// `"Pending"`, `"Dispatching"`, `"Active"` (the agent has joined), `"Completed"` or
    /// `"Failed"`.
    pub status: &'static str,
    /// Whether the conversation has ended (`Completed` or `Failed`): its room is gone.
    pub ended: bool,
}

#[derive(Clone, Default)]
pub(crate) struct Store {
    // A std lock is enough: it is never held across an await, and every critical section
    // is a map look-up or a small in-place update.
    spaces: Arc<RwLock<HashMap<Uuid, Space>>>,
    /// Every new or changed conversation is announced here, from inside the write lock, so
    /// that listeners see changes in the order they were made and none can be forgotten.
    events: EventBus,
}

#[derive(Default)]
struct Space {
    agents: HashMap<Uuid, Agent>,
    conversations: HashMap<Uuid, Conversation>,
    /// The latest feedback per conversation; a conversation has at most one.
    feedback: HashMap<Uuid, Feedback>,
}

impl Store {
    /// A store holding the configured agents, created at `now`.
    pub(crate) fn seeded(agents: &[AgentConfig], now: Timestamp) -> Self {
        // The platform keeps languages and locales as entities with ids; here each code gets
        // an id on first sight, so agents that share a language share its id.
        let mut ids: HashMap<(&str, &str), Uuid> = HashMap::new();
        let mut id_of = |kind, code| *ids.entry((kind, code)).or_insert_with(Uuid::new_v4);
        let mut spaces: HashMap<Uuid, Space> = HashMap::new();
        for agent in agents {
            let code = agent.language_locale_code.as_str();
            let language = code.split('-').next().unwrap_or(code);
            let agent = Agent {
                id: agent.id,
                title: agent.title.clone(),
                description: agent.description.clone(),
                space_id: agent.space_id,
                language_id: id_of("language", language),
                locale_id: id_of("locale", code),
                language_locale_code: agent.language_locale_code.clone(),
                created_at: now,
                updated_at: now,
                greeting: agent.greeting.clone(),
            };
            spaces
                .entry(agent.space_id)
                .or_default()
                .agents
                .insert(agent.id, agent);
        }
        Self {
            spaces: Arc::new(RwLock::new(spaces)),
            ..Self::default()
        }
    }

    pub(crate) fn events(&self) -> &EventBus {
        &self.events
    }

    // A panic while the lock is held cannot leave the maps half-updated (updates are single
    // assignments or closures that only set fields), so a poisoned lock is still usable.
    fn read<R>(&self, f: impl FnOnce(&HashMap<Uuid, Space>) -> R) -> R {
        f(&self.spaces.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<R>(&self, f: impl FnOnce(&mut HashMap<Uuid, Space>) -> R) -> R {
        f(&mut self.spaces.write().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn agent(&self, space: Uuid, id: Uuid) -> Option<Agent> {
        self.read(|spaces| spaces.get(&space)?.agents.get(&id).cloned())
    }

    /// The agents of `space`, by title.
    pub(crate) fn agents(&self, space: Uuid) -> Vec<Agent> {
        let mut agents: Vec<Agent> = self.read(|spaces| {
            spaces
                .get(&space)
                .map(|space| space.agents.values().cloned().collect())
                .unwrap_or_default()
        });
        agents.sort_by_key(|agent| (agent.title.to_lowercase(), agent.id));
        agents
    }

    /// Runs `f` on the conversations of `space`, in no particular order, under the read
    /// lock: a list can filter and sort references and clone only the page it shows.
    pub(crate) fn with_conversations<R>(
        &self,
        space: Uuid,
        f: impl FnOnce(Vec<&Conversation>) -> R,
    ) -> R {
        self.read(|spaces| {
            f(spaces
                .get(&space)
                .map(|space| space.conversations.values().collect())
                .unwrap_or_default())
        })
    }

    /// The space a conversation belongs to, for callers that know only its id (the
    /// sandbox's admin routes, the voice channel).
    pub(crate) fn space_of(&self, conversation: Uuid) -> Option<Uuid> {
        self.read(|spaces| {
            spaces
                .iter()
                .find(|(_, space)| space.conversations.contains_key(&conversation))
                .map(|(id, _)| *id)
        })
    }

    /// The conversation whose LiveKit room is named `room`, in any space.
    pub(crate) fn livekit_room(&self, room: &str) -> Option<LiveKitRoom> {
        self.read(|spaces| {
            spaces.iter().find_map(|(space_id, space)| {
                let conversation = space
                    .conversations
                    .values()
                    .find(|c| c.live_kit_room_name.as_deref() == Some(room))?;
                Some(LiveKitRoom {
                    name: room.to_owned(),
                    conversation_id: conversation.id,
                    space_id: *space_id,
                    agent_id: conversation.agent_id,
                    agent_title: conversation.agent_title.clone(),
                    visitor_identity: conversation.visitor_identity.clone(),
                    status: conversation.status.name(),
                    ended: conversation.status.is_final(),
                })
            })
        })
    }

    pub(crate) fn conversation(&self, space: Uuid, id: Uuid) -> Option<Conversation> {
        self.read(|spaces| spaces.get(&space)?.conversations.get(&id).cloned())
    }

    /// The space a conversation belongs to, for callers that know only its id.
    pub(crate) fn space_of_conversation(&self, id: Uuid) -> Option<Uuid> {
        self.read(|spaces| {
            spaces
                .iter()
                .find(|(_, space)| space.conversations.contains_key(&id))
                .map(|(space, _)| *space)
        })
    }

    pub(crate) fn insert_conversation(&self, space: Uuid, conversation: Conversation) {
        self.write(|spaces| {
            self.events.conversation_changed(space, None, &conversation);
            let space = spaces.entry(space).or_default();
            space.conversations.insert(conversation.id, conversation);
        });
    }

    /// Records `feedback` on a conversation of `space`, replacing any earlier one; `false`
    /// if there is no such conversation.
    pub(crate) fn set_feedback(&self, space: Uuid, id: Uuid, feedback: Feedback) -> bool {
        self.write(|spaces| {
            let Some(space) = spaces.get_mut(&space) else {
                return false;
            };
            if !space.conversations.contains_key(&id) {
                return false;
            }
            space.feedback.insert(id, feedback);
            true
        })
    }

    /// The feedback recorded on a conversation, whatever its space.
    pub(crate) fn feedback(&self, id: Uuid) -> Option<Feedback> {
        self.read(|spaces| {
            spaces
                .values()
                .find_map(|space| space.feedback.get(&id).cloned())
        })
    }

    /// Applies `change` to a conversation in place; `None` if there is no such conversation.
    /// A change that leaves the conversation as it was is not announced.
    pub(crate) fn update_conversation<R>(
        &self,
        space: Uuid,
        id: Uuid,
        change: impl FnOnce(&mut Conversation) -> R,
    ) -> Option<R> {
        self.write(|spaces| {
            let conversation = spaces.get_mut(&space)?.conversations.get_mut(&id)?;
            let before = conversation.clone();
            let result = change(conversation);
            if *conversation != before {
                self.events
                    .conversation_changed(space, Some(before.status), conversation);
            }
            Some(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(space_id: Uuid, code: &str) -> AgentConfig {
        AgentConfig {
            id: Uuid::new_v4(),
            title: "A".into(),
            space_id,
            greeting: "Hi".into(),
            description: String::new(),
            language_locale_code: code.into(),
        }
    }

    #[test]
    fn agents_are_found_only_in_their_space() {
        let (space, other) = (Uuid::new_v4(), Uuid::new_v4());
        let config = agent(space, "en-US");
        let store = Store::seeded(std::slice::from_ref(&config), Timestamp::now());
        assert!(store.agent(space, config.id).is_some());
        assert!(store.agent(other, config.id).is_none());
    }

    #[test]
    fn agents_share_the_ids_of_their_language_and_locale() {
        let space = Uuid::new_v4();
        let configs = [
            agent(space, "en-US"),
            agent(space, "en-GB"),
            agent(space, "en-US"),
        ];
        let store = Store::seeded(&configs, Timestamp::now());
        let [us, gb, us_too] = configs.map(|c| store.agent(space, c.id).expect("seeded"));
        assert_eq!(us.language_id, gb.language_id);
        assert_ne!(us.locale_id, gb.locale_id);
        assert_eq!(us.locale_id, us_too.locale_id);
        assert_ne!(us.language_id, us.locale_id);
    }

    #[test]
    fn changes_are_announced_in_order_and_non_changes_not_at_all() {
        use crate::{events::Event, model::Status};
        let store = Store::default();
        let mut events = store.events().subscribe();
        let (space, conversation) = (Uuid::new_v4(), crate::events::tests::conversation());
        let id = conversation.id;
        store.insert_conversation(space, conversation);
        assert_eq!(store.update_conversation(space, id, |_| ()), Some(()));
        let dispatch = |c: &mut Conversation| c.status = Status::Dispatching;
        assert_eq!(store.update_conversation(space, id, dispatch), Some(()));
        assert_eq!(
            store.update_conversation(Uuid::new_v4(), id, dispatch),
            None
        );
        assert_eq!(store.space_of_conversation(id), Some(space));

        let mut seen = Vec::new();
        while let Ok(Event::Conversation {
            space: of,
            before,
            conversation,
        }) = events.try_recv()
        {
            assert_eq!(of, space);
            seen.push((before, conversation.status));
        }
        let pending = Some(Status::Pending);
        assert_eq!(
            seen,
            [(None, Status::Pending), (pending, Status::Dispatching)]
        );
    }
}
