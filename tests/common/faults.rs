//! Failure injection at the two edges the stores talk to: a Kubernetes client whose
//! ConfigMap writes can be lost, answered falsely or frozen, and an object store whose
//! puts and deletes can fail or freeze. A "crash" freezes the operation at that step and
//! signals the test, which then drops the operation's task, as a killed process would
//! stop there: nothing after that step runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use hakeeper::apiserver::DevServer;
use hakeeper::storage::{Location, ObjectMeta, ObjectStore, StorageError};
use tokio::sync::Notify;

/// What happens to one intercepted request or storage call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Performed normally (to let earlier calls through before a later fault).
    Pass,
    /// Not sent; the caller gets a transport error (outcome unknown to it, nothing landed).
    Drop,
    /// Sent and applied; the caller gets a transport error instead of the answer.
    LoseAnswer,
    /// Freeze before sending (the process dies with the call not made).
    CrashBefore,
    /// Send, let it apply, then freeze (the process dies right after the call landed).
    CrashAfter,
    /// Not sent; the caller gets a definite refusal (storage: a non-retryable error).
    Refuse,
    /// Storage only: not performed; the backend is unreachable.
    Unavailable,
}

/// A queue of faults for the next matching calls, and the crash signal.
#[derive(Clone, Default)]
pub struct FaultPlan {
    queue: Arc<Mutex<VecDeque<Fault>>>,
    /// Every matching call fails as `Drop` while set (a dead API server or bucket).
    down: Arc<std::sync::atomic::AtomicBool>,
    /// API client only: every request but ConfigMap writes fails as `Drop` while set.
    reads_down: Arc<std::sync::atomic::AtomicBool>,
    pub crashed: Arc<Notify>,
}

impl FaultPlan {
    pub fn push(&self, fault: Fault) {
        self.queue.lock().unwrap().push_back(fault);
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_reads_down(&self, down: bool) {
        self.reads_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn next(&self) -> Option<Fault> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(Fault::Drop);
        }
        self.queue.lock().unwrap().pop_front()
    }

    pub fn pending(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    async fn crash(&self) -> ! {
        self.crashed.notify_one();
        futures::future::pending::<()>().await;
        unreachable!()
    }
}

/// A client whose ConfigMap PUTs (and, while the plan is down, every request) follow `plan`.
pub async fn faulty_client(server: &DevServer, plan: FaultPlan) -> kube::Client {
    let config = server.kube_config().await.expect("config");
    let layer = tower::layer::layer_fn(move |service| FaultyService {
        inner: tower::buffer::Buffer::new(service, 1024),
        plan: plan.clone(),
    });
    kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&layer)
        .build()
}

#[derive(Clone)]
pub struct FaultyService<S> {
    inner: S,
    plan: FaultPlan,
}

impl<S, B> tower::Service<http::Request<kube::client::Body>> for FaultyService<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError> + Send,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, tower::BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        use tower::ServiceExt;
        let inner = self.inner.clone();
        let plan = self.plan.clone();
        let is_write =
            req.method() == http::Method::PUT && req.uri().path().contains("/configmaps/");
        let down = plan.down.load(std::sync::atomic::Ordering::SeqCst);
        let reads_down = plan.reads_down.load(std::sync::atomic::Ordering::SeqCst);
        let fault = if is_write || down {
            plan.next()
        } else if reads_down {
            Some(Fault::Drop)
        } else {
            None
        };
        Box::pin(async move {
            match fault {
                None | Some(Fault::Pass) => inner.oneshot(req).await.map_err(Into::into),
                Some(Fault::Drop | Fault::Unavailable) => Err(tower::BoxError::from(
                    "injected: connection reset before sending",
                )),
                Some(Fault::Refuse) => Err(tower::BoxError::from("injected: refused")),
                Some(Fault::LoseAnswer) => {
                    let _ = inner.oneshot(req).await;
                    Err(tower::BoxError::from(
                        "injected: connection reset before the answer",
                    ))
                }
                Some(Fault::CrashBefore) => plan.crash().await,
                Some(Fault::CrashAfter) => {
                    let _ = inner.oneshot(req).await;
                    plan.crash().await
                }
            }
        })
    }
}

/// An object store whose puts and deletes follow their own plans.
pub struct FaultyStore {
    pub inner: Arc<dyn ObjectStore>,
    pub puts: FaultPlan,
    pub deletes: FaultPlan,
    /// Reads: `Refuse` and `Unavailable` only.
    pub gets: FaultPlan,
}

impl FaultyStore {
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            puts: FaultPlan::default(),
            deletes: FaultPlan::default(),
            gets: FaultPlan::default(),
        })
    }
}

fn unavailable(location: &Location) -> StorageError {
    StorageError::Unavailable {
        location: location.to_string(),
        message: "injected: connection refused".into(),
    }
}

fn refused(location: &Location) -> StorageError {
    StorageError::Rejected {
        location: location.to_string(),
        message: "injected: access denied".into(),
    }
}

impl ObjectStore for FaultyStore {
    fn put_new<'a>(
        &'a self,
        location: &'a Location,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            match self.puts.next() {
                None | Some(Fault::Pass) => self.inner.put_new(location, body).await,
                Some(Fault::Drop | Fault::Unavailable) => Err(unavailable(location)),
                Some(Fault::Refuse) => Err(refused(location)),
                Some(Fault::LoseAnswer) => {
                    let _ = self.inner.put_new(location, body).await;
                    Err(unavailable(location))
                }
                Some(Fault::CrashBefore) => self.puts.crash().await,
                Some(Fault::CrashAfter) => {
                    let _ = self.inner.put_new(location, body).await;
                    self.puts.crash().await
                }
            }
        })
    }

    fn get<'a>(
        &'a self,
        location: &'a Location,
        limit: u64,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            match self.gets.next() {
                Some(Fault::Refuse) => Err(refused(location)),
                Some(Fault::Unavailable | Fault::Drop) => Err(unavailable(location)),
                _ => self.inner.get(location, limit).await,
            }
        })
    }

    fn size<'a>(
        &'a self,
        location: &'a Location,
    ) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        self.inner.size(location)
    }

    fn delete<'a>(&'a self, location: &'a Location) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            match self.deletes.next() {
                None | Some(Fault::Pass) => self.inner.delete(location).await,
                Some(Fault::Drop | Fault::Unavailable) => Err(unavailable(location)),
                Some(Fault::Refuse) => Err(refused(location)),
                Some(Fault::LoseAnswer) => {
                    let _ = self.inner.delete(location).await;
                    Err(unavailable(location))
                }
                Some(Fault::CrashBefore) => self.deletes.crash().await,
                Some(Fault::CrashAfter) => {
                    let _ = self.inner.delete(location).await;
                    self.deletes.crash().await
                }
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a Location,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>> {
        self.inner.list(prefix)
    }

    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
}
