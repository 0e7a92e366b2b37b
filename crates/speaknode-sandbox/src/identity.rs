//! The Keycloak-shaped realm: discovery, JWKS, the login form and the token endpoint.
//!
//! Three grants are served: `authorization_code` with PKCE (S256 only) for users who sign
//! in on the login form, `refresh_token` with Keycloak's rotation and reuse detection, and
//! `client_credentials` for a BFF's service account.

mod login;
mod sessions;

use std::collections::HashMap;

use anyhow::anyhow;
use axum::{
    Form, Json, Router,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind, jwk::JwkSet};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

pub(crate) use sessions::Sessions;

use crate::{
    AppState,
    config::ClientConfig,
    error::Error,
    identity::sessions::{Refresh, Refusal},
};

/// The `aud` of every access token, and the only one the REST API accepts.
pub(crate) const AUDIENCE: &str = "speaknode-api";

/// A client of the realm; confidential ones also have a service account.
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

    /// A public client has no secret: it cannot authenticate, only name itself.
    fn is_public(&self) -> bool {
        self.config.client_secret.is_none()
    }
}

/// The claims of an access token: `fixtures/access-token-claims.json` for a service account,
/// `fixtures/access-token-claims-user.json` for a user's login.
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
    /// The login session; service accounts have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub scope: String,
    pub space_id: Uuid,
    /// Keycloak's "Client ID" mapper of service accounts, absent from users' tokens.
    #[serde(rename = "clientId", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub preferred_username: String,
}

/// The claims of a refresh token (`fixtures/refresh-token-claims.json`), a JWT as in
/// Keycloak; the session's state decides whether it is still good.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshClaims {
    exp: u64,
    iat: u64,
    jti: String,
    iss: String,
    /// The issuer: the realm is the only party that reads refresh tokens.
    aud: String,
    sub: String,
    typ: String,
    azp: String,
    sid: String,
    scope: String,
}

/// The claims of an ID token (`fixtures/id-token-claims.json`).
#[derive(Debug, Serialize)]
struct IdClaims {
    exp: u64,
    iat: u64,
    auth_time: u64,
    jti: String,
    iss: String,
    aud: String,
    sub: String,
    typ: String,
    azp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    sid: String,
    preferred_username: String,
}

/// The realm's routes, relative to the issuer (`/realms/{realm}`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/protocol/openid-connect/certs", get(certs))
        .route("/protocol/openid-connect/token", post(token))
        // OpenID Connect Core §3.1.2.1: the authorization endpoint takes GET and POST.
        .route(
            "/protocol/openid-connect/auth",
            get(login::authorize).post(login::authorize_form),
        )
        // Where the login form posts to, as in Keycloak.
        .route("/login-actions/authenticate", post(login::authenticate))
}

/// The realm's metadata; it advertises only what the sandbox serves.
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
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp",
            "preferred_username", "space_id",
        ],
        "authorization_response_iss_parameter_supported": true,
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
    // The grant type is checked before the client, as Keycloak does.
    let grant_type = match params.get("grant_type").map(String::as_str) {
        None => {
            return Err(Error::InvalidTokenRequest(
                "Missing form parameter: grant_type".into(),
            ));
        }
        Some(grant @ ("client_credentials" | "authorization_code" | "refresh_token")) => grant,
        Some(other) => return Err(Error::UnsupportedGrantType(other.to_owned())),
    };
    let client = authenticate(&state.0.clients, &headers, &params)?;
    match grant_type {
        "authorization_code" => authorization_code(&state, client, &params),
        "refresh_token" => refresh_token(&state, client, &params),
        _ => client_credentials(&state, client, &params),
    }
}

