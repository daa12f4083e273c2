//! Rendering (pure): the report as a `kubectl describe`-like table or as JSON.

use std::fmt::Write as _;

use super::model::{
    ComponentReport, CounterReport, HandleReport, JobReport, JobState, Layout, LockReport,
    LockStatus, MAX_SHOWN, PayloadCheck, Report, VerificationSummary, clip,
};
use crate::handle::{HandleKind, StateHandle};
use crate::stores::plan::CONFIGMAP_DATA_LIMIT;

/// Width of the label column of the table's fields (`Transitions:`), so that blocks align.
const LABEL_WIDTH: usize = 12;

/// The report as pretty-printed JSON (camelCase keys), without a trailing newline.
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

/// The report as aligned text in `kubectl describe`'s manner: a header, then sections for the
/// leaders, the jobs, the ConfigMaps and (when verified) the dangling handles. No colours;
/// control characters from the ConfigMaps are escaped and long values clipped.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let layouts = if report.layouts.is_empty() {
        "none: no HA ConfigMaps found".to_string()
    } else {
        report
            .layouts
            .iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let payloads = match &report.verification {
        None => "not verified".to_string(),
        Some(s) => verification_line(s),
    };
    fields(
        &mut out,
        0,
        &[
            ("Cluster", shown(&report.cluster_id)),
            (
                "Namespace",
                report.namespace.as_deref().map(shown).unwrap_or("-".into()),
            ),
            ("Inspected", report.inspected_at.clone()),
            ("Layout", layouts),
            ("Payloads", payloads),
        ],
    );

    let per_component: Vec<&ComponentReport> = report
        .components
        .iter()
        .filter(|c| c.layout == Layout::PerComponent)
        .collect();
    if !per_component.is_empty() {
        let _ = writeln!(
            out,
            "\nLeaders, one ConfigMap each ({}):",
            Layout::PerComponent.short()
        );
        for c in per_component {
            let _ = writeln!(out, "  {}:", shown(&c.component));
            let mut rows = vec![("ConfigMap", shown(&c.configmap))];
            rows.extend(lock_rows(&c.lock));
            rows.extend(leader_rows(c));
            fields(&mut out, 4, &rows);
            problems(&mut out, 4, &c.problems);
        }
    }
    let cluster_configmap = format!("{}-cluster-config-map", report.cluster_id);
    for cm in report
        .configmaps
        .iter()
        .filter(|cm| cm.name == cluster_configmap)
    {
        let _ = writeln!(
            out,
            "\nLeaders in {} ({}):",
            shown(&cm.name),
            Layout::ClusterConfigMap.short()
        );
        let _ = writeln!(out, "  Shared lock:");
        if let Some(lock) = &cm.lock {
            fields(&mut out, 4, &lock_rows(lock));
        }
        let leaders: Vec<&ComponentReport> = report
            .components
            .iter()
            .filter(|c| c.layout == Layout::ClusterConfigMap && c.configmap == cm.name)
            .collect();
        if leaders.is_empty() {
            let _ = writeln!(out, "  No leader entries.");
        }
        for c in leaders {
            let _ = writeln!(out, "  {}:", shown(&c.component));
            fields(&mut out, 4, &leader_rows(c));
            problems(&mut out, 4, &c.problems);
        }
    }

    if !report.jobs.is_empty() {
        let _ = writeln!(out, "\nJobs:");
        let both = report.layouts.len() > 1;
        for job in &report.jobs {
            job_section(&mut out, job, both, report.verification.is_some());
        }
    }

    if report.configmaps.is_empty() {
        let _ = writeln!(
            out,
            "\nNo HA ConfigMaps found for cluster {}.",
            shown(&report.cluster_id)
        );
    } else {
        let _ = writeln!(
            out,
            "\nConfigMaps (data counted as keys plus values, against the {} byte limit):",
            CONFIGMAP_DATA_LIMIT
        );
        let rows = report
            .configmaps
            .iter()
            .map(|cm| {
                vec![
                    shown(&cm.name),
                    cm.keys.to_string(),
                    cm.data_bytes.to_string(),
                    format!("{:.1}%", cm.percent),
                    cm.role.clone(),
                ]
            })
            .collect();
        table(
            &mut out,
            2,
            &["NAME", "KEYS", "BYTES", "USED", "HOLDS"],
            rows,
        );
        for cm in &report.configmaps {
            let mut notes = Vec::new();
            if !cm.missing_labels.is_empty() {
                notes.push(format!("lacks the labels {}", cm.missing_labels.join(", ")));
            }
            if !cm.unknown_keys.is_empty() {
                let keys: Vec<String> = cm.unknown_keys.iter().map(|k| shown(k)).collect();
                notes.push(format!("unknown keys: {}", keys.join(", ")));
            }
            notes.extend(cm.problems.iter().map(|p| shown(p)));
            if !notes.is_empty() {
                let _ = writeln!(out, "  {}:", shown(&cm.name));
                for note in notes {
                    let _ = writeln!(out, "    - {note}");
                }
            }
        }
    }

    if report.verification.is_some() {
        if report.dangling.is_empty() {
            let _ = writeln!(out, "\nDangling handles: none");
        } else {
            let _ = writeln!(out, "\nDangling handles:");
            let rows = report
                .dangling
                .iter()
                .map(|d| {
                    vec![
                        shown(&d.configmap),
                        shown(&d.key),
                        shown(&d.path),
                        d.problem.clone(),
                    ]
                })
                .collect();
            table(&mut out, 2, &["CONFIGMAP", "KEY", "PATH", "PROBLEM"], rows);
        }
    }

    if report
        .components
        .iter()
        .any(|c| c.lock.expires_at.is_some())
    {
        out.push_str(
            "\nLeases are judged from each record's renewTime + leaseDuration against this\n\
             machine's clock, so clock skew shifts them. The elector does not judge so: it times\n\
             a lease from when it sees the record change.\n",
        );
    }
    out
}

