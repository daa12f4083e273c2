//! hakeeper: Kubernetes-native high availability for stateful stream processors.
//!
//! The crate is a library with a thin binary on top (`src/main.rs`). Module map:
//! see `docs/ARCHITECTURE.md`.

pub mod access;
pub mod apiserver;
pub mod bench;
pub mod cmd;
pub mod demo;
pub mod duration;
pub mod election;
pub mod flinkconf;
pub mod handle;
pub mod inspect;
pub mod kubeconn;
pub mod layout;
pub mod lease;
pub mod metrics;
pub mod operator;
pub mod owner;
pub mod retrieval;
pub mod sidecar;
pub mod storage;
pub mod stores;
pub mod telemetry;

/// Errors surfaced by the library. The binary wraps them in `anyhow` at the edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// No usable Kubernetes client configuration could be built.
    #[error("kubernetes configuration: {0}")]
    KubeConfig(String),
    /// Local file or socket I/O failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A value given on the command line, in the environment or in a file is not acceptable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The command will not do what was asked, for the reason given (e.g. `cleanup` of a
    /// cluster that still has live leaders).
    #[error("{0}")]
    Refused(String),
    /// A command could not go on. The message, in the command's own words, names the step
    /// that failed and its cause, and is printed as is (see `cmd::context`).
    #[error("{0}")]
    Command(String),
    /// Stored state could not be (de)serialized.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
