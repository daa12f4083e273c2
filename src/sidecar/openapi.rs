//! The OpenAPI 3.0.3 description of the local API, served as `GET /openapi.json`.
//!
//! Written by hand from the routers (`router` in `mod.rs`, `routes` in `store_api.rs` and
//! `client_api.rs`), the handlers and the error mapping (`From<StoreError> for ApiError`). Every error response
//! narrows the `Error` schema to the `error` kinds that status can carry for that call. The
//! tests pin the (path, method) pairs to the routers' and check that the document is
//! self-contained: change the routers and this file together.

use serde_json::{Value, json};

/// Every `error` kind the API answers: docs/API.md's table.
const ERROR_KINDS: [&str; 31] = [
    "BadRequest",
    "ClientRequired",
    "Invalid",
    "Unauthorized",
    "NotFound",
    "UnknownClient",
    "ClientReleased",
    "MethodNotAllowed",
    "RequestTimeout",
    "Conflict",
    "NotLeader",
    "StaleSession",
    "AlreadyExists",
    "OutOfOrder",
    "Contention",
    "Rejected",
    "PayloadTooLarge",
    "CorruptHandle",
    "BadPayload",
    "BadValue",
    "NoRecoverableCheckpoint",
    "StorageError",
    "ShuttingDown",
    "NotReady",
    "TooManyFollowed",
    "TooManyClients",
    "StorageUnavailable",
    "ApiUnavailable",
    "OutcomeUnknown",
    "StorageNotConfigured",
    "ConfigMapFull",
];

const COMPONENT_PATTERN: &str = "^(dispatcher|resourcemanager|restserver|jobmanager/[0-9a-f]{32})$";
const JOB_ID_PATTERN: &str = "^[0-9a-f]{32}$";
/// `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
const BLOB_KEY_PATTERN: &str = r"^(?!(.*/)?\.\.?(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$";

/// The OpenAPI document of the sidecar's local API.
pub fn document() -> Value {
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": info(),
        "tags": [
            {
                "name": "clients",
                "description": "A JobManager process registers as a client; every leadership \
                    contended through the API is held on behalf of one client, and released when \
                    that client is gone (its last event stream closed) or silent (no request \
                    with its `Hakeeper-Client` id within the client timeout).",
            },
            {
                "name": "leadership",
                "description": "Contend for a component, follow its leader, release it.",
            },
            {
                "name": "probes",
                "description": "Liveness, readiness, metrics and this document; no token needed.",
            },
            {
                "name": "jobs",
                "description": "Job graphs and the running-jobs registry (owner: `dispatcher`).",
            },
            {
                "name": "checkpoints",
                "description": "Completed checkpoints and the checkpoint counter (owner: \
                    `jobmanager/{jobId}`).",
            },
            {
                "name": "blobs",
                "description": "Immutable payloads without a handle (writes owned by \
                    `dispatcher`).",
            },
        ],
        "security": [{"bearerAuth": []}, {}],
        "paths": {
            "/v1/clients": register_client(),
            "/v1/clients/{clientId}": client(),
            "/v1/clients/{clientId}/keepalive": keepalive(),
            "/v1/clients/{clientId}/events": client_events(),
            "/v1/leadership/{component}": leadership(),
            "/livez": livez(),
            "/readyz": readyz(),
            "/metrics": metrics(),
            "/openapi.json": openapi(),
            "/v1/jobs": jobs(),
            "/v1/jobs/{jobId}/graph": graph(),
            "/v1/jobs/{jobId}/status": status(),
            "/v1/jobs/{jobId}/checkpoints": checkpoints(),
            "/v1/jobs/{jobId}/checkpoints/latest": latest_checkpoint(),
            "/v1/jobs/{jobId}/checkpoints/{checkpointId}": checkpoint(),
            "/v1/jobs/{jobId}/checkpoint-counter": counter(),
            "/v1/jobs/{jobId}/checkpoint-counter/increment": increment(),
            "/v1/blobs/{key}": blob(),
        },
        "components": {
            "schemas": schemas(),
            "parameters": parameters(),
            "headers": headers(),
            "responses": responses(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only when the sidecar was started with `--token-file`: \
                        then every `/v1` call needs `Authorization: Bearer <token>` (the file's \
                        first line) and answers 401 `Unauthorized` without it. The probes, \
                        `/metrics` and `/openapi.json` never need it.",
                },
            },
        },
    });
    // The token middleware guards exactly the paths under /v1; the serving deadline bounds
    // every request.
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let guarded = path.starts_with("/v1");
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if method == "parameters" {
                    continue;
                }
                op["responses"]["408"] = reference("responses", "RequestTimeout");
                if guarded {
                    op["responses"]["401"] = reference("responses", "Unauthorized");
                } else {
                    op["security"] = json!([]);
                }
            }
        }
    }
    doc
}

/// The deadline `serve` puts on every request but an event stream.
fn request_timeout_secs() -> u64 {
    super::serve::Limits::default().request_timeout.as_secs()
}

fn info() -> Value {
    let timeout = request_timeout_secs();
    json!({
        "title": "hakeeper sidecar local API",
        "version": env!("CARGO_PKG_VERSION"),
        "license": {"name": "Apache-2.0"},
        "description": format!(
            "The sidecar's local HTTP/JSON API (default `127.0.0.1:7070`, or a `unix:` \
            socket): leader election for Flink's components, and Flink's HA stores (job graphs, \
            running-jobs registry, completed checkpoints, checkpoint counter, blobs).\n\n\
            Every error is JSON `{{\"error\": kind, \"message\": text}}` (schema `Error`). A path \
            the API does not serve answers 404 `NotFound`; a served path with a method it does \
            not take answers 405 `MethodNotAllowed` (see `components.responses`). GET routes \
            also answer HEAD.\n\n\
            Leadership is held on behalf of a client (a JobManager process): register with \
            `POST /v1/clients`, keep `GET /v1/clients/{{clientId}}/events` open, and send a \
            request with `Hakeeper-Client: <clientId>` (any call, or \
            `POST /v1/clients/{{clientId}}/keepalive`) at least every `timeoutMs / 3`. \
            `PUT /v1/leadership/{{component}}` needs that header. When the client's last event \
            stream closes (reason `client_gone`), or it sends nothing with its id within \
            `timeoutMs` (`client_timeout`), every component it contended for is released as a \
            `DELETE` does. An open stream alone is no sign of life. On the routes that do not \
            declare it, the header is only a sign of life and never makes a call fail.\n\n\
            Leader-only calls need `Hakeeper-Session: <sessionId>`, the `sessionId` of \
            `GET /v1/leadership/{{owner}}` while `isLeader` is true; refusals are 409 \
            `NotLeader` or `StaleSession`. The store endpoints need `--storage-dir`, else they \
            answer 503 `StorageNotConfigured`. Store request bodies are limited to \
            `--max-payload-bytes` (1 MiB without `--storage-dir`): 413 `PayloadTooLarge`.\n\n\
            A request must complete within the request timeout ({timeout} s; the event streams, \
            `watch=1` and `/v1/clients/{{clientId}}/events`, are exempt), else 408 \
            `RequestTimeout`.\n\n\
            Requests the framework rejects before a handler runs (a path segment that does not \
            percent-decode to UTF-8, a malformed query string, a leadership or client \
            registration body over 2 MiB) get a plain-text 4xx instead of the JSON error."
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Building blocks

fn reference(section: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{section}/{name}")})
}

fn schema(name: &str) -> Value {
    reference("schemas", name)
}

fn json_response(description: &str, schema_name: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema(schema_name)}},
    })
}

