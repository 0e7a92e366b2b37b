//! The authorization code flow with PKCE: the login form, the redirect back to the client
//! and the code exchange, as a browser and a client would drive them. The helpers here
//! serve the refresh tests too.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{Response, StatusCode, Url, header};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use speaknode_sandbox::Timing;
use uuid::Uuid;

use crate::support::{
    ALICE, AVA, BFF, REDIRECT_URI, SPA, SPACE, Sandbox, assert_same_keys, claims_of, config,
    fixture,
};

pub const AUTH_PATH: &str = "/realms/speaknode/protocol/openid-connect/auth";
pub const TOKEN_PATH: &str = "/realms/speaknode/protocol/openid-connect/token";

/// How a client identifies itself at the token endpoint: a public client by its id in the
/// form, a confidential one with HTTP Basic.
#[derive(Clone, Copy)]
pub enum As {
    Public(&'static str),
    Confidential((&'static str, &'static str)),
}

impl As {
    fn id(self) -> &'static str {
        match self {
            As::Public(id) | As::Confidential((id, _)) => id,
        }
    }
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// The query of a good authorization request of `client`.
pub fn auth_query(client: &str, pkce: &Pkce) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".to_owned()),
        ("client_id", client.to_owned()),
        ("redirect_uri", REDIRECT_URI.to_owned()),
        ("state", "st4te/with?odd&chars".to_owned()),
        ("nonce", "n-0S6_WzA2Mj".to_owned()),
        ("scope", "openid".to_owned()),
        ("code_challenge", pkce.challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

/// `query` with `name` replaced by `value`, or removed if `value` is `None`.
pub fn with(
    mut query: Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    query.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        query.push((name, value.to_owned()));
    }
    query
}

impl Sandbox {
    pub async fn authorize(&self, query: &[(&str, String)]) -> Response {
        self.http
            .get(self.url(AUTH_PATH))
            .query(query)
            .send()
            .await
            .expect("GET auth")
    }

    /// Opens the login form of `query` and returns where it posts to.
    pub async fn login_form(&self, query: &[(&str, String)]) -> String {
        let response = self.authorize(query).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let content_type = &response.headers()[header::CONTENT_TYPE];
        assert!(
            content_type
                .to_str()
                .is_ok_and(|t| t.starts_with("text/html"))
        );
        form_action(&response.text().await.expect("HTML"))
    }

    /// Submits the login form at `action`.
    pub async fn sign_in(&self, action: &str, username: &str, password: &str) -> Response {
        self.http
            .post(action)
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("POST login form")
    }

    /// Signs Alice in to `client`; returns the redirect's query.
    pub async fn login(&self, client: &str, pkce: &Pkce) -> HashMap<String, String> {
        let action = self.login_form(&auth_query(client, pkce)).await;
        redirect_query(&self.sign_in(&action, ALICE.1, ALICE.2).await)
    }

    pub async fn token_request(&self, client: As, form: &[(&str, &str)]) -> Response {
        let mut form = form.to_vec();
        let request = self.http.post(self.url(TOKEN_PATH));
        let request = match client {
            As::Public(id) => {
                form.push(("client_id", id));
                request
            }
            As::Confidential((id, secret)) => request.basic_auth(id, Some(secret)),
        };
        request.form(&form).send().await.expect("POST token")
    }

    pub async fn exchange(&self, client: As, code: &str, verifier: &str) -> Response {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ];
        self.token_request(client, &form).await
    }

    pub async fn refresh(&self, client: As, refresh_token: &str) -> Response {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.token_request(client, &form).await
    }

    /// Signs Alice in to `client` and exchanges the code: the token response.
    pub async fn user_tokens(&self, client: As) -> Value {
        let pkce = Pkce::new();
        let code = self.login(client.id(), &pkce).await["code"].clone();
        let response = self.exchange(client, &code, &pkce.verifier).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("token JSON")
    }
}

/// The `action` of the page's login form.
fn form_action(html: &str) -> String {
    let start = html.find(r#"action=""#).expect("a form action") + r#"action=""#.len();
    let end = start + html[start..].find('"').expect("a closing quote");
    html[start..end].replace("&amp;", "&")
}

/// The query of the URL a 303 sends the browser to, which must be the redirect URI.
pub fn redirect_query(response: &Response) -> HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .expect("ASCII Location");
    assert!(
        location.starts_with(&format!("{REDIRECT_URI}?")),
        "{location}"
    );
    let url = Url::parse(location).expect("a URL");
    url.query_pairs().into_owned().collect()
}

/// Asserts an RFC 6749 §5.2 error of `status` and `code`; returns its description.
pub async fn assert_oauth_error(response: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error JSON");
    assert_same_keys(&body, &fixture!("token-error-invalid-client.json"));
    assert_eq!(body["error"], code, "{body}");
    body["error_description"]
        .as_str()
        .expect("a description")
        .to_owned()
}

