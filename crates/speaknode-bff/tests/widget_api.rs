//! The widget API end to end: the real sandbox behind the BFF, driven over HTTP as a
//! widget (and an attacker) would. Every response passes the leak check in `common`.

mod common;

use std::time::Duration;

use axum::Json;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, Header};
use reqwest::StatusCode;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ORIGIN, RETRY_AFTER,
    VARY,
};
use serde_json::{Value, json};
use speaknode_api::{WIDGET_HEADER, WIDGET_HEADER_VALUE, paths};

const WIDGET_TOKEN_TYPE: &str = "speaknode-widget+jwt";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn a_visitor_mints_starts_and_hears_the_greeting() {
    let stack = Stack::start().await;

    let minted = stack.mint(Some(ORIGIN_A), AGENT_A).await;
    assert_eq!(minted.status, StatusCode::CREATED, "{minted:?}");
    assert_eq!(minted.headers[CACHE_CONTROL], "no-store");
    assert_eq!(minted.headers[ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN_A);
    let grant: speaknode_api::SessionGrant = serde_json::from_str(&minted.body).expect("a grant");
    assert_eq!(
        grant.agent,
        speaknode_api::AgentInfo {
            id: AGENT_A.into(),
            name: "Ava".into()
        }
    );
    assert!((now() + 290..=now() + 300).contains(&grant.expires_at));
    let claims = claims_of(&grant.token);
    assert_eq!(
        claims["iss"],
        stack.bff.as_str(),
        "serve fills in public_url"
    );
    assert_eq!(claims["aud"], format!("{}/v1", stack.bff));
    assert_eq!(claims["scope"], "conversation:start");
    assert_eq!(claims["origin"], ORIGIN_A);
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|sub| sub.starts_with("v_"))
    );

    let started = stack.start_conversation(&grant.token, Some(ORIGIN_A)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    assert_eq!(started.headers[CACHE_CONTROL], "no-store");
    let started: speaknode_api::StartedConversation =
        serde_json::from_str(&started.body).expect("a started conversation");
    assert_eq!(started.conversation.agent_id, AGENT_A);
    assert!(!started.conversation.status.is_final());
    let bound = claims_of(&started.token);
    assert_eq!(bound["scope"], "conversation:read");
    assert_eq!(bound["conversation_id"], started.conversation.id.as_str());
    assert_eq!(bound["sub"], claims["sub"], "the same visitor");

    let id = started.conversation.id.clone();
    let view = eventually(
        Duration::from_secs(10),
        || stack.read_conversation(&started.token, &id),
        |view| {
            view["status"] == "Active" && view["history"].as_array().is_some_and(|h| !h.is_empty())
        },
    )
    .await;
    assert_eq!(view["history"][0]["role"], "agent");
    assert_eq!(view["history"][0]["text"], AVA_GREETING);
    let text = view.to_string();
    assert!(
        !text.contains("You are Ava"),
        "the system prompt must stay hidden: {text}"
    );
    assert!(
        !text.contains(AVA_DESCRIPTION),
        "the system prompt must stay hidden: {text}"
    );
    assert!(
        !text.contains("live_kit"),
        "internal ids must stay hidden: {text}"
    );
}

