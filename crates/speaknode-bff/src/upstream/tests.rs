//! Tests of the platform client: the contract fixtures, the visitor's view of a
//! conversation, and token handling against a tiny fake platform on loopback.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use base64::Engine;
use oauth2::TokenResponse;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            "../../../speaknode-sandbox/contract/fixtures/",
            $name
        ))
    };
}

fn conversation(text: &str) -> Conversation {
    serde_json::from_str(text).expect("the fixture is a conversation")
}

#[test]
fn every_fixture_the_bff_reads_deserialises() {
    let agent: Agent = serde_json::from_str(fixture!("agent.json")).expect("agent");
    assert_eq!(agent.title, "Ava");
    let discovery: oidc::Discovery =
        serde_json::from_str(fixture!("openid-configuration.json")).expect("discovery");
    assert!(discovery.token_endpoint.starts_with(&discovery.issuer));
    let token: oauth2::basic::BasicTokenResponse =
        serde_json::from_str(fixture!("token-response.json")).expect("token response");
    assert_eq!(token.expires_in(), Some(Duration::from_secs(300)));
    let error: oauth2::basic::BasicErrorResponse =
        serde_json::from_str(fixture!("token-error-invalid-client.json")).expect("token error");
    assert_eq!(error.error().as_ref(), "invalid_client");
    for problem in [
        fixture!("problem-not-found.json"),
        fixture!("problem-rate-limited.json"),
        fixture!("problem-unauthorized.json"),
        fixture!("problem-validation.json"),
    ] {
        let problem: UpstreamProblem = serde_json::from_str(problem).expect("problem");
        assert!(problem.trace_id.is_some_and(|id| id.starts_with("00-")));
    }
    let pending = conversation(fixture!("conversation-pending.json")).into_view();
    assert_eq!(pending.status, ConversationStatus::Pending);
    assert!(pending.history.is_empty());
}

/// The contract's join token is what the sandbox mints (its own unit test mints it again),
/// so the BFF's checks accept exactly the platform's documented offer.
#[test]
fn the_fixtures_livekit_offer_passes_the_checks() {
    // The fixtures' token is valid from 2026-11-29T08:30:00Z for 300 s.
    let minted_at = 1_795_941_000;
    for name in ["conversation-pending.json", "conversation-active.json"] {
        let raw = match name {
            "conversation-pending.json" => fixture!("conversation-pending.json"),
            _ => fixture!("conversation-active.json"),
        };
        let voice = conversation(raw)
            .voice(600, minted_at + 10)
            .expect("the checks pass")
            .expect("a web conversation offers voice");
        assert_eq!(voice.url, "ws://127.0.0.1:8780", "{name}");
        // A cap below the token's lifetime fails closed.
        assert!(conversation(raw).voice(120, minted_at).is_err(), "{name}");
    }
}

#[test]
fn the_dispatch_request_matches_the_fixture() {
    let expected: Value =
        serde_json::from_str(fixture!("dispatch-web-request.json")).expect("json");
    let agent_id = expected["agent_id"].as_str().expect("agent_id");
    let body = DispatchRequest {
        agent_id,
        channel: "Web",
        dynamic_variables: serde_json::Map::new(),
        url_parameters: serde_json::Map::new(),
    };
    assert_eq!(serde_json::to_value(&body).expect("serialises"), expected);
}

