//! `s3:`, `s3a:` and `s3p:` locations, through the AWS SDK: AWS S3 or any S3-compatible
//! server (MinIO, Ceph RGW, ...).
//!
//! - Credentials: static keys from [`S3Options`] when both are given, otherwise the SDK's
//!   default chain (environment, web identity / IRSA, EKS pod identity and container
//!   credentials, profiles with static keys, role assumption or `credential_process`,
//!   IMDS). SSO profiles are not supported (aws-config is built without `sso`).
//! - TLS: rustls with ring (the project's one crypto provider) and the system's trusted
//!   roots.
//! - Checksums only where an operation requires them, which every S3 server accepts.
//! - The SDK's standard retry mode ([`MAX_ATTEMPTS`] attempts with jittered exponential
//!   backoff on throttling, 5xx and connection errors), a connect timeout and per-attempt
//!   and per-operation timeouts, and the SDK's stalled-stream protection on bodies.
//! - `put_new` sends `If-None-Match: *`. A server that answers 501 Not Implemented to it
//!   is remembered, and from then on this store checks with HEAD before an unconditional
//!   PUT (not atomic: two writers racing for one name could both succeed; payload names
//!   are unique, so this only matters for misuse). A server that silently ignores the
//!   header cannot be detected and overwrites.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;

use super::{Location, ObjectMeta, ObjectStore, StorageError, is_normal};

/// Attempts per request (the first one included).
const MAX_ATTEMPTS: u32 = 5;
/// First retry backoff (jittered, doubling up to [`MAX_BACKOFF`]).
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt, until the response headers.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// A whole operation, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The region used when none is configured or found (S3-compatible servers mostly ignore it).
const FALLBACK_REGION: &str = "us-east-1";

