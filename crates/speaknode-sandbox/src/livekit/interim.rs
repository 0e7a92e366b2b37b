//! A stop-gap join-token check (HS256 with one API key and secret) so that the stand-in can
//! be driven end to end before the real verifier (`token.rs`, with the `[livekit]` config
//! section) lands; it is replaced by that one, not extended.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{JoinGrant, Verify};

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: String,
    video: VideoGrant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoGrant {
    #[serde(default)]
    room_join: bool,
    #[serde(default)]
    room: String,
    can_publish: Option<bool>,
    can_subscribe: Option<bool>,
    can_publish_data: Option<bool>,
}

/// Accepts HS256 tokens issued by `api_key` and signed with `secret`, as LiveKit does:
/// one minute of leeway, `exp` required, `roomJoin` needed; absent publish and subscribe
/// grants mean yes.
pub fn hs256(api_key: &str, secret: &[u8]) -> Verify {
    let key = DecodingKey::from_secret(secret);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 60;
    validation.set_issuer(&[api_key]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    Arc::new(move |token: &str| {
        let key = key.as_ref().map_err(|error| error.to_string())?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|error| error.to_string())?
            .claims;
        if !claims.video.room_join || claims.video.room.is_empty() {
            return Err("no roomJoin grant".to_owned());
        }
        Ok(JoinGrant {
            identity: claims.sub,
            name: claims.name,
            room: claims.video.room,
            can_publish: claims.video.can_publish.unwrap_or(true),
            can_subscribe: claims.video.can_subscribe.unwrap_or(true),
            can_publish_data: claims.video.can_publish_data.unwrap_or(true),
        })
    })
}
