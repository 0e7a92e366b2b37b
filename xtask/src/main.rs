//! Project automation (matklad's cargo-xtask): `cargo xtask demo | test | bench | setup`.
//! Every command installs what it needs first, so a fresh machine needs nothing else.

mod bench;
mod load;
mod stack;
mod tokens;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::stack::{Ports, Profile, Stack};
use crate::tools::Tools;

/// Set-up, demo, tests and benchmarks of the SpeakNode widget workspace.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stage {
    Lint,
    Native,
    Browser,
    E2e,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchPart {
    Sizes,
    Tokens,
    Browser,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing, build everything, and run the sandbox, the BFF and the
    /// widget's demo page on 127.0.0.1 until Ctrl-C.
    Demo,
    /// Install what is missing and run every test: lints, native tests, the widget's browser
    /// tests in headless Chromium, and the end-to-end test against the release build.
    Test {
        /// Run one stage only (while working on it); CI runs them all.
        #[arg(long, value_enum)]
        only: Option<Stage>,
        /// With `--only e2e`: run only these end-to-end test files (e.g. `-- e2e/api.test.mjs`)
        /// and skip the API fuzzing, for a quick loop while working on them.
        #[arg(last = true)]
        e2e_files: Vec<String>,
    },
    /// Measure the release widget's bytes (raw, gzip -9, brotli -q 11), the BFF's token
    /// mint and verify throughput, latency and memory beside an equivalent Node endpoint, and
    /// in headless Chromium the launcher's paint, long tasks and the time from click to a
    /// live conversation, into target/bench/.
    Bench {
        /// Run one part only.
        #[arg(long, value_enum)]
        only: Option<BenchPart>,
    },
    /// Capture the documentation's screenshots (the open panel in a live conversation, light,
    /// dark and Arabic) from the release build into docs/screenshots/.
    Screenshots,
    /// Only install the tools (wasm target, trunk, wasm-bindgen-cli, npm packages, Chromium,
    /// redis-server, schemathesis).
    Setup,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Demo => demo(),
        Cmd::Test { only, e2e_files } => test(only, &e2e_files),
        Cmd::Bench { only } => {
            let part = |part| only.is_none_or(|only| only == part);
            let tools = tools::ensure(part(BenchPart::Browser))?;
            let root = project_root();
            let out = root.join("target/bench");
            if part(BenchPart::Sizes) || part(BenchPart::Browser) {
                build_widget(&tools)?;
            }
            if part(BenchPart::Sizes) {
                bench::sizes(&root.join("dist"), &out)?;
            }
            if part(BenchPart::Tokens) {
                tokens::tokens(&tools, &out)?;
            }
            if part(BenchPart::Browser) {
                std::fs::create_dir_all(&out)?;
                let timings = out.join("browser-timings.json");
                let mut node = tools.command("node");
                node.arg("bench/browser.mjs").env("SN_BENCH_OUT", &timings);
                with_browser_stack(&tools, "target/bench/stack", node)?;
                bench::browser(&root.join("dist"), &timings, &out)?;
            }
            Ok(())
        }
        Cmd::Screenshots => {
            let tools = tools::ensure(true)?;
            build_widget(&tools)?;
            let mut node = tools.command("node");
            node.arg("e2e/screenshots.mjs");
            with_browser_stack(&tools, "target/screenshots", node)
        }
        Cmd::Setup => {
            tools::ensure(true)?;
            tools::ensure_schemathesis().map(drop)
        }
    }
}

fn demo() -> anyhow::Result<()> {
    let tools = tools::ensure(false)?;
    build_widget(&tools)?;
    runtime()?.block_on(async {
        let root = project_root();
        let stack = Stack::start(
            Profile::Production,
            Ports::DEMO,
            &root.join("dist"),
            &root.join("target/demo"),
        )
        .await?;
        println!();
        println!("  SpeakNode widget demo is running.");
        println!();
        println!("  Open       {}", stack.host_url);
        println!(
            "  BFF        {}   (config: target/demo/bff.toml)",
            stack.bff_url
        );
        println!(
            "  Sandbox    {}   (issuer {})",
            stack.sandbox_url, stack.issuer
        );
        println!(
            "  LiveKit    {}   (API key devkey, secret {})",
            stack.livekit_url, stack.livekit_secret
        );
        println!("  trunk serve in another terminal also works: its /bff/ proxy reaches this BFF.");
        println!();
        println!("  Press Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
        println!("Stopping…");
        stack.stop().await
    })
}

fn test(only: Option<Stage>, e2e_files: &[String]) -> anyhow::Result<()> {
    let stage = |stage| only.is_none_or(|only| only == stage);
    let tools = tools::ensure(stage(Stage::Browser) || stage(Stage::E2e))?;
    let cargo = |args: &[&str]| run(tools.command("cargo").args(args));
    if stage(Stage::Lint) {
        cargo(&["fmt", "--all", "--check"])?;
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])?;
        cargo(&[
            "clippy",
            "-p",
            "speaknode-widget",
            "-p",
            "speaknode-api",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])?;
        // The loader's TypeScript declarations, checked as a customer's strict code uses them.
        run(tools.command("tsc").args([
            "--noEmit",
            "--strict",
            "--target",
            "es2020",
            "--lib",
            "es2020,dom",
            "e2e/types/usage.ts",
        ]))?;
    }
    if stage(Stage::Native) {
        cargo(&["test", "--workspace", "--locked"])?;
        // The voice bridge's unit tests, against a stand-in for livekit-client.
        run(tools
            .command("node")
            .args(["--test", "--test-reporter=spec", "js/"]))?;
    }
    if stage(Stage::Browser) {
        // The widget's component tests, in headless Chromium through wasm-bindgen-test-runner:
        // the data layer (web), the panel as a visitor meets it (ui) and a conversation with a
        // call over a scripted room (voice).
        cargo(&[
            "test",
            "-p",
            "speaknode-widget",
            "--target",
            "wasm32-unknown-unknown",
            "--test",
            "web",
            "--test",
            "ui",
            "--test",
            "voice",
            "--locked",
        ])?;
    }
    if stage(Stage::E2e) {
        build_widget(&tools)?;
        end_to_end(&tools, e2e_files)?;
    }
    Ok(())
}

