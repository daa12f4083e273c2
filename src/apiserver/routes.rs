//! HTTP surface of the embedded API server: discovery documents, the resource paths, and
//! watch streams. Requests are classified by a pure function ([`classify`]) and then
//! dispatched to the [`Store`](super::store::Store).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Change, ChangeType, Preconditions, Resource, Selection, WatchFrom};
use super::table::{self, TableRequest};
use super::{Shared, openapi, proto};

/// Largest request body accepted, as kube-apiserver's default (3 MiB).
const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// Watch length when the client does not ask for one (kube-apiserver picks 30–60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(api_groups))
        .route("/apis/events.k8s.io", get(events_group))
        .route("/apis/events.k8s.io/v1", get(events_resources))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*key}", get(openapi_group_version))
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            axum::routing::post(self_subject_access_review),
        )
        .fallback(resource_request)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

async fn authenticate(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/healthz" | "/livez" | "/readyz");
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    // A restricted user's token: everything it asks is checked against its rules.
    if let Some(user) = presented
        .as_deref()
        .and_then(|t| shared.restricted.iter().find(|u| u.token == t))
    {
        req.extensions_mut().insert(Caller(Some(user.clone())));
        return next.run(req).await;
    }
    if let Some(token) = &shared.token
        && !open
        && presented.as_deref() != Some(token.as_str())
    {
        return ApiError::unauthorized().into_response();
    }
    req.extensions_mut().insert(Caller(None));
    next.run(req).await
}

/// Who is asking: a restricted user, or `None` for the admin (who may do anything).
#[derive(Clone)]
pub(crate) struct Caller(Option<super::RestrictedUser>);

impl Caller {
    fn allows(&self, verb: &str, group: &str, resource: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|u| u.allows(verb, group, resource))
    }

    fn name(&self) -> &str {
        self.0.as_ref().map_or("admin", |u| u.name.as_str())
    }
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: may the caller do what the
/// review's `resourceAttributes` say? Answered from the same rules as its requests.
async fn self_subject_access_review(
    axum::Extension(caller): axum::Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request(format!("invalid SelfSubjectAccessReview: {e}"))
                .into_response();
        }
    };
    let attrs = &review["spec"]["resourceAttributes"];
    let field = |k: &str| attrs[k].as_str().unwrap_or_default();
    let allowed = caller.allows(field("verb"), field("group"), field("resource"));
    let mut answer = review.clone();
    answer["apiVersion"] = json!("authorization.k8s.io/v1");
    answer["kind"] = json!("SelfSubjectAccessReview");
    answer["metadata"] = json!({"creationTimestamp": null});
    answer["status"] = if allowed {
        json!({"allowed": true, "reason": "hakeeper dev: allowed"})
    } else {
        json!({"allowed": false, "reason": format!("hakeeper dev: user {:?} has no rule for it", caller.name())})
    };
    (axum::http::StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn openapi_root() -> Response {
    axum::Json(openapi::root()).into_response()
}

async fn openapi_group_version(axum::extract::Path(key): axum::extract::Path<String>) -> Response {
    match openapi::group_version(&key) {
        Some(doc) => axum::Json(doc).into_response(),
        None => ApiError::no_such_resource().into_response(),
    }
}

async fn ok() -> &'static str {
    "ok"
}

async fn version() -> Response {
    axum::Json(json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0+hakeeper",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
    .into_response()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn api_versions() -> Response {
    axum::Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }))
    .into_response()
}

fn resource_entry(view: View) -> Value {
    json!({
        "name": view.resource().plural(),
        "singularName": view.resource().kind().to_lowercase(),
        "namespaced": true,
        "kind": view.kind(),
        "verbs": VERBS,
        "shortNames": [view.short_name()],
    })
}

async fn core_resources() -> Response {
    axum::Json(json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [resource_entry(View::ConfigMaps), resource_entry(View::CoreEvents)],
    }))
    .into_response()
}

fn events_group_doc() -> Value {
    let gv = json!({"groupVersion": "events.k8s.io/v1", "version": "v1"});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": "events.k8s.io",
           "versions": [gv.clone()], "preferredVersion": gv})
}

