//! Bearer authentication: every API route turns away every kind of bad token alike.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use speaknode_sandbox::Timing;
use uuid::Uuid;

use crate::support::{
    AVA, BFF, OTHER_SPACE, SEED, Sandbox, assert_problem, claims_of, config, fixture,
};

/// Every API route, with a request that would succeed with a good token.
fn routes() -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/agents".to_owned(), None),
        (Method::GET, "/api/v1/conversations".to_owned(), None),
        (Method::GET, "/api/v1/tools".to_owned(), None),
        (Method::GET, "/api/v1/phone-numbers".to_owned(), None),
        (Method::GET, format!("/api/v1/agents/{AVA}"), None),
        (
            Method::POST,
            "/api/v1/conversations/dispatch".to_owned(),
            Some(json!({ "agent_id": AVA, "channel": "Web" })),
        ),
        (
            Method::GET,
            format!("/api/v1/conversations/{}", Uuid::new_v4()),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{}/end", Uuid::new_v4()),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{}/feedback", Uuid::new_v4()),
            Some(json!({ "rating": "Positive" })),
        ),
    ]
}

/// Signs `claims` with the Ed25519 key of `seed`, naming `kid`.
fn sign(claims: &Value, seed: [u8; 32], kid: &str) -> String {
    let der = SigningKey::from_bytes(&seed)
        .to_pkcs8_der()
        .expect("PKCS#8");
    let header = Header {
        kid: Some(kid.to_owned()),
        ..Header::new(Algorithm::EdDSA)
    };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn every_api_route_rejects_missing_expired_tampered_and_foreign_tokens() {
    let sandbox = Sandbox::start_seeded(config(Timing::default())).await;
    let good = sandbox.token(BFF).await;
    let kid = jsonwebtoken::decode_header(&good)
        .expect("header")
        .kid
        .expect("kid");
    let claims = claims_of(&good);
    let altered = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims.clone();
        change(&mut claims);
        sign(&claims, SEED, &kid)
    };

    // Re-signing unchanged claims must pass, so each rejection below is down to its change.
    let resigned = altered(&|_| {});
    let expired = altered(&|c| {
        c["iat"] = json!(now() - 600);
        c["exp"] = json!(now() - 300);
    });
    let other_audience = altered(&|c| c["aud"] = json!("account"));
    let other_issuer = altered(&|c| c["iss"] = json!("http://127.0.0.1:1/realms/speaknode"));
    let no_space = altered(&|c| {
        c.as_object_mut().expect("object").remove("space_id");
    });
    let other_key = sign(&claims, [7; 32], &kid);
    let unknown_kid = sign(&claims, SEED, "not-a-key");
    let tampered = {
        let mut forged = claims.clone();
        forged["space_id"] = json!(OTHER_SPACE);
        let parts: Vec<_> = good.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("JSON"));
        format!("{}.{payload}.{}", parts[0], parts[2])
    };

    let cases: [(&str, Option<String>, &str); 10] = [
        ("no token", None, "Bearer"),
        ("another scheme", Some(format!("Basic {good}")), "Bearer"),
        (
            "expired",
            Some(format!("Bearer {expired}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "tampered",
            Some(format!("Bearer {tampered}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "wrong audience",
            Some(format!("Bearer {other_audience}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {other_issuer}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "no space",
            Some(format!("Bearer {no_space}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "wrong key",
            Some(format!("Bearer {other_key}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "unknown kid",
            Some(format!("Bearer {unknown_kid}")),
            r#"Bearer error="invalid_token""#,
        ),
        (
            "garbage",
            Some("Bearer not.a.jwt".to_owned()),
            r#"Bearer error="invalid_token""#,
        ),
    ];
    for (method, path, body) in routes() {
        let request = |authorization: Option<&str>| {
            let mut request = sandbox.http.request(method.clone(), sandbox.url(&path));
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            request.send()
        };

        let accepted = request(Some(&format!("Bearer {resigned}")))
            .await
            .expect("request");
        assert_ne!(
            accepted.status(),
            StatusCode::UNAUTHORIZED,
            "re-signed token on {method} {path}"
        );

        for (case, authorization, challenge) in &cases {
            let response = request(authorization.as_deref()).await.expect("request");
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{case} on {method} {path}"
            );
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                *challenge,
                "{case} on {method} {path}"
            );
            assert_problem(
                response,
                StatusCode::UNAUTHORIZED,
                &fixture!("problem-unauthorized.json"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_token_issued_with_no_lifetime_expires_within_the_leeway() {
    let mut config = config(Timing::default());
    config.access_token_ttl_secs = 0;
    let sandbox = Sandbox::start(config).await;
    let token = sandbox.token(BFF).await;
    let path = format!("/api/v1/agents/{AVA}");
    // The leeway keeps the token usable for at most a second or two; then it must fail.
    let response = crate::support::eventually("the token to expire", || async {
        let response = sandbox.get(&path, &token).await;
        (response.status() == StatusCode::UNAUTHORIZED).then_some(response)
    })
    .await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
}
