//! `speaknode-bff login`: the one-time user authorisation behind refresh-token mode, by
//! authorization code with PKCE (S256) through a loopback redirect (RFC 8252 §7.3).
//!
//! The operator opens the printed URL, signs in as the user the BFF should act for, and the
//! provider redirects the browser to `http://127.0.0.1:{port}/callback`, where this module
//! listens. The response must carry this run's `state`, and the provider's own `iss` when it
//! sends one (RFC 9207, mandatory when discovery announces it), so neither a stray redirect
//! nor a response from another provider can plant a token. The refresh token is then stored
//! as the running BFF reads it; the access token that came with it is dropped.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse,
    TokenUrl,
};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::oidc::{Identity, grant_error};
use super::token_file::{Owner, TokenFile};
use crate::config::{UpstreamConfig, UpstreamMode};

const CALLBACK_PATH: &str = "/callback";
/// How long `finish` waits for the browser: long enough to find a password.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the answer page may take to reach a browser after the code arrived.
const PAGE_GRACE: Duration = Duration::from_secs(2);

/// A login in progress: the authorization URL is ready and the redirect listener bound.
pub struct Login {
    authorization_url: String,
    redirect_uri: RedirectUrl,
    listener: TcpListener,
    expected: Expected,
    verifier: PkceCodeVerifier,
    token_url: TokenUrl,
    identity: Identity,
    file: TokenFile,
    http: reqwest::Client,
}

/// What the redirect to the loopback listener must carry.
struct Expected {
    state: CsrfToken,
    issuer: String,
    /// Discovery announced RFC 9207, so a response without `iss` is refused.
    iss_required: bool,
}

type Outcome = anyhow::Result<AuthorizationCode>;

