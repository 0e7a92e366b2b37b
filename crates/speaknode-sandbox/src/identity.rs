//! The Keycloak-shaped realm: discovery, JWKS and the token endpoint.
//!
//! Only `client_credentials` is served: a BFF's service account is the one client the
//! sandbox has to stand in for so far.

use std::collections::HashMap;

use axum::{
    Form, Json, Router,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use jsonwebtoken::jwk::JwkSet;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::{AppState, config::ClientConfig, error::Error};

/// The `aud` of every access token, and the only one the REST API accepts.
pub(crate) const AUDIENCE: &str = "speaknode-api";

/// Keycloak's default client scopes for a confidential client.
const SCOPE: &str = "profile email";

/// A confidential client and the service-account user its tokens are issued to.
pub(crate) struct Client {
    pub config: ClientConfig,
    /// Keycloak creates the service-account user with a random id when the client is made.
    pub service_account_id: Uuid,
}

impl Client {
    pub(crate) fn new(config: ClientConfig) -> Self {
        Self {
            config,
            service_account_id: Uuid::new_v4(),
        }
    }
}

/// The claims of an access token (`fixtures/access-token-claims.json`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub azp: String,
    pub scope: String,
    pub space_id: Uuid,
    #[serde(rename = "clientId")]
    pub client_id: String,
    pub preferred_username: String,
}

/// The realm's routes, relative to the issuer (`/realms/{realm}`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/protocol/openid-connect/certs", get(certs))
        .route("/protocol/openid-connect/token", post(token))
}

async fn discovery(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.issuer();
    let endpoint = |name: &str| format!("{issuer}/protocol/openid-connect/{name}");
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint("auth"),
        "token_endpoint": endpoint("token"),
        "userinfo_endpoint": endpoint("userinfo"),
        "end_session_endpoint": endpoint("logout"),
        "jwks_uri": endpoint("certs"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email"],
    }))
}

async fn certs(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.0.keys.jwks())
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Error> {
    let Form(pairs) =
        form.map_err(|rejection| Error::InvalidTokenRequest(rejection.body_text()))?;
    let params = params(pairs)?;
    match params.get("grant_type").map(String::as_str) {
        None => {
            return Err(Error::InvalidTokenRequest(
                "Missing form parameter: grant_type".into(),
            ));
        }
        Some("client_credentials") => {}
        Some(other) => return Err(Error::UnsupportedGrantType(other.to_owned())),
    }
    let client = authenticate(&state.0.clients, &headers, &params)?;

    let now = jsonwebtoken::get_current_timestamp();
    let ttl = state.0.config.access_token_ttl_secs;
    let client_id = &client.config.client_id;
    let claims = AccessClaims {
        exp: now.saturating_add(ttl),
        iat: now,
        jti: Uuid::new_v4().to_string(),
        iss: state.issuer().to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: client.service_account_id.to_string(),
        typ: "Bearer".to_owned(),
        azp: client_id.clone(),
        scope: SCOPE.to_owned(),
        space_id: client.config.space_id,
        client_id: client_id.clone(),
        preferred_username: format!("service-account-{}", client_id.to_lowercase()),
    };
    let access_token = state.0.keys.sign(&claims, claims.exp)?;
    tracing::info!(client_id = %client_id, "issued an access token");
    let body = json!({
        "access_token": access_token,
        "expires_in": ttl,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": SCOPE,
    });
    // RFC 6749 §5.1: responses carrying tokens must not be cached.
    let no_store = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    Ok((no_store, Json(body)).into_response())
}

/// The form's parameters by name. RFC 6749 §3.2 forbids repeating one, and says one sent
/// without a value counts as omitted.
fn params(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, Error> {
    let mut params = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if value.is_empty() {
            continue;
        }
        if params.contains_key(&name) {
            return Err(Error::InvalidTokenRequest(format!(
                "Duplicated form parameter: {name}"
            )));
        }
        params.insert(name, value);
    }
    Ok(params)
}

