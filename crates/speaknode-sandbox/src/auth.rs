//! Bearer authentication of the REST API: who calls, and in which space.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use jsonwebtoken::{Algorithm, Validation};
use uuid::Uuid;

use crate::{
    AppState,
    error::Error,
    identity::{AUDIENCE, AccessClaims},
};

/// How far past `exp` a token is still accepted. Issuer and verifier share one clock here,
/// so this only forgives a request that set out within the token's last second.
pub(crate) const LEEWAY_SECS: u64 = 1;

/// The verified caller of an API request.
///
/// Handlers take it as an extractor; since the store is keyed by space and the space comes
/// only from here, a handler cannot reach data without authenticating first.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The token's `sub`: the (service-account) user who calls.
    pub id: String,
    /// The token's `preferred_username`.
    pub name: String,
    pub space_id: Uuid,
}

/// What an access token of this realm must satisfy, besides its signature.
pub(crate) fn validation(issuer: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    validation
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token =
            bearer_token(&parts.headers).ok_or(Error::Unauthorized { token_sent: false })?;
        let claims: AccessClaims =
            state
                .0
                .keys
                .verify(token, &state.0.validation)
                .map_err(|error| {
                    // The reason helps whoever debugs a client; the token itself is never logged.
                    tracing::debug!(%error, "bearer token rejected");
                    Error::Unauthorized { token_sent: true }
                })?;
        // Keycloak also signs ID and refresh tokens with realm keys; only access tokens
        // (`typ: Bearer`) open the API.
        if claims.typ != "Bearer" {
            return Err(Error::Unauthorized { token_sent: true });
        }
        // Every API handler authenticates exactly once, so limiting here counts each
        // authenticated request once; requests without a valid token are not counted.
        state
            .0
            .rate_limiter
            .check(&claims.azp, &claims.sub)
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        Ok(Caller {
            id: claims.sub,
            name: claims.preferred_username,
            space_id: claims.space_id,
        })
    }
}

/// The token of an `Authorization: Bearer …` header. Another scheme, or none, counts as no
/// token, as ASP.NET's JwtBearer handler treats it.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let (scheme, token) = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("ascii"),
        );
        headers
    }

    #[test]
    fn only_bearer_headers_carry_a_token() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