#[tokio::test]
async fn attack_01_and_03_minting_requires_an_exactly_allowed_origin() {
    let stack = Stack::start().await;
    for origin in [
        Some("https://shop.example.evil.com"),
        Some("https://evil.com"),
        Some("https://evilshop.example"),
        Some("http://shop.example"),
        Some("https://shop.example:8443"),
        Some("http://localhost:8081"),
        Some("HTTPS://SHOP.EXAMPLE"),
        Some("https://shop.example."),
        Some("https://shop.example/"),
        Some("null"),
        Some(""),
        Some(ORIGIN_B), // allowed for agent B, not for A
        // Case 3, the policy: a client sending no Origin (a script, not a browser) is never
        // given a token, whatever else it sends.
        None,
    ] {
        let reply = stack.mint(origin, AGENT_A).await;
        reply.assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    }
    assert_eq!(
        stack.mint(Some(ORIGIN_DEV), AGENT_A).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        stack.mint(Some(ORIGIN_B), AGENT_B).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn origin_and_agent_are_checked_before_the_platform_is_asked() {
    // With no platform at all, these answers can only come from the BFF's own checks.
    let dead = closed_port().await;
    let stack = Stack::start_with(|config| {
        config.upstream.issuer = format!("{dead}/realms/speaknode");
        config.upstream.api_base = dead.clone();
    })
    .await;
    stack
        .mint(Some("https://evil.com"), AGENT_A)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    stack
        .mint(None, AGENT_A)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    stack
        .mint(Some(ORIGIN_A), "not-configured")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "agent_not_found");
    // An origin that may embed nothing learns nothing about which agents exist.
    stack
        .mint(Some("https://evil.com"), "not-configured")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
}

#[tokio::test]
async fn unknown_agents_are_not_found() {
    let stack = Stack::start().await;
    stack
        .mint(Some(ORIGIN_A), "7c9e6679-0000-0000-0000-000000000000")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "agent_not_found");
    stack
        .mint(Some(ORIGIN_A), "../../realms")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "agent_not_found");
    // Configured in the BFF, unknown to the platform.
    stack
        .mint(Some(ORIGIN_A), AGENT_GHOST)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "agent_not_found");
}

#[tokio::test]
async fn attack_02_minting_needs_the_widget_header_and_a_json_body() {
    let stack = Stack::start().await;
    let post = || {
        stack
            .http
            .post(stack.url(paths::SESSIONS))
            .header(ORIGIN, ORIGIN_A)
    };
    let body = json!({ "agent_id": AGENT_A });

    let reply = stack.send(post().json(&body)).await;
    reply.assert_problem(StatusCode::BAD_REQUEST, "missing_widget_header");
    let reply = stack
        .send(post().header(WIDGET_HEADER, "2").json(&body))
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, "missing_widget_header");

    let widget = || post().header(WIDGET_HEADER, WIDGET_HEADER_VALUE);
    let plain = widget()
        .header(CONTENT_TYPE, "text/plain")
        .body(body.to_string());
    stack
        .send(plain)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request");
    let broken = widget()
        .header(CONTENT_TYPE, "application/json")
        .body("{\"agent_id\":");
    stack
        .send(broken)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_request");
    let wrong_type = widget().json(&json!({ "agent_id": 42 }));
    stack
        .send(wrong_type)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_request");
    let extra = widget().json(&json!({ "agent_id": AGENT_A, "admin": true }));
    stack
        .send(extra)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_request");
    let huge = widget().json(&json!({ "agent_id": "a".repeat(20 * 1024) }));
    stack
        .send(huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
}

/// Signs `claims` under `header` with the BFF's real key.
fn sign(stack: &Stack, header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &stack.key.encoding_key()).expect("sign")
}

async fn widget_header(stack: &Stack) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(WIDGET_TOKEN_TYPE.into());
    header.kid = Some(stack.kid().await);
    header
}

fn start_claims(stack: &Stack) -> Value {
    let now = now();
    json!({
        "iss": stack.bff, "aud": format!("{}/v1", stack.bff), "sub": "v_test",
        "agent_id": AGENT_A, "origin": ORIGIN_A, "scope": "conversation:start",
        "jti": "j-1", "iat": now, "nbf": now, "exp": now + 120,
    })
}

