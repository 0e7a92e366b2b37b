//! The whole product on one machine: the sandbox (SpeakNode in a box), the BFF and a static
//! server for the widget's demo host page and the end-to-end tests' fixture pages, each on its
//! own 127.0.0.1 port so the browser crosses origins exactly as on a customer's site.
//! `cargo xtask demo` runs it on fixed ports; the end-to-end tests run it on free ones.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The demo agent (Ava in the sandbox's demo configuration); index.html embeds it.
pub const DEMO_AGENT_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// The sandbox's second demo agent (Max), so tests can switch a widget to another agent.
pub const SECOND_AGENT_ID: &str = "3d5f1b2a-8c4e-4f6a-9b7d-1e2c3a4b5c6d";
/// The client of the sandbox's demo configuration.
const DEMO_CLIENT_ID: &str = "speaknode-bff-demo";
/// The port `trunk serve` uses (Trunk.toml); the demo BFF allows that origin too.
const TRUNK_SERVE_ORIGIN: &str = "http://127.0.0.1:8080";

/// Where each part listens; port 0 picks a free one.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub sandbox: u16,
    pub bff: u16,
    pub host: u16,
}

impl Ports {
    /// The demo's fixed ports; Trunk.toml's proxy points at the BFF's.
    pub const DEMO: Ports = Ports {
        sandbox: 8780,
        bff: 8787,
        host: 8000,
    };
    pub const ANY: Ports = Ports {
        sandbox: 0,
        bff: 0,
        host: 0,
    };
}

/// What a stack is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// As an operator would run it: the BFF's default rate limits, no sandbox admin routes.
    /// The demo and the API fuzzer use it.
    Production,
    /// For browser tests, screenshots and the browser bench: the sandbox's admin routes are
    /// on (to speak as the user and to inject faults) and the BFF's mint limits are high,
    /// because every test browser mints from 127.0.0.1.
    Browser,
}

/// A running stack. Dropping it does not stop it; call [`Stack::stop`].
pub struct Stack {
    pub host_url: String,
    pub bff_url: String,
    pub sandbox_url: String,
    /// The sandbox realm's issuer: any token carrying it is an upstream token.
    pub issuer: String,
    /// The BFF's upstream client secret, so tests can prove it never reaches the browser.
    pub client_secret: String,
    /// The sandbox's LiveKit stand-in, `ws://127.0.0.1:{sandbox port}` (it shares the
    /// sandbox's listener).
    pub livekit_url: String,
    /// The LiveKit API secret the sandbox signs join tokens with (API key `devkey`), so
    /// conformance tests can mint tokens of their own, bad ones included.
    pub livekit_secret: String,
    /// What the demo agent says first.
    pub greeting: String,
    /// What the second agent says first.
    pub second_greeting: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// Starts the sandbox, the BFF (configured from a TOML file written to `work_dir`, as an
    /// operator would) and the host page server for `dist` and the fixture pages.
    pub async fn start(
        profile: Profile,
        ports: Ports,
        dist: &Path,
        work_dir: &Path,
    ) -> anyhow::Result<Stack> {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };

        let host = bind(ports.host).await?;
        let sandbox = bind(ports.sandbox).await?;
        let bff = bind(ports.bff).await?;
        let host_url = url(&host)?;
        let sandbox_url = url(&sandbox)?;
        let bff_url = url(&bff)?;
        let issuer = format!("{sandbox_url}/realms/speaknode");
        let client_secret = random_secret();
        let livekit_secret = random_secret();
        let livekit_url = sandbox_url.replacen("http://", "ws://", 1);

