//! The stores in the sidecar's local API. Payloads are raw request and response bodies.
//! Leader-only calls need `Hakeeper-Session: <sessionId>` matching the owning component's
//! current grant; reads need nothing.
//!
//! | Route | Owner |
//! |---|---|
//! | `PUT/GET/DELETE /v1/jobs/{job}/graph`, `GET /v1/jobs`, `PUT/GET /v1/jobs/{job}/status` | dispatcher |
//! | `POST/GET/DELETE /v1/jobs/{job}/checkpoints/{id}`, `GET …/checkpoints`, `GET …/checkpoints/latest` | `jobmanager/{job}` |
//! | `POST …/checkpoint-counter/increment`, `GET/PUT …/checkpoint-counter` | `jobmanager/{job}` |
//! | `PUT/GET/DELETE /v1/blobs/{key}` | dispatcher (writes) |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, Sidecar, StoreSettings};
use crate::election::Fence;
use crate::layout::{Component, JobId};
use crate::stores::plan::{JobStatus, MAX_CHECKPOINT_ID};
use crate::stores::{Blobs, Checkpoints, ConfigMapReader, JobGraphs, StoreError};

pub const SESSION_HEADER: &str = "hakeeper-session";
pub const CHECKPOINT_ID_HEADER: &str = "hakeeper-checkpoint-id";
pub const SKIPPED_HEADER: &str = "hakeeper-skipped-checkpoints";

pub(super) fn routes(body_limit: usize) -> Router<Sidecar> {
    Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route(
            "/v1/jobs/{job}/graph",
            put(put_graph).get(get_graph).delete(delete_graph),
        )
        .route("/v1/jobs/{job}/status", put(put_status).get(get_status))
        .route("/v1/jobs/{job}/checkpoints", get(list_checkpoints))
        .route("/v1/jobs/{job}/checkpoints/latest", get(latest_checkpoint))
        .route(
            "/v1/jobs/{job}/checkpoints/{id}",
            post(add_checkpoint)
                .get(get_checkpoint)
                .delete(delete_checkpoint),
        )
        .route(
            "/v1/jobs/{job}/checkpoint-counter",
            get(get_counter).put(set_counter),
        )
        .route(
            "/v1/jobs/{job}/checkpoint-counter/increment",
            post(increment_counter),
        )
        .route(
            "/v1/blobs/{*key}",
            put(put_blob).get(get_blob).delete(delete_blob),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(json_payload_too_large))
}

/// The body limit's rejection is plain text; answer it in the API's error format.
async fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        "the request body is larger than --max-payload-bytes allows",
    )
    .into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Fence(f) => match f {
                crate::election::FenceError::Indeterminate { .. }
                | crate::election::FenceError::Api(_)
                | crate::election::FenceError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::CONFLICT,
            },
            StoreError::AlreadyExists { .. } | StoreError::OutOfOrder { .. } => {
                StatusCode::CONFLICT
            }
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Storage(crate::storage::StorageError::NotFound { .. }) => {
                StatusCode::NOT_FOUND
            }
            StoreError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
            StoreError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            StoreError::StorageUnavailable(_)
            | StoreError::OutcomeUnknown { .. }
            | StoreError::Api(_)
            | StoreError::ApiTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Storage(_) => StatusCode::BAD_GATEWAY,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::CorruptHandle { .. }
            | StoreError::BadPayload { .. }
            | StoreError::BadValue { .. }
            | StoreError::NoRecoverableCheckpoint(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.kind(), e.to_string())
    }
}

/// Run one store operation, recording its latency and, if it fails, its error kind.
async fn timed<T>(
    operation: &'static str,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = work.await;
    crate::metrics::observe_store(
        operation,
        started,
        result.as_ref().err().map(StoreError::kind),
    );
    result
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
}

fn parse_job(raw: &str) -> Result<JobId, ApiError> {
    raw.parse().map_err(bad_request)
}

fn parse_checkpoint_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .ok()
        .filter(|id| *id <= MAX_CHECKPOINT_ID)
        .ok_or_else(|| {
            bad_request(format!(
                "checkpoint id {raw:?} is not an integer from 0 to {MAX_CHECKPOINT_ID}"
            ))
        })
}

