//! The OpenAPI v3 discovery kubectl reads before it sends a body: `/openapi/v3` lists the
//! group versions, and each group version's document declares, per kind, the operations
//! and their `fieldValidation` parameter. With it, kubectl leaves field validation to the
//! server (`fieldValidation=Strict`) instead of downloading schemas to validate itself.

use serde_json::{Map, Value, json};

/// A served group version: path key, group, version, and its kinds with their plurals.
type GroupVersion = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const GROUP_VERSIONS: [GroupVersion; 2] = [
    (
        "api/v1",
        "",
        "v1",
        &[("ConfigMap", "configmaps"), ("Event", "events")],
    ),
    (
        "apis/events.k8s.io/v1",
        "events.k8s.io",
        "v1",
        &[("Event", "events")],
    ),
];

/// `/openapi/v3`
pub fn root() -> Value {
    let mut paths = Map::new();
    for (key, ..) in GROUP_VERSIONS {
        paths.insert(
            key.to_string(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(key))}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<key>`, or `None` for a group version not served.
pub fn group_version(key: &str) -> Option<Value> {
    let (key, group, version, kinds) = GROUP_VERSIONS.into_iter().find(|gv| gv.0 == key)?;
    let params = json!([
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
    ]);
    let mut paths = Map::new();
    for (kind, plural) in kinds {
        let gvk = json!({"group": group, "version": version, "kind": kind});
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{kind}"),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            format!("/{key}/namespaces/{{namespace}}/{plural}"),
            json!({"post": op("post")}),
        );
        paths.insert(
            format!("/{key}/namespaces/{{namespace}}/{plural}/{{name}}"),
            json!({"put": op("put"), "patch": op("patch")}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (hakeeper embedded API server)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// A stable version tag for a document (it only changes with this program).
fn hash(key: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes().chain(env!("CARGO_PKG_VERSION").bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// Fields a body may carry, per stored kind; anything else is an unknown field under
/// `fieldValidation=Strict` (or a warning under `Warn`).
pub fn unknown_fields(kind: &str, obj: &Value) -> Vec<String> {
    const META: &[&str] = &[
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ];
    let top: &[&str] = match kind {
        "ConfigMap" => &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "binaryData",
            "immutable",
        ],
        _ => &[
            "apiVersion",
            "kind",
            "metadata",
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
    };
    let mut unknown = Vec::new();
    if let Some(map) = obj.as_object() {
        for key in map.keys().filter(|k| !top.contains(&k.as_str())) {
            unknown.push(key.clone());
        }
        if let Some(meta) = map.get("metadata").and_then(Value::as_object) {
            for key in meta.keys().filter(|k| !META.contains(&k.as_str())) {
                unknown.push(format!("metadata.{key}"));
            }
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_declare_field_validation_per_kind() {
        let doc = group_version("api/v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "ConfigMap"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(group_version("apis/apps/v1").is_none());
        let root = root();
        let url = root["paths"]["apis/events.k8s.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/events.k8s.io/v1?hash="));
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "spec": {},
                         "metadata": {"name": "x", "labelz": {}}, "data": {}});
        assert_eq!(
            unknown_fields("ConfigMap", &obj),
            ["spec", "metadata.labelz"]
        );
        assert!(unknown_fields("Event", &json!({"reason": "r", "message": "m"})).is_empty());
    }
}