/// How to reach S3. All optional: the defaults suit AWS with the default credential chain.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible server (`http://minio:9000`); AWS when unset
    /// (or `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`).
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket/key` rather than `bucket.endpoint/key`
    /// (needed by most S3-compatible servers).
    pub path_style: bool,
    /// The region; otherwise `AWS_REGION`, the profile, (on AWS only) IMDS, or `us-east-1`.
    pub region: Option<String>,
    /// Static access key, used with `secret_key` (both or neither).
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Serves every `s3:`/`s3a:`/`s3p:` location (any bucket the credentials reach).
pub struct S3Store {
    client: aws_sdk_s3::Client,
    description: String,
    page_size: Option<i32>,
    /// The server answered 501 Not Implemented to `If-None-Match: *`.
    no_conditional_put: AtomicBool,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("description", &self.description)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store configured from `options` and the environment. Makes no request to S3;
    /// it may read the AWS config files, and without a configured region or endpoint
    /// the default region chain may ask IMDS.
    pub async fn new(options: &S3Options) -> Result<S3Store, StorageError> {
        let static_keys = match (&options.access_key, &options.secret_key) {
            (Some(access), Some(secret)) => Some(Credentials::new(
                access,
                secret,
                None,
                None,
                "hakeeper-static",
            )),
            (None, None) => None,
            _ => {
                return Err(StorageError::Rejected {
                    location: "s3 options".to_string(),
                    message: "the S3 access key and secret key must be given together".to_string(),
                });
            }
        };

        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF)
                    .with_max_backoff(MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        match (&options.region, &options.endpoint) {
            (Some(region), _) => loader = loader.region(Region::new(region.clone())),
            // Not AWS: IMDS would only waste time (or not be there).
            (None, Some(_)) => {
                loader = loader.region(
                    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                        .or_else(ProfileFileRegionProvider::new())
                        .or_else(Region::from_static(FALLBACK_REGION)),
                )
            }
            (None, None) => {}
        }
        if let Some(credentials) = static_keys {
            loader = loader.credentials_provider(credentials);
        }
        let sdk_config = loader.load().await;

        let mut config = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(options.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk_config.region().is_none() {
            config = config.region(Region::from_static(FALLBACK_REGION));
        }
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let config = config.build();

        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let mut description = match &options.endpoint {
            Some(endpoint) => format!("s3 (endpoint {endpoint}, region {region}"),
            None => format!("s3 (region {region}"),
        };
        if options.path_style {
            description.push_str(", path-style");
        }
        description.push_str(if options.access_key.is_some() {
            ", static keys)"
        } else {
            ", default credential chain)"
        });
        tracing::debug!(store = %description, "S3 store configured");

        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(config),
            description,
            page_size: None,
            no_conditional_put: AtomicBool::new(false),
        })
    }

    /// List at most `page_size` keys per request (S3's default and maximum is 1000);
    /// for tests of paging.
    pub fn with_page_size(mut self, page_size: i32) -> S3Store {
        self.page_size = Some(page_size.clamp(1, 1000));
        self
    }

    /// The underlying client, for what this module does not cover (tests, diagnostics).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// (bucket, key) of `location`; with `object`, the key must name an object.
    fn target<'a>(
        &self,
        location: &'a Location,
        object: bool,
    ) -> Result<(&'a str, &'a str), StorageError> {
        match location {
            Location::S3 { bucket, key, .. } => {
                if object && key.is_empty() {
                    return Err(StorageError::Rejected {
                        location: location.to_string(),
                        message: "a bucket is not an object: the location needs a key".to_string(),
                    });
                }
                Ok((bucket, key))
            }
            Location::File { .. } => Err(StorageError::WrongStore {
                location: location.to_string(),
                store: self.describe(),
            }),
        }
    }

    async fn put_conditional(
        &self,
        location: &Location,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> Result<(), StorageError> {
        // 409 ConditionalRequestConflict: another conditional write to the same key was
        // in flight; S3 says to retry.
        let mut conflicts = 0;
        loop {
            let result = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("application/octet-stream")
                .if_none_match("*")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            match service_status(&err) {
                Some((412, _)) => {
                    return Err(StorageError::AlreadyExists {
                        location: location.to_string(),
                    });
                }
                Some((501, _)) => {
                    tracing::warn!(
                        store = %self.description,
                        "the S3 server does not support conditional writes (If-None-Match): \
                         checking for existing objects with HEAD instead, which is not atomic"
                    );
                    self.no_conditional_put.store(true, Ordering::Relaxed);
                    return self.put_checked(location, bucket, key, body).await;
                }
                Some((409, code)) if code == "ConditionalRequestConflict" && conflicts < 3 => {
                    conflicts += 1;
                    tracing::debug!(%location, "conditional write conflict; retrying");
                    tokio::time::sleep(INITIAL_BACKOFF * conflicts).await;
                }
                _ => return Err(map_error(location, err)),
            }
        }
    }

    /// For servers without conditional writes: HEAD, then PUT if nothing was there.
    async fn put_checked(
        &self,
        location: &Location,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> Result<(), StorageError> {
        if self.head(location, bucket, key).await?.is_some() {
            return Err(StorageError::AlreadyExists {
                location: location.to_string(),
            });
        }
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| map_error(location, err))?;
        Ok(())
    }

    async fn head(
        &self,
        location: &Location,
        bucket: &str,
        key: &str,
    ) -> Result<Option<u64>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(err) => match map_error(location, err) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get_limited(
        &self,
        location: &Location,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<Bytes, StorageError> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| map_error(location, err))?;
        let length = output.content_length().map(|n| n.max(0) as u64);
        if let Some(size) = length
            && size > limit
        {
            // Dropping the body closes the connection without reading it.
            return Err(StorageError::TooLarge {
                location: location.to_string(),
                size,
                limit,
            });
        }
        let capacity = usize::try_from(length.unwrap_or(0).min(limit)).unwrap_or(0);
        let mut buf = BytesMut::with_capacity(capacity);
        let mut body = output.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| StorageError::Unavailable {
                location: location.to_string(),
                message: format!("reading the object: {}", error_chain(&err)),
            })?;
            let size = (buf.len() + chunk.len()) as u64;
            if size > limit {
                return Err(StorageError::TooLarge {
                    location: location.to_string(),
                    size: length.unwrap_or(size).max(size),
                    limit,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        if let Some(expected) = length
            && expected != buf.len() as u64
        {
            return Err(StorageError::Unavailable {
                location: location.to_string(),
                message: format!(
                    "the object body ended after {} of {expected} bytes",
                    buf.len()
                ),
            });
        }
        Ok(buf.freeze())
    }

    async fn list_all(
        &self,
        prefix: &Location,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<ObjectMeta>, StorageError> {
        let Location::S3 { scheme, .. } = prefix else {
            unreachable!("target() accepted only S3 locations");
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0usize;
        loop {
            let mut request = self.client.list_objects_v2().bucket(bucket);
            if !key.is_empty() {
                request = request.prefix(key);
            }
            if let Some(page_size) = self.page_size {
                request = request.max_keys(page_size);
            }
            if let Some(token) = &token {
                request = request.continuation_token(token);
            }
            let page = request.send().await.map_err(|err| map_error(prefix, err))?;
            pages += 1;
            for object in page.contents() {
                let Some(name) = object.key() else { continue };
                if !name.starts_with(key) {
                    continue;
                }
                if !is_normal(name, false) {
                    tracing::debug!(
                        bucket,
                        key = name,
                        "skipping a key that a location cannot hold"
                    );
                    continue;
                }
                out.push(ObjectMeta {
                    location: Location::S3 {
                        scheme: scheme.clone(),
                        bucket: bucket.to_string(),
                        key: name.to_string(),
                    },
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified: object
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                });
            }
            let next = match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => next.to_string(),
                _ => break,
            };
            if token.as_deref() == Some(next.as_str()) {
                return Err(StorageError::Unavailable {
                    location: prefix.to_string(),
                    message: "the server returned the same continuation token twice".to_string(),
                });
            }
            token = Some(next);
        }
        out.sort_by(|a, b| a.location.cmp(&b.location));
        tracing::debug!(%prefix, objects = out.len(), pages, "listed");
        Ok(out)
    }
}

/// HTTP status and error code of a service (or unparsable) response.
fn service_status<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<(u16, String)> {
    match err {
        SdkError::ServiceError(ctx) => Some((
            ctx.raw().status().as_u16(),
            ctx.err().code().unwrap_or_default().to_string(),
        )),
        SdkError::ResponseError(ctx) => Some((ctx.raw().status().as_u16(), String::new())),
        _ => None,
    }
}

/// `err: source: source…`, each cause once.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Codes that mean "slow down" or "try again", whatever the status.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "BandwidthLimitExceeded"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "InternalError"
            | "ServiceUnavailable"
    )
}

/// 404/NoSuchKey → NotFound; NoSuchBucket, 403 and other 4xx → Rejected; 5xx,
/// throttling, timeouts and connection failures (after the SDK's retries) → Unavailable.
fn map_error<E>(
    location: &Location,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let location = location.to_string();
    match service_status(&err) {
        Some((status, code)) => {
            let message = match err.message() {
                Some(message) if !message.is_empty() => {
                    format!("HTTP {status} {code}: {message}")
                }
                _ if code.is_empty() => format!("HTTP {status}"),
                _ => format!("HTTP {status} {code}"),
            };
            tracing::debug!(%location, status, code, "S3 error response");
            if code == "NoSuchBucket" {
                StorageError::Rejected { location, message }
            } else if status == 404 || code == "NoSuchKey" {
                StorageError::NotFound { location }
            } else if status >= 500 || status == 408 || status == 429 || is_transient_code(&code) {
                StorageError::Unavailable { location, message }
            } else {
                StorageError::Rejected { location, message }
            }
        }
        None => {
            let message = error_chain(&err);
            tracing::debug!(%location, error = %message, "S3 request failed");
            // Connection failures and timeouts, and failures to build the request
            // (mostly credentials that could not be fetched, often transient).
            StorageError::Unavailable { location, message }
        }
    }
}

impl ObjectStore for S3Store {
    fn put_new<'a>(
        &'a self,
        location: &'a Location,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let (bucket, key) = self.target(location, true)?;
            let size = body.len();
            if self.no_conditional_put.load(Ordering::Relaxed) {
                self.put_checked(location, bucket, key, body).await?;
            } else {
                self.put_conditional(location, bucket, key, body).await?;
            }
            tracing::debug!(%location, size, "stored");
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        location: &'a Location,
        limit: u64,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let (bucket, key) = self.target(location, true)?;
            self.get_limited(location, bucket, key, limit).await
        })
    }

    fn size<'a>(
        &'a self,
        location: &'a Location,
    ) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        Box::pin(async move {
            let (bucket, key) = self.target(location, true)?;
            self.head(location, bucket, key).await
        })
    }

    fn delete<'a>(&'a self, location: &'a Location) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let (bucket, key) = self.target(location, true)?;
            match self
                .client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => {
                    tracing::debug!(%location, "deleted");
                    Ok(())
                }
                Err(err) => match map_error(location, err) {
                    StorageError::NotFound { .. } => Ok(()),
                    other => Err(other),
                },
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a Location,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>> {
        Box::pin(async move {
            let (bucket, key) = self.target(prefix, false)?;
            self.list_all(prefix, bucket, key).await
        })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret_key() {
        let options = S3Options {
            endpoint: Some("http://minio:9000".into()),
            path_style: true,
            region: None,
            access_key: Some("AKIDEXAMPLE".into()),
            secret_key: Some("wJalrXUtnFEMI/K7MDENG".into()),
        };
        let debug = format!("{options:?}");
        assert!(debug.contains("AKIDEXAMPLE"));
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("wJalrXUtnFEMI"));
    }

    #[tokio::test]
    async fn one_key_without_the_other_is_refused() {
        let options = S3Options {
            access_key: Some("a".into()),
            ..Default::default()
        };
        assert!(matches!(
            S3Store::new(&options).await,
            Err(StorageError::Rejected { .. })
        ));
    }

    #[tokio::test]
    async fn describes_itself_without_secrets() {
        let options = S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            path_style: true,
            region: Some("eu-west-1".into()),
            access_key: Some("a".into()),
            secret_key: Some("very-secret".into()),
        };
        let store = S3Store::new(&options).await.unwrap();
        let description = store.describe();
        assert_eq!(
            description,
            "s3 (endpoint http://127.0.0.1:9, region eu-west-1, path-style, static keys)"
        );
        assert!(!format!("{store:?}").contains("very-secret"));
        let file = Location::parse("file:///x").unwrap();
        assert!(matches!(
            store.size(&file).await,
            Err(StorageError::WrongStore { .. })
        ));
    }
}
