use super::*;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

const FLAT: &str = include_str!("../../tests/fixtures/flink/flink-conf.yaml");
const NESTED: &str = include_str!("../../tests/fixtures/flink/config.yaml");
const SECRET: &str = "8c6e2f0d-orders-s3cr3t";

fn read(text: &str, format: Format) -> FlinkConf {
    FlinkConf::parse(text, format)
        .unwrap_or_else(|e| panic!("{format:?}: {e}\n--- input ---\n{text}"))
}

fn yaml(text: &str) -> FlinkConf {
    read(text, Format::Yaml)
}

fn legacy(text: &str) -> FlinkConf {
    read(text, Format::Legacy)
}

/// Text both formats read alike (`key: value` lines, plain values without `#`).
fn both(text: &str) -> FlinkConf {
    let conf = yaml(text);
    assert_eq!(conf, legacy(text), "the formats differ on {text:?}");
    conf
}

fn error_in(text: &str, format: Format) -> String {
    match FlinkConf::parse(text, format) {
        Ok(conf) => panic!("{format:?}: expected an error, got {conf:?}\n--- input ---\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn yaml_error(text: &str) -> String {
    error_in(text, Format::Yaml)
}

/// The error both formats give.
fn error_both(text: &str) -> String {
    let message = yaml_error(text);
    assert_eq!(message, error_in(text, Format::Legacy), "{text:?}");
    message
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// What both fixtures say.
fn orders() -> FlinkConf {
    FlinkConf {
        cluster_id: some("orders-pipeline"),
        ha_cluster_id: None,
        namespace: some("streaming"),
        storage_dir: some("s3://flink-ha/orders"),
        lease_duration: secs(20),
        renew_deadline: secs(15),
        retry_period: secs(3),
        checkpoints_retained: Some(5),
        s3_endpoint: some("http://minio.storage.svc:9000"),
        s3_path_style: Some(true),
        s3_access_key: some("orders-flink"),
        s3_secret_key: some(SECRET),
    }
}

/// Everything this module logs, at every level, while `f` runs.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

// -------------------------------------------------------------------------------------------
// The two formats

#[test]
fn flat_flink_1_14_file() {
    assert_eq!(legacy(FLAT), orders());
}

#[test]
fn nested_flink_1_20_file() {
    assert_eq!(yaml(NESTED), orders());
}

#[test]
fn load_picks_the_format_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        "kubernetes.cluster-id: \"orders\"\n",
        "kubernetes.namespace: ~\n",
        "s3.endpoint: http://minio/#fragment\n",
        "s3.access-key: 'ak'\n",
    );
    let read = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        FlinkConf::load(&path).unwrap_or_else(|e| panic!("{e}"))
    };
    // Flink 1.19+ reads `config.yaml` as YAML: quotes go, `~` is null, `#` after `/` is text.
    let as_yaml = FlinkConf {
        cluster_id: some("orders"),
        s3_endpoint: some("http://minio/#fragment"),
        s3_access_key: some("ak"),
        ..FlinkConf::default()
    };
    assert_eq!(read("config.yaml"), as_yaml);
    // Any other name is read as Flink reads `flink-conf.yaml`: values verbatim up to a `#`.
    let as_legacy = FlinkConf {
        cluster_id: some("\"orders\""),
        namespace: some("~"),
        s3_endpoint: some("http://minio/"),
        s3_access_key: some("'ak'"),
        ..FlinkConf::default()
    };
    for name in ["flink-conf.yaml", "config.yml", "Config.yaml", "flink.conf"] {
        assert_eq!(read(name), as_legacy, "{name}");
    }
    assert_eq!(
        Format::of(Path::new("/etc/flink/config.yaml")),
        Format::Yaml
    );
    assert_eq!(Format::of(Path::new("config.yaml/x")), Format::Legacy);
    assert_eq!(Format::of(Path::new("")), Format::Legacy);
}

#[test]
fn load_reads_both_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flink");
    for name in ["flink-conf.yaml", "config.yaml"] {
        let conf = FlinkConf::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(conf, orders(), "{name}");
    }
}

#[test]
fn empty_and_comment_only_documents() {
    for text in [
        "",
        "\n\n",
        "# nothing here\n   # nor here\n",
        "---\n",
        "\u{feff}",
    ] {
        assert_eq!(both(text), FlinkConf::default(), "{text:?}");
    }
}

#[test]
fn nested_keys_may_contain_dots_at_any_level() {
    let conf = yaml(
        "high-availability:\n  kubernetes.leader-election:\n    lease-duration: 9 s\n  kubernetes:\n    leader-election.renew-deadline: 8 s\nhigh-availability.kubernetes.leader-election.retry-period: 7 s\n",
    );
    assert_eq!(conf.lease_duration, secs(9));
    assert_eq!(conf.renew_deadline, secs(8));
    assert_eq!(conf.retry_period, secs(7));
}

#[test]
fn flink_legacy_reader_cases() {
    // Flink's own GlobalConfigurationTest#testConfigurationWithLegacyYAML, with keys hakeeper reads.
    let conf = legacy(concat!(
        "###########################\n",
        "# Some : comments : to skip\n",
        "###########################\n",
        "kubernetes.cluster-id: first\n",
        "kubernetes.namespace       : spaced\n",
        "s3.endpoint:http://no-space\n",
        " some nonsense without colon and whitespace separator\n",
        " :  \n",
        "   \n",
        "s3.access-key: key4# some comments\n",
        "   s3.secret-key    :    secret5    \n",
        "high-availability.storageDir: s3://a: b\n",
        "high-availability.cluster-id: \n",
        ": value8\n",
        "kubernetes.cluster-id: second\n",
    ));
    assert_eq!(conf.cluster_id, some("second"), "the later key wins");
    assert_eq!(conf.namespace, some("spaced"));
    assert_eq!(conf.s3_endpoint, None, "no space after the colon");
    assert_eq!(
        conf.s3_access_key,
        some("key4"),
        "everything from `#` is a comment"
    );
    assert_eq!(conf.s3_secret_key, some("secret5"));
    assert_eq!(
        conf.storage_dir,
        some("s3://a: b"),
        "split at the first `: `"
    );
    assert_eq!(
        conf.ha_cluster_id, None,
        "an empty value leaves the key unset"
    );
}

