//! Scenarios of the scripted agent: keyed and default replies after the think time, calls
//! that end or fail, and user turns through the admin route and through `user_says`.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use speaknode_sandbox::{AgentConfig, Config, Failure, Reply, Scenario, Timing, UserTurnError};
use uuid::{Uuid, uuid};

use crate::support::{
    AVA, AVA_GREETING, BFF, SPACE, Sandbox, assert_problem, assert_same_keys, config, fixture,
    seconds_between,
};

/// Fails while joining.
const CLEO: Uuid = uuid!("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d");
/// Has its own greeting and hangs up after two user turns.
const DORA: Uuid = uuid!("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e");

const THINK_MS: u64 = 300;
const SPEAK_MS: u64 = 200;
const SHIPPED: &str = "It has shipped.";
const PARDON: &str = "Sorry, could you say that again?";
const TIMED_OUT: &str = "The LLM provider timed out.";

fn reply(pattern: &str, text: &str) -> Reply {
    Reply {
        pattern: pattern.to_owned(),
        reply: Some(text.to_owned()),
        end_call: false,
        error_message: None,
    }
}

fn scenario_config() -> Config {
    let mut config = config(Timing {
        dispatch_ms: 10,
        join_ms: 10,
    });
    for (id, title) in [(CLEO, "Cleo"), (DORA, "Dora")] {
        config.agents.push(AgentConfig {
            id,
            title: title.to_owned(),
            space_id: SPACE,
            greeting: "Hello.".to_owned(),
            description: String::new(),
            language_locale_code: "en-US".to_owned(),
        });
    }
    config.scenarios = vec![
        Scenario {
            think_ms: THINK_MS,
            speak_ms: Some(SPEAK_MS),
            replies: vec![
                reply("*order*", SHIPPED),
                Reply {
                    end_call: true,
                    ..reply("bye", "Goodbye!")
                },
                Reply {
                    reply: None,
                    error_message: Some(TIMED_OUT.to_owned()),
                    ..reply("crash", "")
                },
            ],
            default_reply: Some(PARDON.to_owned()),
            ..Scenario::greeting_only(AVA)
        },
        Scenario {
            fail: Some(Failure {
                after_turns: 0,
                error_message: "No agent worker was available.".to_owned(),
            }),
            ..Scenario::greeting_only(CLEO)
        },
        Scenario {
            greeting: Some("Dora speaking.".to_owned()),
            think_ms: 20,
            speak_ms: Some(20),
            default_reply: Some("Mm-hm.".to_owned()),
            end_after_turns: Some(2),
            ..Scenario::greeting_only(DORA)
        },
    ];
    config.admin_enabled = true;
    config
}

async fn say(sandbox: &Sandbox, id: &str, text: &str) -> Response {
    let path = format!("/__sandbox/conversations/{id}/user-turns");
    sandbox
        .admin(Method::POST, &path, Some(&json!({ "text": text })))
        .await
}

/// Dispatches a web conversation with `agent` and waits until the agent has joined.
async fn active(sandbox: &Sandbox, token: &str, agent: Uuid) -> String {
    let created = sandbox.dispatch_web(token, agent).await;
    let id = created["id"].as_str().expect("id").to_owned();
    sandbox
        .conversation_when(token, &id, "the conversation to become Active", |c| {
            c["status"] == "Active"
        })
        .await;
    id
}

fn history(conversation: &Value) -> &Vec<Value> {
    conversation["history"].as_array().expect("history")
}

