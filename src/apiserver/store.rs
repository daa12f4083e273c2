//! The object store behind the embedded API server: objects as JSON, a cluster-wide
//! resourceVersion, a bounded change history for watches, and the optimistic-concurrency
//! rules of kube-apiserver. Every operation is synchronous and runs under one lock, so
//! each one is atomic and the history has no gaps.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::patch::merge_patch;
use super::selector::{FieldSelector, LabelSelector, json_field};
use super::status::ApiError;
use super::validate::{FieldError, validate_configmap, validate_event};

/// The resources this server stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    ConfigMaps,
    Events,
}

impl Resource {
    pub const ALL: [Resource; 2] = [Resource::ConfigMaps, Resource::Events];

    /// Plural name, as in the URL and in `Status.details.kind`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::ConfigMaps => "configmaps",
            Resource::Events => "events",
        }
    }

    /// Kind of the stored (core/v1) form.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::ConfigMaps => "ConfigMap",
            Resource::Events => "Event",
        }
    }

    pub fn from_plural(s: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.plural() == s)
    }

    /// Field labels usable in `fieldSelector`, for the core/v1 form.
    pub fn field_labels(self) -> &'static [&'static str] {
        match self {
            Resource::ConfigMaps => &["metadata.name", "metadata.namespace"],
            Resource::Events => &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        }
    }

    /// The value of a field label on a stored object.
    pub fn field_value(self, obj: &Value, field: &str) -> Option<String> {
        match (self, field) {
            (Resource::Events, "source") => json_field(obj, "source.component"),
            _ => json_field(obj, field),
        }
    }

    fn validate(self, obj: &Value) -> Vec<FieldError> {
        match self {
            Resource::ConfigMaps => validate_configmap(obj),
            Resource::Events => validate_event(obj),
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One entry of the change history: the object after the change (for a deletion, the last
/// state with the deletion's resourceVersion) and, for a modification, the state before.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub resource: Resource,
    pub namespace: String,
    pub change: ChangeType,
    pub object: Value,
    pub previous: Option<Value>,
}

/// Selection of a list, watch or collection delete.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// Maps a field label as the request's API version names it to the stored name.
    pub field_alias: Option<fn(&str) -> String>,
}

impl Selection {
    pub fn matches(&self, resource: Resource, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && json_field(obj, "metadata.namespace").as_deref() != Some(ns.as_str())
        {
            return false;
        }
        self.labels
            .matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
            && self.fields.matches(|f| match self.field_alias {
                Some(alias) => resource.field_value(obj, &alias(f)),
                None => resource.field_value(obj, f),
            })
    }
}

/// `preconditions` of a DELETE.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// Synthetic ADDED events for the current objects, then live changes.
    Now,
    /// Every change after this resourceVersion.
    Version(u64),
}

/// The start of a watch: what to send first, then the live feed.
pub struct WatchStart {
    /// Current objects (only for [`WatchFrom::Now`]), to be sent as synthetic ADDED events.
    pub current: Vec<Value>,
    /// Retained changes after the requested version.
    pub backlog: Vec<Arc<Change>>,
    /// Live changes, from the moment of the snapshot on.
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The store's resourceVersion at the snapshot.
    pub resource_version: u64,
}

type ObjKey = (Resource, String, String);

struct State {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches from a version below this get 410 Expired: the changes after it are no longer all retained.
    oldest_watchable: u64,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    state: Mutex<State>,
    feed: broadcast::Sender<Arc<Change>>,
}

/// Capacity of the live feed; a watcher that falls this far behind is closed, as a slow
/// watcher of kube-apiserver is, and must resume from its last resourceVersion.
const FEED_CAPACITY: usize = 4096;

