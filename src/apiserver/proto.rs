//! Decoding of the Kubernetes protobuf wire format for the one body that needs it:
//! kubectl's typed client (`kubectl create configmap`) sends ConfigMaps as
//! `application/vnd.kubernetes.protobuf`. The envelope is the magic `k8s\0` and a
//! `runtime.Unknown` message; the object inside is a `v1.ConfigMap`. The decoder is
//! bounded by the input: every length is checked against what remains.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// Decode a protobuf request body into the JSON form of the object. Only `v1` `ConfigMap`
/// is understood; anything else is an error that names what was found.
pub fn decode_object(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body does not start with the k8s magic number")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for field in Fields::new(rest) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for f in Fields::new(type_meta) {
                    match f? {
                        (1, Wire::Bytes(b)) => api_version = string(b)?,
                        (2, Wire::Bytes(b)) => kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            (3, Wire::Bytes(b)) if !b.is_empty() => {
                return Err("compressed protobuf bodies are not supported".into());
            }
            _ => {}
        }
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => config_map(raw),
        _ => Err(format!(
            "protobuf bodies are only supported for v1 ConfigMap, not {api_version} {kind}"
        )),
    }
}

fn config_map(bytes: &[u8]) -> Result<Value, String> {
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!("v1"));
    obj.insert("kind".into(), json!("ConfigMap"));
    let mut data = Map::new();
    let mut binary = Map::new();
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => {
                obj.insert("metadata".into(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                data.insert(k, json!(string(v)?));
            }
            (3, Wire::Bytes(b)) => {
                use base64::Engine;
                let (k, v) = map_entry(b)?;
                binary.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                );
            }
            (4, Wire::Varint(v)) => {
                obj.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    Ok(Value::Object(obj))
}

fn object_meta(bytes: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut owners = Vec::new();
    let mut finalizers = Vec::new();
    for field in Fields::new(bytes) {
        let (number, wire) = field?;
        let name = match number {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            5 => "uid",
            6 => "resourceVersion",
            _ => "",
        };
        match (number, wire) {
            (1 | 2 | 3 | 5 | 6, Wire::Bytes(b)) => {
                let s = string(b)?;
                if !s.is_empty() {
                    meta.insert(name.into(), json!(s));
                }
            }
            (11, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                labels.insert(k, json!(string(v)?));
            }
            (12, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                annotations.insert(k, json!(string(v)?));
            }
            (13, Wire::Bytes(b)) => owners.push(owner_reference(b)?),
            (14, Wire::Bytes(b)) => finalizers.push(json!(string(b)?)),
            _ => {}
        }
    }
    for (key, value) in [("labels", labels), ("annotations", annotations)] {
        if !value.is_empty() {
            meta.insert(key.into(), Value::Object(value));
        }
    }
    if !owners.is_empty() {
        meta.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn owner_reference(bytes: &[u8]) -> Result<Value, String> {
    let mut owner = Map::new();
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => {
                owner.insert("kind".into(), json!(string(b)?));
            }
            (3, Wire::Bytes(b)) => {
                owner.insert("name".into(), json!(string(b)?));
            }
            (4, Wire::Bytes(b)) => {
                owner.insert("uid".into(), json!(string(b)?));
            }
            (5, Wire::Bytes(b)) => {
                owner.insert("apiVersion".into(), json!(string(b)?));
            }
            (6, Wire::Varint(v)) => {
                owner.insert("controller".into(), json!(v != 0));
            }
            (7, Wire::Varint(v)) => {
                owner.insert("blockOwnerDeletion".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(owner))
}

/// A map entry message: key (1) and value (2).
fn map_entry(bytes: &[u8]) -> Result<(String, &[u8]), String> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => key = string(b)?,
            (2, Wire::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Ok((key, value))
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "protobuf string is not UTF-8".to_string())
}

#[derive(Debug)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterator over the fields of one message; yields an error and stops on malformed input.
struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, failed: false }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.buf.split_first().ok_or("truncated protobuf varint")?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("protobuf varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err("protobuf field runs past the end of its message".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let key = self.varint()?;
        let number = key >> 3;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| "protobuf length does not fit in memory")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        };
        Ok((number, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let result = self.field();
        self.failed = result.is_err();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body `kubectl create configmap c2 --from-literal=a=b --from-literal=c=d` sends
    /// (kubectl v1.33, captured with -v=9).
    const KUBECTL_CREATE: &[u8] = &[
        0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x43, 0x6f, 0x6e,
        0x66, 0x69, 0x67, 0x4d, 0x61, 0x70, 0x12, 0x24, 0x0a, 0x12, 0x0a, 0x02, 0x63, 0x32, 0x12,
        0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x06,
        0x0a, 0x01, 0x61, 0x12, 0x01, 0x62, 0x12, 0x06, 0x0a, 0x01, 0x63, 0x12, 0x01, 0x64, 0x1a,
        0x00, 0x22, 0x00,
    ];

    #[test]
    fn decodes_kubectl_create_configmap() {
        let obj = decode_object(KUBECTL_CREATE).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c2"}, "data": {"a": "b", "c": "d"}})
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for len in 0..KUBECTL_CREATE.len() {
            let _ = decode_object(&KUBECTL_CREATE[..len]);
        }
        assert!(decode_object(&KUBECTL_CREATE[..30]).is_err());
        assert!(decode_object(b"k8s\0\x12\xff\xff\xff\xff\x0f").is_err());
        assert!(decode_object(b"{}").is_err());
    }

    #[test]
    fn other_kinds_are_refused_by_name() {
        // Unknown{typeMeta{apiVersion "v1", kind "Secret"}}
        let body = b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret";
        let err = decode_object(body).unwrap_err();
        assert!(err.contains("v1 Secret"), "{err}");
    }
}
