//! `hakeeper decode`: a store entry's value in, JSON out; garbage gets a clear error and
//! exit status 1, never a panic.

use std::io::Write;
use std::process::{Command, Stdio};

/// Written by a Flink JobManager: `s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8`,
/// stateSize 225971.
const FLINK_VALUE: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAADcrNzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHQAN3MzOi8vcnRhL2ZsaW5rL2hhL2RlZmF1bHQvc3VibWl0dGVkSm9iR3JhcGgzMDdlMmQ2YTViZTh4";

fn decode(arg: Option<&str>, stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hakeeper"));
    cmd.arg("decode");
    if let Some(a) = arg {
        cmd.arg(a);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning hakeeper decode");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn decodes_flinks_value_from_an_argument_and_from_stdin() {
    for (arg, stdin) in [
        (Some(FLINK_VALUE), String::new()),
        (None, format!("{FLINK_VALUE}\n")),
        (Some("-"), FLINK_VALUE.to_string()),
    ] {
        let (code, stdout, stderr) = decode(arg, &stdin);
        assert_eq!(code, 0, "{stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "type": "RetrievableStreamStateHandle",
                "path": "s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8",
                "stateSize": 225971,
                "markedForDeletion": null,
            })
        );
    }
}

#[test]
fn garbage_is_a_clear_error() {
    let truncated = &FLINK_VALUE[..200];
    for (input, expected) in [
        ("not base64 at all!", "base64"),
        (truncated, "byte"),
        ("", ""),
    ] {
        let (code, stdout, stderr) = decode(Some(input), "");
        assert_eq!(code, 1, "{input:?}: {stdout} {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.starts_with("hakeeper: "), "{stderr}");
        assert!(stderr.contains(expected), "{input:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