const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Store {
    pub fn new(history_limit: usize) -> Store {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Store {
            state: Mutex::new(State {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                oldest_watchable: 1,
            }),
            feed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change (every operation
        // computes first and commits last), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, resource: Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&(resource, ns.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource.plural(), name))
    }

    pub fn list(
        &self,
        resource: Resource,
        sel: &Selection,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let st = self.lock();
        let (list_rv, after) = match continue_token {
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)?;
                if rv < st.oldest_watchable {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (rv, Some((resource, ns, name)))
            }
            None => (st.rv, None),
        };
        let range = match &after {
            Some(key) => st.objects.range((
                std::ops::Bound::Excluded(key.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => st.objects.range(..),
        };
        let mut matching = range
            .filter(|(k, _)| k.0 == resource)
            .filter(|(_, v)| sel.matches(resource, v));
        let limit = limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key = None;
        for (k, v) in matching.by_ref() {
            if limit.is_some_and(|l| items.len() >= l) {
                // One more exists: count the rest.
                let remaining = 1 + matching.count() as u64;
                let token =
                    last_key.map(|(_, ns, name): &ObjKey| encode_continue(list_rv, ns, name));
                return Ok(ListPage {
                    items,
                    resource_version: list_rv,
                    continue_token: token,
                    remaining: Some(remaining),
                });
            }
            items.push(v.clone());
            last_key = Some(k);
        }
        Ok(ListPage {
            items,
            resource_version: list_rv,
            continue_token: None,
            remaining: None,
        })
    }

    pub fn create(&self, resource: Resource, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        let meta = metadata_mut(&mut obj)?;
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix: String = (0..5)
                        .map(|_| {
                            NAME_SUFFIX_ALPHABET[fastrand::usize(..NAME_SUFFIX_ALPHABET.len())]
                                as char
                        })
                        .collect();
                    name = format!("{prefix}{suffix}");
                }
                _ => {
                    return Err(ApiError::invalid(
                        resource.kind(),
                        "",
                        &[FieldError {
                            field: "metadata.name".into(),
                            reason: "FieldValueRequired",
                            detail: "Required value: name or generateName is required".into(),
                        }],
                    ));
                }
            }
        }
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        for server_set in [
            "uid",
            "selfLink",
            "deletionTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(server_set);
        }
        set_type_meta(resource, &mut obj);
        let errors = resource.validate(&obj);
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource.kind(), &name, &errors));
        }

        let mut st = self.lock();
        let key = (resource, ns.to_string(), name.clone());
        if st.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource.plural(), &name));
        }
        let rv = st.rv + 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        st.objects.insert(key, obj.clone());
        self.commit(
            &mut st,
            rv,
            resource,
            ns,
            ChangeType::Added,
            obj.clone(),
            None,
        );
        Ok(obj)
    }

    /// PUT: replace the object. A set `metadata.resourceVersion` is a precondition.
    pub fn update(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        self.update_locked(&mut st, resource, ns, name, obj)
    }

    /// PATCH with a JSON merge patch; a `metadata.resourceVersion` in the patch is a precondition.
    pub fn patch(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "the patch must be a JSON object (application/merge-patch+json)",
            ));
        }
        let mut st = self.lock();
        let key = (resource, ns.to_string(), name.to_string());
        let current = st
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource.plural(), name))?;
        let current_rv = json_field(&current, "metadata.resourceVersion").unwrap_or_default();
        if let Some(wanted) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && wanted != current_rv
        {
            return Err(ApiError::conflict(resource.plural(), name));
        }
        let mut merged = current;
        merge_patch(&mut merged, patch);
        if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(current_rv));
        }
        self.update_locked(&mut st, resource, ns, name, merged)
    }

    fn update_locked(
        &self,
        st: &mut State,
        resource: Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let meta = metadata_mut(&mut obj)?;
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("name".into(), json!(name));
            }
            Some(body_name) if body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
        }
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
        let key = (resource, ns.to_string(), name.to_string());
        let Some(current) = st.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(resource.plural(), name));
        };
        let current_rv = json_field(&current, "metadata.resourceVersion").unwrap_or_default();
        let current_uid = json_field(&current, "metadata.uid").unwrap_or_default();
        if let Some(wanted) = meta.get("resourceVersion").and_then(Value::as_str)
            && !wanted.is_empty()
        {
            if wanted.parse::<u64>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "invalid resource version: {wanted:?}"
                )));
            }
            if wanted != current_rv {
                return Err(ApiError::conflict(resource.plural(), name));
            }
        }
        if let Some(uid) = meta.get("uid").and_then(Value::as_str)
            && !uid.is_empty()
            && uid != current_uid
        {
            return Err(ApiError::conflict_because(
                resource.plural(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
                ),
            ));
        }
        // Server-owned metadata comes from the stored object.
        for owned in ["uid", "creationTimestamp"] {
            match current.pointer(&format!("/metadata/{owned}")) {
                Some(v) => meta.insert(owned.into(), v.clone()),
                None => meta.remove(owned),
            };
        }
        for server_set in ["selfLink", "managedFields", "generation", "resourceVersion"] {
            meta.remove(server_set);
        }
        set_type_meta(resource, &mut obj);
        let mut errors = resource.validate(&obj);
        errors.extend(immutability_errors(&current, &obj));
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource.kind(), name, &errors));
        }
        // A write that changes nothing is not a write: same version, no event.
        let mut unchanged = current.clone();
        if let Some(m) = unchanged.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        if unchanged == obj {
            return Ok(current);
        }
        let rv = st.rv + 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        st.objects.insert(key, obj.clone());
        self.commit(
            st,
            rv,
            resource,
            ns,
            ChangeType::Modified,
            obj.clone(),
            Some(current),
        );
        Ok(obj)
    }

    pub fn delete(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        pre: &Preconditions,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let key = (resource, ns.to_string(), name.to_string());
        let Some(current) = st.objects.get(&key) else {
            return Err(ApiError::not_found(resource.plural(), name));
        };
        let current_uid = json_field(current, "metadata.uid").unwrap_or_default();
        let current_rv = json_field(current, "metadata.resourceVersion").unwrap_or_default();
        if let Some(uid) = &pre.uid
            && *uid != current_uid
        {
            return Err(ApiError::conflict_because(
                resource.plural(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
                ),
            ));
        }
        if let Some(rv) = &pre.resource_version
            && *rv != current_rv
        {
            return Err(ApiError::conflict_because(
                resource.plural(),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {current_rv}"
                ),
            ));
        }
        let mut obj = st.objects.remove(&key).unwrap_or(Value::Null);
        let rv = st.rv + 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.commit(
            &mut st,
            rv,
            resource,
            ns,
            ChangeType::Deleted,
            obj.clone(),
            None,
        );
        Ok(obj)
    }

    /// DELETE on a collection: every selected object, each with its own resourceVersion.
    pub fn delete_collection(&self, resource: Resource, sel: &Selection) -> Vec<Value> {
        let mut st = self.lock();
        let keys: Vec<ObjKey> = st
            .objects
            .iter()
            .filter(|(k, v)| k.0 == resource && sel.matches(resource, v))
            .map(|(k, _)| k.clone())
            .collect();
        let mut deleted = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(mut obj) = st.objects.remove(&key) else {
                continue;
            };
            let rv = st.rv + 1;
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            self.commit(
                &mut st,
                rv,
                resource,
                &key.1,
                ChangeType::Deleted,
                obj.clone(),
                None,
            );
            deleted.push(obj);
        }
        deleted
    }

    /// Start a watch on `resource`. Filtering by selection is the caller's: it must see
    /// every change to turn a selection boundary crossing into ADDED or DELETED.
    pub fn watch(
        &self,
        resource: Resource,
        sel: &Selection,
        from: WatchFrom,
    ) -> Result<WatchStart, ApiError> {
        let st = self.lock();
        let live = self.feed.subscribe();
        match from {
            WatchFrom::Now => Ok(WatchStart {
                current: st
                    .objects
                    .iter()
                    .filter(|(k, v)| k.0 == resource && sel.matches(resource, v))
                    .map(|(_, v)| v.clone())
                    .collect(),
                backlog: Vec::new(),
                live,
                resource_version: st.rv,
            }),
            WatchFrom::Version(from) => {
                if from < st.oldest_watchable {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {from} ({})",
                        st.rv
                    )));
                }
                Ok(WatchStart {
                    current: Vec::new(),
                    backlog: st
                        .history
                        .iter()
                        .filter(|c| c.rv > from && c.resource == resource)
                        .cloned()
                        .collect(),
                    live,
                    resource_version: st.rv,
                })
            }
        }
    }

    /// Forget the whole change history, as an etcd compaction does: every watch or continue
    /// token from a version before now gets 410 Expired.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.oldest_watchable = st.rv;
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        st: &mut State,
        rv: u64,
        resource: Resource,
        ns: &str,
        change: ChangeType,
        object: Value,
        previous: Option<Value>,
    ) {
        st.rv = rv;
        let change = Arc::new(Change {
            rv,
            resource,
            namespace: ns.to_string(),
            change,
            object,
            previous,
        });
        st.history.push_back(change.clone());
        while st.history.len() > st.history_limit {
            if let Some(dropped) = st.history.pop_front() {
                st.oldest_watchable = dropped.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.feed.send(change);
    }

    /// Everything needed to restore the store: objects and the resourceVersion.
    pub fn snapshot(&self) -> Value {
        let st = self.lock();
        let objects: Vec<Value> = st
            .objects
            .iter()
            .map(|((res, _, _), v)| json!({"resource": res.plural(), "object": v}))
            .collect();
        json!({"resourceVersion": st.rv, "objects": objects})
    }

    /// Restore from [`Store::snapshot`]. History starts empty, so watches from older
    /// versions get 410, as after a kube-apiserver restart with a compacted etcd.
    pub fn restore(&self, snapshot: &Value) -> Result<usize, String> {
        let rv = snapshot
            .get("resourceVersion")
            .and_then(Value::as_u64)
            .ok_or("snapshot has no resourceVersion")?;
        let entries = snapshot
            .get("objects")
            .and_then(Value::as_array)
            .ok_or("snapshot has no objects")?;
        let mut objects = BTreeMap::new();
        for entry in entries {
            let res = entry
                .get("resource")
                .and_then(Value::as_str)
                .and_then(Resource::from_plural)
                .ok_or("snapshot entry with an unknown resource")?;
            let obj = entry
                .get("object")
                .cloned()
                .ok_or("snapshot entry without object")?;
            let ns = json_field(&obj, "metadata.namespace").ok_or("object without namespace")?;
            let name = json_field(&obj, "metadata.name").ok_or("object without name")?;
            objects.insert((res, ns, name), obj);
        }
        let count = objects.len();
        let mut st = self.lock();
        st.objects = objects;
        st.rv = rv;
        st.history.clear();
        st.oldest_watchable = rv;
        Ok(count)
    }
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be a JSON object"))
}

fn set_type_meta(resource: Resource, obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!("v1"));
        map.insert("kind".into(), json!(resource.kind()));
    }
}

