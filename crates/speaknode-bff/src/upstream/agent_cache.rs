//! A short-lived cache of agent lookups (agent id → display name), so that minting a
//! widget token does not cost a platform call per visitor.
//!
//! Every page view of every customer site mints a token, and the mint only needs the
//! agent's title for the widget's header: asking the platform each time would put the
//! platform's latency (and its rate limit on the BFF) into every page load. A title may
//! therefore be up to [`AGENT_TTL`] old, and an agent deleted on the platform can still be
//! minted for that long; starting a conversation asks the platform anyway, so such a token
//! gets no further. Failures are not cached: the next visitor asks again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a looked-up title is reused.
pub(crate) const AGENT_TTL: Duration = Duration::from_secs(60);
/// Only configured agents are looked up, so this bound is a safety net, not a policy.
const MAX_AGENTS: usize = 1024;

/// Agent id → (when it was looked up, its title).
pub(crate) struct AgentCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, String)>>,
}

impl AgentCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The title of `id` if it was looked up less than the TTL ago.
    pub(crate) fn title(&self, id: &str) -> Option<String> {
        self.title_at(id, Instant::now())
    }

    /// Remembers a successful lookup.
    pub(crate) fn insert(&self, id: &str, title: &str) {
        self.insert_at(id, title, Instant::now());
    }

    fn title_at(&self, id: &str, now: Instant) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, title) = entries.get(id)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| title.clone())
    }

    fn insert_at(&self, id: &str, title: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_AGENTS && !entries.contains_key(id) {
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= MAX_AGENTS {
                return;
            }
        }
        entries.insert(id.to_owned(), (now, title.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_reused_within_the_ttl_and_looked_up_again_after_it() {
        let cache = AgentCache::new(AGENT_TTL);
        let start = Instant::now();
        assert_eq!(cache.title_at("a", start), None, "nothing cached yet");
        cache.insert_at("a", "Ava", start);
        let within = start + AGENT_TTL - Duration::from_millis(1);
        assert_eq!(cache.title_at("a", within).as_deref(), Some("Ava"));
        assert_eq!(cache.title_at("b", within), None, "other agents are not");
        assert_eq!(cache.title_at("a", start + AGENT_TTL), None, "expired");
        // A fresh lookup replaces the title and restarts the clock.
        cache.insert_at("a", "Ava 2", start + AGENT_TTL);
        let later = start + AGENT_TTL + Duration::from_secs(30);
        assert_eq!(cache.title_at("a", later).as_deref(), Some("Ava 2"));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_and_never_grows_past_its_bound() {
        let cache = AgentCache::new(AGENT_TTL);
        let start = Instant::now();
        for i in 0..MAX_AGENTS {
            cache.insert_at(&format!("agent-{i}"), "t", start);
        }
        cache.insert_at("late", "t", start + Duration::from_secs(1));
        assert_eq!(cache.title_at("late", start), None, "full of fresh entries");
        let after = start + AGENT_TTL;
        cache.insert_at("late", "t", after);
        assert_eq!(cache.title_at("late", after).as_deref(), Some("t"));
        let entries = cache.entries.lock().expect("not poisoned");
        assert_eq!(entries.len(), 1, "the expired entries were dropped");
    }
}