async fn api_groups() -> Response {
    axum::Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [events_group_doc()],
    }))
    .into_response()
}

async fn events_group() -> Response {
    axum::Json(events_group_doc()).into_response()
}

async fn events_resources() -> Response {
    axum::Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "events.k8s.io/v1",
        "resources": [resource_entry(View::EventsV1)],
    }))
    .into_response()
}

/// A resource as one API group version shows it. Events are stored once (core/v1 form)
/// and converted for `events.k8s.io/v1`, as kube-apiserver does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    ConfigMaps,
    CoreEvents,
    EventsV1,
}

/// Field renames between core/v1 Event (left) and events.k8s.io/v1 Event (right).
const EVENT_RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

impl View {
    pub fn resource(self) -> Resource {
        match self {
            View::ConfigMaps => Resource::ConfigMaps,
            View::CoreEvents | View::EventsV1 => Resource::Events,
        }
    }

    pub fn group_version(self) -> &'static str {
        match self {
            View::EventsV1 => "events.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn kind(self) -> &'static str {
        self.resource().kind()
    }

    fn short_name(self) -> &'static str {
        match self {
            View::ConfigMaps => "cm",
            _ => "ev",
        }
    }

    /// Stored form to the form this view serves.
    pub fn external(self, stored: &Value) -> Value {
        let mut obj = stored.clone();
        if self == View::EventsV1
            && let Some(map) = obj.as_object_mut()
        {
            for (core, v1) in EVENT_RENAMES {
                if let Some(v) = map.remove(core) {
                    map.insert(v1.to_string(), v);
                }
            }
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(self.group_version()));
            map.insert("kind".into(), json!(self.kind()));
        }
        obj
    }

    /// A client's body in this view's form to the stored form.
    pub fn internal(self, mut obj: Value) -> Value {
        if self == View::EventsV1
            && let Some(map) = obj.as_object_mut()
        {
            for (core, v1) in EVENT_RENAMES {
                if let Some(v) = map.remove(v1) {
                    map.insert(core.to_string(), v);
                }
            }
        }
        obj
    }

    /// Field labels as this view names them, and the stored name for each.
    fn field_label(self, label: &str) -> String {
        if self == View::EventsV1 {
            if let Some(rest) = label.strip_prefix("regarding.") {
                return format!("involvedObject.{rest}");
            }
            if label == "reportingController" {
                return "reportingComponent".into();
            }
        }
        label.to_string()
    }

    fn field_labels(self) -> Vec<String> {
        let core = self.resource().field_labels();
        if self != View::EventsV1 {
            return core.iter().map(|s| s.to_string()).collect();
        }
        core.iter()
            .map(|l| {
                if let Some(rest) = l.strip_prefix("involvedObject.") {
                    format!("regarding.{rest}")
                } else if *l == "reportingComponent" {
                    "reportingController".into()
                } else {
                    l.to_string()
                }
            })
            .collect()
    }
}

/// What a resource request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub view: View,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Map a path to a served resource; `None` is a 404.
pub(crate) fn classify(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", "events.k8s.io", "v1", rest @ ..] => ("events.k8s.io", rest),
        _ => return None,
    };
    let (namespace, resource, name) = match rest {
        [res] => (None, *res, None),
        ["namespaces", ns, res] => (Some(*ns), *res, None),
        ["namespaces", ns, res, name] => (Some(*ns), *res, Some(*name)),
        _ => return None,
    };
    let view = match (group, resource) {
        ("", "configmaps") => View::ConfigMaps,
        ("", "events") => View::CoreEvents,
        ("events.k8s.io", "events") => View::EventsV1,
        _ => return None,
    };
    Some(Target {
        view,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    })
}

/// The verb kube-apiserver's audit log and metrics would give this request.
pub(crate) fn verb(
    method: &Method,
    target: &Target,
    query: &HashMap<String, String>,
) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if is_true(query.get("watch")) => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

async fn resource_request(
    State(shared): State<Arc<Shared>>,
    caller: Option<axum::Extension<Caller>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = caller.map_or(Caller(None), |axum::Extension(c)| c);
    match handle(&shared, &caller, &method, &uri, &headers, body).await {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    }
}