        // The sandbox's own demo configuration (Ava and Max, a scenario, tools), with this
        // run's secret.
        let mut sandbox_config =
            speaknode_sandbox::Config::demo(SecretString::from(client_secret.clone()));
        sandbox_config.admin_enabled = profile == Profile::Browser;
        sandbox_config.livekit.api_secret = Some(SecretString::from(livekit_secret.clone()));
        sandbox_config.livekit.url = Some(livekit_url.clone());
        let greeting_of = |id: &str| {
            sandbox_config
                .agents
                .iter()
                .find(|agent| agent.id.to_string() == id)
                .map(|agent| agent.greeting.clone())
                .with_context(|| format!("the sandbox's demo configuration has no agent {id}"))
        };
        let greeting = greeting_of(DEMO_AGENT_ID)?;
        let second_greeting = greeting_of(SECOND_AGENT_ID)?;
        std::fs::create_dir_all(work_dir)?;
        let bff_config_path = work_dir.join("bff.toml");
        let mut bff_toml =
            bff_config_toml(&bff_url, &issuer, &sandbox_url, &client_secret, &host_url);
        if profile == Profile::Browser {
            bff_toml.push_str(BROWSER_TEST_LIMITS);
        }
        std::fs::write(&bff_config_path, bff_toml)?;
        let bff_config = speaknode_bff::Config::load(&bff_config_path)?;

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(speaknode_sandbox::serve(
            sandbox,
            sandbox_config,
            until_stopped(),
        )));
        tasks.push(tokio::spawn(speaknode_bff::serve(
            bff,
            bff_config,
            until_stopped(),
        )));
        let page = HostPage::new(
            dist,
            &crate::project_root().join("e2e/pages"),
            &bff_url,
            &livekit_url,
        )?;
        let shutdown = until_stopped();
        tasks.push(tokio::spawn(async move {
            axum::serve(host, page.router())
                .with_graceful_shutdown(shutdown)
                .await
                .context("host page server")
        }));

        Ok(Stack {
            host_url,
            bff_url,
            sandbox_url,
            issuer,
            client_secret,
            livekit_url,
            livekit_secret,
            greeting,
            second_greeting,
            stop,
            tasks,
        })
    }

    /// Mints a widget token for the demo agent from the host page's origin, with a bare
    /// HTTP/1.1 request: xtask needs no HTTP client for one call.
    pub async fn mint_token(&self) -> anyhow::Result<String> {
        let address = self.bff_url.trim_start_matches("http://");
        let body = serde_json::json!({ "agent_id": DEMO_AGENT_ID }).to_string();
        let request = format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: {address}\r\nOrigin: {}\r\n\
             x-speaknode-widget: 1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host_url,
            body.len()
        );
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("the BFF sent no HTTP response")?;
        anyhow::ensure!(
            head.starts_with("HTTP/1.1 201"),
            "minting a token failed: {}",
            head.lines().next().unwrap_or_default()
        );
        let grant: serde_json::Value = serde_json::from_str(body)?;
        grant["token"]
            .as_str()
            .map(str::to_owned)
            .context("the grant has no token")
    }

    /// Stops every part and waits for them to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; is another demo running?"))
}

fn url(listener: &TcpListener) -> anyhow::Result<String> {
    Ok(format!("http://{}", listener.local_addr()?))
}

/// A fresh secret per run: nothing secret is ever committed or reused.
fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn bff_config_toml(
    bff_url: &str,
    issuer: &str,
    api_base: &str,
    secret: &str,
    host_url: &str,
) -> String {
    format!(
        r#"# Written by `cargo xtask demo`: a BFF talking to the local sandbox.
public_url = "{bff_url}"
token_ttl_secs = 300

[upstream]
issuer = "{issuer}"
api_base = "{api_base}"
client_id = "{DEMO_CLIENT_ID}"
# Generated for this run only. In production, set SPEAKNODE_BFF_CLIENT_SECRET instead.
client_secret = "{secret}"

[[agents]]
id = "{DEMO_AGENT_ID}"
allowed_origins = ["{host_url}", "{TRUNK_SERVE_ORIGIN}"]

[[agents]]
id = "{SECOND_AGENT_ID}"
allowed_origins = ["{host_url}", "{TRUNK_SERVE_ORIGIN}"]
"#
    )
}

/// Mint limits for browser tests: every test mints from 127.0.0.1 for the same agent, dozens
/// of times a minute, which the defaults (rightly) refuse.
const BROWSER_TEST_LIMITS: &str = r#"
[limits]
per_ip = { per_minute = 6000, burst = 1000 }
per_agent = { per_minute = 6000, burst = 1000 }
global = { per_minute = 6000, burst = 1000 }
"#;

/// Serves the built widget, its demo page and the end-to-end tests' fixture pages
/// (`e2e/pages/`, under `/fixtures/`), with the pages pointed at this run's BFF and the strict
/// Content-Security-Policy the README promises the widget works under on every response:
/// the BFF and the LiveKit server are the only other origins it may connect to.
#[derive(Clone)]
struct HostPage {
    dist: PathBuf,
    fixtures: PathBuf,
    index: String,
    bff_url: String,
    csp: HeaderValue,
}

