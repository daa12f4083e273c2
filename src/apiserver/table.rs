//! Server-side printing: the `meta.k8s.io` `Table` form kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the columns kube-apiserver
//! prints for ConfigMaps (`NAME DATA AGE`) and Events (`LAST SEEN TYPE REASON OBJECT MESSAGE`).

use serde_json::{Value, json};

/// What a client asked for in `Accept` and `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRequest {
    /// `v1` or `v1beta1` of meta.k8s.io.
    pub version: &'static str,
    pub include: Include,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// Whether the Accept header asks for a Table, and which version; `includeObject` picks
/// what each row carries (default: the object's metadata).
pub fn requested(accept: &str, include_object: Option<&str>) -> Option<TableRequest> {
    let version = accept.split(',').find_map(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if !(has("as=Table") && has("g=meta.k8s.io")) {
            return None;
        }
        if has("v=v1") {
            Some("v1")
        } else if has("v=v1beta1") {
            Some("v1beta1")
        } else {
            None
        }
    })?;
    let include = match include_object {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    };
    Some(TableRequest { version, include })
}

/// A Table of `objects` (in the view's external form). `headers` false leaves out the
/// column definitions, as in every watch event after the first.
pub fn table(
    kind: &str,
    objects: &[Value],
    resource_version: Option<u64>,
    req: TableRequest,
    headers: bool,
    now: jiff::Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = json!({"cells": cells(kind, obj, now)});
            match req.include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": format!("meta.k8s.io/{}", req.version),
                        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                    });
                }
                Include::Object => row["object"] = obj.clone(),
            }
            row
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    let mut t = json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{}", req.version),
        "metadata": metadata,
        "rows": rows,
    });
    if headers {
        t["columnDefinitions"] = json!(columns(kind));
    }
    t
}

fn column(name: &str, typ: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": typ, "format": format, "description": description, "priority": priority})
}

fn columns(kind: &str) -> Vec<Value> {
    match kind {
        "ConfigMap" => vec![
            column(
                "Name",
                "string",
                "name",
                0,
                "Name must be unique within a namespace.",
            ),
            column(
                "Data",
                "integer",
                "",
                0,
                "Number of keys in data and binaryData.",
            ),
            column("Age", "string", "", 0, "Time since creationTimestamp."),
        ],
        _ => vec![
            column(
                "Last Seen",
                "string",
                "",
                0,
                "Time since the event was last observed.",
            ),
            column(
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning).",
            ),
            column(
                "Reason",
                "string",
                "",
                0,
                "Short, machine understandable reason.",
            ),
            column("Object", "string", "", 0, "The object this event is about."),
            column("Message", "string", "", 0, "A human-readable description."),
            column(
                "Name",
                "string",
                "name",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
    }
}

fn cells(kind: &str, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let s = |ptr: &str| {
        obj.pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let age = |ptr: &str| {
        obj.pointer(ptr)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| human_duration(now.as_second() - t.as_second()))
    };
    match kind {
        "ConfigMap" => {
            let count = |field: &str| {
                obj.get(field)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            vec![
                json!(s("/metadata/name")),
                json!(count("data") + count("binaryData")),
                json!(age("/metadata/creationTimestamp").unwrap_or_else(|| "<unknown>".into())),
            ]
        }
        _ => {
            // Both the core/v1 and the events.k8s.io/v1 names.
            let first = |ptrs: &[&str]| {
                ptrs.iter()
                    .map(|p| s(p))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default()
            };
            let last_seen = [
                "/series/lastObservedTime",
                "/lastTimestamp",
                "/deprecatedLastTimestamp",
                "/eventTime",
            ]
            .iter()
            .find_map(|p| age(p))
            .unwrap_or_else(|| "<unknown>".into());
            let regarding = if obj.get("regarding").is_some() {
                "/regarding"
            } else {
                "/involvedObject"
            };
            let object = format!(
                "{}/{}",
                s(&format!("{regarding}/kind")).to_lowercase(),
                s(&format!("{regarding}/name"))
            );
            vec![
                json!(last_seen),
                json!(s("/type")),
                json!(s("/reason")),
                json!(object),
                json!(first(&["/message", "/note"])),
                json!(s("/metadata/name")),
            ]
        }
    }
}

/// kubectl's way of printing an age: `45s`, `2m30s`, `17m`, `5h12m`, `30h`, `3d4h`, `120d`, `3y45d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let with = |major: i64, unit: &str, minor: i64, minor_unit: &str| {
        if minor == 0 {
            format!("{major}{unit}")
        } else {
            format!("{major}{unit}{minor}{minor_unit}")
        }
    };
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        with(minutes, "m", seconds % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        with(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_asks_for_table_v1() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            requested(accept, None),
            Some(TableRequest {
                version: "v1",
                include: Include::Metadata
            })
        );
        assert_eq!(requested("application/json", None), None);
        assert_eq!(
            requested(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
                Some("Object")
            )
            .unwrap()
            .version,
            "v1beta1"
        );
    }

    #[test]
    fn human_durations_match_kubectl() {
        for (secs, want) in [
            (0, "0s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (120 * 86400, "120d"),
            (3 * 365 * 86400, "3y"),
            (-5, "<invalid>"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn configmap_rows_count_data_and_binary_data() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"},
                        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        let req = TableRequest {
            version: "v1",
            include: Include::Metadata,
        };
        let t = table("ConfigMap", &[cm], Some(7), req, true, now);
        assert_eq!(t["rows"][0]["cells"], json!(["c", 3, "10m"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        let no_headers = table("ConfigMap", &[], None, req, false, now);
        assert!(no_headers.get("columnDefinitions").is_none());
    }

    #[test]
    fn event_rows_name_the_object() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let ev = json!({"metadata": {"name": "e"}, "type": "Normal", "reason": "LeaderChanged",
                        "involvedObject": {"kind": "ConfigMap", "name": "c"}, "message": "m",
                        "lastTimestamp": "2026-01-01T00:00:30Z"});
        let req = TableRequest {
            version: "v1",
            include: Include::None,
        };
        let t = table("Event", &[ev], None, req, true, now);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["30s", "Normal", "LeaderChanged", "configmap/c", "m", "e"])
        );
        assert!(t["rows"][0].get("object").is_none());
    }
}