#[test]
fn legacy_values_are_taken_verbatim() {
    // Flink 1.18 and older read these values as written; as YAML, the text is invalid.
    let text = "kubernetes.namespace: team: a\ns3.secret-key: *not-an-alias\ns3.access-key: &not-an-anchor\ns3.endpoint: 'unclosed\nkubernetes.cluster-id: @at\nhigh-availability.storageDir: \"closed\" then text\n";
    let logs = logs_of(|| {
        let conf = legacy(text);
        assert_eq!(conf.namespace, some("team: a"));
        assert_eq!(conf.s3_secret_key, some("*not-an-alias"));
        assert_eq!(conf.s3_access_key, some("&not-an-anchor"));
        assert_eq!(conf.s3_endpoint, some("'unclosed"));
        assert_eq!(conf.cluster_id, some("@at"));
        assert_eq!(conf.storage_dir, some("\"closed\" then text"));
    });
    assert!(!logs.contains("WARN"), "{logs}");
    assert!(
        !logs.contains("not-an-alias"),
        "a secret was logged: {logs}"
    );
    let message = yaml_error(text);
    assert!(message.starts_with("line 1: "), "{message}");
}

#[test]
fn legacy_lines_that_do_not_fit_are_skipped_with_a_warning() {
    let text = "just words\n- a list item\n--- not a marker\nkubernetes.namespace: ns\n";
    let logs = logs_of(|| {
        assert_eq!(legacy(text).namespace, some("ns"));
    });
    assert!(logs.contains("WARN") && logs.contains("line=1"), "{logs}");
    assert!(!logs.contains("just words"), "{logs}");
    assert!(FlinkConf::parse(text, Format::Yaml).is_err());
    let message = yaml_error("---\njust words\n");
    assert!(
        message.starts_with("line 2: ") && message.contains("not a mapping"),
        "{message}"
    );
}

#[test]
fn yaml_only_syntax_in_a_legacy_file_is_read_as_flink_1_18_reads_it() {
    // A `flink-conf.yaml` written as nested YAML: Flink up to 1.18 (and later ones reading
    // `flink-conf.yaml`) take each line on its own. A bare `key:` is skipped (no `": "`), the
    // indented lines below it set keys without their parents, and YAML's quotes, anchors, block
    // and flow markers are part of the values.
    let text = concat!(
        "kubernetes:\n",
        "  cluster-id: nested\n",
        "  namespace: ns\n",
        "high-availability:\n",
        "  storageDir: s3://nested\n",
        "high-availability.cluster-id: &id \"ha\"\n",
        "s3.endpoint: |\n",
        "  http://block\n",
        "s3: {access-key: flow}\n",
        "s3.secret-key: !!str s3cr3t # tagged\n",
        "state.checkpoints.num-retained: 7 # retained\n",
    );
    let logs = logs_of(|| {
        assert_eq!(
            legacy(text),
            FlinkConf {
                cluster_id: some("&id \"ha\""),
                ha_cluster_id: some("&id \"ha\""),
                s3_endpoint: some("|"),
                s3_secret_key: some("!!str s3cr3t"),
                checkpoints_retained: Some(7),
                ..FlinkConf::default()
            }
        );
    });
    assert!(logs.contains("line=1") && logs.contains("line=4"), "{logs}");
    assert!(
        logs.contains("config.yaml"),
        "the warning names the YAML file: {logs}"
    );
    // The same text as `config.yaml`.
    let conf = yaml(text);
    assert_eq!(conf.cluster_id, some("nested"));
    assert_eq!(conf.namespace, some("ns"));
    assert_eq!(conf.storage_dir, some("s3://nested"));
    assert_eq!(conf.ha_cluster_id, some("ha"));
    assert_eq!(conf.s3_endpoint, some("http://block\n"));
    assert_eq!(conf.s3_access_key, some("flow"));
    assert_eq!(conf.s3_secret_key, some("s3cr3t"));
}

// -------------------------------------------------------------------------------------------
// Durations

#[test]
fn flink_duration_forms() {
    let ms = Duration::from_millis;
    let cases = [
        ("15 s", secs(15)),
        ("15s", secs(15)),
        ("15000 ms", secs(15)),
        ("15000", secs(15)),
        ("500 ms", Some(ms(500))),
        ("500", Some(ms(500))),
        ("0", Some(Duration::ZERO)),
        ("1 min", secs(60)),
        ("2 min", secs(120)),
        ("1 minute", secs(60)),
        ("5 minutes", secs(300)),
        ("1d", secs(86_400)),
        ("1 day", secs(86_400)),
        ("2 days", secs(172_800)),
        ("1 h", secs(3_600)),
        ("1 hour", secs(3_600)),
        ("3 hours", secs(10_800)),
        ("2 sec", secs(2)),
        ("2 secs", secs(2)),
        ("1 second", secs(1)),
        ("10 seconds", secs(10)),
        ("250 milli", Some(ms(250))),
        ("250 millis", Some(ms(250))),
        ("1 millisecond", Some(ms(1))),
        ("3 milliseconds", Some(ms(3))),
        ("7 µs", Some(Duration::from_micros(7))),
        ("7µs", Some(Duration::from_micros(7))),
        ("7 micro", Some(Duration::from_micros(7))),
        ("7 micros", Some(Duration::from_micros(7))),
        ("7 microsecond", Some(Duration::from_micros(7))),
        ("7 microseconds", Some(Duration::from_micros(7))),
        ("9 ns", Some(Duration::from_nanos(9))),
        ("9 nano", Some(Duration::from_nanos(9))),
        ("9 nanos", Some(Duration::from_nanos(9))),
        ("9 nanosecond", Some(Duration::from_nanos(9))),
        ("9 nanoseconds", Some(Duration::from_nanos(9))),
        ("15 S", secs(15)),
        ("1 MIN", secs(60)),
        ("  15 \t s  ", secs(15)),
        ("0015 s", secs(15)),
        (
            "9223372036854775807 ns",
            Some(Duration::from_nanos(9_223_372_036_854_775_807)),
        ),
        ("106751991167300 d", secs(106_751_991_167_300 * 86_400)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_flink_duration(text), expected, "{text:?}");
    }
}

#[test]
fn flink_duration_rejects() {
    for text in [
        "",
        "   ",
        "s",
        "ms",
        "1.5 s",
        "-1 s",
        "+1 s",
        "1e3",
        "1 s s",
        "15 fortnights",
        // Flink has no `m` or `mins` (hakeeper's command line has), and no ASCII `us`.
        "2m",
        "1 m",
        "2 mins",
        "15 us",
        "15 μs", // Greek mu, not the micro sign
        "9223372036854775808",
        "9223372036854775807 d",
        "106751991167301 d",
    ] {
        assert_eq!(parse_flink_duration(text), None, "{text:?}");
    }
}

