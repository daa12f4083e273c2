//! Object storage for payloads: `s3://bucket/prefix` (also `s3a://`, `s3p://`) or
//! `file:///dir`. Everything above this module speaks in [`Location`]s (full URLs, the
//! same strings Flink puts in its handles) and goes through the [`ObjectStore`] trait,
//! so a fault-injecting wrapper can stand in for a real backend in tests.
//!
//! # Location syntax
//!
//! Locations are written the way Flink's `org.apache.flink.core.fs.Path` prints them:
//! unescaped, no query, no fragment.
//!
//! - `s3://bucket/key`, `s3a://bucket/key`, `s3p://bucket/key`: the scheme is kept as
//!   written (all three go to the same backend). The key may be empty (`s3://bucket`).
//! - `file:/abs/path`, `file:///abs/path` (also `file://localhost/abs/path`): an absolute
//!   local path. A location always displays as `file:/abs/path`, which is what Flink's
//!   `Path.toString()` and `Path.toUri().toString()` give for the files it creates under
//!   a `file:///…` storage directory (a `java.net.URI` with an empty authority has none).
//!
//! Paths and keys are normalised as Flink does: repeated slashes collapse and a trailing
//! slash is dropped. Rejected: relative paths, `.` and `..` segments, `?` (query), `#`
//! (fragment), `%` (percent-escapes: this module does not decode them and Flink does not
//! write them, so a `%` would mean different things to different readers), `\` (Flink
//! reads it as `/`) and control characters. Spaces and any other Unicode are fine and are
//! written as themselves.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::BoxFuture;

pub mod args;
mod file;
mod s3;

pub use args::S3Args;
pub use file::FileStore;
pub use s3::{S3Options, S3Store};

/// A payload's full address, e.g. `s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8`
/// or `file:/var/ha/default/completedCheckpoint0123456789ab`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// `scheme` is `s3`, `s3a` or `s3p` as written; `key` has no leading or trailing
    /// slash and no empty, `.` or `..` segments (it is empty for the bucket itself).
    S3 {
        scheme: String,
        bucket: String,
        key: String,
    },
    /// An absolute, normalised path (no `.`/`..` components, no trailing slash).
    File { path: String },
}

impl Location {
    /// The `file:` location of a local directory or file (an absolute path).
    pub fn file(path: &std::path::Path) -> Result<Location, StorageError> {
        Location::parse(&format!("file://{}", path.display()))
    }