async fn handle(
    shared: &Arc<Shared>,
    caller: &Caller,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let target = classify(uri.path()).ok_or_else(ApiError::no_such_resource)?;
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let verb = verb(method, &target, &query);
    shared.faults.count(verb, target.view.resource().plural());
    let group = match target.view {
        View::ConfigMaps | View::CoreEvents => "",
        View::EventsV1 => "events.k8s.io",
    };
    let plural = target.view.resource().plural();
    if !caller.allows(verb, group, plural) {
        return Err(ApiError::forbidden(
            caller.name(),
            verb,
            group,
            plural,
            target.namespace.as_deref(),
        ));
    }
    shared.faults.before_request().await?;
    if query.contains_key("dryRun") {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the hakeeper embedded API server",
        ));
    }
    let view = target.view;
    let resource = view.resource();
    let table_req = table::requested(
        header_str(headers, header::ACCEPT),
        query.get("includeObject").map(String::as_str),
    );
    match (verb, target.namespace.as_deref(), target.name.as_deref()) {
        ("get", Some(ns), Some(name)) => {
            let obj = view.external(&shared.store.get(resource, ns, name)?);
            Ok(match table_req {
                Some(t) => json_response(
                    StatusCode::OK,
                    &table::table(view.kind(), &[obj], None, t, true, jiff::Timestamp::now()),
                ),
                None => json_response(StatusCode::OK, &obj),
            })
        }
        ("list", ns, None) => {
            let sel = selection(view, ns, &query)?;
            let limit = match query.get("limit") {
                Some(l) => Some(
                    l.parse::<usize>()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
                ),
                None => None,
            };
            let page = shared.store.list(
                resource,
                &sel,
                limit,
                query
                    .get("continue")
                    .map(String::as_str)
                    .filter(|c| !c.is_empty()),
            )?;
            let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(c) = page.continue_token {
                metadata["continue"] = json!(c);
            }
            if let Some(r) = page.remaining {
                metadata["remainingItemCount"] = json!(r);
            }
            if let Some(t) = table_req {
                let objects: Vec<Value> = page.items.iter().map(|o| view.external(o)).collect();
                let mut tbl = table::table(
                    view.kind(),
                    &objects,
                    Some(page.resource_version),
                    t,
                    true,
                    jiff::Timestamp::now(),
                );
                tbl["metadata"] = metadata;
                return Ok(json_response(StatusCode::OK, &tbl));
            }
            let items: Vec<Value> = page
                .items
                .iter()
                .map(|o| {
                    let mut o = view.external(o);
                    if let Some(m) = o.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    o
                })
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", view.kind()),
                    "apiVersion": view.group_version(),
                    "metadata": metadata,
                    "items": items,
                }),
            ))
        }
        ("watch", ns, None) => watch(shared, view, ns, &query, table_req),
        ("create", Some(ns), None) => {
            let (obj, warnings) = read_object(view, headers, &query, body).await?;
            let created = shared.store.create(resource, ns, obj)?;
            shared.mark_dirty();
            Ok(with_warnings(
                json_response(StatusCode::CREATED, &view.external(&created)),
                &warnings,
            ))
        }
        ("update", Some(ns), Some(name)) => {
            let (obj, warnings) = read_object(view, headers, &query, body).await?;
            let updated = shared.store.update(resource, ns, name, obj)?;
            shared.mark_dirty();
            Ok(with_warnings(
                json_response(StatusCode::OK, &view.external(&updated)),
                &warnings,
            ))
        }
        ("patch", Some(ns), Some(name)) => {
            let content_type = header_str(headers, header::CONTENT_TYPE);
            let media = content_type.split(';').next().unwrap_or("").trim();
            if !matches!(
                media,
                "application/merge-patch+json" | "application/strategic-merge-patch+json"
            ) {
                return Err(ApiError::unsupported_media_type(content_type));
            }
            let patch = view.internal(read_json(body).await?);
            let warnings = field_validation(view, &query, &patch)?;
            let patched = shared.store.patch(resource, ns, name, &patch)?;
            shared.mark_dirty();
            Ok(with_warnings(
                json_response(StatusCode::OK, &view.external(&patched)),
                &warnings,
            ))
        }
        ("delete", Some(ns), Some(name)) => {
            let options = read_optional_json(body).await?;
            let pre = Preconditions {
                uid: options
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                resource_version: options
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let deleted = shared.store.delete(resource, ns, name, &pre)?;
            shared.mark_dirty();
            // Like kube-apiserver for resources without ReturnDeletedObject: a success Status.
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "kind": resource.plural(),
                        "uid": deleted.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    },
                }),
            ))
        }
        ("deletecollection", ns, None) => {
            let sel = selection(view, ns, &query)?;
            let deleted = shared.store.delete_collection(resource, &sel);
            if !deleted.is_empty() {
                shared.mark_dirty();
            }
            let items: Vec<Value> = deleted.iter().map(|o| view.external(o)).collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", view.kind()),
                    "apiVersion": view.group_version(),
                    "metadata": {"resourceVersion": shared.store.resource_version().to_string()},
                    "items": items,
                }),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn selection(
    view: View,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Selection, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let supported = view.field_labels();
    let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
    let fields = FieldSelector::parse(
        query.get("fieldSelector").map_or("", String::as_str),
        &supported,
    )
    .map_err(ApiError::bad_request)?;
    Ok(Selection {
        namespace: namespace.map(str::to_string),
        labels,
        fields,
        field_alias: (view == View::EventsV1)
            .then_some(events_v1_field_label as fn(&str) -> String),
    })
}