fn text_response(description: &str, body: Value) -> Value {
    json!({
        "description": description,
        "content": {"text/plain": {"schema": body}},
    })
}

/// A raw payload (`application/octet-stream`), with `headers` (an object, maybe empty).
fn payload_response(description: &str, headers: Value) -> Value {
    json!({
        "description": description,
        "headers": headers,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    })
}

/// An error response whose `error` is one of `kinds`.
fn error(description: &str, kinds: &[&str]) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {
            "allOf": [
                schema("Error"),
                {"type": "object", "properties": {"error": {"type": "string", "enum": kinds}}},
            ],
        }}},
    })
}

fn payload_body(description: &str) -> Value {
    json!({
        "description": description,
        "required": true,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    })
}

fn bad_job() -> Value {
    error(
        "`jobId` is not 32 lowercase hexadecimal characters.",
        &["BadRequest"],
    )
}

fn bad_job_or_checkpoint() -> Value {
    error(
        "`jobId` is not 32 lowercase hexadecimal characters, or `checkpointId` is not a \
         non-negative integer.",
        &["BadRequest"],
    )
}

fn too_large() -> Value {
    error(
        "The request body is over `--max-payload-bytes`.",
        &["PayloadTooLarge"],
    )
}

fn config_map_full() -> Value {
    error(
        "The write would leave less than 16 KiB free below the ConfigMap's 1 MiB; nothing \
         was sent.",
        &["ConfigMapFull"],
    )
}

fn storage_error() -> Value {
    error(
        "Object storage refused (access denied, no such bucket, an object over \
         `--max-payload-bytes`, ...).",
        &["StorageError"],
    )
}

/// 409 of a leader-only call whose ConfigMap write is a compare-and-swap of one handle;
/// `extra` adds kinds of its own, with what they mean.
fn handle_write_conflict(extra: &[(&str, &str)]) -> Value {
    let mut kinds = vec!["NotLeader", "StaleSession", "Contention", "Rejected"];
    let mut description = "Refused: `NotLeader` (this sidecar does not lead the owner now), \
        `StaleSession` (no `Hakeeper-Session` UUID, or another grant's), `Contention` (the \
        ConfigMap kept changing; gave up), `Rejected` (the entry changed meanwhile, or the \
        write is known not to have landed)"
        .to_string();
    for (kind, meaning) in extra {
        kinds.push(kind);
        description.push_str(&format!(", `{kind}` ({meaning})"));
    }
    description.push('.');
    error(&description, &kinds)
}

/// 409 of a leader-only call that writes one plain ConfigMap entry.
fn entry_write_conflict() -> Value {
    error(
        "Refused: `NotLeader` (this sidecar does not lead the owner now), `StaleSession` (no \
         `Hakeeper-Session` UUID, or another grant's), `Contention` (the ConfigMap kept \
         changing; gave up).",
        &["NotLeader", "StaleSession", "Contention"],
    )
}

fn unavailable(kinds: &[&str]) -> Value {
    error(
        "Retry: `StorageNotConfigured` (started without `--storage-dir`; lasts until a \
         restart with it), `ApiUnavailable` (the Kubernetes API failed or did not answer in \
         time), `StorageUnavailable` (object storage could not be reached), `OutcomeUnknown` \
         (a ConfigMap write was sent and whether it landed could not be settled; re-read \
         before retrying). Only the kinds listed for this call occur.",
        kinds,
    )
}

/// 503 of a read that also fetches a payload.
fn read_unavailable() -> Value {
    unavailable(&[
        "StorageNotConfigured",
        "ApiUnavailable",
        "StorageUnavailable",
    ])
}

fn session() -> Value {
    reference("parameters", "Session")
}

// ---------------------------------------------------------------------------------------
// Clients

fn unknown_client() -> Value {
    error(
        "No such client is registered with this sidecar (never was, or released so long ago \
         that it was forgotten); register with `POST /v1/clients`.",
        &["UnknownClient"],
    )
}

fn client_released() -> Value {
    error(
        "The client was released, and every leadership it held with it; the message says \
         when and why (`client_gone`, `client_timeout`, `api_delete`, `shutdown`). Stop all \
         leader work and register again.",
        &["ClientReleased"],
    )
}

fn bad_client_id() -> Value {
    error("`clientId` is not a UUID.", &["BadRequest"])
}

fn register_client() -> Value {
    json!({
        "post": {
            "operationId": "registerClient",
            "tags": ["clients"],
            "summary": "Register a client (a JobManager process)",
            "description": "A new client, alive from now. Then open its event stream, keep it \
                open for as long as the process lives, and send a request with \
                `Hakeeper-Client: <clientId>` (any call, or the keepalive) at least every \
                `timeoutMs / 3`.",
            "requestBody": {
                "description": "Optional; parsed as JSON whatever the Content-Type. An empty \
                    body registers a client without a name.",
                "required": false,
                "content": {"application/json": {"schema": schema("ClientRegistration")}},
            },
            "responses": {
                "201": json_response("Registered.", "Client"),
                "400": error(
                    "The body is neither empty nor `{\"name\": \"...\"}` (unknown fields are \
                     refused).",
                    &["BadRequest"],
                ),
                "413": text_response(
                    "The body is over 2 MiB (the framework's limit, answered in plain text).",
                    json!({"type": "string"}),
                ),
                "503": error(
                    &format!(
                        "`TooManyClients`: {} clients are live already. `ShuttingDown`: the \
                         sidecar is shutting down.",
                        super::clients::MAX_CLIENTS
                    ),
                    &["ShuttingDown", "TooManyClients"],
                ),
            },
        },
    })
}

