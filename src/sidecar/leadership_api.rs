//! `/v1/leadership/{component}` (contend, report or stream, release) and the probes
//! (`/livez`, `/readyz`, `/metrics`) with `/openapi.json`: their handlers, each with its
//! OpenAPI operation.

use std::convert::Infallible;

use super::path::Path;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{
    BadComponent, BadContention, BadFollow, BadLeaderQuery, ClientHeader, ClientReleased,
    ComponentName, ComponentPath, ContendedAlready, FollowRefused, FrameworkTooLarge,
    LeadershipEvent, LifelineHeader, NotContending, NotReady, ShuttingDown, UnknownClient,
    WatchClientReleased, WatchUnknownClient,
};
use super::{
    ApiError, ErrorKind, LeadershipView, Sidecar, Source, client_api, openapi, same_state,
};
use crate::election::ReleaseReason;
use crate::layout::Component;

/// `PUT`, `GET` and `DELETE /v1/leadership/{component}`.
pub(super) fn routes() -> OpenApiRouter<Sidecar> {
    OpenApiRouter::new().routes(routes!(put_leadership, get_leadership, delete_leadership))
}

/// `GET /livez`, `GET /readyz` (and `?leader=<component>`) and `GET /metrics`: what kubelet
/// probes and Prometheus call, served alike by the local API and the probe listener.
pub(super) fn probe_routes() -> OpenApiRouter<Sidecar> {
    OpenApiRouter::new()
        .routes(routes!(livez))
        .routes(routes!(metrics))
        .routes(routes!(readyz))
}

/// `GET /openapi.json`: on the local API only.
pub(super) fn document_routes() -> OpenApiRouter<Sidecar> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// Liveness
#[utoipa::path(get, path = "/livez", tag = "probes", operation_id = "livez", responses(
    (status = 200, description = "The process runs.", body = inline(LiveOk), content_type = "text/plain"),
))]
async fn livez() -> &'static str {
    "ok"
}

/// `ok`: the answer of `/livez`.
#[derive(ToSchema)]
#[allow(dead_code)]
enum LiveOk {
    #[schema(rename = "ok")]
    Ok,
}

/// The answer of `/readyz`: `ok` (ready) without `leader`, `leader` when this sidecar leads it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum ReadyOk {
    Ok,
    Leader,
}

/// This document
#[utoipa::path(get, path = "/openapi.json", tag = "probes", operation_id = "openapi", responses(
    (status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object),
))]
async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document())
}

/// A query string that does not parse, as a JSON 400 like every other error.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorKind::BadRequest,
        e.body_text(),
    )
}

fn parse_component(raw: &str) -> Result<Component, ApiError> {
    raw.trim_matches('/')
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorKind::BadRequest, e))
}

/// The contention's address.
#[derive(Deserialize, ToSchema)]
#[schema(as = ContendRequest)]
struct ContendBody {
    /// The address to publish while this process leads; not blank.
    #[schema(
        min_length = 1,
        example = "akka.tcp://flink@jm-0:6123/user/rpc/dispatcher_1"
    )]
    address: String,
}

