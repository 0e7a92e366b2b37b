//! The test stack: the real sandbox and the BFF on loopback, a client that checks every
//! response for leaked platform credentials, and helpers to forge widget tokens.

#![allow(dead_code)]

pub mod sse;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, ORIGIN};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use speaknode_api::{WIDGET_HEADER, WIDGET_HEADER_VALUE, paths};
use speaknode_bff::{AgentPolicy, Config, LimitsConfig, Rate, UpstreamConfig};
use speaknode_sandbox::{AgentConfig, ClientConfig, Timing};
use tokio::sync::oneshot;
use uuid::{Uuid, uuid};

pub const SPACE: Uuid = uuid!("0f8fad5b-d9cb-469f-a165-70867728950e");
/// Ava: embeddable on the shop and on a local dev server.
pub const AGENT_A: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// Max: embeddable on another site only.
pub const AGENT_B: &str = "3d5f1b2a-8c4e-4f6a-9b7d-1e2c3a4b5c6d";
/// Configured in the BFF but unknown to the platform.
pub const AGENT_GHOST: &str = "00000000-0000-4000-8000-00000000dead";
pub const ORIGIN_A: &str = "https://shop.example";
pub const ORIGIN_DEV: &str = "http://localhost:8080";
pub const ORIGIN_B: &str = "https://other.example";
pub const CLIENT_ID: &str = "speaknode-bff-test";
/// Distinctive, so that finding it anywhere in a response is unambiguous.
pub const CLIENT_SECRET: &str = "sandbox-client-secret-7f3a9c1e";
pub const AVA_GREETING: &str = "Hi! I'm Ava. How can I help you today?";
pub const AVA_DESCRIPTION: &str = "Front desk agent of the demo store";

/// A sandbox and a BFF in front of it, both stopped when this is dropped.
pub struct Stack {
    pub bff: String,
    pub sandbox: String,
    /// The sandbox realm's issuer, the `iss` of every platform access token.
    pub issuer: String,
    pub http: reqwest::Client,
    pub key: TestKey,
    /// The sandbox's state, to act on it while it runs (end conversations, set faults).
    pub state: speaknode_sandbox::AppState,
    _stop: Vec<oneshot::Sender<()>>,
}

/// The BFF's signing key, kept by the test so it can sign tokens the BFF would not.
pub struct TestKey {
    pub der: Vec<u8>,
    pub file: PathBuf,
}

impl Drop for TestKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

impl TestKey {
    fn new() -> Self {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("randomness");
        let der = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_der()
            .expect("pkcs8")
            .as_bytes()
            .to_vec();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        let file = std::env::temp_dir().join(format!("speaknode-bff-test-{}.pem", Uuid::new_v4()));
        std::fs::write(&file, pem).expect("write the key file");
        Self { der, file }
    }

    pub fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_ed_der(&self.der)
    }
}

pub fn sandbox_config() -> speaknode_sandbox::Config {
    let agent = |id: &str, title: &str, greeting: &str| AgentConfig {
        id: id.parse().expect("uuid"),
        title: title.into(),
        space_id: SPACE,
        greeting: greeting.into(),
        description: AVA_DESCRIPTION.into(),
        language_locale_code: "en-US".into(),
    };
    speaknode_sandbox::Config {
        public_url: None,
        realm: "speaknode".into(),
        access_token_ttl_secs: 300,
        clients: vec![ClientConfig {
            client_id: CLIENT_ID.into(),
            client_secret: Some(SecretString::from(CLIENT_SECRET)),
            space_id: SPACE,
            ..Default::default()
        }],
        agents: vec![
            agent(AGENT_A, "Ava", AVA_GREETING),
            agent(AGENT_B, "Max", "Hello, Max here."),
        ],
        timing: Timing {
            dispatch_ms: 50,
            join_ms: 100,
        },
        ..Default::default()
    }
}

pub fn bff_config(sandbox: &str, key: &TestKey) -> Config {
    let policy = |id: &str, origins: &[&str]| AgentPolicy {
        id: id.into(),
        allowed_origins: origins.iter().map(|&o| o.to_owned()).collect(),
    };
    Config {
        public_url: None,
        token_ttl_secs: 300,
        upstream: UpstreamConfig {
            issuer: format!("{sandbox}/realms/speaknode"),
            api_base: sandbox.to_owned(),
            client_id: CLIENT_ID.into(),
            client_secret: SecretString::from(CLIENT_SECRET),
            timeout_ms: 5_000,
            ..UpstreamConfig::default()
        },
        agents: vec![
            policy(AGENT_A, &[ORIGIN_A, ORIGIN_DEV]),
            policy(AGENT_B, &[ORIGIN_B]),
            policy(AGENT_GHOST, &[ORIGIN_A]),
        ],
        signing_key_file: Some(key.file.clone()),
        previous_signing_key_files: Vec::new(),
        limits: generous_limits(),
    }
}

