//! The BFF binary: reads the configuration, binds, and serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The SpeakNode widget's backend-for-frontend: mints scoped widget tokens and keeps every
/// platform credential on the server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The TOML configuration file. The client secret may instead come from
    /// SPEAKNODE_BFF_CLIENT_SECRET.
    #[arg(long, env = "SPEAKNODE_BFF_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the line scripts wait for.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = speaknode_bff::Config::load(&args.config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Scripts (xtask, tests) wait for this line to know the port is open.
    println!("listening on http://{}", listener.local_addr()?);
    speaknode_bff::serve(listener, config, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM. A signal that cannot be watched never fires, rather
/// than stopping the server at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down; letting running requests finish");
}
