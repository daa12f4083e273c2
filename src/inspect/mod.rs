//! `hakeeper inspect`: what a Flink cluster's HA ConfigMaps hold, for people (a
//! `kubectl describe` for HA state) and for scripts (JSON).
//!
//! Three steps, with the I/O at the edges:
//!
//! 1. [`collect`] reads the cluster's ConfigMaps: by label, and by name for those that may not
//!    carry the labels yet (see below).
//! 2. [`build`] turns them into a [`Report`]: a pure function of the ConfigMaps and the time.
//!    Nothing in a ConfigMap makes it fail: whatever cannot be read is reported as malformed.
//! 3. Optionally [`verify`] checks every handle's payload in the object store (exists, and has
//!    the size the handle records) and lists the dangling handles.
//!
//! [`render_table`] and [`render_json`] print the report.
//!
//! # Layouts
//!
//! Two layouts exist; [`build`] detects them from the ConfigMaps' names and shows both when both
//! are there (a cluster upgraded across Flink 1.15 keeps the old ConfigMaps).
//!
//! * [`Layout::PerComponent`]: Flink 1.12–1.14 (and 1.15–1.16 with
//!   `high-availability.use-old-ha-services`), and hakeeper's own stores. One ConfigMap per
//!   component (`<cluster-id>-dispatcher-leader`, `-resourcemanager-leader`, `-restserver-leader`,
//!   `<cluster-id>-<job-id>-jobmanager-leader`), each its own lock (the leader annotation) with
//!   the leader's `address` and `sessionId` in its data. The dispatcher's also holds the job graphs
//!   (`jobGraph-<job-id>`) and the running-jobs registry (`runningJobsRegistry-<job-id>`: `RUNNING`
//!   or `DONE`); a job manager's holds the job's retained checkpoints (`checkpointID-<19 digits>`)
//!   and its checkpoint counter (`counter`; absent means 1).
//! * [`Layout::ClusterConfigMap`]: Flink 1.15 and later. One lock for all components of a
//!   JobManager process, on `<cluster-id>-cluster-config-map`, whose data holds one entry per
//!   component, `org.apache.flink.k8s.leader.<name>` = `<sessionId>,<address>`, where the name is
//!   `dispatcher`, `resourcemanager`, `restserver`, or for a job's JobMaster the job id (1.15) or
//!   `job-<job-id>` (later versions). The same ConfigMap holds the job graphs (`jobGraph-<job-id>`;
//!   `executionPlan-<job-id>` from Flink 2.0). Each job's checkpoints and counter are in
//!   `<cluster-id>-<job-id>-config-map`, which has no lock (Flink writes it without leadership
//!   validation). There is no running-jobs registry (Flink 1.15 replaced it with the
//!   JobResultStore, files in the HA storage directory), and the handles are wrapped in
//!   `StateHandleWithDeleteMarker`, whose marker is shown.
//!
//! Both layouts use the same labels (`app=<cluster-id>`, `type=flink-native-kubernetes`,
//! `configmap-type=high-availability`), but a lock ConfigMap is created by the elector without
//! labels and only gets them with the first leader information written into it, and some tools
//! drop `type`. So [`collect`] selects on `app` and `configmap-type` only, and also gets the
//! ConfigMaps of both layouts by name.
//!
//! # Files
//!
//! * `collect.rs`: [`collect`] and the names it looks for (I/O).
//! * `model.rs`: the [`Report`] and its parts, and [`build`] (pure).
//! * `verify.rs`: [`verify`] (I/O).
//! * `render.rs`: [`render_table`] and [`render_json`] (pure).
//!
//! [`collect`]: fn@collect
//! [`verify`]: fn@verify

mod collect;
#[cfg(test)]
mod fixtures;
mod model;
mod render;
mod verify;

pub use collect::{collect, label_selector, referenced_jobs};
pub use model::{
    CheckpointReport, ComponentReport, ConfigMapReport, CounterReport, DanglingHandle,
    EXECUTION_PLAN_KEY_PREFIX, HandleReport, JobReport, JobState, LEADER_KEY_PREFIX, Layout,
    LockReport, LockStatus, PayloadCheck, Report, VerificationSummary, build,
    cluster_configmap_name, job_configmap_name,
};
pub use render::{render_json, render_table};
pub use verify::verify;
