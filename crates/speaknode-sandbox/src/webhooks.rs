//! Webhooks: `SessionStarted` and `ConversationComplete` POSTed to every subscription of the
//! conversation's space, signed with HMAC-SHA256 and retried with exponential backoff.
//!
//! One task reads the event bus and starts a task per delivery, so a slow or failing
//! receiver holds up neither the scripted agent nor the other receivers.

use std::{collections::BTreeMap, fmt::Write as _, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{body::Bytes, http::header};
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    config::{Config, WebhookConfig, WebhookDelivery, WebhookEvent},
    events::{Event, EventBus},
    model::{Conversation, Status, Timestamp, Turn},
};

/// The lowercase hex HMAC-SHA256 of the raw body, keyed with the subscription's secret.
pub(crate) const SIGNATURE_HEADER: &str = "x-speaknode-signature";
/// The event type, so a receiver can route before it parses the body.
const EVENT_HEADER: &str = "x-speaknode-event";
/// The same for every attempt of one delivery, so a receiver can drop repeats.
const DELIVERY_HEADER: &str = "x-speaknode-delivery";

/// The webhook dispatcher and its deliveries.
pub(crate) struct Webhooks {
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Webhooks {
    /// Starts delivering the events of `bus` to the configured subscriptions until
    /// `shutdown` is cancelled. Without subscriptions no task runs, so only a configuration
    /// with webhooks needs a Tokio runtime here.
    pub(crate) fn start(
        config: &Config,
        bus: &EventBus,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let tasks = TaskTracker::new();
        if !config.webhooks.is_empty() {
            let runtime = tokio::runtime::Handle::try_current()
                .context("webhooks are delivered by tasks, which need a Tokio runtime")?;
            // A sandbox posts straight to the receiver: a proxy from the environment must
            // not see local receivers, and a redirect is the receiver's mistake to surface.
            let client = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("speaknode-sandbox/", env!("CARGO_PKG_VERSION")))
                .build()
                .context("cannot build the webhook HTTP client")?;
            let dispatcher = Dispatcher {
                subscriptions: config.webhooks.iter().cloned().map(Arc::new).collect(),
                policy: config.webhook_delivery,
                client,
                tasks: tasks.clone(),
                shutdown: shutdown.clone(),
            };
            tasks.spawn_on(dispatcher.run(bus.subscribe()), &runtime);
        }
        Ok(Self { tasks, shutdown })
    }