#[test]
fn the_view_keeps_only_spoken_messages_in_time_order() {
    let view = conversation(fixture!("conversation-active.json")).into_view();
    assert_eq!(view.status, ConversationStatus::Active);
    assert_eq!(view.agent_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert_eq!(
        view.started_at.as_deref(),
        Some("2026-11-29T08:30:01.2000000Z")
    );
    let turns: Vec<_> = view
        .history
        .iter()
        .map(|t| (t.role, t.text.as_str()))
        .collect();
    assert_eq!(
        turns,
        [
            (Role::Agent, "Hi! I'm Ava. How can I help you today?"),
            (Role::User, "Where is my order?")
        ]
    );
    let user = &view.history[1];
    assert_eq!(user.id, "item_0e9d8c7b6a5f");
    assert_eq!(user.at.as_deref(), Some("2026-11-29T08:30:04.1000000Z"));
    assert!(user.interrupted);
}

#[test]
fn the_view_never_carries_internal_members() {
    let json =
        serde_json::to_string(&conversation(fixture!("conversation-active.json")).into_view())
            .expect("serialises");
    for internal in [
        "You are Ava",        // system prompt
        "check_order_status", // tool name
        "+4930123456789",     // phone number in tool arguments
        "shipped",            // tool output
        "call_8c1f",          // tool call id
        "EG_k2Hq8bV1cJ3d",    // LiveKit egress
        "AD_7sFp2mQ9xW4e",    // LiveKit dispatch
        "AJ_Zp3nR8tY6uK1",    // LiveKit job
        "web-a3bb189e",       // LiveKit room
        "service-account",    // who called
        "transcript_confidence",
        "error_message",
    ] {
        assert!(
            !json.contains(internal),
            "the view leaks {internal:?}: {json}"
        );
    }
}

#[test]
fn the_view_sorts_by_time_and_tolerates_the_unexpected() {
    let mut raw: Value = serde_json::from_str(fixture!("conversation-active.json")).expect("json");
    raw["status"] = json!("Transferring");
    let history = raw["history"].as_array_mut().expect("history");
    history.reverse();
    history.push(
        json!({ "id": "late", "role": "Assistant", "kind": "Message",
        "content": "Anything else?", "created_at": "2026-11-29T08:31:00Z" }),
    );
    history.push(
        json!({ "id": "undated", "role": "User", "kind": "Message", "content": "hm",
        "created_at": null }),
    );
    history.push(
        json!({ "id": "new-kind", "role": "Assistant", "kind": "Reaction", "content": "👍" }),
    );
    history
        .push(json!({ "id": "new-role", "role": "Narrator", "kind": "Message", "content": "…" }));
    history.push(json!({ "id": "blank", "role": "Assistant", "kind": "Message", "content": "  " }));
    history.push(json!({ "role": "Assistant", "kind": "Message", "content": "no id" }));
    let view = conversation(&raw.to_string()).into_view();
    assert_eq!(view.status, ConversationStatus::Unknown);
    let ids: Vec<_> = view.history.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["item_9a8b7c6d5e4f", "item_0e9d8c7b6a5f", "late", "undated"]
    );

    let bare: Conversation = serde_json::from_value(
        json!({ "id": "c", "agent_id": "a", "status": null, "history": null }),
    )
    .expect("nulls are tolerated");
    assert!(bare.into_view().history.is_empty());
}

// A fake platform on loopback: discovery, a counting token endpoint and one API route.

const REALM: &str = "/realms/test";

/// How the fake platform's agent route answers, given the bearer token it received.
type Answer = fn(&str) -> Response;

#[derive(Clone, Default)]
struct Counters {
    tokens: Arc<AtomicUsize>,
    api: Arc<AtomicUsize>,
}

async fn spawn(build: impl FnOnce(&str) -> Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let app = build(&base);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("fake platform") });
    base
}

fn upstream(base: &str, timeout_ms: u64) -> Upstream {
    Upstream::new(&UpstreamConfig {
        issuer: format!("{base}{REALM}"),
        api_base: base.to_owned(),
        client_id: "bff".into(),
        client_secret: SecretString::from("s3cret"),
        timeout_ms,
        ..UpstreamConfig::default()
    })
    .expect("client")
}

/// Discovery plus a token endpoint that checks HTTP Basic client authentication and
/// numbers its tokens `tok-1`, `tok-2`, …
fn identity(base: &str, counters: &Counters, expires_in: u64) -> Router {
    let issuer = format!("{base}{REALM}");
    let discovery = json!({ "issuer": issuer, "token_endpoint": format!("{issuer}/token") });
    let tokens = counters.tokens.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bff:s3cret")
    );
    Router::new()
        .route(
            &format!("{REALM}/.well-known/openid-configuration"),
            get(move || std::future::ready(Json(discovery.clone()))),
        )
        .route(
            &format!("{REALM}/token"),
            post(move |headers: HeaderMap| {
                let response = if headers
                    .get(AUTHORIZATION)
                    .is_none_or(|v| v != expected.as_str())
                {
                    let error = json!({ "error": "invalid_client" });
                    (StatusCode::UNAUTHORIZED, Json(error)).into_response()
                } else {
                    let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                    Json(
                        json!({ "access_token": format!("tok-{n}"), "token_type": "Bearer",
                        "expires_in": expires_in, "refresh_expires_in": 0 }),
                    )
                    .into_response()
                };
                std::future::ready(response)
            }),
        )
}

