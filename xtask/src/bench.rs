//! Benchmarks that measure, not time: the bytes of every file the browser loads for the
//! widget, raw and compressed as a CDN would serve them.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// The widget's files, in the order the browser loads them: the loader and its stylesheet on
/// page load, the app's glue and wasm on intent. The demo page (index.html, demo.css) is the
/// customer's, not ours, so it is not counted.
const WIDGET_FILES: &[&str] = &[
    "speaknode-widget.js",
    "speaknode-widget.css",
    "app/speaknode-widget.js",
    "app/speaknode-widget_bg.wasm",
];

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
}

/// Writes `sizes.json` into `out` and prints a table.
pub fn sizes(dist: &Path, out: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for name in WIDGET_FILES {
        let data =
            std::fs::read(dist.join(name)).with_context(|| format!("reading dist/{name}"))?;
        files.push(FileSize {
            path: (*name).to_owned(),
            bytes: measure(&data)?,
        });
    }
    // wasm-bindgen puts inline JS of dependencies under snippets/; the browser loads those too.
    let snippets = dist.join("snippets");
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
    let total = files.iter().fold(Bytes::default(), |sum, file| Bytes {
        raw: sum.raw + file.bytes.raw,
        gzip: sum.gzip + file.bytes.gzip,
        brotli: sum.brotli + file.bytes.brotli,
    });
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
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_string_pretty(&Sizes { files, total })?;
    std::fs::write(out.join("sizes.json"), json)?;
    println!("wrote {}", out.join("sizes.json").display());
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
