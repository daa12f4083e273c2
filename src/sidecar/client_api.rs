//! The client routes: a JobManager registers (`POST /v1/clients`), holds its event stream
//! (`GET /v1/clients/{id}/events`), shows life (any call with `Hakeeper-Client`, or
//! `POST /v1/clients/{id}/keepalive`) and may end itself (`DELETE /v1/clients/{id}`).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Instant;

use super::path::Path;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::clients::{NotLive, Released};
use super::openapi::{
    BadClientId, BadRegistration, ClientEvent, ClientPath, ClientReleaseReason, ClientReleased,
    ComponentName, FrameworkTooLarge, RegistrationRefused, ShuttingDown, UnknownClient,
};
use super::{
    ApiError, CLIENT_HEADER, ErrorKind, LeadershipView, Sidecar, Source, openapi, same_state,
};
use crate::election::ReleaseReason;
use crate::layout::Component;

pub(super) fn routes() -> OpenApiRouter<Sidecar> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(describe, end))
        .routes(routes!(keepalive))
        .routes(routes!(events))
}

/// The error for a client that is not live.
pub(super) fn not_live(id: &Uuid, e: NotLive) -> ApiError {
    match e {
        NotLive::Unknown => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::UnknownClient,
            format!(
                "no client {id} is registered with this sidecar; register with POST /v1/clients"
            ),
        ),
        NotLive::Released(r) => ApiError::new(
            StatusCode::GONE,
            ErrorKind::ClientReleased,
            format!(
                "client {id} was released {} ms ago ({}), and every leadership it held with it; register again with POST /v1/clients",
                Instant::now().saturating_duration_since(r.at).as_millis(),
                r.reason
            ),
        ),
    }
}

/// The `Hakeeper-Client` header, if present; a header that is not a UUID is a 400.
pub(super) fn client_header(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let Some(raw) = headers.get(CLIENT_HEADER) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::BadRequest,
                "the Hakeeper-Client header is not a UUID",
            )
        })
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            format!("{raw:?} is not a client id (a UUID from POST /v1/clients)"),
        )
    })
}

/// Middleware: a request that names a live client is a sign of its life. Nothing is refused
/// here: a deposed client's writes meet the fence (`NotLeader`, `StaleSession`) as any other.
pub(super) async fn touch(
    State(sidecar): State<Sidecar>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(id) = request
        .headers()
        .get(CLIENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
    {
        let _ = sidecar.clients().touch(&id, Instant::now());
    }
    next.run(request).await
}

/// One open event stream of a client. Dropping the last one (the connection closed: the
/// process died, or the client hung up) ends the client at once.
pub(super) struct Lifeline {
    sidecar: Sidecar,
    client: Uuid,
}

impl Lifeline {
    pub(super) fn open(
        sidecar: &Sidecar,
        client: Uuid,
    ) -> Result<(Lifeline, watch::Receiver<Option<Released>>), ApiError> {
        let released = sidecar
            .clients()
            .open_stream(&client, Instant::now())
            .map_err(|e| not_live(&client, e))?;
        Ok((
            Lifeline {
                sidecar: sidecar.clone(),
                client,
            },
            released,
        ))
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        let last = self.sidecar.clients().close_stream(&self.client);
        if last {
            self.sidecar
                .end_client_in_background(self.client, ReleaseReason::ClientGone);
        }
    }
}

/// A registration.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ClientRegistration)]
struct RegisterBody {
    /// For logs and `GET /v1/clients/{clientId}`; cut to 128 characters.
    #[schema(example = "jm-0")]
    name: Option<String>,
}

/// A registered client.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Client)]
struct ClientBody {
    /// The `Hakeeper-Client` of this client's calls.
    #[schema(format = Uuid)]
    client_id: String,
    /// As registered.
    #[schema(required = true)]
    name: Option<String>,
    /// The client timeout (`--client-timeout`): the client is released when it sends nothing
    /// with its id for this long. Send a keepalive at least every `timeoutMs / 3`.
    timeout_ms: u64,
}

fn client_body(sidecar: &Sidecar, id: Uuid, name: Option<&str>) -> ClientBody {
    ClientBody {
        client_id: id.to_string(),
        name: name.map(str::to_string),
        timeout_ms: sidecar.client_timeout().as_millis() as u64,
    }
}

/// A live client, described.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClientDescription)]
struct ClientDescription {
    #[schema(format = Uuid)]
    client_id: String,
    /// As registered.
    #[schema(required = true)]
    name: Option<String>,
    timeout_ms: u64,
    /// The components contended for on this client's behalf.
    #[schema(value_type = Vec<ComponentName>)]
    components: Vec<String>,
    /// The client's event streams open now (its lifelines).
    streams: u64,
    /// Since the client's last sign of life.
    idle_ms: u64,
}

/// A keepalive's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClientKeepalive)]
struct ClientKeepalive {
    #[schema(format = Uuid)]
    client_id: String,
    timeout_ms: u64,
    #[schema(value_type = Vec<ComponentName>)]
    components: Vec<String>,
}

/// An ended client.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClientEnded)]
struct ClientEnded {
    #[schema(format = Uuid)]
    client_id: String,
    #[schema(schema_with = openapi::always_true)]
    released: bool,
    /// The components released with the client.
    #[schema(value_type = Vec<ComponentName>)]
    components: Vec<String>,
}

/// The data of a client stream's `released` event, its last.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClientReleasedEvent)]
pub(super) struct ClientReleasedEvent {
    #[schema(format = Uuid)]
    client_id: String,
    #[schema(value_type = ClientReleaseReason)]
    reason: &'static str,
}

fn component_names<'a>(components: impl IntoIterator<Item = &'a Component>) -> Vec<String> {
    components.into_iter().map(ToString::to_string).collect()
}

