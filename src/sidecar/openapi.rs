//! The OpenAPI 3.1 description of the local API, served as `GET /openapi.json`.
//!
//! Generated, not written: every route is registered through `utoipa_axum`'s router from its
//! handler's `#[utoipa::path]` (path, method, parameters, responses, and the doc comment as
//! summary and description), so the document lists exactly the routes served; request and
//! response bodies are the handlers' own types (`ToSchema`), their doc comments the schemas'
//! descriptions. This file holds what the handlers share: the error responses (each narrows
//! the `Error` schema to the [`ErrorKind`]s that status can carry for that call), the path and
//! header parameters, the schemas of types defined outside the sidecar (kept honest by tests),
//! and the document's frame: info, tags, the bearer token, 401 and 408 on every operation.

use std::sync::OnceLock;

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Response};
use utoipa::{IntoParams, OpenApi, ToResponse, ToSchema};

use super::{ErrorBody, ErrorKind};

/// The OpenAPI document of the sidecar's local API.
pub fn document() -> Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| finish(super::api(0).into_openapi()))
        .clone()
}

/// The frame the routes are added to.
#[derive(OpenApi)]
#[openapi(
    info(title = "hakeeper sidecar local API", license(name = "Apache-2.0")),
    tags(
        (name = "clients", description = "A JobManager process registers as a client; every \
            leadership contended through the API is held on behalf of one client, and released \
            when that client is gone (its last event stream closed) or silent (no request with \
            its `Hakeeper-Client` id within the client timeout)."),
        (name = "leadership", description = "Contend for a component, follow its leader, release it."),
        (name = "probes", description = "Liveness, readiness, metrics and this document; no token needed."),
        (name = "jobs", description = "Job graphs and the running-jobs registry (owner: `dispatcher`)."),
        (name = "checkpoints", description = "Completed checkpoints and the checkpoint counter \
            (owner: `jobmanager/{jobId}`)."),
        (name = "blobs", description = "Immutable payloads without a handle (writes owned by `dispatcher`)."),
    ),
    components(
        // The data of the client stream's `released` event, named in its description.
        schemas(ErrorBody, super::client_api::ClientReleasedEvent),
        responses(Unauthorized, RequestTimeout, NotFound, MethodNotAllowed),
    ),
)]
pub(super) struct Frame;

/// The deadline `serve` puts on every request but an event stream.
fn request_timeout_secs() -> u64 {
    super::serve::Limits::default().request_timeout.as_secs()
}

fn description() -> String {
    let timeout = request_timeout_secs();
    format!(
        "The sidecar's local HTTP/JSON API (default `127.0.0.1:7070`, or a `unix:` socket): \
        leader election for Flink's components, and Flink's HA stores (job graphs, running-jobs \
        registry, completed checkpoints, checkpoint counter, blobs).\n\n\
        Every error is JSON `{{\"error\": kind, \"message\": text}}` (schema `Error`). A path the \
        API does not serve answers 404 `NotFound`; a served path with a method it does not take \
        answers 405 `MethodNotAllowed` (see `components.responses`). GET routes also answer \
        HEAD.\n\n\
        Leadership is held on behalf of a client (a JobManager process): register with \
        `POST /v1/clients`, keep `GET /v1/clients/{{clientId}}/events` open, and send a request \
        with `Hakeeper-Client: <clientId>` (any call, or \
        `POST /v1/clients/{{clientId}}/keepalive`) at least every `timeoutMs / 3`. \
        `PUT /v1/leadership/{{component}}` needs that header. When the client's last event \
        stream closes (reason `client_gone`), or it sends nothing with its id within \
        `timeoutMs` (`client_timeout`), every component it contended for is released as a \
        `DELETE` does. An open stream alone is no sign of life. On the routes that do not \
        declare it, the header is only a sign of life and never makes a call fail.\n\n\
        Leader-only calls need `Hakeeper-Session: <sessionId>`, the `sessionId` of \
        `GET /v1/leadership/{{owner}}` while `isLeader` is true; refusals are 409 `NotLeader` or \
        `StaleSession`. The store endpoints need `--storage-dir`, else they answer 503 \
        `StorageNotConfigured`. Store request bodies are limited to `--max-payload-bytes` \
        (1 MiB without `--storage-dir`): 413 `PayloadTooLarge`.\n\n\
        A request must complete within the request timeout ({timeout} s; the event streams, \
        `watch=1` and `/v1/clients/{{clientId}}/events`, are exempt), else 408 \
        `RequestTimeout`.\n\n\
        Requests the framework rejects before a handler runs (a path segment that does not \
        percent-decode to UTF-8, a malformed query string, a leadership or client registration \
        body over 2 MiB) get a plain-text 4xx instead of the JSON error."
    )
}