fn verification_line(s: &VerificationSummary) -> String {
    let mut line = format!(
        "{} handle{} checked: {} ok, {} dangling",
        s.handles,
        if s.handles == 1 { "" } else { "s" },
        s.ok,
        s.dangling
    );
    if s.being_deleted > 0 {
        let _ = write!(line, ", {} gone while marked for deletion", s.being_deleted);
    }
    if s.unchecked > 0 {
        let _ = write!(line, ", {} could not be checked", s.unchecked);
    }
    line
}

fn lock_rows(lock: &LockReport) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    match lock.status {
        LockStatus::Absent => rows.push(("Lock", "no leader annotation".to_string())),
        LockStatus::Malformed => rows.push((
            "Lock",
            format!(
                "malformed: {}",
                shown(lock.error.as_deref().unwrap_or_default())
            ),
        )),
        LockStatus::Held | LockStatus::Expired | LockStatus::Released => {
            let holder = lock.holder_identity.as_deref().unwrap_or_default();
            rows.push((
                "Holder",
                if holder.is_empty() {
                    "none (released)".to_string()
                } else {
                    shown(holder)
                },
            ));
            let lease = match (lock.remaining_seconds, &lock.expires_at) {
                (Some(r), Some(at)) if r > 0.0 => format!("{} left (until {at})", human(r)),
                (Some(r), Some(at)) => format!("expired {} ago (at {at})", human(-r)),
                _ => "never ends (renewTime + leaseDuration is out of range)".to_string(),
            };
            rows.push(("Lease", lease));
            rows.push((
                "Renewed",
                format!(
                    "{} (lease {})",
                    lock.renew_time.as_deref().unwrap_or_default(),
                    human(lock.lease_duration_seconds.unwrap_or_default())
                ),
            ));
            rows.push(("Acquired", lock.acquire_time.clone().unwrap_or_default()));
            rows.push((
                "Transitions",
                lock.leader_transitions.unwrap_or_default().to_string(),
            ));
        }
    }
    rows
}

fn leader_rows(c: &ComponentReport) -> Vec<(&'static str, String)> {
    vec![
        (
            "Address",
            c.address.as_deref().map(shown).unwrap_or("-".into()),
        ),
        (
            "Session ID",
            c.session_id.as_deref().map(shown).unwrap_or("-".into()),
        ),
    ]
}