#[tokio::test]
async fn a_user_turn_gets_the_keyed_reply_after_the_think_time() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let id = active(&sandbox, &token, AVA).await;

    let response = say(&sandbox, &id, "Where is my ORDER?").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let turn: Value = response.json().await.expect("turn JSON");
    let fixture = fixture!("conversation-active.json");
    assert_same_keys(&turn, &fixture["history"][4]);
    assert_eq!(
        (&turn["role"], &turn["kind"], &turn["content"]),
        (
            &json!("User"),
            &json!("Message"),
            &json!("Where is my ORDER?")
        )
    );

    let conversation = sandbox
        .conversation_when(&token, &id, "the agent's reply", |c| history(c).len() == 4)
        .await;
    assert_same_keys(&conversation, &fixture);
    let turns = history(&conversation);
    assert_eq!(turns[1]["content"], AVA_GREETING);
    assert_eq!(turns[2]["id"], turn["id"]);
    let answer = &turns[3];
    assert_eq!(
        (&answer["role"], &answer["content"]),
        (&json!("Assistant"), &json!(SHIPPED))
    );
    let thought = seconds_between(&turn["created_at"], &answer["created_at"]);
    assert!(
        thought >= THINK_MS as f64 / 1000.0,
        "replied after {thought} s"
    );
    let metrics = &answer["metrics"];
    let spoken = metrics["stopped_speaking_at"].as_f64().expect("stopped")
        - metrics["started_speaking_at"].as_f64().expect("started");
    assert!((spoken - SPEAK_MS as f64 / 1000.0).abs() < 1e-3, "{spoken}");
    assert_eq!(metrics["e2e_latency"], THINK_MS as f64 / 1000.0);
    assert_eq!(conversation["status"], "Active");
}

#[tokio::test]
async fn an_unmatched_turn_gets_the_default_reply() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let id = active(&sandbox, &token, AVA).await;
    assert_eq!(
        say(&sandbox, &id, "Hello there").await.status(),
        StatusCode::ACCEPTED
    );
    let conversation = sandbox
        .conversation_when(&token, &id, "the default reply", |c| history(c).len() == 4)
        .await;
    assert_eq!(history(&conversation)[3]["content"], PARDON);
}

#[tokio::test]
async fn an_end_call_reply_completes_the_conversation_once_said() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let id = active(&sandbox, &token, AVA).await;
    assert_eq!(
        say(&sandbox, &id, "OK, bye!").await.status(),
        StatusCode::ACCEPTED
    );
    let done = sandbox
        .conversation_when(&token, &id, "the call to complete", |c| {
            c["status"] == "Completed"
        })
        .await;
    let goodbye = &history(&done)[3];
    assert_eq!(goodbye["content"], "Goodbye!");
    let after = seconds_between(&goodbye["created_at"], &done["ended_at"]);
    assert!(after >= SPEAK_MS as f64 / 1000.0, "hung up {after} s after");
    let duration = seconds_between(&done["started_at"], &done["ended_at"]);
    let reported = done["duration_seconds"].as_f64().expect("duration");
    assert!(
        (reported - duration).abs() < 1e-6,
        "{reported} vs {duration}"
    );
    assert!(reported > 0.0);
    // The duration of an ended conversation no longer grows.
    let again = sandbox
        .conversation_when(&token, &id, "a second read", |_| true)
        .await;
    assert_eq!(again["duration_seconds"], done["duration_seconds"]);

    // An ended conversation takes no more user turns.
    let response = say(&sandbox, &id, "Hello?").await;
    assert_problem(
        response,
        StatusCode::CONFLICT,
        &fixture!("problem-not-found.json"),
    )
    .await;
}

#[tokio::test]
async fn a_failing_reply_fails_the_conversation_without_a_word() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let id = active(&sandbox, &token, AVA).await;
    assert_eq!(
        say(&sandbox, &id, "crash, please").await.status(),
        StatusCode::ACCEPTED
    );
    let failed = sandbox
        .conversation_when(&token, &id, "the conversation to fail", |c| {
            c["status"] == "Failed"
        })
        .await;
    assert_eq!(failed["error_message"], TIMED_OUT);
    assert!(failed["ended_at"].is_string(), "{failed}");
    let turns = history(&failed);
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[2]["role"], "User");
}

