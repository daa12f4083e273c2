//! `hakeeper demo`, the README's first command, end to end: it must pass, and say so.

mod common;

use std::process::Command;

#[test]
fn the_demo_passes_every_check() {
    if std::env::var_os(common::REAL_CLUSTER_ENV).is_some() {
        // It ran in the embedded pass; two demos at once would only compete for the CPU.
        common::note_skip("the embedded API server (the demo's own default)");
        return;
    }
    let out = demo().output().expect("running hakeeper demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for expected in [
        "<- SIGKILL of its JobManager process (the sidecar lives on)",
        "<- SIGSTOP of its JobManager process",
        "the resumed jm-",
        "learned it had been released",
        "wrote no checkpoint after it was deposed",
        "<- pod crash (SIGKILL): its sidecar and JobManager",
        "<- graceful pod stop (SIGTERM): its sidecar and JobManager",
        "takeover after JobManager crash (SIGKILL, sidecar lives):",
        "takeover after JobManager hang (SIGSTOP):",
        "recovered checkpoint",
        "recovered the job graph",
        "acknowledged checkpoints lost: 0",
        "hakeeper demo: every check held",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// `hakeeper demo --kubeconfig`: the same demo against a real cluster, in a namespace of its
/// own that it deletes afterwards.
#[test]
fn the_demo_passes_on_a_real_cluster_and_cleans_up() {
    let Some(kubeconfig) = std::env::var_os(common::REAL_CLUSTER_ENV) else {
        common::note_skip("a real cluster (the demo's own run is the embedded one)");
        return;
    };
    let out = demo()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .expect("running hakeeper demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("hakeeper demo: every check held"),
        "{stdout}"
    );
    let namespace = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("deleted the demo namespace "))
        .unwrap_or_else(|| panic!("no namespace deleted:\n{stdout}"))
        .to_string();
    common::namespace_is_going(std::path::Path::new(&kubeconfig), &namespace).unwrap();
}

/// `hakeeper demo`, with none of the demo's settings inherited from the environment.
fn demo() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hakeeper"));
    cmd.arg("demo");
    for var in [
        "HAKEEPER_STORAGE_DIR",
        "HAKEEPER_KEEP_RUNNING",
        "HAKEEPER_KUBECONFIG",
        "HAKEEPER_CONTEXT",
        "HAKEEPER_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}