    /// Parse `s3://bucket/key`, `s3a://…`, `s3p://…`, `file:///abs/path` (also `file:/abs`).
    /// See the module documentation for what is accepted.
    pub fn parse(url: &str) -> Result<Location, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidLocation {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.is_empty() {
            return Err(invalid("empty"));
        }
        if let Some(c) = url.chars().find(|c| c.is_control()) {
            return Err(invalid(&format!("contains the control character {c:?}")));
        }
        if url.contains('?') {
            return Err(invalid("query strings (`?`) are not supported"));
        }
        if url.contains('#') {
            return Err(invalid("fragments (`#`) are not supported"));
        }
        if url.contains('%') {
            return Err(invalid(
                "percent-escapes are not decoded: write the characters themselves \
                 (spaces and other Unicode are fine)",
            ));
        }
        if url.contains('\\') {
            return Err(invalid(
                "backslashes are not allowed (Flink reads them as `/`)",
            ));
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(invalid(
                "no scheme: expected s3://bucket/prefix or file:///absolute/path",
            ));
        };
        if scheme.is_empty() || scheme.contains('/') {
            return Err(invalid(
                "no scheme: expected s3://bucket/prefix or file:///absolute/path",
            ));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" | "s3p" => {
                let Some(rest) = rest.strip_prefix("//") else {
                    return Err(invalid(&format!("expected {scheme}://bucket/key")));
                };
                let (bucket, path) = match rest.find('/') {
                    Some(slash) => (&rest[..slash], &rest[slash..]),
                    None => (rest, ""),
                };
                if bucket.is_empty() {
                    return Err(invalid("empty bucket name"));
                }
                if let Some(c) = bucket
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
                {
                    return Err(invalid(&format!(
                        "bucket name {bucket:?} contains {c:?} (user info and ports are not supported)"
                    )));
                }
                let segments = segments(path).map_err(|reason| invalid(&reason))?;
                Ok(Location::S3 {
                    scheme: scheme.to_string(),
                    bucket: bucket.to_string(),
                    key: segments.join("/"),
                })
            }
            "file" => {
                let path = if let Some(after) = rest.strip_prefix("//") {
                    if after.starts_with('/') {
                        after
                    } else {
                        // `file://host/path`: only the local host is meaningful.
                        let (host, path) = match after.find('/') {
                            Some(slash) => (&after[..slash], &after[slash..]),
                            None => (after, ""),
                        };
                        if !host.eq_ignore_ascii_case("localhost") {
                            return Err(invalid(&format!(
                                "a file URL names no host (got {host:?}): write file:///absolute/path"
                            )));
                        }
                        if path.is_empty() {
                            return Err(invalid("no path"));
                        }
                        path
                    }
                } else if rest.starts_with('/') {
                    rest
                } else {
                    return Err(invalid(
                        "relative paths are not supported: write file:///absolute/path",
                    ));
                };
                let segments = segments(path).map_err(|reason| invalid(&reason))?;
                Ok(Location::File {
                    path: format!("/{}", segments.join("/")),
                })
            }
            _ => Err(invalid(&format!(
                "unsupported scheme {scheme:?}: expected s3, s3a, s3p or file"
            ))),
        }
    }

    /// This location with `relative` appended as further path segments: `name`, or a
    /// relative path like `cluster/blob/key` (empty segments are skipped, so leading,
    /// trailing and doubled slashes do not matter).
    ///
    /// For names the program makes up. Use [`Location::try_join`] for names that come
    /// from outside.
    ///
    /// # Panics
    ///
    /// If a segment is `.` or `..` or has a character a location cannot hold (see the
    /// module documentation). (Length is not checked: S3 refuses keys over 1024 bytes,
    /// a file system names over 255, and the store reports that as `Rejected`.)
    pub fn join(&self, relative: &str) -> Location {
        match self.try_join(relative) {
            Ok(location) => location,
            Err(err) => panic!("Location::join: {err}"),
        }
    }

    /// [`Location::join`] that reports a bad `relative` as `InvalidLocation` instead of
    /// panicking.
    pub fn try_join(&self, relative: &str) -> Result<Location, StorageError> {
        let invalid = |reason: String| StorageError::InvalidLocation {
            url: format!("{self} + {relative:?}"),
            reason,
        };
        if let Some(c) = relative.chars().find(|&c| !allowed_char(c)) {
            return Err(invalid(format!(
                "{c:?} is not allowed in a location segment"
            )));
        }
        let extra = segments(relative).map_err(invalid)?;
        Ok(match self {
            Location::S3 {
                scheme,
                bucket,
                key,
            } => {
                let mut key = key.clone();
                for segment in extra {
                    if !key.is_empty() {
                        key.push('/');
                    }
                    key.push_str(segment);
                }
                Location::S3 {
                    scheme: scheme.clone(),
                    bucket: bucket.clone(),
                    key,
                }
            }
            Location::File { path } => {
                let mut path = path.clone();
                for segment in extra {
                    if !path.ends_with('/') {
                        path.push('/');
                    }
                    path.push_str(segment);
                }
                Location::File { path }
            }
        })
    }

    /// Whether this location is strictly inside the directory `dir` (for S3: in the same
    /// bucket, under `dir`'s key followed by `/`; the scheme spelling does not matter).
    /// `s3://b/ha/default-2/x` is not inside `s3://b/ha/default`, though it starts with it.
    pub fn is_under(&self, dir: &Location) -> bool {
        let inside = |path: &str, dir: &str| {
            dir.is_empty() || dir == "/" || {
                path.len() > dir.len()
                    && path.starts_with(dir)
                    && path.as_bytes()[dir.len()] == b'/'
            }
        };
        match (self, dir) {
            (
                Location::S3 { bucket, key, .. },
                Location::S3 {
                    bucket: dir_bucket,
                    key: dir_key,
                    ..
                },
            ) => bucket == dir_bucket && !key.is_empty() && inside(key, dir_key),
            (Location::File { path }, Location::File { path: dir_path }) => {
                path != dir_path && inside(path, dir_path)
            }
            _ => false,
        }
    }

    /// The last path segment (`submittedJobGraph307e2d6a5be8`); empty for a bucket or `/`.
    pub fn file_name(&self) -> &str {
        let path = match self {
            Location::S3 { key, .. } => key,
            Location::File { path } => path,
        };
        path.rsplit('/').next().unwrap_or_default()
    }
}