fn job_section(out: &mut String, job: &JobReport, both_layouts: bool, verified: bool) {
    if both_layouts {
        let _ = writeln!(out, "  {} ({}):", job.job_id, job.layout.short());
    } else {
        let _ = writeln!(out, "  {}:", job.job_id);
    }
    let status = match (job.status, job.layout) {
        (JobState::Running, _) => "RUNNING".to_string(),
        (JobState::Done, _) => "DONE".to_string(),
        (JobState::Malformed, _) => "malformed".to_string(),
        (JobState::None, Layout::PerComponent) => "none (not in the running-jobs registry)".into(),
        (JobState::None, Layout::ClusterConfigMap) => {
            "none (Flink 1.15+ keeps job results in the JobResultStore, not in ConfigMaps)".into()
        }
    };
    let graph = match &job.graph {
        None => "none".to_string(),
        Some(g) => handle_line(g, verified),
    };
    let counter = match &job.counter {
        CounterReport {
            value: Some(v),
            default: true,
            ..
        } => format!("{v} (default)"),
        CounterReport { value: Some(v), .. } => v.to_string(),
        CounterReport { malformed, .. } => {
            format!(
                "malformed: {}",
                shown(malformed.as_deref().unwrap_or_default())
            )
        }
    };
    let checkpoints = if !job.checkpoints_configmap_found {
        format!("none (no ConfigMap {})", shown(&job.checkpoints_configmap))
    } else if job.checkpoints.is_empty() {
        format!("none in {}", shown(&job.checkpoints_configmap))
    } else {
        format!(
            "{} in {}",
            job.checkpoints.len(),
            shown(&job.checkpoints_configmap)
        )
    };
    fields(
        out,
        4,
        &[
            ("Status", status),
            ("Job graph", graph),
            ("Counter", counter),
            ("Checkpoints", checkpoints),
        ],
    );
    if !job.checkpoints.is_empty() {
        let mut header = vec!["ID", "PATH", "SIZE", "DELETE MARKER"];
        if verified {
            header.push("PAYLOAD");
        }
        let rows = job
            .checkpoints
            .iter()
            .map(|c| {
                let id = c.id.map(|i| i.to_string()).unwrap_or("?".into());
                let mut row = match &c.entry.handle {
                    Some(h) => vec![
                        id,
                        shown(&h.path),
                        h.state_size.to_string(),
                        marker(h).to_string(),
                    ],
                    None => vec![
                        id,
                        "<malformed>".to_string(),
                        "-".to_string(),
                        "-".to_string(),
                    ],
                };
                if verified {
                    row.push(payload_text(
                        c.entry.payload.as_ref(),
                        c.entry.handle.as_ref(),
                    ));
                }
                row
            })
            .collect();
        table(out, 6, &header, rows);
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(g) = &job.graph
        && let Some(m) = &g.malformed
    {
        notes.push(format!("{}: malformed handle: {}", shown(&g.key), shown(m)));
    }
    for c in &job.checkpoints {
        if let Some(p) = &c.key_problem {
            notes.push(format!("{}: {p}", shown(&c.entry.key)));
        }
        if let Some(m) = &c.entry.malformed {
            notes.push(format!(
                "{}: malformed handle: {}",
                shown(&c.entry.key),
                shown(m)
            ));
        }
    }
    notes.extend(job.problems.iter().cloned());
    problems(out, 4, &notes);
}

fn marker(h: &StateHandle) -> &'static str {
    match (h.kind, h.marked_for_deletion) {
        (HandleKind::RetrievableStreamStateHandle, _) => "-",
        (HandleKind::StateHandleWithDeleteMarker, Some(true)) => "marked",
        (HandleKind::StateHandleWithDeleteMarker, _) => "unmarked",
    }
}

fn handle_line(h: &HandleReport, verified: bool) -> String {
    let Some(handle) = &h.handle else {
        return format!("{}: malformed", shown(&h.key));
    };
    let mut line = format!("{} ({} B", shown(&handle.path), handle.state_size);
    if handle.kind == HandleKind::StateHandleWithDeleteMarker {
        let _ = write!(line, ", delete marker {}", marker(handle));
    }
    line.push(')');
    if verified {
        let _ = write!(
            line,
            ", payload {}",
            payload_text(h.payload.as_ref(), h.handle.as_ref())
        );
    }
    line
}

