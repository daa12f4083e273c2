//! Naming and layout of the HA ConfigMaps, compatible with Flink 1.12–1.14's native
//! Kubernetes HA services: one ConfigMap per component, which is both the lock and the
//! component's data store.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Labels on every HA ConfigMap, besides `app=<cluster-id>`.
pub const LABEL_APP: &str = "app";
pub const LABEL_CONFIGMAP_TYPE: &str = "configmap-type";
pub const CONFIGMAP_TYPE_HA: &str = "high-availability";
pub const LABEL_TYPE: &str = "type";
pub const TYPE_NATIVE: &str = "flink-native-kubernetes";

/// Data keys a leader writes when its leadership is confirmed.
pub const KEY_ADDRESS: &str = "address";
pub const KEY_SESSION_ID: &str = "sessionId";

/// A Flink job id: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(String);

impl JobId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JobId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(JobId(s.to_string()))
        } else {
            Err(format!(
                "invalid job id {s:?}: expected 32 lowercase hexadecimal characters"
            ))
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A component that elects a leader.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Dispatcher,
    ResourceManager,
    RestServer,
    JobManager(JobId),
    /// hakeeper's own operator (`hakeeper-operator-leader`): not a Flink component, never
    /// parsed from a component name, and its lock carries no HA labels.
    Operator,
}

impl Component {
    /// The ConfigMap that is this component's lock and store.
    pub fn configmap_name(&self, cluster_id: &ClusterId) -> String {
        match self {
            Component::Dispatcher => format!("{cluster_id}-dispatcher-leader"),
            Component::ResourceManager => format!("{cluster_id}-resourcemanager-leader"),
            Component::RestServer => format!("{cluster_id}-restserver-leader"),
            Component::JobManager(job) => format!("{cluster_id}-{job}-jobmanager-leader"),
            Component::Operator => format!("{cluster_id}-operator-leader"),
        }
    }

    /// The labels its lock ConfigMap is created with: the cluster's HA labels, except for the
    /// operator's lock, which must not look like a Flink cluster's HA state.
    pub fn lock_labels(&self, cluster_id: &ClusterId) -> BTreeMap<String, String> {
        match self {
            Component::Operator => BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "hakeeper".to_string()),
                (
                    "app.kubernetes.io/component".to_string(),
                    "operator".to_string(),
                ),
            ]),
            _ => cluster_id.labels(),
        }
    }
}

impl FromStr for Component {
    type Err = String;

    /// `dispatcher`, `resourcemanager`, `restserver` or `jobmanager/<job-id>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dispatcher" => Ok(Component::Dispatcher),
            "resourcemanager" => Ok(Component::ResourceManager),
            "restserver" => Ok(Component::RestServer),
            _ => match s.strip_prefix("jobmanager/") {
                Some(job) => Ok(Component::JobManager(job.parse()?)),
                None => Err(format!(
                    "unknown component {s:?}: expected dispatcher, resourcemanager, restserver or jobmanager/<job-id>"
                )),
            },
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Dispatcher => f.write_str("dispatcher"),
            Component::ResourceManager => f.write_str("resourcemanager"),
            Component::RestServer => f.write_str("restserver"),
            Component::JobManager(job) => write!(f, "jobmanager/{job}"),
            Component::Operator => f.write_str("operator"),
        }
    }
}

/// A Flink cluster id (`kubernetes.cluster-id`). It prefixes ConfigMap names and is a label
/// value, so it must be a DNS-1123 label of at most 45 characters (as Flink requires, leaving
/// room for the longest suffix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterId(String);

impl ClusterId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels every HA ConfigMap of this cluster carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_APP.to_string(), self.0.clone()),
            (
                LABEL_CONFIGMAP_TYPE.to_string(),
                CONFIGMAP_TYPE_HA.to_string(),
            ),
            (LABEL_TYPE.to_string(), TYPE_NATIVE.to_string()),
        ])
    }

    /// `app=<id>,configmap-type=high-availability,type=flink-native-kubernetes`
    pub fn label_selector(&self) -> String {
        self.labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl FromStr for ClusterId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid_chars = s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        let alnum_ends = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if s.is_empty() || s.len() > 45 || !valid_chars || !alnum_ends {
            return Err(format!(
                "invalid cluster id {s:?}: expected 1 to 45 lowercase letters, digits or '-', starting and ending with a letter or digit"
            ));
        }
        Ok(ClusterId(s.to_string()))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An owner reference to put on created HA ConfigMaps (opt-in: without one, HA state
/// survives deleting the Deployment). Written as `<apiVersion>/<kind>/<name>/<uid>`,
/// e.g. `apps/v1/Deployment/my-flink/6f1c…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl FromStr for OwnerRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.rsplitn(4, '/');
        let (Some(uid), Some(name), Some(kind), Some(api_version)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "invalid owner reference {s:?}: expected <apiVersion>/<kind>/<name>/<uid>"
            ));
        };
        if [uid, name, kind, api_version].iter().any(|p| p.is_empty()) {
            return Err(format!("invalid owner reference {s:?}: empty part"));
        }
        Ok(OwnerRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
        })
    }
}

impl OwnerRef {
    pub fn to_k8s(&self) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: None,
            block_owner_deletion: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "307e2d6a5be8307e2d6a5be8307e2d6a";

    #[test]
    fn configmap_names_follow_flink() {
        let c: ClusterId = "my-flink".parse().unwrap();
        assert_eq!(
            Component::Dispatcher.configmap_name(&c),
            "my-flink-dispatcher-leader"
        );
        assert_eq!(
            Component::ResourceManager.configmap_name(&c),
            "my-flink-resourcemanager-leader"
        );
        assert_eq!(
            Component::RestServer.configmap_name(&c),
            "my-flink-restserver-leader"
        );
        let jm: Component = format!("jobmanager/{JOB}").parse().unwrap();
        assert_eq!(
            jm.configmap_name(&c),
            format!("my-flink-{JOB}-jobmanager-leader")
        );
        assert_eq!(jm.to_string(), format!("jobmanager/{JOB}"));
    }

    #[test]
    fn labels_and_selector() {
        let c: ClusterId = "abc".parse().unwrap();
        assert_eq!(c.labels()["app"], "abc");
        assert_eq!(
            c.label_selector(),
            "app=abc,configmap-type=high-availability,type=flink-native-kubernetes"
        );
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in ["", "UPPER", "-lead", "trail-", "a_b", &"x".repeat(46)] {
            assert!(bad.parse::<ClusterId>().is_err(), "{bad:?}");
        }
        for bad in [
            "jobmanager/ABC",
            "jobmanager/",
            "jobmanager/307e",
            "leader",
            "Dispatcher",
        ] {
            assert!(bad.parse::<Component>().is_err(), "{bad:?}");
        }
        assert!(format!("{}0", &JOB[..31]).parse::<JobId>().is_ok());
        assert!(format!("{JOB}0").parse::<JobId>().is_err());
    }

    #[test]
    fn owner_reference_parses_from_the_right() {
        let o: OwnerRef = "apps/v1/Deployment/flink/1234-abcd".parse().unwrap();
        assert_eq!(
            (
                o.api_version.as_str(),
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str()
            ),
            ("apps/v1", "Deployment", "flink", "1234-abcd")
        );
        let core: OwnerRef = "v1/ConfigMap/x/u".parse().unwrap();
        assert_eq!(core.api_version, "v1");
        assert!("Deployment/flink/uid".parse::<OwnerRef>().is_err());
        assert!("apps/v1//flink/uid".parse::<OwnerRef>().is_err());
    }
}