impl Sidecar {
    fn store_settings(&self) -> Result<&StoreSettings, ApiError> {
        self.inner.config.stores.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StorageNotConfigured",
                "this sidecar was started without --storage-dir",
            )
        })
    }

    fn reader(&self, component: &Component) -> ConfigMapReader {
        let c = &self.inner.config;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
        ConfigMapReader::new(api, component.configmap_name(&c.cluster_id))
    }

    fn job_graphs(&self) -> Result<JobGraphs, ApiError> {
        let s = self.store_settings()?;
        Ok(JobGraphs::new(
            self.reader(&Component::Dispatcher),
            s.payloads.clone(),
        ))
    }

    fn checkpoints(&self, job: &JobId) -> Result<Checkpoints, ApiError> {
        let s = self.store_settings()?;
        let component = Component::JobManager(job.clone());
        Ok(Checkpoints::new(
            self.reader(&component),
            s.payloads.clone(),
            s.checkpoints_retained,
        ))
    }

    fn blobs(&self) -> Result<Blobs, ApiError> {
        Ok(Blobs::new(self.store_settings()?.payloads.clone()))
    }

    /// The owning component's fence and the caller's session, or the 409 that says why the
    /// caller may not write.
    fn leader_fence(
        &self,
        owner: &Component,
        headers: &HeaderMap,
    ) -> Result<(Fence, Uuid), ApiError> {
        let not_leader = || {
            ApiError::new(
                StatusCode::CONFLICT,
                "NotLeader",
                format!("this sidecar does not lead {owner}"),
            )
        };
        let fence = self.fence(owner).ok_or_else(not_leader)?;
        fence
            .check(None)
            .map_err(|e| ApiError::from(StoreError::from(e)))?;
        let stale = |why: String| ApiError::new(StatusCode::CONFLICT, "StaleSession", why);
        let raw = headers.get(SESSION_HEADER).ok_or_else(|| {
            stale(format!(
                "a write to {owner} needs the Hakeeper-Session header"
            ))
        })?;
        let session = raw
            .to_str()
            .ok()
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
            .ok_or_else(|| stale("the Hakeeper-Session header is not a UUID".to_string()))?;
        fence
            .check(Some(session))
            .map_err(|e| ApiError::from(StoreError::from(e)))?;
        Ok((fence, session))
    }
}

/// A leader-only call on a job's checkpoints: the store, the fence of `jobmanager/{job}` and
/// the caller's session.
struct CheckpointWriter {
    store: Checkpoints,
    fence: Fence,
    session: Option<Uuid>,
}

impl Sidecar {
    fn checkpoint_writer(
        &self,
        job: &JobId,
        headers: &HeaderMap,
    ) -> Result<CheckpointWriter, ApiError> {
        let owner = Component::JobManager(job.clone());
        let (fence, session) = self.leader_fence(&owner, headers)?;
        Ok(CheckpointWriter {
            store: self.checkpoints(job)?,
            fence,
            session: Some(session),
        })
    }
}

fn payload_response(body: Bytes, extra: &[(&'static str, String)]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(*name, v);
        }
    }
    response
}

async fn list_jobs(State(sidecar): State<Sidecar>) -> Result<Response, ApiError> {
    let (ids, skipped) = timed("jobs_list", sidecar.job_graphs()?.job_ids()).await?;
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({"jobs": ids, "skipped": skipped})).into_response())
}

async fn put_graph(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    let handle = timed(
        "graph_put",
        sidecar.job_graphs()?.put(&fence, Some(session), &job, body),
    )
    .await?;
    Ok(axum::Json(json!({"jobId": job.to_string(), "handle": handle})).into_response())
}

async fn get_graph(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    match timed("graph_get", sidecar.job_graphs()?.get(&job)).await? {
        Some((_, body)) => Ok(payload_response(body, &[])),
        None => Err(not_found(format!("no job graph stored for job {job}"))),
    }
}

async fn delete_graph(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    let removed = timed(
        "graph_delete",
        sidecar.job_graphs()?.remove(&fence, Some(session), &job),
    )
    .await?;
    if !removed.existed {
        return Err(not_found(format!("no job graph stored for job {job}")));
    }
    Ok(
        axum::Json(
            json!({"jobId": job.to_string(), "removed": true, "orphaned": removed.orphaned}),
        )
        .into_response(),
    )
}

/// `RUNNING` / `DONE`, as plain text or as a JSON string or `{"status": ...}`.
fn parse_status(body: &[u8]) -> Result<JobStatus, ApiError> {
    #[derive(Deserialize)]
    struct Wrapped {
        status: JobStatus,
    }
    if let Ok(w) = serde_json::from_slice::<Wrapped>(body) {
        return Ok(w.status);
    }
    if let Ok(s) = serde_json::from_slice::<JobStatus>(body) {
        return Ok(s);
    }
    std::str::from_utf8(body)
        .map_err(|_| bad_request("status must be RUNNING or DONE"))?
        .parse()
        .map_err(bad_request)
}

async fn put_status(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let status = parse_status(&body)?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    timed(
        "status_put",
        sidecar
            .job_graphs()?
            .set_status(&fence, Some(session), &job, status),
    )
    .await?;
    Ok(axum::Json(json!({"jobId": job.to_string(), "status": status})).into_response())
}

async fn get_status(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    match timed("status_get", sidecar.job_graphs()?.status(&job)).await? {
        Some(status) => {
            Ok(axum::Json(json!({"jobId": job.to_string(), "status": status})).into_response())
        }
        None => Err(not_found(format!("no status recorded for job {job}"))),
    }
}

