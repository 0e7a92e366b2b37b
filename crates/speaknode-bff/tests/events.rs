//! The conversation event stream end to end: the real sandbox and its notification hub
//! behind the BFF, read as server-sent events the way a widget's `EventSource` reads them.

mod common;

use std::time::Duration;

use common::sse::{Auth, Events, active_with_greeting, metric_becomes};
use common::*;
use jsonwebtoken::{Algorithm, Header};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ORIGIN};
use serde_json::json;
use speaknode_api::paths;
use speaknode_sandbox::FaultSet;

#[tokio::test]
async fn the_stream_follows_the_conversation_until_it_ends() {
    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let mut events = Events::open(&stack, &id, Auth::Header(&token), ORIGIN_A).await;

    let first = events.next().await.expect("the snapshot");
    assert_eq!((first.event.as_str(), first.id), ("conversation", Some(1)));
    assert!(
        first.retry.is_some(),
        "the first event hints the retry delay"
    );
    assert_eq!(first.data["id"], id.as_str());
    let mut statuses = vec![first.data["status"].as_str().expect("status").to_owned()];
    if !active_with_greeting(&first.data) {
        statuses.extend(events.until(active_with_greeting).await);
    }
    assert_eq!(statuses.last().map(String::as_str), Some("Active"));
    assert!(
        statuses
            .iter()
            .all(|s| ["Pending", "Dispatching", "Active"].contains(&s.as_str())),
        "{statuses:?}"
    );
    assert_eq!(stack.metric("speaknode_bff_open_event_streams").await, 1.0);

    assert!(stack.state.complete_conversation(id.parse().expect("uuid")));
    let view = events.conversation().await;
    assert_eq!(view["status"], "Completed", "{view}");
    assert!(active_with_greeting(
        &json!({"status": "Active", "history": view["history"]})
    ));
    assert!(
        !view.to_string().contains("live_kit"),
        "the hub's internal members never reach a widget: {view}"
    );
    events.assert_ends("conversation_ended").await;
    metric_becomes(&stack, "speaknode_bff_open_event_streams", 0.0).await;
}

#[tokio::test]
async fn widgets_share_one_hub_connection() {
    let stack = Stack::start().await;
    let (id_a, token_a) = stack.started(ORIGIN_A, AGENT_A).await;
    let (id_b, token_b) = stack.started(ORIGIN_B, AGENT_B).await;
    let mut a = Events::open(&stack, &id_a, Auth::Header(&token_a), ORIGIN_A).await;
    let mut b = Events::open(&stack, &id_b, Auth::Header(&token_b), ORIGIN_B).await;
    a.until(|view| view["status"] == "Active").await;
    b.until(|view| view["status"] == "Active").await;
    assert!(
        stack
            .state
            .complete_conversation(id_b.parse().expect("uuid"))
    );
    b.until(|view| view["status"] == "Completed").await;
    b.assert_ends("conversation_ended").await;

    assert_eq!(
        stack
            .metric("speaknode_bff_hub_connection_attempts_total")
            .await,
        1.0
    );
    assert_eq!(stack.metric("speaknode_bff_hub_connected").await, 1.0);
    assert_eq!(stack.metric("speaknode_bff_open_event_streams").await, 1.0);
    drop(a);
    // The last stream gone, the connection closes.
    metric_becomes(&stack, "speaknode_bff_hub_connected", 0.0).await;
}

#[tokio::test]
async fn after_a_lost_hub_connection_the_bff_reconnects_and_streams_resync() {
    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let mut events = Events::open(&stack, &id, Auth::Header(&token), ORIGIN_A).await;
    events.until(active_with_greeting).await;
    metric_becomes(&stack, "speaknode_bff_hub_connected", 1.0).await;

    let faults = stack.state.faults();
    faults.set(FaultSet {
        drop_hub_connections: true,
        ..FaultSet::default()
    });
    metric_becomes(&stack, "speaknode_bff_hub_connected", 0.0).await;
    // Completed while the BFF hears nothing: only the re-read after reconnecting tells.
    assert!(stack.state.complete_conversation(id.parse().expect("uuid")));
    faults.clear();

    let statuses = events.until(|view| view["status"] == "Completed").await;
    assert_eq!(statuses, ["Completed"]);
    events.assert_ends("conversation_ended").await;
    assert!(
        stack
            .metric("speaknode_bff_hub_connection_attempts_total")
            .await
            >= 2.0
    );
}

#[tokio::test]
async fn only_the_token_of_this_conversation_and_page_may_follow_it() {
    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let (_, other_token) = stack.started(ORIGIN_A, AGENT_A).await;
    let minting = stack.mint_token(ORIGIN_A, AGENT_A).await;
    let url = stack.url(&paths::conversation_events(&id));
    let with = |token: &str, origin: &str| {
        stack
            .http
            .get(&url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(ORIGIN, origin)
    };
    for token in [&other_token, &minting] {
        let reply = stack.send(with(token, ORIGIN_A)).await;
        reply.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let reply = stack.send(with(&token, ORIGIN_B)).await;
    reply.assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    let reply = stack.send(stack.http.get(&url)).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    let forged = stack.http.get(&url).query(&[("access_token", "forged")]);
    let reply = stack.send(forged).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    // Refusals open no hub connection.
    assert_eq!(
        stack
            .metric("speaknode_bff_hub_connection_attempts_total")
            .await,
        0.0
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_promptly() {
    let mut stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let mut events = Events::open(&stack, &id, Auth::Header(&token), ORIGIN_A).await;
    events.conversation().await;
    let started = tokio::time::Instant::now();
    stack.shut_down_bff();
    // Not merely within the 10 s drain: the stream is told at once.
    let ending = async {
        loop {
            let event = events.next().await.expect("an end event");
            if event.event == "end" {
                assert_eq!(event.data["reason"], "shutting_down");
                assert!(events.next().await.is_none());
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), ending)
        .await
        .expect("the stream ends promptly");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_stream_ends_when_its_token_expires() {
    let stack = Stack::start().await;
    let (id, _) = stack.started(ORIGIN_A, AGENT_A).await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("speaknode-widget+jwt".into());
    header.kid = Some(stack.kid().await);
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": stack.bff, "aud": format!("{}/v1", stack.bff), "sub": "v_test",
        "agent_id": AGENT_A, "origin": ORIGIN_A, "scope": "conversation:read",
        "conversation_id": id, "jti": "j-short", "iat": now, "nbf": now, "exp": now + 2,
    });
    let token = jsonwebtoken::encode(&header, &claims, &stack.key.encoding_key()).expect("sign");
    let mut events = Events::open(&stack, &id, Auth::Header(&token), ORIGIN_A).await;
    loop {
        let event = events.next().await.expect("an event");
        if event.event == "end" {
            assert_eq!(event.data["reason"], "token_expired");
            assert!(events.next().await.is_none());
            break;
        }
    }
}
