//! The BFF's platform credentials against a real, independent OpenID provider (npm
//! `oidc-provider` on loopback, research/bff-security.md §6 cases 19–21): client
//! credentials through discovery, refresh-token rotation, reuse detection and a crash
//! between the token response and the write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;

use super::UpstreamError;
use super::credentials::Credentials;
use super::login::Login;
use crate::config::{UpstreamConfig, UpstreamMode};

#[path = "../../tests/oidc/harness.rs"]
mod harness;

use harness::{
    AUDIENCE, CLIENT_ID, CLIENT_SECRET, Provider, RESOURCE, SCOPE, TempDir, claims,
    stored_refresh_token,
};

fn config(idp: &Provider, refresh_token_file: Option<PathBuf>) -> UpstreamConfig {
    let mode = match refresh_token_file {
        Some(_) => UpstreamMode::RefreshToken,
        None => UpstreamMode::ClientCredentials,
    };
    UpstreamConfig {
        issuer: idp.issuer.clone(),
        // Never called: these tests stop at the access token.
        api_base: "http://127.0.0.1:9".into(),
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        timeout_ms: 10_000,
        mode,
        refresh_token_file,
        resource: Some(RESOURCE.into()),
        scope: Some(SCOPE.into()),
        ..UpstreamConfig::default()
    }
}

fn credentials(config: &UpstreamConfig) -> Arc<Credentials> {
    let http = super::http_client(config).expect("http client");
    Arc::new(Credentials::new(config, http))
}

/// Runs `login` with the harness as the browser; returns the refresh token it stored.
async fn login(idp: &Provider, config: &UpstreamConfig) -> String {
    let login = Login::begin(config).await.expect("login starts");
    let url = login.authorization_url().to_owned();
    let finished = tokio::spawn(login.finish());
    let page = idp.authorize(&url).await;
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let path = finished.await.expect("task").expect("login succeeds");
    stored_refresh_token(&path)
}

