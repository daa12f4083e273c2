//! Permissions, checked at start: the API server is asked (`SelfSubjectAccessReview`) about
//! every verb and resource the sidecar will use in its namespace, and a sidecar that lacks
//! any refuses to start with one message that lists them all and the Role that grants them,
//! rather than retrying forbidden calls for as long as it runs.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// One permission: a verb on a resource of an API group (`""` for the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
}

const fn p(verb: &'static str, group: &'static str, resource: &'static str) -> Permission {
    Permission {
        verb,
        group,
        resource,
    }
}

/// What the sidecar does in its namespace: the lock and store ConfigMaps (read, watch, create,
/// compare-and-swap), and `LeaderElection` Events on them.
pub const SIDECAR: [Permission; 7] = [
    p("get", "", "configmaps"),
    p("list", "", "configmaps"),
    p("watch", "", "configmaps"),
    p("create", "", "configmaps"),
    p("update", "", "configmaps"),
    p("create", "events.k8s.io", "events"),
    p("patch", "events.k8s.io", "events"),
];

/// A Role that grants `needed` (the rules, grouped by API group and resource), to show
/// whoever must fix the permissions.
pub fn role_for(name: &str, namespace: &str, needed: &[Permission]) -> String {
    let mut rules: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for p in needed {
        match rules
            .iter_mut()
            .find(|(g, r, _)| *g == p.group && *r == p.resource)
        {
            Some((_, _, verbs)) => verbs.push(p.verb),
            None => rules.push((p.group, p.resource, vec![p.verb])),
        }
    }
    let mut out = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {name}, namespace: {namespace}}}\nrules:\n"
    );
    for (group, resource, verbs) in rules {
        out.push_str(&format!(
            "- {{apiGroups: [\"{group}\"], resources: [{resource}], verbs: [{}]}}\n",
            verbs.join(", ")
        ));
    }
    out
}

/// The permissions of `needed` that the API server says this client lacks in `namespace`.
pub async fn missing(
    client: &kube::Client,
    namespace: &str,
    needed: &[Permission],
) -> Result<Vec<Permission>> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut lacking = Vec::new();
    for p in needed {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some(p.verb.to_string()),
                    group: Some(p.group.to_string()),
                    resource: Some(p.resource.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                Error::Config(format!(
                    "asking the API server what this identity may do (SelfSubjectAccessReview) failed: {e}"
                ))
            })?;
        if !answer.status.is_some_and(|s| s.allowed) {
            lacking.push(*p);
        }
    }
    Ok(lacking)
}

/// Refuse to go on without every permission of `needed`: one error listing what is missing
/// and a Role that grants it.
pub async fn require(
    client: &kube::Client,
    namespace: &str,
    needed: &[Permission],
    role: &str,
) -> Result<()> {
    let lacking = missing(client, namespace, needed).await?;
    if lacking.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = lacking
        .iter()
        .map(|p| {
            let group = if p.group.is_empty() { "core" } else { p.group };
            format!("{} {} ({group})", p.verb, p.resource)
        })
        .collect();
    Err(Error::Config(format!(
        "missing permissions in namespace {namespace}: {}. Bind this identity to a Role that grants them, e.g. (with a RoleBinding to its ServiceAccount):\n{}",
        list.join(", "),
        role_for(role, namespace, needed)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_groups_verbs_by_resource() {
        let role = role_for("hakeeper-sidecar", "flink", &SIDECAR);
        assert!(
            role.contains("metadata: {name: hakeeper-sidecar, namespace: flink}"),
            "{role}"
        );
        assert!(
            role.contains(
                "- {apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, watch, create, update]}"
            ),
            "{role}"
        );
        assert!(
            role.contains(
                "- {apiGroups: [\"events.k8s.io\"], resources: [events], verbs: [create, patch]}"
            ),
            "{role}"
        );
    }
}