fn client() -> Value {
    json!({
        "parameters": [reference("parameters", "ClientId")],
        "get": {
            "operationId": "describeClient",
            "tags": ["clients"],
            "summary": "Describe a live client",
            "description": "Not a sign of life by itself (send `Hakeeper-Client` for that).",
            "responses": {
                "200": json_response("The client.", "ClientDescription"),
                "400": bad_client_id(),
                "404": unknown_client(),
                "410": client_released(),
            },
        },
        "delete": {
            "operationId": "endClient",
            "tags": ["clients"],
            "summary": "End a client, releasing everything it contended for",
            "description": "Every component the client contended for is released as \
                `DELETE /v1/leadership/{component}` does (leader work stops first, then one \
                compare-and-swap frees the lock), before the answer; reason `api_delete`. Its \
                event streams get their final events and end.",
            "responses": {
                "200": json_response("Ended; the components released.", "ClientEnded"),
                "400": bad_client_id(),
                "404": unknown_client(),
                "410": client_released(),
            },
        },
    })
}

fn keepalive() -> Value {
    json!({
        "parameters": [reference("parameters", "ClientId")],
        "post": {
            "operationId": "keepClientAlive",
            "tags": ["clients"],
            "summary": "Show that a client lives",
            "description": "A sign of life, as any request with `Hakeeper-Client` is; send one \
                at least every `timeoutMs / 3`. Its errors tell a client that was asleep where \
                it stands. Any request body is ignored.",
            "responses": {
                "200": json_response("Alive; the components it contends for.", "ClientKeepalive"),
                "400": bad_client_id(),
                "404": unknown_client(),
                "410": client_released(),
            },
        },
    })
}

