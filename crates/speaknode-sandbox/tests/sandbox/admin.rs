//! The admin routes: off by default, hang-ups, and every kind of injected fault.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use speaknode_sandbox::{Config, Timing};

use crate::support::{
    AVA, BFF, Sandbox, assert_problem, assert_same_keys, claims_of, config, fixture,
};

fn admin_config() -> Config {
    let mut config = config(Timing {
        dispatch_ms: 10,
        join_ms: 10,
    });
    config.admin_enabled = true;
    config
}

async fn set_faults(sandbox: &Sandbox, faults: Value) -> Value {
    let response = sandbox
        .admin(Method::PUT, "/__sandbox/faults", Some(&faults))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "PUT faults {faults}");
    response.json().await.expect("faults JSON")
}

fn fault_of(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("x-sandbox-fault")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn admin_routes_are_not_there_unless_enabled() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let not_found = fixture!("problem-not-found.json");
    let id = uuid::Uuid::new_v4();
    let requests = [
        (Method::PUT, "/__sandbox/faults".to_owned(), Some(json!({}))),
        (Method::DELETE, "/__sandbox/faults".to_owned(), None),
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

#[tokio::test]
async fn the_fixture_fault_set_is_accepted_echoed_and_lifted() {
    let sandbox = Sandbox::start(admin_config()).await;
    let faults = fixture!("sandbox-faults.json");
    let echoed = set_faults(&sandbox, faults.clone()).await;
    assert_eq!(echoed, faults);
    let current: Value = sandbox
        .admin(Method::GET, "/__sandbox/faults", None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(current, faults);
    let response = sandbox
        .admin(Method::DELETE, "/__sandbox/faults", None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let current: Value = sandbox
        .admin(Method::GET, "/__sandbox/faults", None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_same_keys(&current, &faults);
    assert_eq!(current["latency"], json!([]));
    assert_eq!(current["clock_skew_secs"], 0);
}

#[tokio::test]
async fn bad_fault_sets_are_rejected() {
    let sandbox = Sandbox::start(admin_config()).await;
    let bad = json!({
        "errors": [{ "route_prefix": "api", "rate": 2.0, "status": 404 }],
        "latency": [{ "ms": 600000 }]
    });
    let response = sandbox
        .admin(Method::PUT, "/__sandbox/faults", Some(&bad))
        .await;
    let mut shape = fixture!("problem-validation.json");
    shape["errors"] = json!({
        "errors[0].route_prefix": [""],
        "errors[0].rate": [""],
        "errors[0].status": [""],
        "latency[0].ms": [""],
    });
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &shape).await;
    let unknown = json!({ "explode": true });
    let response = sandbox
        .admin(Method::PUT, "/__sandbox/faults", Some(&unknown))
        .await;
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        &fixture!("problem-not-found.json"),
    )
    .await;
}

#[tokio::test]
async fn latency_delays_matching_routes() {
    let sandbox = Sandbox::start(admin_config()).await;
    let token = sandbox.token(BFF).await;
    set_faults(
        &sandbox,
        json!({ "latency": [{ "route_prefix": "/api/v1/agents", "ms": 800 }] }),
    )
    .await;
    let started = Instant::now();
    let response = sandbox.get("/api/v1/agents", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(800));
    // The admin routes are never delayed, so a test can always lift a fault quickly.
    let started = Instant::now();
    sandbox
        .admin(Method::DELETE, "/__sandbox/faults", None)
        .await;
    let response = sandbox.get("/api/v1/agents", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(800));
}

#[tokio::test]
async fn error_rates_answer_server_errors_on_their_prefix() {
    let sandbox = Sandbox::start(admin_config()).await;
    let token = sandbox.token(BFF).await;
    set_faults(
        &sandbox,
        json!({ "errors": [
            { "route_prefix": "/api/v1/tools", "rate": 1.0, "status": 503 },
            { "route_prefix": "/api/v1/phone-numbers", "rate": 0.0, "status": 500 },
        ] }),
    )
    .await;
    for _ in 0..3 {
        let response = sandbox.get("/api/v1/tools", &token).await;
        assert_eq!(fault_of(&response), Some("error"));
        let problem = assert_problem(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            &fixture!("problem-not-found.json"),
        )
        .await;
        assert_eq!(problem["title"], "Service Unavailable");
    }
    let response = sandbox.get("/api/v1/phone-numbers", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = sandbox.get("/api/v1/agents", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_burst_answers_429_to_the_next_requests_then_stops() {
    let sandbox = Sandbox::start(admin_config()).await;
    let token = sandbox.token(BFF).await;
    set_faults(
        &sandbox,
        json!({ "bursts": [{ "route_prefix": "/api/v1/agents", "count": 2, "retry_after_secs": 7 }] }),
    )
    .await;
    for _ in 0..2 {
        let response = sandbox.get("/api/v1/agents", &token).await;
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(fault_of(&response), Some("burst"));
        assert_problem(
            response,
            StatusCode::TOO_MANY_REQUESTS,
            &fixture!("problem-rate-limited.json"),
        )
        .await;
    }
    let response = sandbox.get("/api/v1/agents", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let current: Value = sandbox
        .admin(Method::GET, "/__sandbox/faults", None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(current["bursts"][0]["count"], 0);
}

#[tokio::test]
async fn a_token_endpoint_outage_answers_503_until_lifted() {
    let sandbox = Sandbox::start(admin_config()).await;
    set_faults(&sandbox, json!({ "token_endpoint_down": true })).await;
    let response = sandbox.token_response(BFF).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fault_of(&response), Some("token-endpoint-down"));
    let body: Value = response.json().await.expect("JSON");
    assert_same_keys(&body, &fixture!("token-error-temporarily-unavailable.json"));
    assert_eq!(body["error"], "temporarily_unavailable");
    // Discovery and keys stay up: only the token endpoint is out.
    let response = sandbox
        .http
        .get(format!(
            "{}/.well-known/openid-configuration",
            sandbox.issuer()
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    sandbox
        .admin(Method::DELETE, "/__sandbox/faults", None)
        .await;
    sandbox.token(BFF).await;
}

#[tokio::test]
async fn clock_skew_moves_the_times_of_new_tokens() {
    let sandbox = Sandbox::start(admin_config()).await;
    set_faults(&sandbox, json!({ "clock_skew_secs": -3600 })).await;
    let skewed = sandbox.token(BFF).await;
    let claims = claims_of(&skewed);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((now - 3600 - iat).abs() <= 2, "iat {iat}, now {now}");
    assert_eq!(claims["exp"].as_i64().expect("exp") - iat, 300);
    // The API's clock is not skewed, so the token has long expired there.
    let response = sandbox.get("/api/v1/agents", &skewed).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    sandbox
        .admin(Method::DELETE, "/__sandbox/faults", None)
        .await;
    let fresh = sandbox.token(BFF).await;
    assert_eq!(
        sandbox.get("/api/v1/agents", &fresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_hub_drop_flag_reaches_the_state_and_its_watchers() {
    let (sandbox, state) = Sandbox::start_with_state(admin_config()).await;
    let mut watcher = state.faults().watch_drop_hub_connections();
    assert!(!state.faults().drop_hub_connections());
    set_faults(&sandbox, json!({ "drop_hub_connections": true })).await;
    assert!(state.faults().drop_hub_connections());
    tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("the watcher is told in time")
        .expect("the sender lives");
    assert!(*watcher.borrow_and_update());
    sandbox
        .admin(Method::DELETE, "/__sandbox/faults", None)
        .await;
    assert!(!state.faults().drop_hub_connections());
}

#[tokio::test]
async fn dropping_hub_connections_ends_them_without_a_close_message() {
    let (sandbox, _state) = Sandbox::start_with_state(admin_config()).await;
    let token = sandbox.token(BFF).await;
    let mut client = crate::signalr::connect(&sandbox, &token).await;
    set_faults(&sandbox, json!({ "drop_hub_connections": true })).await;
    // A dropped connection ends with no close record (`{"type":7}`), like a network failure.
    client.expect_closed().await;
    // While the fault is on, new connections vanish as well.
    let id = crate::signalr::connection_token(&sandbox, &token).await;
    let mut again = crate::signalr::open(&sandbox, &format!("?id={id}&access_token={token}"), None)
        .await
        .expect("the upgrade itself succeeds");
    again.send(&crate::signalr::handshake()).await;
    again.expect_closed().await;
}