#[tokio::test]
async fn attack_13_forged_and_stale_tokens_are_refused_by_the_api() {
    let stack = Stack::start().await;
    let header = widget_header(&stack).await;
    let start = |token: String| {
        let stack = &stack;
        async move { stack.start_conversation(&token, Some(ORIGIN_A)).await }
    };

    // The control: a token signed like this is accepted, so each case below fails on
    // exactly the one thing it changes.
    let control = sign(&stack, &header, &start_claims(&stack));
    assert_eq!(start(control.clone()).await.status, StatusCode::CREATED);

    let mut expired = start_claims(&stack);
    expired["iat"] = json!(now() - 600);
    expired["nbf"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    start(sign(&stack, &header, &expired))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_expired");

    let mut cases: Vec<(&str, String)> = Vec::new();
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let other_der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&other_key).expect("der");
    let forged = jsonwebtoken::encode(
        &header,
        &start_claims(&stack),
        &jsonwebtoken::EncodingKey::from_ed_der(other_der.as_bytes()),
    )
    .expect("sign");
    cases.push(("another key under our kid", forged));
    for (member, value) in [
        ("aud", json!(format!("{}/v2", stack.bff))),
        ("aud", json!("speaknode-api")),
        ("iss", json!(stack.sandbox)),
        ("nbf", json!(now() + 120)),
        ("scope", json!("conversation:admin")),
    ] {
        let mut claims = start_claims(&stack);
        claims[member] = value;
        cases.push((member, sign(&stack, &header, &claims)));
    }
    let mut missing_sub = start_claims(&stack);
    missing_sub.as_object_mut().expect("object").remove("sub");
    cases.push(("no sub", sign(&stack, &header, &missing_sub)));
    for typ in [None, Some("JWT"), Some("at+jwt")] {
        let mut typed = header.clone();
        typed.typ = typ.map(str::to_owned);
        cases.push(("typ", sign(&stack, &typed, &start_claims(&stack))));
    }
    let mut unknown_kid = header.clone();
    unknown_kid.kid = Some("../../etc/passwd".into());
    cases.push(("kid", sign(&stack, &unknown_kid, &start_claims(&stack))));

    let parts: Vec<&str> = control.split('.').collect();
    let none_header = URL_SAFE_NO_PAD
        .encode(json!({ "alg": "none", "typ": WIDGET_TOKEN_TYPE, "kid": header.kid }).to_string());
    cases.push(("alg none", format!("{none_header}.{}.", parts[1])));
    cases.push(("signature stripped", format!("{}.{}.", parts[0], parts[1])));
    let mut tampered = claims_of(&control);
    tampered["agent_id"] = json!(AGENT_B);
    let tampered = URL_SAFE_NO_PAD.encode(tampered.to_string());
    cases.push((
        "tampered payload",
        format!("{}.{tampered}.{}", parts[0], parts[2]),
    ));
    cases.push(("garbage", "not-a-token".into()));
    cases.push(("huge", "a".repeat(6000)));

    for (what, token) in cases {
        let reply = start(token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {reply:?}");
        reply.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(
            reply.headers["www-authenticate"]
                .to_str()
                .expect("ascii")
                .starts_with("Bearer")
        );
    }

    // No token, or another scheme.
    let bare = stack
        .http
        .post(stack.url(paths::CONVERSATIONS))
        .json(&json!({}));
    stack
        .send(bare)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    let basic = stack
        .http
        .post(stack.url(paths::CONVERSATIONS))
        .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .json(&json!({}));
    stack
        .send(basic)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn attack_13_a_platform_access_token_is_no_widget_token() {
    let stack = Stack::start().await;
    let platform_token = platform_access_token(&stack).await;
    let reply = stack
        .start_conversation(&platform_token, Some(ORIGIN_A))
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn tokens_reach_only_their_own_conversation() {
    let stack = Stack::start().await;
    let (id_a, read_a) = stack.started(ORIGIN_A, AGENT_A).await;
    let (id_b, read_b) = stack.started(ORIGIN_B, AGENT_B).await;
    assert_eq!(
        stack.read_conversation(&read_a, &id_a).await.status,
        StatusCode::OK
    );

    // Agent A's token cannot read agent B's conversation, and the other way round.
    stack
        .read_conversation(&read_a, &id_b)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    stack
        .read_conversation(&read_b, &id_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A minting token reads nothing.
    let minting = stack.mint_token(ORIGIN_A, AGENT_A).await;
    stack
        .read_conversation(&minting, &id_a)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Ids that do not exist answer the same as ids that do.
    let ghost = "a3bb189e-8bf9-3888-9912-ace4e6543002";
    stack
        .read_conversation(&read_a, ghost)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    stack
        .read_conversation(&read_a, "..")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A read token cannot start another conversation.
    stack
        .start_conversation(&read_a, Some(ORIGIN_A))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // A token carried to another page is refused there.
    stack
        .start_conversation(&minting, Some(ORIGIN_B))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    let elsewhere = stack
        .http
        .get(stack.url(&paths::conversation(&id_a)))
        .header(AUTHORIZATION, format!("Bearer {read_a}"))
        .header(ORIGIN, "https://evil.com");
    stack
        .send(elsewhere)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
}

#[tokio::test]
async fn a_conversation_of_another_agent_stays_hidden_even_with_a_matching_id_claim() {
    // A token whose conversation_id names agent B's conversation but whose agent is A:
    // the BFF never mints one, so sign it here; the platform's answer must be checked.
    let stack = Stack::start().await;
    let (id_b, _) = stack.started(ORIGIN_B, AGENT_B).await;
    let mut claims = start_claims(&stack);
    claims["scope"] = json!("conversation:read");
    claims["conversation_id"] = json!(id_b);
    let token = sign(&stack, &widget_header(&stack).await, &claims);
    stack
        .read_conversation(&token, &id_b)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn cors_answers_only_listed_origins() {
    let stack = Stack::start().await;
    let preflight = |origin: &str| {
        stack
            .http
            .request(reqwest::Method::OPTIONS, stack.url(paths::SESSIONS))
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type,x-speaknode-widget",
            )
    };
    let allowed = stack.send(preflight(ORIGIN_B)).await;
    assert!(allowed.status.is_success(), "{allowed:?}");
    assert_eq!(allowed.headers[ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN_B);
    let methods = allowed.headers[ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("POST") && methods.contains("GET") && !methods.contains("DELETE"));
    let headers = allowed.headers[ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii");
    for header in ["content-type", "authorization", WIDGET_HEADER] {
        assert!(headers.contains(header), "{header} missing from {headers}");
    }
    assert_eq!(allowed.headers[ACCESS_CONTROL_MAX_AGE], "600");
    assert!(
        allowed
            .headers
            .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );

    for origin in ["https://evil.com", "https://shop.example.evil.com", "null"] {
        let refused = stack.send(preflight(origin)).await;
        assert!(
            refused.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{refused:?}"
        );
    }
    // Errors carry CORS headers too, so the widget can read the problem; and caches key
    // on the origin.
    let reply = stack.mint(Some(ORIGIN_DEV), "not-configured").await;
    assert_eq!(reply.headers[ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN_DEV);
    let vary: Vec<_> = reply
        .headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        vary.iter()
            .any(|v| v.to_ascii_lowercase().contains("origin")),
        "{vary:?}"
    );
}

#[tokio::test]
async fn health_and_published_keys() {
    let stack = Stack::start().await;
    let health = stack.send(stack.http.get(stack.url("/healthz"))).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );

    let jwks = stack
        .send(stack.http.get(stack.url("/.well-known/jwks.json")))
        .await;
    assert_eq!(jwks.status, StatusCode::OK);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks.body).expect("a JWK set");
    let key = &set.keys[0];
    let value = serde_json::to_value(key).expect("json");
    assert_eq!(
        (value["kty"].as_str(), value["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(value.get("d").is_none());

    // Another service can verify widget tokens with the published key alone.
    let token = stack.mint_token(ORIGIN_A, AGENT_A).await;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[format!("{}/v1", stack.bff)]);
    validation.set_issuer(&[&stack.bff]);
    let decoding = jsonwebtoken::DecodingKey::from_jwk(key).expect("key");
    jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verifies");

    let unknown = stack.send(stack.http.get(stack.url("/v1/admin"))).await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "not_found");
    let wrong_method = stack
        .send(stack.http.delete(stack.url(paths::SESSIONS)))
        .await;
    wrong_method.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
}

#[tokio::test]
async fn an_unreachable_platform_is_a_clean_503() {
    let dead = closed_port().await;
    let stack = Stack::start_with(|config| {
        config.upstream.issuer = format!("{dead}/realms/speaknode");
        config.upstream.api_base = dead.clone();
    })
    .await;
    let reply = stack.mint(Some(ORIGIN_A), AGENT_A).await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
    let port = dead.rsplit(':').next().expect("port");
    assert!(
        !reply.body.contains(port),
        "the platform's address must not reach the client"
    );
    assert!(!reply.body.contains("realms"));
}

/// A platform whose identity works and whose agents fail in chosen ways.
async fn failing_platform() -> String {
    let (listener, base) = bind().await;
    let issuer = format!("{base}/realms/speaknode");
    let discovery = json!({ "issuer": issuer, "token_endpoint": format!("{issuer}/token") });
    let app = axum::Router::new()
        .route(
            "/realms/speaknode/.well-known/openid-configuration",
            get(move || std::future::ready(Json(discovery.clone()))),
        )
        .route(
            "/realms/speaknode/token",
            post(|| async {
                Json(
                    json!({ "access_token": "opaque-platform-token-1b2c", "token_type": "Bearer",
                    "expires_in": 300 }),
                )
            }),
        )
        .route(
            "/api/v1/agents/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    match id.as_str() {
                        "busy" => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(RETRY_AFTER, "120")],
                            "slow down",
                        )
                            .into_response(),
                        "garbled" => "{\"title\":".into_response(),
                        _ => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "stack trace at http://10.1.2.3/internal",
                        )
                            .into_response(),
                    }
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("fake platform") });
    base
}