impl HostPage {
    fn new(dist: &Path, fixtures: &Path, bff_url: &str, livekit_url: &str) -> anyhow::Result<Self> {
        let index = std::fs::read_to_string(dist.join("index.html"))
            .with_context(|| format!("no widget build in {}", dist.display()))?
            .replace(
                r#"data-session-url="/bff/""#,
                &format!(r#"data-session-url="{bff_url}""#),
            )
            .replace(
                r#" session-url="/bff/""#,
                &format!(r#" session-url="{bff_url}""#),
            );
        let csp = HeaderValue::from_str(&strict_csp(bff_url, livekit_url))?;
        Ok(Self {
            dist: dist.to_owned(),
            fixtures: fixtures.to_owned(),
            index,
            bff_url: bff_url.to_owned(),
            csp,
        })
    }

    fn router(self) -> Router {
        let csp = self.csp.clone();
        Router::new()
            .route("/", get(index))
            .route("/index.html", get(index))
            .route("/fixtures/{file}", get(fixture))
            .fallback_service(ServeDir::new(&self.dist))
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                csp,
            ))
            .with_state(self)
    }

    /// A fixture file with its placeholders filled in, or `None` for a name that is not a
    /// plain `name.html`, `name.js` or `name.css` in the fixtures directory. Read at every
    /// request, so a running `cargo xtask demo` serves fixtures as they are edited.
    fn fixture(&self, file: &str) -> Option<(&'static str, String)> {
        let (stem, extension) = file.rsplit_once('.')?;
        let plain = !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let content_type = match extension {
            "html" => "text/html; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            _ => return None,
        };
        if !plain {
            return None;
        }
        let text = std::fs::read_to_string(self.fixtures.join(file)).ok()?;
        let text = text
            .replace("{{BFF_URL}}", &self.bff_url)
            .replace("{{AGENT_ID}}", DEMO_AGENT_ID)
            .replace("{{SECOND_AGENT_ID}}", SECOND_AGENT_ID);
        Some((content_type, text))
    }
}

/// The README's strict policy for a page whose BFF is `bff_url` and whose LiveKit server is
/// `livekit_url`. LiveKit needs its origin twice: the signalling WebSocket (`ws:`/`wss:`)
/// and the client's `fetch` of `/rtc/validate` over HTTP(S) after a failed connect.
/// e2e/support.mjs's `STRICT_CSP` must stay the same string.
fn strict_csp(bff_url: &str, livekit_url: &str) -> String {
    let livekit_ws = livekit_url.trim_end_matches('/');
    let livekit_http = match livekit_ws.split_once("://") {
        Some(("wss", rest)) => format!("https://{rest}"),
        Some((_, rest)) => format!("http://{rest}"),
        None => livekit_ws.to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         connect-src 'self' {bff_url} {livekit_ws} {livekit_http}"
    )
}

async fn index(State(page): State<HostPage>) -> impl IntoResponse {
    Html(page.index)
}

async fn fixture(State(page): State<HostPage>, UrlPath(file): UrlPath<String>) -> Response {
    match page.fixture(&file) {
        Some((content_type, text)) => {
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(fixtures: &Path) -> HostPage {
        HostPage {
            dist: PathBuf::new(),
            fixtures: fixtures.to_owned(),
            index: String::new(),
            bff_url: "http://127.0.0.1:9".to_owned(),
            csp: HeaderValue::from_static("default-src 'self'"),
        }
    }

    #[test]
    fn fixtures_get_this_runs_bff_and_agents() {
        let pages = crate::project_root().join("e2e/pages");
        let (content_type, text) = page(&pages).fixture("embed.html").expect("embed.html");
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert!(
            text.contains(r#"data-session-url="http://127.0.0.1:9""#),
            "{text}"
        );
        assert!(
            text.contains(DEMO_AGENT_ID) && !text.contains("{{"),
            "{text}"
        );
    }

    #[test]
    fn the_strict_csp_allows_the_bff_and_both_livekit_origins_only() {
        assert_eq!(
            strict_csp("http://127.0.0.1:9", "ws://127.0.0.1:7"),
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
             connect-src 'self' http://127.0.0.1:9 ws://127.0.0.1:7 http://127.0.0.1:7"
        );
        let csp = strict_csp("https://bff.example", "wss://lk.example/");
        assert!(
            csp.ends_with("https://bff.example wss://lk.example https://lk.example"),
            "{csp}"
        );
    }

    #[test]
    fn fixture_names_cannot_leave_the_fixtures_directory() {
        let pages = crate::project_root().join("e2e/pages");
        let page = page(&pages);
        for name in [
            "../support.mjs",
            "..html",
            ".html",
            "x/../embed.html",
            "Embed.html",
            "embed.txt",
        ] {
            assert!(page.fixture(name).is_none(), "{name} was served");
        }
    }
}
