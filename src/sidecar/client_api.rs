//! The client routes: a JobManager registers (`POST /v1/clients`), holds its event stream
//! (`GET /v1/clients/{id}/events`), shows life (any call with `Hakeeper-Client`, or
//! `POST /v1/clients/{id}/keepalive`) and may end itself (`DELETE /v1/clients/{id}`).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use super::clients::{NotLive, Released};
use super::{ApiError, CLIENT_HEADER, Sidecar, Source, same_state};
use crate::election::ReleaseReason;
use crate::layout::Component;

pub(super) fn routes() -> Router<Sidecar> {
    Router::new()
        .route("/v1/clients", post(register))
        .route("/v1/clients/{id}", get(describe).delete(end))
        .route("/v1/clients/{id}/keepalive", post(keepalive))
        .route("/v1/clients/{id}/events", get(events))
}

/// The error for a client that is not live.
pub(super) fn not_live(id: &Uuid, e: NotLive) -> ApiError {
    match e {
        NotLive::Unknown => ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownClient",
            format!(
                "no client {id} is registered with this sidecar; register with POST /v1/clients"
            ),
        ),
        NotLive::Released(r) => ApiError::new(
            StatusCode::GONE,
            "ClientReleased",
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
                "BadRequest",
                "the Hakeeper-Client header is not a UUID",
            )
        })
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: Option<String>,
}

fn client_json(sidecar: &Sidecar, id: Uuid, name: Option<&str>) -> Value {
    json!({
        "clientId": id.to_string(),
        "name": name,
        "timeoutMs": sidecar.client_timeout().as_millis() as u64,
    })
}

/// `POST /v1/clients`: a new client, alive from now.
async fn register(
    State(sidecar): State<Sidecar>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RegisterBody = if body.iter().all(u8::is_ascii_whitespace) {
        RegisterBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("expected no body or {{\"name\": \"...\"}}: {e}"),
            )
        })?
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
                    "TooManyClients",
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
        axum::Json(client_json(&sidecar, id, name.as_deref())),
    )
        .into_response())
}

/// `GET /v1/clients/{id}`.
async fn describe(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let clients = sidecar.clients();
    let c = clients.get(&id).map_err(|e| not_live(&id, e))?;
    let now = Instant::now();
    let mut v = client_json(&sidecar, id, c.name.as_deref());
    v["components"] = json!(
        c.components
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    v["streams"] = json!(c.streams);
    v["idleMs"] = json!(now.saturating_duration_since(c.last_seen).as_millis() as u64);
    Ok(axum::Json(v).into_response())
}

/// `POST /v1/clients/{id}/keepalive`: a sign of life (any call with `Hakeeper-Client` is one
/// too); the clear error when the client was released tells a woken client where it stands.
async fn keepalive(
    State(sidecar): State<Sidecar>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let mut clients = sidecar.clients();
    let c = clients
        .touch(&id, Instant::now())
        .map_err(|e| not_live(&id, e))?;
    let v = json!({
        "clientId": id.to_string(),
        "timeoutMs": sidecar.client_timeout().as_millis() as u64,
        "components": c.components.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    Ok(axum::Json(v).into_response())
}

/// `DELETE /v1/clients/{id}`: the client leaves; everything it contended for is released
/// before the answer.
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
    Ok(axum::Json(json!({
        "clientId": id.to_string(),
        "released": true,
        "components": components.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
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
    last: BTreeMap<Component, Value>,
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
            let data = json!({"clientId": self.client.to_string(), "reason": r.reason.as_str()});
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

/// `GET /v1/clients/{id}/events`: the client's lifeline. A `client` event, then a
/// `leadership` event whenever the state of a component it contends for changes, and a
/// `released` event (then the end) when the sidecar gives the client up.
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
            .json_data(client_json(&sidecar, id, name.as_deref()))
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
