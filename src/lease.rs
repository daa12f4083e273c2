//! The leader-election lock record Flink keeps in a ConfigMap annotation, election timings,
//! and the client-go style judgement of who may take the lock.
//!
//! Writing always produces the exact bytes Flink's fabric8-based elector writes; reading also
//! accepts client-go's form (`leaseDurationSeconds`, second-precision times, extra keys).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Number, Value};

/// The ConfigMap annotation holding the leader record.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Largest lease duration a record may carry, in seconds (about 11.6 days).
///
/// Anything longer is treated as malformed rather than as a lock that can never be taken over.
/// The bound also keeps the decimal `leaseDuration` exact to the nanosecond when read as `f64`.
const MAX_LEASE_SECS: u64 = 1_000_000;

/// Holder reported for a lock whose record cannot be parsed.
const MALFORMED_HOLDER: &str = "<malformed>";

/// A leader-election lock record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Who holds the lock; empty when released.
    pub holder_identity: String,
    /// How long the holder's lease lasts after its last renewal.
    pub lease_duration: Duration,
    /// When the holder acquired the lock (informational only).
    pub acquire_time: jiff::Timestamp,
    /// When the holder last renewed (informational only).
    pub renew_time: jiff::Timestamp,
    /// How many times the lock changed hands.
    pub leader_transitions: u32,
}

/// Why an annotation value is not a usable leader record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The value is not JSON at all.
    #[error("leader record is not valid JSON: {0}")]
    NotJson(String),
    /// The value is JSON, but not an object.
    #[error("leader record is not a JSON object (found {0})")]
    NotAnObject(&'static str),
    /// A required field is absent (or null, for the lease duration).
    #[error("leader record has no {0} field")]
    MissingField(&'static str),
    /// A field has the wrong type or an unacceptable value.
    #[error("leader record field {field} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

impl LeaderRecord {
    /// Flink's exact bytes: keys in Flink's order, `leaseDuration` as seconds with nine fraction
    /// digits, times in UTC with six fraction digits (truncated to microseconds) and `Z`.
    ///
    /// A record whose lease exceeds `parse`'s limit (about 11.6 days) is written but not read back.
    pub fn to_annotation(&self) -> String {
        format!(
            "{{\"holderIdentity\":{},\"leaseDuration\":{}.{:09},\"acquireTime\":\"{}\",\"renewTime\":\"{}\",\"leaderTransitions\":{}}}",
            Value::String(self.holder_identity.clone()),
            self.lease_duration.as_secs(),
            self.lease_duration.subsec_nanos(),
            format_time(self.acquire_time),
            format_time(self.renew_time),
            self.leader_transitions,
        )
    }

    /// Reads Flink's form or client-go's form.
    ///
    /// - `holderIdentity` is required; `null` reads as released (`""`).
    /// - The lease comes from `leaseDuration` (decimal seconds, preferred) or else
    ///   `leaseDurationSeconds` (whole seconds); it must be between 0 and about 11.6 days.
    /// - `acquireTime`/`renewTime` that are missing or `null` read as the Unix epoch (they are
    ///   informational: judging never uses them); a present but unparsable time is an error.
    ///   Offsets and 0–9 fraction digits are accepted.
    /// - A missing or `null` `leaderTransitions` reads as 0.
    /// - Unknown keys are ignored.
    pub fn parse(value: &str) -> Result<LeaderRecord, RecordError> {
        let json: Value =
            serde_json::from_str(value).map_err(|e| RecordError::NotJson(e.to_string()))?;
        let Value::Object(map) = json else {
            return Err(RecordError::NotAnObject(kind(&json)));
        };

        let holder_identity = match map.get("holderIdentity") {
            None => return Err(RecordError::MissingField("holderIdentity")),
            Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(wrong_type("holderIdentity", "a string", other)),
        };

        Ok(LeaderRecord {
            holder_identity,
            lease_duration: lease_duration(&map)?,
            acquire_time: time_field(&map, "acquireTime")?,
            renew_time: time_field(&map, "renewTime")?,
            leader_transitions: transitions(&map)?,
        })
    }

    /// True when no one holds the lock (`holderIdentity` empty).
    pub fn is_released(&self) -> bool {
        self.holder_identity.is_empty()
    }
}

/// `2022-05-19T15:09:39.272000Z`: UTC, microseconds (truncated towards the past), `Z`.
fn format_time(ts: Timestamp) -> String {
    let dt = TimeZone::UTC.to_datetime(ts);
    let year = dt.year();
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        // RFC 3339 has no room for these; use ISO 8601's expanded years, which jiff reads back.
        let sign = if year < 0 { '-' } else { '+' };
        format!("{sign}{:06}", year.unsigned_abs())
    };
    format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1000,
    )
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &'static str, expected: &str, found: &Value) -> RecordError {
    RecordError::InvalidField {
        field,
        reason: format!("expected {expected}, found {}", kind(found)),
    }
}

