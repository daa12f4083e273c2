//! Durations as people write them on command lines and in Flink's configuration:
//! `15s`, `15 s`, `15000 ms`, `1 min`, `2m`, `1h`, `500ms`; a bare number is seconds.

use std::time::Duration;

/// Parse a duration. Fractions are allowed (`1.5s`); negative values and unknown units are errors.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("invalid duration {input:?}: expected a number and a unit such as 15s")
    })?;
    let unit_secs = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 0.001,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        other => {
            return Err(format!(
                "invalid duration {input:?}: unknown unit {other:?}"
            ));
        }
    };
    Duration::try_from_secs_f64(value * unit_secs)
        .map_err(|_| format!("invalid duration {input:?}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_and_cli_forms() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("15 s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("15000 ms").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1 min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "-1s", "1 fortnight", "1e400s", "abc", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