#[tokio::test]
async fn attack_09_platform_failures_become_gateway_problems_without_detail() {
    let platform = failing_platform().await;
    let stack = Stack::start_with(|config| {
        config.upstream.issuer = format!("{platform}/realms/speaknode");
        config.upstream.api_base = platform.clone();
        config.agents = ["broken", "busy", "garbled"]
            .map(|id| speaknode_bff::AgentPolicy {
                id: id.into(),
                allowed_origins: vec![ORIGIN_A.into()],
            })
            .into();
    })
    .await;
    let broken = stack.mint(Some(ORIGIN_A), "broken").await;
    broken.assert_problem(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    assert!(!broken.body.contains("10.1.2.3") && !broken.body.contains("stack trace"));
    stack
        .mint(Some(ORIGIN_A), "garbled")
        .await
        .assert_problem(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    let busy = stack.mint(Some(ORIGIN_A), "busy").await;
    busy.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
    assert_eq!(busy.headers[RETRY_AFTER], "60", "capped at 60 s");
    assert_eq!(busy.json()["retry_after"], 60);
    for reply in [&broken, &busy] {
        assert!(!reply.body.contains("opaque-platform-token"), "{reply:?}");
        assert!(
            !reply
                .headers
                .values()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("opaque")))
        );
    }
}

