//! `--owner-reference`: what the user names (`Kind/name`, `apiVersion/Kind/name`, or the full
//! `apiVersion/Kind/name/uid`), resolved at start against the API server into an owner
//! reference with the owner's real uid.
//!
//! An owner reference to an object that does not exist (or to another object of the same
//! name, with another uid) makes the garbage collector delete every HA ConfigMap as soon as it
//! is created, job graphs and checkpoints with it. So the owner must exist, and its uid match,
//! before anything is created: otherwise the sidecar does not start.

use std::fmt;
use std::str::FromStr;

use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiResource, Discovery, Scope};

use crate::layout::OwnerRef;
use crate::{Error, Result};

/// What `--owner-reference` says. The kind is the part that starts with an upper-case letter
/// (kinds are PascalCase; API versions and names are lower-case): before it the API version
/// (optional), after it the name and optionally the uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSpec {
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
}

impl FromStr for OwnerSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid owner reference {s:?}: {why}; expected Kind/name (e.g. Deployment/my-flink), apiVersion/Kind/name or apiVersion/Kind/name/uid"
            )
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty part"));
        }
        let k = parts
            .iter()
            .position(|p| p.starts_with(|c: char| c.is_ascii_uppercase()))
            .ok_or_else(|| bad("no kind (a part that starts with an upper-case letter)"))?;
        let api_version = match &parts[..k] {
            [] => None,
            [v] => Some((*v).to_string()),
            [g, v] => Some(format!("{g}/{v}")),
            _ => return Err(bad("an API version has at most one '/'")),
        };
        let (name, uid) = match &parts[k + 1..] {
            [name] => (name.to_string(), None),
            [name, uid] => (name.to_string(), Some(uid.to_string())),
            [] => return Err(bad("no name")),
            _ => return Err(bad("too many parts after the kind")),
        };
        Ok(OwnerSpec {
            api_version,
            kind: parts[k].to_string(),
            name,
            uid,
        })
    }
}

impl fmt::Display for OwnerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = &self.api_version {
            write!(f, "{v}/")?;
        }
        write!(f, "{}/{}", self.kind, self.name)?;
        if let Some(uid) = &self.uid {
            write!(f, "/{uid}")?;
        }
        Ok(())
    }
}

/// Which served resource is `spec`'s kind: by its API version if given, else the kind's
/// preferred version in discovery.
async fn find_resource(client: &kube::Client, spec: &OwnerSpec) -> Result<(ApiResource, Scope)> {
    let discovery = Discovery::new(client.clone()).run().await.map_err(|e| {
        Error::Config(format!(
            "--owner-reference {spec}: discovering the API server's resources failed: {e}"
        ))
    })?;
    for group in discovery.groups() {
        let candidates = match &spec.api_version {
            Some(v) => group
                .versioned_resources(v.rsplit('/').next().unwrap_or(v))
                .into_iter()
                .filter(|(r, _)| &r.api_version == v)
                .collect::<Vec<_>>(),
            None => group.recommended_resources(),
        };
        if let Some((resource, caps)) = candidates.into_iter().find(|(r, _)| r.kind == spec.kind) {
            return Ok((resource, caps.scope));
        }
    }
    Err(Error::Config(format!(
        "--owner-reference {spec}: the API server serves no kind {}{}",
        spec.kind,
        spec.api_version
            .as_ref()
            .map(|v| format!(" in {v}"))
            .unwrap_or_default()
    )))
}

/// Read the owner named by `spec` (in `namespace` unless it is cluster-scoped) and return the
/// owner reference to put on HA ConfigMaps. An owner that does not exist, or whose uid is not
/// the one given, is an error that says what would happen and what to do.
pub async fn resolve(client: &kube::Client, namespace: &str, spec: &OwnerSpec) -> Result<OwnerRef> {
    let (resource, scope) = find_resource(client, spec).await?;
    let api: Api<DynamicObject> = match scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let owner = api.get_opt(&spec.name).await.map_err(|e| {
        Error::Config(format!(
            "--owner-reference {spec}: reading the owner failed: {e} (the sidecar needs get on {} in {namespace})",
            resource.plural
        ))
    })?;
    let Some(owner) = owner else {
        return Err(Error::Config(format!(
            "--owner-reference {spec}: no {} {:?} exists in namespace {namespace}; the garbage collector would delete every HA ConfigMap hakeeper creates (with the job graphs and checkpoints in them). Create the owner first, name an existing one, or drop --owner-reference",
            resource.kind, spec.name
        )));
    };
    let uid = owner.metadata.uid.clone().unwrap_or_default();
    if let Some(given) = &spec.uid
        && given != &uid
    {
        return Err(Error::Config(format!(
            "--owner-reference {spec}: {} {:?} has uid {uid}, not {given} (it was deleted and recreated?); the garbage collector would delete every HA ConfigMap hakeeper creates. Name it without a uid to use the current one",
            resource.kind, spec.name
        )));
    }
    if owner.metadata.deletion_timestamp.is_some() {
        return Err(Error::Config(format!(
            "--owner-reference {spec}: {} {:?} is being deleted; its dependents, the HA ConfigMaps, would go with it",
            resource.kind, spec.name
        )));
    }
    Ok(OwnerRef {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        name: spec.name.clone(),
        uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Option<&str>, kind: &str, name: &str, uid: Option<&str>) -> OwnerSpec {
        OwnerSpec {
            api_version: v.map(str::to_string),
            kind: kind.into(),
            name: name.into(),
            uid: uid.map(str::to_string),
        }
    }

    #[test]
    fn every_form_parses() {
        let cases = [
            ("Deployment/flink", spec(None, "Deployment", "flink", None)),
            (
                "apps/v1/Deployment/flink",
                spec(Some("apps/v1"), "Deployment", "flink", None),
            ),
            ("v1/ConfigMap/x", spec(Some("v1"), "ConfigMap", "x", None)),
            (
                "v1/ConfigMap/x/u-1",
                spec(Some("v1"), "ConfigMap", "x", Some("u-1")),
            ),
            (
                "apps/v1/Deployment/flink/0d6c7a52-2f5e",
                spec(
                    Some("apps/v1"),
                    "Deployment",
                    "flink",
                    Some("0d6c7a52-2f5e"),
                ),
            ),
            (
                "flink.apache.org/v1beta1/FlinkDeployment/basic",
                spec(
                    Some("flink.apache.org/v1beta1"),
                    "FlinkDeployment",
                    "basic",
                    None,
                ),
            ),
        ];
        for (text, expected) in cases {
            let parsed: OwnerSpec = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn malformed_forms_say_what_is_expected() {
        for bad in [
            "",
            "flink",
            "deployment/flink",
            "Deployment",
            "Deployment/",
            "a/b/c/Deployment/flink",
            "Deployment/flink/uid/extra",
            "apps//Deployment/flink",
        ] {
            let e = bad.parse::<OwnerSpec>().unwrap_err();
            assert!(e.contains("expected Kind/name"), "{bad}: {e}");
        }
    }
}