/// Register a client (a JobManager process)
///
/// A new client, alive from now. Then open its event stream, keep it open for as long as the
/// process lives, and send a request with `Hakeeper-Client: <clientId>` (any call, or the
/// keepalive) at least every `timeoutMs / 3`.
#[utoipa::path(
    post,
    path = "/v1/clients",
    tag = "clients",
    operation_id = "registerClient",
    request_body(
        content = Option<RegisterBody>,
        description = "Optional; parsed as JSON whatever the Content-Type. An empty body (or \
            `null`) registers a client without a name.",
        content_type = "application/json",
    ),
    responses(
        (status = 201, description = "Registered.", body = ClientBody),
        (status = 400, response = inline(BadRegistration)),
        (status = 413, response = inline(FrameworkTooLarge)),
        (status = 503, response = inline(RegistrationRefused)),
    ),
)]
async fn register(
    State(sidecar): State<Sidecar>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // No body, or JSON `null`: a client without a name. Only an object is a registration
    // (serde would also take `[null]` for the struct).
    let bad = |e: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            format!("expected no body or {{\"name\": \"...\"}}: {e}"),
        )
    };
    let body: RegisterBody = if body.iter().all(u8::is_ascii_whitespace) {
        RegisterBody::default()
    } else {
        match serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))? {
            serde_json::Value::Null => RegisterBody::default(),
            v @ serde_json::Value::Object(_) => {
                serde_json::from_value(v).map_err(|e| bad(e.to_string()))?
            }
            _ => return Err(bad("not an object".into())),
        }
    };
    let (id, name) = {
        let mut clients = sidecar.clients();
        // Checked under the lock that shutdown releases every client under: none slips in.
        if sidecar
            .inner
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(super::shutting_down());
        }
        let id = clients
            .register(body.name.clone(), Instant::now())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::TooManyClients,
                    format!(
                        "{} clients are registered already; end unused ones with DELETE /v1/clients/{{id}}",
                        super::clients::MAX_CLIENTS
                    ),
                )
            })?;
        crate::metrics::set_clients(clients.len());
        let name = clients.get(&id).ok().and_then(|c| c.name.clone());
        (id, name)
    };
    sidecar.inner.reaper_wake.notify_one();
    tracing::info!(client = %id, name = ?name, "client registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(client_body(&sidecar, id, name.as_deref())),
    )
        .into_response())
}

