//! Checks the LiveKit join token the platform hands out with a web conversation before the
//! BFF passes it on to a browser.
//!
//! The BFF does not hold the LiveKit API secret, so it cannot verify the signature: LiveKit
//! does that when the browser joins. What the BFF can do is refuse to hand a browser a token
//! that would let it do more than the widget needs, should the platform mint one by a bug or
//! a misconfiguration: another room, a camera or screen share, admin or SIP grants, or a
//! lifetime long enough to make a stolen token worth having. The claims are read for these
//! checks only and trusted for nothing else.
//!
//! Grants are allowlisted, not denylisted, so a grant LiveKit adds later is refused until
//! someone decides a widget needs it. `canPublishData` is allowed: the widget's typed chat
//! reaches the agent as a LiveKit text stream, which needs it, and data published in the
//! room reaches only that room's participants (the visitor and the agent).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Real join tokens are well under 1 KiB; anything far longer is refused before decoding.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew tolerated between the platform and the BFF on `nbf`.
const LEEWAY_SECS: u64 = 5;
/// The only video grants a widget's token may carry with a value that grants something.
const ALLOWED_VIDEO_GRANTS: &[&str] = &[
    "room",
    "roomJoin",
    "canPublish",
    "canSubscribe",
    "canPublishData",
    "canPublishSources",
];
/// The only track source a visitor may publish.
const MICROPHONE: &str = "microphone";

/// Why a join token or media server URL was refused. The reason never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the platform's LiveKit join offer was refused: {0}")]
pub(crate) struct Refused(pub &'static str);

/// The claims the checks read; all else is ignored.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    video: Option<Map<String, Value>>,
    #[serde(default)]
    sip: Option<Value>,
}