fn events_v1_field_label(label: &str) -> String {
    View::EventsV1.field_label(label)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Read a POST or PUT body (JSON, or protobuf for ConfigMaps as kubectl's typed client
/// sends them), convert it to the stored form and apply `fieldValidation`.
async fn read_object(
    view: View,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Body,
) -> Result<(Value, Vec<String>), ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let media = content_type.split(';').next().unwrap_or("").trim();
    let obj = match media {
        "" | "application/json" | "*/*" => read_json(body).await?,
        "application/vnd.kubernetes.protobuf" => {
            proto::decode_object(&read_body(body).await?).map_err(ApiError::bad_request)?
        }
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json, application/vnd.kubernetes.protobuf"
                ),
            ));
        }
    };
    let obj = view.internal(obj);
    let warnings = field_validation(view, query, &obj)?;
    Ok((obj, warnings))
}

/// `fieldValidation`: `Strict` refuses unknown fields, `Warn` (the default) reports them
/// in `Warning` headers, `Ignore` does neither.
fn field_validation(
    view: View,
    query: &HashMap<String, String>,
    obj: &Value,
) -> Result<Vec<String>, ApiError> {
    let unknown = openapi::unknown_fields(view.kind(), obj);
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match query.get("fieldValidation").map(String::as_str) {
        Some("Strict") if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        Some("Ignore") => Ok(Vec::new()),
        _ => Ok(messages),
    }
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let value = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_REQUEST_BYTES}"),
            )
        })
}