/// The routes' document, framed: OpenAPI's names for axum's catch-all parameters, the bearer
/// token (which guards exactly the paths under `/v1`), and the serving deadline (which bounds
/// every request).
fn finish(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).expect("the document serializes");
    doc["info"]["description"] = json!(description());
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["security"] = json!([{"bearerAuth": []}, {}]);
    doc["components"]["securitySchemes"] = json!({"bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "Only when the sidecar was started with `--token-file`: then every `/v1` \
            call needs `Authorization: Bearer <token>` (the file's first line) and answers 401 \
            `Unauthorized` without it. The probes, `/metrics` and `/openapi.json` never need it.",
    }});
    let paths = doc["paths"].as_object_mut().map(std::mem::take);
    for (path, mut item) in paths.into_iter().flatten() {
        let guarded = path.starts_with("/v1");
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let responses = &mut op["responses"];
            responses["408"] = json!({"$ref": "#/components/responses/RequestTimeout"});
            if guarded {
                responses["401"] = json!({"$ref": "#/components/responses/Unauthorized"});
            } else {
                op["security"] = json!([]);
            }
        }
        doc["paths"][path.replace("{*", "{")] = item;
    }
    doc
}

// ---------------------------------------------------------------------------------------
// Error responses

/// An error response whose `error` is one of `kinds`.
fn error_response(description: &str, kinds: &[ErrorKind]) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"allOf": [
            {"$ref": "#/components/schemas/Error"},
            {"type": "object", "properties": {"error": {"type": "string", "enum": kinds}}},
        ]}}},
    })
}

fn response(value: Value) -> RefOr<Response> {
    serde_json::from_value(value).expect("a response object")
}

/// Error responses, for `(status = ..., response = inline(Name))`: the doc comment is the
/// description (unless an expression follows the kinds), the kinds those the answer carries.
macro_rules! errors {
    ($($(#[doc = $doc:literal])+ $name:ident: [$($kind:ident),+] $(= $text:expr)?;)+) => {$(
        $(#[doc = $doc])+
        pub(super) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let text: String = errors!(@text [$($doc),+] $($text)?);
                let value = error_response(&text, &[$(ErrorKind::$kind),+]);
                (stringify!($name), response(value))
            }
        }
    )+};
    (@text [$($doc:literal),+]) => { [$($doc),+].map(str::trim).join(" ") };
    (@text [$($doc:literal),+] $text:expr) => { $text };
}

/// The retry advice of a 503.
const UNAVAILABLE: &str = "Retry: `StorageNotConfigured` (started without `--storage-dir`; lasts \
    until a restart with it), `ApiUnavailable` (the Kubernetes API failed or did not answer in \
    time), `StorageUnavailable` (object storage could not be reached), `OutcomeUnknown` (a \
    ConfigMap write was sent and whether it landed could not be settled; re-read before \
    retrying). Only the kinds listed for this call occur.";

/// The fence's refusals, the start of a 409's description.
const REFUSED: &str = "Refused: `NotLeader` (this sidecar does not lead the owner now), \
    `StaleSession` (no `Hakeeper-Session` UUID, or another grant's), `Contention` (the \
    ConfigMap kept changing; gave up)";