/// A real access token of the sandbox, fetched the way the BFF does.
async fn platform_access_token(stack: &Stack) -> String {
    let response = stack
        .http
        .post(format!("{}/protocol/openid-connect/token", stack.issuer))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("the sandbox answers");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn attack_08_the_leak_check_recognises_platform_credentials() {
    // The check every response above passes must be able to fail: feed it a real
    // platform token and the secret.
    let stack = Stack::start().await;
    let token = platform_access_token(&stack).await;
    assert!(find_leak(&format!("{{\"token\":\"{token}\"}}"), &stack.issuer).is_some());
    assert!(find_leak(&format!("authorization: Bearer {token}"), &stack.issuer).is_some());
    assert!(find_leak(&format!("detail: {CLIENT_SECRET}"), &stack.issuer).is_some());
    let widget_token = stack.mint_token(ORIGIN_A, AGENT_A).await;
    assert!(find_leak(&widget_token, &stack.issuer).is_none());
}

#[tokio::test]
async fn a_running_conversation_renews_its_token_only_for_its_own_page() {
    let stack = Stack::start().await;
    let (id_a, read_a) = stack.started(ORIGIN_A, AGENT_A).await;
    let (id_b, _) = stack.started(ORIGIN_B, AGENT_B).await;

    let renewed = stack.renew_token(&read_a, &id_a, Some(ORIGIN_A)).await;
    assert_eq!(renewed.status, StatusCode::OK, "{renewed:?}");
    let body = renewed.json();
    let fresh = body["token"].as_str().expect("a renewed token");
    assert_ne!(fresh, read_a, "renewal mints a new token");
    assert!(body["expires_at"].as_u64().is_some());
    assert_eq!(
        stack.read_conversation(fresh, &id_a).await.status,
        StatusCode::OK
    );

    // Only a token bound to that very conversation renews, and only from its page.
    let minting = stack.mint_token(ORIGIN_A, AGENT_A).await;
    stack
        .renew_token(&minting, &id_a, Some(ORIGIN_A))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    stack
        .renew_token(&read_a, &id_b, Some(ORIGIN_A))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    stack
        .renew_token(&read_a, &id_a, Some(ORIGIN_B))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    stack
        .renew_token("not-a-token", &id_a, Some(ORIGIN_A))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

/// The sandbox mints real LiveKit join tokens now: the start and every renewal pass one
/// on, for the conversation's own room and visitor, microphone only, and nothing of the
/// BFF's or the platform's own credentials goes with it.
#[tokio::test]
async fn voice_offers_a_join_token_for_the_conversations_room_only() {
    let stack = Stack::start().await;
    let minting = stack.mint_token(ORIGIN_A, AGENT_A).await;
    let started = stack.start_conversation(&minting, Some(ORIGIN_A)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    assert!(find_leak(&started.body, &stack.issuer).is_none());
    let started: speaknode_api::StartedConversation =
        serde_json::from_str(&started.body).expect("a started conversation");
    let id = started.conversation.id.clone();
    let room = format!("web-{}", id.replace('-', ""));
    let voice = started.voice.expect("the sandbox offers voice");
    assert!(voice.url.starts_with("ws://127.0.0.1:"), "{}", voice.url);
    assert_eq!(voice.url, stack.state.livekit_url());

    let check = |join: &str| {
        assert_ne!(join, started.token, "not the widget token");
        assert_ne!(join, minting, "not the minting token");
        let claims = claims_of(join);
        assert_ne!(claims["iss"], stack.issuer.as_str(), "not a platform token");
        assert_ne!(claims["aud"], "speaknode-api", "not a platform token");
        let verified = stack
            .state
            .verify_join_token(join)
            .expect("LiveKit (the stand-in) accepts it");
        assert_eq!(verified.room, room);
        assert!(
            verified.identity.starts_with("visitor-"),
            "{}",
            verified.identity
        );
        let permission = &verified.permission;
        assert!(permission.can_subscribe && permission.can_publish_data);
        assert_eq!(permission.can_publish_sources, ["microphone"]);
        assert!(
            verified.expires_at <= now() + 300,
            "within the sandbox's TTL"
        );
        verified.identity
    };
    let identity = check(&voice.token);
    let found = stack.state.livekit_room(&room).expect("the room is known");
    assert_eq!(found.visitor_identity.as_deref(), Some(identity.as_str()));

    // A renewal reads the conversation once and passes on the join token of that read:
    // the same room and visitor.
    let renewed = stack.renew_token(&started.token, &id, Some(ORIGIN_A)).await;
    assert_eq!(renewed.status, StatusCode::OK, "{renewed:?}");
    let renewed: speaknode_api::TokenGrant =
        serde_json::from_str(&renewed.body).expect("a token grant");
    let voice = renewed.voice.expect("a renewal offers voice too");
    assert_eq!(voice.url, stack.state.livekit_url());
    assert_eq!(check(&voice.token), identity);

    // The conversation's own reads never show a join token: only start and renewal do.
    let view = stack.read_conversation(&renewed.token, &id).await;
    assert!(!view.body.contains("live_kit") && !view.body.contains(&voice.token));
}

#[tokio::test]
async fn a_visitor_ends_the_conversation_and_rates_it() {
    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let ended = stack.end_conversation(&token, &id, Some(ORIGIN_A)).await;
    assert_eq!(ended.status, StatusCode::OK, "{ended:?}");
    let view: speaknode_api::ConversationView =
        serde_json::from_str(&ended.body).expect("a conversation view");
    assert_eq!(view.id, id);
    assert_eq!(view.status, speaknode_api::ConversationStatus::Completed);
    assert!(view.ended_at.is_some());
    // Ending twice is refused and changes nothing; reading shows the final state.
    stack
        .end_conversation(&token, &id, Some(ORIGIN_A))
        .await
        .assert_problem(StatusCode::CONFLICT, "conversation_ended");
    let read = stack.read_conversation(&token, &id).await;
    assert_eq!(read.json()["ended_at"], ended.json()["ended_at"]);

    // Feedback after the end is the usual case; the comment arrives trimmed.
    let uuid: uuid::Uuid = id.parse().expect("a UUID");
    let rated = stack
        .give_feedback(
            &token,
            &id,
            json!({ "rating": "up", "comment": "  Quick and kind. " }),
        )
        .await;
    assert_eq!(rated.status, StatusCode::NO_CONTENT, "{rated:?}");
    assert!(rated.body.is_empty());
    let positive = speaknode_sandbox::Feedback {
        rating: speaknode_sandbox::FeedbackRating::Positive,
        comment: Some("Quick and kind.".into()),
    };
    assert_eq!(stack.state.feedback(uuid), Some(positive));
    for body in [
        json!({ "rating": "down" }),
        json!({ "rating": "down", "comment": "  " }),
    ] {
        let rated = stack.give_feedback(&token, &id, body).await;
        assert_eq!(rated.status, StatusCode::NO_CONTENT, "{rated:?}");
        let negative = speaknode_sandbox::Feedback {
            rating: speaknode_sandbox::FeedbackRating::Negative,
            comment: None,
        };
        assert_eq!(stack.state.feedback(uuid), Some(negative));
    }
}

#[tokio::test]
async fn ending_and_rating_take_only_the_conversations_own_token_from_its_page() {
    let stack = Stack::start().await;
    let (id_a, read_a) = stack.started(ORIGIN_A, AGENT_A).await;
    let (id_b, read_b) = stack.started(ORIGIN_B, AGENT_B).await;
    let minting = stack.mint_token(ORIGIN_A, AGENT_A).await;
    let rating = || Some(json!({ "rating": "down" }));
    for (token, id) in [(&minting, &id_a), (&read_b, &id_a), (&read_a, &id_b)] {
        for path in [
            paths::conversation_end(id),
            paths::conversation_feedback(id),
        ] {
            stack
                .conversation_action(&path, token, Some(ORIGIN_A), rating())
                .await
                .assert_problem(StatusCode::NOT_FOUND, "not_found");
        }
    }
    for path in [
        paths::conversation_end(&id_a),
        paths::conversation_feedback(&id_a),
    ] {
        stack
            .conversation_action(&path, &read_a, Some(ORIGIN_B), rating())
            .await
            .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
        stack
            .conversation_action(&path, "not-a-token", Some(ORIGIN_A), rating())
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // Nothing above reached the conversations.
    for (token, id) in [(&read_a, &id_a), (&read_b, &id_b)] {
        let read = stack.read_conversation(token, id).await;
        assert_eq!(read.json()["ended_at"], Value::Null, "{read:?}");
        assert_eq!(stack.state.feedback(id.parse().expect("a UUID")), None);
    }
}

#[tokio::test]
async fn bad_feedback_is_a_400_problem_and_never_reaches_the_platform() {
    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    for body in [
        json!({}),
        json!({ "rating": "Up" }),
        json!({ "rating": "Positive" }),
        json!({ "rating": 1 }),
        json!({ "rating": "up", "stars": 5 }),
        json!({ "rating": "up", "comment": 42 }),
        json!({ "rating": "up", "comment": "x".repeat(1001) }),
        json!(["up"]),
    ] {
        stack
            .give_feedback(&token, &id, body.clone())
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(stack.state.feedback(id.parse().expect("a UUID")), None);
    // The limit counts characters, not bytes: 1000 two-byte characters pass.
    let longest = json!({ "rating": "up", "comment": "é".repeat(1000) });
    let rated = stack.give_feedback(&token, &id, longest).await;
    assert_eq!(rated.status, StatusCode::NO_CONTENT, "{rated:?}");
}

/// The suite-wide leak check reads the logs only if they are captured at all: prove that
/// they are, at a level that shows every request.
#[tokio::test]
async fn the_leak_check_sees_the_logs_of_every_request() {
    let stack = Stack::start().await;
    let token = stack.mint_token(ORIGIN_A, AGENT_A).await;
    assert!(!token.is_empty());
    let logs = captured_logs();
    assert!(
        logs.contains("/v1/sessions"),
        "the mint's request span is in the captured logs"
    );
}
