//! Verifying (I/O): every handle's payload in the object store.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;

use super::model::{DanglingHandle, HandleReport, PayloadCheck, Report, VerificationSummary};
use crate::storage::{Location, ObjectStore};

/// How many payloads [`verify`] asks the store about at once.
const VERIFY_CONCURRENCY: usize = 8;

fn handles_mut(report: &mut Report) -> impl Iterator<Item = &mut HandleReport> {
    report.jobs.iter_mut().flat_map(|job| {
        job.graph
            .iter_mut()
            .chain(job.checkpoints.iter_mut().map(|c| &mut c.entry))
    })
}

/// Check every decoded handle's payload in `storage`: that it exists and has the size the
/// handle records (`ObjectStore::size`, a few at a time). Fills each handle's `payload`, the
/// summary, and `report.dangling` (missing or wrong size, unless marked for deletion). A path
/// the store cannot serve or a store failure leaves that handle `Unchecked`; nothing fails.
pub async fn verify(report: &mut Report, storage: &dyn ObjectStore) {
    let paths: BTreeSet<String> = handles_mut(report)
        .filter_map(|h| h.handle.as_ref().map(|h| h.path.clone()))
        .collect();
    let sizes: HashMap<String, Result<Option<u64>, String>> = futures::stream::iter(paths)
        .map(|path| async move {
            let size = match Location::parse(&path) {
                Ok(location) => storage.size(&location).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (path, size)
        })
        .buffered(VERIFY_CONCURRENCY)
        .collect()
        .await;

    let mut summary = VerificationSummary {
        handles: 0,
        ok: 0,
        dangling: 0,
        being_deleted: 0,
        unchecked: 0,
    };
    let mut dangling = Vec::new();
    for entry in handles_mut(report) {
        let Some(handle) = &entry.handle else {
            continue;
        };
        let check = match &sizes[&handle.path] {
            Err(reason) => PayloadCheck::Unchecked {
                reason: reason.clone(),
            },
            Ok(None) => PayloadCheck::Missing,
            Ok(Some(size)) if i64::try_from(*size).ok() == Some(handle.state_size) => {
                PayloadCheck::Ok { size: *size }
            }
            Ok(Some(size)) => PayloadCheck::WrongSize {
                size: *size,
                recorded: handle.state_size,
            },
        };
        summary.handles += 1;
        let problem = match &check {
            PayloadCheck::Ok { .. } => {
                summary.ok += 1;
                None
            }
            PayloadCheck::Unchecked { .. } => {
                summary.unchecked += 1;
                None
            }
            PayloadCheck::Missing => Some("is missing".to_string()),
            PayloadCheck::WrongSize { size, recorded } => Some(format!(
                "has {size} bytes where the handle records {recorded}"
            )),
        };
        if let Some(problem) = problem {
            if handle.marked_for_deletion == Some(true) {
                summary.being_deleted += 1;
            } else {
                summary.dangling += 1;
                dangling.push(DanglingHandle {
                    configmap: entry.configmap.clone(),
                    key: entry.key.clone(),
                    path: handle.path.clone(),
                    problem,
                });
            }
        }
        entry.payload = Some(check);
    }
    report.verification = Some(summary);
    report.dangling = dangling;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::build;
    use crate::inspect::fixtures::*;
    use crate::inspect::{render_json, render_table};
    use crate::storage::{ObjectMeta, StorageError};
    use bytes::Bytes;
    use futures::future::BoxFuture;
    use serde_json::{Value, json};

    /// Sizes by path; `fail` paths make the store fail.
    struct Sizes {
        sizes: HashMap<String, u64>,
        fail: Vec<String>,
    }

    impl ObjectStore for Sizes {
        fn put_new<'a>(
            &'a self,
            _: &'a Location,
            _: Bytes,
        ) -> BoxFuture<'a, Result<(), StorageError>> {
            unimplemented!("not used by verify")
        }
        fn get<'a>(
            &'a self,
            _: &'a Location,
            _: u64,
        ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
            unimplemented!("not used by verify")
        }
        fn size<'a>(
            &'a self,
            location: &'a Location,
        ) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
            Box::pin(async move {
                let key = location.to_string();
                if self.fail.contains(&key) {
                    return Err(StorageError::Unavailable {
                        location: key,
                        message: "down".into(),
                    });
                }
                Ok(self.sizes.get(&key).copied())
            })
        }
        fn delete<'a>(&'a self, _: &'a Location) -> BoxFuture<'a, Result<(), StorageError>> {
            unimplemented!("not used by verify")
        }
        fn list<'a>(
            &'a self,
            _: &'a Location,
        ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>> {
            unimplemented!("not used by verify")
        }
        fn describe(&self) -> String {
            "sizes".into()
        }
    }

    #[tokio::test]
    async fn verify_lists_dangling_handles_but_not_those_being_deleted() {
        let cm = configmap(json!({
            "metadata": {"name": format!("my-flink-{JOB}-config-map")},
            "data": {
                checkpoint(1): marked_value("s3://b/ha/gone-while-marked", 5, true),
                checkpoint(2): marked_value("s3://b/ha/missing", 5, false),
                checkpoint(3): marked_value("s3://b/ha/truncated", 5, false),
                checkpoint(4): marked_value("s3://b/ha/down", 5, false),
                checkpoint(5): marked_value("hdfs://nn/ha/elsewhere", 5, false),
                checkpoint(6): "garbage",
                checkpoint(7): marked_value("s3://b/ha/whole", 5, false),
                "counter": "8",
            },
        }));
        let store = Sizes {
            sizes: HashMap::from([
                ("s3://b/ha/truncated".to_string(), 4),
                ("s3://b/ha/whole".to_string(), 5),
            ]),
            fail: vec!["s3://b/ha/down".to_string()],
        };
        let mut report = build(&cluster(), &[cm], now());
        verify(&mut report, &store).await;
        assert_eq!(
            report.verification,
            Some(VerificationSummary {
                handles: 6,
                ok: 1,
                dangling: 2,
                being_deleted: 1,
                unchecked: 2
            })
        );
        let dangling: Vec<_> = report
            .dangling
            .iter()
            .map(|d| (d.key.as_str(), d.path.as_str(), d.problem.as_str()))
            .collect();
        assert_eq!(
            dangling,
            [
                (checkpoint(2).as_str(), "s3://b/ha/missing", "is missing"),
                (
                    checkpoint(3).as_str(),
                    "s3://b/ha/truncated",
                    "has 4 bytes where the handle records 5"
                ),
            ]
        );
        let checks: Vec<_> = report.jobs[0]
            .checkpoints
            .iter()
            .map(|c| c.entry.payload.clone())
            .collect();
        assert_eq!(checks[0], Some(PayloadCheck::Missing));
        assert_eq!(
            checks[2],
            Some(PayloadCheck::WrongSize {
                size: 4,
                recorded: 5
            })
        );
        assert!(
            matches!(&checks[3], Some(PayloadCheck::Unchecked { reason }) if reason.contains("down"))
        );
        assert!(
            matches!(&checks[4], Some(PayloadCheck::Unchecked { reason }) if reason.contains("hdfs"))
        );
        assert_eq!(checks[5], None);
        assert_eq!(checks[6], Some(PayloadCheck::Ok { size: 5 }));

        let table = render_table(&report);
        for expected in [
            "Payloads:     6 handles checked: 1 ok, 2 dangling, 1 gone while marked for deletion, 2 could not be checked\n",
            "  1   s3://b/ha/gone-while-marked  5     marked         missing (being deleted)\n",
            "  2   s3://b/ha/missing            5     unmarked       missing (DANGLING)\n",
            "\nDangling handles:\n  CONFIGMAP",
        ] {
            assert!(table.contains(expected), "missing {expected:?} in\n{table}");
        }
        let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(
            json["jobs"][0]["checkpoints"][2]["payload"],
            json!({"result": "wrongSize", "size": 4, "recorded": 5})
        );
        assert_eq!(json["dangling"][0]["path"], "s3://b/ha/missing");
    }
}