fn client_events() -> Value {
    json!({
        "parameters": [reference("parameters", "ClientId")],
        "get": {
            "operationId": "clientEvents",
            "tags": ["clients"],
            "summary": "The client's lifeline: its event stream",
            "description": "Server-Sent Events. First a `client` event (the object of \
                `POST /v1/clients`); then a `leadership` event (a `LeadershipState`) for each \
                component the client contends for, at once and whenever its state changes (not \
                when only `leaseRemainingMs` or `lastRelease.agoMs` moved). When the client is \
                released: a last `leadership` event per component (`contending: false`, \
                `isLeader: false`, `sessionId` and `clientId` null, `synced: false`: never the \
                state of whoever contends for it next), a \
                `released` event, and the end of the stream. Keep-alive comments every 15 s.\n\n\
                While any of the client's streams is open, the client is not gone; when its \
                last one closes (the process died, or the connection was closed or half-closed) \
                it is released at once, reason `client_gone`. An open stream is no sign of life \
                by itself: the client must still send a request with its id within \
                `timeoutMs`. Exempt from the request timeout.",
            "responses": {
                "200": {
                    "description": "The stream.",
                    "content": {
                        "text/event-stream": {
                            "schema": {
                                "type": "object",
                                "description": "Each event: its name, and its `data` as one \
                                    line of JSON: `client` a `Client`, `leadership` a \
                                    `LeadershipState`, `released` a `ClientReleasedEvent`.",
                                "properties": {
                                    "event": {
                                        "type": "string",
                                        "enum": ["client", "leadership", "released"],
                                    },
                                    "data": {"type": "string"},
                                },
                            },
                            "example": "event: client\ndata: {\"clientId\":\
                                \"7d0f6c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f\",\"name\":\"jm-0\",\
                                \"timeoutMs\":10000}\n\nevent: leadership\ndata: \
                                {\"component\":\"dispatcher\",\"contending\":true,\
                                \"clientId\":\"7d0f6c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f\",\
                                \"isLeader\":true,...}\n\n",
                        },
                    },
                },
                "400": bad_client_id(),
                "404": unknown_client(),
                "410": client_released(),
                "503": error("The sidecar is shutting down.", &["ShuttingDown"]),
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// Leadership and probes

fn leadership() -> Value {
    let bad_component = || {
        error(
            "Not a component (`dispatcher`, `resourcemanager`, `restserver`, \
             `jobmanager/<32 lowercase hex>`).",
            &["BadRequest"],
        )
    };
    json!({
        "parameters": [reference("parameters", "Component")],
        "put": {
            "operationId": "contend",
            "tags": ["leadership"],
            "summary": "Start contending for a component, on behalf of a client",
            "description": "Contend with the address to publish while this process leads, on \
                behalf of the client of `Hakeeper-Client`: the contention (and any leadership) \
                lasts as long as that client lives. Idempotent for the same client and address. \
                Answers at once with the current state; leadership follows asynchronously (the \
                client's event stream reports it).",
            "parameters": [reference("parameters", "Client")],
            "requestBody": {
                "description": "Parsed as JSON whatever the Content-Type.",
                "required": true,
                "content": {"application/json": {"schema": schema("ContendRequest")}},
            },
            "responses": {
                "202": json_response("Contending; the component's state now.", "LeadershipState"),
                "400": error(
                    "`ClientRequired`: no `Hakeeper-Client` header. `BadRequest`: not a \
                     component, a body that is not `{\"address\": \"...\"}`, a blank address, \
                     or a `Hakeeper-Client` that is not a UUID.",
                    &["BadRequest", "ClientRequired"],
                ),
                "404": unknown_client(),
                "410": client_released(),
                "409": error(
                    "The component is contended already: on behalf of another client (or by \
                     `--contend`), or by this client with another address; DELETE it first.",
                    &["Conflict"],
                ),
                "413": text_response(
                    "The body is over 2 MiB (the framework's limit, answered in plain text).",
                    json!({"type": "string"}),
                ),
                "503": error("The sidecar is shutting down.", &["ShuttingDown"]),
            },
        },
        "get": {
            "operationId": "getLeadership",
            "tags": ["leadership"],
            "summary": "Report, or stream, a component's leadership",
            "description": "For a component this sidecar does not contend, the same object with \
                `contending: false`, from a watch on the component's ConfigMap that the first \
                such call starts. With `watch=1` the answer is a Server-Sent Events stream: the \
                current state first, then one `leadership` event per change (not when only \
                `leaseRemainingMs` or `lastRelease.agoMs` moved); it follows the component \
                across PUT and DELETE (and a client's release), and ends when the sidecar shuts \
                down. A `watch=1` stream opened with `Hakeeper-Client` is a lifeline of that \
                client, as its `/v1/clients/{clientId}/events` stream is.",
            "parameters": [reference("parameters", "ClientLifeline"), {
                "name": "watch",
                "in": "query",
                "required": false,
                "description": "`1` or `true`: answer a `text/event-stream`. Any other value, \
                    or none, answers one JSON object.",
                "schema": {"type": "string"},
                "example": "1",
            }],
            "responses": {
                "200": {
                    "description": "The state; with `watch=1`, a stream of it.",
                    "content": {
                        "application/json": {"schema": schema("LeadershipState")},
                        "text/event-stream": {
                            "schema": {
                                "type": "object",
                                "description": "Each event: named `leadership`, its `data` a \
                                    `LeadershipState` as one line of JSON; and keep-alive \
                                    comments.",
                                "properties": {
                                    "event": {"type": "string", "enum": ["leadership"]},
                                    "data": {"type": "string"},
                                },
                            },
                            "example": "event: leadership\ndata: {\"component\":\"dispatcher\",\
                                \"contending\":true,\"isLeader\":false,...}\n\n",
                        },
                    },
                },
                "400": error(
                    "Not a component; with `watch=1`, a `Hakeeper-Client` that is not a UUID.",
                    &["BadRequest"],
                ),
                "404": error(
                    "With `watch=1` and `Hakeeper-Client`: no such client is registered.",
                    &["UnknownClient"],
                ),
                "410": error(
                    "With `watch=1` and `Hakeeper-Client`: the client was released.",
                    &["ClientReleased"],
                ),
                "503": error(
                    &format!(
                        "`ShuttingDown`: the sidecar is shutting down. `TooManyFollowed`: it \
                         already follows {} components it does not contend.",
                        super::MAX_FOLLOWED
                    ),
                    &["ShuttingDown", "TooManyFollowed"],
                ),
            },
        },
        "delete": {
            "operationId": "release",
            "tags": ["leadership"],
            "summary": "Stop contending, releasing the lock if held",
            "description": "If this process leads, leader work stops first, then the lock is \
                released in one compare-and-swap (holder `\"\"`, lease 1 s), so that a standby \
                takes over at once. Needs no `Hakeeper-Client` (an admin action, reason \
                `api_delete`); a client that contended for the component stays registered, \
                and its event stream shows the component released.",
            "responses": {
                "200": json_response("No longer contending.", "Released"),
                "400": bad_component(),
                "404": error("This sidecar does not contend for the component.", &["NotFound"]),
            },
        },
    })
}

fn livez() -> Value {
    json!({
        "get": {
            "operationId": "livez",
            "tags": ["probes"],
            "summary": "Liveness",
            "responses": {
                "200": text_response(
                    "The process runs.",
                    json!({"type": "string", "enum": ["ok"]}),
                ),
            },
        },
    })
}

fn readyz() -> Value {
    json!({
        "get": {
            "operationId": "readyz",
            "tags": ["probes"],
            "summary": "Readiness, or leadership of one component",
            "description": "Without `leader`: ready once every contender's lock watch has \
                delivered its initial list. With `leader=<component>`: ready only while this \
                sidecar leads that component (confirmed, grant live), so that a readinessProbe \
                routes a Service to the leader alone.",
            "parameters": [{
                "name": "leader",
                "in": "query",
                "required": false,
                "description": "A component, e.g. `dispatcher` or `jobmanager/<jobId>`.",
                "schema": schema("Component"),
            }],
            "responses": {
                "200": text_response(
                    "`ok` (ready) without `leader`; `leader` when this sidecar leads it.",
                    json!({"type": "string", "enum": ["ok", "leader"]}),
                ),
                "400": error("`leader` is not a component.", &["BadRequest"]),
                "503": error(
                    "`NotReady`: lock watches have not synced yet. `NotLeader`: this sidecar does \
                     not lead the `leader` component.",
                    &["NotReady", "NotLeader"],
                ),
            },
        },
    })
}

fn metrics() -> Value {
    json!({
        "get": {
            "operationId": "metrics",
            "tags": ["probes"],
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "OpenMetrics text (`application/openmetrics-text; \
                        version=1.0.0; charset=utf-8`).",
                    "content": {"application/openmetrics-text": {"schema": {"type": "string"}}},
                },
            },
        },
    })
}

fn openapi() -> Value {
    json!({
        "get": {
            "operationId": "openapi",
            "tags": ["probes"],
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.0.3 document of this API.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// Job graphs and status (owner: dispatcher)

fn jobs() -> Value {
    json!({
        "get": {
            "operationId": "listJobs",
            "tags": ["jobs"],
            "summary": "List the jobs with a stored graph",
            "responses": {
                "200": json_response(
                    "Job ids; `skipped` names entries that do not decode.",
                    "JobList",
                ),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable"]),
            },
        },
    })
}

fn graph() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId")],
        "put": {
            "operationId": "putJobGraph",
            "tags": ["jobs"],
            "summary": "Store a job's graph (leader-only: dispatcher)",
            "description": "Writes the payload, then inserts its handle by compare-and-swap. If \
                the job has a graph already, the handle is swapped for the new one and the old \
                payload deleted.",
            "parameters": [session()],
            "requestBody": payload_body("The job graph, as Flink serializes it."),
            "responses": {
                "200": json_response("Stored; the new handle.", "GraphStored"),
                "400": bad_job(),
                "404": error(
                    "The graph being replaced was removed meanwhile (a concurrent DELETE).",
                    &["NotFound"],
                ),
                "409": handle_write_conflict(&[]),
                "413": too_large(),
                "500": error(
                    "The entry of the graph being replaced is not a valid state handle.",
                    &["CorruptHandle"],
                ),
                "502": storage_error(),
                "503": unavailable(&[
                    "StorageNotConfigured",
                    "ApiUnavailable",
                    "StorageUnavailable",
                    "OutcomeUnknown",
                ]),
                "507": config_map_full(),
            },
        },
        "get": {
            "operationId": "getJobGraph",
            "tags": ["jobs"],
            "summary": "Read a job's graph",
            "responses": {
                "200": payload_response("The stored graph.", json!({})),
                "400": bad_job(),
                "404": error("No graph is stored for the job.", &["NotFound"]),
                "500": error(
                    "`CorruptHandle`: the entry is not a valid state handle. `BadPayload`: the \
                     payload is missing, or not the size its handle records.",
                    &["CorruptHandle", "BadPayload"],
                ),
                "502": storage_error(),
                "503": read_unavailable(),
            },
        },
        "delete": {
            "operationId": "deleteJobGraph",
            "tags": ["jobs"],
            "summary": "Remove a job's graph (leader-only: dispatcher)",
            "description": "Removes the handle, then the payload. The job's status stays.",
            "parameters": [session()],
            "responses": {
                "200": json_response(
                    "Removed; `orphaned` names a payload that could not be deleted.",
                    "GraphRemoved",
                ),
                "400": bad_job(),
                "404": error("No graph is stored for the job.", &["NotFound"]),
                "409": handle_write_conflict(&[]),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable", "OutcomeUnknown"]),
            },
        },
    })
}

fn status() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId")],
        "put": {
            "operationId": "setJobStatus",
            "tags": ["jobs"],
            "summary": "Set a job's running-jobs registry status (leader-only: dispatcher)",
            "parameters": [session()],
            "requestBody": {
                "description": "`RUNNING` or `DONE`: as plain text (surrounding whitespace \
                    ignored), a JSON string, or `{\"status\": ...}`; whatever the Content-Type.",
                "required": true,
                "content": {
                    "text/plain": {"schema": schema("JobStatus")},
                    "application/json": {"schema": {"oneOf": [
                        schema("JobStatus"),
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": schema("JobStatus")},
                        },
                    ]}},
                },
            },
            "responses": {
                "200": json_response("Set.", "JobStatusRecord"),
                "400": error(
                    "`jobId` is not 32 lowercase hexadecimal characters, or the body is not \
                     `RUNNING` or `DONE`.",
                    &["BadRequest"],
                ),
                "409": entry_write_conflict(),
                "413": too_large(),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable", "OutcomeUnknown"]),
                "507": config_map_full(),
            },
        },
        "get": {
            "operationId": "getJobStatus",
            "tags": ["jobs"],
            "summary": "Read a job's running-jobs registry status",
            "responses": {
                "200": json_response("The status.", "JobStatusRecord"),
                "400": bad_job(),
                "404": error("No status was set for the job.", &["NotFound"]),
                "500": error(
                    "The entry holds neither `RUNNING` nor `DONE`.",
                    &["BadValue"],
                ),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable"]),
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// Checkpoints and the counter (owner: jobmanager/{jobId})

fn checkpoints() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId")],
        "get": {
            "operationId": "listCheckpoints",
            "tags": ["checkpoints"],
            "summary": "List a job's retained checkpoints",
            "responses": {
                "200": json_response(
                    "The retained checkpoints by ascending id; `skipped` names entries that do \
                     not decode.",
                    "CheckpointList",
                ),
                "400": bad_job(),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable"]),
            },
        },
    })
}

fn latest_checkpoint() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId")],
        "get": {
            "operationId": "recoverLatestCheckpoint",
            "tags": ["checkpoints"],
            "summary": "Recover: the newest retained checkpoint that is whole",
            "description": "Newer checkpoints whose payload is missing, truncated or unreadable, \
                and entries that do not decode, are passed over and named in \
                `Hakeeper-Skipped-Checkpoints`; with `--strict-recovery` any such one fails \
                recovery instead. Unreachable storage is a 503, never a reason to skip. This \
                path takes only GET (`latest` is not a checkpoint id): POST or DELETE answers \
                405.",
            "responses": {
                "200": payload_response(
                    "The checkpoint's payload.",
                    json!({
                        "Hakeeper-Checkpoint-Id": reference("headers", "CheckpointId"),
                        "Hakeeper-Skipped-Checkpoints": reference("headers", "SkippedCheckpoints"),
                    }),
                ),
                "400": bad_job(),
                "404": error("No checkpoint is retained.", &["NotFound"]),
                "500": error(
                    "Checkpoints are retained but none can be used (or, with \
                     `--strict-recovery`, one cannot).",
                    &["NoRecoverableCheckpoint"],
                ),
                "503": read_unavailable(),
            },
        },
    })
}