errors! {
    /// The sidecar requires `Authorization: Bearer <token>` on `/v1` calls and the request did
    /// not present the token.
    UnauthorizedBody: [Unauthorized];
    /// No such endpoint (answered for any path the API does not serve).
    NotFound: [NotFound];
    /// The path is served but does not take this method (answered for any such call).
    MethodNotAllowedBody: [MethodNotAllowed];
    /// A request over time.
    RequestTimeout: [RequestTimeout] = format!(
        "The request did not complete within {} s (the event streams, `watch=1` and \
         `/v1/clients/{{clientId}}/events`, are exempt).",
        request_timeout_secs()
    );

    // Clients
    /// `clientId` is not a UUID.
    BadClientId: [BadRequest];
    /// No such client is registered with this sidecar (never was, or released so long ago that
    /// it was forgotten); register with `POST /v1/clients`.
    UnknownClient: [UnknownClient];
    /// The client was released, and every leadership it held with it; the message says when and
    /// why (`client_gone`, `client_timeout`, `api_delete`, `shutdown`). Stop all leader work and
    /// register again.
    ClientReleased: [ClientReleased];
    /// The body is neither empty nor `{"name": "..."}` (unknown fields are refused).
    BadRegistration: [BadRequest];
    /// Too many clients, or shutting down.
    RegistrationRefused: [ShuttingDown, TooManyClients] = format!(
        "`TooManyClients`: {} clients are live already. `ShuttingDown`: the sidecar is shutting \
         down.",
        super::clients::MAX_CLIENTS
    );
    /// The sidecar is shutting down.
    ShuttingDown: [ShuttingDown];

    // Leadership and probes
    /// `ClientRequired`: no `Hakeeper-Client` header. `BadRequest`: not a component, a body
    /// that is not `{"address": "..."}`, a blank address, or a `Hakeeper-Client` that is not a
    /// UUID.
    BadContention: [BadRequest, ClientRequired];
    /// The component is contended already: on behalf of another client (or by `--contend`), or
    /// by this client with another address; DELETE it first.
    ContendedAlready: [Conflict];
    /// Not a component, or a `Hakeeper-Client` that is not a UUID.
    BadFollow: [BadRequest];
    /// With `watch=1` and `Hakeeper-Client`: no such client is registered.
    WatchUnknownClient: [UnknownClient];
    /// With `watch=1` and `Hakeeper-Client`: the client was released.
    WatchClientReleased: [ClientReleased];
    /// Shutting down, or following too many components.
    FollowRefused: [ShuttingDown, TooManyFollowed] = format!(
        "`ShuttingDown`: the sidecar is shutting down. `TooManyFollowed`: it already follows {} \
         components it does not contend.",
        super::MAX_FOLLOWED
    );
    /// Not a component (`dispatcher`, `resourcemanager`, `restserver`,
    /// `jobmanager/<32 lowercase hex>`).
    BadComponent: [BadRequest];
    /// This sidecar does not contend for the component.
    NotContending: [NotFound];
    /// `leader` is not a component.
    BadLeaderQuery: [BadRequest];
    /// `NotReady`: lock watches have not synced yet. `NotLeader`: this sidecar does not lead the
    /// `leader` component.
    NotReady: [NotReady, NotLeader];

    // Stores
    /// `jobId` is not 32 lowercase hexadecimal characters.
    BadJob: [BadRequest];
    /// `jobId` is not 32 lowercase hexadecimal characters, or `checkpointId` is not an integer
    /// from 0 to 9223372036854775807.
    BadCheckpoint: [BadRequest];
    /// The request body is over `--max-payload-bytes`.
    TooLarge: [PayloadTooLarge];
    /// The write would leave less than 16 KiB free below the ConfigMap's 1 MiB; nothing was
    /// sent.
    ConfigMapFull: [ConfigMapFull];
    /// Object storage refused (access denied, no such bucket, an object over
    /// `--max-payload-bytes`, ...).
    StorageRefused: [StorageError];
    /// `CorruptHandle`: the entry is not a valid state handle. `BadPayload`: the payload is
    /// missing, or not the size its handle records.
    BadStoredPayload: [CorruptHandle, BadPayload];
    /// A leader-only write of one handle, refused.
    HandleRefused: [NotLeader, StaleSession, Contention, Rejected] = format!(
        "{REFUSED}, `Rejected` (the entry changed meanwhile, or the write is known not to have \
         landed)."
    );
    /// A leader-only write of one plain entry, refused.
    EntryRefused: [NotLeader, StaleSession, Contention] = format!("{REFUSED}.");
    /// A write that also stores a payload.
    WriteUnavailable: [StorageNotConfigured, ApiUnavailable, StorageUnavailable, OutcomeUnknown]
        = UNAVAILABLE.into();
    /// A read that also fetches a payload.
    ReadUnavailable: [StorageNotConfigured, ApiUnavailable, StorageUnavailable]
        = UNAVAILABLE.into();
    /// A write of the ConfigMap alone.
    EntryUnavailable: [StorageNotConfigured, ApiUnavailable, OutcomeUnknown] = UNAVAILABLE.into();
    /// A read of the ConfigMap alone.
    ListUnavailable: [StorageNotConfigured, ApiUnavailable] = UNAVAILABLE.into();

    // Job graphs and status
    /// The graph being replaced was removed meanwhile (a concurrent DELETE).
    GraphGone: [NotFound];
    /// The entry of the graph being replaced is not a valid state handle.
    ReplacedGraphCorrupt: [CorruptHandle];
    /// No graph is stored for the job.
    NoGraph: [NotFound];
    /// `jobId` is not 32 lowercase hexadecimal characters, or the body is not `RUNNING` or
    /// `DONE`.
    BadStatus: [BadRequest];
    /// No status was set for the job.
    NoStatus: [NotFound];
    /// The entry holds neither `RUNNING` nor `DONE`.
    BadStoredStatus: [BadValue];

    // Checkpoints and the counter
    /// No checkpoint is retained.
    NoCheckpoint: [NotFound];
    /// Checkpoints are retained but none can be used (or, with `--strict-recovery`, one
    /// cannot).
    NoRecoverableCheckpoint: [NoRecoverableCheckpoint];
    /// The checkpoint is not retained.
    CheckpointNotRetained: [NotFound];
    /// A checkpoint add, refused.
    AddRefused: [NotLeader, StaleSession, Contention, Rejected, OutOfOrder, AlreadyExists] =
        format!(
            "{REFUSED}, `Rejected` (the entry changed meanwhile, or the write is known not to \
             have landed), `OutOfOrder` (the id is not greater than the newest retained one), \
             `AlreadyExists` (a concurrent add took the id)."
        );
    /// The stored `counter` entry is not a non-negative integer.
    BadStoredCounter: [BadValue];
    /// `jobId` is not 32 lowercase hexadecimal characters, or the body is not
    /// `{"value": <integer from 0 to 9223372036854775807>}`.
    BadCounter: [BadRequest];
    /// `BadRequest`: `jobId` is not 32 lowercase hexadecimal characters. `Invalid`: the counter
    /// is at its maximum.
    BadIncrement: [BadRequest, Invalid];

    // Blobs
    /// The key is outside the rules: 1 to 512 characters of `/`-separated segments of
    /// `[A-Za-z0-9._-]`, none empty, `.` or `..`.
    BadBlobKey: [Invalid];
    /// A blob already under the key was deleted while being compared.
    BlobGone: [NotFound];
    /// Refused: `NotLeader` (this sidecar does not lead `dispatcher` now), `StaleSession` (no
    /// `Hakeeper-Session` UUID, or another grant's), `AlreadyExists` (the key holds different
    /// bytes).
    BlobRefused: [NotLeader, StaleSession, AlreadyExists];
    /// No blob under the key.
    NoBlob: [NotFound];
    /// Refused: `NotLeader` (this sidecar does not lead `dispatcher` now), `StaleSession` (no
    /// `Hakeeper-Session` UUID, or another grant's).
    BlobDeleteRefused: [NotLeader, StaleSession];
    /// Object storage is not configured or not reachable.
    BlobUnavailable: [StorageNotConfigured, StorageUnavailable] = UNAVAILABLE.into();
}