/// Describe a live client
///
/// Not a sign of life by itself (send `Hakeeper-Client` for that).
#[utoipa::path(
    get,
    path = "/v1/clients/{clientId}",
    tag = "clients",
    operation_id = "describeClient",
    params(ClientPath),
    responses(
        (status = 200, description = "The client.", body = ClientDescription),
        (status = 400, response = inline(BadClientId)),
        (status = 404, response = inline(UnknownClient)),
        (status = 410, response = inline(ClientReleased)),
    ),
)]
async fn describe(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let clients = sidecar.clients();
    let c = clients.get(&id).map_err(|e| not_live(&id, e))?;
    let now = Instant::now();
    let v = ClientDescription {
        client_id: id.to_string(),
        name: c.name.clone(),
        timeout_ms: sidecar.client_timeout().as_millis() as u64,
        components: component_names(&c.components),
        streams: c.streams as u64,
        idle_ms: now.saturating_duration_since(c.last_seen).as_millis() as u64,
    };
    Ok(axum::Json(v).into_response())
}

/// Show that a client lives
///
/// A sign of life, as any request with `Hakeeper-Client` is; send one at least every
/// `timeoutMs / 3`. Its errors tell a client that was asleep where it stands. Any request body
/// is ignored.
#[utoipa::path(
    post,
    path = "/v1/clients/{clientId}/keepalive",
    tag = "clients",
    operation_id = "keepClientAlive",
    params(ClientPath),
    responses(
        (status = 200, description = "Alive; the components it contends for.", body = ClientKeepalive),
        (status = 400, response = inline(BadClientId)),
        (status = 404, response = inline(UnknownClient)),
        (status = 410, response = inline(ClientReleased)),
    ),
)]
async fn keepalive(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let mut clients = sidecar.clients();
    let c = clients
        .touch(&id, Instant::now())
        .map_err(|e| not_live(&id, e))?;
    let v = ClientKeepalive {
        client_id: id.to_string(),
        timeout_ms: sidecar.client_timeout().as_millis() as u64,
        components: component_names(&c.components),
    };
    Ok(axum::Json(v).into_response())
}

/// End a client, releasing everything it contended for
///
/// Every component the client contended for is released as `DELETE
/// /v1/leadership/{component}` does (leader work stops first, then one compare-and-swap frees
/// the lock), before the answer; reason `api_delete`. Its event streams get their final events
/// and end.
#[utoipa::path(
    delete,
    path = "/v1/clients/{clientId}",
    tag = "clients",
    operation_id = "endClient",
    params(ClientPath),
    responses(
        (status = 200, description = "Ended; the components released.", body = ClientEnded),
        (status = 400, response = inline(BadClientId)),
        (status = 404, response = inline(UnknownClient)),
        (status = 410, response = inline(ClientReleased)),
    ),
)]
async fn end(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let ended = sidecar.end_client(id, ReleaseReason::ApiDelete);
    let Some((components, pending)) = ended else {
        let e = sidecar.clients().get(&id).err().unwrap_or(NotLive::Unknown);
        return Err(not_live(&id, e));
    };
    sidecar.owned(pending).await;
    Ok(axum::Json(ClientEnded {
        client_id: id.to_string(),
        released: true,
        components: component_names(&components),
    })
    .into_response())
}

/// What a client's event stream follows.
struct ClientStream {
    sidecar: Sidecar,
    client: Uuid,
    _lifeline: Lifeline,
    released: watch::Receiver<Option<Released>>,
    registry: watch::Receiver<u64>,
    sources: BTreeMap<Component, Source>,
    last: BTreeMap<Component, LeadershipView>,
    queue: VecDeque<Event>,
    done: bool,
}

impl ClientStream {
    fn send_view(&mut self, component: &Component) {
        let view = match self.sources.get_mut(component) {
            Some(source) => self.sidecar.view(source, component),
            // No longer the client's: it is told that, and never another client's state.
            None => self.sidecar.not_contending_view(component),
        };
        if self
            .last
            .get(component)
            .is_some_and(|l| same_state(l, &view))
        {
            return;
        }
        if let Ok(event) = Event::default().event("leadership").json_data(&view) {
            self.queue.push_back(event);
        }
        self.last.insert(component.clone(), view);
    }

