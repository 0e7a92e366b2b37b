//! Key rotation: the newest key signs, older keys stay published and keep verifying until
//! their tokens have expired, and a token naming no published key is turned away.

use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::Value;
use speaknode_sandbox::Timing;

use crate::support::{AVA, BFF, SEED, Sandbox, claims_of, config, eventually};

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("JWT header")
        .kid
        .expect("kid")
}

impl Sandbox {
    async fn published_kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(self.url("/realms/speaknode/protocol/openid-connect/certs"))
            .send()
            .await
            .expect("GET certs")
            .json()
            .await
            .expect("JWKS");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|key| key["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    async fn agent_status(&self, token: &str) -> StatusCode {
        self.get(&format!("/api/v1/agents/{AVA}"), token)
            .await
            .status()
    }
}

#[tokio::test]
async fn tokens_signed_before_a_rotation_verify_during_the_overlap() {
    let (sandbox, admin) = Sandbox::start_with_state(config(Timing::default())).await;
    let before = sandbox.token(BFF).await;
    let old_kid = kid(&before);
    assert_eq!(sandbox.published_kids().await, [old_kid.as_str()]);

    let new_kid = admin.rotate_keys().expect("rotation");
    assert_ne!(new_kid, old_kid);
    assert_eq!(sandbox.published_kids().await, [new_kid.clone(), old_kid]);
    assert_eq!(sandbox.agent_status(&before).await, StatusCode::OK);

    let after = sandbox.token(BFF).await;
    assert_eq!(kid(&after), new_kid);
    assert_eq!(sandbox.agent_status(&after).await, StatusCode::OK);

    // The claims of a good token, signed with the realm's own old key, but naming a key
    // the realm never published.
    let der = SigningKey::from_bytes(&SEED)
        .to_pkcs8_der()
        .expect("PKCS#8");
    let header = Header {
        kid: Some("no-such-key".to_owned()),
        ..Header::new(Algorithm::EdDSA)
    };
    let unknown = jsonwebtoken::encode(
        &header,
        &claims_of(&after),
        &EncodingKey::from_ed_der(der.as_bytes()),
    )
    .expect("sign");
    assert_eq!(
        sandbox.agent_status(&unknown).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_old_key_is_withdrawn_once_its_last_token_has_expired() {
    let mut config = config(Timing::default());
    config.access_token_ttl_secs = 1;
    let (sandbox, admin) = Sandbox::start_with_state(config).await;
    let before = sandbox.token(BFF).await;
    let old_kid = kid(&before);
    let new_kid = admin.rotate_keys().expect("rotation");
    assert!(sandbox.published_kids().await.contains(&old_kid));

    eventually("the old key to be withdrawn", || async {
        (sandbox.published_kids().await == [new_kid.as_str()]).then_some(())
    })
    .await;
    assert_eq!(
        sandbox.agent_status(&before).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn keys_rotate_by_themselves_on_the_configured_interval() {
    let mut config = config(Timing::default());
    config.key_rotation_secs = Some(1);
    let sandbox = Sandbox::start(config).await;
    let before = sandbox.token(BFF).await;
    let old_kid = kid(&before);

    let kids = eventually("a rotation", || async {
        let kids = sandbox.published_kids().await;
        (kids.first() != Some(&old_kid)).then_some(kids)
    })
    .await;
    // The first token lives for 300 s, so its key stays published behind the new one.
    assert!(kids.contains(&old_kid), "{kids:?}");
    assert_eq!(sandbox.agent_status(&before).await, StatusCode::OK);
    let after = sandbox.token(BFF).await;
    assert_ne!(kid(&after), old_kid);
}