fn checkpoint() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId"), reference("parameters", "CheckpointId")],
        "post": {
            "operationId": "addCheckpoint",
            "tags": ["checkpoints"],
            "summary": "Add a completed checkpoint (leader-only: jobmanager/{jobId})",
            "description": "The id must be greater than the newest retained one. Once the new \
                checkpoint is committed, all but the newest `--checkpoints-retained` are dropped \
                in one ConfigMap write (`subsumed`), then their payloads deleted (`orphaned`: \
                those that could not be). If dropping fails, the new checkpoint stands and the \
                next add drops them.",
            "parameters": [session()],
            "requestBody": payload_body("The completed checkpoint, as Flink serializes it."),
            "responses": {
                "201": json_response("Added.", "CheckpointAdded"),
                "400": bad_job_or_checkpoint(),
                "409": handle_write_conflict(&[
                    ("OutOfOrder", "the id is not greater than the newest retained one"),
                    ("AlreadyExists", "a concurrent add took the id"),
                ]),
                "413": too_large(),
                "502": storage_error(),
                "503": unavailable(&[
                    "StorageNotConfigured",
                    "ApiUnavailable",
                    "StorageUnavailable",
                    "OutcomeUnknown",
                ]),
                "507": config_map_full(),
            },
        },
        "get": {
            "operationId": "getCheckpoint",
            "tags": ["checkpoints"],
            "summary": "Read one retained checkpoint",
            "responses": {
                "200": payload_response(
                    "The checkpoint's payload.",
                    json!({"Hakeeper-Checkpoint-Id": reference("headers", "CheckpointId")}),
                ),
                "400": bad_job_or_checkpoint(),
                "404": error("The checkpoint is not retained.", &["NotFound"]),
                "500": error(
                    "`CorruptHandle`: the entry is not a valid state handle. `BadPayload`: the \
                     payload is missing, or not the size its handle records.",
                    &["CorruptHandle", "BadPayload"],
                ),
                "502": storage_error(),
                "503": read_unavailable(),
            },
        },
        "delete": {
            "operationId": "deleteCheckpoint",
            "tags": ["checkpoints"],
            "summary": "Remove a retained checkpoint (leader-only: jobmanager/{jobId})",
            "description": "Removes the handle, then the payload.",
            "parameters": [session()],
            "responses": {
                "200": json_response(
                    "Removed; `orphaned` names a payload that could not be deleted.",
                    "CheckpointRemoved",
                ),
                "400": bad_job_or_checkpoint(),
                "404": error("The checkpoint is not retained.", &["NotFound"]),
                "409": handle_write_conflict(&[]),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable", "OutcomeUnknown"]),
            },
        },
    })
}

fn bad_counter() -> Value {
    error(
        "The stored `counter` entry is not a non-negative integer.",
        &["BadValue"],
    )
}

fn counter() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId")],
        "get": {
            "operationId": "getCheckpointCounter",
            "tags": ["checkpoints"],
            "summary": "Read the checkpoint counter",
            "description": "The counter is the next checkpoint id; 1 while none was taken.",
            "responses": {
                "200": json_response("The counter.", "CounterValue"),
                "400": bad_job(),
                "500": bad_counter(),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable"]),
            },
        },
        "put": {
            "operationId": "setCheckpointCounter",
            "tags": ["checkpoints"],
            "summary": "Set the checkpoint counter (leader-only: jobmanager/{jobId})",
            "description": "E.g. after restoring from a savepoint.",
            "parameters": [session()],
            "requestBody": {
                "description": "Parsed as JSON whatever the Content-Type.",
                "required": true,
                "content": {"application/json": {"schema": schema("CounterValue")}},
            },
            "responses": {
                "200": json_response("Set; the value now stored.", "CounterValue"),
                "400": error(
                    "`jobId` is not 32 lowercase hexadecimal characters, or the body is not \
                     `{\"value\": <non-negative integer>}`.",
                    &["BadRequest"],
                ),
                "409": entry_write_conflict(),
                "413": too_large(),
                "500": bad_counter(),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable", "OutcomeUnknown"]),
                "507": config_map_full(),
            },
        },
    })
}

