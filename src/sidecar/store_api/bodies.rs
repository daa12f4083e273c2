//! The JSON bodies the store routes answer (and the counter they take), with their schemas.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::handle::StateHandle;
use crate::sidecar::openapi::{self, JobId as JobIdName};
use crate::stores::plan::JobStatus;
use crate::stores::{CheckpointMeta, Skipped};

/// The jobs with a stored graph.
#[derive(Serialize, ToSchema)]
pub(super) struct JobList {
    #[schema(value_type = Vec<JobIdName>)]
    pub(super) jobs: Vec<String>,
    pub(super) skipped: Vec<Skipped>,
}

/// A graph stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GraphStored {
    #[schema(value_type = JobIdName)]
    pub(super) job_id: String,
    pub(super) handle: StateHandle,
}

/// A graph removed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GraphRemoved {
    #[schema(value_type = JobIdName)]
    pub(super) job_id: String,
    #[schema(schema_with = openapi::always_true)]
    pub(super) removed: bool,
    /// A payload that could not be deleted, if any.
    #[schema(required = true)]
    pub(super) orphaned: Option<String>,
}

/// A job's entry in the running-jobs registry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobStatusRecord {
    #[schema(value_type = JobIdName)]
    pub(super) job_id: String,
    pub(super) status: JobStatus,
}

/// A job's retained checkpoints.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CheckpointList {
    #[schema(value_type = JobIdName)]
    pub(super) job_id: String,
    pub(super) checkpoints: Vec<CheckpointMeta>,
    pub(super) skipped: Vec<Skipped>,
}

/// A checkpoint added.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CheckpointAdded {
    pub(super) checkpoint_id: u64,
    pub(super) handle: StateHandle,
    /// Ids of the older checkpoints dropped.
    pub(super) subsumed: Vec<u64>,
    /// Payloads of dropped checkpoints that could not be deleted.
    pub(super) orphaned: Vec<String>,
}

/// A checkpoint removed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CheckpointRemoved {
    pub(super) checkpoint_id: u64,
    #[schema(schema_with = openapi::always_true)]
    pub(super) removed: bool,
    /// A payload that could not be deleted, if any.
    #[schema(required = true)]
    pub(super) orphaned: Option<String>,
}

/// The checkpoint counter, or a value taken from it.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CounterValue)]
pub(super) struct CounterBody {
    #[schema(maximum = 9_223_372_036_854_775_807_u64)]
    pub(super) value: u64,
}

/// A blob stored.
#[derive(Serialize, ToSchema)]
pub(super) struct BlobStored {
    pub(super) key: String,
    /// Bytes stored.
    pub(super) size: u64,
}

/// A blob deleted (or absent).
#[derive(Serialize, ToSchema)]
pub(super) struct BlobDeleted {
    pub(super) key: String,
    #[schema(schema_with = openapi::always_true)]
    pub(super) deleted: bool,
}
