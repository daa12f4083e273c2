//! An S3 server for tests: s3s-fs (objects as files in a temporary directory), in process
//! on 127.0.0.1, with SigV4 authentication against fixed test keys.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use futures::future::BoxFuture;
use hakeeper::storage::{Location, S3Options};
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::service::{S3Service, S3ServiceBuilder};

pub const ACCESS_KEY: &str = "hakeeper-test";
pub const SECRET_KEY: &str = "hakeeper-test-secret-0123456789";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "hakeeper-test";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub addr: SocketAddr,
    list_requests: Arc<AtomicUsize>,
    deletes_left: Arc<AtomicI64>,
    root: tempfile::TempDir,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How the server departs from s3s-fs's behaviour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    /// Answer 501 Not Implemented to any request with `If-None-Match`, as S3 servers
    /// without conditional writes do.
    pub no_conditional_writes: bool,
}

impl S3Server {
    pub async fn start() -> S3Server {
        Self::start_with(Quirks::default()).await
    }

    pub async fn start_with(quirks: Quirks) -> S3Server {
        let root = tempfile::tempdir().expect("temporary directory for the S3 server");
        std::fs::create_dir(root.path().join(BUCKET)).expect("creating the test bucket");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let list_requests = Arc::new(AtomicUsize::new(0));
        let deletes_left = Arc::new(AtomicI64::new(i64::MAX));
        let service = Quirky {
            inner: builder.build(),
            quirks,
            list_requests: list_requests.clone(),
            deletes_left: deletes_left.clone(),
        };

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the S3 server");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Dropped (so aborting every connection) when this task is aborted.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        connections.spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        S3Server {
            endpoint: format!("http://{addr}"),
            bucket: BUCKET.to_string(),
            access_key: ACCESS_KEY.to_string(),
            secret_key: SECRET_KEY.to_string(),
            addr,
            list_requests,
            deletes_left,
            root,
            task: Some(task),
        }
    }

    /// Options reaching this server (path-style, static keys, fixed region).
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            path_style: true,
            region: Some(REGION.to_string()),
            access_key: Some(self.access_key.clone()),
            secret_key: Some(self.secret_key.clone()),
        }
    }

    /// `s3://BUCKET/prefix`.
    pub fn storage_dir(&self, prefix: &str) -> Location {
        Location::parse(&format!("s3://{}/{prefix}", self.bucket)).expect("storage dir")
    }

    /// How many ListObjectsV2 requests (pages) the server has answered.
    pub fn list_requests(&self) -> usize {
        self.list_requests.load(Ordering::SeqCst)
    }

    /// Allow `n` more DELETE requests, then refuse every other with 403 AccessDenied (a
    /// storage that fails in the middle of a cleanup); `i64::MAX`, as at the start: no limit.
    pub fn allow_deletes(&self, n: i64) {
        self.deletes_left.store(n, Ordering::SeqCst);
    }

    /// Where s3s-fs keeps the objects (`root/bucket/key`).
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Clone)]
struct Quirky {
    inner: S3Service,
    quirks: Quirks,
    list_requests: Arc<AtomicUsize>,
    deletes_left: Arc<AtomicI64>,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Quirky {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<s3s::HttpResponse, s3s::HttpError>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        if req.method() == http::Method::GET
            && req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "list-type=2"))
        {
            self.list_requests.fetch_add(1, Ordering::SeqCst);
        }
        if self.quirks.no_conditional_writes && req.headers().contains_key("if-none-match") {
            return error(
                501,
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
            );
        }
        if req.method() == http::Method::DELETE
            && self.deletes_left.fetch_sub(1, Ordering::SeqCst) <= 0
        {
            return error(403, "AccessDenied", "Access Denied");
        }
        hyper::service::Service::call(&self.inner, req)
    }
}

/// An S3 error response.
fn error(
    status: u16,
    code: &str,
    message: &str,
) -> BoxFuture<'static, Result<s3s::HttpResponse, s3s::HttpError>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let response = http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body))
        .expect("response");
    Box::pin(async move { Ok(response) })
}