/// `immutable: true` ConfigMaps keep their data and stay immutable.
fn immutability_errors(current: &Value, new: &Value) -> Vec<FieldError> {
    if current.get("immutable") != Some(&Value::Bool(true)) {
        return Vec::new();
    }
    let mut errors = Vec::new();
    if new.get("immutable") != Some(&Value::Bool(true)) {
        errors.push(FieldError {
            field: "immutable".into(),
            reason: "FieldValueForbidden",
            detail: "Forbidden: field is immutable when `immutable` is set".into(),
        });
    }
    for field in ["data", "binaryData"] {
        if current.get(field) != new.get(field) {
            errors.push(FieldError {
                field: field.into(),
                reason: "FieldValueForbidden",
                detail: "Forbidden: field is immutable when `immutable` is set".into(),
            });
        }
    }
    errors
}

/// Timestamps as kube-apiserver writes `creationTimestamp`: UTC, whole seconds.
pub fn now_rfc3339() -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", jiff::Timestamp::now())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw = json!({"rv": rv, "ns": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
    }

    fn rv_of(obj: &Value) -> String {
        json_field(obj, "metadata.resourceVersion").unwrap()
    }

    #[test]
    fn create_sets_server_metadata_and_rejects_duplicates() {
        let s = Store::new(100);
        let a = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        assert_eq!(a["metadata"]["namespace"], "ns");
        assert_eq!(rv_of(&a), "2");
        assert!(a["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(
            a["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let err = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
        // Same name in another namespace is another object.
        s.create(Resource::ConfigMaps, "other", cm("a", json!({})))
            .unwrap();
    }

    #[test]
    fn create_with_resource_version_is_refused() {
        let s = Store::new(100);
        let mut obj = cm("a", json!({}));
        obj["metadata"]["resourceVersion"] = json!("5");
        let err = s.create(Resource::ConfigMaps, "ns", obj).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "resourceVersion should not be set on objects to be created"
        );
    }

    #[test]
    fn generate_name_expands() {
        let s = Store::new(100);
        let obj = json!({"metadata": {"generateName": "lock-"}, "data": {}});
        let created = s.create(Resource::ConfigMaps, "ns", obj).unwrap();
        let name = created["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("lock-") && name.len() == 10, "{name}");
    }

    #[test]
    fn stale_update_conflicts_and_unconditional_update_wins() {
        let s = Store::new(100);
        let a = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let mut first = a.clone();
        first["data"]["k"] = json!("1");
        let updated = s.update(Resource::ConfigMaps, "ns", "a", first).unwrap();
        assert_eq!(updated["metadata"]["uid"], a["metadata"]["uid"]);
        let mut stale = a.clone();
        stale["data"]["k"] = json!("2");
        let err = s
            .update(Resource::ConfigMaps, "ns", "a", stale.clone())
            .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        stale["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let forced = s.update(Resource::ConfigMaps, "ns", "a", stale).unwrap();
        assert_eq!(forced["data"]["k"], "2");
    }

    #[test]
    fn update_without_change_keeps_version_and_emits_nothing() {
        let s = Store::new(100);
        let a = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let again = s
            .update(Resource::ConfigMaps, "ns", "a", a.clone())
            .unwrap();
        assert_eq!(rv_of(&again), rv_of(&a));
        assert_eq!(s.resource_version(), 2);
    }

    #[test]
    fn update_of_missing_object_is_not_found() {
        let s = Store::new(100);
        let err = s
            .update(Resource::ConfigMaps, "ns", "nope", cm("nope", json!({})))
            .unwrap_err();
        assert_eq!(err.code, 404);
    }

    #[test]
    fn name_mismatch_is_bad_request() {
        let s = Store::new(100);
        s.create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let err = s
            .update(Resource::ConfigMaps, "ns", "a", cm("b", json!({})))
            .unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "the name of the object (b) does not match the name on the URL (a)"
        );
    }

    #[test]
    fn patch_merges_and_checks_resource_version_precondition() {
        let s = Store::new(100);
        let a = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({"x": "1"})))
            .unwrap();
        let p = json!({"metadata": {"labels": {"x": null, "y": "2"}}, "data": {"n": "m"}});
        let patched = s.patch(Resource::ConfigMaps, "ns", "a", &p).unwrap();
        assert_eq!(patched["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(patched["data"], json!({"k": "v", "n": "m"}));
        let stale = json!({"metadata": {"resourceVersion": rv_of(&a)}, "data": {"k": "w"}});
        let err = s
            .patch(Resource::ConfigMaps, "ns", "a", &stale)
            .unwrap_err();
        assert_eq!(err.reason, "Conflict");
        let fresh = json!({"metadata": {"resourceVersion": rv_of(&patched)}, "data": {"k": "w"}});
        assert_eq!(
            s.patch(Resource::ConfigMaps, "ns", "a", &fresh).unwrap()["data"]["k"],
            "w"
        );
    }

    #[test]
    fn delete_preconditions() {
        let s = Store::new(100);
        let a = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let wrong_uid = Preconditions {
            uid: Some("x".into()),
            resource_version: None,
        };
        let err = s
            .delete(Resource::ConfigMaps, "ns", "a", &wrong_uid)
            .unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("Precondition failed: UID in precondition: x"),
            "{}",
            err.message
        );
        let wrong_rv = Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        };
        assert_eq!(
            s.delete(Resource::ConfigMaps, "ns", "a", &wrong_rv)
                .unwrap_err()
                .code,
            409
        );
        let right = Preconditions {
            uid: json_field(&a, "metadata.uid"),
            resource_version: Some(rv_of(&a)),
        };
        let gone = s.delete(Resource::ConfigMaps, "ns", "a", &right).unwrap();
        assert_eq!(rv_of(&gone), "3");
        assert_eq!(
            s.get(Resource::ConfigMaps, "ns", "a").unwrap_err().code,
            404
        );
    }

    #[test]
    fn list_pages_with_continue_tokens() {
        let s = Store::new(100);
        for i in 0..5 {
            s.create(
                Resource::ConfigMaps,
                "ns",
                cm(&format!("c{i}"), json!({"app": "x"})),
            )
            .unwrap();
        }
        s.create(Resource::ConfigMaps, "ns", cm("other", json!({"app": "y"})))
            .unwrap();
        let sel = Selection {
            namespace: Some("ns".into()),
            labels: LabelSelector::parse("app=x").unwrap(),
            ..Default::default()
        };
        let p1 = s.list(Resource::ConfigMaps, &sel, Some(2), None).unwrap();
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        let p2 = s
            .list(
                Resource::ConfigMaps,
                &sel,
                Some(2),
                p1.continue_token.as_deref(),
            )
            .unwrap();
        let p3 = s
            .list(
                Resource::ConfigMaps,
                &sel,
                Some(2),
                p2.continue_token.as_deref(),
            )
            .unwrap();
        assert!(p3.continue_token.is_none());
        let names: Vec<String> = [p1.items, p2.items, p3.items]
            .concat()
            .iter()
            .map(|o| json_field(o, "metadata.name").unwrap())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
        assert_eq!(p2.resource_version, p1.resource_version);
    }

    #[test]
    fn continue_token_after_compaction_expires() {
        let s = Store::new(100);
        for i in 0..3 {
            s.create(Resource::ConfigMaps, "ns", cm(&format!("c{i}"), json!({})))
                .unwrap();
        }
        let p1 = s
            .list(Resource::ConfigMaps, &Selection::default(), Some(1), None)
            .unwrap();
        s.create(Resource::ConfigMaps, "ns", cm("late", json!({})))
            .unwrap();
        s.compact();
        let err = s
            .list(
                Resource::ConfigMaps,
                &Selection::default(),
                Some(1),
                p1.continue_token.as_deref(),
            )
            .unwrap_err();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        let garbage = s.list(
            Resource::ConfigMaps,
            &Selection::default(),
            None,
            Some("!!"),
        );
        assert_eq!(garbage.unwrap_err().code, 400);
    }

    #[test]
    fn watch_backlog_and_history_expiry() {
        let s = Store::new(3);
        let a = s
            .create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let from = rv_of(&a).parse().unwrap();
        s.patch(
            Resource::ConfigMaps,
            "ns",
            "a",
            &json!({"data": {"k": "2"}}),
        )
        .unwrap();
        s.delete(Resource::ConfigMaps, "ns", "a", &Preconditions::default())
            .unwrap();
        let w = s
            .watch(
                Resource::ConfigMaps,
                &Selection::default(),
                WatchFrom::Version(from),
            )
            .unwrap();
        let kinds: Vec<_> = w.backlog.iter().map(|c| c.change).collect();
        assert_eq!(kinds, [ChangeType::Modified, ChangeType::Deleted]);
        // Three more changes push the first ones out of the retained history.
        for i in 0..3 {
            s.create(Resource::ConfigMaps, "ns", cm(&format!("x{i}"), json!({})))
                .unwrap();
        }
        let err = s
            .watch(
                Resource::ConfigMaps,
                &Selection::default(),
                WatchFrom::Version(from),
            )
            .err()
            .unwrap();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        assert!(
            err.message
                .starts_with(&format!("too old resource version: {from} ("))
        );
    }

    #[test]
    fn watch_now_lists_current_objects_and_sees_live_changes() {
        let s = Store::new(100);
        s.create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let mut w = s
            .watch(Resource::ConfigMaps, &Selection::default(), WatchFrom::Now)
            .unwrap();
        assert_eq!(w.current.len(), 1);
        s.create(Resource::ConfigMaps, "ns", cm("b", json!({})))
            .unwrap();
        let live = w.live.try_recv().unwrap();
        assert_eq!(live.change, ChangeType::Added);
        assert_eq!(live.object["metadata"]["name"], "b");
    }

    #[test]
    fn immutable_configmap_rejects_data_changes() {
        let s = Store::new(100);
        let mut obj = cm("a", json!({}));
        obj["immutable"] = json!(true);
        s.create(Resource::ConfigMaps, "ns", obj).unwrap();
        let err = s
            .patch(
                Resource::ConfigMaps,
                "ns",
                "a",
                &json!({"data": {"k": "2"}}),
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            s.patch(
                Resource::ConfigMaps,
                "ns",
                "a",
                &json!({"metadata": {"labels": {"l": "1"}}})
            )
            .is_ok()
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let s = Store::new(100);
        s.create(Resource::ConfigMaps, "ns", cm("a", json!({})))
            .unwrap();
        let snap = s.snapshot();
        let t = Store::new(100);
        assert_eq!(t.restore(&snap).unwrap(), 1);
        assert_eq!(t.resource_version(), s.resource_version());
        assert_eq!(
            t.get(Resource::ConfigMaps, "ns", "a").unwrap(),
            s.get(Resource::ConfigMaps, "ns", "a").unwrap()
        );
        assert!(t.restore(&json!({"objects": []})).is_err());
    }
}