fn invalid(field: &'static str, reason: String) -> RecordError {
    RecordError::InvalidField { field, reason }
}

/// A present, non-null field.
fn present<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    map.get(field).filter(|v| !v.is_null())
}

fn lease_duration(map: &Map<String, Value>) -> Result<Duration, RecordError> {
    if let Some(value) = present(map, "leaseDuration") {
        const FIELD: &str = "leaseDuration";
        let Value::Number(n) = value else {
            return Err(wrong_type(FIELD, "a number of seconds", value));
        };
        return decimal_seconds(n).map_err(|reason| invalid(FIELD, reason));
    }
    if let Some(value) = present(map, "leaseDurationSeconds") {
        const FIELD: &str = "leaseDurationSeconds";
        let Value::Number(n) = value else {
            return Err(wrong_type(FIELD, "a whole number of seconds", value));
        };
        return match n.as_u64() {
            Some(secs) if secs <= MAX_LEASE_SECS => Ok(Duration::from_secs(secs)),
            Some(secs) => Err(invalid(FIELD, too_long(secs))),
            None if n.as_f64().is_some_and(|x| x < 0.0) => {
                Err(invalid(FIELD, format!("must not be negative, got {n}")))
            }
            None => Err(invalid(
                FIELD,
                format!("must be a whole number of seconds, got {n}"),
            )),
        };
    }
    Err(RecordError::MissingField(
        "leaseDuration (or leaseDurationSeconds)",
    ))
}

fn too_long(shown: impl std::fmt::Display) -> String {
    format!("{shown} s exceeds the maximum of {MAX_LEASE_SECS} s")
}

/// Seconds with up to nine significant fraction digits, e.g. `15.000000000` or `0.25`.
fn decimal_seconds(n: &Number) -> Result<Duration, String> {
    if let Some(secs) = n.as_u64() {
        return if secs <= MAX_LEASE_SECS {
            Ok(Duration::from_secs(secs))
        } else {
            Err(too_long(secs))
        };
    }
    let x = n
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("{n} is not a finite number"))?;
    if x < 0.0 {
        return Err(format!("must not be negative, got {n}"));
    }
    if x > MAX_LEASE_SECS as f64 {
        return Err(too_long(n));
    }
    // Below 2^20 s an f64 is within a quarter nanosecond of the decimal it was read from, so
    // rounding the fraction recovers the written nanoseconds exactly.
    let whole = x.trunc();
    let mut secs = whole as u64;
    let mut nanos = ((x - whole) * 1e9).round() as u64;
    if nanos >= 1_000_000_000 {
        secs += 1;
        nanos -= 1_000_000_000;
    }
    Ok(Duration::new(secs, nanos as u32))
}

fn time_field(map: &Map<String, Value>, field: &'static str) -> Result<Timestamp, RecordError> {
    match present(map, field) {
        None => Ok(Timestamp::UNIX_EPOCH),
        Some(Value::String(s)) => s
            .parse::<Timestamp>()
            .map_err(|e| invalid(field, format!("{s:?} is not an RFC 3339 timestamp: {e}"))),
        Some(other) => Err(wrong_type(field, "an RFC 3339 timestamp string", other)),
    }
}

fn transitions(map: &Map<String, Value>) -> Result<u32, RecordError> {
    const FIELD: &str = "leaderTransitions";
    match present(map, FIELD) {
        None => Ok(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => u32::try_from(v)
                .map_err(|_| invalid(FIELD, format!("{v} exceeds the maximum of {}", u32::MAX))),
            None if n.as_f64().is_some_and(|x| x < 0.0) => {
                Err(invalid(FIELD, format!("must not be negative, got {n}")))
            }
            None => Err(invalid(FIELD, format!("must be a whole number, got {n}"))),
        },
        Some(other) => Err(wrong_type(FIELD, "a whole number", other)),
    }
}

