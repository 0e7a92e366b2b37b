//! LiveKit join tokens: minted as LiveKit's server SDKs mint them, verified as a LiveKit
//! server verifies them when a participant connects.
//!
//! A join token is an HS256 JWT signed with the API secret of the API key in its `iss`
//! (livekit/protocol `auth/verifier.go`): `sub` is the participant's identity, `name` its
//! display name, `kind` its kind, and `video` the grants (`auth/grants.go`, camelCase
//! members). The server accepts HS256 only, requires `exp`, honours `nbf`, allows a minute
//! of clock skew both ways, and lets a token join only with `video.roomJoin` and a
//! `video.room`. Absent `canPublish`, `canSubscribe` and `canPublishData` mean `true`; an
//! absent or empty `canPublishSources` means every source.
//!
//! `now` is a parameter everywhere, in seconds since the Unix epoch, so that tests can
//! place a token anywhere in time without waiting.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, as LiveKit's `jwt.WithLeeway(time.Minute)`.
pub const LEEWAY_SECS: u64 = 60;

/// Join tokens are well under 1 KiB; anything far longer is refused before decoding.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The kind of participant a visitor is: LiveKit's `ParticipantInfo.Kind` `STANDARD`.
pub const KIND_STANDARD: &str = "standard";

/// The only track source a visitor may publish, as LiveKit names it in grants.
pub const MICROPHONE: &str = "microphone";

/// What one join token lets one participant do in one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGrant<'a> {
    /// The participant's identity, the token's `sub` (and `jti`, as the SDKs set it).
    pub identity: &'a str,
    /// The participant's display name, `name`.
    pub name: &'a str,
    /// The room it may join, `video.room`.
    pub room: &'a str,
}

/// What a verified join token says, with LiveKit's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinClaims {
    /// `sub`, or `jti` when `sub` is absent.
    pub identity: String,
    /// `name`; empty when absent.
    pub name: String,
    /// `video.room`, never empty.
    pub room: String,
    /// `kind` as written (`"standard"`, `"agent"`, …); `None` when absent.
    pub kind: Option<String>,
    /// The API key the token was signed for, `iss`.
    pub api_key: String,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    pub permission: Permission,
}

/// A participant's permissions, LiveKit's `ParticipantPermission` as the grants give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    /// The sources it may publish, lower-case as in grants (`"microphone"`, `"camera"`,
    /// `"screen_share"`, `"screen_share_audio"`); empty means every source.
    pub can_publish_sources: Vec<String>,
}

impl Permission {
    /// Whether a track of `source` (a grant name such as `"microphone"`) may be published.
    pub fn may_publish(&self, source: &str) -> bool {
        self.can_publish
            && (self.can_publish_sources.is_empty()
                || self
                    .can_publish_sources
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(source)))
    }
}

/// Why a join token was refused. The messages never quote the token; a LiveKit server
/// answers them as `401` with `invalid token: …`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    #[error("the token is not a compact JWS")]
    Malformed,
    #[error("the token's alg is not HS256")]
    UnsupportedAlgorithm,
    #[error("the token names no API key (iss)")]
    MissingApiKey,
    #[error("the token's API key (iss) is unknown")]
    UnknownApiKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has no exp")]
    MissingExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token names no participant (sub)")]
    MissingIdentity,
    #[error("the token does not grant roomJoin")]
    NoRoomJoin,
    #[error("the token names no room")]
    MissingRoom,
}

/// The claims as LiveKit writes and reads them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    video: Option<VideoGrant>,
}

/// `video`, reduced to the grants a joining participant's permissions come from.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_join: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    can_publish_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    can_publish_sources: Option<Vec<String>>,
}

/// The API key and secret of one LiveKit deployment and the lifetime of its join tokens:
/// what the platform mints with and the stand-in verifies with.
#[derive(Clone, Debug)]
pub struct JoinTokens {
    pub api_key: String,
    pub api_secret: SecretString,
    pub ttl_secs: u64,
}

impl JoinTokens {
    /// [`mint`] with this key, valid from `now` for `ttl_secs`.
    pub fn mint(
        &self,
        grant: &JoinGrant<'_>,
        now: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        mint(&self.api_key, &self.api_secret, grant, now, self.ttl_secs)
    }

    /// [`verify`] against this one key: a token for any other `iss` is
    /// [`JoinTokenError::UnknownApiKey`].
    pub fn verify(&self, token: &str, now: u64) -> Result<JoinClaims, JoinTokenError> {
        verify(
            token,
            |api_key| (api_key == self.api_key).then(|| self.api_secret.clone()),
            now,
        )
    }
}