async fn add_checkpoint(
    State(sidecar): State<Sidecar>,
    Path((job, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let id = parse_checkpoint_id(&id)?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    let added = timed("checkpoint_add", w.store.add(&w.fence, w.session, id, body)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "checkpointId": id,
            "handle": added.handle,
            "subsumed": added.subsumed,
            "orphaned": added.orphaned,
        })),
    )
        .into_response())
}

async fn list_checkpoints(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let store = sidecar.checkpoints(&job)?;
    let (checkpoints, skipped) = timed("checkpoint_list", store.list()).await?;
    Ok(axum::Json(
        json!({"jobId": job.to_string(), "checkpoints": checkpoints, "skipped": skipped}),
    )
    .into_response())
}

async fn latest_checkpoint(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let strict = sidecar.store_settings()?.strict_recovery;
    let recovered = timed(
        "checkpoint_recover",
        sidecar.checkpoints(&job)?.recover(strict),
    )
    .await?;
    let skipped: Vec<String> = recovered.skipped.iter().map(|s| s.key.clone()).collect();
    match recovered.checkpoint {
        Some((meta, body)) => {
            let mut extra = vec![(CHECKPOINT_ID_HEADER, meta.id.to_string())];
            if !skipped.is_empty() {
                extra.push((SKIPPED_HEADER, skipped.join(",")));
            }
            Ok(payload_response(body, &extra))
        }
        None if skipped.is_empty() => {
            Err(not_found(format!("no checkpoint retained for job {job}")))
        }
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "NoRecoverableCheckpoint",
            format!(
                "no retained checkpoint of job {job} could be read; skipped: {}",
                skipped.join(", ")
            ),
        )),
    }
}

async fn get_checkpoint(
    State(sidecar): State<Sidecar>,
    Path((job, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let id = parse_checkpoint_id(&id)?;
    match timed("checkpoint_get", sidecar.checkpoints(&job)?.get(id)).await? {
        Some((meta, body)) => Ok(payload_response(
            body,
            &[(CHECKPOINT_ID_HEADER, meta.id.to_string())],
        )),
        None => Err(not_found(format!(
            "checkpoint {id} of job {job} is not retained"
        ))),
    }
}

async fn delete_checkpoint(
    State(sidecar): State<Sidecar>,
    Path((job, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let id = parse_checkpoint_id(&id)?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    let removed = timed("checkpoint_delete", w.store.remove(&w.fence, w.session, id)).await?;
    if !removed.existed {
        return Err(not_found(format!(
            "checkpoint {id} of job {job} is not retained"
        )));
    }
    Ok(
        axum::Json(json!({"checkpointId": id, "removed": true, "orphaned": removed.orphaned}))
            .into_response(),
    )
}

async fn get_counter(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let value = timed("counter_get", sidecar.checkpoints(&job)?.counter()).await?;
    Ok(axum::Json(json!({"value": value})).into_response())
}

#[derive(Deserialize)]
struct CounterBody {
    value: u64,
}

async fn set_counter(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let body: CounterBody = serde_json::from_slice(&body)
        .ok()
        .filter(|b: &CounterBody| b.value <= MAX_CHECKPOINT_ID)
        .ok_or_else(|| {
            bad_request(format!(
                "expected a JSON body {{\"value\": <integer from 0 to {MAX_CHECKPOINT_ID}>}}"
            ))
        })?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    timed(
        "counter_set",
        w.store.set_counter(&w.fence, w.session, body.value),
    )
    .await?;
    Ok(axum::Json(json!({"value": body.value})).into_response())
}

async fn increment_counter(
    State(sidecar): State<Sidecar>,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = parse_job(&job)?;
    let w = sidecar.checkpoint_writer(&job, &headers)?;
    let previous = timed("counter_increment", w.store.increment(&w.fence, w.session)).await?;
    Ok(axum::Json(json!({"value": previous})).into_response())
}

async fn put_blob(
    State(sidecar): State<Sidecar>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let blobs = sidecar.blobs()?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    let size = body.len();
    timed("blob_put", blobs.put(&fence, Some(session), &key, body)).await?;
    Ok(axum::Json(json!({"key": key, "size": size})).into_response())
}

async fn get_blob(
    State(sidecar): State<Sidecar>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    match timed("blob_get", sidecar.blobs()?.get(&key)).await? {
        Some(body) => Ok(payload_response(body, &[])),
        None => Err(not_found(format!("no blob {key:?}"))),
    }
}

async fn delete_blob(
    State(sidecar): State<Sidecar>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let blobs = sidecar.blobs()?;
    let (fence, session) = sidecar.leader_fence(&Component::Dispatcher, &headers)?;
    timed("blob_delete", blobs.delete(&fence, Some(session), &key)).await?;
    Ok(axum::Json(json!({"key": key, "deleted": true})).into_response())
}