#[test]
fn bare_number_is_milliseconds_in_the_file() {
    let conf = both("high-availability.kubernetes.leader-election.lease-duration: 15\n");
    assert_eq!(conf.lease_duration, Some(Duration::from_millis(15)));
    let conf = yaml("high-availability:\n  kubernetes.leader-election.retry-period: \"2000\"\n");
    assert_eq!(conf.retry_period, secs(2));
}

// -------------------------------------------------------------------------------------------
// Bad values

#[test]
fn bad_duration_names_key_line_value_and_expectation() {
    let message = error_both(
        "kubernetes.cluster-id: a\nhigh-availability.kubernetes.leader-election.renew-deadline: 15 fortnights\n",
    );
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(
        message.contains("high-availability.kubernetes.leader-election.renew-deadline"),
        "{message}"
    );
    assert!(message.contains("\"15 fortnights\""), "{message}");
    assert!(message.contains("a duration"), "{message}");
}

#[test]
fn bad_values_in_nested_documents_report_their_own_line() {
    let message = yaml_error(
        "high-availability:\n  type: kubernetes\n  kubernetes:\n    leader-election:\n      lease-duration: 2m\n",
    );
    assert!(message.starts_with("line 5: "), "{message}");
    assert!(
        message.contains("high-availability.kubernetes.leader-election.lease-duration"),
        "{message}"
    );
    assert!(message.contains("\"2m\""), "{message}");
}

#[test]
fn bad_bool() {
    let message = error_both("# S3\ns3.path.style.access: yes\n");
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(message.contains("s3.path.style.access"), "{message}");
    assert!(message.contains("\"yes\""), "{message}");
    assert!(message.contains("`true` or `false`"), "{message}");
    for (text, expected) in [("TRUE", true), ("False", false), ("tRuE", true)] {
        let conf = both(&format!("fs.s3a.path.style.access: {text}\n"));
        assert_eq!(conf.s3_path_style, Some(expected), "{text}");
    }
    let text = "fs.s3a.path.style.access: 'false'\n";
    assert_eq!(yaml(text).s3_path_style, Some(false));
    let message = error_in(text, Format::Legacy);
    assert!(
        message.contains("\"'false'\""),
        "the quotes are the value's: {message}"
    );
}

#[test]
fn bad_integer_and_zero_retained() {
    for (value, shown) in [
        ("three", "\"three\""),
        ("0", "\"0\""),
        ("-1", "\"-1\""),
        ("2.5", "\"2.5\""),
        ("2147483648", "\"2147483648\""),
    ] {
        let message = error_both(&format!("\n\nstate.checkpoints.num-retained: {value}\n"));
        assert!(message.starts_with("line 3: "), "{message}");
        assert!(
            message.contains("state.checkpoints.num-retained"),
            "{message}"
        );
        assert!(message.contains(shown), "{message}");
        assert!(
            message.contains("a whole number of at least 1"),
            "{message}"
        );
    }
    assert_eq!(
        both("state.checkpoints.num-retained: +7\n").checkpoints_retained,
        Some(7)
    );
    assert_eq!(
        both("execution.checkpointing.num-retained: 2147483647\n").checkpoints_retained,
        Some(2_147_483_647)
    );
}

#[test]
fn empty_quoted_string_is_an_error() {
    let message = yaml_error("kubernetes.namespace: \"\"\n");
    assert!(message.contains("kubernetes.namespace"), "{message}");
    assert!(message.contains("a non-empty string"), "{message}");
    // To the legacy reader the quotes are the value.
    assert_eq!(
        legacy("kubernetes.namespace: \"\"\n").namespace,
        some("\"\"")
    );
}

#[test]
fn the_first_bad_value_in_the_file_is_reported() {
    let message = error_both("s3.path.style.access: maybe\nstate.checkpoints.num-retained: 0\n");
    assert!(message.starts_with("line 1: "), "{message}");
}

#[test]
fn a_bad_value_overridden_later_is_no_error() {
    let conf = legacy("state.checkpoints.num-retained: lots\nstate.checkpoints.num-retained: 4\n");
    assert_eq!(conf.checkpoints_retained, Some(4));
    let conf =
        yaml("state:\n  checkpoints.num-retained: lots\nstate.checkpoints.num-retained: 4\n");
    assert_eq!(conf.checkpoints_retained, Some(4));
    let conf =
        both("execution.checkpointing.num-retained: 2\nstate.checkpoints.num-retained: lots\n");
    assert_eq!(
        conf.checkpoints_retained,
        Some(2),
        "a deprecated key Flink ignores is not checked"
    );
}

// -------------------------------------------------------------------------------------------
// Secrets

#[test]
fn secrets_are_redacted_in_debug() {
    let conf = orders();
    let shown = format!("{conf:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        shown.contains("s3_secret_key: Some(\"<redacted>\")"),
        "{shown}"
    );
    assert!(shown.contains("orders-flink"), "{shown}");
    let shown = format!("{:?}", FlinkConf::default());
    assert!(shown.contains("s3_secret_key: None"), "{shown}");
}