    /// Stops every delivery, also those waiting to retry, and waits until they have ended.
    pub(crate) async fn shut_down(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

struct Dispatcher {
    subscriptions: Vec<Arc<WebhookConfig>>,
    policy: WebhookDelivery,
    client: reqwest::Client,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Dispatcher {
    async fn run(self, mut events: Receiver<Event>) {
        loop {
            let event = tokio::select! {
                () = self.shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(Event::Conversation {
                    space,
                    before,
                    conversation,
                }) => {
                    if let Some(kind) = trigger(before, conversation.status) {
                        self.deliver(space, kind, &conversation);
                    }
                }
                Ok(Event::Usage { .. }) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "webhook events lost: the event bus overflowed");
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Starts a delivery of `kind` about `conversation` to each subscription that wants it.
    fn deliver(&self, space: Uuid, kind: WebhookEvent, conversation: &Conversation) {
        let mut body = None;
        for (index, subscription) in self.subscriptions.iter().enumerate() {
            if subscription.space_id != space || !subscription.events.contains(&kind) {
                continue;
            }
            // Serialised once for all subscriptions, and only if one wants it.
            let body = match &mut body {
                Some(body) => Bytes::clone(body),
                None => match serde_json::to_vec(&Payload::new(kind, conversation)) {
                    Ok(bytes) => body.insert(Bytes::from(bytes)).clone(),
                    Err(error) => {
                        tracing::error!(%error, "cannot serialise a webhook payload");
                        return;
                    }
                },
            };
            let delivery = Delivery {
                index,
                kind,
                id: Uuid::new_v4(),
                signature: sign(&subscription.secret, &body),
                body,
                subscription: Arc::clone(subscription),
                policy: self.policy,
                client: self.client.clone(),
                shutdown: self.shutdown.clone(),
            };
            self.tasks.spawn(delivery.run());
        }
    }
}

/// The webhook a status change fires: `SessionStarted` when the agent has joined,
/// `ConversationComplete` when the conversation has ended either way.
fn trigger(before: Option<Status>, after: Status) -> Option<WebhookEvent> {
    if after == Status::Active && before != Some(Status::Active) {
        Some(WebhookEvent::SessionStarted)
    } else if after.is_final() && !before.is_some_and(Status::is_final) {
        Some(WebhookEvent::ConversationComplete)
    } else {
        None
    }
}

/// One event on its way to one subscription.
struct Delivery {
    /// The subscription's position in the configuration: logs name it, never its URL,
    /// which may carry credentials.
    index: usize,
    kind: WebhookEvent,
    id: Uuid,
    signature: String,
    body: Bytes,
    subscription: Arc<WebhookConfig>,
    policy: WebhookDelivery,
    client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Delivery {
    async fn run(self) {
        let event = kind_name(self.kind);
        for attempt in 1..=self.policy.max_attempts {
            if let Some(delay) = backoff(&self.policy, attempt) {
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            let request = self
                .client
                .post(&self.subscription.url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &self.signature)
                .header(EVENT_HEADER, event)
                .header(DELIVERY_HEADER, self.id.to_string())
                .timeout(Duration::from_millis(self.policy.attempt_timeout_ms))
                .body(self.body.clone())
                .send();
            let response = tokio::select! {
                () = self.shutdown.cancelled() => return,
                response = request => response,
            };
            match response {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(webhook = self.index, event, attempt, "webhook delivered");
                    return;
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    tracing::warn!(
                        webhook = self.index,
                        event,
                        attempt,
                        status,
                        "webhook refused"
                    );
                }
                Err(error) => {
                    let error = error.without_url();
                    tracing::warn!(webhook = self.index, event, attempt, %error, "webhook failed");
                }
            }
        }
        tracing::warn!(webhook = self.index, event, "webhook delivery abandoned");
    }
}

fn kind_name(kind: WebhookEvent) -> &'static str {
    match kind {
        WebhookEvent::SessionStarted => "SessionStarted",
        WebhookEvent::ConversationComplete => "ConversationComplete",
    }
}

/// The wait before `attempt` (counted from 1): none before the first, then the base delay,
/// doubling with every further attempt.
fn backoff(policy: &WebhookDelivery, attempt: u32) -> Option<Duration> {
    let retry = attempt.checked_sub(2)?;
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    Some(Duration::from_millis(policy.retry_base_delay_ms).saturating_mul(factor))
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`, as the platform's docs verify it.
fn sign(secret: &SecretString, body: &[u8]) -> String {
    // HMAC takes keys of any length (long ones are hashed first), so `new_from_slice` has
    // no error for this `Mac`; an empty signature would only make the receiver refuse it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// `{"event": …, "data": …}`.
#[derive(Serialize)]
struct Payload<'a> {
    event: WebhookEvent,
    data: SessionData<'a>,
}

/// The documented `data` members. The sandbox records no audio and runs no campaigns, so
/// those members are `null`; the agent's joining is what starts a session here, so
/// `start_time` and `agent_joined_at` are both the conversation's `started_at`.
#[derive(Serialize)]
struct SessionData<'a> {
    session_id: Uuid,
    agent_id: Uuid,
    agent_name: &'a str,
    audio_url: Option<String>,
    audio_url_expires_at: Option<Timestamp>,
    created_at: Timestamp,
    start_time: Option<Timestamp>,
    agent_joined_at: Option<Timestamp>,
    duration_seconds: f64,
    history: &'a [Turn],
    telecom_provider: Option<&'a str>,
    from_number: Option<&'a str>,
    to_number: Option<&'a str>,
    campaign_item_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    campaign_name: Option<String>,
    url_parameters: &'a BTreeMap<String, String>,
    test_run_id: Option<Uuid>,
    test_id: Option<Uuid>,
    test_status: Option<&'a str>,
    test_eval_result: Option<&'a Value>,
}

impl<'a> Payload<'a> {
    fn new(event: WebhookEvent, conversation: &'a Conversation) -> Self {
        let data = SessionData {
            session_id: conversation.id,
            agent_id: conversation.agent_id,
            agent_name: &conversation.agent_title,
            audio_url: None,
            audio_url_expires_at: None,
            created_at: conversation.created_at,
            start_time: conversation.started_at,
            agent_joined_at: conversation.started_at,
            duration_seconds: conversation.duration_seconds,
            history: &conversation.history,
            telecom_provider: conversation.telecom_provider.as_deref(),
            from_number: conversation.from_number.as_deref(),
            to_number: conversation.to_number.as_deref(),
            campaign_item_id: None,
            campaign_id: None,
            campaign_name: None,
            url_parameters: &conversation.url_parameters,
            test_run_id: conversation.test_run_id,
            test_id: conversation.test_id,
            test_status: conversation.test_status.as_deref(),
            test_eval_result: conversation.test_eval_result.as_ref(),
        };
        Self { event, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::tests::conversation;

    #[test]
    fn signatures_are_lowercase_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        let signature = sign(&SecretString::from("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_wait_twice_as_long_each_time() {
        let policy = WebhookDelivery {
            max_attempts: 5,
            retry_base_delay_ms: 1_000,
            attempt_timeout_ms: 1,
        };
        let waits: Vec<_> = (1..=5).map(|attempt| backoff(&policy, attempt)).collect();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(waits, [None, secs(1), secs(2), secs(4), secs(8)]);
        assert!(backoff(&policy, u32::MAX).is_some());
    }

    #[test]
    fn only_joining_and_ending_fire_webhooks() {
        use Status::*;
        use WebhookEvent::*;
        assert_eq!(trigger(None, Pending), None);
        assert_eq!(trigger(Some(Pending), Dispatching), None);
        assert_eq!(trigger(Some(Dispatching), Active), Some(SessionStarted));
        assert_eq!(trigger(Some(Active), Active), None);
        assert_eq!(trigger(Some(Active), Completed), Some(ConversationComplete));
        assert_eq!(
            trigger(Some(Dispatching), Failed),
            Some(ConversationComplete)
        );
        assert_eq!(trigger(Some(Completed), Completed), None);
    }

    #[test]
    fn event_headers_name_events_as_payloads_do() -> serde_json::Result<()> {
        for kind in [
            WebhookEvent::SessionStarted,
            WebhookEvent::ConversationComplete,
        ] {
            assert_eq!(serde_json::to_value(kind)?, kind_name(kind));
        }
        Ok(())
    }

    #[test]
    fn payloads_have_the_fixture_members() -> serde_json::Result<()> {
        let payload = serde_json::to_value(Payload::new(
            WebhookEvent::ConversationComplete,
            &conversation(),
        ))?;
        let fixture: Value = serde_json::from_str(include_str!(
            "../contract/fixtures/webhook-conversation-complete.json"
        ))?;
        let keys = |value: &Value| {
            let mut keys: Vec<String> = value
                .as_object()
                .map(|object| object.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        };
        assert_eq!(keys(&payload), keys(&fixture));
        assert_eq!(keys(&payload["data"]), keys(&fixture["data"]));
        assert_eq!(payload["event"], "ConversationComplete");
        Ok(())
    }
}
