//! The realm: discovery, JWKS and the token endpoint.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use reqwest::{StatusCode, header};
use serde_json::Value;
use speaknode_sandbox::Timing;

use crate::support::{BFF, SPACE, Sandbox, assert_problem, assert_same_keys, config, fixture};

const TOKEN_PATH: &str = "/realms/speaknode/protocol/openid-connect/token";

#[tokio::test]
async fn discovery_has_the_fixture_shape_and_the_issuer_urls() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let response = sandbox
        .http
        .get(sandbox.url("/realms/speaknode/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET discovery");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_same_keys(&body, &fixture!("openid-configuration.json"));
    let issuer = sandbox.issuer();
    assert_eq!(body["issuer"], issuer.as_str());
    assert_eq!(
        body["token_endpoint"],
        format!("{issuer}/protocol/openid-connect/token")
    );
    assert_eq!(
        body["jwks_uri"],
        format!("{issuer}/protocol/openid-connect/certs")
    );
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        body["authorization_endpoint"],
        format!("{issuer}/protocol/openid-connect/auth")
    );
    assert_eq!(
        body["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(body["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn public_url_overrides_the_listener_address_in_the_issuer() {
    let mut config = config(Timing::default());
    config.public_url = Some("https://identity.example.test".to_owned());
    let sandbox = Sandbox::start(config).await;
    let body: Value = sandbox
        .http
        .get(sandbox.url("/realms/speaknode/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET discovery")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["issuer"],
        "https://identity.example.test/realms/speaknode"
    );
}

#[tokio::test]
async fn jwks_publishes_an_ed25519_signing_key() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let body: Value = sandbox
        .http
        .get(sandbox.url("/realms/speaknode/protocol/openid-connect/certs"))
        .send()
        .await
        .expect("GET certs")
        .json()
        .await
        .expect("JSON");
    let key = &body["keys"][0];
    let shape = serde_json::json!({ "keys": [{
        "kty": "", "crv": "", "x": "", "kid": "", "alg": "", "use": ""
    }]});
    assert_same_keys(&body, &shape);
    assert_eq!(
        (&key["kty"], &key["crv"]),
        (&"OKP".into(), &"Ed25519".into())
    );
    assert_eq!((&key["alg"], &key["use"]), (&"EdDSA".into(), &"sig".into()));
}

#[tokio::test]
async fn client_credentials_with_basic_auth_issue_a_token_that_verifies_against_the_jwks() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let response = sandbox.token_response(BFF).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.expect("JSON");
    assert_same_keys(&body, &fixture!("token-response.json"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().expect("access_token");

    let jwks: JwkSet = sandbox
        .http
        .get(sandbox.url("/realms/speaknode/protocol/openid-connect/certs"))
        .send()
        .await
        .expect("GET certs")
        .json()
        .await
        .expect("JWKS");
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid in the JWKS");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["speaknode-api"]);
    validation.set_issuer(&[sandbox.issuer()]);
    let key = DecodingKey::from_jwk(jwk).expect("usable JWK");
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("valid token")
        .claims;
    assert_same_keys(&claims, &fixture!("access-token-claims.json"));
    assert_eq!(claims["space_id"], SPACE.to_string());
    assert_eq!(claims["azp"], "bff");
    assert_eq!(claims["preferred_username"], "service-account-bff");
    assert_eq!(claims["typ"], "Bearer");
}

#[tokio::test]
async fn client_credentials_with_post_auth_issue_a_token() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let response = sandbox
        .http
        .post(sandbox.url(TOKEN_PATH))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", BFF.0),
            ("client_secret", BFF.1),
        ])
        .send()
        .await
        .expect("POST token");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_same_keys(&body, &fixture!("token-response.json"));
}

#[tokio::test]
async fn a_wrong_secret_is_an_invalid_client_with_a_basic_challenge() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let response = sandbox.token_response((BFF.0, "wrong")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Basic realm="speaknode""#
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, fixture!("token-error-invalid-client.json"));

    let response = sandbox
        .http
        .post(sandbox.url(TOKEN_PATH))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .expect("POST token");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_and_a_missing_one_invalid() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let post = |form: &'static [(&'static str, &'static str)]| {
        sandbox
            .http
            .post(sandbox.url(TOKEN_PATH))
            .basic_auth(BFF.0, Some(BFF.1))
            .form(form)
            .send()
    };
    let response = post(&[("grant_type", "password")])
        .await
        .expect("POST token");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_same_keys(&body, &fixture!("token-error-invalid-client.json"));

    let response = post(&[("scope", "profile")]).await.expect("POST token");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn an_unknown_realm_is_a_not_found_problem() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let response = sandbox
        .http
        .get(sandbox.url("/realms/master/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET discovery");
    assert_problem(
        response,
        StatusCode::NOT_FOUND,
        &fixture!("problem-not-found.json"),
    )
    .await;
}