/// Limits no functional test reaches; the rate limit tests set their own.
pub fn generous_limits() -> LimitsConfig {
    let rate = Rate {
        per_minute: 60_000,
        burst: 10_000,
    };
    LimitsConfig {
        per_ip: rate,
        per_agent: rate,
        global: rate,
        ..LimitsConfig::default()
    }
}

/// Binds 127.0.0.1:0 and returns the listener with its base URL.
pub async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    (listener, base)
}

/// A base URL where nothing listens.
pub async fn closed_port() -> String {
    let (listener, base) = bind().await;
    drop(listener);
    base
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    /// Starts the sandbox, then the BFF with [`bff_config`] changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Stack {
        capture_logs();
        let mut stop = Vec::new();
        let (listener, sandbox) = bind().await;
        let (tx, rx) = oneshot::channel();
        stop.push(tx);
        let state = speaknode_sandbox::AppState::new(sandbox_config(), &sandbox).expect("state");
        let serving = state.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            speaknode_sandbox::serve_state(listener, serving, shutdown)
                .await
                .expect("sandbox");
        });
        let key = TestKey::new();
        let mut config = bff_config(&sandbox, &key);
        adjust(&mut config);
        let bff = Self::spawn_bff(config, &mut stop).await;
        Stack {
            bff,
            issuer: format!("{sandbox}/realms/speaknode"),
            sandbox,
            http: client(),
            key,
            state,
            _stop: stop,
        }
    }

    /// Begins the BFF's graceful shutdown, as SIGTERM would; the sandbox keeps running.
    pub fn shut_down_bff(&mut self) {
        // `start_with` starts the BFF last.
        if let Some(stop) = self._stop.pop() {
            let _ = stop.send(());
        }
    }

    /// The value of the metric line starting with `name ` in the BFF's `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let reply = self.send(self.http.get(self.url("/metrics"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply
            .body
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{}", reply.body))
            .parse()
            .expect("a number")
    }

    async fn spawn_bff(config: Config, stop: &mut Vec<oneshot::Sender<()>>) -> String {
        let (listener, bff) = bind().await;
        let (tx, rx) = oneshot::channel();
        stop.push(tx);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            speaknode_bff::serve(listener, config, shutdown)
                .await
                .expect("bff");
        });
        bff
    }

    /// Sends a request and checks the whole response for platform credentials.
    pub async fn send(&self, request: RequestBuilder) -> Reply {
        let response = request.send().await.expect("the BFF answers");
        let reply = Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("a text body"),
        };
        if let Some(leak) = find_leak(&reply.everything(), &self.issuer) {
            panic!("a response leaked {leak}: {reply:?}");
        }
        // What this test binary has logged since the last check, at trace level, gets the
        // same check (each line once, whichever test reads it).
        if let Some(logs) = LOGS.get() {
            let text = logs.text();
            let from = SCANNED.swap(text.len(), std::sync::atomic::Ordering::AcqRel);
            let fresh = text.get(from.min(text.len())..).unwrap_or(&text);
            if let Some(leak) = find_leak(fresh, &self.issuer) {
                panic!("a log line leaked {leak}");
            }
        }
        reply
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bff)
    }

    pub async fn mint(&self, origin: Option<&str>, agent_id: &str) -> Reply {
        let mut request = self
            .http
            .post(self.url(paths::SESSIONS))
            .header(WIDGET_HEADER, WIDGET_HEADER_VALUE)
            .json(&serde_json::json!({ "agent_id": agent_id }));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        self.send(request).await
    }

    /// Mints for an allowed origin and returns the token.
    pub async fn mint_token(&self, origin: &str, agent_id: &str) -> String {
        let reply = self.mint(Some(origin), agent_id).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.json()["token"].as_str().expect("a token").to_owned()
    }

    pub async fn start_conversation(&self, token: &str, origin: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(self.url(paths::CONVERSATIONS))
            .header(WIDGET_HEADER, WIDGET_HEADER_VALUE)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .json(&serde_json::json!({}));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        self.send(request).await
    }

    pub async fn read_conversation(&self, token: &str, id: &str) -> Reply {
        let request = self
            .http
            .get(self.url(&paths::conversation(id)))
            .header(WIDGET_HEADER, WIDGET_HEADER_VALUE)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        self.send(request).await
    }

    pub async fn renew_token(&self, token: &str, id: &str, origin: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(self.url(&paths::conversation_token(id)))
            .header(WIDGET_HEADER, WIDGET_HEADER_VALUE)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        self.send(request).await
    }

    /// `POST` to a route of the conversation `id` with its bound `token`, from `origin`.
    pub async fn conversation_action(
        &self,
        path: &str,
        token: &str,
        origin: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .header(WIDGET_HEADER, WIDGET_HEADER_VALUE)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Ends conversation `id` from `origin`.
    pub async fn end_conversation(&self, token: &str, id: &str, origin: Option<&str>) -> Reply {
        self.conversation_action(&paths::conversation_end(id), token, origin, None)
            .await
    }

    /// Rates conversation `id` from its page with `body`.
    pub async fn give_feedback(&self, token: &str, id: &str, body: Value) -> Reply {
        let path = paths::conversation_feedback(id);
        self.conversation_action(&path, token, Some(ORIGIN_A), Some(body))
            .await
    }

    /// Mints and starts; returns the conversation id and the token bound to it.
    pub async fn started(&self, origin: &str, agent_id: &str) -> (String, String) {
        let token = self.mint_token(origin, agent_id).await;
        let reply = self.start_conversation(&token, Some(origin)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        let body = reply.json();
        let id = body["conversation"]["id"]
            .as_str()
            .expect("an id")
            .to_owned();
        (
            id,
            body["token"].as_str().expect("a bound token").to_owned(),
        )
    }

    /// The `kid` the BFF signs with, from its JWKS.
    pub async fn kid(&self) -> String {
        let reply = self
            .send(self.http.get(self.url("/.well-known/jwks.json")))
            .await;
        reply.json()["keys"][0]["kid"]
            .as_str()
            .expect("a kid")
            .to_owned()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// One response, kept whole for assertions and leak checks.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts a problem+json response with `status` and `code`.
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.headers[CONTENT_TYPE], "application/problem+json",
            "{self:?}"
        );
        let problem: speaknode_api::Problem = serde_json::from_str(&self.body).expect("a problem");
        assert_eq!(problem.code.as_str(), code, "{self:?}");
        assert_eq!(problem.status, status.as_u16());
    }

    fn everything(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
            .collect();
        format!("{}\n{}", headers.join("\n"), self.body)
    }
}