/// Election timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a lease lasts after its last observed change.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up leadership.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for Timings {
    /// 15 s lease, 10 s renew deadline, 2 s retry period (Flink's and client-go's defaults).
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timings {
    /// Refuse unless lease_duration > renew_deadline > 1.2 × retry_period and retry_period > 0.
    /// The error names the failed rule and the values involved.
    pub fn validate(&self) -> Result<(), String> {
        let lease = self.lease_duration.as_nanos();
        let renew = self.renew_deadline.as_nanos();
        let retry = self.retry_period.as_nanos();
        if retry == 0 {
            return Err(format!(
                "--retry-period ({}) must be greater than zero",
                show_secs(retry, 9)
            ));
        }
        if lease <= renew {
            return Err(format!(
                "--lease-duration ({}) must be greater than --renew-deadline ({})",
                show_secs(lease, 9),
                show_secs(renew, 9)
            ));
        }
        // renew > 1.2 × retry, in tenths of nanoseconds so the comparison is exact.
        if renew * 10 <= retry * 12 {
            return Err(format!(
                "--renew-deadline ({}) must be greater than 1.2 × --retry-period ({}) = {}",
                show_secs(renew, 9),
                show_secs(retry, 9),
                show_secs(retry * 12, 10)
            ));
        }
        Ok(())
    }
}

/// `units` of 10^-`digits` seconds as `10s`, `2.4s` or `0.25s`.
fn show_secs(units: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let whole = units / scale;
    let frac = units % scale;
    if frac == 0 {
        return format!("{whole}s");
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}s", frac.trim_end_matches('0'))
}

/// What this process may do about a lock, judged client-go style from LOCAL monotonic time:
/// never from the record's timestamps (clock skew between pods must not matter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No record, a released record, or one whose observed lease has run out: try to acquire.
    Acquirable,
    /// The record names us.
    HeldByUs,
    /// Someone else holds it; it can be taken at `expires_at` (local monotonic time) unless it
    /// changes before.
    HeldByOther { holder: String, expires_at: Instant },
}

/// Judges a lock from what this process has observed.
///
/// `record`: None = no annotation; Some(Err) = malformed; Some(Ok) = parsed.
/// `observed_at`: local monotonic time at which the annotation's value last CHANGE was seen.
/// A malformed record counts as held by `<malformed>` until `observed_at + fallback_lease`
/// (never as ours); a record held by another expires at `observed_at + record.lease_duration`;
/// a released record is acquirable at once; a record naming `me` is `HeldByUs`, expired or not.
/// `now == expires_at` is already `Acquirable`. An expiry beyond `Instant`'s range saturates.
pub fn judge(
    record: Option<&Result<LeaderRecord, RecordError>>,
    observed_at: Instant,
    now: Instant,
    me: &str,
    fallback_lease: Duration,
) -> Verdict {
    let (holder, lease) = match record {
        None => return Verdict::Acquirable,
        Some(Err(_)) => (MALFORMED_HOLDER, fallback_lease),
        Some(Ok(r)) if r.is_released() => return Verdict::Acquirable,
        Some(Ok(r)) if r.holder_identity == me => return Verdict::HeldByUs,
        Some(Ok(r)) => (r.holder_identity.as_str(), r.lease_duration),
    };
    let expires_at = saturating_add(observed_at, lease);
    if now >= expires_at {
        Verdict::Acquirable
    } else {
        Verdict::HeldByOther {
            holder: holder.to_owned(),
            expires_at,
        }
    }
}