#[tokio::test]
async fn a_scenario_can_fail_the_agent_before_it_joins() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, CLEO).await;
    let id = created["id"].as_str().expect("id");
    let failed = sandbox
        .conversation_when(&token, id, "the conversation to fail", |c| {
            c["status"] == "Failed"
        })
        .await;
    assert_eq!(failed["error_message"], "No agent worker was available.");
    assert!(failed["ended_at"].is_string());
    assert_eq!(failed["started_at"], Value::Null);
    assert_eq!(failed["duration_seconds"], 0.0);
    assert_eq!(failed["history"], json!([]));
}

#[tokio::test]
async fn a_scenario_can_hang_up_after_a_number_of_turns() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let id = active(&sandbox, &token, DORA).await;
    for text in ["One thing.", "Another thing."] {
        assert_eq!(
            say(&sandbox, &id, text).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let done = sandbox
        .conversation_when(&token, &id, "the call to complete", |c| {
            c["status"] == "Completed"
        })
        .await;
    let turns = history(&done);
    assert_eq!(turns[1]["content"], "Dora speaking.");
    let roles: Vec<_> = turns[2..].iter().map(|t| t["role"].clone()).collect();
    let users = roles.iter().filter(|r| **r == "User").count();
    let replies = roles.iter().filter(|r| **r == "Assistant").count();
    assert_eq!((users, replies), (2, 2), "{roles:?}");
}

#[tokio::test]
async fn user_turns_need_an_active_conversation_and_some_text() {
    let sandbox = Sandbox::start(scenario_config()).await;
    let token = sandbox.token(BFF).await;
    let not_found = fixture!("problem-not-found.json");
    for id in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = say(&sandbox, &id, "Hello").await;
        assert_problem(response, StatusCode::NOT_FOUND, &not_found).await;
    }
    let id = active(&sandbox, &token, AVA).await;
    let validation = fixture!("problem-validation.json");
    for body in [json!({ "text": "  " }), json!({}), json!({ "text": 7 })] {
        let path = format!("/__sandbox/conversations/{id}/user-turns");
        let response = sandbox.admin(Method::POST, &path, Some(&body)).await;
        let mut shape = validation.clone();
        shape["errors"] = json!({ "text": [""] });
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &shape).await;
    }
    let request = fixture!("sandbox-user-turn-request.json");
    let path = format!("/__sandbox/conversations/{id}/user-turns");
    let response = sandbox.admin(Method::POST, &path, Some(&request)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let failed = sandbox.dispatch_web(&token, CLEO).await;
    let failed = failed["id"].as_str().expect("id");
    sandbox
        .conversation_when(&token, failed, "the failure", |c| c["status"] == "Failed")
        .await;
    let response = say(&sandbox, failed, "Hello").await;
    let problem = assert_problem(response, StatusCode::CONFLICT, &not_found).await;
    assert_eq!(problem["title"], "Conflict");
}

#[tokio::test]
async fn user_says_on_the_state_lets_the_scenario_reply_without_admin_routes() {
    let mut config = scenario_config();
    config.admin_enabled = false;
    let (sandbox, state) = Sandbox::start_with_state(config).await;
    let token = sandbox.token(BFF).await;
    let id = active(&sandbox, &token, AVA).await;
    let uuid = Uuid::parse_str(&id).expect("UUID");
    state
        .user_says(uuid, "my order?")
        .await
        .expect("an Active conversation takes the turn");
    let conversation = sandbox
        .conversation_when(&token, &id, "the reply", |c| history(c).len() == 4)
        .await;
    assert_eq!(history(&conversation)[2]["content"], "my order?");
    assert_eq!(history(&conversation)[3]["content"], SHIPPED);
    assert!(matches!(
        state.user_says(Uuid::new_v4(), "hi").await,
        Err(UserTurnError::UnknownConversation)
    ));
    assert!(matches!(
        state.user_says(uuid, " ").await,
        Err(UserTurnError::EmptyText)
    ));
}
