//! The authorization endpoint and its login form: a user signs in, and the client gets an
//! authorization code at its redirect URI (RFC 6749 §4.1, PKCE per RFC 7636, the `iss`
//! response parameter per RFC 9207).
//!
//! Errors follow Keycloak: while the client or its redirect URI is in doubt the user sees an
//! error page and is sent nowhere, so the endpoint cannot serve as an open redirector
//! (RFC 6749 §4.1.2.1); after that, errors go back to the client in the redirect's query.

use axum::{
    Form,
    extract::{
        Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{
    granted_scope, is_pkce_value, now, params, random_token,
    sessions::{AuthRequest, Grant},
};
use crate::{AppState, config::UserConfig};

/// What RFC 3986 lets stand unencoded in a query component's value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `GET …/protocol/openid-connect/auth`.
pub(super) async fn authorize(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(pairs)) => authorization_request(&state, pairs),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Invalid Request"),
    }
}

/// `POST …/protocol/openid-connect/auth`, the same request form-encoded.
pub(super) async fn authorize_form(
    State(state): State<AppState>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(pairs)) => authorization_request(&state, pairs),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Invalid Request"),
    }
}

/// Checks an authorization request in Keycloak's order and, if it is sound, shows the login
/// form for it.
fn authorization_request(state: &AppState, pairs: Vec<(String, String)>) -> Response {
    // A repeated parameter (RFC 6749 §3.1) could be a second, unchecked redirect URI.
    let Ok(params) = params(pairs) else {
        return error_page(StatusCode::BAD_REQUEST, "Invalid Request");
    };
    let get = |name: &str| params.get(name).map(String::as_str);
    let Some(client_id) = get("client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "Missing parameter: client_id");
    };
    let Some(client) = state
        .0
        .clients
        .iter()
        .find(|client| client.config.client_id == client_id)
    else {
        return error_page(StatusCode::BAD_REQUEST, "Client not found.");
    };
    // Compared exactly, as RFC 9700 §4.1.1 asks: no patterns, no prefixes.
    let Some(redirect_uri) =
        get("redirect_uri").filter(|uri| client.config.redirect_uris.iter().any(|r| r == uri))
    else {
        return error_page(StatusCode::BAD_REQUEST, "Invalid parameter: redirect_uri");
    };
    let reply = Reply {
        redirect_uri,
        state: get("state"),
        issuer: state.issuer(),
    };

    match get("response_type") {
        None => return reply.error("invalid_request", "Missing parameter: response_type"),
        Some("code") => {}
        Some(_) => {
            return reply.error(
                "unsupported_response_type",
                "Client is not allowed to initiate browser login with given response_type.",
            );
        }
    }
    let scope = match granted_scope(params.get("scope")) {
        Ok(scope) => scope,
        Err(description) => return reply.error("invalid_scope", &description),
    };
    if get("prompt").is_some_and(|prompt| prompt.split(' ').any(|p| p == "none")) {
        // The sandbox keeps no browser session, so a login without the form cannot succeed.
        return reply.error("login_required", "Login required");
    }
    // PKCE is required of every client, with S256 only: "plain" would put the verifier
    // itself in the browser's history.
    let Some(method) = get("code_challenge_method") else {
        return reply.error(
            "invalid_request",
            "Missing parameter: code_challenge_method",
        );
    };
    if method != "S256" {
        return reply.error(
            "invalid_request",
            "Invalid parameter: code challenge method is not configured one",
        );
    }
    let Some(challenge) = get("code_challenge") else {
        return reply.error("invalid_request", "Missing parameter: code_challenge");
    };
    if !is_pkce_value(challenge) {
        return reply.error("invalid_request", "Invalid parameter: code_challenge");
    }

    let login_id = match random_token() {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let request = AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: reply.state.map(str::to_owned),
        code_challenge: challenge.to_owned(),
        scope: scope.to_owned(),
        nonce: get("nonce").map(str::to_owned),
    };
    let page = login_page(state, &login_id, &request, None);
    state.0.sessions.begin_login(login_id, request, now());
    page
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    session_code: String,
}

#[derive(Deserialize)]
pub(super) struct Credentials {
    #[serde(default)]
    username: String,
    password: Option<SecretString>,
}

/// `POST …/login-actions/authenticate?session_code=…`: the login form's submission. Good
/// credentials end the login with a code sent to the client; bad ones show the form again.
pub(super) async fn authenticate(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, QueryRejection>,
    form: Result<Form<Credentials>, FormRejection>,
) -> Response {
    let (Ok(Query(LoginQuery { session_code })), Ok(Form(credentials))) = (query, form) else {
        return error_page(StatusCode::BAD_REQUEST, "Invalid Request");
    };
    let now = now();
    let Some(request) = state.0.sessions.login(&session_code, now) else {
        return timed_out();
    };
    let Some(user) = find_user(&state.0.config.users, &credentials) else {
        tracing::info!(client_id = %request.client_id, "login failed");
        let failure = (
            credentials.username.as_str(),
            "Invalid username or password.",
        );
        return login_page(&state, &session_code, &request, Some(failure));
    };
    let code = match random_token() {
        Ok(code) => code,
        Err(error) => return error.into_response(),
    };
    let grant = |request: &AuthRequest| Grant {
        sid: Uuid::new_v4().to_string(),
        user_id: user.id,
        username: user.username.to_lowercase(),
        space_id: user.space_id,
        client_id: request.client_id.clone(),
        scope: request.scope.clone(),
        nonce: request.nonce.clone(),
        auth_time: now,
    };
    let idle = state.0.config.refresh_token_ttl_secs;
    let Some((request, grant)) =
        state
            .0
            .sessions
            .finish_login(&session_code, grant, &code, idle, now)
    else {
        // Another submission of the same form won the race.
        return timed_out();
    };
    tracing::info!(client_id = %grant.client_id, sid = %grant.sid, "user signed in");
    Reply {
        redirect_uri: &request.redirect_uri,
        state: request.state.as_deref(),
        issuer: state.issuer(),
    }
    .send(&[("session_state", &grant.sid), ("code", &code)])
}

