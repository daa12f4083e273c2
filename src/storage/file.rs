//! `file:` locations: a local (or mounted) directory.
//!
//! A write goes to a temporary file beside the final one (`.<name>.tmp-<random>`), is
//! fsynced, then hard-linked to its final name (which fails if that name exists: no
//! overwrite, atomically), the temporary name is removed and the directory fsynced. So a
//! payload is either absent or complete under its final name, even across a crash; a
//! crash can at worst leave a temporary file, which `list` skips.
//!
//! All blocking I/O runs in `spawn_blocking`; an operation whose future is dropped still
//! finishes (and cleans up) in the background.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{Location, ObjectMeta, ObjectStore, StorageError, is_normal};

/// Marks our temporary files: `.<name>.tmp-<random>`.
const TMP_MARKER: &str = ".tmp-";

/// Serves every `file:` location.
#[derive(Debug, Clone, Default)]
pub struct FileStore {
    _private: (),
}

impl FileStore {
    pub fn new() -> FileStore {
        FileStore { _private: () }
    }

    fn path<'a>(&self, location: &'a Location) -> Result<&'a str, StorageError> {
        match location {
            Location::File { path } => Ok(path),
            Location::S3 { .. } => Err(StorageError::WrongStore {
                location: location.to_string(),
                store: self.describe(),
            }),
        }
    }
}

/// Run blocking file work off the runtime; a panic in it is reported as `Unavailable`.
async fn blocking<T, F>(location: &Location, work: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) => Err(StorageError::Unavailable {
            location: location.to_string(),
            message: format!("file operation failed: {err}"),
        }),
    }
}

/// Map an I/O error on `location` (`what` says which step failed).
fn io_error(location: &str, what: &str, err: io::Error) -> StorageError {
    use io::ErrorKind as K;
    let location = location.to_string();
    match err.kind() {
        K::NotFound => StorageError::NotFound { location },
        K::AlreadyExists => StorageError::AlreadyExists { location },
        K::PermissionDenied
        | K::ReadOnlyFilesystem
        | K::NotADirectory
        | K::IsADirectory
        | K::InvalidInput
        | K::InvalidFilename
        | K::Unsupported
        | K::FileTooLarge => StorageError::Rejected {
            location,
            message: format!("{what}: {err}"),
        },
        _ => StorageError::Unavailable {
            location,
            message: format!("{what}: {err}"),
        },
    }
}

fn url(path: &str) -> String {
    Location::File {
        path: path.to_string(),
    }
    .to_string()
}

/// A temporary name for `name` in its directory; short enough for NAME_MAX (255 bytes).
fn tmp_name(name: &str) -> String {
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(10)
        .collect();
    format!(".{}{TMP_MARKER}{random}", &name[..end])
}

fn is_tmp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARKER)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `create_dir_all(dir)`, then fsync each directory that holds a newly created one so
/// the new entries survive a crash.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut existing = dir;
    while let Some(parent) = existing.parent() {
        existing = parent;
        if existing.is_dir() {
            break;
        }
    }
    fs::create_dir_all(dir)?;
    let mut to_sync: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(existing))
        .collect();
    to_sync.reverse();
    for d in to_sync {
        sync_dir(d)?;
    }
    Ok(())
}

fn put_new_blocking(path: &str, body: &[u8]) -> Result<(), StorageError> {
    let final_path = Path::new(path);
    let (Some(dir), Some(name)) = (final_path.parent(), final_path.file_name()) else {
        return Err(StorageError::Rejected {
            location: url(path),
            message: "not a file path".to_string(),
        });
    };
    let name = name.to_string_lossy();
    create_dirs(dir).map_err(|e| io_error(&url(path), "creating the directory", e))?;

    let (tmp_path, mut tmp) = loop {
        let tmp_path = dir.join(tmp_name(&name));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
        {
            Ok(file) => break (tmp_path, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io_error(&url(path), "creating a temporary file", e));
            }
        }
    };
    let remove_tmp = |tmp_path: &PathBuf| {
        if let Err(e) = fs::remove_file(tmp_path) {
            tracing::warn!(path = %tmp_path.display(), error = %e, "could not remove a temporary file");
        }
    };

    let written = tmp.write_all(body).and_then(|()| tmp.sync_all());
    drop(tmp);
    if let Err(e) = written {
        remove_tmp(&tmp_path);
        return Err(io_error(&url(path), "writing a temporary file", e));
    }
    let linked = fs::hard_link(&tmp_path, final_path);
    remove_tmp(&tmp_path);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StorageError::AlreadyExists {
                location: url(path),
            });
        }
        Err(e) => {
            return Err(io_error(
                &url(path),
                "linking the payload to its name (the file system must support hard links)",
                e,
            ));
        }
    }
    sync_dir(dir).map_err(|e| io_error(&url(path), "syncing the directory", e))?;
    tracing::debug!(location = %url(path), size = body.len(), "stored");
    Ok(())
}