fn payload_text(check: Option<&PayloadCheck>, handle: Option<&StateHandle>) -> String {
    let deleting = handle.is_some_and(|h| h.marked_for_deletion == Some(true));
    let text = match check {
        None => return "-".to_string(),
        Some(PayloadCheck::Ok { .. }) => return "ok".to_string(),
        Some(PayloadCheck::Missing) => "missing".to_string(),
        Some(PayloadCheck::WrongSize { size, recorded }) => format!("{size} B, not {recorded}"),
        Some(PayloadCheck::Unchecked { reason }) => {
            return format!("unchecked: {}", shown(reason));
        }
    };
    if deleting {
        format!("{text} (being deleted)")
    } else {
        format!("{text} (DANGLING)")
    }
}

/// `label:` then the value, labels padded to the widest of the block.
fn fields(out: &mut String, indent: usize, rows: &[(&str, String)]) {
    let width = rows
        .iter()
        .map(|(l, _)| l.len() + 1)
        .max()
        .unwrap_or(0)
        .max(LABEL_WIDTH);
    for (label, value) in rows {
        let label = format!("{label}:");
        let _ = writeln!(out, "{:indent$}{label:<width$}  {value}", "");
    }
}

fn problems(out: &mut String, indent: usize, list: &[String]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{:indent$}Problems:", "");
    for p in list {
        let _ = writeln!(out, "{:indent$}  - {}", "", shown(p));
    }
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
fn table(out: &mut String, indent: usize, header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut text = " ".repeat(indent);
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    line(out, &header);
    for row in &rows {
        line(out, row);
    }
}

/// A duration in seconds for people: `4.2 s`, `42 s`, `3 min 12 s`, `5 h 3 min`, `12 d 4 h`.
fn human(secs: f64) -> String {
    let s = secs.abs();
    if s < 10.0 {
        let text = format!("{s:.1}");
        let text = text.strip_suffix(".0").unwrap_or(&text);
        return format!("{text} s");
    }
    let whole = s as u64;
    match whole {
        0..120 => format!("{whole} s"),
        120..7_200 => format!("{} min {} s", whole / 60, whole % 60),
        7_200..172_800 => format!("{} h {} min", whole / 3_600, whole % 3_600 / 60),
        _ => format!("{} d {} h", whole / 86_400, whole % 86_400 / 3_600),
    }
}

/// Untrusted text for the terminal: control characters escaped, clipped.
fn shown(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| {
            let escape = c.is_control();
            let mut buf = Vec::new();
            if escape {
                buf.extend(c.escape_default());
            } else {
                buf.push(c);
            }
            buf
        })
        .collect();
    clip(&escaped, MAX_SHOWN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::build;
    use crate::inspect::fixtures::*;
    use serde_json::{Value, json};

    #[test]
    fn untrusted_text_is_escaped_in_the_table() {
        let cm = configmap(json!({
            "metadata": {"name": "my-flink-restserver-leader", "annotations": flink_lock(r"evil\u001b[2Jholder", 0)},
            "data": {"address": format!("http://x\n{}", "y".repeat(500))},
        }));
        let table = render_table(&build(&cluster(), &[cm], now()));
        assert!(!table.contains('\u{1b}'), "{table}");
        assert!(table.contains(r"evil\u{1b}[2Jholder"), "{table}");
        assert!(table.contains(r"http://x\ny"), "{table}");
        assert!(table.lines().all(|l| l.chars().count() < 260), "{table}");
    }

    #[test]
    fn no_configmaps_is_a_report_too() {
        let report = build(&cluster(), &[], now());
        assert!(report.layouts.is_empty() && report.components.is_empty());
        assert_eq!(
            render_table(&report),
            "Cluster:      my-flink\n\
             Namespace:    -\n\
             Inspected:    2022-05-19T15:10:07.104Z\n\
             Layout:       none: no HA ConfigMaps found\n\
             Payloads:     not verified\n\
             \n\
             No HA ConfigMaps found for cluster my-flink.\n"
        );
    }

    #[test]
    fn the_table_of_a_flink_112_cluster() {
        let report = build(&cluster(), &flink_112(), now());
        let expected = "\
Cluster:      my-flink
Namespace:    flink
Inspected:    2022-05-19T15:10:07.104Z
Layout:       one ConfigMap per component (Flink 1.12-1.14, hakeeper)
Payloads:     not verified

Leaders, one ConfigMap each (Flink 1.12-1.14 layout):
  dispatcher:
    ConfigMap:    my-flink-dispatcher-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      akka.tcp://flink@10.244.0.12:6123/user/rpc/dispatcher_1
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10
  resourcemanager:
    ConfigMap:    my-flink-resourcemanager-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      akka.tcp://flink@10.244.0.12:6123/user/rpc/resourcemanager_0
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10
  restserver:
    ConfigMap:    my-flink-restserver-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      http://10.244.0.12:8081
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10
  jobmanager/307e2d6a5be8307e2d6a5be8307e2d6a:
    ConfigMap:    my-flink-307e2d6a5be8307e2d6a5be8307e2d6a-jobmanager-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      akka.tcp://flink@10.244.0.12:6123/user/rpc/jobmanager_2
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10

Jobs:
  307e2d6a5be8307e2d6a5be8307e2d6a:
    Status:       RUNNING
    Job graph:    s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8 (225971 B)
    Counter:      43
    Checkpoints:  2 in my-flink-307e2d6a5be8307e2d6a5be8307e2d6a-jobmanager-leader
      ID  PATH                                                       SIZE   DELETE MARKER
      41  s3://rta/flink/ha/default/completedCheckpoint9d8c7b6a5f4e  48100  -
      42  s3://rta/flink/ha/default/completedCheckpoint5c3e1d2a9f0b  48213  -

ConfigMaps (data counted as keys plus values, against the 1048576 byte limit):
  NAME                                                         KEYS  BYTES  USED  HOLDS
  my-flink-307e2d6a5be8307e2d6a5be8307e2d6a-jobmanager-leader  5     1484   0.1%  jobmanager leader, checkpoints of job 307e2d6a5be8307e2d6a5be8307e2d6a
  my-flink-dispatcher-leader                                   4     855    0.1%  dispatcher leader, job graphs, running jobs
  my-flink-resourcemanager-leader                              2     112    0.0%  resourcemanager leader
  my-flink-restserver-leader                                   2     75     0.0%  restserver leader

Leases are judged from each record's renewTime + leaseDuration against this
machine's clock, so clock skew shifts them. The elector does not judge so: it times
a lease from when it sees the record change.
";
        assert_eq!(
            render_table(&report),
            expected,
            "\n{}",
            render_table(&report)
        );
    }

    #[test]
    fn json_is_camel_case() {
        let report = build(&cluster(), &flink_115(), now());
        let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(json["clusterId"], CLUSTER);
        assert_eq!(json["layouts"], json!(["clusterConfigMap"]));
        assert_eq!(json["components"][0]["lock"]["holderIdentity"], HOLDER);
        assert_eq!(json["components"][0]["lock"]["remainingSeconds"], 10.0);
        assert_eq!(json["components"][0]["lock"]["status"], "held");
        assert_eq!(json["components"][0]["sessionId"], SESSION);
        assert_eq!(json["jobs"][0]["status"], "none");
        assert_eq!(
            json["jobs"][0]["graph"]["handle"]["stateSize"],
            FLINK_112_SIZE
        );
        let first = &json["jobs"][0]["checkpoints"][0];
        assert_eq!(first["id"], 41);
        assert_eq!(first["key"], checkpoint(41));
        assert_eq!(first["handle"]["type"], "StateHandleWithDeleteMarker");
        assert_eq!(first["handle"]["markedForDeletion"], true);
        assert_eq!(
            json["jobs"][0]["counter"],
            json!({"value": 43, "default": false, "malformed": null})
        );
        assert_eq!(json["configmaps"][0]["limitBytes"], 1 << 20);
        assert_eq!(json["verification"], Value::Null);
        assert_eq!(json["dangling"], json!([]));
    }
}