async fn read_json(body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

async fn read_optional_json(body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn watch(
    shared: &Arc<Shared>,
    view: View,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    table: Option<TableRequest>,
) -> Result<Response, ApiError> {
    let sel = selection(view, namespace, query)?;
    let bookmarks = is_true(query.get("allowWatchBookmarks"));
    let initial_events = is_true(query.get("sendInitialEvents"));
    let from = match query.get("resourceVersion").map(String::as_str) {
        _ if initial_events => WatchFrom::Now,
        None | Some("") | Some("0") => WatchFrom::Now,
        Some(rv) => WatchFrom::Version(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")))?,
        ),
        None => DEFAULT_WATCH_TIMEOUT,
    };
    let start = match shared.store.watch(view.resource(), &sel, from) {
        Ok(start) => start,
        // As kube-apiserver: a watch from a compacted version is accepted, then answered
        // with one ERROR event carrying the 410 Status.
        Err(e) if e.code == 410 => {
            let line = event_line("ERROR", &e.to_status());
            return Ok(stream_response(Body::from(line)));
        }
        Err(e) => return Err(e),
    };
    let mut queue = VecDeque::new();
    let mut encoder = WatchEncoder {
        view,
        table,
        headers_sent: false,
    };
    for obj in &start.current {
        queue.push_back(encoder.line("ADDED", view.external(obj)));
    }
    if initial_events {
        queue.push_back(bookmark_line(view, start.resource_version, true));
    }
    let mut last_rv = start.resource_version;
    for change in &start.backlog {
        if let Some((kind, obj)) = render_change(view, &sel, change) {
            queue.push_back(encoder.line(kind, obj));
        }
        last_rv = last_rv.max(change.rv);
    }
    let bookmark_tick = bookmarks.then(|| {
        let mut i = tokio::time::interval_at(
            tokio::time::Instant::now() + shared.bookmark_interval,
            shared.bookmark_interval,
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let state = WatchState {
        encoder,
        sel,
        queue,
        live: start.live,
        last_rv,
        bookmark_tick,
        deadline: tokio::time::Instant::now() + timeout,
        closed: shared.faults.watch_epoch(),
    };
    let stream = futures::stream::unfold(state, next_watch_chunk);
    Ok(stream_response(Body::from_stream(stream)))
}

/// Renders watch events as objects or, for kubectl, as one-row Tables (column
/// definitions in the first only).
struct WatchEncoder {
    view: View,
    table: Option<TableRequest>,
    headers_sent: bool,
}

impl WatchEncoder {
    fn line(&mut self, kind: &str, obj: Value) -> Bytes {
        match self.table {
            None => event_line(kind, &obj),
            Some(t) => {
                let headers = !std::mem::replace(&mut self.headers_sent, true);
                let tbl = table::table(
                    self.view.kind(),
                    &[obj],
                    None,
                    t,
                    headers,
                    jiff::Timestamp::now(),
                );
                event_line(kind, &tbl)
            }
        }
    }
}

struct WatchState {
    encoder: WatchEncoder,
    sel: Selection,
    queue: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<Change>>,
    last_rv: u64,
    bookmark_tick: Option<tokio::time::Interval>,
    deadline: tokio::time::Instant,
    closed: watch::Receiver<u64>,
}

async fn next_watch_chunk(mut st: WatchState) -> Option<(Result<Bytes, Infallible>, WatchState)> {
    loop {
        if let Some(line) = st.queue.pop_front() {
            return Some((Ok(line), st));
        }
        let tick = async {
            match st.bookmark_tick.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(st.deadline) => return None,
            _ = st.closed.changed() => return None,
            _ = tick => {
                let line = bookmark_line(st.encoder.view, st.last_rv, false);
                return Some((Ok(line), st));
            }
            received = st.live.recv() => match received {
                Ok(change) => {
                    if change.rv <= st.last_rv {
                        continue;
                    }
                    st.last_rv = change.rv;
                    if let Some((kind, obj)) = render_change(st.encoder.view, &st.sel, &change) {
                        let line = st.encoder.line(kind, obj);
                        return Some((Ok(line), st));
                    }
                }
                // Too slow to keep up, or the server is going away: end the watch; the
                // client resumes from its last resourceVersion.
                Err(_) => return None,
            }
        }
    }
}

/// The event a watcher with this selection sees for a change, if any: an object that
/// enters the selection is ADDED, one that leaves it is DELETED (as kube-apiserver's
/// watch cache reports them).
fn render_change(view: View, sel: &Selection, change: &Change) -> Option<(&'static str, Value)> {
    let resource = view.resource();
    if change.resource != resource {
        return None;
    }
    let now = sel.matches(resource, &change.object);
    let (kind, obj) = match change.change {
        ChangeType::Added | ChangeType::Deleted => (change.change, now.then_some(&change.object)?),
        ChangeType::Modified => {
            let before = change
                .previous
                .as_ref()
                .is_some_and(|p| sel.matches(resource, p));
            match (before, now) {
                (true, true) => (ChangeType::Modified, &change.object),
                (false, true) => (ChangeType::Added, &change.object),
                (true, false) => {
                    let mut last = change.previous.clone().unwrap_or(Value::Null);
                    if let Some(m) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("resourceVersion".into(), json!(change.rv.to_string()));
                    }
                    return Some(("DELETED", view.external(&last)));
                }
                (false, false) => return None,
            }
        }
    };
    Some((kind.as_str(), view.external(obj)))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark_line(view: View, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": view.kind(), "apiVersion": view.group_version(), "metadata": metadata}),
    )
}

fn stream_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths() {
        let t = classify("/api/v1/namespaces/ns/configmaps/c").unwrap();
        assert_eq!(
            t,
            Target {
                view: View::ConfigMaps,
                namespace: Some("ns".into()),
                name: Some("c".into())
            }
        );
        assert_eq!(classify("/api/v1/configmaps").unwrap().namespace, None);
        assert_eq!(
            classify("/apis/events.k8s.io/v1/namespaces/a/events")
                .unwrap()
                .view,
            View::EventsV1
        );
        assert!(classify("/api/v1/namespaces/ns/secrets").is_none());
        assert!(classify("/api/v1/namespaces/ns").is_none());
        assert!(classify("/apis/apps/v1/deployments").is_none());
        assert!(classify("/api/v1/namespaces/ns/configmaps/c/status").is_none());
    }

    #[test]
    fn verbs_follow_kube_apiserver() {
        let item = classify("/api/v1/namespaces/ns/configmaps/c").unwrap();
        let coll = classify("/api/v1/namespaces/ns/configmaps").unwrap();
        let none = HashMap::new();
        let watching = HashMap::from([("watch".to_string(), "1".to_string())]);
        assert_eq!(verb(&Method::GET, &item, &none), "get");
        assert_eq!(verb(&Method::GET, &coll, &none), "list");
        assert_eq!(verb(&Method::GET, &coll, &watching), "watch");
        assert_eq!(verb(&Method::DELETE, &coll, &none), "deletecollection");
        assert_eq!(verb(&Method::PATCH, &item, &none), "patch");
    }

    #[test]
    fn events_v1_view_renames_fields_both_ways() {
        let stored =
            json!({"involvedObject": {"name": "x"}, "message": "m", "count": 2, "reason": "r"});
        let ext = View::EventsV1.external(&stored);
        assert_eq!(ext["regarding"]["name"], "x");
        assert_eq!(ext["note"], "m");
        assert_eq!(ext["deprecatedCount"], 2);
        assert_eq!(ext["apiVersion"], "events.k8s.io/v1");
        let mut back = View::EventsV1.internal(ext);
        back.as_object_mut().unwrap().remove("apiVersion");
        back.as_object_mut().unwrap().remove("kind");
        assert_eq!(back, stored);
    }

    #[test]
    fn selection_boundary_crossings_become_added_and_deleted() {
        let sel = Selection {
            labels: LabelSelector::parse("app=x").unwrap(),
            ..Default::default()
        };
        let inside = json!({"metadata": {"name": "a", "namespace": "n", "labels": {"app": "x"}, "resourceVersion": "3"}});
        let outside = json!({"metadata": {"name": "a", "namespace": "n", "labels": {"app": "y"}, "resourceVersion": "4"}});
        let change = |previous: &Value, object: &Value| Change {
            rv: 4,
            resource: Resource::ConfigMaps,
            namespace: "n".into(),
            change: ChangeType::Modified,
            object: object.clone(),
            previous: Some(previous.clone()),
        };
        let (kind, obj) =
            render_change(View::ConfigMaps, &sel, &change(&inside, &outside)).unwrap();
        assert_eq!(kind, "DELETED");
        assert_eq!(obj["metadata"]["resourceVersion"], "4");
        assert_eq!(obj["metadata"]["labels"]["app"], "x");
        let (kind, _) = render_change(View::ConfigMaps, &sel, &change(&outside, &inside)).unwrap();
        assert_eq!(kind, "ADDED");
        assert!(render_change(View::ConfigMaps, &sel, &change(&outside, &outside)).is_none());
    }
}
