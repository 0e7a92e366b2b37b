//! The refresh token grant: rotation, reuse detection and binding to the client, as
//! Keycloak does it with "Revoke Refresh Token" on and "Refresh Token Max Reuse" 0.

use reqwest::StatusCode;
use serde_json::Value;
use speaknode_sandbox::Timing;

use crate::{
    login::{As, assert_oauth_error},
    support::{AVA, BFF, OTHER_BFF, SPA, Sandbox, claims_of, config, fixture},
};

fn refresh_token(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

/// Refreshes and expects success; returns the token response.
async fn refreshed(sandbox: &Sandbox, client: As, token: &str) -> Value {
    let response = sandbox.refresh(client, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("token JSON")
}

#[tokio::test]
async fn each_refresh_rotates_the_refresh_token_and_the_old_one_is_refused() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let first = sandbox.user_tokens(As::Public(SPA)).await;
    let second = refreshed(&sandbox, As::Public(SPA), &refresh_token(&first)).await;
    crate::support::assert_same_keys(&second, &fixture!("token-response-user.json"));
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(second["session_state"], first["session_state"]);
    let claims = claims_of(second["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["sid"], first["session_state"]);
    let agent = format!("/api/v1/agents/{AVA}");
    let access = second["access_token"].as_str().expect("access_token");
    assert_eq!(sandbox.get(&agent, access).await.status(), StatusCode::OK);

    // The newest token keeps the chain going.
    let third = refreshed(&sandbox, As::Public(SPA), &refresh_token(&second)).await;
    assert_ne!(refresh_token(&third), refresh_token(&second));

    let reused = sandbox
        .refresh(As::Public(SPA), &refresh_token(&first))
        .await;
    assert_oauth_error(reused, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_the_whole_grant() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let first = sandbox.user_tokens(As::Public(SPA)).await;
    let second = refreshed(&sandbox, As::Public(SPA), &refresh_token(&first)).await;

    // An attacker replays the first token: refused, and the session is revoked, so the
    // legitimate holder's newest token is refused too and it must sign in again.
    let replay = sandbox
        .refresh(As::Public(SPA), &refresh_token(&first))
        .await;
    let description = assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "Maximum allowed refresh token reuse exceeded");
    let newest = sandbox
        .refresh(As::Public(SPA), &refresh_token(&second))
        .await;
    let description = assert_oauth_error(newest, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "Session not active");

    // Another login is another session, untouched by the revocation.
    let other = sandbox.user_tokens(As::Public(SPA)).await;
    assert_ne!(other["session_state"], first["session_state"]);
    refreshed(&sandbox, As::Public(SPA), &refresh_token(&other)).await;
}

#[tokio::test]
async fn a_refresh_token_works_only_for_its_client() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let tokens = sandbox.user_tokens(As::Confidential(BFF)).await;
    let token = refresh_token(&tokens);

    let foreign = sandbox.refresh(As::Confidential(OTHER_BFF), &token).await;
    let description = assert_oauth_error(foreign, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(description.contains("don't match"), "{description}");
    let public = sandbox.refresh(As::Public(SPA), &token).await;
    assert_oauth_error(public, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let unauthenticated = sandbox.refresh(As::Public(BFF.0), &token).await;
    assert_oauth_error(unauthenticated, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // Another client's attempt is no reuse: the owner's token still works.
    refreshed(&sandbox, As::Confidential(BFF), &token).await;
}

#[tokio::test]
async fn malformed_or_foreign_refresh_tokens_are_invalid_grants() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let tokens = sandbox.user_tokens(As::Public(SPA)).await;
    let cases = [
        "not-a-jwt".to_owned(),
        // An access token is no refresh token, though the realm signed it.
        tokens["access_token"].as_str().expect("token").to_owned(),
        tokens["id_token"].as_str().expect("token").to_owned(),
    ];
    for token in cases {
        let response = sandbox.refresh(As::Public(SPA), &token).await;
        let description =
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert_eq!(description, "Invalid refresh token");
    }
    let missing = sandbox
        .token_request(As::Public(SPA), &[("grant_type", "refresh_token")])
        .await;
    assert_oauth_error(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
    // None of this was reuse: the session lives on.
    refreshed(&sandbox, As::Public(SPA), &refresh_token(&tokens)).await;
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_not_widen_it() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let tokens = sandbox.user_tokens(As::Public(SPA)).await;
    let form = |token: &str, scope: &'static str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
            ("scope", scope.to_owned()),
        ]
    };
    let narrowed = form(&refresh_token(&tokens), "profile");
    let narrowed: Vec<_> = narrowed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = sandbox.token_request(As::Public(SPA), &narrowed).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    assert_eq!(body["scope"], "profile email");
    assert!(body.get("id_token").is_none(), "no openid, no ID token");

    let widened = form(&refresh_token(&body), "openid admin");
    let widened: Vec<_> = widened.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = sandbox.token_request(As::Public(SPA), &widened).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
}

#[tokio::test]
async fn an_idle_session_ends_with_its_refresh_token() {
    let mut config = config(Timing::default());
    config.refresh_token_ttl_secs = 1;
    let sandbox = Sandbox::start(config).await;
    let tokens = sandbox.user_tokens(As::Public(SPA)).await;
    assert_eq!(tokens["refresh_expires_in"], 1);
    let token = refresh_token(&tokens);
    let exp = claims_of(&token)["exp"].as_i64().expect("exp");
    // Refreshing would restart the idle period, so the test waits for the clock instead.
    crate::support::eventually("the refresh token to expire", || async {
        (time::OffsetDateTime::now_utc().unix_timestamp() > exp).then_some(())
    })
    .await;
    let response = sandbox.refresh(As::Public(SPA), &token).await;
    let description = assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "Token is not active");
}
