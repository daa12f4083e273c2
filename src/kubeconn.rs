//! Kubernetes connection options shared by every subcommand that talks to a cluster,
//! and the client built from them.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// `--kubeconfig`, `--context`, `--namespace`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file to use [default: $KUBECONFIG, else the in-cluster service account,
    /// else ~/.kube/config]
    #[arg(long, env = "HAKEEPER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use [default: the current context]
    #[arg(long, env = "HAKEEPER_CONTEXT")]
    pub context: Option<String>,
    /// Namespace [default: the context's, else the pod's, else "default"]
    #[arg(long, short = 'n', env = "HAKEEPER_NAMESPACE")]
    pub namespace: Option<String>,
}

/// Where the client configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A kubeconfig file (from `--kubeconfig` or `$KUBECONFIG`; several paths in
    /// `$KUBECONFIG` are merged, as kubectl does).
    File(String),
    /// The pod's service account.
    InCluster,
    /// `~/.kube/config`.
    HomeFile,
}

/// Decide where to read the configuration from: `--kubeconfig`, else `$KUBECONFIG`, else the
/// in-cluster service account (when running in a pod and no `--context` is asked for), else
/// `~/.kube/config`.
pub fn config_source(
    flag: Option<&str>,
    env: Option<&str>,
    in_cluster: bool,
    context_given: bool,
) -> ConfigSource {
    match (flag, env.filter(|e| !e.is_empty())) {
        (Some(path), _) => ConfigSource::File(path.to_string()),
        (None, Some(env)) => ConfigSource::File(env.to_string()),
        (None, None) if in_cluster && !context_given => ConfigSource::InCluster,
        (None, None) => ConfigSource::HomeFile,
    }
}

impl KubeArgs {
    /// Build the kube-rs configuration, with the namespace resolved.
    pub async fn config(&self) -> Result<kube::Config> {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let env = std::env::var("KUBECONFIG").ok();
        let source = config_source(
            self.kubeconfig.as_deref().and_then(|p| p.to_str()),
            env.as_deref(),
            in_cluster,
            self.context.is_some(),
        );
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let mut config = match &source {
            ConfigSource::File(paths) => {
                let mut merged: Option<Kubeconfig> = None;
                for path in std::env::split_paths(paths) {
                    if path.as_os_str().is_empty() {
                        continue;
                    }
                    let kc = Kubeconfig::read_from(&path).map_err(|e| {
                        Error::KubeConfig(format!("reading {}: {e}", path.display()))
                    })?;
                    merged = Some(match merged {
                        None => kc,
                        Some(m) => m
                            .merge(kc)
                            .map_err(|e| Error::KubeConfig(e.to_string()))?,
                    });
                }
                let kc = merged
                    .ok_or_else(|| Error::KubeConfig(format!("no kubeconfig file in {paths:?}")))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| Error::KubeConfig(e.to_string()))?
            }
            ConfigSource::InCluster => kube::Config::incluster()
                .map_err(|e| Error::KubeConfig(format!("in-cluster configuration: {e}")))?,
            ConfigSource::HomeFile => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| {
                    Error::KubeConfig(format!(
                        "no --kubeconfig, $KUBECONFIG or in-cluster service account, and ~/.kube/config: {e}"
                    ))
                })?,
        };
        if let Some(ns) = &self.namespace {
            config.default_namespace = ns.clone();
        }
        tracing::debug!(?source, namespace = %config.default_namespace, server = %config.cluster_url, "kubernetes client configuration");
        Ok(config)
    }

    /// A client and the namespace to work in.
    pub async fn client(&self) -> Result<(kube::Client, String)> {
        let config = self.config().await?;
        let namespace = config.default_namespace.clone();
        Ok((kube::Client::try_from(config)?, namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_then_env_then_in_cluster_then_home() {
        assert_eq!(
            config_source(Some("/a"), Some("/b"), true, false),
            ConfigSource::File("/a".into())
        );
        assert_eq!(
            config_source(None, Some("/b"), true, false),
            ConfigSource::File("/b".into())
        );
        assert_eq!(
            config_source(None, Some(""), true, false),
            ConfigSource::InCluster
        );
        assert_eq!(
            config_source(None, None, true, false),
            ConfigSource::InCluster
        );
        assert_eq!(
            config_source(None, None, false, false),
            ConfigSource::HomeFile
        );
        // A context only exists in a kubeconfig file.
        assert_eq!(
            config_source(None, None, true, true),
            ConfigSource::HomeFile
        );
    }

    #[tokio::test]
    async fn namespace_flag_overrides_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: from-context\n- name: y\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user: {}\n",
        )
        .unwrap();
        let mut args = KubeArgs {
            kubeconfig: Some(path),
            ..Default::default()
        };
        assert_eq!(
            args.config().await.unwrap().default_namespace,
            "from-context"
        );
        args.context = Some("y".into());
        assert_eq!(args.config().await.unwrap().default_namespace, "default");
        args.namespace = Some("flag".into());
        assert_eq!(args.config().await.unwrap().default_namespace, "flag");
        args.context = Some("missing".into());
        assert!(args.config().await.is_err());
    }
}
