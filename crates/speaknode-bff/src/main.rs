//! The BFF binary: reads the configuration, binds, and serves until Ctrl-C or SIGTERM; or,
//! with `login`, authorises the BFF once as a user for refresh-token mode.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The SpeakNode widget's backend-for-frontend: mints scoped widget tokens and keeps every
/// platform credential on the server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The TOML configuration file (required). The client secret may instead come from
    /// SPEAKNODE_BFF_CLIENT_SECRET.
    // Optional to clap only because global arguments cannot be required; checked in main.
    #[arg(long, env = "SPEAKNODE_BFF_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Authorise the BFF as a user, once, for upstream.mode = "refresh_token": prints a URL
    /// to open in a browser, waits for the redirect on 127.0.0.1 and stores the refresh
    /// token in upstream.refresh_token_file. A running BFF picks the new file up by itself.
    Login,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the line scripts wait for.
    tracing_subscriber::fmt()
        .with_env_filter(speaknode_bff::log_filter(
            &std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let Some(path) = args.config else {
        let message = "--config <FILE> (or SPEAKNODE_BFF_CONFIG) is required";
        Args::command()
            .error(ErrorKind::MissingRequiredArgument, message)
            .exit()
    };
    let config = speaknode_bff::Config::load(&path)?;
    if let Some(Command::Login) = args.command {
        return login(&config).await;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Scripts (xtask, tests) wait for this line to know the port is open.
    println!("listening on http://{}", listener.local_addr()?);
    speaknode_bff::serve(listener, config, shutdown_signal()).await
}

/// Runs the authorization code flow. The URL alone goes to stdout, so a script (or a test
/// acting as the browser) can read it; the instructions go to stderr.
async fn login(config: &speaknode_bff::Config) -> anyhow::Result<()> {
    let login = speaknode_bff::Login::begin(&config.upstream).await?;
    eprintln!(
        "Open this URL in a browser and sign in as the user the BFF should act for. The \
         identity provider must allow the redirect URI {}.",
        login.redirect_uri()
    );
    println!("{}", login.authorization_url());
    let path = login.finish().await?;
    eprintln!(
        "Stored the refresh token in {}. A running BFF uses it on its next platform call.",
        path.display()
    );
    Ok(())
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