/// 401, with `WWW-Authenticate: Bearer`.
pub(super) struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let mut value = serde_json::to_value(UnauthorizedBody::response().1).expect("serializes");
        value["headers"] =
            json!({"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}});
        ("Unauthorized", response(value))
    }
}

/// 405, with the `Allow` header.
pub(super) struct MethodNotAllowed;

impl<'r> ToResponse<'r> for MethodNotAllowed {
    fn response() -> (&'r str, RefOr<Response>) {
        let mut value =
            serde_json::to_value(MethodNotAllowedBody::response().1).expect("serializes");
        value["headers"] = json!({"Allow": {
            "description": "The methods the path takes, e.g. `GET,HEAD`.",
            "schema": {"type": "string"},
        }});
        ("MethodNotAllowed", response(value))
    }
}

/// 413 from the framework (its 2 MiB limit on leadership and registration bodies): plain text.
pub(super) struct FrameworkTooLarge;

impl<'r> ToResponse<'r> for FrameworkTooLarge {
    fn response() -> (&'r str, RefOr<Response>) {
        let value = json!({
            "description": "The body is over 2 MiB (the framework's limit, answered in plain text).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        });
        ("FrameworkTooLarge", response(value))
    }
}

// ---------------------------------------------------------------------------------------
// Parameters

/// `{component}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct ComponentPath {
    /// `dispatcher`, `resourcemanager`, `restserver` or `jobmanager/<jobId>`. A jobmanager
    /// component contains a slash: it is sent as two path segments
    /// (`/v1/leadership/jobmanager/<jobId>`) or with the slash percent-encoded
    /// (`jobmanager%2F<jobId>`); both are accepted.
    #[param(value_type = ComponentName)]
    component: String,
}

/// `{clientId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct ClientPath {
    /// The `clientId` of `POST /v1/clients`.
    #[param(format = Uuid)]
    client_id: String,
}