    /// Follow the components the client contends for now.
    fn resync(&mut self) {
        let now: Vec<Component> = match self.sidecar.clients().get(&self.client) {
            Ok(c) => c.components.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let gone: Vec<Component> = self
            .sources
            .keys()
            .filter(|c| !now.contains(c))
            .cloned()
            .collect();
        for c in gone {
            self.sources.remove(&c);
            self.send_view(&c);
            self.last.remove(&c);
        }
        for c in now {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.sources.entry(c.clone())
            {
                let Ok(source) = self.sidecar.source(&c) else {
                    continue;
                };
                slot.insert(source);
                self.send_view(&c);
            }
        }
    }

    fn on_released(&mut self) {
        let released = *self.released.borrow_and_update();
        if let Some(r) = released {
            // The components' final states (not contending), then why.
            self.sources.clear();
            let components: Vec<Component> = self.last.keys().cloned().collect();
            for c in components {
                self.send_view(&c);
            }
            let data = ClientReleasedEvent {
                client_id: self.client.to_string(),
                reason: r.reason.as_str(),
            };
            if let Ok(event) = Event::default().event("released").json_data(data) {
                self.queue.push_back(event);
            }
            self.done = true;
        }
    }
}

/// The next component whose source changed; a source that ended is dropped (a resync
/// follows from the registry, which moves whenever a contender goes).
async fn next_change(sources: &mut BTreeMap<Component, Source>) -> Option<Component> {
    if sources.is_empty() {
        return std::future::pending().await;
    }
    let waits = sources
        .iter_mut()
        .map(|(c, s)| Box::pin(async move { (c.clone(), s.changed().await) }));
    let ((component, alive), _, _) = futures::future::select_all(waits).await;
    if alive {
        Some(component)
    } else {
        sources.remove(&component);
        None
    }
}

/// The client's lifeline: its event stream
///
/// Server-Sent Events. First a `client` event (the object of `POST /v1/clients`); then a
/// `leadership` event (a `LeadershipState`) for each component the client contends for, at
/// once and whenever its state changes (not when only `leaseRemainingMs` or
/// `lastRelease.agoMs` moved). When the client is released: a last `leadership` event per
/// component (`contending: false`, `isLeader: false`, `sessionId` and `clientId` null,
/// `synced: false`: never the state of whoever contends for it next), a `released` event (a
/// `ClientReleasedEvent`), and the end of the stream. Keep-alive comments every 15 s.
///
/// While any of the client's streams is open, the client is not gone; when its last one
/// closes (the process died, or the connection was closed or half-closed) it is released at
/// once, reason `client_gone`. An open stream is no sign of life by itself: the client must
/// still send a request with its id within `timeoutMs`. Exempt from the request timeout.
#[utoipa::path(
    get,
    path = "/v1/clients/{clientId}/events",
    tag = "clients",
    operation_id = "clientEvents",
    params(ClientPath),
    responses(
        (status = 200, description = "The stream.", body = ClientEvent,
            content_type = "text/event-stream",
            example = json!("event: client\ndata: {\"clientId\":\"7d0f6c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f\",\"name\":\"jm-0\",\"timeoutMs\":10000}\n\nevent: leadership\ndata: {\"component\":\"dispatcher\",\"contending\":true,\"clientId\":\"7d0f6c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f\",\"isLeader\":true,...}\n\n")),
        (status = 400, response = inline(BadClientId)),
        (status = 404, response = inline(UnknownClient)),
        (status = 410, response = inline(ClientReleased)),
        (status = 503, response = inline(ShuttingDown)),
    ),
)]
async fn events(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    if sidecar
        .inner
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(super::shutting_down());
    }
    let (lifeline, released) = Lifeline::open(&sidecar, id)?;
    let name = sidecar.clients().get(&id).ok().and_then(|c| c.name.clone());
    let mut first = VecDeque::new();
    if let Ok(e) =
        Event::default()
            .event("client")
            .json_data(client_body(&sidecar, id, name.as_deref()))
    {
        first.push_back(e);
    }
    let mut st = ClientStream {
        registry: sidecar.inner.registry.subscribe(),
        sidecar,
        client: id,
        _lifeline: lifeline,
        released,
        sources: BTreeMap::new(),
        last: BTreeMap::new(),
        queue: first,
        done: false,
    };
    st.resync();
    let stream = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(event) = st.queue.pop_front() {
                return Some((Ok::<_, Infallible>(event), st));
            }
            if st.done {
                return None;
            }
            tokio::select! {
                biased;
                changed = st.released.changed() => {
                    st.on_released();
                    // Ended without a word (cannot happen while the registry tells first).
                    if changed.is_err() {
                        st.done = true;
                    }
                }
                changed = st.registry.changed() => {
                    if changed.is_ok() {
                        st.resync();
                    }
                }
                component = next_change(&mut st.sources) => {
                    if let Some(c) = component {
                        st.send_view(&c);
                    }
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