/// Start contending for a component, on behalf of a client
///
/// Contend with the address to publish while this process leads, on behalf of the client of
/// `Hakeeper-Client`: the contention (and any leadership) lasts as long as that client lives.
/// Idempotent for the same client and address. Answers at once with the current state;
/// leadership follows asynchronously (the client's event stream reports it).
#[utoipa::path(
    put,
    path = "/v1/leadership/{*component}",
    tag = "leadership",
    operation_id = "contend",
    params(ComponentPath, ClientHeader),
    request_body(
        content = ContendBody,
        description = "Parsed as JSON whatever the Content-Type.",
        content_type = "application/json",
    ),
    responses(
        (status = 202, description = "Contending; the component's state now.", body = LeadershipView),
        (status = 400, response = inline(BadContention)),
        (status = 404, response = inline(UnknownClient)),
        (status = 409, response = inline(ContendedAlready)),
        (status = 410, response = inline(ClientReleased)),
        (status = 413, response = inline(FrameworkTooLarge)),
        (status = 503, response = inline(ShuttingDown)),
    ),
)]
async fn put_leadership(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let component = parse_component(&raw)?;
    let body: ContendBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            format!("expected a JSON body {{\"address\": \"...\"}}: {e}"),
        )
    })?;
    let client = client_api::client_header(&headers)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::ClientRequired,
            "contending needs a Hakeeper-Client header: register with POST /v1/clients, keep GET /v1/clients/{id}/events open and call at least once per client timeout; the sidecar leads only while that client lives",
        )
    })?;
    sidecar.contend_for_client(component.clone(), body.address, client)?;
    let mut source = sidecar.source(&component)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(sidecar.view(&mut source, &component)),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WatchQuery {
    /// `1` or `true`: answer a `text/event-stream`. Any other value, or none, answers one
    /// JSON object.
    #[param(value_type = String, required = false, example = "1")]
    watch: Option<String>,
}

/// Report, or stream, a component's leadership
///
/// For a component this sidecar does not contend, the same object with `contending: false`,
/// from a watch on the component's ConfigMap that the first such call starts. With `watch=1`
/// the answer is a Server-Sent Events stream: the current state first, then one `leadership`
/// event per change (not when only `leaseRemainingMs` or `lastRelease.agoMs` moved); it
/// follows the component across PUT and DELETE (and a client's release), and ends when the
/// sidecar shuts down. A `watch=1` stream opened with `Hakeeper-Client` is a lifeline of that
/// client, as its `/v1/clients/{clientId}/events` stream is.
#[utoipa::path(
    get,
    path = "/v1/leadership/{*component}",
    tag = "leadership",
    operation_id = "getLeadership",
    params(ComponentPath, LifelineHeader, WatchQuery),
    responses(
        (status = 200, description = "The state; with `watch=1`, a stream of it.", content(
            (LeadershipView = "application/json"),
            (LeadershipEvent = "text/event-stream", example = json!(
                "event: leadership\ndata: {\"component\":\"dispatcher\",\"contending\":true,\"isLeader\":false,...}\n\n"
            )),
        )),
        (status = 400, response = inline(BadFollow)),
        (status = 404, response = inline(WatchUnknownClient)),
        (status = 410, response = inline(WatchClientReleased)),
        (status = 503, response = inline(FollowRefused)),
    ),
)]
async fn get_leadership(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
    headers: axum::http::HeaderMap,
    q: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let component = parse_component(&raw)?;
    let Query(q) = q.map_err(bad_query)?;
    // A header that is not a UUID is refused as on PUT, stream or not.
    let client = client_api::client_header(&headers)?;
    let mut source = sidecar.source(&component)?;
    if !matches!(q.watch.as_deref(), Some("1" | "true")) {
        return Ok(axum::Json(sidecar.view(&mut source, &component)).into_response());
    }
    // A stream opened with a client's id is one of that client's lifelines.
    let lifeline = match client {
        Some(client) => Some(client_api::Lifeline::open(&sidecar, client)?.0),
        None => None,
    };
    // Server-Sent Events: the current state, then one event per change. The stream follows
    // the component across a PUT or DELETE (from follower to contender and back). A client
    // that stops reading only holds the latest state (a watch channel keeps one value).
    let registry = sidecar.inner.registry.subscribe();
    let state = SseState {
        sidecar,
        component,
        source,
        registry,
        last: None,
        _lifeline: lifeline,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.last.is_some() {
                let switch = tokio::select! {
                    alive = st.source.changed() => !alive,
                    changed = st.registry.changed() => changed.is_ok(),
                };
                if switch {
                    st.source = st.sidecar.source(&st.component).ok()?;
                    // Still a source that ended (its task stopped, or is being replaced and
                    // the registry is about to move): wait for the registry, never spin.
                    if st.source.is_closed() {
                        st.registry.changed().await.ok()?;
                        st.source = st.sidecar.source(&st.component).ok()?;
                    }
                }
            }
            let view = st.sidecar.view(&mut st.source, &st.component);
            if st.last.as_ref().is_some_and(|l| same_state(l, &view)) {
                continue;
            }
            let event = Event::default()
                .event("leadership")
                .json_data(&view)
                .unwrap_or_else(|_| Event::default().comment("unserialisable state"));
            st.last = Some(view);
            return Some((Ok::<_, Infallible>(event), st));
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct SseState {
    sidecar: Sidecar,
    component: Component,
    source: Source,
    registry: watch::Receiver<u64>,
    /// The last state sent; `None` before the first.
    last: Option<LeadershipView>,
    _lifeline: Option<client_api::Lifeline>,
}

/// The answer of a release.
#[derive(Serialize, ToSchema)]
#[schema(as = Released)]
struct ReleasedBody {
    #[schema(value_type = ComponentName)]
    component: String,
    #[schema(schema_with = openapi::always_false)]
    contending: bool,
    #[schema(schema_with = openapi::always_true)]
    released: bool,
}

/// Stop contending, releasing the lock if held
///
/// If this process leads, leader work stops first, then the lock is released in one
/// compare-and-swap (holder `""`, lease 1 s), so that a standby takes over at once. Needs no
/// `Hakeeper-Client` (an admin action, reason `api_delete`); a client that contended for the
/// component stays registered, and its event stream shows the component released.
#[utoipa::path(
    delete,
    path = "/v1/leadership/{*component}",
    tag = "leadership",
    operation_id = "release",
    params(ComponentPath),
    responses(
        (status = 200, description = "No longer contending.", body = ReleasedBody),
        (status = 400, response = inline(BadComponent)),
        (status = 404, response = inline(NotContending)),
    ),
)]
async fn delete_leadership(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let component = parse_component(&raw)?;
    if sidecar.stop(&component, ReleaseReason::ApiDelete).await {
        Ok(axum::Json(ReleasedBody {
            component: component.to_string(),
            contending: false,
            released: true,
        })
        .into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            format!("not contending for {component}"),
        ))
    }
}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", tag = "probes", operation_id = "metrics", responses(
    (status = 200, description = "OpenMetrics text (`application/openmetrics-text; \
        version=1.0.0; charset=utf-8`).", body = String, content_type = "application/openmetrics-text"),
))]
async fn metrics() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::get().encode(),
    )
        .into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReadyQuery {
    /// A component, e.g. `dispatcher` or `jobmanager/<jobId>`.
    #[param(value_type = ComponentName, required = false)]
    leader: Option<String>,
}

