//! The realm's signing keys: made at start-up, published as a JWKS, used to sign and verify.
//!
//! The set holds a list so that a rotation can add a key that signs while older ones still
//! verify the tokens they signed; today it holds one Ed25519 key.

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

/// One key pair in the forms jsonwebtoken and the JWKS need.
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

pub(crate) struct KeySet {
    /// The first key signs; every key verifies.
    keys: Vec<Key>,
}

impl KeySet {
    /// A set with one fresh key from the operating system's random source.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| anyhow!("no randomness for a key: {e}"))?;
        Self::from_seed(&seed)
    }

    /// A set with the Ed25519 key of `seed`, for reproducible set-ups and for tests that
    /// must sign tokens the sandbox would never issue.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> anyhow::Result<Self> {
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
            keys: vec![Key {
                kid,
                encoding: EncodingKey::from_ed_der(der.as_bytes()),
                decoding: DecodingKey::from_ed_der(&public),
                jwk,
            }],
        })
    }

    /// The public keys, as `GET …/protocol/openid-connect/certs` shows them.
    pub(crate) fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|key| key.jwk.clone()).collect(),
        }
    }

    /// Signs `claims` as a JWT with the current key, its `kid` in the header.
    pub(crate) fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let key = self.keys.first().context("the key set is empty")?;
        let header = Header {
            typ: Some("JWT".to_owned()),
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::EdDSA)
        };
        jsonwebtoken::encode(&header, claims, &key.encoding).context("cannot sign a token")
    }

    /// Verifies `token`'s signature with the key its `kid` names, then the claims `validation`
    /// asks for. A token without a `kid`, or with one this set does not hold, is rejected.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, JwtError> {
        let header = jsonwebtoken::decode_header(token)?;
        let key = header
            .kid
            .and_then(|kid| self.keys.iter().find(|key| key.kid == kid))
            .ok_or_else(|| JwtError::from(ErrorKind::InvalidToken))?;
        Ok(jsonwebtoken::decode(token, &key.decoding, validation)?.claims)
    }
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

    #[test]
    fn signs_and_verifies_with_the_published_kid() -> anyhow::Result<()> {
        let keys = KeySet::from_seed(&[7; 32])?;
        let token = keys.sign(&json!({ "sub": "x" }))?;
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
        let other = KeySet::from_seed(&[8; 32])?;
        let mut forged = other.keys.into_iter().next().context("no key")?;
        forged.kid.clone_from(&keys.keys[0].kid);
        let forger = KeySet { keys: vec![forged] };
        let token = forger.sign(&json!({ "sub": "x" }))?;
        assert!(keys.verify::<Value>(&token, &validation()).is_err());
        Ok(())
    }

    #[test]
    fn same_seed_same_kid() -> anyhow::Result<()> {
        assert_eq!(
            KeySet::from_seed(&[1; 32])?.keys[0].kid,
            KeySet::from_seed(&[1; 32])?.keys[0].kid
        );
        assert_ne!(
            KeySet::from_seed(&[1; 32])?.keys[0].kid,
            KeySet::from_seed(&[2; 32])?.keys[0].kid
        );
        Ok(())
    }
}
