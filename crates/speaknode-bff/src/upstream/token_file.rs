//! The refresh token on disk: read together with the stamp of the very file read, and
//! replaced atomically and durably, so that a crash leaves either the old or the new token
//! in place, never a torn or empty file.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// When and how big the file was: a change means someone (`login`) replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: SystemTime,
    len: u64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> io::Result<Self> {
        Ok(Self {
            modified: metadata.modified()?,
            len: metadata.len(),
        })
    }
}

/// The file's contents. The issuer and client are kept with the token, so a file written
/// for another provider or client is refused instead of being presented to this one.
#[derive(Deserialize)]
struct Stored {
    issuer: String,
    client_id: String,
    refresh_token: SecretString,
}

/// Whom a stored token was issued to.
#[derive(Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
}

/// The refresh token file of `upstream.refresh_token_file`.
pub(crate) struct TokenFile {
    path: PathBuf,
    /// Makes the next write fail before anything is written, as a crash between the token
    /// response and the write would.
    #[cfg(test)]
    pub(crate) crash_before_write: std::sync::atomic::AtomicBool,
}

impl TokenFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            #[cfg(test)]
            crash_before_write: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current stamp; `None` if it is missing or cannot be examined.
    pub(crate) async fn stamp(&self) -> Option<FileStamp> {
        let metadata = tokio::fs::metadata(&self.path).await.ok()?;
        FileStamp::of(&metadata).ok()
    }

    /// The stored token if it was issued to `owner`, with the stamp of the file it came
    /// from. Errors name the file, never its contents.
    pub(crate) async fn read(&self, owner: Owner<'_>) -> anyhow::Result<(SecretString, FileStamp)> {
        let path = self.path.clone();
        let (text, stamp) = tokio::task::spawn_blocking(move || read_private(&path)).await??;
        let stored: Stored = serde_json::from_str(text.expose_secret())
            .map_err(|e| anyhow::anyhow!("not a refresh token file (line {})", e.line()))?;
        anyhow::ensure!(
            stored.issuer == owner.issuer && stored.client_id == owner.client_id,
            "it holds a token of client {:?} at {:?}, not of the configured client",
            stored.client_id,
            stored.issuer
        );
        Ok((stored.refresh_token, stamp))
    }

    /// Replaces the file with `token` durably: a temporary file in the same directory is
    /// written and flushed to disk, renamed over the old one, and the directory is flushed
    /// so that the rename survives a power cut. The file is readable by its owner only.
    pub(crate) async fn write(
        &self,
        owner: Owner<'_>,
        token: &SecretString,
    ) -> io::Result<FileStamp> {
        #[cfg(test)]
        if self
            .crash_before_write
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(io::Error::other("simulated crash before the write"));
        }
        let contents = serde_json::json!({
            "issuer": owner.issuer,
            "client_id": owner.client_id,
            "refresh_token": token.expose_secret(),
        });
        // Kept in a secret so the serialised copy is wiped when dropped too.
        let contents = SecretString::from(contents.to_string());
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            write_durably(&path, contents.expose_secret().as_bytes())
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn read_private(path: &Path) -> io::Result<(SecretString, FileStamp)> {
    let mut file = std::fs::File::open(path)?;
    let stamp = FileStamp::of(&file.metadata()?)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok((SecretString::from(text), stamp))
}

fn write_durably(path: &Path, contents: &[u8]) -> io::Result<FileStamp> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Same directory, so the rename cannot cross file systems; a unique name, so two
    // writers never share a temporary file.
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = create_private(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        let stamp = FileStamp::of(&file.metadata()?)?;
        drop(file);
        std::fs::rename(&temp, path)?;
        sync_dir(dir)?;
        Ok(stamp)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask may only remove bits; set them exactly anyway.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Flushes a directory's entries, which is what makes a rename durable on Unix.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path() -> PathBuf {
        std::env::temp_dir()
            .join(format!("bff-token-{}", uuid::Uuid::new_v4().simple()))
            .join("refresh-token.json")
    }

    const OWNER: Owner<'static> = Owner {
        issuer: "https://id.example",
        client_id: "bff",
    };

    #[tokio::test]
    async fn a_written_token_reads_back_with_the_same_stamp() {
        let path = temp_path();
        let dir = path.parent().expect("a parent").to_owned();
        std::fs::create_dir_all(&dir).expect("dir");
        let file = TokenFile::new(path.clone());
        assert_eq!(file.stamp().await, None);
        let written = file
            .write(OWNER, &SecretString::from("rt-1"))
            .await
            .expect("write");
        let (token, read) = file.read(OWNER).await.expect("read");
        assert_eq!(token.expose_secret(), "rt-1");
        assert_eq!(read, written);
        assert_eq!(file.stamp().await, Some(written));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let rewritten = file
            .write(OWNER, &SecretString::from("rt-two"))
            .await
            .expect("write");
        assert_ne!(rewritten, written, "a replaced file has a new stamp");
        let leftovers = std::fs::read_dir(&dir).expect("list").count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[tokio::test]
    async fn a_file_of_another_client_or_garbage_is_refused_without_echoing_it() {
        let path = temp_path();
        let dir = path.parent().expect("a parent").to_owned();
        std::fs::create_dir_all(&dir).expect("dir");
        let file = TokenFile::new(path.clone());
        let other = Owner {
            client_id: "other",
            ..OWNER
        };
        file.write(other, &SecretString::from("rt-secret"))
            .await
            .expect("write");
        let error = file.read(OWNER).await.expect_err("another client's token");
        assert!(!format!("{error:#}").contains("rt-secret"), "{error:#}");
        std::fs::write(&path, "rt-secret-but-not-json").expect("write");
        let error = file.read(OWNER).await.expect_err("garbage");
        assert!(!format!("{error:#}").contains("rt-secret"), "{error:#}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[tokio::test]
    async fn a_crash_before_the_write_leaves_the_old_file() {
        let path = temp_path();
        let dir = path.parent().expect("a parent").to_owned();
        std::fs::create_dir_all(&dir).expect("dir");
        let file = TokenFile::new(path.clone());
        file.write(OWNER, &SecretString::from("old"))
            .await
            .expect("write");
        file.crash_before_write
            .store(true, std::sync::atomic::Ordering::SeqCst);
        file.write(OWNER, &SecretString::from("new"))
            .await
            .expect_err("crashed");
        let (token, _) = file.read(OWNER).await.expect("read");
        assert_eq!(token.expose_secret(), "old");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