/// The redirect carries an OAuth error, the request's state and the issuer.
async fn assert_redirected_error(sandbox: &Sandbox, response: Response, error: &str) -> String {
    let query = redirect_query(&response);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some(error),
        "{query:?}"
    );
    assert_eq!(query["state"], "st4te/with?odd&chars");
    assert_eq!(query["iss"], sandbox.issuer());
    assert!(!query.contains_key("code"));
    query["error_description"].clone()
}

/// An error page: 400, HTML, and above all no redirect.
async fn assert_error_page(response: Response, message: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(header::LOCATION).is_none());
    let html = response.text().await.expect("HTML");
    assert!(html.contains(message), "{html}");
}

#[tokio::test]
async fn a_public_client_gets_tokens_for_a_user_through_the_login_form() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let pkce = Pkce::new();
    let action = sandbox.login_form(&auth_query(SPA, &pkce)).await;
    assert!(action.starts_with(&sandbox.issuer()), "{action}");

    // A wrong password shows the form again, with the error and without a redirect.
    let failed = sandbox.sign_in(&action, ALICE.1, "wrong").await;
    assert_eq!(failed.status(), StatusCode::OK);
    let html = failed.text().await.expect("HTML");
    assert!(html.contains("Invalid username or password."), "{html}");

    // Usernames match in any case, as Keycloak stores them in lower case.
    let query = redirect_query(&sandbox.sign_in(&action, "ALICE", ALICE.2).await);
    assert_eq!(query["state"], "st4te/with?odd&chars");
    assert_eq!(query["iss"], sandbox.issuer());
    let sid = &query["session_state"];

    let response = sandbox
        .exchange(As::Public(SPA), &query["code"], &pkce.verifier)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.expect("token JSON");
    assert_same_keys(&body, &fixture!("token-response-user.json"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        (&body["expires_in"], &body["refresh_expires_in"]),
        (&300.into(), &1800.into())
    );
    assert_eq!(body["scope"], "openid profile email");
    assert_eq!(body["session_state"], sid.as_str());

    let access = claims_of(body["access_token"].as_str().expect("access_token"));
    assert_same_keys(&access, &fixture!("access-token-claims-user.json"));
    assert_eq!(access["sub"], ALICE.0.to_string());
    assert_eq!(access["preferred_username"], ALICE.1);
    assert_eq!(access["azp"], SPA);
    assert_eq!(access["aud"], "speaknode-api");
    assert_eq!(access["space_id"], SPACE.to_string());
    assert_eq!(access["sid"], sid.as_str());

    let id = claims_of(body["id_token"].as_str().expect("id_token"));
    assert_same_keys(&id, &fixture!("id-token-claims.json"));
    assert_eq!(
        (&id["typ"], &id["aud"], &id["nonce"]),
        (&"ID".into(), &SPA.into(), &"n-0S6_WzA2Mj".into())
    );
    let refresh = claims_of(body["refresh_token"].as_str().expect("refresh_token"));
    assert_same_keys(&refresh, &fixture!("refresh-token-claims.json"));
    assert_eq!(refresh["typ"], "Refresh");

    // The access token opens the API in the user's space; the other tokens do not.
    let agent = format!("/api/v1/agents/{AVA}");
    let access_token = body["access_token"].as_str().expect("access_token");
    assert_eq!(
        sandbox.get(&agent, access_token).await.status(),
        StatusCode::OK
    );
    for other in ["id_token", "refresh_token"] {
        let token = body[other].as_str().expect("token");
        let status = sandbox.get(&agent, token).await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{other}");
    }
}

#[tokio::test]
async fn a_confidential_client_must_authenticate_to_exchange_its_code() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let pkce = Pkce::new();
    let code = sandbox.login(BFF.0, &pkce).await["code"].clone();
    let anonymous = sandbox
        .exchange(As::Public(BFF.0), &code, &pkce.verifier)
        .await;
    assert_oauth_error(anonymous, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let pkce = Pkce::new();
    let code = sandbox.login(BFF.0, &pkce).await["code"].clone();
    let response = sandbox
        .exchange(As::Confidential(BFF), &code, &pkce.verifier)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    let access = claims_of(body["access_token"].as_str().expect("access_token"));
    assert_eq!(access["sub"], ALICE.0.to_string());
    assert_eq!(access["azp"], BFF.0);
}