#[test]
fn secrets_never_reach_errors() {
    for text in [
        "s3.secret-key: \"\"\n",
        "s3:\n  secret-key: [hunter2-in-a-list]\n",
        // (A block scalar, refused by the old reader, is now a value: see block_scalars.)
        "s3:\n  secret-key:\n    - hunter2-in-a-block-list\n",
    ] {
        let e = FlinkConf::parse(text, Format::Yaml).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("s3.secret-key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn secrets_are_never_logged() {
    let text = concat!(
        "s3.secret-key: hunter2-first\n",
        "s3.secret-key: hunter2-second#x\n",
        "fs.s3a.secret.key: hunter2-alias\n",
        "s3.access.key: hunter2-access: x\n",
        "s3a.secret-key: *hunter2-star\n",
        "s3.secret-key: hunter2-third: yes\n",
    );
    let logs = logs_of(|| {
        let conf = legacy(text);
        assert_eq!(conf.s3_secret_key, some("hunter2-third: yes"));
    });
    assert!(logs.contains("s3.secret-key"), "nothing was logged: {logs}");
    assert!(!logs.contains("hunter2"), "a secret was logged: {logs}");
    let text = "s3.secret-key:hunter2: x\nhunter2\ns3:\n  secret-key:hunter2: [x]\n";
    let logs = logs_of(|| {
        legacy(text);
        let message = yaml_error(text);
        assert!(!message.contains("hunter2"), "{message}");
    });
    assert!(!logs.contains("hunter2"), "a secret was logged: {logs}");
    for text in [
        "s3:\n  secret-key: \"\\qhunter2\"\n",
        "s3:\n  secret-key: %hunter2\n",
    ] {
        let message = yaml_error(text);
        assert!(message.starts_with("line 2: "), "{message}");
        assert!(
            !message.contains("hunter2") && !message.contains("\\q"),
            "{message}"
        );
    }
    let logs = logs_of(|| {
        legacy(FLAT);
        yaml(NESTED);
    });
    assert!(!logs.contains(SECRET), "a secret was logged: {logs}");
    assert!(!logs.contains("s3cr3t"), "a secret was logged: {logs}");
}

// -------------------------------------------------------------------------------------------
// Scalars, comments, repeats

#[test]
fn quoted_values() {
    let conf = yaml(concat!(
        "kubernetes.namespace: 'it''s # not a comment'\n",
        "s3.endpoint: \"http://h:9000/a\\\"b\\\\c\\td\\u00e9\\x41\\n\" # comment\n",
        "\"kubernetes.cluster-id\": \"quoted-key\"\n",
        "'high-availability': \n",
        "  'storageDir': 's3://b/p'\n",
    ));
    assert_eq!(conf.namespace, some("it's # not a comment"));
    assert_eq!(conf.s3_endpoint, some("http://h:9000/a\"b\\c\td\u{e9}A\n"));
    assert_eq!(conf.cluster_id, some("quoted-key"));
    assert_eq!(conf.storage_dir, some("s3://b/p"));
}

#[test]
fn multi_line_scalars_fold_as_yaml_does() {
    let conf = yaml(concat!(
        "s3:\n",
        "  endpoint: \"http://a\n",
        "    b\"\n",
        "  access-key: 'x\n",
        "\n",
        "    y'\n",
        "  secret-key: plain\n",
        "    continued   # comment\n",
        "high-availability:\n",
        "  storageDir:\n",
        "    s3://on-the-next-line\n",
        "kubernetes.namespace: \"joined\\\n",
        "   -without-space\"\n",
    ));
    assert_eq!(conf.s3_endpoint, some("http://a b"));
    assert_eq!(conf.s3_access_key, some("x\ny"));
    assert_eq!(conf.s3_secret_key, some("plain continued"));
    assert_eq!(conf.storage_dir, some("s3://on-the-next-line"));
    assert_eq!(conf.namespace, some("joined-without-space"));
}

#[test]
fn comments() {
    let conf = yaml(concat!(
        "# leading comment\n",
        "kubernetes:   # a comment after a mapping key\n",
        "# a comment at column 0 inside the mapping\n",
        "    # an indented comment\n",
        "  cluster-id: c1 # trailing\n",
        "  namespace: a#b\n",
        "s3.endpoint: http://e/#fragment\n",
        "s3.access-key: \"a # b\"\n",
    ));
    assert_eq!(conf.cluster_id, some("c1"));
    assert_eq!(conf.namespace, some("a#b"));
    assert_eq!(conf.s3_endpoint, some("http://e/#fragment"));
    assert_eq!(conf.s3_access_key, some("a # b"));
}

#[test]
fn legacy_comments_start_at_any_hash() {
    let conf = legacy(concat!(
        "# leading comment\n",
        "kubernetes.cluster-id: c1 # trailing\n",
        "kubernetes.namespace: a#b\n",
        "s3.endpoint: http://e/#fragment\n",
        "s3.access-key: \"a # b\"\n",
        "s3.secret-key: # all comment\n",
    ));
    assert_eq!(conf.cluster_id, some("c1"));
    assert_eq!(conf.namespace, some("a"));
    assert_eq!(conf.s3_endpoint, some("http://e/"));
    assert_eq!(conf.s3_access_key, some("\"a"));
    assert_eq!(conf.s3_secret_key, None);
}

#[test]
fn repeated_keys() {
    // Flink's legacy reader takes the later one, with a warning here.
    let text = "kubernetes.namespace: a\nkubernetes.namespace: b\n";
    let logs = logs_of(|| assert_eq!(legacy(text).namespace, some("b")));
    assert!(logs.contains("twice"), "{logs}");
    // In YAML the same key twice in one mapping, nested or not, is invalid, and Flink refuses it.
    let message = yaml_error(text);
    assert!(message.starts_with("line 2: "), "{message}");
    let message = yaml_error(
        "kubernetes:\n  namespace: a\n  namespace: b\nkubernetes.namespace: c\nkubernetes:\n  namespace: d\n",
    );
    assert!(message.starts_with("line 3: "), "{message}");
    assert!(
        message.contains("twice") && message.contains("line 2"),
        "{message}"
    );
    // Once nested and once dotted, they are two YAML keys for one setting: the later one wins.
    let logs = logs_of(|| {
        let conf = yaml("kubernetes:\n  namespace: a\nkubernetes.namespace: c\n");
        assert_eq!(conf.namespace, some("c"));
    });
    assert!(logs.contains("twice"), "{logs}");
    let conf = yaml("kubernetes.namespace: c\nkubernetes:\n  namespace: a\n");
    assert_eq!(conf.namespace, some("a"));
}

#[test]
fn empty_values_leave_keys_unset() {
    for text in [
        "kubernetes.cluster-id:\n",
        "kubernetes.cluster-id: ~\n",
        "kubernetes.cluster-id: null # nothing\n",
        "kubernetes.cluster-id: NULL\n",
        "kubernetes:\n  cluster-id:\n",
    ] {
        assert_eq!(yaml(text).cluster_id, None, "{text:?}");
    }
    let conf = yaml("kubernetes:\n  cluster-id: a\nkubernetes.cluster-id: ~\n");
    assert_eq!(
        conf.cluster_id,
        some("a"),
        "an empty value does not undo an earlier one"
    );
    // The legacy reader skips a line with nothing after the `:` (no `": "`, or an empty
    // value) and takes `~` and `null` as text.
    for text in ["kubernetes.cluster-id:\n", "kubernetes.cluster-id:   \n"] {
        assert_eq!(legacy(text).cluster_id, None, "{text:?}");
    }
    let conf = legacy("kubernetes.cluster-id: a\nkubernetes.cluster-id:\n");
    assert_eq!(conf.cluster_id, some("a"));
    for value in ["~", "null", "NULL", "'null'"] {
        let conf = legacy(&format!("kubernetes.cluster-id: {value}\n"));
        assert_eq!(conf.cluster_id, some(value), "{value}");
    }
    assert_eq!(
        yaml("kubernetes.cluster-id: 'null'\n").cluster_id,
        some("null")
    );
}

#[test]
fn line_endings_and_byte_order_mark() {
    let conf = yaml(
        "\u{feff}kubernetes:\r\n  cluster-id: crlf\r\n  namespace: ns\rs3.endpoint: http://cr\n",
    );
    assert_eq!(conf.cluster_id, some("crlf"));
    assert_eq!(conf.namespace, some("ns"));
    assert_eq!(conf.s3_endpoint, some("http://cr"));
    let conf = legacy(
        "\u{feff}kubernetes.cluster-id: crlf\r\nkubernetes.namespace: ns\rs3.endpoint: http://cr\n",
    );
    assert_eq!(conf.cluster_id, some("crlf"));
    assert_eq!(conf.namespace, some("ns"));
    assert_eq!(conf.s3_endpoint, some("http://cr"));
}

#[test]
fn document_markers() {
    assert_eq!(
        yaml("%YAML 1.2\n---\nkubernetes.namespace: ns\n...\n").namespace,
        some("ns")
    );
    let message = yaml_error("kubernetes.namespace: a\n---\nkubernetes.namespace: b\n");
    assert!(message.starts_with("line 2: "), "{message}");
    // To the legacy reader they are lines without `": "`, skipped.
    let conf =
        legacy("%YAML 1.2\n---\nkubernetes.namespace: a\n---\nkubernetes.namespace: b\n...\n");
    assert_eq!(conf.namespace, some("b"));
}

// -------------------------------------------------------------------------------------------
// Structure

#[test]
fn tabs() {
    let message = yaml_error("kubernetes:\n\tcluster-id: x\n");
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(message.contains("tab"), "{message}");
    let message = yaml_error("kubernetes:\n  \tcluster-id: x\n");
    assert!(message.starts_with("line 2: "), "{message}");
    let message = yaml_error("kubernetes.namespace: a\n\tkubernetes.cluster-id: x\n");
    assert!(message.contains("tab"), "{message}");
    // Tabs may separate tokens within a line, and blank or comment lines may hold them.
    let conf = yaml(
        "kubernetes.cluster-id:\tx\t# c\n\t\n\t# tabbed comment\nkubernetes.namespace: a\tb\n",
    );
    assert_eq!(conf.cluster_id, some("x"));
    assert_eq!(conf.namespace, some("a\tb"));
    // The legacy reader trims tabs like spaces, but needs `": "`: `key:<TAB>x` is skipped.
    let conf = legacy(
        "kubernetes.cluster-id:\tx\n\tkubernetes.namespace: a\tb\t\ns3.endpoint:\t http://e\n",
    );
    assert_eq!(conf.cluster_id, None);
    assert_eq!(conf.namespace, some("a\tb"));
    assert_eq!(conf.s3_endpoint, None);
}

#[test]
fn bad_indentation() {
    let message = yaml_error("kubernetes:\n    cluster-id: a\n  namespace: b\n");
    assert!(message.starts_with("line 3: "), "{message}");
    assert!(message.contains("indentation"), "{message}");
    // (The old reader named line 2, where the plain value starts; YAML names line 3, where the
    // over-indented `cluster-id: b` makes it a key inside a value.)
    let message = yaml_error("kubernetes:\n  namespace: a\n    cluster-id: b\n");
    assert!(message.starts_with("line 3: "), "{message}");
    let text = "  kubernetes.namespace: a\nkubernetes.cluster-id: b\n";
    let message = yaml_error(text);
    assert!(message.starts_with("line 2: "), "{message}");
    // The legacy reader trims every line.
    let conf = legacy(text);
    assert_eq!(conf.namespace, some("a"));
    assert_eq!(conf.cluster_id, some("b"));
}

#[test]
fn unknown_keys_with_lists_flows_and_block_scalars_are_skipped() {
    let conf = yaml(concat!(
        "pipeline:\n",
        "  jars: [a.jar, 'b.jar',\n",
        "    \"c.jar\"]   # continued\n",
        "  classpaths:\n",
        "  - file:///x.jar\n",
        "  - file:///y.jar\n",
        "  global-job-parameters: {a: b, c: [d, e]}\n",
        "  cached-files:\n",
        "    - name: f\n",
        "      path: s3://f\n",
        "  description: |+\n",
        "    kubernetes.cluster-id: not-a-key\n",
        "\n",
        "    # not a comment either\n",
        "  notes: >-\n",
        "      s3.endpoint: not-a-key\n",
        "  anchored: &anchor value\n",
        "  aliased: *anchor\n",
        "  tagged: !!str value\n",
        "kubernetes.cluster-id: real\n",
        "  # an indented comment after the last entry\n",
    ));
    assert_eq!(
        conf,
        FlinkConf {
            cluster_id: some("real"),
            ..FlinkConf::default()
        }
    );
}

#[test]
fn lists_under_known_keys_are_errors() {
    for (text, line, found) in [
        ("kubernetes:\n  cluster-id:\n    - a\n", 2, "a YAML list"),
        ("kubernetes.cluster-id:\n- a\n- b\n", 1, "a YAML list"),
        ("kubernetes:\n  cluster-id: [a]\n", 2, "flow list"),
        ("s3:\n  endpoint: *alias\n", 2, "alias"),
    ] {
        let message = yaml_error(text);
        assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        assert!(message.contains(found), "{message}");
    }
}

#[test]
fn flow_mappings_are_flattened_like_block_mappings() {
    // The old reader refused these; Flink flattens a flow mapping as it does a block one.
    assert_eq!(yaml("kubernetes: {cluster-id: x}\n").cluster_id, some("x"));
    assert_eq!(
        yaml("kubernetes: &k {cluster-id: x}\n").cluster_id,
        some("x")
    );
    let conf = yaml("high-availability:\n  kubernetes: &k {leader-election.lease-duration: 1 s}\n");
    assert_eq!(conf.lease_duration, secs(1));
    let conf = yaml("{\"kubernetes.cluster-id\": \"x\", kubernetes: {namespace: ns}}\n");
    assert_eq!(conf.cluster_id, some("x"));
    assert_eq!(conf.namespace, some("ns"));
}

#[test]
fn malformed_yaml_below_the_top_level_is_an_error() {
    for (text, line) in [
        ("s3:\n  endpoint: a: b\n", 2),
        ("s3:\n  foo: [unclosed\n", 2),
        ("s3:\n  foo: \"unclosed\n", 2),
        ("s3:\n  foo: \"bad \\q escape\"\n", 2),
        ("s3:\n  foo: @reserved\n", 2),
        ("s3:\n  foo: |x\n", 2),
        ("s3:\n  a: 1\n  - item\n", 3),
        ("s3:\n  \"unclosed\n", 2),
        ("s3:\n\n  [a] b\n", 3),
        ("s3:\n  foo: 'a' b\n", 2),
    ] {
        let message = yaml_error(text);
        assert!(
            message.starts_with(&format!("line {line}: ")),
            "{text:?}: {message}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let mut text = String::new();
    for depth in 0..100 {
        text.push_str(&" ".repeat(depth));
        text.push_str("k:\n");
    }
    let message = yaml_error(&text);
    assert!(message.contains("nested deeper"), "{message}");
}

// -------------------------------------------------------------------------------------------
// Standard YAML the old subset refused or misread

#[test]
fn anchors_and_aliases() {
    let conf = yaml(concat!(
        "timings: &timings\n",
        "  lease-duration: 20 s\n",
        "  renew-deadline: 15 s\n",
        "bucket: &bucket s3://flink-ha/orders\n",
        "high-availability:\n",
        "  storageDir: *bucket\n",
        "  kubernetes.leader-election: *timings\n",
        "  kubernetes.leader-election.retry-period: &short 3 s\n",
        "kubernetes:\n",
        "  cluster-id: &id orders\n",
        "  namespace: *id\n",
    ));
    assert_eq!(conf.storage_dir, some("s3://flink-ha/orders"));
    assert_eq!(conf.lease_duration, secs(20));
    assert_eq!(conf.renew_deadline, secs(15));
    assert_eq!(conf.retry_period, secs(3));
    assert_eq!(conf.cluster_id, some("orders"));
    assert_eq!(conf.namespace, some("orders"));
    // YAML 1.2 has no merge key (`<<`), and neither has Flink's parser: `<<` is a key like
    // any other, so nothing below it reaches hakeeper's settings.
    let conf = yaml("base: &b\n  cluster-id: merged\nkubernetes:\n  <<: *b\n");
    assert_eq!(conf.cluster_id, None);
    // An alias before its anchor is an error naming the line.
    let message =
        yaml_error("kubernetes:\n  cluster-id: x\n  namespace: *later\nlater: &later ns\n");
    assert!(message.starts_with("line 3: "), "{message}");
    assert!(message.contains("alias"), "{message}");
}

#[test]
fn aliases_cannot_blow_up() {
    // Each level doubles the one below: 2^40 settings if expanded.
    let mut text = "l0: &l0 {a: 1, b: 2}\n".to_string();
    for i in 1..40 {
        text.push_str(&format!("l{i}: &l{i} {{a: *l{}, b: *l{}}}\n", i - 1, i - 1));
    }
    let started = std::time::Instant::now();
    let message = yaml_error(&text);
    assert!(message.contains("aliases expand"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn block_scalars() {
    let conf = yaml(concat!(
        "high-availability:\n",
        "  storageDir: >-\n",
        "    s3://flink-ha/\n",
        "    orders\n",
        "  cluster-id: |-\n",
        "    literal\n",
        "kubernetes:\n",
        "  cluster-id: |\n",
        "    keeps-its-newline\n",
        "  namespace: >\n",
        "    folded\n",
        "    here\n",
        "\n",
        "    # not a comment\n",
        "s3:\n",
        "  secret-key: |\n",
        "    hunter2-in-a-block\n",
    ));
    // `>-` folds lines with a space and drops the final line break.
    assert_eq!(conf.storage_dir, some("s3://flink-ha/ orders"));
    assert_eq!(conf.ha_cluster_id, some("literal"));
    // `|` keeps the final line break, as Flink does.
    assert_eq!(conf.cluster_id, some("keeps-its-newline\n"));
    assert_eq!(conf.namespace, some("folded here\n# not a comment\n"));
    assert_eq!(conf.s3_secret_key, some("hunter2-in-a-block\n"));
}

#[test]
fn comments_in_flow_collections() {
    let conf = yaml(concat!(
        "kubernetes: {   # the cluster\n",
        "  cluster-id: orders,  # its id\n",
        "  # a whole-line comment\n",
        "  namespace: streaming\n",
        "}\n",
        "pipeline.jars: [a.jar,  # first\n",
        "  b.jar]\n",
    ));
    assert_eq!(conf.cluster_id, some("orders"));
    assert_eq!(conf.namespace, some("streaming"));
}

#[test]
fn nulls_leave_keys_unset() {
    for text in [
        "kubernetes:\n  cluster-id: ~\n",
        "kubernetes:\n  cluster-id: null\n",
        "kubernetes:\n  cluster-id: Null\n",
        "kubernetes:\n  cluster-id: !!null anything\n",
        "kubernetes: {cluster-id: }\n",
        "kubernetes: {cluster-id: ~, namespace: a}\n",
        "kubernetes: ~\n",
        "kubernetes: {}\n",
    ] {
        assert_eq!(yaml(text).cluster_id, None, "{text:?}");
    }
    // Quoted, or tagged as a string, it is the word.
    for text in [
        "kubernetes:\n  cluster-id: 'null'\n",
        "kubernetes:\n  cluster-id: \"null\"\n",
        "kubernetes:\n  cluster-id: !!str null\n",
    ] {
        assert_eq!(yaml(text).cluster_id, some("null"), "{text:?}");
    }
    assert_eq!(
        yaml("kubernetes:\n  cluster-id: '~'\n").cluster_id,
        some("~")
    );
}

#[test]
fn numbers_and_booleans_read_as_flink_reads_them() {
    // Flink's YAML reader resolves plain scalars by YAML 1.2's core schema and, reading a
    // setting as a string, writes the Java value out again.
    for (written, read) in [
        ("4", "4"),
        ("+7", "7"),
        ("007", "7"),
        ("-0", "0"),
        ("0x1F", "31"),
        ("0o17", "15"),
        ("1e3", "1000.0"),
        ("2.50", "2.5"),
        (".5", "0.5"),
        ("1.5e-5", "1.5E-5"),
        ("6.02e23", "6.02E23"),
        ("12345678.9", "1.23456789E7"),
        ("1.", "1.0"),
        ("+.5", "0.5"),
        ("-1E+2", "-100.0"),
        (".inf", ".inf"),
        ("-.Inf", "-.inf"),
        (".NaN", ".nan"),
        ("True", "true"),
        ("FALSE", "false"),
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        // Not core-schema numbers or booleans: strings as written.
        ("yes", "yes"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("1.2.3", "1.2.3"),
        ("0x", "0x"),
        ("e3", "e3"),
        ("1e", "1e"),
        (".", "."),
        ("+", "+"),
        ("--1", "--1"),
        ("1e5.0", "1e5.0"),
        ("1.5E", "1.5E"),
        ("tRuE", "tRuE"),
    ] {
        let conf = yaml(&format!("kubernetes:\n  cluster-id: {written}\n"));
        assert_eq!(conf.cluster_id, some(read), "{written}");
        // Quoted, the text is kept.
        let conf = yaml(&format!("kubernetes:\n  cluster-id: '{written}'\n"));
        assert_eq!(conf.cluster_id, some(written), "'{written}'");
    }
    let conf = yaml(concat!(
        "state.checkpoints.num-retained: 0x10\n",
        "high-availability.kubernetes.leader-election.lease-duration: 0o17\n",
        "taskmanager:\n",
        "  numberOfTaskSlots: 4\n",
        "s3.path.style.access: True\n",
    ));
    assert_eq!(conf.checkpoints_retained, Some(16));
    assert_eq!(conf.lease_duration, Some(Duration::from_millis(15)));
    assert_eq!(conf.s3_path_style, Some(true));
    // A float is no count for Flink either (`Integer.parseInt("5.0")` fails).
    let message = error_both("state.checkpoints.num-retained: 5.0\n");
    assert!(message.contains("\"5.0\""), "{message}");
    // The legacy reader takes the text as written, which Flink's converters then read.
    let message = error_in("state.checkpoints.num-retained: 0x10\n", Format::Legacy);
    assert!(message.contains("\"0x10\""), "{message}");
    let conf = legacy("kubernetes.cluster-id: 007\ns3.path.style.access: True\n");
    assert_eq!(conf.cluster_id, some("007"));
    assert_eq!(conf.s3_path_style, Some(true));
}

#[test]
fn keys_that_are_not_strings() {
    // Flink joins keys with Java's string concatenation.
    let conf = yaml("kubernetes:\n  cluster-id:\n    1: x\n? namespace\n: by-explicit-key\n");
    assert_eq!(conf.cluster_id, None);
    let conf = yaml("s3:\n  ? endpoint\n  : http://explicit\n");
    assert_eq!(conf.s3_endpoint, some("http://explicit"));
    let message = yaml_error("kubernetes:\n  ? [a, b]\n  : x\n");
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(message.contains("as a key"), "{message}");
}

#[test]
fn tags() {
    let conf = yaml("kubernetes:\n  cluster-id: !!str 0x10\n  namespace: ! 007\n");
    assert_eq!(conf.cluster_id, some("0x10"));
    assert_eq!(conf.namespace, some("007"));
    let message = yaml_error("kubernetes:\n  cluster-id: !custom x\n");
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(message.contains("!custom"), "{message}");
}

#[test]
fn multiple_documents_are_refused() {
    let message = yaml_error("kubernetes:\n  namespace: a\n---\nkubernetes:\n  namespace: b\n");
    assert!(message.starts_with("line 3: "), "{message}");
    assert!(message.contains("second YAML document"), "{message}");
}

#[test]
fn garbage_gives_a_clear_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    for (text, line) in [
        ("kubernetes:\n  cluster-id: x\n\tnamespace: y\n", 3),
        ("kubernetes:\n  cluster-id: 'unclosed\n  namespace: y\n", 2),
        (
            "kubernetes:\n  cluster-id: [unclosed, \n  namespace: y\n",
            3,
        ),
        ("kubernetes:\n  cluster-id: {a: b\n", 2),
        ("kubernetes:\n  cluster-id: x\n  namespace: \"\\z\"\n", 3),
        ("kubernetes:\n  - a\n  b: c\n", 3),
        ("kubernetes:\n  cluster-id: x\n  ]]]\n", 3),
        ("kubernetes:\n  cluster-id: x\n namespace: y\n", 3),
        ("kubernetes:\n  cluster-id: x: y\n", 2),
        ("kubernetes:\n  cluster-id: `x`\n", 2),
    ] {
        std::fs::write(&path, text).unwrap();
        let message = FlinkConf::load(&path).unwrap_err().to_string();
        let expected = format!("{}: line {line}: ", path.display());
        assert!(message.starts_with(&expected), "{text:?}: {message}");
    }
}

#[test]
fn tab_after_colon_is_a_separator() {
    // YAML 1.2 and Flink accept it; the parser hakeeper uses needs help (see yaml::read).
    let conf = yaml("kubernetes:\n  cluster-id:\tx\n  namespace:\t\t-dash\n");
    assert_eq!(conf.cluster_id, some("x"));
    assert_eq!(conf.namespace, some("-dash"));
}

// -------------------------------------------------------------------------------------------
// Precedence and aliases

#[test]
fn cluster_id_precedence() {
    let conf = both("high-availability.cluster-id: ha-id\nkubernetes.cluster-id: k8s-id\n");
    assert_eq!(conf.cluster_id, some("k8s-id"));
    assert_eq!(conf.ha_cluster_id, some("ha-id"));
    let logs = logs_of(|| {
        yaml("high-availability.cluster-id: ha-id\nkubernetes.cluster-id: k8s-id\n");
    });
    assert!(logs.contains("differ"), "{logs}");
    let logs = logs_of(|| {
        yaml("high-availability.cluster-id: /same\nkubernetes.cluster-id: same\n");
    });
    assert!(!logs.contains("differ"), "{logs}");

    let conf = yaml("high-availability:\n  cluster-id: ha-only\n");
    assert_eq!(conf.cluster_id, some("ha-only"));
    assert_eq!(conf.ha_cluster_id, some("ha-only"));
    let conf = both("high-availability.zookeeper.path.namespace: /legacy-ns\n");
    assert_eq!(
        conf.cluster_id,
        some("legacy-ns"),
        "Flink drops the leading `/`"
    );
    assert_eq!(conf.ha_cluster_id, some("/legacy-ns"));
    let conf =
        both("high-availability.cluster-id: current\nrecovery.zookeeper.path.namespace: old\n");
    assert_eq!(conf.ha_cluster_id, some("current"));
}

#[test]
fn storage_dir_deprecated_keys() {
    let conf = both("high-availability.zookeeper.storageDir: s3://zk\n");
    assert_eq!(conf.storage_dir, some("s3://zk"));
    let conf = both("recovery.zookeeper.storageDir: s3://oldest\n");
    assert_eq!(conf.storage_dir, some("s3://oldest"));
    let conf = both(
        "high-availability.storageDir: s3://new\nhigh-availability.zookeeper.storageDir: s3://zk\n",
    );
    assert_eq!(
        conf.storage_dir,
        some("s3://new"),
        "the current key wins whatever the order"
    );
    let conf =
        yaml("high-availability:\n  zookeeper.storageDir: s3://zk\n  storageDir: s3://new\n");
    assert_eq!(conf.storage_dir, some("s3://new"));
}

#[test]
fn s3_aliases() {
    let conf = both(concat!(
        "fs.s3a.endpoint: http://hadoop\n",
        "fs.s3a.path.style.access: false\n",
        "fs.s3a.access.key: ak\n",
        "fs.s3a.secret.key: sk\n",
    ));
    assert_eq!(conf.s3_endpoint, some("http://hadoop"));
    assert_eq!(conf.s3_path_style, Some(false));
    assert_eq!(conf.s3_access_key, some("ak"));
    assert_eq!(conf.s3_secret_key, some("sk"));

    let conf = both(concat!(
        "s3.access.key: dotted\n",
        "s3.access-key: dashed\n",
        "presto.s3.endpoint: http://presto\n",
        "s3.path-style-access: true\n",
        "s3.secret.key: dotted-secret\n",
        "s3.access_key: not-a-flink-key\n",
    ));
    assert_eq!(
        conf.s3_access_key,
        some("dashed"),
        "the documented key wins"
    );
    assert_eq!(conf.s3_endpoint, some("http://presto"));
    assert_eq!(conf.s3_path_style, Some(true));
    assert_eq!(conf.s3_secret_key, some("dotted-secret"));
}

#[test]
fn current_checkpoint_key_wins_over_deprecated() {
    let conf = both("execution.checkpointing.num-retained: 3\nstate.checkpoints.num-retained: 9\n");
    assert_eq!(conf.checkpoints_retained, Some(3));
    let conf = yaml("state:\n  checkpoints.num-retained: 9\n");
    assert_eq!(conf.checkpoints_retained, Some(9));
}

// -------------------------------------------------------------------------------------------
// Files

#[test]
fn a_file_over_one_mebibyte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flink-conf.yaml");
    let mut text = "kubernetes.cluster-id: big\n".to_string();
    while text.len() < 2 * MAX_FILE_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, &text).unwrap();
    let e = FlinkConf::load(&path).unwrap_err();
    assert!(matches!(e, FlinkConfError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");

    // Exactly the limit is fine.
    text.truncate(MAX_FILE_BYTES - 1);
    text.push('\n');
    std::fs::write(&path, &text).unwrap();
    assert_eq!(FlinkConf::load(&path).unwrap().cluster_id, some("big"));
}

#[test]
fn load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let e = FlinkConf::load(&missing).unwrap_err();
    assert!(matches!(e, FlinkConfError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.yaml"), "{e}");

    let bad = dir.path().join("config.yaml");
    std::fs::write(
        &bad,
        "kubernetes:\n  namespace: a\nstate.checkpoints.num-retained: 0\n",
    )
    .unwrap();
    let message = FlinkConf::load(&bad).unwrap_err().to_string();
    assert!(message.starts_with(&bad.display().to_string()), "{message}");
    assert!(message.contains("line 3: "), "{message}");

    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"a: b\nc: \xff\n").unwrap();
    let message = FlinkConf::load(&binary).unwrap_err().to_string();
    assert!(
        message.contains("binary.yaml") && message.contains("line 2"),
        "{message}"
    );
}

// -------------------------------------------------------------------------------------------
// Properties

fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("kubernetes".to_string()),
        Just("cluster-id".to_string()),
        Just("s3.secret-key".to_string()),
        Just("high-availability.kubernetes.leader-election.lease-duration".to_string()),
        Just("state.checkpoints.num-retained".to_string()),
        Just(": ".to_string()),
        Just(":".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("\n    ".to_string()),
        Just("\t".to_string()),
        Just(" ".to_string()),
        Just("- ".to_string()),
        Just("#".to_string()),
        Just(" #".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just("\\u12".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("|".to_string()),
        Just(">-".to_string()),
        Just("&a".to_string()),
        Just("*a".to_string()),
        Just("---".to_string()),
        Just("\r".to_string()),
        Just("15 s".to_string()),
        Just("µ".to_string()),
        "[a-z0-9]{1,6}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = FlinkConf::parse(&text, Format::Yaml);
        let _ = FlinkConf::parse(&text, Format::Legacy);
    }

    #[test]
    fn arbitrary_bytes_give_settings_or_a_clean_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["config.yaml", "flink-conf.yaml"] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = FlinkConf::load(&path) {
                let message = e.to_string();
                prop_assert!(message.contains(&path.display().to_string()), "{}", message);
            }
        }
    }

    #[test]
    fn never_panics_on_yaml_like_text(text in yamlish()) {
        let _ = FlinkConf::parse(&text, Format::Yaml);
        let _ = FlinkConf::parse(&text, Format::Legacy);
    }

    #[test]
    fn flat_and_nested_forms_agree(
        id in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        ns in "[a-z][a-z0-9-]{0,10}",
        millis in 0u64..10_000_000,
        retained in 1u32..1000,
        path_style in any::<bool>(),
    ) {
        let flat = format!(
            "kubernetes.cluster-id: {id}\nkubernetes.namespace: {ns}\nhigh-availability.kubernetes.leader-election.lease-duration: {millis}\nstate.checkpoints.num-retained: {retained}\ns3.path.style.access: {path_style}\n"
        );
        let nested = format!(
            "kubernetes:\n  cluster-id: {id}\n  namespace: '{ns}'\nhigh-availability:\n  kubernetes:\n    leader-election.lease-duration: {millis} ms\nstate:\n  checkpoints:\n    num-retained: {retained}\ns3:\n  path.style.access: {path_style}\n"
        );
        let a = FlinkConf::parse(&flat, Format::Legacy).unwrap();
        let b = FlinkConf::parse(&nested, Format::Yaml).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &FlinkConf::parse(&flat, Format::Yaml).unwrap());
        prop_assert_eq!(a.cluster_id, Some(id));
        prop_assert_eq!(a.lease_duration, Some(Duration::from_millis(millis)));
    }

    #[test]
    fn durations_in_every_unit(n in 0u64..1_000_000, unit in 0usize..7) {
        let (labels, nanos): (&[&str], u64) = [
            (&["d", "day", "days"][..], 86_400_000_000_000),
            (&["h", "hour", "hours"][..], 3_600_000_000_000),
            (&["min", "minute", "minutes"][..], 60_000_000_000),
            (&["s", "sec", "secs", "second", "seconds"][..], 1_000_000_000),
            (&["ms", "milli", "millis", "millisecond", "milliseconds", ""][..], 1_000_000),
            (&["µs", "micro", "micros", "microsecond", "microseconds"][..], 1_000),
            (&["ns", "nano", "nanos", "nanosecond", "nanoseconds"][..], 1),
        ][unit];
        for label in labels {
            let expected = Duration::from_nanos(0) + Duration::from_nanos(nanos) * u32::try_from(n).unwrap();
            prop_assert_eq!(parse_flink_duration(&format!("{n} {label}")), Some(expected));
            prop_assert_eq!(parse_flink_duration(&format!("{n}{}", label.to_ascii_uppercase())), Some(expected));
        }
    }
}