/// A service account's token: no user, no session, no refresh token (Keycloak's default
/// since RH-SSO 7.4.4).
fn client_credentials(
    state: &AppState,
    client: &Client,
    params: &HashMap<String, String>,
) -> Result<Response, Error> {
    if client.is_public() {
        return Err(Error::UnauthorizedClient(
            "Public client not allowed to retrieve service account".into(),
        ));
    }
    let scope = granted_scope(params.get("scope")).map_err(Error::InvalidScope)?;
    // The issuer's clock, which an injected fault may skew.
    let now = state.faults().issuer_now();
    let ttl = state.0.config.access_token_ttl_secs;
    let client_id = &client.config.client_id;
    let exp = now.saturating_add(ttl);
    let claims = AccessClaims {
        exp,
        iat: now,
        jti: Uuid::new_v4().to_string(),
        iss: state.issuer().to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: client.service_account_id.to_string(),
        typ: "Bearer".to_owned(),
        azp: client_id.clone(),
        sid: None,
        scope: scope.to_owned(),
        space_id: client.config.space_id,
        client_id: Some(client_id.clone()),
        preferred_username: format!("service-account-{}", client_id.to_lowercase()),
    };
    let access_token = state.0.keys.sign(&claims, exp)?;
    tracing::info!(client_id = %client_id, "issued an access token");
    Ok(token_response(json!({
        "access_token": access_token,
        "expires_in": ttl,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": scope,
    })))
}

/// Exchanges a code from the login form for the session's first tokens. The code must come
/// back from the client it was issued to, with the same redirect URI and the PKCE verifier
/// of its challenge; the messages are Keycloak's.
fn authorization_code(
    state: &AppState,
    client: &Client,
    params: &HashMap<String, String>,
) -> Result<Response, Error> {
    // Keycloak's "Standard flow" switch; here a client has it when it has redirect URIs.
    if client.config.redirect_uris.is_empty() {
        return Err(Error::UnauthorizedClient(
            "Client not allowed to exchange code".into(),
        ));
    }
    let code = params
        .get("code")
        .ok_or_else(|| Error::InvalidTokenRequest("Missing parameter: code".into()))?;
    let redirect_uri = params.get("redirect_uri");
    let verifier = params.get("code_verifier");
    let check = |request: &sessions::AuthRequest| {
        if request.client_id != client.config.client_id {
            return Err("Auth error".to_owned());
        }
        if redirect_uri != Some(&request.redirect_uri) {
            return Err("Incorrect redirect_uri".to_owned());
        }
        check_pkce(&request.code_challenge, verifier.map(String::as_str))
    };
    let now = now();
    let idle = state.0.config.refresh_token_ttl_secs;
    let refresh = state
        .0
        .sessions
        .redeem_code(code, check, Uuid::new_v4().to_string(), idle, now)
        .map_err(refused)?;
    tracing::info!(client_id = %client.config.client_id, sid = %refresh.grant.sid, "code exchanged");
    let scope = refresh.grant.scope.clone();
    user_tokens(state, &refresh, &scope, now)
}

/// Exchanges the newest refresh token of a session for the next one (rotation); an older
/// one revokes the session. A refresh token only works for the client it was issued to.
fn refresh_token(
    state: &AppState,
    client: &Client,
    params: &HashMap<String, String>,
) -> Result<Response, Error> {
    let token = params
        .get("refresh_token")
        .ok_or_else(|| Error::InvalidTokenRequest("Missing parameter: refresh_token".into()))?;
    let claims: RefreshClaims = state
        .0
        .keys
        .verify(token, &refresh_validation(state.issuer()))
        .map_err(|error| match error.kind() {
            ErrorKind::ExpiredSignature => Error::InvalidGrant("Token is not active".into()),
            _ => Error::InvalidGrant("Invalid refresh token".into()),
        })?;
    if claims.typ != "Refresh" {
        return Err(Error::InvalidGrant("Invalid refresh token".into()));
    }
    if claims.azp != client.config.client_id {
        return Err(Error::InvalidGrant(
            "Invalid refresh token. Token client and authorized client don't match".into(),
        ));
    }
    // RFC 6749 §6: a refresh may narrow the scope, never widen it.
    let scope = match params.get("scope") {
        Some(requested) => {
            let granted: Vec<&str> = claims.scope.split(' ').collect();
            if !requested
                .split(' ')
                .all(|s| s.is_empty() || granted.contains(&s))
            {
                return Err(Error::InvalidScope(format!("Invalid scopes: {requested}")));
            }
            granted_scope(Some(requested))
        }
        None => granted_scope(Some(&claims.scope)),
    }
    .map_err(Error::InvalidScope)?;
    let now = now();
    let idle = state.0.config.refresh_token_ttl_secs;
    let next = Uuid::new_v4().to_string();
    let refresh = state
        .0
        .sessions
        .refresh(&claims.sid, &claims.jti, next, idle, now)
        .map_err(refused)?;
    user_tokens(state, &refresh, scope, now)
}

