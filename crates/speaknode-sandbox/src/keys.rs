//! The realm's signing keys: made at start-up, rotated, published as a JWKS, used to sign
//! and verify.
//!
//! The newest key signs; older keys stay published, and keep verifying, until every token
//! they signed has expired, so a rotation never invalidates a token in flight (the overlap
//! Keycloak gives by keeping an old key provider "passive"). Rotation happens on demand
//! ([`KeySet::rotate`]) and, when configured, once the current key is older than the
//! rotation period. The period is checked whenever the keys are used rather than by a
//! timer: no client can tell the difference, and nothing has to be stopped at shutdown.

use std::sync::{
    PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    atomic::{AtomicU64, Ordering},
};

use anyhow::{Context as _, anyhow};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey as _};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::{Error as JwtError, ErrorKind},
    jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
        OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
    },
};
use serde::{Serialize, de::DeserializeOwned};

use crate::auth::LEEWAY_SECS;

/// One key pair in the forms jsonwebtoken and the JWKS need.
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    /// When the key was made, in Unix seconds: the start of its rotation period.
    created: u64,
    /// The latest `exp` of any token the key signed. Once that has passed (plus the
    /// verifier's leeway) a retired key has nothing left to verify and is withdrawn.
    signed_until: AtomicU64,
}

impl Key {
    fn from_seed(seed: &[u8; 32], created: u64) -> anyhow::Result<Self> {
        let signing = SigningKey::from_bytes(seed);
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| anyhow!("cannot encode the signing key: {e}"))?;
        let public = signing.verifying_key().to_bytes();
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(public),
            }),
        };
        // The RFC 7638 thumbprint names a key by its content, so a given seed always has
        // the same `kid`.
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .context("cannot name the key")?;
        jwk.common.key_id = Some(kid.clone());
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            jwk,
            created,
            signed_until: AtomicU64::new(0),
        })
    }

    fn random(created: u64) -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| anyhow!("no randomness for a key: {e}"))?;
        Self::from_seed(&seed, created)
    }

    /// Whether a token this key signed may still be presented at `now`.
    fn has_live_tokens(&self, now: u64) -> bool {
        self.signed_until
            .load(Ordering::Relaxed)
            .saturating_add(LEEWAY_SECS)
            >= now
    }
}

pub(crate) struct KeySet {
    /// Newest first: the first key signs, every key verifies. A std lock is enough: it is
    /// never held across an await, and writers only run at a rotation.
    keys: RwLock<Vec<Key>>,
    /// Seconds a key signs before a new one takes over; `None` never rotates by itself.
    rotation: Option<u64>,
}

impl KeySet {
    /// A set with one fresh key from the operating system's random source.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        Ok(Self::with_key(Key::random(now())?))
    }

    /// A set with the Ed25519 key of `seed`, for reproducible set-ups and for tests that
    /// must sign tokens the sandbox would never issue.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> anyhow::Result<Self> {
        Ok(Self::with_key(Key::from_seed(seed, now())?))
    }

    fn with_key(key: Key) -> Self {
        Self {
            keys: RwLock::new(vec![key]),
            rotation: None,
        }
    }

    /// The same set, replacing its signing key every `seconds` (none if `None`).
    pub(crate) fn rotating_every(self, seconds: Option<u64>) -> Self {
        Self {
            rotation: seconds,
            ..self
        }
    }

    /// Makes a fresh key the signing key and returns its `kid`. The previous keys keep
    /// verifying their tokens until those expire.
    pub(crate) fn rotate(&self) -> anyhow::Result<String> {
        self.rotate_at(now())
    }

    fn rotate_at(&self, now: u64) -> anyhow::Result<String> {
        // The key is made before the lock is taken, so verifiers never wait for randomness.
        let key = Key::random(now)?;
        let kid = key.kid.clone();
        install(&mut self.write(), key, now);
        Ok(kid)
    }

    /// Rotates if the signing key has served its period. A failure leaves the current key
    /// signing, which is better than failing the request that noticed.
    fn rotate_if_due(&self, now: u64) {
        let Some(period) = self.rotation else { return };
        let due = |keys: &[Key]| {
            keys.first()
                .is_none_or(|key| now >= key.created.saturating_add(period))
        };
        if !due(&self.read()) {
            return;
        }
        match Key::random(now) {
            Ok(key) => {
                let mut keys = self.write();
                // Another request may have rotated since the check.
                if due(&keys) {
                    install(&mut keys, key, now);
                }
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "cannot rotate the signing key"
                );
            }
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Key>> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    // A panic while a lock is held cannot leave the list half-updated (the writer only
    // inserts and retains), so a poisoned lock is still usable.
    fn read(&self) -> RwLockReadGuard<'_, Vec<Key>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The public keys, as `GET …/protocol/openid-connect/certs` shows them: the signing key
    /// and every older key with tokens still alive.
    pub(crate) fn jwks(&self) -> JwkSet {
        let now = now();
        self.rotate_if_due(now);
        let keys = self.read();
        JwkSet {
            keys: published(&keys, now).map(|key| key.jwk.clone()).collect(),
        }
    }

    /// Signs `claims`, which expire at `exp`, as a JWT with the current key, its `kid` in
    /// the header. `exp` keeps the key published for as long as the token may be presented.
    pub(crate) fn sign(&self, claims: &impl Serialize, exp: u64) -> anyhow::Result<String> {
        self.rotate_if_due(now());
        let keys = self.read();
        let key = keys.first().context("the key set is empty")?;
        let header = Header {
            typ: Some("JWT".to_owned()),
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::EdDSA)
        };
        let token =
            jsonwebtoken::encode(&header, claims, &key.encoding).context("cannot sign a token")?;
        key.signed_until.fetch_max(exp, Ordering::Relaxed);
        Ok(token)
    }

    /// Verifies `token`'s signature with the published key its `kid` names, then the claims
    /// `validation` asks for. A token without a `kid`, or naming a key this set does not
    /// publish, is rejected.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, JwtError> {
        let now = now();
        self.rotate_if_due(now);
        let header = jsonwebtoken::decode_header(token)?;
        let keys = self.read();
        let key = header
            .kid
            .and_then(|kid| published(&keys, now).find(|key| key.kid == kid))
            .ok_or_else(|| JwtError::from(ErrorKind::InvalidToken))?;
        Ok(jsonwebtoken::decode(token, &key.decoding, validation)?.claims)
    }
}

