//! The launcher's unread count: agent turns that arrived while the panel was closed.

use speaknode_api::{Role, Turn};

/// Which agent turns the visitor has had in front of them.
///
/// A turn counts as seen once it was in the transcript while the panel was open. The turns
/// already there when the widget first reads a conversation (a conversation resumed after a
/// reload) count as seen too: the visitor had them on the page before, and a badge for old
/// news would be noise. Turns are tracked by id, so a turn whose text grows while it is
/// spoken is counted once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unread {
    conversation: Option<String>,
    /// Ids of the agent turns seen. A list: transcripts are short, and the widget's wasm
    /// carries no hasher for it.
    seen: Vec<String>,
}

impl Unread {
    /// Takes in the current conversation and whether the panel is open; returns how many
    /// agent turns are unread.
    pub fn observe(&mut self, conversation: Option<&str>, turns: &[Turn], open: bool) -> usize {
        if self.conversation.as_deref() != conversation {
            self.conversation = conversation.map(str::to_owned);
            self.seen.clear();
            self.mark_seen(turns);
        }
        if open {
            self.mark_seen(turns);
            return 0;
        }
        turns
            .iter()
            .filter(|turn| speaks_for_agent(turn) && !self.seen.contains(&turn.id))
            .count()
    }

    fn mark_seen(&mut self, turns: &[Turn]) {
        for turn in turns {
            if speaks_for_agent(turn) && !self.seen.contains(&turn.id) {
                self.seen.push(turn.id.clone());
            }
        }
    }
}

/// The badge's text: the count, capped so it fits the launcher's corner.
pub fn badge_text(count: usize) -> String {
    if count > 99 {
        "99+".to_owned()
    } else {
        count.to_string()
    }
}

/// Turns of unknown roles are shown as the agent's, so they count as the agent's.
fn speaks_for_agent(turn: &Turn) -> bool {
    turn.role != Role::User
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str, role: Role) -> Turn {
        Turn {
            id: id.into(),
            role,
            text: id.into(),
            at: None,
            interrupted: false,
        }
    }

    #[test]
    fn agent_turns_while_closed_are_unread_until_opened() {
        let mut unread = Unread::default();
        let greeting = turn("1", Role::Agent);
        assert_eq!(unread.observe(Some("c"), &[], false), 0);
        assert_eq!(
            unread.observe(Some("c"), std::slice::from_ref(&greeting), false),
            1
        );
        let more = [
            greeting.clone(),
            turn("2", Role::User),
            turn("3", Role::Agent),
            turn("4", Role::Unknown),
        ];
        assert_eq!(
            unread.observe(Some("c"), &more, false),
            3,
            "the visitor's own turns never count"
        );
        assert_eq!(unread.observe(Some("c"), &more, true), 0, "opening clears");
        assert_eq!(
            unread.observe(Some("c"), &more, false),
            0,
            "closing again does not bring them back"
        );
    }

    #[test]
    fn turns_seen_before_closing_do_not_count() {
        let mut unread = Unread::default();
        let first = [turn("1", Role::Agent)];
        assert_eq!(unread.observe(Some("c"), &[], true), 0);
        assert_eq!(unread.observe(Some("c"), &first, true), 0);
        let later = [turn("1", Role::Agent), turn("2", Role::Agent)];
        assert_eq!(unread.observe(Some("c"), &later, false), 1);
    }

    #[test]
    fn the_badge_stays_small() {
        assert_eq!(badge_text(1), "1");
        assert_eq!(badge_text(99), "99");
        assert_eq!(badge_text(100), "99+");
    }

    #[test]
    fn a_growing_turn_counts_once() {
        let mut unread = Unread::default();
        unread.observe(Some("c"), &[], false);
        let mut spoken = turn("1", Role::Agent);
        assert_eq!(unread.observe(Some("c"), &[spoken.clone()], false), 1);
        spoken.text.push_str(" and more");
        assert_eq!(unread.observe(Some("c"), &[spoken], false), 1);
    }

    #[test]
    fn a_resumed_conversations_history_is_not_news() {
        let mut unread = Unread::default();
        assert_eq!(unread.observe(None, &[], false), 0);
        let history = [turn("1", Role::Agent), turn("2", Role::Agent)];
        assert_eq!(unread.observe(Some("c"), &history, false), 0);
        let next = [
            history[0].clone(),
            history[1].clone(),
            turn("3", Role::Agent),
        ];
        assert_eq!(unread.observe(Some("c"), &next, false), 1);
    }

    #[test]
    fn a_new_conversation_starts_from_nothing() {
        let mut unread = Unread::default();
        unread.observe(Some("c"), &[], false);
        assert_eq!(
            unread.observe(Some("c"), &[turn("1", Role::Agent)], false),
            1
        );
        assert_eq!(unread.observe(Some("d"), &[], false), 0);
        assert_eq!(
            unread.observe(Some("d"), &[turn("9", Role::Agent)], false),
            1
        );
    }
}
