//! `hakeeper inspect`: a cluster's HA state, read-only.

use clap::Args;

use crate::Result;
use crate::kubeconn::KubeArgs;
use crate::layout::ClusterId;
use crate::storage::{Location, S3Args};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Flink cluster id (`kubernetes.cluster-id`)
    #[arg(long, env = "HAKEEPER_CLUSTER_ID")]
    pub cluster_id: ClusterId,
    /// Output format
    #[arg(
        long,
        short = 'o',
        env = "HAKEEPER_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    pub output: InspectOutput,
    /// Check that every handle's payload exists with the size it records (needs
    /// --storage-dir); exit 1 if one is missing or of another size, or cannot be checked
    #[arg(long, env = "HAKEEPER_VERIFY", requires = "storage_dir")]
    pub verify: bool,
    /// Flink's `high-availability.storageDir` (`s3://bucket/prefix` or `file:///dir`): the
    /// store --verify reads from
    #[arg(long, env = "HAKEEPER_STORAGE_DIR")]
    pub storage_dir: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum InspectOutput {
    /// Aligned sections, as `kubectl describe` prints
    Table,
    /// The whole report as JSON (camelCase keys)
    Json,
}

/// Print the report; with `--verify`, an error if a handle is dangling or unchecked.
pub async fn run(args: InspectArgs) -> Result<()> {
    let (client, namespace) = args.kube.client().await?;
    let configmaps = crate::inspect::collect(client, &namespace, &args.cluster_id).await?;
    let mut report = crate::inspect::build(&args.cluster_id, &configmaps, jiff::Timestamp::now());
    report.namespace = Some(namespace);
    if args.verify {
        let dir = args
            .storage_dir
            .as_deref()
            .ok_or_else(|| super::failure("--verify needs --storage-dir"))?;
        let dir = Location::parse(dir).map_err(super::other)?;
        let storage = crate::storage::open(&dir, &args.s3.options())
            .await
            .map_err(super::other)?;
        crate::inspect::verify(&mut report, storage.as_ref()).await;
    }
    match args.output {
        InspectOutput::Table => print!("{}", crate::inspect::render_table(&report)),
        InspectOutput::Json => println!("{}", crate::inspect::render_json(&report)),
    }
    if let Some(summary) = &report.verification {
        if summary.dangling > 0 {
            return Err(super::failure(format!(
                "{} dangling handle(s): payload missing or of another size than recorded",
                summary.dangling
            )));
        }
        if summary.unchecked > 0 {
            return Err(super::failure(format!(
                "{} handle(s) could not be checked against the storage",
                summary.unchecked
            )));
        }
    }
    Ok(())
}