/// Builds the widget as customers get it: release profile, wasm-opt, into dist/.
fn build_widget(tools: &Tools) -> anyhow::Result<()> {
    // trunk runs cargo offline (Trunk.toml), so everything must be fetched first.
    run(tools.command("cargo").args(["fetch", "--locked"]))?;
    run(tools.command("trunk").args(["build", "--release"]))
}

/// Fuzzes the BFF's API, then starts the stack on free ports and drives the release build in
/// Chromium (e2e/, or only `files` without the fuzzing). The browser tests go last so that
/// their runner's summary closes the run.
fn end_to_end(tools: &Tools, files: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    let schemathesis = if files.is_empty() {
        Some(tools::ensure_schemathesis()?)
    } else {
        None
    };
    runtime()?.block_on(async {
        if let Some(schemathesis) = schemathesis {
            fuzz_api(&schemathesis, &root).await?;
        }
        let stack = Stack::start(
            Profile::Browser,
            Ports::ANY,
            &root.join("dist"),
            &root.join("target/e2e"),
        )
        .await?;
        let mut node = with_stack_env(tools.command("node"), tools, &stack);
        node.args(["--test", "--test-reporter=spec"]);
        if files.is_empty() {
            node.arg("e2e/");
        } else {
            node.args(files);
        }
        let status = tokio::task::spawn_blocking(move || run(&mut node)).await?;
        stack.stop().await?;
        status
    })
}

/// Attack case 32 of the security research: schemathesis runs every check against every
/// operation of the BFF's OpenAPI document (no 5xx, status, header and schema
/// conformance, ignored auth, negative data rejected). It gets a stack of its own, so the
/// browser tests' mints and its own never share a rate limit.
async fn fuzz_api(schemathesis: &Path, root: &Path) -> anyhow::Result<()> {
    let work = root.join("target/schemathesis");
    let stack = Stack::start(Profile::Production, Ports::ANY, &root.join("dist"), &work).await?;
    let token = stack.mint_token().await?;
    // The token goes into the config file, not the command line xtask echoes.
    std::fs::write(
        work.join("schemathesis.toml"),
        format!(
            "[headers]\nAuthorization = \"Bearer {token}\"\nOrigin = \"{}\"\n",
            stack.host_url
        ),
    )?;
    let mut command = Command::new(schemathesis);
    command
        .current_dir(&work)
        .arg("run")
        .arg(format!("{}/openapi.json", stack.bff_url))
        .args(["--checks", "all"])
        // A conversation is readable only with the token bound to it, which schemathesis
        // cannot carry from one call to the next (links cannot set Authorization), so its
        // "created resource not found" is the access rule working, not a fault.
        .args(["--exclude-checks", "ensure_resource_availability"]);
    let status = tokio::task::spawn_blocking(move || run(&mut command)).await?;
    stack.stop().await?;
    status
}

/// Runs `node` (a browser script) against a stack of its own on free ports, with the
/// stack's addresses in its environment; `work_dir` (under the root) holds the BFF's config.
fn with_browser_stack(tools: &Tools, work_dir: &str, node: Command) -> anyhow::Result<()> {
    let root = project_root();
    runtime()?.block_on(async {
        let stack = Stack::start(
            Profile::Browser,
            Ports::ANY,
            &root.join("dist"),
            &root.join(work_dir),
        )
        .await?;
        let mut node = with_stack_env(node, tools, &stack);
        let status = tokio::task::spawn_blocking(move || run(&mut node)).await?;
        stack.stop().await?;
        status
    })
}

/// `node` with the stack's addresses in the SN_* variables the browser scripts read
/// (e2e/support.mjs).
fn with_stack_env(mut node: Command, tools: &Tools, stack: &Stack) -> Command {
    node.env("SN_HOST_URL", &stack.host_url)
        .env("SN_BFF_URL", &stack.bff_url)
        .env("SN_SANDBOX_URL", &stack.sandbox_url)
        .env("SN_ISSUER", &stack.issuer)
        .env("SN_CLIENT_SECRET", &stack.client_secret)
        .env("SN_LIVEKIT_URL", &stack.livekit_url)
        .env("SN_LIVEKIT_SECRET", &stack.livekit_secret)
        .env("SN_AGENT_ID", stack::DEMO_AGENT_ID)
        .env("SN_GREETING", &stack.greeting)
        .env("SN_SECOND_AGENT_ID", stack::SECOND_AGENT_ID)
        .env("SN_SECOND_GREETING", &stack.second_greeting)
        .env("SN_CHROMIUM", tools.chromium());
    node
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command, echoing it, and fails if it fails.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tidy;
