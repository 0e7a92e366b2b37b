//! Attack case 31 of the security research (bff-security.md §6): credentials never reach
//! the BFF's logs, even at trace level, while every request's log lines carry its id.
//!
//! Alone in its binary, because it installs the process-wide subscriber that captures what
//! every task logs.

mod common;

use common::*;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use speaknode_api::paths;
use tracing_subscriber::EnvFilter;

#[tokio::test]
async fn attack_31_authorization_cookie_and_tokens_never_reach_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("speaknode_bff=trace,tower_http=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let minting = stack.mint_token(ORIGIN_A, AGENT_A).await;
    let cookie = "sid=cookie-secret-5d1c";
    let proxy = "Basic cHJveHktc2VjcmV0LTllNGE=";
    let read = stack
        .http
        .get(stack.url(&paths::conversation(&id)))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(COOKIE, cookie)
        .header(PROXY_AUTHORIZATION, proxy)
        .header("x-request-id", "log-check-1");
    assert_eq!(stack.send(read).await.status, StatusCode::OK);
    let forged = "forged-token-7a61e0";
    stack
        .start_conversation(forged, Some(ORIGIN_A))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");

    let text = logs.text();
    assert!(
        text.contains(r#"request_id="log-check-1""#),
        "the request id is in the span:\n{text}"
    );
    assert!(text.contains(r#"route="/v1/conversations/{id}""#), "{text}");
    for (what, secret) in [
        ("a widget token", token.as_str()),
        ("a minting token", minting.as_str()),
        ("a forged token", forged),
        ("the cookie", cookie),
        ("proxy credentials", proxy),
        ("the client secret", CLIENT_SECRET),
        ("a conversation id", id.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} reached the logs:\n{text}");
    }
    if let Some(leak) = find_leak(&text, &stack.issuer) {
        panic!("the logs hold {leak}:\n{text}");
    }
}
