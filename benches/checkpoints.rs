//! `cargo bench --bench checkpoints`: `hakeeper bench checkpoints` over `file://` and over
//! the in-process S3 server (s3s-fs on 127.0.0.1, SigV4), one after the other. Environment:
//! `HAKEEPER_COUNT` (default 300) and `HAKEEPER_PAYLOAD_BYTES` (default 65536).

#[path = "../tests/common/s3.rs"]
mod s3;

use hakeeper::bench::checkpoints::{CheckpointParams, checkpoints};
use hakeeper::storage::{Location, S3Options};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    if let Ok(filter) = std::env::var("HAKEEPER_LOG") {
        hakeeper::telemetry::init(&filter, hakeeper::telemetry::LogFormat::Plain).expect("logging");
    }
    let count = env_usize("HAKEEPER_COUNT", 300);
    let payload_bytes = env_usize("HAKEEPER_PAYLOAD_BYTES", 64 << 10);
    let dir = tempfile::tempdir().expect("temporary directory");
    let file_dir = Location::file(dir.path()).expect("file location");
    let server = s3::S3Server::start().await;
    let s3_dir = server.storage_dir("ha");
    let runs = [(file_dir, S3Options::default()), (s3_dir, server.options())];
    for (storage_dir, options) in runs {
        let storage = hakeeper::storage::open(&storage_dir, &options)
            .await
            .expect("storage");
        let params = CheckpointParams {
            storage,
            storage_dir,
            count,
            payload_bytes,
        };
        let report = checkpoints(&params).await.expect("benchmark run");
        println!("{}", report.render());
    }
    server.shutdown().await;
}
