//! The SignalR hub: negotiation, authentication, handshake, the events of a conversation's
//! lifecycle, space isolation, keep-alive and closing.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use speaknode_sandbox::{Config, HubConfig, Timing};

use crate::{
    signalr::{RS, connect, connection_token, handshake, negotiate, open},
    support::{AVA, BFF, BORIS, OTHER_BFF, Sandbox, assert_same_keys, config, eventually, fixture},
};

/// Steps fast enough for a test, slow enough to be told apart.
fn quick() -> Config {
    config(Timing {
        dispatch_ms: 30,
        join_ms: 30,
    })
}

/// Dispatches a web conversation with `agent` and returns its id.
async fn dispatch(sandbox: &Sandbox, token: &str, agent: uuid::Uuid) -> String {
    let response = sandbox
        .dispatch(token, &json!({ "agent_id": agent, "channel": "Web" }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let conversation: Value = response.json().await.expect("JSON");
    conversation["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn negotiate_answers_as_aspnet_core_does_for_each_version() {
    let sandbox = Sandbox::start(quick()).await;
    let token = sandbox.token(BFF).await;

    let response = negotiate(&sandbox, "?negotiateVersion=1", Some(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let v1: Value = response.json().await.expect("JSON");
    assert_same_keys(&v1, &fixture!("hub-negotiate-response.json"));
    assert_eq!(v1["negotiateVersion"], 1);
    assert_eq!(
        v1["availableTransports"],
        json!([{ "transport": "WebSockets", "transferFormats": ["Text", "Binary"] }])
    );
    let (id, secret) = (&v1["connectionId"], &v1["connectionToken"]);
    for value in [id, secret] {
        assert_eq!(value.as_str().map(str::len), Some(22), "{v1}");
    }
    assert_ne!(id, secret);

    // Version 0 has no token: the connection id is what the transport names.
    let v0: Value = negotiate(&sandbox, "", Some(&token))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none(), "{v0}");
    let later: Value = negotiate(&sandbox, "?negotiateVersion=7", Some(&token))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(later["negotiateVersion"], 1);

    let response = negotiate(&sandbox, "?negotiateVersion=one", Some(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error, fixture!("hub-negotiate-error.json"));

    // The token may also come as the query parameter, as on the WebSocket request.
    let response = negotiate(
        &sandbox,
        &format!("?negotiateVersion=1&access_token={token}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = sandbox
        .http
        .get(sandbox.url("/hubs/notifications/negotiate"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_client_hears_every_step_of_its_conversation_in_order() {
    let (sandbox, state) = Sandbox::start_with_state(quick()).await;
    let token = sandbox.token(BFF).await;
    let mut client = connect(&sandbox, &token).await;
    let id = dispatch(&sandbox, &token, AVA).await;

    let model = fixture!("hub-agent-session-updated.json");
    let session = |message: Value| {
        assert_same_keys(&message, &model);
        assert_eq!(message["arguments"].as_array().map(Vec::len), Some(1));
        let session = message["arguments"][0].clone();
        assert_eq!(session["id"], id.as_str());
        session
    };
    let pending = session(client.invocation("AgentSessionUpdated").await);
    assert_eq!(pending["status"], "Pending");
    let dispatching = session(client.invocation("AgentSessionUpdated").await);
    assert_eq!(dispatching["status"], "Dispatching");
    assert!(dispatching["live_kit_room_name"].is_string());
    let active = session(client.invocation("AgentSessionUpdated").await);
    assert_eq!(active["status"], "Active");
    assert!(active["started_at"].is_string());

    let uuid = id.parse().expect("UUID");
    assert!(state.complete_conversation(uuid));
    let completed = session(client.invocation("AgentSessionUpdated").await);
    assert_eq!(completed["status"], "Completed");
    assert!(completed["ended_at"].is_string());
    let usage = client.invocation("UsageUpdated").await;
    assert_same_keys(&usage, &fixture!("hub-usage-updated.json"));
    let usage = &usage["arguments"][0];
    assert_eq!(usage["metric_code"], "voice_minutes");
    let minutes = usage["value"].as_f64().expect("a number");
    let seconds = completed["duration_seconds"].as_f64().expect("a number");
    assert!(
        minutes > 0.0 && (minutes * 60.0 - seconds).abs() < 1e-6,
        "{usage}"
    );

    // An ended conversation stays as it ended.
    assert!(!state.complete_conversation(uuid));
    assert!(!state.fail_conversation(uuid, "too late"));
    assert!(!state.complete_conversation(uuid::Uuid::new_v4()));
    let rest: Value = sandbox
        .get(&format!("/api/v1/conversations/{id}"), &token)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(rest["status"], "Completed");
    assert_eq!(rest["ended_at"], completed["ended_at"]);
}

#[tokio::test]
async fn a_failed_conversation_says_why() {
    let (sandbox, state) = Sandbox::start_with_state(config(Timing {
        dispatch_ms: 600_000,
        join_ms: 1,
    }))
    .await;
    let token = sandbox.token(BFF).await;
    let mut client = connect(&sandbox, &token).await;
    let id = dispatch(&sandbox, &token, AVA).await;
    client.invocation("AgentSessionUpdated").await;
    assert!(state.fail_conversation(id.parse().expect("UUID"), "No agent is available."));
    let failed = client.invocation("AgentSessionUpdated").await;
    let failed = &failed["arguments"][0];
    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["error_message"], "No agent is available.");
    // It never started, so it used no minutes: the next event is of the next conversation,
    // not a UsageUpdated.
    let next = dispatch(&sandbox, &token, AVA).await;
    let message = client.invocation("AgentSessionUpdated").await;
    assert_eq!(message["arguments"][0]["id"], next.as_str());
}

#[tokio::test]
async fn a_client_hears_nothing_of_another_space() {
    let sandbox = Sandbox::start(quick()).await;
    let (token, other_token) = (sandbox.token(BFF).await, sandbox.token(OTHER_BFF).await);
    let mut mine = connect(&sandbox, &token).await;
    let mut theirs = connect(&sandbox, &other_token).await;

    let id = dispatch(&sandbox, &token, AVA).await;
    for status in ["Pending", "Dispatching", "Active"] {
        let message = mine.invocation("AgentSessionUpdated").await;
        assert_eq!(message["arguments"][0]["status"], status);
        assert_eq!(message["arguments"][0]["id"], id.as_str());
    }
    // Every event of that conversation has been published; the other space's first event
    // must be of its own conversation.
    let other_id = dispatch(&sandbox, &other_token, BORIS).await;
    let first = theirs.invocation("AgentSessionUpdated").await;
    assert_eq!(first["arguments"][0]["id"], other_id.as_str());
    assert_eq!(first["arguments"][0]["status"], "Pending");
}

#[tokio::test]
async fn bad_tokens_unknown_and_used_connection_ids_are_refused() {
    let mut config = quick();
    config.access_token_ttl_secs = 0;
    let sandbox = Sandbox::start(config).await;

    for token in [None, Some("not.a.jwt")] {
        let response = negotiate(&sandbox, "?negotiateVersion=1", token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    let id = connection_token(&sandbox, &sandbox.token(BFF).await).await;
    for query in [
        format!("?id={id}"),
        format!("?id={id}&access_token=not.a.jwt"),
    ] {
        let refused = open(&sandbox, &query, None).await.err();
        assert_eq!(refused, Some(StatusCode::UNAUTHORIZED), "{query}");
    }

    // Tokens of this sandbox live for no time; once past the leeway they open nothing.
    let expired = sandbox.token(BFF).await;
    eventually("the token to expire", || async {
        let response = negotiate(&sandbox, "?negotiateVersion=1", Some(&expired)).await;
        (response.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let refused = open(&sandbox, &format!("?id={id}&access_token={expired}"), None)
        .await
        .err();
    assert_eq!(refused, Some(StatusCode::UNAUTHORIZED));

    // The refusals above did not use the token up; a good token takes it, once. The
    // bearer header works on the upgrade as well as the query parameter.
    let good = sandbox.token(BFF).await;
    let bearer = format!("Bearer {good}");
    let unknown = open(&sandbox, "?id=AAAAAAAAAAAAAAAAAAAAAA", Some(&bearer)).await;
    assert_eq!(unknown.err(), Some(StatusCode::NOT_FOUND));
    let mut client = open(&sandbox, &format!("?id={id}"), Some(&bearer))
        .await
        .expect("the negotiated connection");
    client.send(&handshake()).await;
    assert_eq!(client.next().await, json!({}));
    let again = open(&sandbox, &format!("?id={id}"), Some(&bearer)).await;
    assert_eq!(again.err(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn a_websocket_client_may_skip_negotiation() {
    let sandbox = Sandbox::start(quick()).await;
    let token = sandbox.token(BFF).await;
    let mut client = open(&sandbox, &format!("?access_token={token}"), None)
        .await
        .expect("upgrade without negotiation");
    client.send(&handshake()).await;
    assert_eq!(client.next().await, json!({}));
    let id = dispatch(&sandbox, &token, AVA).await;
    let message = client.invocation("AgentSessionUpdated").await;
    assert_eq!(message["arguments"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_plain_get_is_told_that_only_websockets_are_served() {
    let sandbox = Sandbox::start(quick()).await;
    let token = sandbox.token(BFF).await;
    let id = connection_token(&sandbox, &token).await;
    let get = |query: String| {
        sandbox
            .http
            .get(sandbox.url(&format!("/hubs/notifications{query}")))
            .bearer_auth(&token)
            .send()
    };
    let answers = [
        (String::new(), StatusCode::BAD_REQUEST),
        ("?id=unknown".to_owned(), StatusCode::NOT_FOUND),
        (format!("?id={id}"), StatusCode::NOT_FOUND),
    ];
    for (query, status) in answers {
        let response = get(query.clone()).await.expect("GET");
        assert_eq!(response.status(), status, "{query}");
    }
    let text = get(format!("?id={id}"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    assert_eq!(
        text,
        "LongPolling transport not supported by this end point type"
    );
}

#[tokio::test]
async fn the_server_pings_an_idle_connection() {
    let mut config = quick();
    config.hub = HubConfig {
        keep_alive_interval_ms: 50,
        ..HubConfig::default()
    };
    let sandbox = Sandbox::start(config).await;
    let mut client = connect(&sandbox, &sandbox.token(BFF).await).await;
    let ping = fixture!("hub-ping.json");
    assert_eq!(client.next().await, ping);
    assert_eq!(client.next().await, ping);
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_client_timeout() {
    let mut config = quick();
    config.hub = HubConfig {
        keep_alive_interval_ms: 50,
        client_timeout_ms: 300,
        ..HubConfig::default()
    };
    let sandbox = Sandbox::start(config).await;
    let mut client = connect(&sandbox, &sandbox.token(BFF).await).await;
    // Pings keep coming while the server waits; they do not count as the client's.
    let close = client.next_message().await;
    assert_eq!(
        close,
        json!({
            "type": 7,
            "error": "Server timeout elapsed without receiving a message from the client.",
            "allowReconnect": true
        })
    );
    client.expect_closed().await;
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_a_close_message() {
    let sandbox = Sandbox::start(quick()).await;
    let mut client = connect(&sandbox, &sandbox.token(BFF).await).await;
    let stopping = tokio::spawn(sandbox.stop());
    assert_eq!(client.next_message().await, fixture!("hub-close.json"));
    client.expect_closed().await;
    stopping
        .await
        .expect("stop task")
        .expect("serve returns Ok after shutdown");
}

#[tokio::test]
async fn several_records_in_one_frame_and_one_record_over_two_frames_are_read() {
    let sandbox = Sandbox::start(quick()).await;
    let token = sandbox.token(BFF).await;
    let id = connection_token(&sandbox, &token).await;
    let mut client = open(&sandbox, &format!("?id={id}&access_token={token}"), None)
        .await
        .expect("upgrade");
    // Handshake, ping, an invocation and half of another, all in one frame.
    let first = format!(
        "{}{{\"type\":6}}{RS}{{\"type\":1,\"invocationId\":\"1\",\"target\":\"JoinSpace\",\
         \"arguments\":[]}}{RS}{{\"type\":1,\"invocationId\":\"2\",",
        handshake()
    );
    client.send(&first).await;
    client
        .send(&format!("\"target\":\"Leave\",\"arguments\":[]}}{RS}"))
        .await;
    assert_eq!(client.next().await, json!({}));
    assert_eq!(
        client.next_message().await,
        fixture!("hub-completion-error.json")
    );
    let second = client.next_message().await;
    assert_eq!(second["invocationId"], "2");
    assert_eq!(
        second["error"],
        "Failed to invoke 'Leave' due to an error on the server. HubException: Method does not exist."
    );
}

#[tokio::test]
async fn an_unsupported_protocol_is_refused_in_the_handshake() {
    let sandbox = Sandbox::start(quick()).await;
    let token = sandbox.token(BFF).await;
    let mut client = open(&sandbox, &format!("?access_token={token}"), None)
        .await
        .expect("upgrade");
    client
        .send(&format!(r#"{{"protocol":"messagepack","version":1}}{RS}"#))
        .await;
    assert_eq!(client.next().await, fixture!("hub-handshake-error.json"));
    client.expect_closed().await;
}

#[tokio::test]
async fn a_message_that_breaks_the_protocol_closes_the_connection() {
    let sandbox = Sandbox::start(quick()).await;
    let mut client = connect(&sandbox, &sandbox.token(BFF).await).await;
    client.send(&format!(r#"{{"type":"ping"}}{RS}"#)).await;
    let close = client.next_message().await;
    assert_eq!(close["type"], 7);
    assert_eq!(
        close["error"],
        "Connection closed with an error. InvalidDataException: Expected 'type' to be of type Integer."
    );
    assert!(close.get("allowReconnect").is_none(), "{close}");
    client.expect_closed().await;
}
