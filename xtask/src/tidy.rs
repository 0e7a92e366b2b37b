//! Repository rules checked as tests (rust-analyzer's tidy): the architecture's dependency
//! firewall and the house style's habits, so `cargo test` catches a broken invariant.

use std::path::Path;
use std::process::Command;

use crate::project_root;

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "node_modules" || name == "dist" || name == ".git" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_module_says_what_it_is_for() {
    let mut files = Vec::new();
    rust_files(&project_root(), &mut files);
    assert!(files.len() > 10, "found too few Rust files: {files:?}");
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            // Integration tests are crates of their own and start with //! as well.
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line saying what they are for: {missing:?}"
    );
}

/// `speaknode-api` is serde only: the widget (wasm32) and the BFF (native) both link it.
#[test]
fn api_crate_stays_free_of_runtimes_and_frameworks() {
    for forbidden in ["axum", "tokio", "web-sys", "leptos", "reqwest"] {
        let output = Command::new(env!("CARGO"))
            .args([
                "tree",
                "--quiet",
                "--offline",
                "-p",
                "speaknode-api",
                "-e",
                "normal",
                "-i",
                forbidden,
            ])
            .current_dir(project_root())
            .output()
            .expect("cargo tree runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains("speaknode-api"),
            "speaknode-api depends on {forbidden}:\n{stdout}"
        );
    }
}

/// The sandbox and the BFF meet only through the JSON fixtures, never through each other's types.
#[test]
fn sandbox_and_bff_do_not_import_each_other() {
    let manifest = |krate: &str| {
        std::fs::read_to_string(project_root().join("crates").join(krate).join("Cargo.toml"))
            .expect("manifest exists")
    };
    let bff = manifest("speaknode-bff");
    let normal_deps = bff.split("[dev-dependencies]").next().unwrap_or_default();
    assert!(
        !normal_deps.contains("speaknode-sandbox"),
        "the BFF may use the sandbox only in tests"
    );
    assert!(
        !manifest("speaknode-sandbox").contains("speaknode-bff"),
        "the sandbox must not know the BFF"
    );
}

/// The widget talks to the BFF only; the platform's paths appear nowhere in its sources.
#[test]
fn widget_never_calls_the_platform_api() {
    let mut files = Vec::new();
    rust_files(&project_root().join("src"), &mut files);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(
            !text.contains("/api/v1"),
            "{} mentions the platform API",
            path.display()
        );
    }
    let loader =
        std::fs::read_to_string(project_root().join("loader/speaknode-widget.js")).expect("loader");
    assert!(!loader.contains("/api/v1"));
}
