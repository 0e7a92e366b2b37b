//! Webhooks: signed deliveries to a receiver on 127.0.0.1, retries, and who gets what.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, Mac as _};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use speaknode_sandbox::{Config, Timing, WebhookConfig, WebhookDelivery, WebhookEvent};
use tokio::{net::TcpListener, sync::mpsc};
use uuid::Uuid;

use crate::support::{
    AVA, BFF, BORIS, OTHER_BFF, OTHER_SPACE, SPACE, Sandbox, assert_same_keys, config, eventually,
    fixture,
};

const SECRET: &str = "whsec_test_5f2b";
const DEADLINE: Duration = Duration::from_secs(10);

/// One request the receiver got, and what it answered.
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: StatusCode,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver on 127.0.0.1 that answers 500 to its first `failures` requests.
struct Receiver {
    url: String,
    requests: mpsc::UnboundedReceiver<Received>,
}

#[derive(Clone)]
struct ReceiverState {
    failures: usize,
    seen: Arc<AtomicUsize>,
    requests: mpsc::UnboundedSender<Received>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        async fn receive(
            State(state): State<ReceiverState>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let answered = if state.seen.fetch_add(1, Ordering::SeqCst) < state.failures {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::NO_CONTENT
            };
            let _ = state.requests.send(Received {
                headers,
                body,
                answered,
            });
            answered
        }
        let (sender, requests) = mpsc::unbounded_channel();
        let state = ReceiverState {
            failures,
            seen: Arc::default(),
            requests: sender,
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, requests }
    }

    /// The next request, failing the test after the deadline.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(DEADLINE, self.requests.recv())
            .await
            .expect("a webhook in time")
            .expect("the receiver runs")
    }

    fn subscription(&self, space_id: Uuid, events: &[WebhookEvent]) -> WebhookConfig {
        WebhookConfig {
            url: self.url.clone(),
            secret: SecretString::from(SECRET),
            events: events.to_vec(),
            space_id,
        }
    }
}

const BOTH: &[WebhookEvent] = &[
    WebhookEvent::SessionStarted,
    WebhookEvent::ConversationComplete,
];

fn quick(webhooks: Vec<WebhookConfig>) -> Config {
    Config {
        webhooks,
        webhook_delivery: WebhookDelivery {
            retry_base_delay_ms: 10,
            ..WebhookDelivery::default()
        },
        ..config(Timing {
            dispatch_ms: 20,
            join_ms: 20,
        })
    }
}