/// Checks that `token` is an HS256 JWT that lets one identity join `room` only, publish the
/// microphone only, and holds nothing else; that it is valid now and expires within
/// `max_ttl_secs` of `now` (seconds since the Unix epoch).
pub(crate) fn check_join_token(
    token: &str,
    room: &str,
    max_ttl_secs: u64,
    now: u64,
) -> Result<(), Refused> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Refused("the token is implausibly long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(Refused("the token is not a compact JWS"));
    };
    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(Refused("the token has no usable signature"));
    }
    let header: Map<String, Value> = decode(header)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(Refused("the token's alg is not HS256"));
    }
    let claims: Claims = decode(payload)?;
    if claims.sub.as_deref().is_none_or(str::is_empty) {
        return Err(Refused("the token names no participant (sub)"));
    }
    let exp = claims.exp.ok_or(Refused("the token has no exp"))?;
    if exp <= now {
        return Err(Refused("the token has expired"));
    }
    if exp - now > max_ttl_secs {
        return Err(Refused("the token lives longer than the configured cap"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err(Refused("the token is not valid yet (nbf)"));
    }
    if claims.sip.as_ref().is_some_and(grants_something) {
        return Err(Refused("the token carries SIP grants"));
    }
    let video = claims
        .video
        .ok_or(Refused("the token has no video grant"))?;
    if video.get("room").and_then(Value::as_str) != Some(room) {
        return Err(Refused("the token is for another room"));
    }
    if video.get("roomJoin") != Some(&Value::Bool(true)) {
        return Err(Refused("the token does not grant roomJoin"));
    }
    if video.iter().any(|(grant, value)| {
        !ALLOWED_VIDEO_GRANTS.contains(&grant.as_str()) && grants_something(value)
    }) {
        return Err(Refused("the token carries a grant a widget must not hold"));
    }
    // LiveKit reads an absent `canPublish` as true, and an absent or empty source list as
    // every source, camera and screen share included.
    if video.get("canPublish") != Some(&Value::Bool(false)) {
        let microphone_only = video
            .get("canPublishSources")
            .and_then(Value::as_array)
            .is_some_and(|sources| {
                !sources.is_empty() && sources.iter().all(|s| s.as_str() == Some(MICROPHONE))
            });
        if !microphone_only {
            return Err(Refused("the token may publish more than the microphone"));
        }
    }
    Ok(())
}

/// Checks that `url` is a LiveKit server a browser may be sent to: `wss://`, or `ws://` on
/// a loopback host for local development, without credentials in it.
pub(crate) fn check_url(url: &str) -> Result<(), Refused> {
    let url = Url::parse(url).map_err(|_| Refused("the LiveKit URL does not parse"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let secure = url.scheme() == "wss" || (url.scheme() == "ws" && loopback);
    if !secure || host.is_empty() || !url.username().is_empty() || url.password().is_some() {
        return Err(Refused("the LiveKit URL is not a plain wss:// URL"));
    }
    Ok(())
}

/// One base64url JSON segment of a compact JWS.
fn decode<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, Refused> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Refused("a token segment is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| Refused("a token segment is not the expected JSON"))
}

/// Whether a grant's value grants anything: `false`, `null`, `""`, `[]` and objects of
/// such values do not.
fn grants_something(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(granted) => *granted,
        Value::Number(_) => true,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => members.values().any(grants_something),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ROOM: &str = "web-a3bb189e8bf938889912ace4e6543002";
    const NOW: u64 = 1_800_000_000;
    const CAP: u64 = 600;

    /// The claims the platform should send: one room, join, microphone, subscribe, data.
    fn good_claims() -> Value {
        json!({
            "iss": "APIkey", "sub": "w_visitor", "nbf": NOW, "exp": NOW + 120,
            "video": {
                "room": ROOM, "roomJoin": true, "canPublish": true, "canSubscribe": true,
                "canPublishData": true, "canPublishSources": ["microphone"],
            },
        })
    }

    /// Signs like LiveKit's server SDKs do: HS256 with the API secret.
    fn sign(claims: &Value) -> String {
        let key = EncodingKey::from_secret(b"livekit-api-secret-only-the-platform-has")
            .expect("an HMAC key");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
    }

    /// A token with any header, as a broken or hostile signer could produce.
    fn forge(header: &Value, claims: &Value) -> String {
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        format!("{}.{}.c2lnbmF0dXJl", encode(header), encode(claims))
    }

    fn check(token: &str) -> Result<(), Refused> {
        check_join_token(token, ROOM, CAP, NOW)
    }

    fn with(change: impl FnOnce(&mut Value)) -> String {
        let mut claims = good_claims();
        change(&mut claims);
        sign(&claims)
    }

    #[test]
    fn a_token_for_the_room_with_microphone_grants_passes() {
        check(&sign(&good_claims())).expect("the control passes");
        // No data grant and no explicit subscribe is narrower, so it passes too.
        check(&with(|c| {
            let video = c["video"].as_object_mut().expect("video");
            video.remove("canPublishData");
            video.remove("canSubscribe");
        }))
        .expect("narrower grants pass");
        // A listen-only token needs no source list.
        check(&with(|c| {
            c["video"]["canPublish"] = json!(false);
            c["video"]["canPublishSources"] = json!(["camera"]);
        }))
        .expect("listen-only passes");
        // Grants written out as false are no grants.
        check(&with(|c| {
            c["video"]["roomAdmin"] = json!(false);
            c["video"]["hidden"] = json!(null);
        }))
        .expect("explicitly false grants pass");
    }

    #[test]
    fn attack_07_a_token_for_another_room_is_refused() {
        for room in [json!("web-other"), json!(""), json!(null), json!(["web-x"])] {
            let token = with(|c| c["video"]["room"] = room.clone());
            assert_eq!(check(&token), Err(Refused("the token is for another room")));
        }
        let token = with(|c| {
            c.as_object_mut().expect("claims").remove("video");
        });
        assert!(check(&token).is_err());
        let token = with(|c| c["video"]["roomJoin"] = json!(false));
        assert_eq!(
            check(&token),
            Err(Refused("the token does not grant roomJoin"))
        );
    }

    #[test]
    fn attack_07_extra_grants_are_refused() {
        for grant in [
            "roomAdmin",
            "roomCreate",
            "roomList",
            "roomRecord",
            "ingressAdmin",
            "hidden",
            "recorder",
            "agent",
            "canUpdateOwnMetadata",
            "canSubscribeMetrics",
            "someGrantLiveKitAddsLater",
        ] {
            let token = with(|c| c["video"][grant] = json!(true));
            assert!(check(&token).is_err(), "{grant}");
        }
        let token = with(|c| c["video"]["destinationRoom"] = json!("web-other"));
        assert!(check(&token).is_err(), "destinationRoom");
        let token = with(|c| c["sip"] = json!({ "call": true }));
        assert_eq!(check(&token), Err(Refused("the token carries SIP grants")));
    }

    #[test]
    fn attack_07_camera_and_screen_sources_are_refused() {
        let wider = Refused("the token may publish more than the microphone");
        for sources in [
            json!(["microphone", "camera"]),
            json!(["screen_share"]),
            json!(["screen_share_audio"]),
            json!([]),
            json!(null),
            json!("microphone"),
        ] {
            let token = with(|c| c["video"]["canPublishSources"] = sources.clone());
            assert_eq!(check(&token), Err(wider.clone()), "{sources}");
        }
        let token = with(|c| {
            c["video"]
                .as_object_mut()
                .expect("video")
                .remove("canPublish");
            c["video"]
                .as_object_mut()
                .expect("video")
                .remove("canPublishSources");
        });
        assert_eq!(check(&token), Err(wider), "absent means every source");
    }

    #[test]
    fn attack_07_a_lifetime_above_the_cap_or_an_expired_token_is_refused() {
        check(&with(|c| c["exp"] = json!(NOW + CAP))).expect("exactly the cap passes");
        let token = with(|c| c["exp"] = json!(NOW + CAP + 1));
        assert_eq!(
            check(&token),
            Err(Refused("the token lives longer than the configured cap"))
        );
        for exp in [NOW, NOW - 1, 0] {
            let token = with(|c| c["exp"] = json!(exp));
            assert_eq!(check(&token), Err(Refused("the token has expired")));
        }
        let token = with(|c| {
            c.as_object_mut().expect("claims").remove("exp");
        });
        assert_eq!(check(&token), Err(Refused("the token has no exp")));
        let token = with(|c| c["nbf"] = json!(NOW + 60));
        assert_eq!(
            check(&token),
            Err(Refused("the token is not valid yet (nbf)"))
        );
        check(&with(|c| c["nbf"] = json!(NOW + LEEWAY_SECS))).expect("nbf within the leeway");
    }

    #[test]
    fn attack_07_a_token_without_a_participant_is_refused() {
        for sub in [json!(null), json!("")] {
            let token = with(|c| c["sub"] = sub.clone());
            assert_eq!(
                check(&token),
                Err(Refused("the token names no participant (sub)"))
            );
        }
    }

    #[test]
    fn attack_07_other_algorithms_are_refused() {
        for alg in [
            "none", "None", "NONE", "RS256", "HS512", "EdDSA", "hs256", "HS256 ",
        ] {
            let token = forge(&json!({ "alg": alg, "typ": "JWT" }), &good_claims());
            assert_eq!(
                check(&token),
                Err(Refused("the token's alg is not HS256")),
                "{alg}"
            );
        }
        let token = forge(&json!({ "typ": "JWT" }), &good_claims());
        assert!(check(&token).is_err(), "no alg");
        // An alg none token usually comes with an empty signature.
        let none = forge(&json!({ "alg": "none" }), &good_claims());
        let unsigned = format!("{}.", none.rsplit_once('.').expect("three parts").0);
        assert!(check(&unsigned).is_err());
    }

    #[test]
    fn attack_07_malformed_tokens_are_refused() {
        let good = sign(&good_claims());
        let (header, rest) = good.split_once('.').expect("a JWT");
        for token in [
            String::new(),
            "not-a-token".to_owned(),
            format!("{header}.{rest}.extra"),
            format!("{header}.!!!.c2ln"),
            format!("{header}.{}.c2ln", URL_SAFE_NO_PAD.encode("[1,2]")),
            format!(
                "{header}.{}.c2ln",
                URL_SAFE_NO_PAD.encode(r#"{"exp":"soon"}"#)
            ),
            good.replace('-', "+").replace('_', "/") + "=",
            "a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(check(&token).is_err(), "{token:.60}");
        }
    }

    #[test]
    fn refusals_never_quote_the_token() {
        let token = with(|c| c["video"]["room"] = json!("web-other"));
        let error = check(&token).expect_err("refused").to_string();
        assert!(
            !error.contains("eyJ") && !error.contains("web-other"),
            "{error}"
        );
    }

    #[test]
    fn only_wss_urls_or_loopback_ws_urls_pass() {
        for good in [
            "wss://livekit.speaknode.example",
            "wss://livekit.speaknode.example:7881/rtc",
            "ws://127.0.0.1:7880",
            "ws://localhost:7880",
            "ws://[::1]:7880",
        ] {
            check_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "ws://livekit.speaknode.example",
            "https://livekit.speaknode.example",
            "javascript:alert(1)",
            "wss://user:pw@livekit.speaknode.example",
            "wss://",
            "livekit.speaknode.example",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