fn get_blocking(path: &str, limit: u64) -> Result<Bytes, StorageError> {
    let location = url(path);
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(StorageError::NotFound { location });
        }
        Err(e) => return Err(io_error(&location, "opening", e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error(&location, "reading metadata", e))?;
    if !meta.is_file() {
        return Err(StorageError::NotFound { location });
    }
    let size = meta.len();
    if size > limit {
        return Err(StorageError::TooLarge {
            location,
            size,
            limit,
        });
    }
    // The file may grow while we read: never read more than `limit + 1` bytes.
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io_error(&location, "reading", e))?;
    let read = buf.len() as u64;
    if read > limit {
        return Err(StorageError::TooLarge {
            location,
            size: read,
            limit,
        });
    }
    Ok(Bytes::from(buf))
}

fn size_blocking(path: &str) -> Result<Option<u64>, StorageError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(None),
        Err(e) => Err(io_error(&url(path), "reading metadata", e)),
    }
}

fn delete_blocking(path: &str) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!(location = %url(path), "deleted");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(()),
        Err(e) => Err(io_error(&url(path), "deleting", e)),
    }
}

/// `dir/name` without doubling the slash at the root.
fn child(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn list_blocking(prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
    // Every match lives under the prefix's parent directory.
    let start = match prefix.rfind('/') {
        Some(0) => "/".to_string(),
        Some(slash) => prefix[..slash].to_string(),
        None => "/".to_string(),
    };
    let mut out = Vec::new();
    let mut dirs = vec![start];
    let mut first = true;
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if first && e.kind() == io::ErrorKind::NotFound => break,
            Err(e) if first && e.kind() == io::ErrorKind::NotADirectory => break,
            // A directory that vanished while we walked: nothing to list in it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&url(&dir), "listing", e)),
        };
        first = false;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&url(&dir), "listing", e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::debug!(dir = %dir, name = ?entry.file_name(), "skipping a name that is not UTF-8");
                continue;
            };
            let path = child(&dir, &name);
            if !path.starts_with(prefix) || is_tmp_name(&name) {
                continue;
            }
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&url(&path), "listing", e)),
            };
            if file_type.is_dir() {
                dirs.push(path);
                continue;
            }
            // Regular files, and symbolic links to them.
            let meta = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&url(&path), "reading metadata", e)),
            };
            if !is_normal(&path, true) {
                tracing::debug!(path = %path, "skipping a file whose name a location cannot hold");
                continue;
            }
            out.push(ObjectMeta {
                location: Location::File { path },
                size: meta.len(),
                last_modified: meta.modified().ok(),
            });
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

impl ObjectStore for FileStore {
    fn put_new<'a>(
        &'a self,
        location: &'a Location,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let path = self.path(location)?.to_string();
            blocking(location, move || put_new_blocking(&path, &body)).await
        })
    }

    fn get<'a>(
        &'a self,
        location: &'a Location,
        limit: u64,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let path = self.path(location)?.to_string();
            blocking(location, move || get_blocking(&path, limit)).await
        })
    }

    fn size<'a>(
        &'a self,
        location: &'a Location,
    ) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        Box::pin(async move {
            let path = self.path(location)?.to_string();
            blocking(location, move || size_blocking(&path)).await
        })
    }

    fn delete<'a>(&'a self, location: &'a Location) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let path = self.path(location)?.to_string();
            blocking(location, move || delete_blocking(&path)).await
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a Location,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>> {
        Box::pin(async move {
            let path = self.path(prefix)?.to_string();
            blocking(prefix, move || list_blocking(&path)).await
        })
    }

    fn describe(&self) -> String {
        "file".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_names() {
        let name = tmp_name("completedCheckpoint0123");
        assert!(name.starts_with(".completedCheckpoint0123.tmp-"));
        assert!(is_tmp_name(&name));
        assert!(!is_tmp_name("completedCheckpoint0123"));
        assert!(!is_tmp_name(".hidden"));
        let long = "é".repeat(127);
        assert!(tmp_name(&long).len() <= 255);
    }

    #[test]
    fn child_paths() {
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/x", "a"), "/x/a");
    }
}
