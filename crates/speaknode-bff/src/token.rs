//! Scoped widget tokens: short-lived EdDSA JWTs that this BFF mints and only it accepts.
//!
//! A widget token is the one credential a browser holds. It names one visitor, one agent,
//! one page origin and one capability (`scope`), and after a conversation starts, that
//! conversation. Verification follows RFC 8725: the algorithm is pinned, the explicit
//! `typ` is checked (so no other JWT, a platform access token above all, is ever mistaken
//! for one), every claim is required, `iss` and `aud` must match exactly, and the clock
//! leeway is a few seconds. Keys live in a set keyed by `kid`, so a rotation can keep the
//! previous public key verifying until its last token has expired.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The JOSE `typ` of widget tokens (RFC 8725 §3.11 explicit typing).
pub(crate) const TOKEN_TYPE: &str = "speaknode-widget+jwt";
/// Clock skew tolerated on `exp` and `nbf`; the BFF checks its own tokens, so only its
/// replicas' clocks can differ.
const LEEWAY_SECS: u64 = 5;
/// Longest lifetime a token may claim, whatever signed it: the upper bound of the config.
const MAX_LIFETIME_SECS: u64 = 600;
/// Real tokens are about 600 bytes; anything far longer is refused before parsing.
const MAX_TOKEN_LEN: usize = 4096;

/// The one action a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Scope {
    /// Start one conversation with the token's agent.
    #[serde(rename = "conversation:start")]
    ConversationStart,
    /// Read the conversation named by the `conversation_id` claim.
    #[serde(rename = "conversation:read")]
    ConversationRead,
}

/// The claims of a widget token. Every member is required when verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub aud: String,
    /// The visitor: a random id, never personal data.
    pub sub: String,
    pub agent_id: String,
    /// The page origin the token was minted for.
    pub origin: String,
    pub scope: Scope,
    /// Present exactly when `scope` is [`Scope::ConversationRead`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub jti: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// What a new token grants; the issuer adds the registered claims.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub sub: String,
    pub agent_id: String,
    pub origin: String,
    pub scope: Scope,
    pub conversation_id: Option<String>,
}

/// A freshly signed token and when it expires (seconds since the Unix epoch).
#[derive(Debug)]
pub(crate) struct Minted {
    pub token: String,
    pub expires_at: u64,
}

/// Why a token was refused. Only the variant reaches the client; the reason is for logs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the widget token has expired")]
    Expired,
    #[error("the widget token is invalid: {0}")]
    Invalid(String),
}

/// An Ed25519 key that signs widget tokens, with its public JWK.
pub(crate) struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// A new random key, for a single instance or tests.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| anyhow!("no system randomness: {e}"))?;
        Self::from_dalek(&ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 key, as
    /// `openssl genpkey -algorithm ed25519` writes it.
    pub(crate) fn from_pkcs8_pem(pem: &str) -> anyhow::Result<Self> {
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
            .context("expected a PKCS#8 PEM block (BEGIN PRIVATE KEY)")?;
        let base64: String = body.split_whitespace().collect();
        let der = STANDARD
            .decode(base64)
            .context("the PEM body is not valid base64")?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der)
            .map_err(|e| anyhow!("not a PKCS#8 Ed25519 private key: {e}"))?;
        Self::from_dalek(&key)
    }

    fn from_dalek(key: &ed25519_dalek::SigningKey) -> anyhow::Result<Self> {
        // jsonwebtoken signs from PKCS#8 DER; the v1 form (no public key) is the one every
        // version of its Ed25519 backend reads.
        let der = KeypairBytes {
            secret_key: key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_der()
        .map_err(|e| anyhow!("cannot encode the signing key: {e}"))?;
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x,
            }),
        };
        // The RFC 7638 thumbprint names the key by its content, so replicas that load the
        // same file agree on the kid without configuring one.
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .context("cannot name the key")?;
        jwk.common.key_id = Some(kid.clone());
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk,
        })
    }
}

/// Mints and verifies the widget tokens of one BFF (one `iss`, one `aud`).
pub(crate) struct TokenIssuer {
    ttl_secs: u64,
    issuer: String,
    audience: String,
    signing: SigningKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: JwkSet,
    validation: Validation,
}