/// The `invalid_grant` for a refused code or refresh token, in Keycloak's words.
fn refused(refusal: Refusal) -> Error {
    Error::InvalidGrant(match refusal {
        Refusal::CodeNotValid => "Code not valid".into(),
        Refusal::CodeExpired => "Code is expired".into(),
        Refusal::SessionNotActive => "Session not active".into(),
        Refusal::RefreshTokenReused => "Maximum allowed refresh token reuse exceeded".into(),
        Refusal::Other(description) => description,
    })
}

/// The token response of a user's session (`fixtures/token-response-user.json`): access
/// token, the session's next refresh token and, when `openid` was asked for, an ID token.
fn user_tokens(
    state: &AppState,
    refresh: &Refresh,
    scope: &str,
    now: u64,
) -> Result<Response, Error> {
    let grant = &refresh.grant;
    let ttl = state.0.config.access_token_ttl_secs;
    let exp = now.saturating_add(ttl);
    let issuer = state.issuer();
    let sub = grant.user_id.to_string();
    let access = AccessClaims {
        exp,
        iat: now,
        jti: Uuid::new_v4().to_string(),
        iss: issuer.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: sub.clone(),
        typ: "Bearer".to_owned(),
        azp: grant.client_id.clone(),
        sid: Some(grant.sid.clone()),
        scope: scope.to_owned(),
        space_id: grant.space_id,
        client_id: None,
        preferred_username: grant.username.clone(),
    };
    let refresh_claims = RefreshClaims {
        exp: refresh.idle_until,
        iat: now,
        jti: refresh.jti.clone(),
        iss: issuer.to_owned(),
        aud: issuer.to_owned(),
        sub: sub.clone(),
        typ: "Refresh".to_owned(),
        azp: grant.client_id.clone(),
        sid: grant.sid.clone(),
        scope: grant.scope.clone(),
    };
    let keys = &state.0.keys;
    let mut body = json!({
        "access_token": keys.sign(&access, exp)?,
        "expires_in": ttl,
        "refresh_expires_in": refresh.idle_until.saturating_sub(now),
        "refresh_token": keys.sign(&refresh_claims, refresh.idle_until)?,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": grant.sid,
        "scope": scope,
    });
    if scope.split(' ').any(|s| s == "openid") {
        let id = IdClaims {
            exp,
            iat: now,
            auth_time: grant.auth_time,
            jti: Uuid::new_v4().to_string(),
            iss: issuer.to_owned(),
            aud: grant.client_id.clone(),
            sub,
            typ: "ID".to_owned(),
            azp: grant.client_id.clone(),
            nonce: grant.nonce.clone(),
            sid: grant.sid.clone(),
            preferred_username: grant.username.clone(),
        };
        body["id_token"] = Value::String(keys.sign(&id, exp)?);
    }
    Ok(token_response(body))
}

/// A token endpoint answer. RFC 6749 §5.1: responses carrying tokens must not be cached.
fn token_response(body: Value) -> Response {
    let no_store = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    (no_store, Json(body)).into_response()
}

/// What a refresh token of this realm must satisfy: Keycloak's refresh tokens name the
/// realm itself as their audience, so they can never pass for access tokens.
fn refresh_validation(issuer: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // The session's idle deadline is the token's `exp`, and it is meant exactly.
    validation.leeway = 0;
    validation
}

/// The realm's client scopes. `profile` and `email` are default scopes, in every token;
/// `openid` is optional and makes a login an OpenID Connect one, with an ID token.
const SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// The scope of tokens issued for a `requested` scope. A scope the realm does not have is
/// refused with the `error_description` of Keycloak's `invalid_scope`.
fn granted_scope(requested: Option<&String>) -> Result<&'static str, String> {
    let requested = requested.map(String::as_str).unwrap_or_default();
    let mut openid = false;
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&scope) {
            return Err(format!("Invalid scopes: {requested}"));
        }
        openid |= scope == "openid";
    }
    Ok(if openid {
        "openid profile email"
    } else {
        "profile email"
    })
}