/// `{jobId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct JobPath {
    /// Flink's job id: 32 lowercase hexadecimal characters.
    #[param(value_type = JobId)]
    job_id: String,
}

/// `{jobId}` and `{checkpointId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct CheckpointPath {
    /// Flink's job id: 32 lowercase hexadecimal characters.
    #[param(value_type = JobId)]
    job_id: String,
    /// The checkpoint id: an integer from 0 to 9223372036854775807 (Flink's ids are Java
    /// `long`s; the ConfigMap keys hold 19 digits).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    checkpoint_id: u64,
}

/// `{key}` of a blob.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct BlobPath {
    /// 1 to 512 characters of `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or
    /// `..`. The slashes are sent as path separators (or percent-encoded); e.g.
    /// `job-1/blob_p-0a1b2c`.
    #[param(
        min_length = 1,
        max_length = 512,
        pattern = r"^(?!(.*/)?\.\.?(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
    )]
    key: String,
}

/// `Hakeeper-Session` of a leader-only call. Not `required` in the document: a call without it
/// is well-formed, and the fence refuses it as it refuses a stale session (409).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct SessionHeader {
    /// Needed for the write to happen: the `sessionId` of `GET /v1/leadership/{owner}` while
    /// `isLeader` is true (a new one for every grant). Missing, not a UUID, or another grant's:
    /// 409 `StaleSession` (or `NotLeader` when this sidecar does not lead the owner at all).
    #[param(rename = "Hakeeper-Session", format = Uuid, required = false)]
    session: String,
}

/// `Hakeeper-Client` where the call is made for that client.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct ClientHeader {
    /// The `clientId` of `POST /v1/clients`: the client the contention is for. Missing: 400
    /// `ClientRequired`; not a UUID: 400 `BadRequest`; unknown: 404 `UnknownClient`; released:
    /// 410 `ClientReleased`. Also a sign of the client's life, as on any call.
    #[param(rename = "Hakeeper-Client", format = Uuid)]
    client: String,
}

/// `Hakeeper-Client` where a stream may be the client's lifeline.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct LifelineHeader {
    /// On any call, a sign of the client's life. With `watch=1` the stream is also a lifeline
    /// of the client, as its `/v1/clients/{clientId}/events` stream is: while it is open the
    /// client is not gone, and when the client's last stream closes it is released
    /// (`client_gone`). Not a UUID: 400 `BadRequest`. Unknown: 404 `UnknownClient`; released:
    /// 410 `ClientReleased` (these two only with `watch=1`).
    #[param(rename = "Hakeeper-Client", format = Uuid, required = false)]
    client: String,
}

// ---------------------------------------------------------------------------------------
// Schemas of types defined outside the sidecar, and of the event streams

/// A component that elects a leader.
#[derive(ToSchema)]
#[schema(
    as = Component,
    value_type = String,
    pattern = "^(dispatcher|resourcemanager|restserver|jobmanager/[0-9a-f]{32})$",
    example = "jobmanager/5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f"
)]
pub(super) struct ComponentName(#[allow(dead_code)] String);

/// Flink's job id.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    pattern = "^[0-9a-f]{32}$",
    example = "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f"
)]
pub(super) struct JobId(#[allow(dead_code)] String);

/// Why a client was released: its last event stream closed (`client_gone`, never seen on a
/// stream, as none is left), it was silent past the client timeout (`client_timeout`),
/// `DELETE /v1/clients/{clientId}` (`api_delete`), or the sidecar stopped (`shutdown`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(super) enum ClientReleaseReason {
    ClientGone,
    ClientTimeout,
    ApiDelete,
    Shutdown,
}

