//! The widget's own benchmarks: the bytes of every file the browser loads for it, raw and
//! compressed as a CDN would serve them, and (with `bench/browser.mjs`) what a visitor waits
//! for in headless Chromium, beside the bytes it took.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The widget's files, in the order the browser loads them: the loader and its stylesheet on
/// page load, the app's glue and wasm on intent. The demo page (index.html, demo.css) is the
/// customer's, not ours, so it is not counted.
const WIDGET_FILES: &[&str] = &[
    "speaknode-widget.js",
    "speaknode-widget.css",
    "app/speaknode-widget.js",
    "app/speaknode-widget_bg.wasm",
];

/// What the browser loads only when a visitor starts a call: the voice bridge bundled with
/// livekit-client (js/bundle.mjs). Reported beside the others, never added to them.
const CALL_START_FILE: &str = "app/voice.mjs";

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
struct Bytes {
    raw: usize,
    gzip: usize,
    brotli: usize,
}

#[derive(Serialize)]
struct FileSize {
    path: String,
    #[serde(flatten)]
    bytes: Bytes,
}

#[derive(Serialize)]
struct Sizes {
    files: Vec<FileSize>,
    total: Bytes,
    /// What every page view costs before any intent: the loader and its stylesheet.
    page_load: Bytes,
    /// Loaded at call start only: the voice bundle.
    call_start: FileSize,
    peer: Peer,
}

/// The peer the widget's bytes are compared with, measured in the same run: ElevenLabs'
/// embeddable widget from npm (pinned in package.json), one self-contained script that every
/// page view loads in full. It includes its voice stack; ours loads that at call start.
const PEER_NAME: &str = "@elevenlabs/convai-widget-embed 0.5.4";
const PEER_FILE: &str = "node_modules/@elevenlabs/convai-widget-embed/dist/index.js";

#[derive(Serialize)]
struct Peer {
    name: &'static str,
    file: &'static str,
    bytes: Bytes,
    /// Our page-load bytes over the peer's, per encoding.
    page_load_ratio: Ratios,
    /// Our bytes to a usable panel over the peer's.
    usable_panel_ratio: Ratios,
}

#[derive(Serialize)]
struct Ratios {
    raw: f64,
    gzip: f64,
    brotli: f64,
}

impl Ratios {
    fn of(ours: Bytes, theirs: Bytes) -> Self {
        let ratio = |a: usize, b: usize| (a as f64 / b as f64 * 1000.0).round() / 1000.0;
        Self {
            raw: ratio(ours.raw, theirs.raw),
            gzip: ratio(ours.gzip, theirs.gzip),
            brotli: ratio(ours.brotli, theirs.brotli),
        }
    }
}

/// Every file of the widget in `dist`, measured.
fn widget_files(dist: &Path) -> anyhow::Result<Vec<FileSize>> {
    let mut files = Vec::new();
    for name in WIDGET_FILES {
        let data =
            std::fs::read(dist.join(name)).with_context(|| format!("reading dist/{name}"))?;
        files.push(FileSize {
            path: (*name).to_owned(),
            bytes: measure(&data)?,
        });
    }
    // wasm-bindgen puts inline JS (ours and dependencies') under snippets/ beside the glue;
    // the glue imports those statically, so they load with it.
    let snippets = dist.join("app/snippets");
    if snippets.is_dir() {
        for entry in walk(&snippets)? {
            let data = std::fs::read(&entry)?;
            let path = entry.strip_prefix(dist)?.to_string_lossy().into_owned();
            files.push(FileSize {
                path,
                bytes: measure(&data)?,
            });
        }
    }
    Ok(files)
}

fn sum(files: &[FileSize]) -> Bytes {
    files.iter().fold(Bytes::default(), |sum, file| Bytes {
        raw: sum.raw + file.bytes.raw,
        gzip: sum.gzip + file.bytes.gzip,
        brotli: sum.brotli + file.bytes.brotli,
    })
}

