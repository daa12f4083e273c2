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

/// Of [`SIDECAR`], what it cannot work without (the Events are a record, not a need: without
/// them it warns and goes on).
pub fn required(p: &Permission) -> bool {
    p.resource == "configmaps"
}

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

/// One review, retried a few times on errors that pass (5xx, timeouts). `None` when the
/// API server does not serve reviews to this client (404, 403 on the review itself).
async fn ask(
    reviews: &Api<SelfSubjectAccessReview>,
    review: &SelfSubjectAccessReview,
) -> Result<Option<k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            reviews.create(&PostParams::default(), review),
        )
        .await;
        let error = match answer {
            Ok(Ok(answer)) => return Ok(Some(answer.status.unwrap_or_default())),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 403 => return Ok(None),
            Ok(Err(kube::Error::Api(s))) if s.code == 401 => {
                return Err(Error::Config(format!(
                    "the API server refuses this identity's credentials (SelfSubjectAccessReview answered 401 {}): check the kubeconfig or the ServiceAccount token",
                    s.reason
                )));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 10 s".to_string(),
        };
        if attempt >= 4 {
            return Err(Error::Config(format!(
                "asking the API server what this identity may do (SelfSubjectAccessReview) failed {attempt} times: {error}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
    }
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
        let answer = ask(&reviews, &review).await?;
        match answer {
            // The API server does not answer reviews for us (a proxy, an old or unusual
            // server): nothing can be known in advance; the calls will say.
            None => {
                tracing::warn!(
                    "the API server answers no SelfSubjectAccessReview; permissions are not checked at start"
                );
                return Ok(Vec::new());
            }
            Some(status) => {
                // An authorizer that could not decide (`evaluationError`) is no denial.
                let undecided = !status.allowed
                    && status
                        .evaluation_error
                        .as_deref()
                        .is_some_and(|e| !e.is_empty());
                if undecided {
                    tracing::warn!(verb = p.verb, resource = p.resource, error = ?status.evaluation_error, "the API server could not decide a permission; not counted as missing");
                } else if !status.allowed {
                    lacking.push(*p);
                }
            }
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
    let all = missing(client, namespace, needed).await?;
    let (lacking, optional): (Vec<Permission>, Vec<Permission>) =
        all.into_iter().partition(required);
    if !optional.is_empty() {
        let list: Vec<String> = optional
            .iter()
            .map(|p| format!("{} {} ({})", p.verb, p.resource, p.group))
            .collect();
        tracing::warn!(missing = ?list, "no permission to record Events: leader elections will not show in kubectl describe");
    }
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