/// Readiness, or leadership of one component
///
/// Without `leader`: ready once every contender's lock watch has delivered its initial list.
/// With `leader=<component>`: ready only while this sidecar leads that component (confirmed,
/// grant live), so that a readinessProbe routes a Service to the leader alone.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    operation_id = "readyz",
    params(ReadyQuery),
    responses(
        (status = 200, description = "`ok` (ready) without `leader`; `leader` when this \
            sidecar leads it.", body = inline(ReadyOk), content_type = "text/plain"),
        (status = 400, response = inline(BadLeaderQuery)),
        (status = 503, response = inline(NotReady)),
    ),
)]
async fn readyz(
    State(sidecar): State<Sidecar>,
    q: Result<Query<ReadyQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e).into_response(),
    };
    if let Some(raw) = q.leader {
        let component = match parse_component(&raw) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let leads = sidecar
            .fence(&component)
            .is_some_and(|f| f.current_session().is_some())
            && sidecar
                .contenders()
                .get(&component)
                .is_some_and(|c| c.elector.state().borrow().is_leader);
        return if leads {
            "leader".into_response()
        } else {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::NotLeader,
                format!("this sidecar does not lead {component}"),
            )
            .into_response()
        };
    }
    match sidecar.ready() {
        Ok(()) => "ok".into_response(),
        Err(why) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::NotReady,
            format!("lock watches have not synced yet: {why}"),
        )
        .into_response(),
    }
}