/// Writes `sizes.json` into `out` and prints a table.
pub fn sizes(dist: &Path, out: &Path) -> anyhow::Result<()> {
    let files = widget_files(dist)?;
    let total = sum(&files);
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "file", "raw", "gzip -9", "brotli 11"
    );
    for file in &files {
        println!(
            "{:<40} {:>10} {:>10} {:>10}",
            file.path, file.bytes.raw, file.bytes.gzip, file.bytes.brotli
        );
    }
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "total", total.raw, total.gzip, total.brotli
    );
    // The loader and its stylesheet, the first two of WIDGET_FILES.
    let page_load = sum(&files[..2]);
    let voice = std::fs::read(dist.join(CALL_START_FILE))
        .with_context(|| format!("reading dist/{CALL_START_FILE}"))?;
    let call_start = FileSize {
        path: CALL_START_FILE.to_owned(),
        bytes: measure(&voice)?,
    };
    let peer_data = std::fs::read(crate::project_root().join(PEER_FILE))
        .with_context(|| format!("reading {PEER_FILE} (npm ci installs it)"))?;
    let peer_bytes = measure(&peer_data)?;
    let peer = Peer {
        name: PEER_NAME,
        file: PEER_FILE,
        bytes: peer_bytes,
        page_load_ratio: Ratios::of(page_load, peer_bytes),
        usable_panel_ratio: Ratios::of(total, peer_bytes),
    };
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "page load (loader + css)", page_load.raw, page_load.gzip, page_load.brotli
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        format!("{CALL_START_FILE} (loaded at call start)"),
        call_start.bytes.raw,
        call_start.bytes.gzip,
        call_start.bytes.brotli
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        PEER_NAME, peer_bytes.raw, peer_bytes.gzip, peer_bytes.brotli
    );
    for (what, ratios) in [
        ("page load / peer", &peer.page_load_ratio),
        ("usable panel / peer", &peer.usable_panel_ratio),
    ] {
        println!(
            "{:<40} {:>10.3} {:>10.3} {:>10.3}",
            what, ratios.raw, ratios.gzip, ratios.brotli
        );
    }
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_string_pretty(&Sizes {
        files,
        total,
        page_load,
        call_start,
        peer,
    })?;
    std::fs::write(out.join("sizes.json"), json)?;
    println!("wrote {}", out.join("sizes.json").display());
    Ok(())
}

/// One figure of the browser bench (bench/browser.mjs), over its runs.
#[derive(Debug, Deserialize, Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

#[derive(Debug, Deserialize, Serialize)]
struct LongTasks {
    count: Spread,
    longest_ms: Spread,
}

/// A call start (bench/browser.mjs `callStart`): from the click that starts the call to the
/// agent heard (its meter at `agent_level` or above), and the HTTP bytes fetched meanwhile.
#[derive(Debug, Deserialize, Serialize)]
struct CallStart {
    runs: u32,
    agent_level: u32,
    click_to_connected_ms: Spread,
    click_to_agent_heard_ms: Spread,
    requests: Spread,
    bytes_raw: Spread,
    bytes_encoded: Spread,
    voice_mjs_raw: Spread,
    voice_mjs_encoded: Spread,
    samples: serde_json::Value,
}

/// What bench/browser.mjs measured; its per-run samples are kept as they are.
#[derive(Debug, Deserialize, Serialize)]
struct Timings {
    runs: u32,
    launcher_paint_ms: Spread,
    launcher_paint_from_navigation_ms: Spread,
    page_load_long_tasks: LongTasks,
    app_load_long_tasks: LongTasks,
    click_to_panel_ms: Spread,
    click_to_active_ms: Spread,
    samples: serde_json::Value,
    call_start: CallStart,
}

#[derive(Serialize)]
struct BrowserBytes {
    /// What every page view costs: the loader alone.
    loader: Bytes,
    /// What a usable panel costs: the loader, the stylesheet, the app's glue and wasm.
    usable_panel: Bytes,
    files: Vec<FileSize>,
}

#[derive(Serialize)]
struct Browser {
    timings: Timings,
    bytes: BrowserBytes,
}