/// The configured user whose name and password `credentials` carry. The password is
/// compared in constant time.
fn find_user<'a>(users: &'a [UserConfig], credentials: &Credentials) -> Option<&'a UserConfig> {
    let password = credentials.password.as_ref()?.expose_secret().as_bytes();
    let name = credentials.username.to_lowercase();
    let user = users
        .iter()
        .find(|user| user.username.to_lowercase() == name)?;
    bool::from(user.password.expose_secret().as_bytes().ct_eq(password)).then_some(user)
}

/// The way back to the client: its checked redirect URI, the request's `state` and the
/// realm's `iss`.
struct Reply<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Reply<'_> {
    fn error(&self, error: &str, description: &str) -> Response {
        self.send(&[("error", error), ("error_description", description)])
    }

    /// A 303 to the redirect URI with `params` added to its query.
    fn send(&self, params: &[(&str, &str)]) -> Response {
        let mut location = self.redirect_uri.to_owned();
        let mut separator = match location.chars().last() {
            Some('?' | '&') => "",
            _ if location.contains('?') => "&",
            _ => "?",
        };
        let state = self.state.map(|state| ("state", state));
        let iss = ("iss", self.issuer);
        for (name, value) in state.iter().chain(params).chain([&iss]) {
            location.push_str(separator);
            location.push_str(name);
            location.push('=');
            location.extend(utf8_percent_encode(value, QUERY_VALUE));
            separator = "&";
        }
        // Redirect URIs are checked to be visible ASCII at start-up, so this cannot fail;
        // it is still no reason to panic.
        match HeaderValue::try_from(location) {
            Ok(location) => (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response(),
            Err(_) => error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The redirect URI cannot be used.",
            ),
        }
    }
}

/// The login form; `failure` is the username tried and what went wrong with it.
fn login_page(
    state: &AppState,
    login_id: &str,
    request: &AuthRequest,
    failure: Option<(&str, &str)>,
) -> Response {
    let realm = escape(&state.0.config.realm);
    let action = escape(&format!(
        "{}/login-actions/authenticate?session_code={login_id}",
        state.issuer()
    ));
    let client = escape(&request.client_id);
    let (username, message) = failure.map_or((String::new(), String::new()), |(name, text)| {
        (
            escape(name),
            format!(r#"<p class="error" role="alert">{}</p>"#, escape(text)),
        )
    });
    html(
        StatusCode::OK,
        &format!("Sign in to {realm}"),
        &format!(
            r#"<h1>Sign in to {realm}</h1>
<p>SpeakNode sandbox: <strong>{client}</strong> asks you to sign in.</p>
{message}<form id="kc-form-login" method="post" action="{action}">
<label for="username">Username</label>
<input id="username" name="username" value="{username}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="login">Sign in</button>
</form>"#
        ),
    )
}

/// Keycloak's error page: the user is told, the client is not.
fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        "We are sorry...",
        &format!(
            r#"<h1>We are sorry...</h1>
<p id="kc-error-message" role="alert">{}</p>"#,
            escape(message)
        ),
    )
}

fn timed_out() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Your login attempt timed out. Login will start from the beginning.",
    )
}

/// A page of the login flow. It must not be cached, nor framed by another site, which
/// could trick a user into signing in (clickjacking).
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 24rem; margin: 4rem auto; padding: 0 1rem; }}
label, input, button {{ display: block; width: 100%; box-sizing: border-box; }}
input {{ margin: .25rem 0 1rem; padding: .5rem; }}
button {{ padding: .6rem; }}
.error {{ color: #b00020; }}
</style>
</head>
<body>
{body}
</body>
</html>
"#
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(page),
    )
        .into_response()
}

/// `text` made safe inside HTML text and double- or single-quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(reply: &Reply<'_>, params: &[(&str, &str)]) -> String {
        let response = reply.send(params);
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response.headers()[header::LOCATION]
            .to_str()
            .expect("ASCII")
            .to_owned()
    }

    #[test]
    fn redirects_keep_the_uri_s_query_and_encode_values() {
        let reply = Reply {
            redirect_uri: "http://app/cb?tenant=1",
            state: Some("a b&c"),
            issuer: "http://idp/realms/x",
        };
        assert_eq!(
            location(&reply, &[("code", "c0de")]),
            "http://app/cb?tenant=1&state=a%20b%26c&code=c0de&iss=http%3A%2F%2Fidp%2Frealms%2Fx"
        );
        let bare = Reply {
            redirect_uri: "http://app/cb",
            state: None,
            issuer: "i",
        };
        assert_eq!(location(&bare, &[]), "http://app/cb?iss=i");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn users_are_found_by_name_in_any_case_and_exact_password() {
        let users = [UserConfig {
            id: Uuid::nil(),
            username: "Alice".into(),
            password: SecretString::from("wonderland"),
            space_id: Uuid::nil(),
        }];
        let login = |username: &str, password: Option<&str>| Credentials {
            username: username.into(),
            password: password.map(SecretString::from),
        };
        assert!(find_user(&users, &login("alice", Some("wonderland"))).is_some());
        assert!(find_user(&users, &login("ALICE", Some("wonderland"))).is_some());
        assert!(find_user(&users, &login("alice", Some("Wonderland"))).is_none());
        assert!(find_user(&users, &login("alice", None)).is_none());
        assert!(find_user(&users, &login("bob", Some("wonderland"))).is_none());
    }
}
