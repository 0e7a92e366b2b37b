//! A widget token sent as the event stream's `access_token` query parameter works and never
//! reaches the BFF's logs, even at trace level: the request span names the matched route,
//! not the URI.
//!
//! Alone in its binary, because it installs the process-wide subscriber that captures what
//! every task logs.

mod common;

use common::sse::{Auth, Events};
use common::*;

#[tokio::test]
async fn a_query_token_works_and_never_reaches_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        // Everything, the WebSocket client's handshake included, through the BFF's filter.
        .with_env_filter(speaknode_bff::log_filter("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    let mut events = Events::open(&stack, &id, Auth::Query(&token), ORIGIN_A).await;
    assert_eq!(events.conversation().await["id"], id.as_str());
    assert!(stack.state.complete_conversation(id.parse().expect("uuid")));
    events.until(|view| view["status"] == "Completed").await;
    events.assert_ends("conversation_ended").await;

    let text = logs.text();
    assert!(
        text.contains(r#"route="/v1/conversations/{id}/events""#),
        "the span names the route:\n{text}"
    );
    assert!(
        !text.contains(&token),
        "the widget token reached the logs:\n{text}"
    );
    assert!(
        !text.contains("access_token="),
        "a query string reached the logs:\n{text}"
    );
    if let Some(leak) = find_leak(&text, &stack.issuer) {
        panic!("the logs hold {leak}:\n{text}");
    }
}