/// Mints a join token for `grant`, signed for `api_key` with `secret`, valid from `now` for
/// `ttl_secs`: the claims `livekit-server-sdk`'s `AccessToken.toJwt()` writes for a
/// visitor who may join one room, subscribe, send data and publish the microphone only.
pub fn mint(
    api_key: &str,
    secret: &SecretString,
    grant: &JoinGrant<'_>,
    now: u64,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        iss: Some(api_key.to_owned()),
        sub: Some(grant.identity.to_owned()),
        jti: Some(grant.identity.to_owned()),
        nbf: Some(now),
        exp: Some(now.saturating_add(ttl_secs)),
        name: Some(grant.name.to_owned()),
        kind: Some(KIND_STANDARD.to_owned()),
        video: Some(VideoGrant {
            room: Some(grant.room.to_owned()),
            room_join: Some(true),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            can_publish_sources: Some(vec![MICROPHONE.to_owned()]),
        }),
    };
    let key = EncodingKey::from_secret(secret.expose_secret().as_bytes())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
}

/// Verifies `token` as a LiveKit server does when a participant connects at `now`: the
/// secret is the one `secret_of` gives for the token's `iss` (its API key).
pub fn verify(
    token: &str,
    secret_of: impl FnOnce(&str) -> Option<SecretString>,
    now: u64,
) -> Result<JoinClaims, JoinTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoinTokenError::Malformed);
    }
    // The header is read by hand: jsonwebtoken cannot even parse `"alg": "none"`, and a
    // token that names another algorithm is refused for that, not as malformed.
    let header = token.split('.').next().unwrap_or_default();
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JoinTokenError::Malformed)?;
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(JoinTokenError::UnsupportedAlgorithm);
    }
    // The key is named inside the token, so its claims are read once before the signature
    // can be checked; nothing is taken from them until it has been.
    let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| JoinTokenError::Malformed)?;
    let api_key = unverified
        .iss
        .filter(|iss| !iss.is_empty())
        .ok_or(JoinTokenError::MissingApiKey)?;
    let secret = secret_of(&api_key).ok_or(JoinTokenError::UnknownApiKey)?;
    // An empty secret is no key at all (and the configuration refuses one).
    let key = DecodingKey::from_secret(secret.expose_secret().as_bytes())
        .map_err(|_| JoinTokenError::UnknownApiKey)?;
    let claims: Claims = jsonwebtoken::decode(token, &key, &lifetime_checked_below())
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => JoinTokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                JoinTokenError::UnsupportedAlgorithm
            }
            _ => JoinTokenError::Malformed,
        })?
        .claims;

    // golang-jwt's checks with a leeway: valid while now < exp + leeway and from
    // nbf - leeway on.
    let exp = claims.exp.ok_or(JoinTokenError::MissingExpiry)?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(JoinTokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(LEEWAY_SECS) < nbf)
    {
        return Err(JoinTokenError::NotYetValid);
    }
    let identity = claims
        .sub
        .filter(|sub| !sub.is_empty())
        .or(claims.jti.filter(|jti| !jti.is_empty()))
        .ok_or(JoinTokenError::MissingIdentity)?;
    let video = claims.video.unwrap_or_default();
    if video.room_join != Some(true) {
        return Err(JoinTokenError::NoRoomJoin);
    }
    let room = video
        .room
        .filter(|room| !room.is_empty())
        .ok_or(JoinTokenError::MissingRoom)?;
    Ok(JoinClaims {
        identity,
        name: claims.name.unwrap_or_default(),
        room,
        kind: claims.kind.filter(|kind| !kind.is_empty()),
        api_key,
        expires_at: exp,
        permission: Permission {
            can_publish: video.can_publish.unwrap_or(true),
            can_subscribe: video.can_subscribe.unwrap_or(true),
            can_publish_data: video.can_publish_data.unwrap_or(true),
            can_publish_sources: video.can_publish_sources.unwrap_or_default(),
        },
    })
}

