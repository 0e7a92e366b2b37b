//! What lets a conversation survive a reload or a move to another page of the same site:
//! the conversation's id and its short-lived scoped token in `sessionStorage` (one tab, one
//! origin), with the agent's display name and whether the panel was open; never anything of
//! the platform's. `expiresAt` is on the browser's own clock. The loader reads the same key to decide that
//! the app must load at once (`loader/speaknode-widget.js`).

use serde::{Deserialize, Serialize};

/// The stored record, `{"conversationId", "token", "expiresAt", "open"}` in JSON, with
/// `"agentName"` and `"call"` when they apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub conversation_id: String,
    /// The scoped token bound to the conversation.
    pub token: String,
    /// When the token stops being accepted, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// Whether the panel was open, so it reopens where the visitor left it.
    pub open: bool,
    /// The agent's display name, for the header until the conversation is read again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// The conversation had a call, so the next page joins it again (through a renewal,
    /// which carries a fresh join grant). Absent for conversations without one, so they
    /// resume exactly as before calls existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub call: bool,
}

/// The storage key for an agent's conversation; the loader builds the same one.
pub fn key(agent_id: &str) -> String {
    format!("speaknode-widget:{agent_id}")
}

/// `sessionStorage`, when the page allows it: sandboxed frames and some privacy settings
/// throw on access, and then nothing is resumed rather than anything breaking.
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// The stored conversation for `agent_id`, if its token is still good at `now`.
pub fn load(agent_id: &str, now: u64) -> Option<Saved> {
    let text = storage()?.get_item(&key(agent_id)).ok().flatten()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    if saved.expires_at > now {
        Some(saved)
    } else {
        clear(agent_id);
        None
    }
}

pub fn save(agent_id: &str, saved: &Saved) {
    if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(saved)) {
        // A full or refused storage only costs the resume, never the conversation.
        let _ = storage.set_item(&key(agent_id), &text);
    }
}

pub fn clear(agent_id: &str) {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(&key(agent_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_has_the_field_names_the_loader_reads() {
        let saved = Saved {
            conversation_id: "c1".into(),
            token: "t".into(),
            expires_at: 7,
            open: true,
            agent_name: None,
            call: false,
        };
        let json = serde_json::to_value(&saved).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"conversationId": "c1", "token": "t", "expiresAt": 7, "open": true})
        );
        assert_eq!(key("agent-1"), "speaknode-widget:agent-1");
        let with_call = Saved {
            call: true,
            ..saved
        };
        let json = serde_json::to_value(&with_call).expect("serialises");
        assert_eq!(json["call"], true);
        let back: Saved = serde_json::from_value(json).expect("parses");
        assert!(back.call);
    }
}