/// Whether `c` may appear in a location's path or key as written.
fn allowed_char(c: char) -> bool {
    !(c.is_control() || matches!(c, '?' | '#' | '%' | '\\'))
}

/// The non-empty segments of `path`; `Err` (a reason) for `.` and `..`.
fn segments(path: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" => {}
            "." | ".." => {
                return Err(format!("`{segment}` path segments are not allowed"));
            }
            _ => out.push(segment),
        }
    }
    Ok(out)
}

/// Whether `key_or_path` (an S3 key without leading slash, or an absolute path) is already
/// in the normal form a [`Location`] holds, so that listing results round-trip through
/// `Display`/`parse`.
pub(crate) fn is_normal(key_or_path: &str, absolute: bool) -> bool {
    let rest = if absolute {
        match key_or_path.strip_prefix('/') {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        key_or_path
    };
    if rest.is_empty() {
        return true;
    }
    rest.chars().all(allowed_char)
        && rest
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

impl fmt::Display for Location {
    /// The URL form, as Flink prints it: `s3://bucket/key`, `file:/abs/path`.
    /// `Location::parse(&location.to_string())` gives `location` back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::S3 {
                scheme,
                bucket,
                key,
            } => {
                write!(f, "{scheme}://{bucket}")?;
                if !key.is_empty() {
                    write!(f, "/{key}")?;
                }
                Ok(())
            }
            Location::File { path } => write!(f, "file:{path}"),
        }
    }
}

impl FromStr for Location {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Location, StorageError> {
        Location::parse(s)
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub location: Location,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location}: no such object")]
    NotFound { location: String },
    #[error("{location}: an object with this name already exists")]
    AlreadyExists { location: String },
    #[error("{location}: object is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        location: String,
        size: u64,
        limit: u64,
    },
    /// The backend could not be reached or kept failing (after retries).
    #[error("{location}: storage unavailable: {message}")]
    Unavailable { location: String, message: String },
    /// The backend answered with a refusal that retrying will not fix (403, bad bucket...).
    #[error("{location}: {message}")]
    Rejected { location: String, message: String },
    #[error("invalid storage location {url:?}: {reason}")]
    InvalidLocation { url: String, reason: String },
    #[error("{location} is not served by this store ({store})")]
    WrongStore { location: String, store: String },
}

/// A payload store. Implementations are cheap to share (`Arc<dyn ObjectStore>`).
pub trait ObjectStore: Send + Sync + 'static {
    /// Write `body` under `location` only if nothing is there yet: `AlreadyExists`
    /// otherwise. Never leaves a partial object under the final name.
    fn put_new<'a>(
        &'a self,
        location: &'a Location,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Read a whole object; `TooLarge` (without reading it all) above `limit` bytes.
    fn get<'a>(
        &'a self,
        location: &'a Location,
        limit: u64,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>>;
    /// The object's size, `None` if it does not exist (on S3 also when the bucket does
    /// not exist: a HEAD response has no body to tell the two apart).
    fn size<'a>(
        &'a self,
        location: &'a Location,
    ) -> BoxFuture<'a, Result<Option<u64>, StorageError>>;
    /// Delete; deleting a missing object is not an error.
    fn delete<'a>(&'a self, location: &'a Location) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Every object whose location starts with `prefix` (string prefix of the key/path,
    /// all pages, recursive), in name order. A string prefix: listing `…/default` also
    /// returns `…/default-2/…`; use [`ObjectStore::list_dir`] for a directory's contents.
    /// Names a [`Location`] cannot hold (with `%`, `?`, `#`, `\`, control characters, or
    /// empty, `.` or `..` segments) are skipped, as are a file store's temporary files.
    fn list<'a>(
        &'a self,
        prefix: &'a Location,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>>;
    /// A short description for messages and logs: `s3 (endpoint …)`, `file`.
    fn describe(&self) -> String;

    /// Every object inside the directory `dir` (recursive, in name order): `list` without
    /// the siblings that merely start with the same characters (`…/default-2/…` when
    /// listing `…/default`).
    fn list_dir<'a>(
        &'a self,
        dir: &'a Location,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>> {
        Box::pin(async move {
            let mut objects = self.list(dir).await?;
            objects.retain(|object| object.location.is_under(dir));
            Ok(objects)
        })
    }
}