/// Checks a PKCE `code_verifier` against the S256 challenge of its code (RFC 7636 §4.6),
/// in constant time so that timing cannot guide a guess.
fn check_pkce(challenge: &str, verifier: Option<&str>) -> Result<(), String> {
    let verifier = verifier.ok_or("PKCE code verifier not specified")?;
    if !is_pkce_value(verifier) {
        return Err("PKCE invalid code verifier".to_owned());
    }
    let computed = s256(verifier);
    if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err("PKCE verification failed".to_owned())
    }
}

/// RFC 7636's `code_verifier` syntax, which Keycloak also asks of a `code_challenge`:
/// 43 to 128 unreserved characters.
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 code challenge of `verifier`: base64url of its SHA-256.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 32 random bytes in base64url: codes and login ids that nobody can guess.
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow!("no randomness for a token: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
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

/// Finds the client that the request comes from. A confidential client authenticates by
/// HTTP Basic (`client_secret_basic`) or by form fields (`client_secret_post`), never both
/// (RFC 6749 §2.3); a public client only names itself with `client_id` (§3.2.1).
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
            (true, id, Some(secret))
        }
        None => match form_id {
            Some(id) => (false, id.clone(), form_secret.cloned()),
            None => return Err(Error::InvalidClient { basic: false }),
        },
    };
    let client = clients
        .iter()
        .find(|client| client.config.client_id == id)
        .ok_or(Error::InvalidClient { basic })?;
    let Some(expected) = &client.config.client_secret else {
        // As in Keycloak, a public client passes on its id alone, whatever secret it sends.
        return Ok(client);
    };
    // The secret is compared in constant time so that response times do not reveal how
    // much of a guess was right.
    let secret = secret.ok_or(Error::InvalidClient { basic })?;
    if bool::from(expected.expose_secret().as_bytes().ct_eq(secret.as_bytes())) {
        Ok(client)
    } else {
        Err(Error::InvalidClient { basic })
    }
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
        vec![
            Client::new(ClientConfig {
                client_id: "bff".into(),
                client_secret: Some(SecretString::from("s3cret")),
                space_id: Uuid::new_v4(),
                ..ClientConfig::default()
            }),
            Client::new(ClientConfig {
                client_id: "spa".into(),
                ..ClientConfig::default()
            }),
        ]
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
            client_secret: Some(SecretString::from("a+b/c=d%e")),
            space_id: Uuid::new_v4(),
            ..ClientConfig::default()
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
    fn a_public_client_passes_on_its_id_and_a_confidential_one_needs_its_secret() {
        let clients = clients();
        let public = authenticate(&clients, &HeaderMap::new(), &form(&[("client_id", "spa")]));
        assert!(public.is_ok_and(Client::is_public));
        let no_secret = authenticate(&clients, &HeaderMap::new(), &form(&[("client_id", "bff")]));
        assert!(matches!(
            no_secret,
            Err(Error::InvalidClient { basic: false })
        ));
        assert!(authenticate(&clients, &basic("spa:"), &form(&[])).is_ok());
        let nobody = authenticate(&clients, &HeaderMap::new(), &form(&[]));
        assert!(matches!(nobody, Err(Error::InvalidClient { basic: false })));
    }

    #[test]
    fn pkce_accepts_only_the_verifier_of_the_challenge() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert_eq!(check_pkce(challenge, Some(verifier)), Ok(()));
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
        assert!(check_pkce(challenge, Some(wrong)).is_err());
        assert!(check_pkce(challenge, None).is_err());
        assert!(check_pkce(challenge, Some("short")).is_err());
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(42))));
    }

    #[test]
    fn scopes_outside_the_realm_are_refused() {
        let scope = |text: &str| granted_scope(Some(&text.to_owned())).ok();
        assert_eq!(granted_scope(None).ok(), Some("profile email"));
        assert_eq!(scope("openid"), Some("openid profile email"));
        assert_eq!(scope("email  profile"), Some("profile email"));
        assert_eq!(scope("openid offline_access"), None);
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
