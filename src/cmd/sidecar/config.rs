//! The sidecar's effective configuration: what `--flink-conf` fills in, and the summary
//! logged at start.

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::SidecarArgs;
use crate::Result;
use crate::cmd::{failure, other};
use crate::flinkconf::FlinkConf;

impl SidecarArgs {
    /// Fill in, from `--flink-conf`, every setting that was left at its default (neither a
    /// flag nor an environment variable gave it). Precedence: flag, environment, the Flink
    /// file, defaults. `matches` are the `sidecar` subcommand's.
    pub fn apply_flink_conf(&mut self, matches: &ArgMatches) -> Result<()> {
        let Some(path) = &self.flink_conf else {
            return Ok(());
        };
        let conf = FlinkConf::load(path).map_err(other)?;
        let defaulted = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        let bad = |key: &str, e: String| failure(format!("{}: {key}: {e}", path.display()));
        if self.cluster_id.is_none()
            && let Some(id) = &conf.cluster_id
        {
            self.cluster_id = Some(
                id.parse()
                    .map_err(|e: String| bad("kubernetes.cluster-id", e))?,
            );
        }
        if self.kube.namespace.is_none() {
            self.kube.namespace = conf.namespace.clone();
        }
        if self.storage.storage_dir.is_none() {
            self.storage.storage_dir = conf.storage_dir.clone();
        }
        let t = &mut self.timings;
        if defaulted("lease_duration")
            && let Some(d) = conf.lease_duration
        {
            t.lease_duration = d;
        }
        if defaulted("renew_deadline")
            && let Some(d) = conf.renew_deadline
        {
            t.renew_deadline = d;
        }
        if defaulted("retry_period")
            && let Some(d) = conf.retry_period
        {
            t.retry_period = d;
        }
        if defaulted("checkpoints_retained")
            && let Some(n) = conf.checkpoints_retained
        {
            self.storage.checkpoints_retained = n;
        }
        let s3 = &mut self.storage.s3;
        if s3.s3_endpoint.is_none() {
            s3.s3_endpoint = conf.s3_endpoint.clone();
        }
        if defaulted("s3_path_style")
            && let Some(p) = conf.s3_path_style
        {
            s3.s3_path_style = p;
        }
        if s3.s3_access_key.is_none() && s3.s3_secret_key.is_none() {
            s3.s3_access_key = conf.s3_access_key.clone();
            s3.s3_secret_key = conf.s3_secret_key.clone();
        }
        Ok(())
    }

    /// The effective configuration, for the log: secrets are never in it.
    pub fn describe(&self, namespace: &str) -> String {
        let s3 = &self.storage.s3;
        format!(
            "cluster-id={} namespace={namespace} listen={} probe-listen={} token={} storage-dir={} s3-endpoint={} s3-path-style={} s3-region={} s3-keys={} lease-duration={:?} renew-deadline={:?} retry-period={:?} client-timeout={} liveness={} checkpoints-retained={} strict-recovery={} max-payload-bytes={} flink-conf={}",
            self.cluster_id
                .as_ref()
                .map_or("-".to_string(), ToString::to_string),
            self.listen,
            self.probe_listen.map_or("-".to_string(), |a| a.to_string()),
            if self.token_file.is_some() {
                "<redacted>"
            } else {
                "none"
            },
            self.storage.storage_dir.as_deref().unwrap_or("-"),
            s3.s3_endpoint.as_deref().unwrap_or("-"),
            s3.s3_path_style,
            s3.s3_region.as_deref().unwrap_or("-"),
            if s3.s3_access_key.is_some() {
                "<redacted>"
            } else {
                "credential chain"
            },
            self.timings.lease_duration,
            self.timings.renew_deadline,
            self.timings.retry_period,
            self.liveness
                .client_timeout
                .map_or("renew-deadline".to_string(), |d| format!("{d:?}")),
            match (&self.liveness.liveness_url, &self.liveness.liveness) {
                (Some(url), _) => format!(
                    "{url} (failures {}, timeout {:?})",
                    self.liveness.liveness_failures, self.liveness.liveness_timeout
                ),
                (None, Some(mode)) => mode.clone(),
                (None, None) => "-".to_string(),
            },
            self.storage.checkpoints_retained,
            self.storage.strict_recovery,
            self.storage.max_payload_bytes,
            self.flink_conf
                .as_ref()
                .map_or("-".to_string(), |p| p.display().to_string()),
        )
    }
}