impl TokenIssuer {
    /// `public_base` is the BFF's public URL without a trailing slash.
    /// `previous` are keys that signed tokens before `signing`: they verify and are published
    /// until the operator drops them, so a rotation never invalidates a live token.
    pub(crate) fn new(
        public_base: &str,
        ttl_secs: u64,
        signing: SigningKey,
        previous: &[SigningKey],
    ) -> anyhow::Result<Self> {
        // Select the RustCrypto backend explicitly: should another crate in the build
        // enable a second backend, jsonwebtoken would otherwise refuse to pick one and
        // panic on first use. An error only means a provider is installed already.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );
        let issuer = public_base.to_owned();
        let audience = format!("{public_base}/v1");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        let mut verifying = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for key in std::iter::once(&signing).chain(previous) {
            if verifying.contains_key(&key.kid) {
                continue;
            }
            let decoding = DecodingKey::from_jwk(&key.jwk).context("unusable public key")?;
            verifying.insert(key.kid.clone(), decoding);
            jwks.keys.push(key.jwk.clone());
        }
        Ok(Self {
            ttl_secs,
            issuer,
            audience,
            signing,
            verifying,
            jwks,
            validation,
        })
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub(crate) fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Signs a token for `grant`, valid from now for the configured lifetime.
    pub(crate) fn mint(&self, grant: Grant) -> anyhow::Result<Minted> {
        self.mint_at(grant, unix_now())
    }

    fn mint_at(&self, grant: Grant, now: u64) -> anyhow::Result<Minted> {
        let exp = now + self.ttl_secs;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.sub,
            agent_id: grant.agent_id,
            origin: grant.origin,
            scope: grant.scope,
            conversation_id: grant.conversation_id,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp,
        };
        let token = jsonwebtoken::encode(&self.header(), &claims, &self.signing.encoding)
            .context("cannot sign a widget token")?;
        Ok(Minted {
            token,
            expires_at: exp,
        })
    }

    fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(self.signing.kid.clone());
        header
    }

    /// Checks signature, type, issuer, audience, lifetime and the scope's shape.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let invalid = |reason: &str| TokenError::Invalid(reason.to_owned());
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("longer than any token this BFF signs"));
        }
        // The header is read unverified only to choose the key; `decode` re-checks `alg`.
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("unexpected alg"));
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(invalid("unexpected typ"));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or_else(|| invalid("unknown kid"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })?
            .claims;
        match (claims.scope, &claims.conversation_id) {
            (Scope::ConversationStart, None) | (Scope::ConversationRead, Some(_)) => {}
            _ => return Err(invalid("scope and conversation_id do not fit together")),
        }
        if claims.exp.saturating_sub(claims.nbf) > MAX_LIFETIME_SECS || claims.iat > claims.exp {
            return Err(invalid("lifetime out of bounds"));
        }
        Ok(claims)
    }
}

