//! Installs what the project needs, idempotently: each tool is checked first and installed
//! only when missing or at the wrong version. Nothing here downloads from GitHub; every tool
//! comes from a registry (rustup, crates.io, npm, PyPI, Debian).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{project_root, run};

/// trunk is pinned: 0.22 needs a newer Rust than this machine's stable.
const TRUNK_VERSION: &str = "0.21.14";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The API fuzzer the end-to-end stage runs against the BFF's OpenAPI document.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The toolchain the other commands rely on, with the environment that makes them use it.
pub struct Tools {
    /// `PATH` with the project's npm tools (wasm-opt) and cargo's bin directory first.
    path: String,
}

impl Tools {
    /// A command with the tools' environment: trunk never asks crates.io for updates, the
    /// browser tests find chromedriver.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("PATH", &self.path)
            .env("TRUNK_SKIP_VERSION_CHECK", "true")
            .env("CHROMEDRIVER", CHROMEDRIVER)
            .current_dir(project_root());
        command
    }

    pub fn chromium(&self) -> &'static str {
        CHROMIUM
    }
}

/// Makes sure every tool is present, installing what is missing.
pub fn ensure(need_browser: bool) -> anyhow::Result<Tools> {
    let root = project_root();
    let cargo_bin = cargo_home().join("bin");
    let npm_bin = root.join("node_modules/.bin");
    let path = std::env::join_paths([npm_bin, cargo_bin].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?
    .into_string()
    .map_err(|_| anyhow::anyhow!("PATH is not valid UTF-8"))?;
    let tools = Tools { path };

    ensure_wasm_target()?;
    ensure_npm_packages(&root)?;
    ensure_cargo_tool(&tools, "trunk", TRUNK_VERSION, &["--locked"])?;
    // The CLI must equal the crate that generated the glue, or the glue does not load.
    let bindgen = wasm_bindgen_version(&root)?;
    ensure_cargo_tool(&tools, "wasm-bindgen-cli", &bindgen, &["--locked"])?;
    if need_browser {
        ensure_browser()?;
    }
    // The BFF's shared rate limit test starts a real one.
    ensure_redis()?;
    Ok(tools)
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed
        .lines()
        .any(|line| line.trim() == "wasm32-unknown-unknown")
    {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// `npm ci` when node_modules is missing or was installed from another lock file.
fn ensure_npm_packages(root: &Path) -> anyhow::Result<()> {
    let lock =
        std::fs::read(root.join("package-lock.json")).context("reading package-lock.json")?;
    let installed = std::fs::read(root.join("node_modules/.package-lock.json")).ok();
    let stamp = root.join("node_modules/.xtask-lock");
    let up_to_date =
        installed.is_some() && std::fs::read(&stamp).ok().as_deref() == Some(&lock[..]);
    if !up_to_date {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root))?;
        std::fs::write(&stamp, &lock)?;
    }
    Ok(())
}

/// Installs `krate` at `version` with cargo unless its binary already reports that version.
fn ensure_cargo_tool(
    tools: &Tools,
    krate: &str,
    version: &str,
    flags: &[&str],
) -> anyhow::Result<()> {
    let binary = match krate {
        "wasm-bindgen-cli" => "wasm-bindgen",
        other => other,
    };
    let current = tools
        .command(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    if current.split_whitespace().nth(1) == Some(version) {
        return Ok(());
    }
    eprintln!("xtask: installing {krate} {version} (once per machine; it takes a while)");
    let install = |flags: &[&str]| {
        run(tools
            .command("cargo")
            .args(["install", krate, "--version", version])
            .args(flags))
    };
    if install(flags).is_err() {
        if flags.is_empty() {
            bail!("installing {krate} {version} failed");
        }
        // A locked install fails when a locked dependency has left the index (it happened to
        // wasm-bindgen-cli 0.2.130); the unlocked one resolves compatible versions instead.
        eprintln!("xtask: locked install of {krate} failed; trying without --locked");
        install(&[])?;
    }
    Ok(())
}

/// The exact wasm-bindgen version in Cargo.lock.
fn wasm_bindgen_version(root: &Path) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

/// Debian's Chromium and its driver, through apt when absent.
fn ensure_browser() -> anyhow::Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    apt_install(&["chromium", "chromium-driver"])
}

/// Debian's redis-server, through apt when it is not on PATH.
fn ensure_redis() -> anyhow::Result<()> {
    let present = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return Ok(());
    }
    apt_install(&["redis-server"])
}

/// schemathesis from PyPI, in a virtualenv under target/ so the system Python stays as it
/// is; returns its executable.
pub fn ensure_schemathesis() -> anyhow::Result<PathBuf> {
    let venv = project_root().join("target/tools/schemathesis");
    let bin = venv.join("bin/schemathesis");
    let current = output(Command::new(&bin).arg("--version")).unwrap_or_default();
    if current
        .trim()
        .ends_with(&format!("version {SCHEMATHESIS_VERSION}"))
    {
        return Ok(bin);
    }
    eprintln!("xtask: installing schemathesis {SCHEMATHESIS_VERSION} into target/tools");
    let make_venv = || run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    if make_venv().is_err() {
        // Debian's python3 leaves venv (ensurepip) to a package of its own.
        apt_install(&["python3-venv"])?;
        make_venv()?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
    ]))?;
    Ok(bin)
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing Debian {}", packages.join(", "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
