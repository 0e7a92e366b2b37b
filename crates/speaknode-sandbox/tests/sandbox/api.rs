//! Agents, dispatch and the API's error answers.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use speaknode_sandbox::Timing;
use uuid::Uuid;

use crate::support::{
    AVA, BFF, BORIS, OTHER_BFF, SPACE, Sandbox, assert_problem, assert_same_keys, claims_of,
    config, fixture, is_dotnet_timestamp,
};

#[tokio::test]
async fn an_agent_of_the_callers_space_has_the_fixture_shape() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox.get(&format!("/api/v1/agents/{AVA}"), &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let agent: Value = response.json().await.expect("JSON");
    assert_same_keys(&agent, &fixture!("agent.json"));
    assert_eq!(agent["id"], AVA.to_string());
    assert_eq!(agent["title"], "Ava");
    assert_eq!(agent["space_id"], SPACE.to_string());
    assert_eq!(agent["language_locale_code"], "en-US");
    assert!(is_dotnet_timestamp(&agent["created_at"]), "{agent}");
    assert!(is_dotnet_timestamp(&agent["updated_at"]), "{agent}");
}

#[tokio::test]
async fn agents_of_other_spaces_unknown_or_malformed_ids_are_not_found() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let not_found = fixture!("problem-not-found.json");
    for id in [
        BORIS.to_string(),
        Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        "%FF".to_owned(),
    ] {
        let response = sandbox.get(&format!("/api/v1/agents/{id}"), &token).await;
        assert_problem(response, StatusCode::NOT_FOUND, &not_found).await;
    }
    // The other space's own client does see its agent.
    let other = sandbox.token(OTHER_BFF).await;
    let response = sandbox
        .get(&format!("/api/v1/agents/{BORIS}"), &other)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problems() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox.get("/api/v1/campaigns", &token).await;
    assert_problem(
        response,
        StatusCode::NOT_FOUND,
        &fixture!("problem-not-found.json"),
    )
    .await;
    let response = sandbox.get("/nowhere", &token).await;
    assert_problem(
        response,
        StatusCode::NOT_FOUND,
        &fixture!("problem-not-found.json"),
    )
    .await;
    let response = sandbox
        .http
        .delete(sandbox.url(&format!("/api/v1/agents/{AVA}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("DELETE");
    assert_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        &fixture!("problem-not-found.json"),
    )
    .await;
}

#[tokio::test]
async fn dispatching_a_web_conversation_creates_it_pending() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let claims = claims_of(&token);
    let response = sandbox
        .dispatch(&token, &fixture!("dispatch-web-request.json"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let conversation: Value = response.json().await.expect("JSON");
    assert_same_keys(&conversation, &fixture!("conversation-pending.json"));
    assert_eq!(
        location,
        format!(
            "/api/v1/conversations/{}",
            conversation["id"].as_str().expect("id")
        )
    );
    assert_eq!(conversation["status"], "Pending");
    assert_eq!(conversation["channel"], "Web");
    assert_eq!(conversation["agent_id"], AVA.to_string());
    assert_eq!(conversation["agent_title"], "Ava");
    assert_eq!(conversation["called_by_id"], claims["sub"]);
    assert_eq!(conversation["called_by_name"], claims["preferred_username"]);
    assert_eq!(conversation["history"], json!([]));
    assert_eq!(conversation["duration_seconds"], 0.0);
    for absent in ["started_at", "ended_at", "telecom_provider", "to_number"] {
        assert_eq!(conversation[absent], Value::Null, "{absent}");
    }
    // A web conversation's room exists from the start, so its first answer can offer a
    // join token (tests/sandbox/livekit.rs checks the token).
    let id = conversation["id"].as_str().expect("id").replace('-', "");
    assert_eq!(conversation["live_kit_room_name"], format!("web-{id}"));
    assert!(conversation["live_kit_participant_token"].is_string());
    assert!(is_dotnet_timestamp(&conversation["created_at"]));
    assert_eq!(conversation["created_at"], conversation["updated_at"]);
}

#[tokio::test]
async fn dispatching_a_phone_conversation_keeps_number_and_variables() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox
        .dispatch(&token, &fixture!("dispatch-phone-request.json"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let conversation: Value = response.json().await.expect("JSON");
    assert_same_keys(&conversation, &fixture!("conversation-pending.json"));
    assert_eq!(conversation["channel"], "Phone");
    assert_eq!(conversation["to_number"], "+4930123456789");
    assert_eq!(conversation["telecom_provider"], "Twilio");
    assert!(conversation["from_number"].is_string());
    assert_eq!(
        conversation["dynamic_variables"],
        json!({ "customer_name": "Jo" })
    );
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox
        .http
        .post(sandbox.url("/api/v1/conversations/dispatch"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"agent_id": "#)
        .send()
        .await
        .expect("POST");
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        &fixture!("problem-not-found.json"),
    )
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox
        .http
        .post(sandbox.url("/api/v1/conversations/dispatch"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"agent_id": null}"#)
        .send()
        .await
        .expect("POST");
    let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    assert_problem(response, status, &fixture!("problem-not-found.json")).await;
}

#[tokio::test]
async fn a_missing_agent_id_is_a_validation_problem() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox.dispatch(&token, &json!({ "channel": "Web" })).await;
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let problem = assert_problem(response, status, &fixture!("problem-validation.json")).await;
    assert_eq!(
        problem["errors"],
        json!({ "agent_id": ["The agent_id field is required."] })
    );
}

#[tokio::test]
async fn a_bad_channel_or_phone_number_is_a_validation_problem() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let problem = fixture!("problem-validation.json");
    let bodies = [
        (json!({ "agent_id": AVA, "channel": "Fax" }), "channel"),
        (json!({ "agent_id": AVA, "channel": "web" }), "channel"),
        (json!({ "agent_id": AVA, "channel": "Phone" }), "to_number"),
        (
            json!({ "agent_id": AVA, "channel": "Phone", "to_number": "030 1234" }),
            "to_number",
        ),
        (json!({ "agent_id": "Ava", "channel": "Web" }), "agent_id"),
    ];
    for (body, member) in bodies {
        let response = sandbox.dispatch(&token, &body).await;
        let mut shape = problem.clone();
        shape["errors"] = json!({ member: [""] });
        assert_problem(response, status, &shape).await;
    }
}

#[tokio::test]
async fn an_agent_of_another_space_cannot_be_dispatched() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let problem = fixture!("problem-validation.json");
    for agent_id in [BORIS, Uuid::new_v4()] {
        let body = json!({ "agent_id": agent_id, "channel": "Web" });
        let response = sandbox.dispatch(&token, &body).await;
        let body = assert_problem(response, status, &problem).await;
        assert_eq!(
            body["errors"]["agent_id"][0],
            format!("The agent '{agent_id}' was not found.")
        );
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_too_large() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let token = sandbox.token(BFF).await;
    let padding = "x".repeat(64 * 1024);
    let body =
        json!({ "agent_id": AVA, "channel": "Web", "dynamic_variables": { "padding": padding } });
    let response = sandbox.dispatch(&token, &body).await;
    let status = StatusCode::PAYLOAD_TOO_LARGE;
    assert_problem(response, status, &fixture!("problem-not-found.json")).await;
}
