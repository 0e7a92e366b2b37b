//! Shared set-up of the integration tests: sandboxes on 127.0.0.1:0, tokens, fixtures and
//! the key-set comparison with the contract's fixtures.

use std::{future::Future, time::Duration};

use reqwest::{Method, Response, StatusCode, header};
use secrecy::SecretString;
use serde_json::{Value, json};
use speaknode_sandbox::{AgentConfig, AppState, ClientConfig, Config, Timing, UserConfig};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use uuid::{Uuid, uuid};

/// The fixtures' space, where the `bff` client and Ava live.
pub const SPACE: Uuid = uuid!("0f8fad5b-d9cb-469f-a165-70867728950e");
/// Another tenant's space, with its own client and agent.
pub const OTHER_SPACE: Uuid = uuid!("d4a1e3c2-5b6f-4e7d-8a9b-0c1d2e3f4a5b");
pub const AVA: Uuid = uuid!("7c9e6679-7425-40de-944b-e07fc1f90ae7");
pub const BORIS: Uuid = uuid!("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9");
pub const AVA_GREETING: &str = "Hi! I'm Ava. How can I help you today?";
pub const BFF: (&str, &str) = ("bff", "bff-secret");
pub const OTHER_BFF: (&str, &str) = ("other-bff", "other-secret");
/// A public client (no secret) for the authorization code flow.
pub const SPA: &str = "spa";
/// The one redirect URI of [`SPA`] and [`BFF`]; nothing listens there, since tests read
/// the redirect instead of following it.
pub const REDIRECT_URI: &str = "http://app.example.test/callback";
/// A user of [`SPACE`]: id, username and password.
pub const ALICE: (Uuid, &str, &str) = (
    uuid!("1c7d3a52-4f0e-4b8a-9e21-6a5b4c3d2e1f"),
    "alice",
    "wonderland",
);
/// The signing key seed of [`Sandbox::start_seeded`], so tests can sign their own tokens.
pub const SEED: [u8; 32] = [42; 32];

/// How long a test waits for something the sandbox does by itself.
const DEADLINE: Duration = Duration::from_secs(10);

/// Reads a contract fixture, checked in at compile time.
macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<serde_json::Value>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contract/fixtures/",
            $name
        )))
        .expect(concat!("fixture ", $name, " is JSON"))
    };
}
pub(crate) use fixture;

