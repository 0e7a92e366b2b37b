//! The LiveKit seam: web conversations offer a LiveKit URL and a fresh join token on every
//! read while they run, and the stand-in can find a conversation by its room.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use speaknode_sandbox::{Config, JoinRefused, LiveKitConfig, Timing};

use crate::support::{AVA, BFF, Sandbox, claims_of, fixture};

const SECRET: &str = "livekit-secret-of-the-livekit-tests";

/// A sandbox whose agent joins quickly, with a known LiveKit secret and the admin routes.
fn livekit_config() -> Config {
    Config {
        admin_enabled: true,
        livekit: LiveKitConfig {
            api_key: "APItest".to_owned(),
            api_secret: Some(SecretString::from(SECRET)),
            token_ttl_secs: 120,
            ..LiveKitConfig::default()
        },
        ..crate::support::config(Timing {
            dispatch_ms: 20,
            join_ms: 20,
        })
    }
}

/// The token's claims after checking its signature with [`SECRET`], as LiveKit would.
fn verified(token: &str) -> Value {
    let key = DecodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["APItest"]);
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("a join token signed with the configured secret")
        .claims
}

#[tokio::test]
async fn a_running_web_conversation_offers_a_fresh_join_token_on_every_read() {
    let (sandbox, state) = Sandbox::start_with_state(livekit_config()).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let room = format!("web-{}", id.replace('-', ""));

    assert_eq!(created["live_kit_room_name"], room);
    let ws = sandbox.base.replacen("http://", "ws://", 1);
    assert_eq!(created["live_kit_url"], ws.as_str());
    assert_eq!(state.livekit_url(), ws);
    let first = verified(
        created["live_kit_participant_token"]
            .as_str()
            .expect("a token"),
    );
    let identity = first["sub"].as_str().expect("sub").to_owned();
    assert!(
        identity
            .strip_prefix("visitor-")
            .is_some_and(|hex| hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        "{identity}"
    );
    assert_eq!(
        first["video"],
        json!({
            "room": room, "roomJoin": true, "canPublish": true, "canSubscribe": true,
            "canPublishData": true, "canPublishSources": ["microphone"],
        })
    );
    assert_eq!(first["kind"], "standard");
    let lifetime = first["exp"].as_u64().expect("exp") - first["nbf"].as_u64().expect("nbf");
    assert_eq!(lifetime, 120, "livekit.token_ttl_secs");

    // Read again once the agent has joined: the same room and visitor, a token minted for
    // that read, which the stand-in's verifier accepts.
    let active = sandbox
        .conversation_when(&token, &id, "the agent to join", |c| {
            c["status"] == "Active"
        })
        .await;
    let again = active["live_kit_participant_token"]
        .as_str()
        .expect("a token");
    assert_eq!(verified(again)["sub"], identity.as_str());
    assert!(verified(again)["exp"].as_u64() >= first["exp"].as_u64());
    let claims = state
        .verify_join_token(again)
        .expect("the stand-in accepts it");
    assert_eq!(
        (claims.room.as_str(), claims.identity.as_str()),
        (room.as_str(), identity.as_str())
    );
    assert!(
        claims.permission.may_publish("microphone") && !claims.permission.may_publish("camera")
    );

    // The stand-in finds the conversation by its room.
    let found = state.livekit_room(&room).expect("the room is known");
    assert_eq!(found.conversation_id.to_string(), id);
    assert_eq!(found.agent_id, AVA);
    assert_eq!(found.agent_title, "Ava");
    assert_eq!(found.visitor_identity.as_deref(), Some(identity.as_str()));
    assert_eq!((found.status, found.ended), ("Active", false));
    assert!(
        state
            .livekit_room("web-00000000000000000000000000000000")
            .is_none()
    );

    // Lists show running conversations with an offer too.
    let page: Value = sandbox
        .get("/api/v1/conversations", &token)
        .await
        .json()
        .await
        .expect("a page");
    let listed = &page["items"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(
        verified(
            listed["live_kit_participant_token"]
                .as_str()
                .expect("a token")
        )["sub"],
        identity.as_str()
    );

    // An ended conversation offers nothing, whether the answer is the end's or a read's.
    let ended = sandbox
        .admin(
            Method::POST,
            &format!("/__sandbox/conversations/{id}/end"),
            None,
        )
        .await;
    assert_eq!(ended.status(), StatusCode::OK);
    let ended: Value = ended.json().await.expect("JSON");
    let read: Value = sandbox
        .get(&format!("/api/v1/conversations/{id}"), &token)
        .await
        .json()
        .await
        .expect("JSON");
    for conversation in [&ended, &read] {
        assert_eq!(conversation["status"], "Completed");
        assert_eq!(conversation["live_kit_url"], Value::Null);
        assert_eq!(conversation["live_kit_participant_token"], Value::Null);
        assert_eq!(conversation["live_kit_room_name"], room.as_str());
    }
    let found = state.livekit_room(&room).expect("still known");
    assert_eq!((found.status, found.ended), ("Completed", true));
    // A token minted while it ran still verifies, but its room is gone.
    let refused = state.admit_to_room(again).expect_err("the room has ended");
    assert_eq!(refused, JoinRefused::NoSuchRoom);
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert_eq!(refused.to_string(), "requested room does not exist");
}

#[tokio::test]
async fn the_stand_in_admits_valid_tokens_for_running_rooms_only() {
    let (sandbox, state) = Sandbox::start_with_state(livekit_config()).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let join = created["live_kit_participant_token"]
        .as_str()
        .expect("a token");
    let (claims, room) = state.admit_to_room(join).expect("admitted");
    assert_eq!(
        room.conversation_id.to_string(),
        created["id"].as_str().expect("id")
    );
    assert_eq!(
        room.visitor_identity.as_deref(),
        Some(claims.identity.as_str())
    );

    // Signed with the right secret for a room no conversation has: 404.
    let mut forged = verified(join);
    forged["video"]["room"] = json!("web-ffffffffffffffffffffffffffffffff");
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("a key");
    let header = jsonwebtoken::Header::new(Algorithm::HS256);
    let forged = jsonwebtoken::encode(&header, &forged, &key).expect("signed");
    assert_eq!(state.admit_to_room(&forged), Err(JoinRefused::NoSuchRoom));

    // Tampered: 401 with LiveKit's prefix.
    // One signature character changed (well inside, so it is not a padding bit).
    let at = join.len() - 10;
    let swapped = if &join[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &join[..at], &join[at + 1..]);
    let refused = state.admit_to_room(&tampered).expect_err("refused");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused.to_string().starts_with("invalid token: "),
        "{refused}"
    );
}

#[tokio::test]
async fn phone_conversations_offer_no_join_token() {
    let (sandbox, state) = Sandbox::start_with_state(livekit_config()).await;
    let token = sandbox.token(BFF).await;
    let response = sandbox
        .dispatch(&token, &fixture!("dispatch-phone-request.json"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.expect("JSON");
    let id = created["id"].as_str().expect("id").to_owned();
    let active = sandbox
        .conversation_when(&token, &id, "the call to be placed", |c| {
            c["live_kit_room_name"].is_string()
        })
        .await;
    for conversation in [&created, &active] {
        assert_eq!(conversation["live_kit_url"], Value::Null);
        assert_eq!(conversation["live_kit_participant_token"], Value::Null);
    }
    let room = active["live_kit_room_name"].as_str().expect("room");
    let found = state
        .livekit_room(room)
        .expect("a call's room is known too");
    assert_eq!(found.visitor_identity, None);
}

#[tokio::test]
async fn a_random_secret_signs_when_none_is_configured() {
    let mut config = livekit_config();
    config.livekit.api_secret = None;
    let (sandbox, state) = Sandbox::start_with_state(config).await;
    let token = sandbox.token(BFF).await;
    let created = sandbox.dispatch_web(&token, AVA).await;
    let join = created["live_kit_participant_token"]
        .as_str()
        .expect("a token");
    assert_eq!(claims_of(join)["iss"], "APItest");
    assert!(state.verify_join_token(join).is_ok());
    let key = DecodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key");
    assert!(
        jsonwebtoken::decode::<Value>(join, &key, &Validation::new(Algorithm::HS256)).is_err(),
        "not signed with the well-known test secret"
    );
}

/// Nobody could join a room signed with a secret nobody knows: the binary prints the one it
/// made up, with the URL and key, as it prints the demo's other credentials.
#[tokio::test]
async fn the_binary_prints_a_made_up_livekit_secret() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let dir = std::env::temp_dir().join(format!("sandbox-livekit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let config = dir.join("sandbox.toml");
    std::fs::write(&config, "[livekit]\napi_key = \"APIprinted\"\n").expect("config written");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_speaknode-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the sandbox starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = std::collections::BTreeMap::new();
    while printed.len() < 4 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
            .await
            .expect("the sandbox prints its addresses within 10 s")
            .expect("stdout is readable")
            .expect("the sandbox is still running");
        if let Some((name, value)) = line.split_once(": ").or(line.split_once(" on ")) {
            printed.insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
    child.kill().await.expect("the sandbox stops");
    let _ = std::fs::remove_dir_all(&dir);

    let listening = printed["listening"].replacen("http://", "ws://", 1);
    assert_eq!(printed["livekit_url"], listening);
    assert_eq!(printed["livekit_api_key"], "APIprinted");
    let secret = &printed["livekit_api_secret"];
    assert!(secret.len() >= 43, "32 random bytes: {secret}");
}
