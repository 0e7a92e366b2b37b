//! What a caller does to its own conversation: end it, and rate it.

use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};
use speaknode_sandbox::{Feedback, FeedbackRating, Timing};
use uuid::Uuid;

use crate::support::{
    AVA, BFF, OTHER_BFF, Sandbox, assert_problem, assert_same_keys, config, fixture,
    is_dotnet_timestamp,
};

/// The scripted agent joins at once, so a conversation is `Active` almost immediately.
fn quick() -> Timing {
    Timing {
        dispatch_ms: 1,
        join_ms: 1,
    }
}

impl Sandbox {
    async fn post_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    async fn end(&self, id: &str, token: &str) -> Response {
        self.http
            .post(self.url(&format!("/api/v1/conversations/{id}/end")))
            .bearer_auth(token)
            .send()
            .await
            .expect("POST end")
    }
}

#[tokio::test]
async fn a_caller_ends_a_conversation_once() {
    let sandbox = Sandbox::start(config(quick())).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let id = created["id"].as_str().expect("id");
    sandbox
        .conversation_when(&token, id, "the agent to join", |c| c["status"] == "Active")
        .await;
    // Another space's caller cannot end it, nor can a malformed or unknown id be ended.
    let other = sandbox.token(OTHER_BFF).await;
    let not_found = fixture!("problem-not-found.json");
    for (id, token) in [
        (id.to_owned(), &other),
        (Uuid::new_v4().to_string(), &token),
        ("not-a-uuid".to_owned(), &token),
    ] {
        let response = sandbox.end(&id, token).await;
        assert_problem(response, StatusCode::NOT_FOUND, &not_found).await;
    }

    let response = sandbox.end(id, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ended: Value = response.json().await.expect("JSON");
    assert_same_keys(&ended, &fixture!("conversation-active.json"));
    assert_eq!(ended["status"], "Completed");
    assert!(is_dotnet_timestamp(&ended["ended_at"]), "{ended}");
    let read = sandbox
        .get(&format!("/api/v1/conversations/{id}"), &token)
        .await;
    let read: Value = read.json().await.expect("JSON");
    assert_eq!(
        (&read["status"], &read["ended_at"]),
        (&ended["status"], &ended["ended_at"])
    );

    let again = sandbox.end(id, &token).await;
    let problem = assert_problem(
        again,
        StatusCode::CONFLICT,
        &fixture!("problem-conflict.json"),
    )
    .await;
    assert_eq!(
        problem["detail"],
        "The conversation has already ended (Completed)."
    );
}

#[tokio::test]
async fn a_pending_conversation_can_be_ended_before_the_agent_joins() {
    let sandbox = Sandbox::start(config(Timing {
        dispatch_ms: 600_000,
        join_ms: 1,
    }))
    .await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let id = created["id"].as_str().expect("id");
    let response = sandbox.end(id, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ended: Value = response.json().await.expect("JSON");
    assert_eq!(ended["status"], "Completed");
    assert_eq!(ended["started_at"], Value::Null);
    assert_eq!(ended["duration_seconds"], 0.0);
}

#[tokio::test]
async fn feedback_is_validated_recorded_and_replaced() {
    let (sandbox, state) = Sandbox::start_with_state(config(quick())).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let id = created["id"].as_str().expect("id");
    let uuid: Uuid = id.parse().expect("a UUID");
    let path = format!("/api/v1/conversations/{id}/feedback");

    let response = sandbox
        .post_json(&path, &token, &fixture!("feedback-request.json"))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        state.feedback(uuid),
        Some(Feedback {
            rating: FeedbackRating::Negative,
            comment: Some("The agent did not know my order.".into()),
        })
    );
    // Rating an ended conversation is the usual case; a second rating replaces the first.
    assert_eq!(sandbox.end(id, &token).await.status(), StatusCode::OK);
    let positive = json!({ "rating": "Positive", "comment": null });
    let response = sandbox.post_json(&path, &token, &positive).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let recorded = state.feedback(uuid).expect("feedback");
    assert_eq!(
        (recorded.rating, recorded.comment),
        (FeedbackRating::Positive, None)
    );

    let validation = fixture!("problem-validation.json");
    for (body, members) in [
        (json!({}), json!({ "rating": [""] })),
        (json!({ "rating": "Great" }), json!({ "rating": [""] })),
        (
            json!({ "rating": "Positive", "comment": "a".repeat(2001) }),
            json!({ "comment": [""] }),
        ),
    ] {
        let mut shape = validation.clone();
        shape["errors"] = members;
        let response = sandbox.post_json(&path, &token, &body).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &shape).await;
    }
    let as_text = sandbox
        .http
        .post(sandbox.url(&path))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"rating":"Positive"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(as_text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Another space's caller, and unknown ids, find nothing to rate; nothing changes.
    let other = sandbox.token(OTHER_BFF).await;
    let not_found = fixture!("problem-not-found.json");
    let negative = json!({ "rating": "Negative" });
    let response = sandbox.post_json(&path, &other, &negative).await;
    assert_problem(response, StatusCode::NOT_FOUND, &not_found).await;
    let unknown = format!("/api/v1/conversations/{}/feedback", Uuid::new_v4());
    let response = sandbox.post_json(&unknown, &token, &negative).await;
    assert_problem(response, StatusCode::NOT_FOUND, &not_found).await;
    assert_eq!(
        state.feedback(uuid).map(|f| f.rating),
        Some(FeedbackRating::Positive)
    );
}