/// `base + d`, or the latest representable instant when that overflows.
fn saturating_add(base: Instant, d: Duration) -> Instant {
    if let Some(t) = base.checked_add(d) {
        return t;
    }
    // Invariant: base + lo fits, base + hi does not.
    let (mut lo, mut hi) = (Duration::ZERO, d);
    while hi - lo > Duration::from_nanos(1) {
        let mid = lo + (hi - lo) / 2;
        if base.checked_add(mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    base.checked_add(lo).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLINK: &str = r#"{"holderIdentity":"f7978fe5-962d-4037-aa23-19ff522afbff","leaseDuration":15.000000000,"acquireTime":"2022-05-19T15:09:39.272000Z","renewTime":"2022-05-19T15:10:02.104000Z","leaderTransitions":3}"#;
    const CLIENT_GO: &str = r#"{"holderIdentity":"x","leaseDurationSeconds":15,"acquireTime":"2022-05-19T15:09:39Z","renewTime":"2022-05-19T15:10:02Z","leaderTransitions":3}"#;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn flink_record() -> LeaderRecord {
        LeaderRecord {
            holder_identity: "f7978fe5-962d-4037-aa23-19ff522afbff".into(),
            lease_duration: Duration::from_secs(15),
            acquire_time: ts("2022-05-19T15:09:39.272Z"),
            renew_time: ts("2022-05-19T15:10:02.104Z"),
            leader_transitions: 3,
        }
    }

    fn record(holder: &str, lease: Duration) -> LeaderRecord {
        LeaderRecord {
            holder_identity: holder.into(),
            lease_duration: lease,
            ..flink_record()
        }
    }

    fn parse_err(value: &str) -> RecordError {
        match LeaderRecord::parse(value) {
            Ok(r) => panic!("{value} parsed as {r:?}"),
            Err(e) => e,
        }
    }

    fn invalid_field(value: &str) -> &'static str {
        match parse_err(value) {
            RecordError::InvalidField { field, .. } => field,
            other => panic!("{value}: expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn writes_flink_bytes() {
        assert_eq!(flink_record().to_annotation(), FLINK);
    }

    #[test]
    fn writes_released_record() {
        let released = LeaderRecord {
            holder_identity: String::new(),
            lease_duration: Duration::from_secs(1),
            acquire_time: ts("2022-05-19T15:10:05Z"),
            renew_time: ts("2022-05-19T15:10:05Z"),
            leader_transitions: 3,
        };
        assert!(released.is_released());
        assert!(!flink_record().is_released());
        assert_eq!(
            released.to_annotation(),
            r#"{"holderIdentity":"","leaseDuration":1.000000000,"acquireTime":"2022-05-19T15:10:05.000000Z","renewTime":"2022-05-19T15:10:05.000000Z","leaderTransitions":3}"#
        );
    }

    #[test]
    fn truncates_times_to_microseconds() {
        let r = LeaderRecord {
            acquire_time: ts("2022-05-19T15:09:39.123456789Z"),
            renew_time: ts("1969-12-31T23:59:59.999999999Z"),
            ..flink_record()
        };
        let out = r.to_annotation();
        assert!(
            out.contains(r#""acquireTime":"2022-05-19T15:09:39.123456Z""#),
            "{out}"
        );
        // Before the epoch, truncation still goes towards the past.
        assert!(
            out.contains(r#""renewTime":"1969-12-31T23:59:59.999999Z""#),
            "{out}"
        );
    }

    #[test]
    fn writes_sub_second_and_fractional_leases() {
        let cases = [
            (Duration::from_millis(250), "0.250000000"),
            (Duration::from_millis(1500), "1.500000000"),
            (Duration::from_nanos(1), "0.000000001"),
            (Duration::ZERO, "0.000000000"),
        ];
        for (lease, text) in cases {
            let out = record("a", lease).to_annotation();
            assert!(
                out.contains(&format!(r#""leaseDuration":{text},"#)),
                "{out}"
            );
        }
    }

    #[test]
    fn escapes_holder_identity() {
        let out = record("a\"b\\c", Duration::from_secs(1)).to_annotation();
        assert!(out.starts_with(r#"{"holderIdentity":"a\"b\\c","#), "{out}");
        let back = LeaderRecord::parse(&out).expect("round trip");
        assert_eq!(back.holder_identity, "a\"b\\c");
    }

    #[test]
    fn flink_example_round_trips() {
        let r = LeaderRecord::parse(FLINK).expect("flink example");
        assert_eq!(r, flink_record());
        assert_eq!(r.to_annotation(), FLINK);
    }

    #[test]
    fn reads_client_go_form() {
        let r = LeaderRecord::parse(CLIENT_GO).expect("client-go example");
        assert_eq!(
            r,
            LeaderRecord {
                holder_identity: "x".into(),
                lease_duration: Duration::from_secs(15),
                acquire_time: ts("2022-05-19T15:09:39Z"),
                renew_time: ts("2022-05-19T15:10:02Z"),
                leader_transitions: 3,
            }
        );
    }

    #[test]
    fn prefers_lease_duration_over_seconds_form() {
        let r = LeaderRecord::parse(
            r#"{"holderIdentity":"x","leaseDuration":1.5,"leaseDurationSeconds":15}"#,
        )
        .expect("both forms");
        assert_eq!(r.lease_duration, Duration::from_millis(1500));
        // A null leaseDuration falls back to the seconds form.
        let r = LeaderRecord::parse(
            r#"{"holderIdentity":"x","leaseDuration":null,"leaseDurationSeconds":15}"#,
        )
        .expect("null decimal form");
        assert_eq!(r.lease_duration, Duration::from_secs(15));
    }

    #[test]
    fn reads_leases_exactly() {
        let cases = [
            ("15", Duration::from_secs(15)),
            ("0.25", Duration::from_millis(250)),
            ("0.1", Duration::from_millis(100)),
            ("1e1", Duration::from_secs(10)),
            ("0.000000001", Duration::from_nanos(1)),
            ("999999.999999999", Duration::new(999_999, 999_999_999)),
            ("1000000", Duration::from_secs(MAX_LEASE_SECS)),
        ];
        for (text, want) in cases {
            let r = LeaderRecord::parse(&format!(
                r#"{{"holderIdentity":"x","leaseDuration":{text}}}"#
            ))
            .expect(text);
            assert_eq!(r.lease_duration, want, "{text}");
        }
    }

    #[test]
    fn reads_offsets_and_any_fraction_width() {
        let base = ts("2022-05-19T15:09:39Z").as_nanosecond();
        let fractions = [
            "",
            ".1",
            ".12",
            ".123",
            ".1234",
            ".12345",
            ".123456",
            ".1234567",
            ".12345678",
            ".123456789",
        ];
        for (digits, fraction) in fractions.iter().enumerate() {
            // "123456789" cut to `digits` digits, scaled to nanoseconds.
            let nanos: i128 = if digits == 0 {
                0
            } else {
                fraction[1..].parse::<i128>().expect("digits") * 10i128.pow(9 - digits as u32)
            };
            for (clock, offset) in [
                ("15:09:39", "Z"),
                ("17:09:39", "+02:00"),
                ("12:39:39", "-02:30"),
            ] {
                let text = format!("2022-05-19T{clock}{fraction}{offset}");
                let r = LeaderRecord::parse(&format!(
                    r#"{{"holderIdentity":"x","leaseDurationSeconds":15,"acquireTime":"{text}","renewTime":"{text}"}}"#
                ))
                .expect(&text);
                assert_eq!(r.acquire_time.as_nanosecond(), base + nanos, "{text}");
                assert_eq!(r.renew_time, r.acquire_time, "{text}");
            }
        }
    }

    #[test]
    fn ignores_unknown_keys() {
        let r = LeaderRecord::parse(
            r#"{"holderIdentity":"x","preferredHolder":"y","strategy":"OldestEmulationVersion","leaseDurationSeconds":15,"acquireTime":"2022-05-19T15:09:39Z","renewTime":"2022-05-19T15:10:02Z","leaderTransitions":3,"extra":{"nested":[1,2]}}"#,
        )
        .expect("extra keys");
        assert_eq!(r, LeaderRecord::parse(CLIENT_GO).expect("client-go"));
    }

    #[test]
    fn missing_or_null_optional_fields_have_defaults() {
        let r = LeaderRecord::parse(
            r#"{"holderIdentity":"x","leaseDurationSeconds":15,"acquireTime":null}"#,
        )
        .expect("sparse record");
        assert_eq!(r.acquire_time, Timestamp::UNIX_EPOCH);
        assert_eq!(r.renew_time, Timestamp::UNIX_EPOCH);
        assert_eq!(r.leader_transitions, 0);
        let r = LeaderRecord::parse(r#"{"holderIdentity":null,"leaseDuration":1.000000000}"#)
            .expect("null holder");
        assert!(r.is_released());
    }

    #[test]
    fn rejects_non_json_and_non_objects() {
        for bad in [
            "",
            "not json",
            "{",
            r#"{"holderIdentity":"x",}"#,
            "{} x",
            "NaN",
        ] {
            assert!(matches!(parse_err(bad), RecordError::NotJson(_)), "{bad:?}");
        }
        for (bad, kind) in [
            ("[]", "an array"),
            ("null", "null"),
            ("15", "a number"),
            (r#""x""#, "a string"),
            ("true", "a boolean"),
        ] {
            let err = parse_err(bad);
            assert_eq!(err, RecordError::NotAnObject(kind), "{bad}");
            assert!(err.to_string().contains("not a JSON object"), "{err}");
        }
    }

    #[test]
    fn rejects_missing_required_fields() {
        let err = parse_err(r#"{"holderIdentity":"x","acquireTime":"2022-05-19T15:09:39Z"}"#);
        assert!(matches!(err, RecordError::MissingField(_)), "{err:?}");
        assert!(err.to_string().contains("leaseDuration"), "{err}");
        let err = parse_err(r#"{"holderIdentity":"x","leaseDuration":null}"#);
        assert!(err.to_string().contains("leaseDuration"), "{err}");
        let err = parse_err(r#"{"leaseDuration":15.0}"#);
        assert_eq!(err, RecordError::MissingField("holderIdentity"));
        assert!(err.to_string().contains("holderIdentity"), "{err}");
    }

    #[test]
    fn rejects_bad_lease_durations() {
        for bad in [
            "-1",
            "-0.5",
            "1e300",
            "1000000.000000001",
            "18446744073709551616",
            r#""15""#,
            "true",
            "[15]",
        ] {
            let value = format!(r#"{{"holderIdentity":"x","leaseDuration":{bad}}}"#);
            assert_eq!(invalid_field(&value), "leaseDuration", "{bad}");
        }
        for bad in ["-1", "1.5", "1000001", r#""15""#] {
            let value = format!(r#"{{"holderIdentity":"x","leaseDurationSeconds":{bad}}}"#);
            assert_eq!(invalid_field(&value), "leaseDurationSeconds", "{bad}");
        }
        let err = parse_err(r#"{"holderIdentity":"x","leaseDuration":-1}"#);
        assert!(err.to_string().contains("negative"), "{err}");
        let err = parse_err(r#"{"holderIdentity":"x","leaseDuration":1e300}"#);
        assert!(err.to_string().contains("maximum"), "{err}");
        // JSON cannot spell NaN or infinity; serde_json refuses out-of-range literals.
        assert!(matches!(
            parse_err(r#"{"holderIdentity":"x","leaseDuration":NaN}"#),
            RecordError::NotJson(_)
        ));
        assert!(matches!(
            parse_err(r#"{"holderIdentity":"x","leaseDuration":1e400}"#),
            RecordError::NotJson(_)
        ));
    }

    #[test]
    fn rejects_wrong_types_and_values() {
        let with =
            |extra: &str| format!(r#"{{"holderIdentity":"x","leaseDuration":15.0,{extra}}}"#);
        let cases = [
            (
                r#"{"holderIdentity":7,"leaseDuration":15.0}"#.to_owned(),
                "holderIdentity",
            ),
            (
                r#"{"holderIdentity":["x"],"leaseDuration":15.0}"#.to_owned(),
                "holderIdentity",
            ),
            (with(r#""leaderTransitions":-1"#), "leaderTransitions"),
            (with(r#""leaderTransitions":1.5"#), "leaderTransitions"),
            (
                with(r#""leaderTransitions":4294967296"#),
                "leaderTransitions",
            ),
            (with(r#""leaderTransitions":"3""#), "leaderTransitions"),
            (with(r#""acquireTime":"yesterday""#), "acquireTime"),
            (
                with(r#""acquireTime":"2022-05-19T15:09:39""#),
                "acquireTime",
            ),
            (with(r#""acquireTime":1652972979"#), "acquireTime"),
            (with(r#""renewTime":"2022-13-19T15:09:39Z""#), "renewTime"),
            (
                with(r#""renewTime":"2022-05-19T15:09:39.1234567891Z""#),
                "renewTime",
            ),
        ];
        for (value, field) in cases {
            assert_eq!(invalid_field(&value), field, "{value}");
            let message = parse_err(&value).to_string();
            assert!(message.contains(field), "{message}");
        }
        let message = parse_err(&with(r#""leaderTransitions":-1"#)).to_string();
        assert!(message.contains("negative"), "{message}");
        let message = parse_err(r#"{"holderIdentity":7,"leaseDuration":15.0}"#).to_string();
        assert!(
            message.contains("expected a string, found a number"),
            "{message}"
        );
    }

    #[test]
    fn default_timings_are_valid() {
        let t = Timings::default();
        assert_eq!(t.lease_duration, Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry_period, Duration::from_secs(2));
        assert_eq!(t.validate(), Ok(()));
    }

    fn timings(lease_ms: u64, renew_ms: u64, retry_ms: u64) -> Timings {
        Timings {
            lease_duration: Duration::from_millis(lease_ms),
            renew_deadline: Duration::from_millis(renew_ms),
            retry_period: Duration::from_millis(retry_ms),
        }
    }

    #[test]
    fn lease_must_exceed_renew_deadline() {
        assert_eq!(
            timings(10_000, 10_000, 2_000).validate(),
            Err("--lease-duration (10s) must be greater than --renew-deadline (10s)".into())
        );
        assert_eq!(
            timings(9_500, 10_000, 2_000).validate(),
            Err("--lease-duration (9.5s) must be greater than --renew-deadline (10s)".into())
        );
        assert_eq!(timings(10_001, 10_000, 2_000).validate(), Ok(()));
    }

    #[test]
    fn renew_deadline_must_exceed_retry_with_jitter() {
        assert_eq!(
            timings(15_000, 2_000, 2_000).validate(),
            Err(
                "--renew-deadline (2s) must be greater than 1.2 × --retry-period (2s) = 2.4s"
                    .into()
            )
        );
        // Exactly 1.2 × retry is not enough; a nanosecond more is.
        let equal = timings(15_000, 2_400, 2_000);
        let err = equal.validate().expect_err("renew == 1.2 × retry");
        assert!(err.contains("1.2 × --retry-period (2s) = 2.4s"), "{err}");
        let above = Timings {
            renew_deadline: Duration::new(2, 400_000_001),
            ..equal
        };
        assert_eq!(above.validate(), Ok(()));
        // 1.2 × 1 ns is shown exactly.
        let tiny = Timings {
            lease_duration: Duration::from_nanos(3),
            renew_deadline: Duration::from_nanos(1),
            retry_period: Duration::from_nanos(1),
        };
        let err = tiny.validate().expect_err("1 ns <= 1.2 ns");
        assert!(err.ends_with("= 0.0000000012s"), "{err}");
    }

    #[test]
    fn retry_period_must_be_positive() {
        let err = timings(15_000, 10_000, 0)
            .validate()
            .expect_err("zero retry");
        assert_eq!(err, "--retry-period (0s) must be greater than zero");
    }

    #[test]
    fn judge_without_record_is_acquirable() {
        let now = Instant::now();
        assert_eq!(
            judge(None, now, now, "me", Duration::from_secs(15)),
            Verdict::Acquirable
        );
    }

    #[test]
    fn judge_released_record_is_acquirable_at_once() {
        let t0 = Instant::now();
        let released = Ok(record("", Duration::from_secs(1)));
        assert_eq!(
            judge(Some(&released), t0, t0, "me", Duration::from_secs(15)),
            Verdict::Acquirable
        );
        // Even for a process whose own identity is empty.
        assert_eq!(
            judge(Some(&released), t0, t0, "", Duration::from_secs(15)),
            Verdict::Acquirable
        );
    }

    #[test]
    fn judge_record_naming_us_is_ours_even_when_expired() {
        let t0 = Instant::now();
        let ours = Ok(record("me", Duration::from_secs(15)));
        for later in [0, 5, 15, 3600] {
            let now = t0 + Duration::from_secs(later);
            assert_eq!(
                judge(Some(&ours), t0, now, "me", Duration::from_secs(15)),
                Verdict::HeldByUs,
                "{later}s"
            );
        }
    }

    #[test]
    fn judge_other_holder_expires_after_its_own_lease() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(7);
        let theirs = Ok(record("them", lease));
        let held = Verdict::HeldByOther {
            holder: "them".into(),
            expires_at: t0 + lease,
        };
        // The holder's lease counts, not our fallback.
        let fallback = Duration::from_secs(60);
        assert_eq!(judge(Some(&theirs), t0, t0, "me", fallback), held);
        let just_before = t0 + lease - Duration::from_nanos(1);
        assert_eq!(judge(Some(&theirs), t0, just_before, "me", fallback), held);
        assert_eq!(
            judge(Some(&theirs), t0, t0 + lease, "me", fallback),
            Verdict::Acquirable
        );
        assert_eq!(
            judge(Some(&theirs), t0, t0 + lease * 2, "me", fallback),
            Verdict::Acquirable
        );
    }

    #[test]
    fn judge_ignores_record_timestamps() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(15);
        for renew in [
            "2999-01-01T00:00:00Z",
            "1971-01-01T00:00:00Z",
            "2022-05-19T15:10:02Z",
        ] {
            let r = Ok(LeaderRecord {
                acquire_time: ts(renew),
                renew_time: ts(renew),
                ..record("them", lease)
            });
            assert_eq!(
                judge(Some(&r), t0, t0 + Duration::from_secs(1), "me", lease),
                Verdict::HeldByOther {
                    holder: "them".into(),
                    expires_at: t0 + lease
                },
                "{renew}"
            );
            assert_eq!(
                judge(Some(&r), t0, t0 + lease, "me", lease),
                Verdict::Acquirable,
                "{renew}"
            );
        }
    }

    #[test]
    fn judge_malformed_record_uses_fallback_lease_and_is_never_ours() {
        let t0 = Instant::now();
        let fallback = Duration::from_secs(15);
        let malformed = LeaderRecord::parse(r#"{"holderIdentity":"me"}"#);
        assert!(malformed.is_err());
        let held = Verdict::HeldByOther {
            holder: "<malformed>".into(),
            expires_at: t0 + fallback,
        };
        assert_eq!(judge(Some(&malformed), t0, t0, "me", fallback), held);
        assert_eq!(
            judge(
                Some(&malformed),
                t0,
                t0 + Duration::from_secs(14),
                "me",
                fallback
            ),
            held
        );
        assert_eq!(
            judge(Some(&malformed), t0, t0 + fallback, "me", fallback),
            Verdict::Acquirable
        );
        assert_eq!(
            judge(
                Some(&malformed),
                t0,
                t0 + Duration::from_secs(99),
                "me",
                fallback
            ),
            Verdict::Acquirable
        );
    }

    #[test]
    fn judge_saturates_unrepresentable_expiry() {
        let t0 = Instant::now();
        let malformed = Err(RecordError::NotJson("x".into()));
        match judge(Some(&malformed), t0, t0, "me", Duration::MAX) {
            Verdict::HeldByOther { holder, expires_at } => {
                assert_eq!(holder, "<malformed>");
                assert!(expires_at > t0 + Duration::from_secs(1 << 40));
            }
            other => panic!("expected HeldByOther, got {other:?}"),
        }
        assert!(
            saturating_add(t0, Duration::MAX)
                .checked_add(Duration::from_nanos(1))
                .is_none()
        );
    }

    /// Knuth's MMIX LCG; the high bits are the useful ones.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 32
        }

        fn below(&mut self, n: u64) -> u64 {
            ((self.next() << 32) | self.next()) % n
        }
    }

    fn truncate_to_micros(t: Timestamp) -> Timestamp {
        let nanos = t.as_nanosecond();
        Timestamp::from_nanosecond(nanos - nanos.rem_euclid(1000)).expect("in range")
    }

    #[test]
    fn random_records_round_trip() {
        const HUNDRED_YEARS: u64 = 100 * 36_525 * 864; // seconds
        let anchor = ts("2022-05-19T15:09:39Z").as_second();
        let mut rng = Lcg(0x5eed);
        let random_time = |rng: &mut Lcg| {
            let secs = anchor + rng.below(2 * HUNDRED_YEARS + 1) as i64 - HUNDRED_YEARS as i64;
            Timestamp::new(secs, rng.below(1_000_000_000) as i32).expect("in range")
        };
        for i in 0..500 {
            let holder: String = (0..rng.below(41))
                .map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap_or('0'))
                .collect();
            // Millisecond leases as Flink configures them, and every other time nanosecond ones.
            let lease = if i % 2 == 0 {
                Duration::from_millis(rng.below(MAX_LEASE_SECS * 1000 + 1))
            } else {
                Duration::from_nanos(rng.below(MAX_LEASE_SECS * 1_000_000_000 + 1))
            };
            let r = LeaderRecord {
                holder_identity: holder,
                lease_duration: lease,
                acquire_time: random_time(&mut rng),
                renew_time: random_time(&mut rng),
                leader_transitions: rng.next() as u32,
            };
            let text = r.to_annotation();
            let back = LeaderRecord::parse(&text).expect(&text);
            let want = LeaderRecord {
                acquire_time: truncate_to_micros(r.acquire_time),
                renew_time: truncate_to_micros(r.renew_time),
                ..r
            };
            assert_eq!(back, want, "{text}");
            assert_eq!(back.to_annotation(), text);
        }
    }

    #[test]
    fn extreme_times_round_trip() {
        for t in [
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp::UNIX_EPOCH,
            ts("0000-01-01T00:00:00Z"),
        ] {
            let r = LeaderRecord {
                acquire_time: t,
                renew_time: t,
                ..flink_record()
            };
            let text = r.to_annotation();
            let back = LeaderRecord::parse(&text).expect(&text);
            assert_eq!(back.acquire_time, truncate_to_micros(t), "{text}");
        }
    }
}
