//! Rate limiting: per client and subject, 429 problems with `Retry-After`.

use reqwest::{StatusCode, header};
use speaknode_sandbox::{RateLimit, Timing};

use crate::support::{BFF, OTHER_BFF, Sandbox, assert_problem, config, fixture};

#[tokio::test]
async fn a_caller_over_its_limit_gets_429_with_retry_after() {
    let mut config = config(Timing::default());
    config.rate_limit = RateLimit {
        permit_limit: 3,
        window_secs: 60,
    };
    let sandbox = Sandbox::start(config).await;
    let token = sandbox.token(BFF).await;
    for _ in 0..3 {
        let response = sandbox.get("/api/v1/agents", &token).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    let response = sandbox.get("/api/v1/tools", &token).await;
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("delay-seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        &fixture!("problem-rate-limited.json"),
    )
    .await;
    assert_eq!(problem["title"], "Too Many Requests");
    assert_eq!(
        problem["detail"],
        format!("Rate limit exceeded. Retry after {retry_after} seconds.")
    );

    // A fresh token of the same client has the same client and subject: still limited.
    // The token endpoint itself is not limited.
    let fresh = sandbox.token(BFF).await;
    let response = sandbox.get("/api/v1/agents", &fresh).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another client has its own window.
    let other = sandbox.token(OTHER_BFF).await;
    let response = sandbox.get("/api/v1/agents", &other).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Requests without a valid token are turned away before they are counted.
    let response = sandbox.get("/api/v1/agents", "not-a-token").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_window_reopens_after_retry_after() {
    let mut config = config(Timing::default());
    config.rate_limit = RateLimit {
        permit_limit: 1,
        window_secs: 2,
    };
    let sandbox = Sandbox::start(config).await;
    let token = sandbox.token(BFF).await;
    assert_eq!(
        sandbox.get("/api/v1/agents", &token).await.status(),
        StatusCode::OK
    );
    let limited = sandbox.get("/api/v1/agents", &token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = limited.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ASCII");
    assert!(["1", "2"].contains(&retry_after), "{retry_after}");
    crate::support::eventually("the next window", || async {
        let response = sandbox.get("/api/v1/agents", &token).await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}