/// A fresh visitor id: `v_` and 128 random bits, unlinkable to anything about the visitor.
pub(crate) fn visitor_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow!("no system randomness: {e}"))?;
    Ok(format!("v_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Seconds since the Unix epoch; a clock before 1970 reads as 0 and makes every token
/// look expired, which fails closed.
fn unix_now() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const BASE: &str = "https://bff.example";

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(BASE, 300, SigningKey::generate().expect("a key"), &[]).expect("an issuer")
    }

    fn grant(scope: Scope, conversation_id: Option<&str>) -> Grant {
        Grant {
            sub: visitor_id().expect("randomness"),
            agent_id: "agent-a".into(),
            origin: "https://shop.example".into(),
            scope,
            conversation_id: conversation_id.map(str::to_owned),
        }
    }

    fn start_token(issuer: &TokenIssuer) -> String {
        issuer
            .mint(grant(Scope::ConversationStart, None))
            .expect("mint")
            .token
    }

    /// Signs arbitrary header and claims with the issuer's real key, so each test shows
    /// that one specific check, not the signature, refuses the token.
    fn sign_raw(issuer: &TokenIssuer, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &issuer.signing.encoding).expect("sign")
    }

    fn valid_claims(issuer: &TokenIssuer) -> Value {
        let now = unix_now();
        json!({
            "iss": issuer.issuer, "aud": issuer.audience, "sub": "v_x", "agent_id": "agent-a",
            "origin": "https://shop.example", "scope": "conversation:start", "jti": "j",
            "iat": now, "nbf": now, "exp": now + 60,
        })
    }

    fn assert_invalid(issuer: &TokenIssuer, token: &str, why: &str) {
        match issuer.verify(token) {
            Err(TokenError::Invalid(_)) => {}
            other => panic!("{why}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_minted_token_verifies_with_every_claim() {
        let issuer = issuer();
        let minted = issuer
            .mint(grant(Scope::ConversationStart, None))
            .expect("mint");
        let claims = issuer.verify(&minted.token).expect("valid");
        assert_eq!(claims.iss, BASE);
        assert_eq!(claims.aud, "https://bff.example/v1");
        assert_eq!(claims.scope, Scope::ConversationStart);
        assert_eq!(claims.exp, minted.expires_at);
        assert_eq!(claims.exp - claims.iat, 300);
        assert!(claims.sub.starts_with("v_"));
        let header = jsonwebtoken::decode_header(&minted.token).expect("header");
        assert_eq!(header.typ.as_deref(), Some(TOKEN_TYPE));
        assert_eq!(header.kid.as_deref(), Some(issuer.signing.kid.as_str()));
    }

    #[test]
    fn a_read_token_carries_its_conversation() {
        let issuer = issuer();
        let minted = issuer
            .mint(grant(Scope::ConversationRead, Some("c-1")))
            .expect("mint");
        let claims = issuer.verify(&minted.token).expect("valid");
        assert_eq!(claims.conversation_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn attack_13_expired_tokens_are_told_apart_from_invalid_ones() {
        let issuer = issuer();
        let old = issuer.mint_at(grant(Scope::ConversationStart, None), unix_now() - 400);
        let token = old.expect("mint").token;
        assert!(matches!(issuer.verify(&token), Err(TokenError::Expired)));
    }

    /// The verifier reads the system clock, so skew is played by moving the token's times
    /// instead: a token 3 s past `exp` is what a verifier whose clock runs 3 s fast sees.
    #[test]
    fn attack_14_clock_skew_passes_within_the_leeway_only() {
        let issuer = issuer();
        let mut early = valid_claims(&issuer);
        early["nbf"] = json!(unix_now() + 3);
        let token = sign_raw(&issuer, &issuer.header(), &early);
        issuer
            .verify(&token)
            .expect("nbf 3 s ahead is within the leeway");
        let mut claims = valid_claims(&issuer);
        claims["iat"] = json!(unix_now() - 60);
        claims["nbf"] = json!(unix_now() - 60);
        claims["exp"] = json!(unix_now() - 3);
        let token = sign_raw(&issuer, &issuer.header(), &claims);
        issuer
            .verify(&token)
            .expect("3 s past exp is within the leeway");
        claims["exp"] = json!(unix_now() - 10);
        let token = sign_raw(&issuer, &issuer.header(), &claims);
        assert!(matches!(issuer.verify(&token), Err(TokenError::Expired)));
        let mut future = valid_claims(&issuer);
        future["nbf"] = json!(unix_now() + 30);
        let token = sign_raw(&issuer, &issuer.header(), &future);
        assert_invalid(&issuer, &token, "nbf in the future");
    }

    #[test]
    fn attack_12_a_token_of_another_key_or_an_unknown_kid_is_refused() {
        let issuer = issuer();
        let other = self::issuer();
        assert_invalid(&issuer, &start_token(&other), "unknown kid");
        // Same kid, other key: only the signature differs.
        let mut header = other.header();
        header.kid = Some(issuer.signing.kid.clone());
        let forged = sign_raw(&other, &header, &valid_claims(&issuer));
        assert_invalid(&issuer, &forged, "forged signature");
    }

    #[test]
    fn attack_13_wrong_issuer_audience_or_type_is_refused() {
        let issuer = issuer();
        for (member, value) in [
            ("iss", "https://evil.example"),
            ("aud", "https://bff.example"),
            ("aud", "speaknode-api"),
            ("scope", "conversation:admin"),
        ] {
            let mut claims = valid_claims(&issuer);
            claims[member] = json!(value);
            assert_invalid(
                &issuer,
                &sign_raw(&issuer, &issuer.header(), &claims),
                member,
            );
        }
        for typ in [
            None,
            Some("JWT"),
            Some("at+jwt"),
            Some("Speaknode-Widget+JWT"),
        ] {
            let mut header = issuer.header();
            header.typ = typ.map(str::to_owned);
            let token = sign_raw(&issuer, &header, &valid_claims(&issuer));
            assert_invalid(&issuer, &token, &format!("typ {typ:?}"));
        }
    }

    #[test]
    fn attack_13_every_claim_is_required() {
        let issuer = issuer();
        for member in [
            "iss", "aud", "sub", "agent_id", "origin", "scope", "jti", "iat", "nbf", "exp",
        ] {
            let mut claims = valid_claims(&issuer);
            claims.as_object_mut().expect("object").remove(member);
            let token = sign_raw(&issuer, &issuer.header(), &claims);
            assert_invalid(&issuer, &token, member);
        }
    }

    #[test]
    fn scope_and_conversation_must_fit_together() {
        let issuer = issuer();
        let mut start_with_id = valid_claims(&issuer);
        start_with_id["conversation_id"] = json!("c-1");
        let token = sign_raw(&issuer, &issuer.header(), &start_with_id);
        assert_invalid(&issuer, &token, "start token naming a conversation");
        let mut read_without_id = valid_claims(&issuer);
        read_without_id["scope"] = json!("conversation:read");
        let token = sign_raw(&issuer, &issuer.header(), &read_without_id);
        assert_invalid(&issuer, &token, "read token without a conversation");
    }

    #[test]
    fn an_overlong_lifetime_is_refused_even_when_signed_by_us() {
        let issuer = issuer();
        let mut claims = valid_claims(&issuer);
        claims["exp"] = json!(unix_now() + 86_400);
        let token = sign_raw(&issuer, &issuer.header(), &claims);
        assert_invalid(&issuer, &token, "a day-long token");
    }

    #[test]
    fn attack_12_alg_none_stripped_and_tampered_tokens_are_refused() {
        let issuer = issuer();
        let token = start_token(&issuer);
        let mut parts = token.split('.');
        let (header, payload) = (parts.next().expect("h"), parts.next().expect("p"));
        for alg in ["none", "None", "NONE", "none ", "nOnE"] {
            let none_header = URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","typ":"{TOKEN_TYPE}","kid":"{}"}}"#,
                issuer.signing.kid
            ));
            assert_invalid(&issuer, &format!("{none_header}.{payload}."), alg);
            let signature = token.rsplit('.').next().expect("signature");
            let kept = format!("{none_header}.{payload}.{signature}");
            assert_invalid(&issuer, &kept, "alg none with our signature");
        }
        assert_invalid(
            &issuer,
            &format!("{header}.{payload}."),
            "signature stripped",
        );
        assert_invalid(&issuer, &format!("{header}.{payload}"), "two parts");
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        claims["agent_id"] = json!("agent-b");
        let tampered = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signature = token.rsplit('.').next().expect("signature");
        assert_invalid(
            &issuer,
            &format!("{header}.{tampered}.{signature}"),
            "tampered payload",
        );
        for junk in ["", "a.b.c", "not a token", &"x".repeat(10_000)] {
            assert_invalid(&issuer, junk, "junk");
        }
    }

    #[test]
    fn attack_12_hs256_signed_with_the_public_key_is_refused() {
        // The classic algorithm confusion: an attacker signs HMAC with the public key.
        let issuer = issuer();
        let AlgorithmParameters::OctetKeyPair(okp) = &issuer.signing.jwk.algorithm else {
            panic!("an Ed25519 JWK");
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(issuer.signing.kid.clone());
        let key = EncodingKey::from_secret(okp.x.as_bytes()).expect("hmac key");
        let token = jsonwebtoken::encode(&header, &valid_claims(&issuer), &key).expect("sign");
        assert_invalid(&issuer, &token, "HS256 with the public key");
    }

    #[test]
    fn attack_12_jku_x5u_and_embedded_jwk_headers_are_ignored() {
        let issuer = issuer();
        let attacker = self::issuer();
        // The attacker's own key, offered in every header that could carry it: the verifier
        // looks keys up in its own set by kid only.
        let mut header = attacker.header();
        header.jwk = Some(attacker.signing.jwk.clone());
        header.jku = Some("https://evil.example/jwks.json".into());
        header.x5u = Some("https://evil.example/cert.pem".into());
        let forged = sign_raw(&attacker, &header, &valid_claims(&issuer));
        assert_invalid(&issuer, &forged, "a key carried in the header");
        header.kid = Some(issuer.signing.kid.clone());
        let forged = sign_raw(&attacker, &header, &valid_claims(&issuer));
        assert_invalid(&issuer, &forged, "our kid, the attacker's embedded key");
        // The same headers on a token of ours change nothing either way.
        let mut ours = issuer.header();
        ours.jwk = header.jwk.clone();
        ours.jku = header.jku.clone();
        issuer
            .verify(&sign_raw(&issuer, &ours, &valid_claims(&issuer)))
            .expect("the headers are ignored");
    }

    #[test]
    fn attack_17_format_abuse_is_refused() {
        let issuer = issuer();
        let token = start_token(&issuer);
        let parts: Vec<&str> = token.split('.').collect();
        let (header, payload, signature) = (parts[0], parts[1], parts[2]);
        // Signs exact header and payload bytes with our key, as no JSON encoder would write
        // them, so only the format can be what refuses the token.
        let sign_bytes = |header: &str, payload: &str| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let signature = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &issuer.signing.encoding,
                Algorithm::EdDSA,
            )
            .expect("sign");
            format!("{input}.{signature}")
        };
        let claims = valid_claims(&issuer).to_string();
        let good_header = format!(
            r#"{{"alg":"EdDSA","typ":"{TOKEN_TYPE}","kid":"{}"}}"#,
            issuer.signing.kid
        );
        issuer
            .verify(&sign_bytes(&good_header, &claims))
            .expect("the control verifies");
        let twice_alg = good_header.replacen('{', r#"{"alg":"HS256","#, 1);
        let twice_aud = claims.replacen('{', r#"{"aud":"https://evil.example","#, 1);
        let json_serialised =
            json!({ "protected": header, "payload": payload, "signature": signature });
        let padded = format!("{header}.{payload}=.{signature}");
        let standard_alphabet = format!(
            "{header}.{}.{signature}",
            payload.replace('-', "+").replace('_', "/") + "+/"
        );
        for (what, abused) in [
            ("duplicate alg", sign_bytes(&twice_alg, &claims)),
            ("duplicate aud", sign_bytes(&good_header, &twice_aud)),
            ("JSON-serialised JWS", json_serialised.to_string()),
            ("padding", padded),
            ("standard base64", standard_alphabet),
            ("four parts", format!("{token}.{signature}")),
            ("huge", format!("{token}{}", "A".repeat(MAX_TOKEN_LEN))),
            ("whitespace", format!("{header} .{payload}.{signature}")),
        ] {
            assert_invalid(&issuer, &abused, what);
        }
    }

    #[test]
    fn a_pem_key_round_trips_and_keeps_its_kid() {
        let seed = [7u8; 32];
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = key.to_pkcs8_der().expect("der");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_bytes())
        );
        let a = SigningKey::from_pkcs8_pem(&pem).expect("pem loads");
        let b = SigningKey::from_pkcs8_pem(&pem).expect("pem loads again");
        assert_eq!(a.kid, b.kid, "replicas loading one file agree on the kid");
        assert!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            )
            .is_err()
        );
        assert!(SigningKey::from_pkcs8_pem("not a pem").is_err());
        let issuer = TokenIssuer::new(BASE, 300, a, &[]).expect("issuer");
        issuer
            .verify(&start_token(&issuer))
            .expect("tokens of a file key verify");
    }

    #[test]
    fn a_rotation_keeps_old_tokens_valid_while_the_old_key_is_listed() {
        let key = |seed: u8| {
            SigningKey::from_dalek(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
                .expect("a key")
        };
        let before = TokenIssuer::new(BASE, 300, key(1), &[]).expect("issuer");
        let old_token = start_token(&before);
        let after = TokenIssuer::new(BASE, 300, key(2), &[key(1)]).expect("issuer");
        after
            .verify(&old_token)
            .expect("a token of the previous key still verifies");
        after
            .verify(&start_token(&after))
            .expect("tokens of the new key verify");
        assert_eq!(after.jwks().keys.len(), 2, "both public keys are published");
        assert_eq!(
            after.header().kid.as_deref(),
            Some(after.signing.kid.as_str()),
            "only the new key signs"
        );
        let dropped = TokenIssuer::new(BASE, 300, key(2), &[]).expect("issuer");
        assert!(
            dropped.verify(&old_token).is_err(),
            "once the old key is dropped, its tokens are refused"
        );
    }

    #[test]
    fn the_jwks_publishes_only_the_public_key() {
        let issuer = issuer();
        let jwks = serde_json::to_value(issuer.jwks()).expect("jwks serialises");
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], issuer.signing.kid.as_str());
        assert!(
            key.get("d").is_none(),
            "the private part must never be published"
        );
    }

    #[test]
    fn visitor_ids_are_random_and_carry_128_bits() {
        let (a, b) = (visitor_id().expect("id"), visitor_id().expect("id"));
        assert_ne!(a, b);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&a[2..]).expect("base64url").len(),
            16
        );
    }
}