/// Names the platform credential found in `text`, if any: the client secret, or a JWT
/// issued by the sandbox's realm or meant for the platform API.
pub fn find_leak(text: &str, platform_issuer: &str) -> Option<String> {
    if text.contains(CLIENT_SECRET) {
        return Some("the client secret".into());
    }
    let candidates = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter(|word| word.starts_with("eyJ") && word.split('.').count() == 3);
    for jwt in candidates {
        let Some(payload) = jwt.split('.').nth(1) else {
            continue;
        };
        let Some(claims) = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        else {
            continue;
        };
        if claims["iss"] == platform_issuer || claims["aud"] == "speaknode-api" {
            return Some(format!("a platform access token (iss {})", claims["iss"]));
        }
    }
    None
}

/// Polls `read` until `done` holds for its JSON, for at most `limit`.
pub async fn eventually<F, Fut>(
    limit: Duration,
    mut read: F,
    done: impl Fn(&Value) -> bool,
) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Reply>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    loop {
        tick.tick().await;
        let reply = read().await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let value = reply.json();
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {limit:?}: {value}"
        );
    }
}

/// Every log line of this test binary, at trace level, so the leak check covers the logs as
/// it covers responses. Installed by the first stack unless the binary installed its own
/// subscriber first (the dedicated log tests do, to read their own lines).
static LOGS: OnceLock<Captured> = OnceLock::new();
/// How much of [`LOGS`] has been checked.
static SCANNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Everything captured so far ("" when the binary has a subscriber of its own).
pub fn captured_logs() -> String {
    LOGS.get().map(Captured::text).unwrap_or_default()
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let installed = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_env_filter(speaknode_bff::log_filter("trace"))
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        // A subscriber of the binary's own is there already: it checks its lines itself.
        if installed.is_err() {
            eprintln!("log capture: this test binary has its own subscriber");
        }
        logs
    });
}

/// Log output kept in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        let buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}