/// HS256 signatures only; `exp` and `nbf` are left to [`verify`], which checks them against
/// its `now` rather than the system clock.
fn lifetime_checked_below() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const KEY: &str = "devkey";
    const NOW: u64 = 1_800_000_000;
    const ROOM: &str = "web-a3bb189e8bf938889912ace4e6543002";

    fn secret() -> SecretString {
        SecretString::from("sandbox-livekit-secret-for-tests")
    }

    fn secret_of(key: &str) -> Option<SecretString> {
        (key == KEY).then(secret)
    }

    fn good() -> String {
        let grant = JoinGrant {
            identity: "visitor-0123456789ab",
            name: "Visitor",
            room: ROOM,
        };
        mint(KEY, &secret(), &grant, NOW, 300).expect("mint")
    }

    fn claims_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).expect("a JWT");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
    }

    /// The good token's claims changed by `change`, signed with `alg` and `secret`.
    fn signed(alg: Algorithm, secret: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = claims_of(&good());
        change(&mut claims);
        let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key");
        jsonwebtoken::encode(&Header::new(alg), &claims, &key).expect("sign")
    }

    fn resigned(change: impl FnOnce(&mut Value)) -> String {
        signed(Algorithm::HS256, "sandbox-livekit-secret-for-tests", change)
    }

    /// A token with any header and a made-up signature, as a hostile client sends.
    fn forged(header: &Value, signature: &str) -> String {
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        format!(
            "{}.{}.{signature}",
            encode(header),
            encode(&claims_of(&good()))
        )
    }

    #[test]
    fn minted_tokens_carry_livekits_claim_names() {
        let claims = claims_of(&good());
        assert_eq!(
            claims,
            json!({
                "iss": KEY, "sub": "visitor-0123456789ab", "jti": "visitor-0123456789ab",
                "nbf": NOW, "exp": NOW + 300, "name": "Visitor", "kind": "standard",
                "video": {
                    "room": ROOM, "roomJoin": true, "canPublish": true, "canSubscribe": true,
                    "canPublishData": true, "canPublishSources": ["microphone"],
                },
            })
        );
        let header = good().split('.').next().map(str::to_owned).expect("header");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn a_good_token_verifies_to_its_identity_room_and_microphone_grant() {
        let claims = verify(&good(), secret_of, NOW).expect("valid");
        assert_eq!(
            claims,
            JoinClaims {
                identity: "visitor-0123456789ab".into(),
                name: "Visitor".into(),
                room: ROOM.into(),
                kind: Some("standard".into()),
                api_key: KEY.into(),
                expires_at: NOW + 300,
                permission: Permission {
                    can_publish: true,
                    can_subscribe: true,
                    can_publish_data: true,
                    can_publish_sources: vec!["microphone".into()],
                },
            }
        );
        assert!(claims.permission.may_publish("microphone"));
        assert!(!claims.permission.may_publish("camera"));
    }

    #[test]
    fn verification_as_livekit_does_it() {
        use JoinTokenError::*;
        let expired_at = NOW - LEEWAY_SECS;
        let cases: Vec<(&str, String, u64, Result<(), JoinTokenError>)> = vec![
            ("good token", good(), NOW, Ok(())),
            (
                "expired beyond the leeway",
                good(),
                NOW + 300 + LEEWAY_SECS,
                Err(Expired),
            ),
            (
                "expired long ago",
                resigned(|c| c["exp"] = json!(expired_at)),
                NOW,
                Err(Expired),
            ),
            (
                "expired within the leeway",
                good(),
                NOW + 300 + LEEWAY_SECS - 1,
                Ok(()),
            ),
            ("nbf within the leeway", good(), NOW - LEEWAY_SECS, Ok(())),
            (
                "nbf in the future",
                good(),
                NOW - LEEWAY_SECS - 1,
                Err(NotYetValid),
            ),
            (
                "wrong secret",
                signed(Algorithm::HS256, "another-secret", |_| ()),
                NOW,
                Err(BadSignature),
            ),
            (
                "unknown iss",
                resigned(|c| c["iss"] = json!("otherkey")),
                NOW,
                Err(UnknownApiKey),
            ),
            (
                "no iss",
                resigned(|c| c["iss"] = Value::Null),
                NOW,
                Err(MissingApiKey),
            ),
            (
                "alg none",
                forged(&json!({"alg": "none", "typ": "JWT"}), ""),
                NOW,
                Err(UnsupportedAlgorithm),
            ),
            (
                "alg HS384",
                signed(Algorithm::HS384, "sandbox-livekit-secret-for-tests", |_| ()),
                NOW,
                Err(UnsupportedAlgorithm),
            ),
            (
                "alg RS256",
                forged(&json!({"alg": "RS256", "typ": "JWT"}), "c2lnbmF0dXJl"),
                NOW,
                Err(UnsupportedAlgorithm),
            ),
            (
                "no alg",
                forged(&json!({"typ": "JWT"}), "c2lnbmF0dXJl"),
                NOW,
                Err(UnsupportedAlgorithm),
            ),
            (
                "roomJoin false",
                resigned(|c| c["video"]["roomJoin"] = json!(false)),
                NOW,
                Err(NoRoomJoin),
            ),
            (
                "roomJoin missing",
                resigned(|c| c["video"]["roomJoin"] = Value::Null),
                NOW,
                Err(NoRoomJoin),
            ),
            (
                "no video grant",
                resigned(|c| c["video"] = Value::Null),
                NOW,
                Err(NoRoomJoin),
            ),
            (
                "room missing",
                resigned(|c| c["video"]["room"] = Value::Null),
                NOW,
                Err(MissingRoom),
            ),
            (
                "room empty",
                resigned(|c| c["video"]["room"] = json!("")),
                NOW,
                Err(MissingRoom),
            ),
            (
                "exp missing",
                resigned(|c| c["exp"] = Value::Null),
                NOW,
                Err(MissingExpiry),
            ),
            (
                "no sub nor jti",
                resigned(|c| {
                    c["sub"] = Value::Null;
                    c["jti"] = Value::Null
                }),
                NOW,
                Err(MissingIdentity),
            ),
            ("not a JWT", "not-a-token".to_owned(), NOW, Err(Malformed)),
            ("empty", String::new(), NOW, Err(Malformed)),
            (
                "too long",
                "a".repeat(MAX_TOKEN_LEN + 1),
                NOW,
                Err(Malformed),
            ),
        ];
        for (name, token, now, expected) in cases {
            let got = verify(&token, secret_of, now).map(|_| ());
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn absent_grants_take_livekits_defaults() {
        let token = resigned(|c| {
            let video = c["video"].as_object_mut().expect("video");
            for grant in [
                "canPublish",
                "canSubscribe",
                "canPublishData",
                "canPublishSources",
            ] {
                video.remove(grant);
            }
            let claims = c.as_object_mut().expect("claims");
            claims.remove("sub");
            claims.remove("name");
            claims.remove("kind");
        });
        let claims = verify(&token, secret_of, NOW).expect("valid");
        assert_eq!(
            claims.identity, "visitor-0123456789ab",
            "jti stands in for sub"
        );
        assert_eq!((claims.name.as_str(), claims.kind), ("", None));
        let permission = claims.permission;
        assert!(permission.can_publish && permission.can_subscribe && permission.can_publish_data);
        assert!(permission.can_publish_sources.is_empty());
        assert!(
            permission.may_publish("camera"),
            "no list means every source"
        );

        let token = resigned(|c| c["video"]["canPublish"] = json!(false));
        let permission = verify(&token, secret_of, NOW).expect("valid").permission;
        assert!(!permission.may_publish("microphone"));
    }

    #[test]
    fn one_key_verifies_its_own_tokens_only() {
        let tokens = JoinTokens {
            api_key: KEY.into(),
            api_secret: secret(),
            ttl_secs: 300,
        };
        let grant = JoinGrant {
            identity: "visitor-0123456789ab",
            name: "Visitor",
            room: ROOM,
        };
        let token = tokens.mint(&grant, NOW).expect("mint");
        assert_eq!(token, good());
        assert_eq!(tokens.verify(&token, NOW).map(|c| c.room), Ok(ROOM.into()));
        let other = JoinTokens {
            api_key: "otherkey".into(),
            ..tokens.clone()
        };
        assert_eq!(
            other.verify(&token, NOW),
            Err(JoinTokenError::UnknownApiKey)
        );
    }

    /// The contract's fixtures carry a join token minted as the sandbox mints them: for the
    /// fixtures' room and visitor, at the fixtures' creation time (2026-11-29T08:30:00Z),
    /// with `devkey` and the secret CONTRACT.md names for them.
    #[test]
    fn the_fixtures_join_token_is_one_the_sandbox_mints() {
        let fixture: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contract/fixtures/conversation-active.json"
        )))
        .expect("JSON");
        let created_at = 1_795_941_000;
        let grant = JoinGrant {
            identity: "visitor-5f2a9c1e7b3d",
            name: "Visitor",
            room: fixture["live_kit_room_name"].as_str().expect("room"),
        };
        let secret = SecretString::from("secret-of-the-contract-fixtures");
        let minted = mint("devkey", &secret, &grant, created_at, 300).expect("mint");
        assert_eq!(fixture["live_kit_participant_token"], minted.as_str());
    }

    #[test]
    fn errors_never_quote_the_token() {
        let token = resigned(|c| c["iss"] = json!("otherkey"));
        let error = verify(&token, secret_of, NOW)
            .expect_err("refused")
            .to_string();
        assert!(
            !error.contains("eyJ") && !error.contains("otherkey"),
            "{error}"
        );
    }
}
