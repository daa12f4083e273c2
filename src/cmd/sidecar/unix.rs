//! The local API's Unix socket.

use std::path::Path;

use crate::Result;
use crate::cmd::{context, failure};

/// Bind a Unix socket readable and writable by this user only. A stale socket left by an
/// earlier run is replaced; any other file at the path is an error. The socket is bound in a
/// private (0700) directory beside the path, made 0600, then renamed into place, so it is
/// never reachable with looser permissions.
#[cfg(unix)]
pub(super) fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(failure(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(failure(format!(
                "{} is in use by another process",
                path.display()
            )));
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("/"),
    };
    let private = parent.join(format!(".hk-{:08x}", fastrand::u32(..)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| context(format!("creating {}", private.display()), e))?;
    let staged = private.join("s");
    let result = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged)
            .map_err(|e| context(format!("binding {}", path.display()), e))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| context(format!("restricting {}", path.display()), e))?;
        std::fs::rename(&staged, path)
            .map_err(|e| context(format!("moving the socket to {}", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| context("making the socket non-blocking", e))?;
        tokio::net::UnixListener::from_std(listener)
            .map_err(|e| context("registering the socket", e))
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}
