//! The admin routes: off by default, and hang-ups.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use speaknode_sandbox::{Config, Timing};

use crate::support::{AVA, BFF, Sandbox, assert_problem, assert_same_keys, config, fixture};

fn admin_config() -> Config {
    let mut config = config(Timing {
        dispatch_ms: 10,
        join_ms: 10,
    });
    config.admin_enabled = true;
    config
}

#[tokio::test]
async fn admin_routes_are_not_there_unless_enabled() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let not_found = fixture!("problem-not-found.json");
    let id = uuid::Uuid::new_v4();
    let requests = [
        (
            Method::POST,
            format!("/__sandbox/conversations/{id}/user-turns"),
            Some(json!({ "text": "hi" })),
        ),
        (
            Method::POST,
            format!("/__sandbox/conversations/{id}/end"),
            None,
        ),
    ];
    for (method, path, body) in requests {
        let response = sandbox.admin(method, &path, body.as_ref()).await;
        assert_problem(response, StatusCode::NOT_FOUND, &not_found).await;
    }
}

#[tokio::test]
async fn ending_a_conversation_completes_it_once() {
    let sandbox = Sandbox::start(admin_config()).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let id = created["id"].as_str().expect("id");
    sandbox
        .conversation_when(&token, id, "the agent to join", |c| c["status"] == "Active")
        .await;
    let path = format!("/__sandbox/conversations/{id}/end");
    let response = sandbox.admin(Method::POST, &path, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ended: Value = response.json().await.expect("JSON");
    assert_same_keys(&ended, &fixture!("conversation-active.json"));
    assert_eq!(ended["status"], "Completed");
    assert!(ended["ended_at"].is_string());
    assert!(ended["duration_seconds"].as_f64().is_some_and(|d| d > 0.0));
    let again = sandbox.admin(Method::POST, &path, None).await;
    assert_problem(
        again,
        StatusCode::CONFLICT,
        &fixture!("problem-not-found.json"),
    )
    .await;
}