/// Two spaces, each with a confidential client and an agent; a public client and a user.
pub fn config(timing: Timing) -> Config {
    let client = |(client_id, secret): (&str, &str), space_id| ClientConfig {
        client_id: client_id.to_owned(),
        client_secret: Some(SecretString::from(secret)),
        space_id,
        redirect_uris: vec![REDIRECT_URI.to_owned()],
    };
    let spa = ClientConfig {
        client_id: SPA.to_owned(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        ..ClientConfig::default()
    };
    Config {
        public_url: None,
        realm: "speaknode".to_owned(),
        access_token_ttl_secs: 300,
        clients: vec![client(BFF, SPACE), client(OTHER_BFF, OTHER_SPACE), spa],
        users: vec![UserConfig {
            id: ALICE.0,
            username: ALICE.1.to_owned(),
            password: SecretString::from(ALICE.2),
            space_id: SPACE,
        }],
        agents: vec![
            AgentConfig {
                id: AVA,
                title: "Ava".to_owned(),
                space_id: SPACE,
                greeting: AVA_GREETING.to_owned(),
                description: "Front desk agent of the demo store".to_owned(),
                language_locale_code: "en-US".to_owned(),
            },
            AgentConfig {
                id: BORIS,
                title: "Boris".to_owned(),
                space_id: OTHER_SPACE,
                greeting: "Guten Tag!".to_owned(),
                description: String::new(),
                language_locale_code: "de-DE".to_owned(),
            },
        ],
        timing,
        ..Config::default()
    }
}

/// A sandbox serving on an ephemeral port of 127.0.0.1.
pub struct Sandbox {
    pub base: String,
    pub http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Sandbox {
    /// Runs the sandbox through the public `serve`, as the binary does.
    pub async fn start(config: Config) -> Sandbox {
        let (listener, base) = listen().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(speaknode_sandbox::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Sandbox {
            base,
            http: http(),
            stop,
            server,
        }
    }

    /// Runs the sandbox's router with the signing key of [`SEED`].
    pub async fn start_seeded(config: Config) -> Sandbox {
        Self::start_with_state(config).await.0
    }

    /// Runs the sandbox through the public `serve_state` with the signing key of [`SEED`],
    /// and hands back its state so that the test can act on the sandbox while it runs, as
    /// its administrator would (rotate keys, end conversations).
    pub async fn start_with_state(config: Config) -> (Sandbox, AppState) {
        let (listener, base) = listen().await;
        let state = AppState::with_signing_seed(config, &base, SEED).expect("valid state");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(speaknode_sandbox::serve_state(
            listener,
            state.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let sandbox = Sandbox {
            base,
            http: http(),
            stop,
            server,
        };
        (sandbox, state)
    }

    /// Asks the sandbox to shut down and waits until `serve` has returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(DEADLINE, self.server).await??
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn issuer(&self) -> String {
        self.url("/realms/speaknode")
    }

    /// A token request with HTTP Basic client authentication.
    pub async fn token_response(&self, (id, secret): (&str, &str)) -> Response {
        self.http
            .post(self.url("/realms/speaknode/protocol/openid-connect/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request")
    }

    /// An access token of `client`.
    pub async fn token(&self, client: (&str, &str)) -> String {
        let response = self.token_response(client).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// A GET with query parameters, encoded as a browser would.
    pub async fn get_query(&self, path: &str, token: &str, query: &[(&str, &str)]) -> Response {
        self.http
            .get(self.url(path))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// An admin request (`/__sandbox/...`), which takes no token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("admin request")
    }

    /// Dispatches a web conversation with `agent` and returns it as created.
    pub async fn dispatch_web(&self, token: &str, agent: Uuid) -> Value {
        let response = self
            .dispatch(token, &json!({ "agent_id": agent, "channel": "Web" }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("conversation JSON")
    }

    /// Reads a conversation by id until `accept` takes it.
    pub async fn conversation_when(
        &self,
        token: &str,
        id: &str,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!("/api/v1/conversations/{id}");
        eventually(what, || async {
            let conversation: Value = self.get(&path, token).await.json().await.ok()?;
            accept(&conversation).then_some(conversation)
        })
        .await
    }

    pub async fn dispatch(&self, token: &str, body: &Value) -> Response {
        self.http
            .post(self.url("/api/v1/conversations/dispatch"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST dispatch")
    }
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    (listener, base)
}

fn http() -> reqwest::Client {
    // No proxy: a proxy from the environment must not see loopback traffic. No redirects:
    // tests read where the sandbox sends a browser, and redirect URIs lead nowhere.
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// The claims of a token, read without verifying it.
pub fn claims_of(token: &str) -> Value {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1).expect("a JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// Polls `probe` until it yields a value, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        // The poll interval of a condition with a deadline, not a wait for time to pass:
        // HTTP state has no change notification to await.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that `actual` has exactly the members of `fixture`, recursively.
///
/// An empty fixture object stands for a free-form map (`dynamic_variables`), so its keys
/// are not compared. An array's elements are each compared with the fixture element of the
/// same `role` and `kind`, else the same `kind`, else the first.
pub fn assert_same_keys(actual: &Value, fixture: &Value) {
    compare(actual, fixture, "$");
}

fn compare(actual: &Value, fixture: &Value, path: &str) {
    match (actual, fixture) {
        (Value::Object(actual), Value::Object(fixture)) if !fixture.is_empty() => {
            let mut have: Vec<_> = actual.keys().collect();
            let mut want: Vec<_> = fixture.keys().collect();
            have.sort();
            want.sort();
            assert_eq!(have, want, "members of {path}");
            for (key, value) in actual {
                compare(value, &fixture[key], &format!("{path}.{key}"));
            }
        }
        (Value::Array(actual), Value::Array(fixture)) => {
            for (i, element) in actual.iter().enumerate() {
                let same = |keys: &[&str]| {
                    fixture
                        .iter()
                        .find(|f| keys.iter().all(|k| f.get(k) == element.get(k)))
                };
                if let Some(model) = same(&["role", "kind"])
                    .or_else(|| same(&["kind"]))
                    .or(fixture.first())
                {
                    compare(element, model, &format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

/// Asserts a problem+json response of `status` shaped like `fixture`; returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, fixture: &Value) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_same_keys(&body, fixture);
    assert_eq!(body["status"], status.as_u16());
    assert!(
        is_trace_parent(body["traceId"].as_str().unwrap_or_default()),
        "{body}"
    );
    body
}

/// `00-<32 hex>-<16 hex>-00`.
fn is_trace_parent(text: &str) -> bool {
    let parts: Vec<_> = text.split('-').collect();
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), ["00", trace, span, "00"]
        if trace.len() == 32 && span.len() == 16 && hex(trace) && hex(span))
}

/// The instant of a .NET round-trip timestamp.
pub fn instant(value: &Value) -> time::OffsetDateTime {
    let text = value.as_str().expect("a timestamp string");
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 timestamp")
}

/// Seconds from `earlier` to `later`, both timestamps of the wire.
pub fn seconds_between(earlier: &Value, later: &Value) -> f64 {
    (instant(later) - instant(earlier)).as_seconds_f64()
}

/// .NET's round-trip UTC format, `2026-11-29T08:30:00.1234567Z`.
pub fn is_dotnet_timestamp(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    text.len() == 28
        && text.ends_with('Z')
        && time::PrimitiveDateTime::parse(
            &text[..27],
            time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]"
            ),
        )
        .is_ok()
}