#[tokio::test]
async fn a_wrong_verifier_is_an_invalid_grant_and_spends_the_code() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let pkce = Pkce::new();
    let code = sandbox.login(SPA, &pkce).await["code"].clone();
    let wrong = Pkce::new().verifier;
    let response = sandbox.exchange(As::Public(SPA), &code, &wrong).await;
    let description = assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "PKCE verification failed");

    // The right verifier comes too late: a code is spent by its first use, right or wrong.
    let response = sandbox
        .exchange(As::Public(SPA), &code, &pkce.verifier)
        .await;
    let description = assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "Code not valid");
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri_and_needs_a_verifier() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let other_uri = format!("{REDIRECT_URI}/other");
    let cases = [
        ("Auth error", As::Confidential(BFF), REDIRECT_URI, true),
        ("Incorrect redirect_uri", As::Public(SPA), &other_uri, true),
        (
            "PKCE code verifier not specified",
            As::Public(SPA),
            REDIRECT_URI,
            false,
        ),
    ];
    for (expected, client, redirect_uri, send_verifier) in cases {
        let pkce = Pkce::new();
        let code = sandbox.login(SPA, &pkce).await["code"].clone();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
        ];
        if send_verifier {
            form.push(("code_verifier", &pkce.verifier));
        }
        let response = sandbox.token_request(client, &form).await;
        let description =
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert_eq!(description, expected);
    }
}

#[tokio::test]
async fn code_reuse_is_refused_and_revokes_the_tokens_of_the_first_exchange() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let pkce = Pkce::new();
    let code = sandbox.login(SPA, &pkce).await["code"].clone();
    let first = sandbox
        .exchange(As::Public(SPA), &code, &pkce.verifier)
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("token JSON");

    let again = sandbox
        .exchange(As::Public(SPA), &code, &pkce.verifier)
        .await;
    let description = assert_oauth_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "Code not valid");

    // RFC 6749 §4.1.2: the tokens the code gave are revoked, so its session cannot refresh.
    let refresh_token = first["refresh_token"].as_str().expect("refresh_token");
    let refresh = sandbox.refresh(As::Public(SPA), refresh_token).await;
    let description = assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(description, "Session not active");
}

#[tokio::test]
async fn pkce_is_required_with_s256_and_errors_go_back_to_the_client() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let good = auth_query(SPA, &Pkce::new());
    let cases = [
        (
            with(good.clone(), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge", Some("too-short")),
            "invalid_request",
        ),
        (
            with(good.clone(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with(good.clone(), "scope", Some("openid admin")),
            "invalid_scope",
        ),
        (with(good.clone(), "prompt", Some("none")), "login_required"),
    ];
    for (query, error) in cases {
        let response = sandbox.authorize(&query).await;
        let description = assert_redirected_error(&sandbox, response, error).await;
        assert!(!description.is_empty());
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_client_shows_an_error_page_and_redirects_nowhere() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let good = auth_query(SPA, &Pkce::new());
    let cases = [
        (
            with(
                good.clone(),
                "redirect_uri",
                Some("http://evil.example.test/callback"),
            ),
            "Invalid parameter: redirect_uri",
        ),
        // Registered URIs are compared exactly, not as prefixes.
        (
            with(
                good.clone(),
                "redirect_uri",
                Some(&format!("{REDIRECT_URI}/deeper")),
            ),
            "Invalid parameter: redirect_uri",
        ),
        (
            with(good.clone(), "redirect_uri", None),
            "Invalid parameter: redirect_uri",
        ),
        (
            with(good.clone(), "client_id", Some("nobody")),
            "Client not found.",
        ),
        (
            with(good.clone(), "client_id", None),
            "Missing parameter: client_id",
        ),
    ];
    for (query, message) in cases {
        assert_error_page(sandbox.authorize(&query).await, message).await;
    }
    // A second redirect_uri could smuggle an unchecked one past the check.
    let mut twice = good.clone();
    twice.push(("redirect_uri", "http://evil.example.test/".to_owned()));
    assert_error_page(sandbox.authorize(&twice).await, "Invalid Request").await;
}

#[tokio::test]
async fn a_login_form_posts_once() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let action = sandbox.login_form(&auth_query(SPA, &Pkce::new())).await;
    redirect_query(&sandbox.sign_in(&action, ALICE.1, ALICE.2).await);
    let again = sandbox.sign_in(&action, ALICE.1, ALICE.2).await;
    assert_error_page(again, "Your login attempt timed out").await;
    let forged = sandbox
        .sign_in(
            &sandbox.url("/realms/speaknode/login-actions/authenticate?session_code=guess"),
            ALICE.1,
            ALICE.2,
        )
        .await;
    assert_error_page(forged, "Your login attempt timed out").await;
}

#[tokio::test]
async fn a_public_client_may_not_use_client_credentials_and_scopes_are_checked() {
    let sandbox = Sandbox::start(config(Timing::default())).await;
    let response = sandbox
        .token_request(As::Public(SPA), &[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;

    let form = [("grant_type", "client_credentials"), ("scope", "admin")];
    let response = sandbox.token_request(As::Confidential(BFF), &form).await;
    let description = assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    assert_eq!(description, "Invalid scopes: admin");

    let response = sandbox
        .token_request(As::Public(SPA), &[("grant_type", "authorization_code")])
        .await;
    let description =
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(description, "Missing parameter: code");
}