impl Login {
    /// Discovers the provider, binds the redirect listener and builds the authorization URL.
    /// Needs `upstream.mode = "refresh_token"` and `upstream.refresh_token_file`.
    pub async fn begin(upstream: &UpstreamConfig) -> anyhow::Result<Login> {
        ensure!(
            upstream.mode == UpstreamMode::RefreshToken,
            "login is for upstream.mode = \"refresh_token\"; this configuration uses client \
             credentials, which need no login"
        );
        let path = upstream
            .refresh_token_file
            .clone()
            .context("upstream.refresh_token_file is not set")?;
        let http = super::http_client(upstream)?;
        let identity = Identity::new(upstream);
        let discovery = identity.discover(&http).await?;
        if let Some(methods) = &discovery.code_challenge_methods_supported {
            ensure!(
                methods.iter().any(|method| method == "S256"),
                "the identity provider does not offer PKCE with S256"
            );
        }
        let token_url = Identity::token_url(&discovery)?;
        let listener = TcpListener::bind((
            Ipv4Addr::LOCALHOST,
            upstream.login_redirect_port.unwrap_or(0),
        ))
        .await
        .context("cannot listen for the login redirect on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let redirect_uri = RedirectUrl::new(format!("http://127.0.0.1:{port}{CALLBACK_PATH}"))?;
        let client = identity
            .client(token_url.clone())
            .set_auth_uri(Identity::auth_url(&discovery)?)
            .set_redirect_uri(redirect_uri.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .add_scopes(identity.scopes());
        for (name, value) in identity.targets() {
            request = request.add_extra_param(name, value);
        }
        let (url, state) = request.url();
        Ok(Login {
            authorization_url: url.into(),
            redirect_uri,
            listener,
            expected: Expected {
                state,
                issuer: identity.issuer.clone(),
                iss_required: discovery.authorization_response_iss_parameter_supported,
            },
            verifier,
            token_url,
            identity,
            file: TokenFile::new(path),
            http,
        })
    }

    /// The URL to open in a browser.
    pub fn authorization_url(&self) -> &str {
        &self.authorization_url
    }

    /// Where the provider sends the browser back; it must be registered for the client
    /// (with any port, for providers that follow RFC 8252 §7.3).
    pub fn redirect_uri(&self) -> &str {
        self.redirect_uri.as_str()
    }

    /// Waits for the redirect, exchanges the code and stores the refresh token. Returns the
    /// file it was written to.
    pub async fn finish(self) -> anyhow::Result<PathBuf> {
        let (done, outcome) = oneshot::channel();
        let callback = Arc::new(Callback {
            expected: self.expected,
            done: Mutex::new(Some(done)),
        });
        let app = Router::new()
            .route(CALLBACK_PATH, get(receive))
            .with_state(callback);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let outcome = tokio::time::timeout(LOGIN_TIMEOUT, outcome).await;
        let _ = stop.send(());
        // The answer page goes out during the graceful shutdown; a browser that keeps its
        // connection open does not hold the login up.
        let _ = tokio::time::timeout(PAGE_GRACE, server).await;
        let code = outcome
            .map_err(|_| anyhow!("no redirect arrived within {} s", LOGIN_TIMEOUT.as_secs()))?
            .context("the redirect listener stopped")??;

        let client = self
            .identity
            .client(self.token_url)
            .set_redirect_uri(self.redirect_uri);
        let mut request = client.exchange_code(code).set_pkce_verifier(self.verifier);
        for (name, value) in self.identity.targets() {
            request = request.add_extra_param(name, value);
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(grant_error)
            .context("exchanging the authorization code")?;
        let refresh_token = response.refresh_token().context(
            "the identity provider issued no refresh token: allow refresh tokens for this \
             client, or add offline_access to upstream.scope",
        )?;
        let owner = Owner {
            issuer: &self.identity.issuer,
            client_id: &self.identity.client_id,
        };
        let token = SecretString::from(refresh_token.secret().as_str());
        self.file
            .write(owner, &token)
            .await
            .with_context(|| format!("cannot write {}", self.file.path().display()))?;
        Ok(self.file.path().to_owned())
    }
}

/// The redirect listener's state: what to expect, and where the first answer goes.
struct Callback {
    expected: Expected,
    done: Mutex<Option<oneshot::Sender<Outcome>>>,
}

async fn receive(
    State(callback): State<Arc<Callback>>,
    Query(params): Query<HashMap<String, String>>,
) -> (StatusCode, &'static str) {
    let Some(outcome) = callback.expected.check(&params) else {
        tracing::warn!("ignored a redirect that does not carry this login's state");
        return (
            StatusCode::BAD_REQUEST,
            "This sign-in was not started by the running `speaknode-bff login`.",
        );
    };
    let done = callback
        .done
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match done {
        Some(done) => {
            let _ = done.send(outcome);
            (
                StatusCode::OK,
                "The SpeakNode BFF received the answer. Return to the terminal to see the result.",
            )
        }
        None => (
            StatusCode::CONFLICT,
            "This login has already received its answer.",
        ),
    }
}

impl Expected {
    /// The code of an authorization response, or why it is refused; `None` when the
    /// response belongs to another login (its `state` differs) and is ignored.
    fn check(&self, params: &HashMap<String, String>) -> Option<Outcome> {
        if params.get("state").map(String::as_str) != Some(self.state.secret().as_str()) {
            return None;
        }
        // RFC 9207: checked before anything else in the response, errors included, since a
        // response from another provider must not be acted on at all.
        match params.get("iss") {
            Some(iss) if iss.trim_end_matches('/') != self.issuer => {
                return Some(Err(anyhow!(
                    "the authorization response names the issuer {iss:?}, not the configured \
                     one; refusing it (a mix-up attack or misconfiguration)"
                )));
            }
            None if self.iss_required => {
                return Some(Err(anyhow!(
                    "the authorization response lacks the `iss` its provider announces"
                )));
            }
            _ => {}
        }
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").map_or("", String::as_str);
            return Some(Err(anyhow!(
                "the identity provider refused the authorization: {error} {description}"
            )));
        }
        Some(
            params
                .get("code")
                .map(|code| AuthorizationCode::new(code.clone()))
                .context("the authorization response has no code"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(iss_required: bool) -> Expected {
        Expected {
            state: CsrfToken::new("st4te".into()),
            issuer: "https://id.example".into(),
            iss_required,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_response_with_another_state_is_ignored() {
        for state in [None, Some("other"), Some("")] {
            let mut response = params(&[("code", "c"), ("iss", "https://id.example")]);
            if let Some(state) = state {
                response.insert("state".into(), state.into());
            }
            assert!(expected(true).check(&response).is_none(), "{state:?}");
        }
    }

    #[test]
    fn the_issuer_must_match_and_be_present_when_announced() {
        let ok = params(&[
            ("state", "st4te"),
            ("code", "c"),
            ("iss", "https://id.example/"),
        ]);
        let code = expected(true).check(&ok).expect("ours").expect("accepted");
        assert_eq!(code.secret(), "c");

        let mixed_up = params(&[
            ("state", "st4te"),
            ("code", "c"),
            ("iss", "https://evil.example"),
        ]);
        let error = expected(false)
            .check(&mixed_up)
            .expect("ours")
            .expect_err("mix-up");
        assert!(error.to_string().contains("issuer"), "{error}");

        let silent = params(&[("state", "st4te"), ("code", "c")]);
        expected(true)
            .check(&silent)
            .expect("ours")
            .expect_err("iss missing");
        expected(false)
            .check(&silent)
            .expect("ours")
            .expect("iss optional");
    }

    #[test]
    fn an_error_response_or_a_missing_code_fails_the_login() {
        let denied = params(&[("state", "st4te"), ("error", "access_denied")]);
        let error = expected(false)
            .check(&denied)
            .expect("ours")
            .expect_err("denied");
        assert!(error.to_string().contains("access_denied"), "{error}");
        let empty = params(&[("state", "st4te")]);
        expected(false)
            .check(&empty)
            .expect("ours")
            .expect_err("no code");
    }
}