fn increment() -> Value {
    json!({
        "parameters": [reference("parameters", "JobId")],
        "post": {
            "operationId": "incrementCheckpointCounter",
            "tags": ["checkpoints"],
            "summary": "Take a checkpoint id (leader-only: jobmanager/{jobId})",
            "description": "Takes the counter's value and stores the next by compare-and-swap. \
                Any request body is ignored.",
            "parameters": [session()],
            "responses": {
                "200": json_response(
                    "The value taken (the counter now holds it plus one).",
                    "CounterValue",
                ),
                "400": error(
                    "`BadRequest`: `jobId` is not 32 lowercase hexadecimal characters. \
                     `Invalid`: the counter is at its maximum.",
                    &["BadRequest", "Invalid"],
                ),
                "409": entry_write_conflict(),
                "500": bad_counter(),
                "503": unavailable(&["StorageNotConfigured", "ApiUnavailable", "OutcomeUnknown"]),
                "507": config_map_full(),
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// Blobs

fn blob() -> Value {
    let bad_key = || {
        error(
            "The key is outside the rules: 1 to 512 characters of `/`-separated segments of \
             `[A-Za-z0-9._-]`, none empty, `.` or `..`.",
            &["Invalid"],
        )
    };
    let blob_unavailable = || unavailable(&["StorageNotConfigured", "StorageUnavailable"]);
    let leader_only = || {
        error(
            "Refused: `NotLeader` (this sidecar does not lead `dispatcher` now), \
             `StaleSession` (no `Hakeeper-Session` UUID, or another grant's).",
            &["NotLeader", "StaleSession"],
        )
    };
    json!({
        "parameters": [reference("parameters", "BlobKey")],
        "put": {
            "operationId": "putBlob",
            "tags": ["blobs"],
            "summary": "Store a blob (leader-only: dispatcher)",
            "description": "Blobs are immutable: the same bytes again answer 200, different \
                bytes 409 `AlreadyExists`.",
            "parameters": [session()],
            "requestBody": payload_body("The blob."),
            "responses": {
                "200": json_response("Stored.", "BlobStored"),
                "400": bad_key(),
                "404": error(
                    "A blob already under the key was deleted while being compared.",
                    &["NotFound"],
                ),
                "409": error(
                    "Refused: `NotLeader` (this sidecar does not lead `dispatcher` now), \
                     `StaleSession` (no `Hakeeper-Session` UUID, or another grant's), \
                     `AlreadyExists` (the key holds different bytes).",
                    &["NotLeader", "StaleSession", "AlreadyExists"],
                ),
                "413": too_large(),
                "502": storage_error(),
                "503": blob_unavailable(),
            },
        },
        "get": {
            "operationId": "getBlob",
            "tags": ["blobs"],
            "summary": "Read a blob",
            "responses": {
                "200": payload_response("The blob.", json!({})),
                "400": bad_key(),
                "404": error("No blob under the key.", &["NotFound"]),
                "502": storage_error(),
                "503": blob_unavailable(),
            },
        },
        "delete": {
            "operationId": "deleteBlob",
            "tags": ["blobs"],
            "summary": "Delete a blob (leader-only: dispatcher)",
            "description": "Succeeds also when there was nothing to delete.",
            "parameters": [session()],
            "responses": {
                "200": json_response("Deleted (or absent).", "BlobDeleted"),
                "400": bad_key(),
                "409": leader_only(),
                "502": storage_error(),
                "503": blob_unavailable(),
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// Components

fn parameters() -> Value {
    json!({
        "Component": {
            "name": "component",
            "in": "path",
            "required": true,
            "description": "`dispatcher`, `resourcemanager`, `restserver` or \
                `jobmanager/<jobId>`. A jobmanager component contains a slash: it is sent as \
                two path segments (`/v1/leadership/jobmanager/<jobId>`) or with the slash \
                percent-encoded (`jobmanager%2F<jobId>`); both are accepted.",
            "schema": schema("Component"),
        },
        "JobId": {
            "name": "jobId",
            "in": "path",
            "required": true,
            "description": "Flink's job id: 32 lowercase hexadecimal characters.",
            "schema": schema("JobId"),
        },
        "CheckpointId": {
            "name": "checkpointId",
            "in": "path",
            "required": true,
            "description": "The checkpoint id: an integer from 0 to 9223372036854775807 \
                (Flink's ids are Java `long`s; the ConfigMap keys hold 19 digits).",
            "schema": {"type": "integer", "minimum": 0, "maximum": 9_223_372_036_854_775_807_u64},
        },
        "BlobKey": {
            "name": "key",
            "in": "path",
            "required": true,
            "description": "1 to 512 characters of `/`-separated segments of `[A-Za-z0-9._-]`, \
                none empty, `.` or `..`. The slashes are sent as path separators (or \
                percent-encoded); e.g. `job-1/blob_p-0a1b2c`.",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 512,
                "pattern": BLOB_KEY_PATTERN,
            },
        },
        "ClientId": {
            "name": "clientId",
            "in": "path",
            "required": true,
            "description": "The `clientId` of `POST /v1/clients`.",
            "schema": {"type": "string", "format": "uuid"},
        },
        "Client": {
            "name": "Hakeeper-Client",
            "in": "header",
            "required": true,
            "description": "The `clientId` of `POST /v1/clients`: the client the contention is \
                for. Missing: 400 `ClientRequired`; not a UUID: 400 `BadRequest`; unknown: 404 \
                `UnknownClient`; released: 410 `ClientReleased`. Also a sign of the client's \
                life, as on any call.",
            "schema": {"type": "string", "format": "uuid"},
        },
        "ClientLifeline": {
            "name": "Hakeeper-Client",
            "in": "header",
            "required": false,
            "description": "On any call, a sign of the client's life. With `watch=1` the \
                stream is also a lifeline of the client, as its \
                `/v1/clients/{clientId}/events` stream is: while it is open the client is not \
                gone, and when the client's last stream closes it is released (`client_gone`). \
                Not a UUID: 400 `BadRequest`; unknown: 404 `UnknownClient`; released: 410 \
                `ClientReleased` (checked only with `watch=1`).",
            "schema": {"type": "string", "format": "uuid"},
        },
        "Session": {
            "name": "Hakeeper-Session",
            "in": "header",
            "required": true,
            "description": "The `sessionId` of `GET /v1/leadership/{owner}` while `isLeader` is \
                true (a new one for every grant). Missing, not a UUID, or another grant's: 409 \
                `StaleSession`.",
            "schema": {"type": "string", "format": "uuid"},
        },
    })
}

fn headers() -> Value {
    json!({
        "CheckpointId": {
            "description": "The id of the checkpoint whose payload this is.",
            "required": true,
            "schema": {"type": "integer", "minimum": 0},
        },
        "SkippedCheckpoints": {
            "description": "Only when recovery passed over entries (newer checkpoints whose \
                payload is not whole, entries that do not decode): their ConfigMap keys, \
                comma-separated.",
            "required": false,
            "schema": {"type": "string"},
            "example": "checkpointID-0000000000000000003",
        },
    })
}

fn responses() -> Value {
    let mut unauthorized = error(
        "The sidecar requires `Authorization: Bearer <token>` on `/v1` calls and the request \
         did not present the token.",
        &["Unauthorized"],
    );
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}},
    });
    let request_timeout = error(
        &format!(
            "The request did not complete within {} s (the event streams, `watch=1` and \
             `/v1/clients/{{clientId}}/events`, are exempt).",
            request_timeout_secs()
        ),
        &["RequestTimeout"],
    );
    let mut method_not_allowed = error(
        "The path is served but does not take this method (answered for any such call).",
        &["MethodNotAllowed"],
    );
    method_not_allowed["headers"] = json!({
        "Allow": {
            "description": "The methods the path takes, e.g. `GET,HEAD`.",
            "schema": {"type": "string"},
        },
    });
    json!({
        "Unauthorized": unauthorized,
        "RequestTimeout": request_timeout,
        "NotFound": error(
            "No such endpoint (answered for any path the API does not serve).",
            &["NotFound"],
        ),
        "MethodNotAllowed": method_not_allowed,
    })
}

fn schemas() -> Value {
    let nullable_string =
        |description: &str| json!({"type": "string", "nullable": true, "description": description});
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "description": "Machine-readable kind. Each response lists the kinds it \
                        can carry.",
                    "enum": ERROR_KINDS,
                },
                "message": {"type": "string", "description": "What went wrong, for people."},
            },
        },
        "Component": {
            "type": "string",
            "pattern": COMPONENT_PATTERN,
            "example": "jobmanager/5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f",
        },
        "JobId": {
            "type": "string",
            "pattern": JOB_ID_PATTERN,
            "example": "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f",
        },
        "ContendRequest": {
            "type": "object",
            "required": ["address"],
            "properties": {
                "address": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The address to publish while this process leads; not blank.",
                    "example": "akka.tcp://flink@jm-0:6123/user/rpc/dispatcher_1",
                },
            },
        },
        "LeadershipState": {
            "type": "object",
            "required": [
                "component", "contending", "clientId", "isLeader", "sessionId",
                "holderIdentity", "leader", "leaseRemainingMs", "synced", "lastRelease",
            ],
            "properties": {
                "component": schema("Component"),
                "contending": {
                    "type": "boolean",
                    "description": "This sidecar contends for the component.",
                },
                "clientId": {
                    "type": "string",
                    "format": "uuid",
                    "nullable": true,
                    "description": "The client the contention is for; null when not contending, \
                        or when contending by `--contend`.",
                },
                "isLeader": {
                    "type": "boolean",
                    "description": "This process leads and its leadership is confirmed (the \
                        ConfigMap's address and session name it). Always false when not \
                        contending.",
                },
                "sessionId": {
                    "type": "string",
                    "format": "uuid",
                    "nullable": true,
                    "description": "This process's session while it holds a grant (a new UUID \
                        for every grant): the `Hakeeper-Session` of leader-only calls. Null when \
                        not contending.",
                },
                "holderIdentity": nullable_string("The holder the lock record names, if any."),
                "leader": {
                    "type": "object",
                    "nullable": true,
                    "description": "The leader as any follower sees it; null with no leader, an \
                        expired lease, or a released lock.",
                    "required": ["address", "sessionId"],
                    "properties": {
                        "address": {"type": "string"},
                        "sessionId": {
                            "type": "string",
                            "description": "As the leader's ConfigMap records it.",
                        },
                    },
                },
                "leaseRemainingMs": {
                    "type": "integer",
                    "minimum": 0,
                    "nullable": true,
                    "description": "Until the observed lease runs out for others, judged from \
                        the local monotonic clock at which the lock last changed; null when \
                        unknown.",
                },
                "synced": {
                    "type": "boolean",
                    "description": "The watch on the component's ConfigMap has delivered its \
                        initial list.",
                },
                "lastRelease": {
                    "allOf": [schema("LastRelease")],
                    "nullable": true,
                    "description": "The newest time this sidecar gave up or lost the \
                        component; null if it never did (or forgot).",
                },
            },
        },
        "ReleaseReason": {
            "type": "string",
            "enum": [
                "client_gone", "client_timeout", "liveness_failed", "api_delete", "shutdown",
                "lost",
            ],
            "description": "`client_gone`: the client's last event stream closed. \
                `client_timeout`: the client sent nothing with its id within the client \
                timeout. `liveness_failed`: the `--liveness-url` probe failed \
                `--liveness-failures` times in a row (`--contend` only). `api_delete`: \
                `DELETE /v1/leadership/{component}` or `DELETE /v1/clients/{clientId}`. \
                `shutdown`: the sidecar stopped. `lost`: not given up but taken away (renew \
                deadline passed, lock deleted or taken).",
        },
        "LastRelease": {
            "type": "object",
            "required": ["reason", "agoMs", "clientId"],
            "properties": {
                "reason": schema("ReleaseReason"),
                "agoMs": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How long ago, by the local monotonic clock.",
                },
                "clientId": {
                    "type": "string",
                    "format": "uuid",
                    "nullable": true,
                    "description": "The client the contention was for; null for `--contend`.",
                },
            },
        },
        "ClientReleaseReason": {
            "type": "string",
            "enum": ["client_gone", "client_timeout", "api_delete", "shutdown"],
            "description": "Why a client was released: its last event stream closed \
                (`client_gone`, never seen on a stream, as none is left), it was silent past \
                the client timeout (`client_timeout`), `DELETE /v1/clients/{clientId}` \
                (`api_delete`), or the sidecar stopped (`shutdown`).",
        },
        "ClientRegistration": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": {
                    "type": "string",
                    "nullable": true,
                    "description": "For logs and `GET /v1/clients/{clientId}`; cut to 128 \
                        characters.",
                    "example": "jm-0",
                },
            },
        },
        "Client": {
            "type": "object",
            "required": ["clientId", "name", "timeoutMs"],
            "properties": {
                "clientId": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The `Hakeeper-Client` of this client's calls.",
                },
                "name": nullable_string("As registered."),
                "timeoutMs": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The client timeout (`--client-timeout`): the client is \
                        released when it sends nothing with its id for this long. Send a \
                        keepalive at least every `timeoutMs / 3`.",
                },
            },
        },
        "ClientDescription": {
            "type": "object",
            "required": ["clientId", "name", "timeoutMs", "components", "streams", "idleMs"],
            "properties": {
                "clientId": {"type": "string", "format": "uuid"},
                "name": nullable_string("As registered."),
                "timeoutMs": {"type": "integer", "minimum": 0},
                "components": {
                    "type": "array",
                    "items": schema("Component"),
                    "description": "The components contended for on this client's behalf.",
                },
                "streams": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The client's event streams open now (its lifelines).",
                },
                "idleMs": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Since the client's last sign of life.",
                },
            },
        },
        "ClientKeepalive": {
            "type": "object",
            "required": ["clientId", "timeoutMs", "components"],
            "properties": {
                "clientId": {"type": "string", "format": "uuid"},
                "timeoutMs": {"type": "integer", "minimum": 0},
                "components": {"type": "array", "items": schema("Component")},
            },
        },
        "ClientEnded": {
            "type": "object",
            "required": ["clientId", "released", "components"],
            "properties": {
                "clientId": {"type": "string", "format": "uuid"},
                "released": {"type": "boolean", "enum": [true]},
                "components": {
                    "type": "array",
                    "items": schema("Component"),
                    "description": "The components released with the client.",
                },
            },
        },
        "ClientReleasedEvent": {
            "type": "object",
            "description": "The data of a client stream's `released` event, its last.",
            "required": ["clientId", "reason"],
            "properties": {
                "clientId": {"type": "string", "format": "uuid"},
                "reason": schema("ClientReleaseReason"),
            },
        },
        "Released": {
            "type": "object",
            "required": ["component", "contending", "released"],
            "properties": {
                "component": schema("Component"),
                "contending": {"type": "boolean", "enum": [false]},
                "released": {"type": "boolean", "enum": [true]},
            },
        },
        "Handle": {
            "type": "object",
            "description": "A decoded Flink state handle, as `hakeeper decode` prints it.",
            "required": ["type", "path", "stateSize", "markedForDeletion"],
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["RetrievableStreamStateHandle", "StateHandleWithDeleteMarker"],
                    "description": "Flink 1.12–1.14's bare handle (what hakeeper writes), or \
                        Flink 1.15+'s wrapper with a delete marker.",
                },
                "path": {"type": "string", "description": "The payload's URI."},
                "stateSize": {
                    "type": "integer",
                    "format": "int64",
                    "description": "The payload's size in bytes.",
                },
                "markedForDeletion": {
                    "type": "boolean",
                    "nullable": true,
                    "description": "Null for a bare handle; the marker of a wrapped one.",
                },
            },
        },
        "Skipped": {
            "type": "object",
            "description": "A ConfigMap entry passed over, and why.",
            "required": ["key", "reason"],
            "properties": {
                "key": {"type": "string"},
                "reason": {"type": "string"},
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs", "skipped"],
            "properties": {
                "jobs": {"type": "array", "items": schema("JobId")},
                "skipped": {"type": "array", "items": schema("Skipped")},
            },
        },
        "GraphStored": {
            "type": "object",
            "required": ["jobId", "handle"],
            "properties": {
                "jobId": schema("JobId"),
                "handle": schema("Handle"),
            },
        },
        "GraphRemoved": {
            "type": "object",
            "required": ["jobId", "removed", "orphaned"],
            "properties": {
                "jobId": schema("JobId"),
                "removed": {"type": "boolean", "enum": [true]},
                "orphaned": nullable_string("A payload that could not be deleted, if any."),
            },
        },
        "JobStatus": {"type": "string", "enum": ["RUNNING", "DONE"]},
        "JobStatusRecord": {
            "type": "object",
            "required": ["jobId", "status"],
            "properties": {
                "jobId": schema("JobId"),
                "status": schema("JobStatus"),
            },
        },
        "CheckpointMeta": {
            "type": "object",
            "required": ["id", "key", "path", "stateSize"],
            "properties": {
                "id": {"type": "integer", "minimum": 0},
                "key": {
                    "type": "string",
                    "description": "The ConfigMap key, `checkpointID-<id as 19 digits>`.",
                    "example": "checkpointID-0000000000000000003",
                },
                "path": {"type": "string", "description": "The payload's URI."},
                "stateSize": {"type": "integer", "format": "int64"},
            },
        },
        "CheckpointList": {
            "type": "object",
            "required": ["jobId", "checkpoints", "skipped"],
            "properties": {
                "jobId": schema("JobId"),
                "checkpoints": {"type": "array", "items": schema("CheckpointMeta")},
                "skipped": {"type": "array", "items": schema("Skipped")},
            },
        },
        "CheckpointAdded": {
            "type": "object",
            "required": ["checkpointId", "handle", "subsumed", "orphaned"],
            "properties": {
                "checkpointId": {"type": "integer", "minimum": 0},
                "handle": schema("Handle"),
                "subsumed": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "description": "Ids of the older checkpoints dropped.",
                },
                "orphaned": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Payloads of dropped checkpoints that could not be deleted.",
                },
            },
        },
        "CheckpointRemoved": {
            "type": "object",
            "required": ["checkpointId", "removed", "orphaned"],
            "properties": {
                "checkpointId": {"type": "integer", "minimum": 0},
                "removed": {"type": "boolean", "enum": [true]},
                "orphaned": nullable_string("A payload that could not be deleted, if any."),
            },
        },
        "CounterValue": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "integer", "minimum": 0, "maximum": 9_223_372_036_854_775_807_u64}},
        },
        "BlobStored": {
            "type": "object",
            "required": ["key", "size"],
            "properties": {
                "key": {"type": "string"},
                "size": {"type": "integer", "minimum": 0, "description": "Bytes stored."},
            },
        },
        "BlobDeleted": {
            "type": "object",
            "required": ["key", "deleted"],
            "properties": {
                "key": {"type": "string"},
                "deleted": {"type": "boolean", "enum": [true]},
            },
        },
    })
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
    fn is_openapi_3_0_3_json() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.0.3");
        assert!(doc["info"]["title"].is_string());
        assert!(doc["info"]["version"].is_string());
        let text = serde_json::to_string(&doc).expect("serializes");
        let back: Value = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, doc);
    }

    /// The routes of `router` (mod.rs) and `routes` (store_api.rs, client_api.rs), with
    /// OpenAPI's names for the path parameters (`{*component}`, `{job}`, `{id}` of a
    /// checkpoint and of a client, `{*key}` there).
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

    /// The error kinds the responses name are exactly the `Error` schema's.
    #[test]
    fn error_kinds_match_the_error_schema() {
        let doc = document();
        let declared: BTreeSet<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .map(|k| k.as_str().expect("kind"))
            .collect();
        assert_eq!(declared.len(), ERROR_KINDS.len(), "a kind twice");
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
}