/// Open the store serving `dir`'s scheme. `s3` is used for S3 locations only.
pub async fn open(dir: &Location, s3: &S3Options) -> Result<Arc<dyn ObjectStore>, StorageError> {
    match dir {
        Location::File { .. } => Ok(Arc::new(FileStore::new())),
        Location::S3 { .. } => Ok(Arc::new(S3Store::new(s3).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(scheme: &str, bucket: &str, key: &str) -> Location {
        Location::S3 {
            scheme: scheme.into(),
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn file(path: &str) -> Location {
        Location::File { path: path.into() }
    }

    fn parse(url: &str) -> Location {
        Location::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"))
    }

    fn rejected(url: &str) -> String {
        match Location::parse(url) {
            Err(StorageError::InvalidLocation { url: u, reason }) => {
                assert_eq!(u, url);
                reason
            }
            other => panic!("{url}: expected InvalidLocation, got {other:?}"),
        }
    }

    #[test]
    fn parses_s3_schemes_as_written() {
        assert_eq!(parse("s3://rta/flink/ha"), s3("s3", "rta", "flink/ha"));
        assert_eq!(parse("s3a://rta/flink/ha"), s3("s3a", "rta", "flink/ha"));
        assert_eq!(parse("s3p://rta/flink/ha"), s3("s3p", "rta", "flink/ha"));
        assert_eq!(parse("S3://rta/x"), s3("S3", "rta", "x"));
        assert_eq!(parse("s3a://rta/x").to_string(), "s3a://rta/x");
    }

    #[test]
    fn s3_normalisation() {
        assert_eq!(parse("s3://b"), s3("s3", "b", ""));
        assert_eq!(parse("s3://b/"), s3("s3", "b", ""));
        assert_eq!(parse("s3://b//a///c/"), s3("s3", "b", "a/c"));
        assert_eq!(parse("s3://my.bucket-1/k"), s3("s3", "my.bucket-1", "k"));
    }

    #[test]
    fn parses_file_forms() {
        assert_eq!(parse("file:///var/ha"), file("/var/ha"));
        assert_eq!(parse("file:/var/ha"), file("/var/ha"));
        assert_eq!(parse("file://localhost/var/ha"), file("/var/ha"));
        assert_eq!(parse("file:////var//ha/"), file("/var/ha"));
        assert_eq!(parse("file:///"), file("/"));
        assert_eq!(parse("file:/"), file("/"));
    }

    #[test]
    fn file_displays_as_flink_does() {
        assert_eq!(parse("file:///var/ha/x").to_string(), "file:/var/ha/x");
        assert_eq!(parse("file:/var/ha/x").to_string(), "file:/var/ha/x");
        assert_eq!(file("/").to_string(), "file:/");
    }

    #[test]
    fn spaces_and_unicode() {
        let location = parse("s3://b/my dir/ключ ü 😀");
        assert_eq!(location, s3("s3", "b", "my dir/ключ ü 😀"));
        assert_eq!(location.file_name(), "ключ ü 😀");
        assert_eq!(parse("file:///a b/ç"), file("/a b/ç"));
    }

    #[test]
    fn round_trips() {
        for url in [
            "s3://b",
            "s3://b/k",
            "s3a://b/a/b/c",
            "s3p://b/x y",
            "file:/",
            "file:/a",
            "file:/a/b c/d",
            "file:/a/ünï",
        ] {
            let location = parse(url);
            assert_eq!(location.to_string(), url);
            assert_eq!(parse(&location.to_string()), location);
            assert_eq!(url.parse::<Location>().unwrap(), location);
        }
        for location in [
            s3("s3", "b", ""),
            s3("s3a", "b", "x"),
            file("/"),
            file("/x/y"),
        ] {
            assert_eq!(parse(&location.to_string()), location);
        }
    }

    #[test]
    fn rejects() {
        for url in [
            "",
            "/var/ha",
            "var/ha",
            "file:var/ha",
            "file:./var",
            "file://host/var/ha",
            "file://localhost",
            "file:///var/../etc",
            "file:///var/./ha",
            "s3://b/a/../c",
            "s3://b/./c",
            "s3:///key",
            "s3://",
            "s3:/b/k",
            "s3:b/k",
            "s3://b/k?versionId=1",
            "s3://b/k#frag",
            "file:///a%20b",
            "s3://b/a%2Fb",
            "s3://user@b/k",
            "s3://b:9000/k",
            "s3://b/a\\b",
            "s3://b/a\nb",
            "hdfs://nn/ha",
            "gs://b/k",
            ":/x",
        ] {
            let _ = rejected(url);
        }
        assert!(rejected("s3://b/k?x").contains("query"));
        assert!(rejected("file:///a%20b").contains("percent"));
        assert!(rejected("file:tmp").contains("relative"));
        assert!(rejected("s3:///k").contains("bucket"));
    }

    #[test]
    fn join() {
        let dir = parse("s3://b/flink/ha");
        assert_eq!(dir.join("default"), s3("s3", "b", "flink/ha/default"));
        assert_eq!(
            dir.join("cluster/blob/key"),
            s3("s3", "b", "flink/ha/cluster/blob/key")
        );
        assert_eq!(dir.join("/x//y/"), s3("s3", "b", "flink/ha/x/y"));
        assert_eq!(dir.join(""), dir);
        assert_eq!(parse("s3a://b").join("k"), s3("s3a", "b", "k"));
        assert_eq!(parse("file:///").join("a/b"), file("/a/b"));
        assert_eq!(parse("file:///var/ha").join("x y"), file("/var/ha/x y"));
        assert!(dir.try_join("..").is_err());
        assert!(dir.try_join("a/./b").is_err());
        assert!(dir.try_join("a%b").is_err());
        assert!(dir.try_join("a?b").is_err());
    }

    #[test]
    #[should_panic(expected = "Location::join")]
    fn join_panics_on_dot_dot() {
        let _ = parse("file:///var/ha").join("../etc");
    }

    #[test]
    fn is_under() {
        let dir = parse("s3://b/ha/default");
        assert!(parse("s3://b/ha/default/x").is_under(&dir));
        assert!(parse("s3a://b/ha/default/x/y").is_under(&dir));
        assert!(!parse("s3://b/ha/default").is_under(&dir));
        assert!(!parse("s3://b/ha/default-2/x").is_under(&dir));
        assert!(!parse("s3://b/ha/defaultx").is_under(&dir));
        assert!(!parse("s3://c/ha/default/x").is_under(&dir));
        assert!(!parse("file:///ha/default/x").is_under(&dir));
        assert!(parse("s3://b/x").is_under(&parse("s3://b")));
        assert!(!parse("s3://b").is_under(&parse("s3://b")));
        let dir = parse("file:///var/ha");
        assert!(parse("file:///var/ha/x").is_under(&dir));
        assert!(!parse("file:///var/ha").is_under(&dir));
        assert!(!parse("file:///var/hax").is_under(&dir));
        assert!(parse("file:///var").is_under(&parse("file:///")));
        assert!(!parse("file:///").is_under(&parse("file:///")));
    }

    #[test]
    fn file_name() {
        assert_eq!(parse("s3://b/a/b/c").file_name(), "c");
        assert_eq!(parse("s3://b/c").file_name(), "c");
        assert_eq!(parse("s3://b").file_name(), "");
        assert_eq!(parse("file:///a/b").file_name(), "b");
        assert_eq!(parse("file:///").file_name(), "");
    }

    #[test]
    fn normal_form_check() {
        assert!(is_normal("a/b c", false));
        assert!(is_normal("", false));
        assert!(!is_normal("a//b", false));
        assert!(!is_normal("a/", false));
        assert!(!is_normal("a/../b", false));
        assert!(!is_normal("a%20b", false));
        assert!(is_normal("/a/b", true));
        assert!(is_normal("/", true));
        assert!(!is_normal("a/b", true));
        assert!(!is_normal("/a/", true));
    }

    #[test]
    fn errors_display() {
        let err = StorageError::TooLarge {
            location: "s3://b/k".into(),
            size: 10,
            limit: 5,
        };
        assert_eq!(
            err.to_string(),
            "s3://b/k: object is 10 bytes, more than the 5 allowed"
        );
    }
}