/// A raw payload (`application/octet-stream`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(super) struct Payload(#[allow(dead_code)] Vec<u8>);

/// Each event: its name, and its `data` as one line of JSON: `client` a `Client`,
/// `leadership` a `LeadershipState`, `released` a `ClientReleasedEvent`. Keep-alive comments
/// in between.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct ClientEvent {
    #[schema(inline)]
    event: ClientEventName,
    data: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum ClientEventName {
    Client,
    Leadership,
    Released,
}

/// Each event: named `leadership`, its `data` a `LeadershipState` as one line of JSON; and
/// keep-alive comments.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct LeadershipEvent {
    #[schema(inline)]
    event: LeadershipEventName,
    data: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum LeadershipEventName {
    Leadership,
}

/// A field that is always `true`.
pub(super) fn always_true() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

/// A field that is always `false`.
pub(super) fn always_false() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Boolean)
        .enum_values(Some([false]))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn walk<'a>(value: &'a Value, visit: &mut impl FnMut(&'a Value)) {
        visit(value);
        match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, visit)),
            Value::Object(map) => map.values().for_each(|v| walk(v, visit)),
            _ => {}
        }
    }

    /// Every operation: (path, method, operation).
    fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if METHODS.contains(&method.as_str()) {
                    ops.push((path.as_str(), method.as_str(), op));
                }
            }
        }
        ops
    }

    #[test]
    fn is_openapi_3_1_json() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string());
        assert!(doc["info"]["version"].is_string());
        let text = serde_json::to_string(&doc).expect("serializes");
        let back: Value = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, doc);
    }

    /// The routes `api` (mod.rs) serves, as the routers of store_api.rs, client_api.rs and
    /// leadership_api.rs register them, with OpenAPI's names for axum's catch-all parameters
    /// (`{*component}`, `{*key}` there). The served document is generated from the same router,
    /// so a route cannot be served without its operation; this pins the set.
    #[test]
    fn lists_exactly_the_routed_operations() {
        let expected: BTreeSet<(&str, &str)> = [
            ("/v1/clients", "post"),
            ("/v1/clients/{clientId}", "get"),
            ("/v1/clients/{clientId}", "delete"),
            ("/v1/clients/{clientId}/keepalive", "post"),
            ("/v1/clients/{clientId}/events", "get"),
            ("/v1/leadership/{component}", "put"),
            ("/v1/leadership/{component}", "get"),
            ("/v1/leadership/{component}", "delete"),
            ("/livez", "get"),
            ("/metrics", "get"),
            ("/readyz", "get"),
            ("/openapi.json", "get"),
            ("/v1/jobs", "get"),
            ("/v1/jobs/{jobId}/graph", "put"),
            ("/v1/jobs/{jobId}/graph", "get"),
            ("/v1/jobs/{jobId}/graph", "delete"),
            ("/v1/jobs/{jobId}/status", "put"),
            ("/v1/jobs/{jobId}/status", "get"),
            ("/v1/jobs/{jobId}/checkpoints", "get"),
            ("/v1/jobs/{jobId}/checkpoints/latest", "get"),
            ("/v1/jobs/{jobId}/checkpoints/{checkpointId}", "post"),
            ("/v1/jobs/{jobId}/checkpoints/{checkpointId}", "get"),
            ("/v1/jobs/{jobId}/checkpoints/{checkpointId}", "delete"),
            ("/v1/jobs/{jobId}/checkpoint-counter", "get"),
            ("/v1/jobs/{jobId}/checkpoint-counter", "put"),
            ("/v1/jobs/{jobId}/checkpoint-counter/increment", "post"),
            ("/v1/blobs/{key}", "put"),
            ("/v1/blobs/{key}", "get"),
            ("/v1/blobs/{key}", "delete"),
        ]
        .into_iter()
        .collect();
        let doc = document();
        let listed: Vec<(&str, &str)> = operations(&doc)
            .into_iter()
            .map(|(path, method, _)| (path, method))
            .collect();
        let unique: BTreeSet<(&str, &str)> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a (path, method) twice");
        assert_eq!(unique, expected);
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        walk(&doc, &mut |v| {
            if let Some(r) = v.get("$ref") {
                refs.push(r.as_str().expect("$ref is a string").to_string());
            }
        });
        assert!(refs.len() > 20, "{refs:?}");
        for r in refs {
            let pointer = r.strip_prefix('#').expect("a local $ref");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let mut seen = BTreeSet::new();
        for (path, method, op) in operations(&doc) {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(seen.insert(id), "operationId {id} twice");
        }
    }

    /// Every operation is complete, every path parameter declared, every request under the
    /// serving deadline, and the token guards exactly the /v1 calls.
    #[test]
    fn operations_are_complete() {
        let doc = document();
        let resolve = |v: &Value| -> Value {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => doc.pointer(&r[1..]).expect("resolves").clone(),
                None => v.clone(),
            }
        };
        for (path, method, op) in operations(&doc) {
            let at = format!("{method} {path}");
            assert!(op["summary"].is_string(), "{at}: summary");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success response"
            );
            for (status, response) in responses {
                let response = resolve(response);
                assert!(status.parse::<u16>().is_ok(), "{at}: status {status}");
                assert!(response["description"].is_string(), "{at} {status}");
                assert!(response["content"].is_object(), "{at} {status}: no content");
                // Errors are JSON `Error`s, but for the framework's plain-text 413.
                if status.as_str() >= "400" && response["content"].get("text/plain").is_none() {
                    let schema = &response["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["allOf"][0]["$ref"], "#/components/schemas/Error",
                        "{at} {status}"
                    );
                }
            }
            let mut declared = BTreeSet::new();
            let shared = doc["paths"][path]["parameters"].as_array().cloned();
            let own = op["parameters"].as_array().cloned();
            for p in shared.into_iter().chain(own).flatten() {
                let p = resolve(&p);
                if p["in"] == "path" {
                    assert_eq!(p["required"], true, "{at}: {p}");
                    declared.insert(p["name"].as_str().expect("name").to_string());
                }
            }
            let templated: BTreeSet<String> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string)
                .collect();
            assert_eq!(declared, templated, "{at}: path parameters");
            assert!(responses.contains_key("408"), "{at}: no 408");
            if path.starts_with("/v1") {
                assert!(op.get("security").is_none(), "{at}");
                assert!(responses.contains_key("401"), "{at}: no 401");
            } else {
                assert_eq!(op["security"], json!([]), "{at}");
                assert!(!responses.contains_key("401"), "{at}");
            }
        }
    }

    /// The error kinds the responses name are exactly the `Error` schema's, which are the
    /// code's: the variants of `ErrorKind`, the only type `ApiError` takes as its kind.
    #[test]
    fn error_kinds_match_the_error_schema() {
        let doc = document();
        let listed = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
            .as_array()
            .expect("enum");
        let declared: BTreeSet<&str> = listed.iter().map(|k| k.as_str().expect("kind")).collect();
        assert_eq!(declared.len(), listed.len(), "a kind twice");
        // The enum's variants, as the code serializes them.
        for kind in &declared {
            let parsed: ErrorKind = serde_json::from_value(json!(kind)).expect("a variant");
            assert_eq!(json!(parsed), json!(kind));
        }
        let required = &doc["components"]["schemas"]["Error"]["required"];
        assert_eq!(*required, json!(["error", "message"]));
        let mut used = BTreeSet::new();
        walk(&doc, &mut |v| {
            let Some(all_of) = v.get("allOf").and_then(Value::as_array) else {
                return;
            };
            if all_of.first() != Some(&json!({"$ref": "#/components/schemas/Error"})) {
                return;
            }
            for k in all_of[1]["properties"]["error"]["enum"]
                .as_array()
                .expect("narrowed kinds")
            {
                used.insert(k.as_str().expect("kind"));
            }
        });
        assert_eq!(used, declared);
    }

    /// Both event streams are documented: `text/event-stream`, their event names, the schema
    /// of each event's data named in the description, an example.
    #[test]
    fn event_streams_are_documented() {
        let doc = document();
        let resolve = |v: &Value| -> Value {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => doc.pointer(&r[1..]).expect("resolves").clone(),
                None => v.clone(),
            }
        };
        let streams = [
            (
                "/v1/clients/{clientId}/events",
                vec!["client", "leadership", "released"],
                vec!["`Client`", "`LeadershipState`", "`ClientReleasedEvent`"],
            ),
            (
                "/v1/leadership/{component}",
                vec!["leadership"],
                vec!["`LeadershipState`"],
            ),
        ];
        for (path, names, data) in streams {
            let ok = &doc["paths"][path]["get"]["responses"]["200"];
            let stream = &ok["content"]["text/event-stream"];
            assert!(
                stream["example"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("event: ")),
                "{path}: {ok}"
            );
            let schema = resolve(&stream["schema"]);
            assert_eq!(
                schema["properties"]["event"]["enum"],
                json!(names),
                "{path}"
            );
            assert!(schema["properties"]["data"].is_object(), "{path}");
            let description = schema["description"].as_str().expect("described");
            for d in data {
                assert!(description.contains(d), "{path}: {description}");
            }
        }
        // The JSON answer beside the stream, and the data schemas the descriptions name.
        let leadership = &doc["paths"]["/v1/leadership/{component}"]["get"]["responses"]["200"];
        assert_eq!(
            leadership["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/LeadershipState"
        );
        for name in ["Client", "LeadershipState", "ClientReleasedEvent"] {
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }

    /// The schemas of the JSON bodies the handlers answer are the serialized types', field for
    /// field: every property a body has is in its schema, and every required one in the body.
    #[test]
    fn schemas_match_what_the_types_serialize() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let check = |name: &str, body: Value| {
            let schema = &schemas[name];
            let properties = schema["properties"].as_object().expect(name);
            let fields = body.as_object().expect("an object");
            for key in fields.keys() {
                assert!(
                    properties.contains_key(key),
                    "{name}: {key} not in the schema"
                );
            }
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().expect("a name");
                assert!(
                    fields.contains_key(key),
                    "{name}: {key} required but not sent"
                );
            }
        };
        let error = ErrorBody {
            error: ErrorKind::NotFound,
            message: "no such endpoint".into(),
        };
        check("Error", json!(error));
        let (_, nothing) = tokio::sync::watch::channel(crate::retrieval::Retrieved::default());
        let component: crate::layout::Component = "dispatcher".parse().expect("a component");
        let view = super::super::Source::Follower(nothing).view(
            &component,
            Some(super::super::LastRelease {
                reason: crate::election::ReleaseReason::Lost,
                at: std::time::Instant::now(),
                client: None,
            }),
        );
        let view = json!(view);
        check("LeadershipState", view.clone());
        check("LastRelease", view["lastRelease"].clone());
    }

    /// The router the sidecar runs serves every operation the document lists (the answer is
    /// not the fallback's 404 `no such endpoint`, nor 405), and no other method on those
    /// paths (405, but HEAD where GET is served). With `lists_exactly_the_routed_operations`
    /// and the document being generated from the same router: the document lists exactly what
    /// is served.
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_operations() {
        use tower::ServiceExt;

        // Nothing listens there: calls that reach the API server fail, which is an answer.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client");
        let sidecar = super::super::Sidecar::new(super::super::SidecarConfig {
            client,
            namespace: "default".into(),
            cluster_id: "openapi".parse().expect("a cluster id"),
            identity: "openapi-test".into(),
            timings: crate::lease::Timings::default(),
            owner: None,
            stores: None,
            client_timeout: std::time::Duration::from_secs(10),
        });
        let router = super::super::router(sidecar);
        let doc = document();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let uri = path
                .replace("{component}", "resourcemanager")
                .replace("{clientId}", &uuid::Uuid::new_v4().to_string())
                .replace("{jobId}", "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f")
                .replace("{checkpointId}", "1")
                .replace("{key}", "job-1/blob");
            let documented: BTreeSet<&str> = item
                .as_object()
                .expect("path item")
                .keys()
                .map(String::as_str)
                .filter(|m| METHODS.contains(m))
                .collect();
            for method in METHODS {
                let request = axum::http::Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .body(axum::body::Body::empty())
                    .expect("a request");
                let response = router.clone().oneshot(request).await.expect("an answer");
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&body);
                let served = status != axum::http::StatusCode::METHOD_NOT_ALLOWED
                    && !body.contains("no such endpoint");
                let expected =
                    documented.contains(method) || (method == "head" && documented.contains("get"));
                assert_eq!(served, expected, "{method} {uri}: {status} {body}");
            }
        }
    }
}
