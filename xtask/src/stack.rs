//! The whole product on one machine: the sandbox (SpeakNode in a box), the BFF and a static
//! server for the widget's demo host page, each on its own 127.0.0.1 port so the browser
//! crosses origins exactly as on a customer's site. `cargo xtask demo` runs it on fixed ports;
//! the end-to-end tests run it on free ones.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
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

/// A running stack. Dropping it does not stop it; call [`Stack::stop`].
pub struct Stack {
    pub host_url: String,
    pub bff_url: String,
    pub sandbox_url: String,
    /// The sandbox realm's issuer: any token carrying it is an upstream token.
    pub issuer: String,
    /// The BFF's upstream client secret, so tests can prove it never reaches the browser.
    pub client_secret: String,
    /// What the demo agent says first.
    pub greeting: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// Starts the sandbox, the BFF (configured from a TOML file written to `work_dir`, as an
    /// operator would) and the host page server for `dist`.
    pub async fn start(ports: Ports, dist: &Path, work_dir: &Path) -> anyhow::Result<Stack> {
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

        // The sandbox's own demo configuration (Ava and Max, a scenario, tools), with this
        // run's secret.
        let sandbox_config =
            speaknode_sandbox::Config::demo(SecretString::from(client_secret.clone()));
        let greeting = sandbox_config
            .agents
            .iter()
            .find(|agent| agent.id.to_string() == DEMO_AGENT_ID)
            .map(|agent| agent.greeting.clone())
            .context("the sandbox's demo configuration has no demo agent")?;
        std::fs::create_dir_all(work_dir)?;
        let bff_config_path = work_dir.join("bff.toml");
        std::fs::write(
            &bff_config_path,
            bff_config_toml(&bff_url, &issuer, &sandbox_url, &client_secret, &host_url),
        )?;
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
        let page = HostPage::new(dist, &bff_url)?;
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
            greeting,
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
"#
    )
}

/// Serves the built widget and its demo page, with the page pointed at this run's BFF and
/// the strict Content-Security-Policy the README promises the widget works under.
#[derive(Clone)]
struct HostPage {
    dist: PathBuf,
    index: String,
    csp: HeaderValue,
}

impl HostPage {
    fn new(dist: &Path, bff_url: &str) -> anyhow::Result<Self> {
        let index = std::fs::read_to_string(dist.join("index.html"))
            .with_context(|| format!("no widget build in {}", dist.display()))?
            .replace(
                r#"data-session-url="/bff/""#,
                &format!(r#"data-session-url="{bff_url}""#),
            );
        let csp = HeaderValue::from_str(&format!(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' {bff_url}"
        ))?;
        Ok(Self {
            dist: dist.to_owned(),
            index,
            csp,
        })
    }

    fn router(self) -> Router {
        let csp = self.csp.clone();
        Router::new()
            .route("/", get(index))
            .route("/index.html", get(index))
            .fallback_service(ServeDir::new(&self.dist))
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                csp,
            ))
            .with_state(self)
    }
}

async fn index(State(page): State<HostPage>) -> impl IntoResponse {
    Html(page.index)
}