/// The lowercase hex HMAC-SHA256 the platform's docs tell receivers to compare with.
fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn dispatch(sandbox: &Sandbox, token: &str, body: Value) -> Uuid {
    let response = sandbox.dispatch(token, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let conversation: Value = response.json().await.expect("JSON");
    conversation["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id")
}

/// Waits until the conversation at `id` is `Active`, as its owner reads it.
async fn until_active(sandbox: &Sandbox, token: &str, id: Uuid) {
    let path = format!("/api/v1/conversations/{id}");
    eventually("the conversation to become Active", || async {
        let conversation: Value = sandbox.get(&path, token).await.json().await.ok()?;
        (conversation["status"] == "Active").then_some(())
    })
    .await;
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_documented_members() {
    let mut receiver = Receiver::start(0).await;
    let (sandbox, state) =
        Sandbox::start_with_state(quick(vec![receiver.subscription(SPACE, BOTH)])).await;
    let token = sandbox.token(BFF).await;
    let request = json!({
        "agent_id": AVA,
        "channel": "Phone",
        "to_number": "+4930123456789",
        "url_parameters": { "utm_source": "newsletter" }
    });
    let id = dispatch(&sandbox, &token, request).await;

    let started = receiver.next().await;
    assert_eq!(started.answered, StatusCode::NO_CONTENT);
    assert_eq!(started.headers["content-type"], "application/json");
    assert_eq!(
        started.headers["x-speaknode-signature"],
        expected_signature(&started.body).as_str()
    );
    assert_eq!(started.headers["x-speaknode-event"], "SessionStarted");
    let payload = started.json();
    assert_same_keys(&payload, &fixture!("webhook-session-started.json"));
    assert_eq!(payload["event"], "SessionStarted");
    let data = &payload["data"];
    assert_eq!(data["session_id"], id.to_string());
    assert_eq!(data["agent_id"], AVA.to_string());
    assert_eq!(data["agent_name"], "Ava");
    assert_eq!(data["telecom_provider"], "Twilio");
    assert_eq!(data["from_number"], "+15005550006");
    assert_eq!(data["to_number"], "+4930123456789");
    assert_eq!(
        data["url_parameters"],
        json!({ "utm_source": "newsletter" })
    );
    assert!(data["start_time"].is_string());
    assert_eq!(data["agent_joined_at"], data["start_time"]);
    assert_eq!(data["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(data["audio_url"], Value::Null);

    assert!(state.complete_conversation(id));
    let complete = receiver.next().await;
    assert_eq!(
        complete.headers["x-speaknode-signature"],
        expected_signature(&complete.body).as_str()
    );
    assert_ne!(
        complete.headers["x-speaknode-delivery"],
        started.headers["x-speaknode-delivery"]
    );
    let payload = complete.json();
    assert_same_keys(&payload, &fixture!("webhook-conversation-complete.json"));
    assert_eq!(payload["event"], "ConversationComplete");
    assert_eq!(payload["data"]["session_id"], id.to_string());
    assert!(payload["data"]["duration_seconds"].as_f64() >= Some(0.0));
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_delivery_on_the_third_attempt() {
    let mut receiver = Receiver::start(2).await;
    let sandbox = Sandbox::start(quick(vec![
        receiver.subscription(SPACE, &[WebhookEvent::SessionStarted]),
    ]))
    .await;
    let token = sandbox.token(BFF).await;
    dispatch(
        &sandbox,
        &token,
        json!({ "agent_id": AVA, "channel": "Web" }),
    )
    .await;

    let attempts = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ];
    let answers: Vec<_> = attempts.iter().map(|a| a.answered).collect();
    assert_eq!(
        answers,
        [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::NO_CONTENT
        ]
    );
    // Every attempt is the same delivery: same body, same signature, same delivery id.
    for attempt in &attempts[1..] {
        assert_eq!(attempt.body, attempts[0].body);
        for name in ["x-speaknode-signature", "x-speaknode-delivery"] {
            assert_eq!(attempt.headers[name], attempts[0].headers[name]);
        }
    }
}

#[tokio::test]
async fn subscriptions_get_only_their_space_and_their_event_types() {
    let mut mine = Receiver::start(0).await;
    let mut theirs = Receiver::start(0).await;
    let (sandbox, state) = Sandbox::start_with_state(quick(vec![
        mine.subscription(SPACE, BOTH),
        theirs.subscription(OTHER_SPACE, &[WebhookEvent::ConversationComplete]),
    ]))
    .await;
    let (token, other_token) = (sandbox.token(BFF).await, sandbox.token(OTHER_BFF).await);

    let id = dispatch(
        &sandbox,
        &token,
        json!({ "agent_id": AVA, "channel": "Web" }),
    )
    .await;
    assert_eq!(mine.next().await.json()["event"], "SessionStarted");
    assert!(state.complete_conversation(id));
    assert_eq!(mine.next().await.json()["event"], "ConversationComplete");

    // The other space's receiver asked only for completions: its first delivery must be
    // the completion of its own conversation, not anything that happened before.
    let web = json!({ "agent_id": BORIS, "channel": "Web" });
    let other_id = dispatch(&sandbox, &other_token, web).await;
    until_active(&sandbox, &other_token, other_id).await;
    assert!(state.complete_conversation(other_id));
    let first = theirs.next().await.json();
    assert_eq!(first["event"], "ConversationComplete");
    assert_eq!(first["data"]["session_id"], other_id.to_string());
}

#[tokio::test]
async fn shutdown_stops_deliveries_that_wait_to_retry() {
    let mut receiver = Receiver::start(usize::MAX).await;
    let mut config = quick(vec![receiver.subscription(SPACE, BOTH)]);
    config.webhook_delivery.retry_base_delay_ms = 600_000;
    let sandbox = Sandbox::start(config).await;
    let token = sandbox.token(BFF).await;
    dispatch(
        &sandbox,
        &token,
        json!({ "agent_id": AVA, "channel": "Web" }),
    )
    .await;
    assert_eq!(
        receiver.next().await.answered,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // The retry waits ten minutes; `stop` fails the test unless serve returns within
    // its deadline.
    sandbox
        .stop()
        .await
        .expect("serve returns Ok after shutdown");
}
