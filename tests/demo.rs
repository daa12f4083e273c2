//! `hakeeper demo`, the README's first command, end to end: it must pass, and say so.

use std::process::Command;

#[test]
fn the_demo_passes_every_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_hakeeper"))
        .arg("demo")
        .env_remove("HAKEEPER_STORAGE_DIR")
        .env_remove("HAKEEPER_KEEP_RUNNING")
        .env("NO_COLOR", "1")
        .output()
        .expect("running hakeeper demo");
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
