//! Drives one conversation: mint a token, start, then follow the conversation until it ends,
//! writing every step into the [`Session`] signal the panel renders.
//!
//! The live event stream (SSE) replaces the polling loop later; the session's `apply` stays.

use std::rc::Rc;

use leptos::prelude::*;

use crate::client::{Backend, ClientError};
use crate::session::{Session, WidgetError};

/// How the driver paces its reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Delay between reads while the conversation runs.
    pub poll_millis: u32,
    /// Consecutive network failures tolerated before the widget shows an error.
    pub max_network_failures: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            poll_millis: 1000,
            max_network_failures: 4,
        }
    }
}

/// Starts a conversation and follows it. Returns when the conversation is final, when an
/// error is shown, or when the widget was destroyed (its signal disposed).
pub async fn run(
    backend: Rc<dyn Backend>,
    agent_id: String,
    session: RwSignal<Session>,
    pacing: Pacing,
) {
    if session.try_update(Session::connecting).is_none() {
        return;
    }
    let grant = match backend.mint(&agent_id).await {
        Ok(grant) => grant,
        Err(error) => return fail(session, error.into()),
    };
    let agent_name = grant.agent.name.clone();
    if session
        .try_update(|s| s.agent_name = Some(agent_name))
        .is_none()
    {
        return;
    }
    let started = match backend.start(&grant.token).await {
        Ok(started) => started,
        Err(error) => return fail(session, error.into()),
    };
    let token = Token {
        value: started.token,
        expires_at: started.expires_at,
    };
    let id = started.conversation.id.clone();
    if session
        .try_update(|s| s.apply(&started.conversation))
        .is_none()
    {
        return;
    }
    follow(backend.as_ref(), token, &id, session, pacing).await;
}

/// Renew a token this long before it expires, so a read never races its expiry.
const RENEW_MARGIN_SECS: u64 = 60;

/// The token bound to the conversation, with its absolute expiry.
struct Token {
    value: String,
    expires_at: u64,
}

/// Reads the conversation until it is final. Network hiccups are retried with growing
/// delays; anything else is shown at once.
async fn follow(
    backend: &dyn Backend,
    mut token: Token,
    id: &str,
    session: RwSignal<Session>,
    pacing: Pacing,
) {
    let mut failures = 0;
    // Checked before waiting and again before reading: the widget may be destroyed, or the
    // conversation may end, while the driver sleeps.
    let wanted = || session.try_with_untracked(Session::wants_updates) == Some(true);
    while wanted() {
        let delay = pacing.poll_millis.saturating_mul(1 << failures.min(4));
        backend.wait(delay).await;
        if !wanted() {
            return;
        }
        if backend.now() + RENEW_MARGIN_SECS >= token.expires_at {
            match backend.renew(&token.value, id).await {
                Ok(grant) => {
                    token = Token {
                        value: grant.token,
                        expires_at: grant.expires_at,
                    }
                }
                Err(ClientError::Network) if failures + 1 < pacing.max_network_failures => {
                    failures += 1;
                    continue;
                }
                Err(error) => return fail(session, error.into()),
            }
        }
        match backend.conversation(&token.value, id).await {
            Ok(view) => {
                failures = 0;
                if session.try_update(|s| s.apply(&view)).is_none() {
                    return;
                }
                if view.status == speaknode_api::ConversationStatus::Failed {
                    return fail(session, WidgetError::conversation_failed());
                }
            }
            Err(ClientError::Network) if failures + 1 < pacing.max_network_failures => {
                failures += 1;
            }
            Err(error) => return fail(session, error.into()),
        }
    }
}

fn fail(session: RwSignal<Session>, error: WidgetError) {
    // A disposed signal means the widget was destroyed; there is nobody to tell.
    let _ = session.try_update(|s| s.fail(error));
}
