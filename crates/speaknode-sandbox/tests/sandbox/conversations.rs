//! Conversations: the scripted agent's lifecycle, space isolation and shutdown.

use reqwest::StatusCode;
use serde_json::{Value, json};
use speaknode_sandbox::Timing;
use uuid::Uuid;

use crate::support::{
    AVA, AVA_GREETING, BFF, OTHER_BFF, Sandbox, assert_problem, assert_same_keys, config,
    eventually, fixture, is_dotnet_timestamp,
};

/// Dispatches a web conversation with Ava and returns its path.
async fn dispatch_web(sandbox: &Sandbox, token: &str) -> String {
    let response = sandbox
        .dispatch(token, &json!({ "agent_id": AVA, "channel": "Web" }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let conversation: Value = response.json().await.expect("JSON");
    format!(
        "/api/v1/conversations/{}",
        conversation["id"].as_str().expect("id")
    )
}

#[tokio::test]
async fn a_conversation_is_pending_then_active_with_the_agents_greeting() {
    // A long first step, so the first read reliably sees `Pending`.
    let sandbox = Sandbox::start(config(Timing {
        dispatch_ms: 1_000,
        join_ms: 50,
    }))
    .await;
    let token = sandbox.token(BFF).await;
    let path = dispatch_web(&sandbox, &token).await;

    let response = sandbox.get(&path, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let pending: Value = response.json().await.expect("JSON");
    assert_same_keys(&pending, &fixture!("conversation-pending.json"));
    assert_eq!(pending["status"], "Pending");

    let active = eventually("the conversation to become Active", || async {
        let conversation: Value = sandbox.get(&path, &token).await.json().await.ok()?;
        (conversation["status"] == "Active").then_some(conversation)
    })
    .await;
    assert_same_keys(&active, &fixture!("conversation-active.json"));
    let id = active["id"].as_str().expect("id").replace('-', "");
    assert_eq!(active["live_kit_room_name"], format!("web-{id}"));
    assert!(is_dotnet_timestamp(&active["started_at"]), "{active}");
    assert!(
        active["duration_seconds"]
            .as_f64()
            .is_some_and(|d| d >= 0.0),
        "{active}"
    );
    assert_ne!(active["updated_at"], pending["updated_at"]);

    let history = active["history"].as_array().expect("history");
    let turns: Vec<_> = history
        .iter()
        .map(|t| (t["role"].clone(), t["kind"].clone()))
        .collect();
    assert_eq!(
        turns,
        [
            (json!("System"), json!("Message")),
            (json!("Assistant"), json!("Message"))
        ]
    );
    let greeting = &history[1];
    assert_eq!(greeting["content"], AVA_GREETING);
    let item = greeting["id"].as_str().expect("id");
    assert!(
        item.strip_prefix("item_")
            .is_some_and(|hex| hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        "{item}"
    );
    assert!(is_dotnet_timestamp(&greeting["created_at"]));
}

#[tokio::test]
async fn a_conversation_of_another_space_is_not_found() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let path = dispatch_web(&sandbox, &token).await;
    let other = sandbox.token(OTHER_BFF).await;
    let not_found = fixture!("problem-not-found.json");
    assert_problem(
        sandbox.get(&path, &other).await,
        StatusCode::NOT_FOUND,
        &not_found,
    )
    .await;
    let unknown = format!("/api/v1/conversations/{}", Uuid::new_v4());
    assert_problem(
        sandbox.get(&unknown, &token).await,
        StatusCode::NOT_FOUND,
        &not_found,
    )
    .await;
    let malformed = "/api/v1/conversations/123";
    assert_problem(
        sandbox.get(malformed, &token).await,
        StatusCode::NOT_FOUND,
        &not_found,
    )
    .await;
}

#[tokio::test]
async fn serve_returns_once_shutdown_resolves_even_with_agents_waiting() {
    // A dispatch this slow leaves the scripted agent asleep; shutdown must still end it.
    let sandbox = Sandbox::start(config(Timing {
        dispatch_ms: 600_000,
        join_ms: 1,
    }))
    .await;
    let token = sandbox.token(BFF).await;
    dispatch_web(&sandbox, &token).await;
    sandbox
        .stop()
        .await
        .expect("serve returns Ok after shutdown");
}