fn agent_route(counters: &Counters, answer: Answer) -> MethodRouter {
    let api = counters.api.clone();
    get(move |headers: HeaderMap| {
        api.fetch_add(1, Ordering::SeqCst);
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        std::future::ready(answer(bearer.strip_prefix("Bearer ").unwrap_or("")))
    })
}

fn ava(_: &str) -> Response {
    Json(json!({ "id": "a", "title": "Ava", "space_id": "s" })).into_response()
}

async fn platform(expires_in: u64, answer: Answer) -> (Arc<Upstream>, Counters) {
    let counters = Counters::default();
    let base = spawn(|base| {
        identity(base, &counters, expires_in)
            .route("/api/v1/agents/{id}", agent_route(&counters, answer))
    })
    .await;
    (Arc::new(upstream(&base, 2_000)), counters)
}

#[tokio::test]
async fn concurrent_calls_on_a_cold_cache_fetch_one_token() {
    let (upstream, counters) = platform(300, ava).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let upstream = upstream.clone();
        calls.spawn(async move { upstream.get_agent("a").await.map(|agent| agent.title) });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.expect("task").expect("call"), "Ava");
    }
    assert_eq!(
        counters.tokens.load(Ordering::SeqCst),
        1,
        "one token call for 50 requests"
    );
    assert_eq!(counters.api.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn grant_requests_carry_the_configured_resource_audience_and_scope() {
    let forms = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let base = spawn(|base| {
        let issuer = format!("{base}{REALM}");
        let discovery = json!({ "issuer": issuer, "token_endpoint": format!("{issuer}/token") });
        let forms = forms.clone();
        Router::new()
            .route(
                &format!("{REALM}/.well-known/openid-configuration"),
                get(move || std::future::ready(Json(discovery.clone()))),
            )
            .route(
                &format!("{REALM}/token"),
                post(move |form: String| {
                    forms.lock().expect("forms").push(form);
                    std::future::ready(Json(
                        json!({ "access_token": "t", "token_type": "Bearer", "expires_in": 300 }),
                    ))
                }),
            )
    })
    .await;
    let configured = UpstreamConfig {
        issuer: format!("{base}{REALM}"),
        api_base: base.clone(),
        client_id: "bff".into(),
        client_secret: SecretString::from("s3cret"),
        resource: Some("https://voice-api.example".into()),
        audience: Some("voice-api".into()),
        scope: Some("agents:read  conversations:write".into()),
        ..UpstreamConfig::default()
    };
    let bare = UpstreamConfig {
        resource: None,
        audience: None,
        scope: None,
        ..configured.clone()
    };
    for config in [configured, bare] {
        let upstream = Upstream::new(&config).expect("client");
        upstream.credentials.access_token().await.expect("a token");
    }
    let forms: Vec<BTreeMap<String, String>> = forms
        .lock()
        .expect("forms")
        .iter()
        .map(|form| {
            Url::parse(&format!("http://form/?{form}"))
                .expect("a form")
                .query_pairs()
                .into_owned()
                .collect()
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("grant_type", "client_credentials"),
        ("resource", "https://voice-api.example"),
        ("audience", "voice-api"),
        ("scope", "agents:read conversations:write"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(forms[0], expected);
    let only_the_grant: Vec<_> = forms[1].keys().map(String::as_str).collect();
    assert_eq!(
        only_the_grant,
        ["grant_type"],
        "nothing unconfigured is sent"
    );
}

#[tokio::test]
async fn a_token_is_reused_until_shortly_before_it_expires() {
    let (upstream, counters) = platform(300, ava).await;
    upstream.get_agent("a").await.expect("first");
    upstream.get_agent("a").await.expect("second");
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 1);

    // A token that expires at once is inside its refresh margin from the start.
    let (upstream, counters) = platform(0, ava).await;
    upstream.get_agent("a").await.expect("first");
    upstream.get_agent("a").await.expect("second");
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_401_drops_the_token_and_retries_once() {
    fn refuse_first(token: &str) -> Response {
        if token == "tok-1" {
            StatusCode::UNAUTHORIZED.into_response()
        } else {
            ava(token)
        }
    }
    let (upstream, counters) = platform(300, refuse_first).await;
    assert_eq!(upstream.get_agent("a").await.expect("retried").title, "Ava");
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 2);
    assert_eq!(counters.api.load(Ordering::SeqCst), 2);

    fn refuse_all(_: &str) -> Response {
        StatusCode::UNAUTHORIZED.into_response()
    }
    let (upstream, counters) = platform(300, refuse_all).await;
    assert!(matches!(
        upstream.get_agent("a").await,
        Err(UpstreamError::BadGateway(_))
    ));
    assert_eq!(
        counters.api.load(Ordering::SeqCst),
        2,
        "exactly one retry, no loop"
    );
}

#[tokio::test]
async fn platform_answers_map_to_upstream_errors() {
    fn limited(_: &str) -> Response {
        (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, "120")]).into_response()
    }
    fn limited_briefly(_: &str) -> Response {
        (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, "2")]).into_response()
    }
    fn limited_silently(_: &str) -> Response {
        StatusCode::TOO_MANY_REQUESTS.into_response()
    }
    fn missing(_: &str) -> Response {
        (StatusCode::NOT_FOUND, fixture!("problem-not-found.json")).into_response()
    }
    fn forbidden(_: &str) -> Response {
        StatusCode::FORBIDDEN.into_response()
    }
    fn failing(_: &str) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, "<html>oops</html>").into_response()
    }
    fn garbage(_: &str) -> Response {
        "{\"title\": 42".into_response()
    }
    // Each answer and the start of the error's Debug form it must map to.
    let cases: [(Answer, &str); 7] = [
        (limited, "RateLimited { retry_after: 60 }"),
        (limited_briefly, "RateLimited { retry_after: 2 }"),
        (limited_silently, "RateLimited { retry_after: 5 }"),
        (missing, "NotFound"),
        (forbidden, "BadGateway"),
        (failing, "BadGateway"),
        (garbage, "BadGateway"),
    ];
    for (answer, expected) in cases {
        let (upstream, _) = platform(300, answer).await;
        let error = upstream
            .get_agent("a")
            .await
            .expect_err("the platform failed");
        assert!(
            format!("{error:?}").starts_with(expected),
            "{expected}: got {error:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_platform_times_out() {
    let counters = Counters::default();
    let base = spawn(|base| {
        identity(base, &counters, 300).route(
            "/api/v1/agents/{id}",
            get(std::future::pending::<&'static str>),
        )
    })
    .await;
    let error = upstream(&base, 200)
        .get_agent("a")
        .await
        .expect_err("no answer");
    assert!(matches!(error, UpstreamError::Timeout(_)), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_unavailable() {
    // Bind and drop a listener, so the port is known to be closed.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let error = upstream(&base, 2_000)
        .get_agent("a")
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, UpstreamError::IdentityUnavailable(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_refusal_not_an_outage() {
    let counters = Counters::default();
    let base = spawn(|base| identity(base, &counters, 300)).await;
    let mut config = UpstreamConfig {
        issuer: format!("{base}{REALM}"),
        api_base: base.clone(),
        client_id: "bff".into(),
        client_secret: SecretString::from("wrong"),
        timeout_ms: 2_000,
        ..UpstreamConfig::default()
    };
    let error = Upstream::new(&config)
        .expect("client")
        .get_agent("a")
        .await
        .expect_err("refused");
    assert!(matches!(error, UpstreamError::BadGateway(_)), "{error:?}");
    assert!(
        !error.to_string().contains("wrong"),
        "the secret must not reach the log"
    );

    // Discovery that names another issuer is a mix-up: no secret is sent anywhere.
    config.issuer = format!("{base}/realms/other");
    let base_for_other = spawn(|base| {
        let discovery = json!({ "issuer": format!("{base}/realms/evil"),
            "token_endpoint": format!("{base}/realms/evil/token") });
        Router::new().route(
            "/realms/other/.well-known/openid-configuration",
            get(move || std::future::ready(Json(discovery.clone()))),
        )
    })
    .await;
    config.issuer = format!("{base_for_other}/realms/other");
    let error = Upstream::new(&config)
        .expect("client")
        .get_agent("a")
        .await
        .expect_err("mix-up");
    assert!(matches!(error, UpstreamError::BadGateway(_)), "{error:?}");
}

#[tokio::test]
async fn requests_waiting_on_a_failed_refresh_share_its_error() {
    // The token endpoint holds its first answer until the test releases it, so that the
    // other requests are provably queued behind that refresh.
    let hit = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let base = spawn(|base| {
        let issuer = format!("{base}{REALM}");
        let discovery = json!({ "issuer": issuer, "token_endpoint": format!("{issuer}/token") });
        let (hit, release, calls) = (hit.clone(), release.clone(), calls.clone());
        Router::new()
            .route(
                &format!("{REALM}/.well-known/openid-configuration"),
                get(move || std::future::ready(Json(discovery.clone()))),
            )
            .route(
                &format!("{REALM}/token"),
                post(move || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    hit.notify_one();
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }),
            )
    })
    .await;
    let upstream = Arc::new(upstream(&base, 2_000));
    let first = tokio::spawn({
        let upstream = upstream.clone();
        async move { upstream.credentials.access_token().await }
    });
    hit.notified().await;
    let mut waiting: Vec<_> = (0..20)
        .map(|_| Box::pin(upstream.credentials.access_token()))
        .collect();
    // Poll each once: it notes the attempt counter and queues on the lock.
    std::future::poll_fn(|cx| {
        for call in &mut waiting {
            assert!(
                call.as_mut().poll(cx).is_pending(),
                "the refresh holds the lock"
            );
        }
        Poll::Ready(())
    })
    .await;
    release.notify_one();
    assert!(first.await.expect("task").is_err());
    for call in waiting {
        assert!(call.await.is_err());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the waiters did not each retry"
    );
}

#[test]
fn ids_cannot_change_the_route() {
    let upstream = upstream("http://127.0.0.1:9", 1_000);
    let url = upstream
        .api_url(&["conversations", "a/b?c#d"])
        .expect("encoded");
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:9/api/v1/conversations/a%2Fb%3Fc%23d"
    );
    for id in ["", ".", ".."] {
        assert!(matches!(
            upstream.api_url(&["conversations", id]),
            Err(UpstreamError::NotFound)
        ));
    }
    let nested = Upstream::new(&UpstreamConfig {
        api_base: "https://platform.example/speaknode/".into(),
        ..upstream_config()
    })
    .expect("client");
    let url = nested.api_url(&["agents", "x"]).expect("url");
    assert_eq!(
        url.as_str(),
        "https://platform.example/speaknode/api/v1/agents/x"
    );
}

fn upstream_config() -> UpstreamConfig {
    UpstreamConfig {
        issuer: "https://id.example/realms/test".into(),
        api_base: "https://platform.example".into(),
        client_id: "bff".into(),
        client_secret: SecretString::from("s3cret"),
        timeout_ms: 1_000,
        ..UpstreamConfig::default()
    }
}

#[test]
fn attack_07_a_half_or_roomless_livekit_offer_is_refused_and_none_is_no_voice() {
    let offer = |url: Value, token: Value, room: Value| {
        let mut value: Value =
            serde_json::from_str(fixture!("conversation-pending.json")).expect("json");
        value["live_kit_url"] = url;
        value["live_kit_participant_token"] = token;
        value["live_kit_room_name"] = room;
        conversation(&value.to_string()).voice(600, 1_800_000_000)
    };
    let (url, token, room) = (json!("wss://lk.example"), json!("a.b.c"), json!("web-x"));
    assert_eq!(
        offer(Value::Null, Value::Null, room.clone()).ok(),
        Some(None)
    );
    for (url, token, room) in [
        (url.clone(), Value::Null, room.clone()),
        (Value::Null, token.clone(), room),
        (url, token, Value::Null),
    ] {
        assert!(
            matches!(offer(url, token, room), Err(UpstreamError::BadGateway(_))),
            "refused"
        );
    }
}
