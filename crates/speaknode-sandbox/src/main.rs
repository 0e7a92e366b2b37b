//! The `speaknode-sandbox` binary: runs SpeakNode in a box until Ctrl-C or SIGTERM.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context as _, anyhow};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use clap::Parser;
use secrecy::{ExposeSecret as _, SecretString};
use speaknode_sandbox::Config;
use tracing_subscriber::EnvFilter;

/// SpeakNode in a box: a local stand-in of the SpeakNode platform (identity, REST API and a
/// scripted agent) for development and tests. Everything is kept in memory.
///
/// The identity part is a Keycloak-shaped realm: OIDC discovery, a JWKS with key rotation,
/// a login form for the authorization code flow with PKCE (S256), and a token endpoint for
/// the `authorization_code`, `refresh_token` (rotating, with reuse detection) and
/// `client_credentials` grants.
#[derive(Parser)]
#[command(version, after_long_help = CONFIG_HELP)]
struct Args {
    /// Configuration file (TOML; see below). Without one, the sandbox runs a demo and prints
    /// its credentials: the confidential client `speaknode-bff-demo` with a secret made at
    /// start-up, the public client `speaknode-demo-app` (redirect URIs
    /// http://127.0.0.1:8000/callback and http://localhost:8000/callback), the user `demo`
    /// with password `demo`, two agents, and the LiveKit stand-in's URL, API key and API
    /// secret. A LiveKit API secret made at start-up (no `livekit.api_secret`) is printed
    /// with a configuration file too.
    #[arg(long, value_name = "FILE", env = "SPEAKNODE_SANDBOX_CONFIG")]
    config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8780")]
    listen: SocketAddr,

    /// Log format on stderr: `text` for people, `json` (one object per line) for log
    /// collectors. The level comes from RUST_LOG (default `info`).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        env = "SPEAKNODE_SANDBOX_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The routes and the configuration file's keys, for `--help`.
const CONFIG_HELP: &str = r#"Routes (issuer = {public_url or http://ADDR}/realms/{realm}):
  {issuer}/.well-known/openid-configuration  OIDC discovery
  {issuer}/protocol/openid-connect/certs       JWKS: the signing key and older keys with live tokens
  {issuer}/protocol/openid-connect/auth        login form; response_type=code, PKCE S256 required
  {issuer}/protocol/openid-connect/token       grants authorization_code, refresh_token, client_credentials
  /api/v1/...                                  the REST API, with a Bearer access token

Configuration file (TOML; every top-level key may be left out):
  public_url = "https://sandbox.example"  issuer base (default: http://{listen address})
  realm = "speaknode"
  access_token_ttl_secs = 300             access token lifetime (expires_in)
  refresh_token_ttl_secs = 1800           session idle time (refresh_expires_in); a refresh restarts it
  key_rotation_secs = 86400               replace the signing key this often (default: never)
  scenario_file = "scenarios.toml"        more [[scenarios]] (below) in a file of their own
  rate_limit = { permit_limit = 600, window_secs = 60 }   per caller, answered with 429
  hub = { keep_alive_interval_ms = 15000, client_timeout_ms = 30000 }
  admin_enabled = false                   /__sandbox routes: user turns, hang-up and fault
                                          injection, unauthenticated: for tests only

  [[clients]]
  client_id = "my-bff"
  client_secret = "..."                   leave out for a public client (code flow only, no secret)
  space_id = "<uuid>"                     space of the service account (client_credentials);
                                          required with a secret
  redirect_uris = ["http://127.0.0.1:3000/callback"]
                                          exact matches; the code flow needs at least one

  [[users]]                               who can sign in on the login form
  username = "alice"                      matched in any case
  password = "..."
  space_id = "<uuid>"                     space_id claim of the user's tokens
  id = "<uuid>"                           sub claim; random at start-up if left out

  [[agents]]
  id = "<uuid>"
  title = "Ava"
  space_id = "<uuid>"
  greeting = "Hi! I'm Ava."
  description = ""
  language_locale_code = "en-US"

  [timing]                                the scripted agent's steps, in milliseconds
  dispatch_ms = 300
  join_ms = 700

  [[scenarios]]                           what an agent says after its greeting
  agent_id = "<uuid>"
  think_ms = 300                          delay before a reply
  speak_ms = 1500                         how long a reply takes to say
  default_reply = "Sorry?"
  end_after_turns = 4                     hang up after the 4th reply
  fail = { after_turns = 2, error_message = "..." }
  [[scenarios.replies]]
  pattern = "*order*"                     glob with * or ?, else a substring; any case
  reply = "Your order has shipped."
  end_call = false

  [[tools]] / [[phone_numbers]]           listed by /api/v1/tools and /api/v1/phone-numbers

  [livekit]                               the LiveKit stand-in that web conversations join
  url = "ws://127.0.0.1:8780"             live_kit_url (default: ws://{listen address}, or
                                          public_url as ws:// or wss://)
  api_key = "devkey"                      iss of join tokens
  api_secret = "..."                      signs join tokens (HS256); default: random at
                                          start-up, printed on stdout
  token_ttl_secs = 300                    join token lifetime; every read of a running web
                                          conversation mints a fresh one

  [[webhooks]]                            SessionStarted / ConversationComplete, signed
  url = "https://example.com/hook"        with X-SpeakNode-Signature (hex HMAC-SHA256)
  secret = "..."
  events = ["SessionStarted", "ConversationComplete"]
  space_id = "<uuid>"

See crates/speaknode-sandbox/contract/CONTRACT.md for every route and JSON shape."#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs go to stderr: stdout carries the lines scripts read (address, demo credentials).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    let (mut config, demo) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (
                Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?,
                false,
            )
        }
        None => (Config::demo(random_secret()?), true),
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // Made here rather than by the library, so that it can be printed: nobody could join
    // a room with a secret nobody knows.
    let random_livekit_secret = config.livekit.api_secret.is_none();
    if random_livekit_secret {
        config.livekit.api_secret = Some(random_secret()?);
    }
    println!("listening on http://{address}");
    if demo {
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        println!("issuer:        {base}/realms/{}", config.realm);
        for client in &config.clients {
            println!("client_id:     {}", client.client_id);
            match &client.client_secret {
                Some(secret) => println!("client_secret: {}", secret.expose_secret()),
                None => println!("redirect_uris: {}", client.redirect_uris.join(" ")),
            }
        }
        // The demo user's password is the well-known `demo`, not a secret worth hiding.
        for user in &config.users {
            println!(
                "user:          {} / {}",
                user.username,
                user.password.expose_secret()
            );
        }
        for agent in &config.agents {
            println!("agent:         {} ({})", agent.id, agent.title);
        }
    }
    if demo || random_livekit_secret {
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let livekit = &config.livekit;
        println!("livekit_url:        {}", livekit.url_for(&base));
        println!("livekit_api_key:    {}", livekit.api_key);
        if let Some(secret) = &livekit.api_secret {
            println!("livekit_api_secret: {}", secret.expose_secret());
        }
    }

    speaknode_sandbox::serve(listener, config, shutdown_signal()).await
}

/// A client secret of 32 random bytes, URL-safe so it survives any form or header encoding.
fn random_secret() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow!("no randomness for a secret: {e}"))?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (how containers are stopped).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