/// `count` concurrent callers; every one must get the same token.
async fn concurrently(credentials: &Arc<Credentials>, count: usize) -> String {
    let mut calls = JoinSet::new();
    for _ in 0..count {
        let credentials = credentials.clone();
        calls.spawn(async move { credentials.access_token().await });
    }
    let mut tokens = Vec::new();
    while let Some(result) = calls.join_next().await {
        let token = result.expect("task").expect("a token");
        tokens.push(token.expose_secret().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    tokens.remove(0)
}

async fn assert_needs_login(credentials: &Credentials) {
    let result = credentials.access_token().await;
    assert!(
        matches!(result, Err(UpstreamError::NeedsLogin)),
        "{:?}",
        result.map(|_| "a token")
    );
}

/// What the BFF logs on this thread; a current-thread test runtime polls every task here.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[cfg(unix)]
fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("the file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_private(_: &Path) {}

#[tokio::test]
async fn attack_19_client_credentials_through_discovery_fetch_one_audience_bound_token() {
    let idp = Provider::start().await;
    let credentials = credentials(&config(&idp, None));
    let token = concurrently(&credentials, 50).await;
    assert_eq!(
        idp.count("token_requests").await,
        1,
        "50 callers, one request"
    );
    assert_eq!(idp.count("client_credentials:ok").await, 1);

    // The resource indicator made the provider issue a JWT for the platform's audience.
    let claims = claims(&token);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(claims["client_id"], CLIENT_ID);

    let again = credentials.access_token().await.expect("cached");
    assert_eq!(again.expose_secret(), token);
    assert_eq!(idp.count("token_requests").await, 1, "the token is cached");
}

/// Regression: with a margin of only 10 % of the lifetime, a 3 s token was handed out up
/// to 0.7 s after its `exp`, because the provider rounds `exp` down to whole seconds.
#[tokio::test]
async fn attack_19_a_client_credentials_token_is_renewed_before_it_expires() {
    let idp = Provider::start_with_ttl(3).await;
    let credentials = credentials(&config(&idp, None));
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    // Ask until the token has changed once, checking on every call that the BFF never
    // hands out a token that had already expired when it was asked for.
    while seen.len() < 2 {
        tick.tick().await;
        let asked_at = unix_now();
        let token = credentials.access_token().await.expect("a token");
        let token = token.expose_secret().to_owned();
        let exp = claims(&token)["exp"].as_f64().expect("exp");
        assert!(asked_at < exp, "expired {:.3} s ago", asked_at - exp);
        if seen.last() != Some(&token) {
            seen.push(token);
        }
        assert!(tokio::time::Instant::now() < deadline, "never renewed");
    }
    assert_eq!(idp.count("client_credentials:ok").await, 2);
}

#[tokio::test]
async fn attack_20_a_refresh_rotates_the_stored_token_before_the_access_token_is_used() {
    let idp = Provider::start().await;
    let dir = TempDir::new();
    let config = config(&idp, Some(dir.0.join("refresh-token.json")));
    let first = login(&idp, &config).await;
    let credentials = credentials(&config);

    let before = idp.count("token_requests").await;
    let access = concurrently(&credentials, 50).await;
    assert_eq!(
        idp.count("token_requests").await,
        before + 1,
        "50 callers, one refresh"
    );
    let path = dir.0.join("refresh-token.json");
    let second = stored_refresh_token(&path);
    assert_ne!(second, first, "the rotated token is on disk");
    assert_private(&path);
    let claims = claims(&access);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(
        claims["sub"], "alice",
        "the token acts for the user who logged in"
    );

    credentials
        .invalidate(&SecretString::from(access.as_str()))
        .await;
    credentials.access_token().await.expect("refreshed again");
    let third = stored_refresh_token(&path);
    assert!(third != second && third != first);

    let (status, body) = idp.refresh_directly(&second).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant", "the old token is refused");
}

#[tokio::test]
async fn attack_21_reuse_of_a_consumed_refresh_token_stops_the_bff_until_the_next_login() {
    let idp = Provider::start().await;
    let dir = TempDir::new();
    let config = config(&idp, Some(dir.0.join("refresh-token.json")));
    let consumed = login(&idp, &config).await;
    let (logs, _guard) = Logs::capture();
    let credentials = credentials(&config);
    let access = credentials.access_token().await.expect("rotated");
    let rotated = stored_refresh_token(&dir.0.join("refresh-token.json"));

    // Someone replays the consumed token: the provider revokes the whole grant.
    let (_, body) = idp.refresh_directly(&consumed).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(idp.count("grant_revoked").await, 1);

    credentials.invalidate(&access).await;
    assert_needs_login(&credentials).await;
    let requests = idp.count("token_requests").await;
    let mut calls = JoinSet::new();
    for _ in 0..20 {
        let credentials = credentials.clone();
        calls.spawn(async move { assert_needs_login(&credentials).await });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("every caller is told to log in");
    }
    assert_needs_login(&credentials).await;
    assert_eq!(
        idp.count("token_requests").await,
        requests,
        "no token request while the BFF needs a login"
    );
    let logs = logs.text();
    assert!(logs.contains("`speaknode-bff login --config"), "{logs}");
    for secret in [&consumed, &rotated, access.expose_secret(), CLIENT_SECRET] {
        assert!(!logs.contains(secret), "a secret was logged: {logs}");
    }

    // A new login replaces the file, and the running client picks it up.
    login(&idp, &config).await;
    credentials
        .access_token()
        .await
        .expect("recovered without a restart");
}

#[tokio::test]
async fn attack_20_a_crash_before_the_rotated_token_is_stored_ends_in_needs_login_not_a_loop() {
    let idp = Provider::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("refresh-token.json");
    let config = config(&idp, Some(path.clone()));
    let stored = login(&idp, &config).await;

    let crashed = credentials(&config);
    crashed.crash_before_next_write();
    let error = crashed
        .access_token()
        .await
        .expect_err("the access token is not used when the write fails");
    assert!(
        matches!(error, UpstreamError::IdentityUnavailable(_)),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains(&stored), "{error:?}");
    assert_eq!(
        idp.count("refresh_token:ok").await,
        1,
        "the provider rotated"
    );
    assert_eq!(
        stored_refresh_token(&path),
        stored,
        "but the file kept the old token"
    );
    drop(crashed);

    // The restarted BFF presents the consumed token: the provider sees reuse.
    let restarted = credentials(&config);
    assert_needs_login(&restarted).await;
    assert_eq!(idp.count("refresh_token:invalid_grant").await, 1);
    let requests = idp.count("token_requests").await;
    for _ in 0..10 {
        assert_needs_login(&restarted).await;
    }
    assert_eq!(idp.count("token_requests").await, requests, "no retry loop");
}

#[tokio::test]
async fn a_bff_started_before_the_login_waits_for_the_file_without_asking() {
    let idp = Provider::start().await;
    let dir = TempDir::new();
    let config = config(&idp, Some(dir.0.join("refresh-token.json")));
    let credentials = credentials(&config);
    assert_needs_login(&credentials).await;
    assert_needs_login(&credentials).await;
    assert_eq!(idp.count("token_requests").await, 0);

    login(&idp, &config).await;
    credentials
        .access_token()
        .await
        .expect("the new file is used");
    assert_eq!(idp.count("refresh_token:ok").await, 1);
}

#[tokio::test]
async fn a_login_while_the_bff_runs_replaces_the_grant_it_uses() {
    let idp = Provider::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("refresh-token.json");
    let config = config(&idp, Some(path.clone()));
    login(&idp, &config).await;
    let credentials = credentials(&config);
    let access = credentials.access_token().await.expect("first grant");
    let held = stored_refresh_token(&path);

    let replaced = login(&idp, &config).await;
    credentials.invalidate(&access).await;
    credentials.access_token().await.expect("second grant");
    let rotated = stored_refresh_token(&path);
    assert!(rotated != replaced && rotated != held);
    // The first grant's token was never presented again, so it is still unused.
    let (status, _) = idp.refresh_directly(&held).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}