/// Joins the browser timings in `timings` (written by bench/browser.mjs) with the bytes they
/// took, writes `browser.json` into `out` and prints a table.
pub fn browser(dist: &Path, timings: &Path, out: &Path) -> anyhow::Result<()> {
    let timings: Timings = serde_json::from_str(
        &std::fs::read_to_string(timings)
            .with_context(|| format!("reading {}", timings.display()))?,
    )
    .context("the browser bench's timings")?;
    let files = widget_files(dist)?;
    let loader = files
        .iter()
        .find(|file| file.path == "speaknode-widget.js")
        .map(|file| file.bytes)
        .context("the loader was not measured")?;
    let report = Browser {
        bytes: BrowserBytes {
            loader,
            usable_panel: sum(&files),
            files,
        },
        timings,
    };
    let t = &report.timings;
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        format!("browser, {} cold visits", t.runs),
        "median",
        "min",
        "max"
    );
    let rows: [(&str, &Spread); 8] = [
        ("loader start → launcher painted (ms)", &t.launcher_paint_ms),
        (
            "navigation → launcher painted (ms)",
            &t.launcher_paint_from_navigation_ms,
        ),
        (
            "long tasks while the page loads (count)",
            &t.page_load_long_tasks.count,
        ),
        ("  longest of them (ms)", &t.page_load_long_tasks.longest_ms),
        (
            "long tasks from click to Active (count)",
            &t.app_load_long_tasks.count,
        ),
        ("  longest of them (ms)", &t.app_load_long_tasks.longest_ms),
        ("click → panel painted (ms)", &t.click_to_panel_ms),
        ("click → conversation Active (ms)", &t.click_to_active_ms),
    ];
    for (label, spread) in rows {
        println!(
            "{label:<52} {:>9.1} {:>9.1} {:>9.1}",
            spread.median, spread.min, spread.max
        );
    }
    println!();
    let c = &t.call_start;
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        format!(
            "call start, {} calls (agent level ≥ {})",
            c.runs, c.agent_level
        ),
        "median",
        "min",
        "max"
    );
    let rows: [(&str, &Spread); 7] = [
        ("click → call connected (ms)", &c.click_to_connected_ms),
        ("click → agent heard (ms)", &c.click_to_agent_heard_ms),
        ("HTTP requests until heard", &c.requests),
        ("bytes until heard, decoded", &c.bytes_raw),
        (
            "bytes until heard, received (headers incl.)",
            &c.bytes_encoded,
        ),
        ("  of them app/voice.mjs, decoded", &c.voice_mjs_raw),
        ("  of them app/voice.mjs, received", &c.voice_mjs_encoded),
    ];
    for (label, spread) in rows {
        println!(
            "{label:<52} {:>9.1} {:>9.1} {:>9.1}",
            spread.median, spread.min, spread.max
        );
    }
    println!();
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "bytes", "raw", "gzip -9", "brotli 11"
    );
    for (label, bytes) in [
        ("loader (every page view)", report.bytes.loader),
        (
            "usable panel (loader + CSS + app JS + wasm)",
            report.bytes.usable_panel,
        ),
    ] {
        println!(
            "{label:<52} {:>9} {:>9} {:>9}",
            bytes.raw, bytes.gzip, bytes.brotli
        );
    }
    std::fs::create_dir_all(out)?;
    let path = out.join("browser.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn measure(data: &[u8]) -> anyhow::Result<Bytes> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(data)?;
    let gzip = gzip.finish()?.len();
    let mut brotli = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut brotli, &params)?;
    Ok(Bytes {
        raw: data.len(),
        gzip,
        brotli: brotli.len(),
    })
}

fn walk(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(walk(&path)?);
        } else {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_shrinks_repetitive_data_and_reports_raw_exactly() {
        let data = "speaknode ".repeat(1000);
        let bytes = measure(data.as_bytes()).expect("measuring works");
        assert_eq!(bytes.raw, 10_000);
        assert!(bytes.gzip < 200 && bytes.brotli < 200, "{bytes:?}");
    }
}