/// Finds the client that the request authenticates as, by HTTP Basic (`client_secret_basic`)
/// or by form fields (`client_secret_post`), never both (RFC 6749 §2.3).
fn authenticate<'a>(
    clients: &'a [Client],
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<&'a Client, Error> {
    let form_id = params.get("client_id");
    let form_secret = params.get("client_secret");
    let (basic, id, secret) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let (id, secret) =
                basic_credentials(value).ok_or(Error::InvalidClient { basic: true })?;
            if form_secret.is_some() {
                return Err(Error::InvalidTokenRequest(
                    "Multiple client authentication methods were used".into(),
                ));
            }
            if form_id.is_some_and(|form_id| *form_id != id) {
                return Err(Error::InvalidTokenRequest(
                    "client_id does not match the Authorization header".into(),
                ));
            }
            (true, id, secret)
        }
        None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => (false, id.clone(), secret.clone()),
            _ => return Err(Error::InvalidClient { basic: false }),
        },
    };
    // The secret is compared in constant time so that response times do not reveal how
    // much of a guess was right.
    clients
        .iter()
        .find(|client| client.config.client_id == id)
        .filter(|client| {
            let expected = client.config.client_secret.expose_secret().as_bytes();
            bool::from(expected.ct_eq(secret.as_bytes()))
        })
        .ok_or(Error::InvalidClient { basic })
}

/// The client id and secret of an `Authorization: Basic` header. RFC 6749 §2.3.1 has
/// clients form-urlencode both before joining them, as the `oauth2` crate and Keycloak do,
/// so they are decoded after the split.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn clients() -> Vec<Client> {
        vec![Client::new(ClientConfig {
            client_id: "bff".into(),
            client_secret: SecretString::from("s3cret"),
            space_id: Uuid::new_v4(),
        })]
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn basic(credentials: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(credentials));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).expect("ascii"),
        );
        headers
    }

    #[test]
    fn accepts_basic_and_post_credentials() {
        let clients = clients();
        assert!(authenticate(&clients, &basic("bff:s3cret"), &form(&[])).is_ok());
        let post = form(&[("client_id", "bff"), ("client_secret", "s3cret")]);
        assert!(authenticate(&clients, &HeaderMap::new(), &post).is_ok());
    }

    #[test]
    fn rejects_wrong_secrets_and_mixed_methods() {
        let clients = clients();
        let wrong = authenticate(&clients, &basic("bff:s3cre"), &form(&[]));
        assert!(matches!(wrong, Err(Error::InvalidClient { basic: true })));
        let post = form(&[("client_id", "bff"), ("client_secret", "nope")]);
        let wrong = authenticate(&clients, &HeaderMap::new(), &post);
        assert!(matches!(wrong, Err(Error::InvalidClient { basic: false })));
        let both = form(&[("client_secret", "s3cret")]);
        let mixed = authenticate(&clients, &basic("bff:s3cret"), &both);
        assert!(matches!(mixed, Err(Error::InvalidTokenRequest(_))));
        // Regression: secrets with reserved characters arrive form-urlencoded (RFC 6749
        // §2.3.1), as the BFF's oauth2 client sends them.
        let special = vec![Client::new(ClientConfig {
            client_id: "bff app".into(),
            client_secret: SecretString::from("a+b/c=d%e"),
            space_id: Uuid::new_v4(),
        })];
        let encoded = authenticate(&special, &basic("bff+app:a%2Bb%2Fc%3Dd%25e"), &form(&[]));
        assert!(
            encoded.is_ok(),
            "form-urlencoded Basic credentials are decoded"
        );
        let garbage = authenticate(&clients, &basic("no colon"), &form(&[]));
        assert!(matches!(garbage, Err(Error::InvalidClient { basic: true })));
    }

    #[test]
    fn repeated_parameters_are_rejected_and_empty_ones_ignored() {
        let pairs =
            |p: &[(&str, &str)]| p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        assert!(params(pairs(&[("scope", "a"), ("scope", "b")])).is_err());
        let ok = params(pairs(&[("scope", ""), ("scope", "b")])).expect("one non-empty value");
        assert_eq!(ok.get("scope").map(String::as_str), Some("b"));
    }
}