/// Makes `key` the signing key. Keys without live tokens are dropped here rather than when
/// their tokens expire, which bounds the list by the rotations within the longest lifetime.
fn install(keys: &mut Vec<Key>, key: Key, now: u64) {
    tracing::info!(kid = %key.kid, "rotated the realm's signing key");
    keys.insert(0, key);
    let mut index = 0;
    keys.retain(|key| {
        index += 1;
        index == 1 || key.has_live_tokens(now)
    });
}

/// The keys a verifier may use at `now`: the signing key, and older ones with live tokens.
fn published(keys: &[Key], now: u64) -> impl Iterator<Item = &Key> {
    keys.iter()
        .enumerate()
        .filter(move |(index, key)| *index == 0 || key.has_live_tokens(now))
        .map(|(_, key)| key)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation
    }

    fn kids(keys: &KeySet) -> Vec<String> {
        keys.jwks()
            .keys
            .into_iter()
            .filter_map(|jwk| jwk.common.key_id)
            .collect()
    }

    #[test]
    fn signs_and_verifies_with_the_published_kid() -> anyhow::Result<()> {
        let keys = KeySet::from_seed(&[7; 32])?;
        let token = keys.sign(&json!({ "sub": "x" }), now() + 60)?;
        let header = jsonwebtoken::decode_header(&token)?;
        let jwks = keys.jwks();
        let kid = header.kid.context("no kid")?;
        assert!(jwks.find(&kid).is_some());
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let claims: Value = keys.verify(&token, &validation())?;
        assert_eq!(claims["sub"], "x");
        Ok(())
    }

    #[test]
    fn rejects_a_token_of_another_key_with_the_same_kid() -> anyhow::Result<()> {
        let keys = KeySet::from_seed(&[7; 32])?;
        let mut forged = Key::from_seed(&[8; 32], now())?;
        forged.kid.clone_from(&keys.read()[0].kid);
        let forger = KeySet::with_key(forged);
        let token = forger.sign(&json!({ "sub": "x" }), now() + 60)?;
        assert!(keys.verify::<Value>(&token, &validation()).is_err());
        Ok(())
    }

    #[test]
    fn same_seed_same_kid() -> anyhow::Result<()> {
        let kid = |seed| Key::from_seed(&[seed; 32], 0).map(|key| key.kid);
        assert_eq!(kid(1)?, kid(1)?);
        assert_ne!(kid(1)?, kid(2)?);
        Ok(())
    }

    #[test]
    fn a_rotated_key_verifies_until_its_last_token_expires() -> anyhow::Result<()> {
        let keys = KeySet::from_seed(&[7; 32])?;
        let old_kid = kids(&keys).remove(0);
        let exp = now() + 60;
        let old_token = keys.sign(&json!({ "sub": "old" }), exp)?;

        let new_kid = keys.rotate()?;
        assert_ne!(new_kid, old_kid);
        assert_eq!(kids(&keys), [new_kid.clone(), old_kid.clone()]);
        let claims: Value = keys.verify(&old_token, &validation())?;
        assert_eq!(claims["sub"], "old");
        let new_token = keys.sign(&json!({ "sub": "new" }), exp + 60)?;
        let header = jsonwebtoken::decode_header(&new_token)?;
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));

        // Past the old token's expiry and the leeway, the old key is withdrawn: it stops
        // verifying at once and leaves the list at the next rotation.
        let later = exp + LEEWAY_SECS + 1;
        assert_eq!(published(&keys.read(), later).count(), 1);
        keys.rotate_at(later)?;
        assert_eq!(keys.read().len(), 2, "the new key still has live tokens");
        assert!(keys.read().iter().all(|key| key.kid != old_kid));
        Ok(())
    }

    #[test]
    fn a_key_that_signed_nothing_is_withdrawn_at_rotation() -> anyhow::Result<()> {
        let keys = KeySet::from_seed(&[7; 32])?;
        let kid = keys.rotate()?;
        assert_eq!(kids(&keys), [kid]);
        Ok(())
    }

    #[test]
    fn rotates_once_the_period_has_passed() -> anyhow::Result<()> {
        let keys = KeySet::from_seed(&[7; 32])?.rotating_every(Some(3600));
        let first = kids(&keys);
        let created = keys.read()[0].created;
        keys.rotate_if_due(created + 3599);
        assert_eq!(kids(&keys), first);
        keys.rotate_if_due(created + 3600);
        assert_ne!(kids(&keys), first);
        Ok(())
    }
}
