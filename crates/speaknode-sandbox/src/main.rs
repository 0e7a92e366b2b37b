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
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML). Without one, the sandbox runs a demo: client
    /// `speaknode-bff-demo` with a secret made at start-up and printed once, and two agents.
    #[arg(long, value_name = "FILE", env = "SPEAKNODE_SANDBOX_CONFIG")]
    config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs go to stderr: stdout carries the lines scripts read (address, demo credentials).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let (config, demo_secret) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (
                Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?,
                None,
            )
        }
        None => {
            let secret = random_secret()?;
            (Config::demo(secret.clone()), Some(secret))
        }
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    if let Some(secret) = demo_secret {
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        println!("issuer:        {base}/realms/{}", config.realm);
        for client in &config.clients {
            println!("client_id:     {}", client.client_id);
            println!("client_secret: {}", secret.expose_secret());
        }
        for agent in &config.agents {
            println!("agent:         {} ({})", agent.id, agent.title);
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
