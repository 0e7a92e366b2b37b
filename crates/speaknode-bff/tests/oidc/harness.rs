//! Test support shared by the crate's own tests and the integration tests: an independent
//! OpenID provider (npm `oidc-provider`, run by `provider.mjs`) on loopback, killed when
//! dropped, and a headless browser for its login and consent pages.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The provider's one client, as `provider.mjs` registers it.
pub const CLIENT_ID: &str = "speaknode-bff";
pub const CLIENT_SECRET: &str = "oidc-test-secret-5c1d8e";
/// The resource whose access tokens are EdDSA JWTs with `aud` [`AUDIENCE`].
pub const RESOURCE: &str = "https://voice-api.test";
pub const AUDIENCE: &str = "voice-api";
pub const SCOPE: &str = "agents:read";

/// Node's start (module loading, RSA key generation) is slow on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const SETUP_HINT: &str = "run `cargo xtask setup` (it installs the npm packages of the \
                          workspace's package.json, oidc-provider among them)";

/// A running `provider.mjs`.
pub struct Provider {
    pub issuer: String,
    http: reqwest::Client,
    /// Killed when the provider is dropped.
    _node: tokio::process::Child,
}

impl Provider {
    /// A provider whose access tokens live 300 s.
    pub async fn start() -> Provider {
        Self::start_with_ttl(300).await
    }

    /// A provider whose access tokens live `access_token_ttl` seconds. Fails the test with
    /// a hint when node or the npm package is missing.
    pub async fn start_with_ttl(access_token_ttl: u64) -> Provider {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let package = here.join("../../node_modules/oidc-provider/package.json");
        assert!(
            package.exists(),
            "the npm package oidc-provider is not installed: {SETUP_HINT}"
        );
        let mut node = tokio::process::Command::new("node")
            .arg(here.join("tests/oidc/provider.mjs"))
            .arg("0")
            .arg(access_token_ttl.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `node` ({e}): install Node.js 20+ and {SETUP_HINT}")
            });
        // Drain stderr so node never blocks on a full pipe; keep it for failure messages.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = node.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buffer).await {
                sink.lock()
                    .expect("stderr buffer")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        // The first stdout line names the address; the rest is drained like stderr.
        let mut stdout = BufReader::new(node.stdout.take().expect("piped stdout")).lines();
        let (first, first_line) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = first.send(stdout.next_line().await.ok().flatten());
            while let Ok(Some(_)) = stdout.next_line().await {}
        });
        let issuer = match tokio::time::timeout(START_TIMEOUT, first_line).await {
            Ok(Ok(Some(line))) => line.strip_prefix("listening on ").map(str::to_owned),
            _ => None,
        };
        let Some(issuer) = issuer else {
            let _ = node.kill().await;
            let stderr = stderr.lock().expect("stderr buffer").clone();
            panic!("provider.mjs did not start ({SETUP_HINT}); its stderr:\n{stderr}");
        };
        let provider = Provider {
            issuer,
            http: browser_client(),
            _node: node,
        };
        provider.wait_for_discovery().await;
        provider
    }

    async fn wait_for_discovery(&self) {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let answered = self.http.get(&url).send().await;
            if answered.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} did not answer"
            );
        }
    }

    /// The provider's counters (see `provider.mjs`).
    pub async fn events(&self) -> Value {
        self.http
            .get(format!("{}/test/events", self.issuer))
            .send()
            .await
            .expect("the provider answers")
            .json()
            .await
            .expect("json events")
    }

    /// One counter, 0 when it never moved.
    pub async fn count(&self, event: &str) -> u64 {
        self.events().await[event].as_u64().unwrap_or(0)
    }

    /// Presents `refresh_token` to the token endpoint as the BFF's client would.
    pub async fn refresh_directly(&self, refresh_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("resource", RESOURCE),
            ])
            .send()
            .await
            .expect("the provider answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Acts as the user's browser: follows `authorization_url`, signs in and consents on
    /// the provider's development pages, and follows the redirect out of the provider.
    /// Returns the answer of that last hop (the BFF's loopback listener).
    pub async fn authorize(&self, authorization_url: &str) -> reqwest::Response {
        let provider = Url::parse(&self.issuer).expect("issuer URL");
        let mut cookies = BTreeMap::new();
        let mut url = Url::parse(authorization_url).expect("authorization URL");
        let mut form: Option<Vec<(&str, &str)>> = None;
        for _ in 0..20 {
            if url.origin() != provider.origin() {
                // Leaving the provider: the redirect to the BFF gets no provider cookies.
                return self
                    .http
                    .get(url)
                    .send()
                    .await
                    .expect("the redirect target answers");
            }
            let mut request = match form.take() {
                Some(fields) => self.http.post(url.clone()).form(&fields),
                None => self.http.get(url.clone()),
            };
            if !cookies.is_empty() {
                let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
                request = request.header(COOKIE, header.join("; "));
            }
            let response = request.send().await.expect("the provider answers");
            remember_cookies(&mut cookies, &response);
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers()[LOCATION]
                    .to_str()
                    .expect("ascii Location");
                url = url.join(location).expect("a valid Location");
                continue;
            }
            let html = response.text().await.expect("a page");
            assert_eq!(status, StatusCode::OK, "the provider failed: {html}");
            let action = attribute_after(&html, "<form", "action").expect("a form");
            url = url.join(&action).expect("a form action");
            form = Some(
                match attribute_after(&html, "name=\"prompt\"", "value").as_deref() {
                    Some("login") => {
                        vec![("prompt", "login"), ("login", "alice"), ("password", "x")]
                    }
                    Some("consent") => vec![("prompt", "consent")],
                    other => panic!("an unexpected page ({other:?}): {html}"),
                },
            );
        }
        panic!("the authorization flow did not leave the provider");
    }
}

/// A client that follows no redirect by itself.
pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Keeps every cookie by name; the provider's paths and expiry matter little here, and a
/// cleared cookie (empty value) is dropped.
fn remember_cookies(jar: &mut BTreeMap<String, String>, response: &reqwest::Response) {
    for header in response.headers().get_all(SET_COOKIE) {
        let Some((name, value)) = header
            .to_str()
            .ok()
            .and_then(|cookie| cookie.split(';').next())
            .and_then(|pair| pair.split_once('='))
        else {
            continue;
        };
        if value.is_empty() {
            jar.remove(name.trim());
        } else {
            jar.insert(name.trim().to_owned(), value.to_owned());
        }
    }
}

/// The value of `attribute="…"` in the first tag after `marker`.
fn attribute_after(html: &str, marker: &str, attribute: &str) -> Option<String> {
    let rest = &html[html.find(marker)?..];
    let tag = &rest[..rest.find('>')?];
    let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

/// The claims of a JWT, unverified (the tests only look).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The refresh token stored in a refresh token file.
pub fn stored_refresh_token(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("the refresh token file");
    let stored: Value = serde_json::from_str(&text).expect("JSON");
    stored["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// A fresh directory for one test's files, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("bff-oidc-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
