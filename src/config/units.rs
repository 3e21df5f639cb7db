//! Sizes (`256MiB`, `1GB`, `1024`) and durations (`180s`, `1h30m`, `500ms`) as written in the config.

use std::time::Duration;

use super::diagnostic::did_you_mean;

/// Why a size or duration could not be read: a message and, when we can tell, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnitError {
    /// What is wrong, naming what was expected.
    pub(crate) message: String,
    /// How to write it instead.
    pub(crate) hint: Option<String>,
}

impl UnitError {
    fn new(message: String, hint: impl Into<Option<String>>) -> Self {
        UnitError {
            message,
            hint: hint.into(),
        }
    }
}

/// Size units, case-insensitive: decimal (powers of 1000) and binary (powers of 1024).
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

const SIZE_UNITS_HINT: &str =
    "units are B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024)";

/// Duration units and their length in milliseconds.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60 * 1000),
    ("h", 60 * 60 * 1000),
    ("d", 24 * 60 * 60 * 1000),
];

const DURATION_UNITS_HINT: &str =
    "units are ms, s, m, h and d, e.g. \"180s\", \"10m\" or \"1h30m\"";

/// The unit meant by a common spelling such as `sec`, `mins` or `H`.
fn duration_unit_alias(unit: &str) -> Option<&'static str> {
    let canonical = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    };
    Some(canonical)
}

/// Splits `text` into a leading run of ASCII digits and the rest.
fn leading_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Parses a size: a whole number of bytes with an optional unit, e.g. `256MiB`,
/// `1GB`, `512 KiB` or `1024`.
///
/// # Errors
/// A [`UnitError`] saying what was expected.
pub(crate) fn parse_size(text: &str) -> Result<usize, UnitError> {
    let trimmed = text.trim();
    let example = "write a size such as \"256MiB\", \"1GB\", \"512KiB\" or \"1024\" (bytes)";
    if trimmed.is_empty() {
        return Err(UnitError::new(
            "empty size: expected a number of bytes with an optional unit".to_string(),
            example.to_string(),
        ));
    }
    let (digits, rest) = leading_digits(trimmed);
    if digits.is_empty() {
        return Err(UnitError::new(
            format!("invalid size {text:?}: expected a number of bytes with an optional unit"),
            example.to_string(),
        ));
    }
    if rest.starts_with('.') {
        return Err(UnitError::new(
            format!("invalid size {text:?}: expected a whole number"),
            "use a smaller unit, e.g. \"1536MiB\" instead of \"1.5GiB\"".to_string(),
        ));
    }
    let unit = rest.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        {
            Some((_, multiplier)) => *multiplier,
            None => {
                let hint = did_you_mean(unit, SIZE_UNITS.iter().map(|(name, _)| *name))
                    .map_or_else(
                        || SIZE_UNITS_HINT.to_string(),
                        |mean| format!("{mean} {SIZE_UNITS_HINT}"),
                    );
                return Err(UnitError::new(
                    format!("unknown size unit {unit:?} in {text:?}"),
                    hint,
                ));
            }
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| UnitError::new(format!("size {text:?} is too large"), None))
}

/// Parses a duration: one or more whole numbers, each with a unit (`ms`, `s`, `m`,
/// `h`, `d`), e.g. `180s`, `10m`, `500ms` or `1h30m`. `0s` is a valid duration.
///
/// # Errors
/// A [`UnitError`] saying what was expected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(UnitError::new(
            "empty duration: expected a number with a unit".to_string(),
            DURATION_UNITS_HINT.to_string(),
        ));
    }
    let mut total_ms: u64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let (digits, after) = leading_digits(rest);
        if digits.is_empty() {
            return Err(UnitError::new(
                format!("invalid duration {text:?}: expected a number with a unit"),
                DURATION_UNITS_HINT.to_string(),
            ));
        }
        if after.starts_with('.') {
            return Err(UnitError::new(
                format!("invalid duration {text:?}: expected whole numbers"),
                "combine units instead of fractions, e.g. \"1h30m\" or \"1500ms\"".to_string(),
            ));
        }
        // "2 s" reads like "2s"; the unit ends at the next number or space.
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(UnitError::new(
                format!("duration {text:?} has no unit"),
                format!("write \"{digits}s\" for seconds; {DURATION_UNITS_HINT}"),
            ));
        }
        let Some((_, unit_ms)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            let hint = match duration_unit_alias(unit) {
                Some(canonical) => {
                    format!("did you mean \"{digits}{canonical}\"? {DURATION_UNITS_HINT}")
                }
                None => DURATION_UNITS_HINT.to_string(),
            };
            return Err(UnitError::new(
                format!("unknown duration unit {unit:?} in {text:?}"),
                hint,
            ));
        };
        total_ms = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(*unit_ms))
            .and_then(|ms| ms.checked_add(total_ms))
            .ok_or_else(|| UnitError::new(format!("duration {text:?} is too large"), None))?;
        rest = next.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is the value, or a fragment of the error message.
    fn check_size(input: &str, expected: Result<usize, &str>) {
        match (parse_size(input), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input:?}"),
            (Err(got), Err(want)) => assert!(
                got.message.contains(want),
                "{input:?}: message {:?} lacks {want:?}",
                got.message
            ),
            (got, want) => panic!("{input:?}: got {got:?}, expected {want:?}"),
        }
    }

    fn check_duration(input: &str, expected: Result<u64, &str>) {
        match (parse_duration(input), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, Duration::from_millis(want), "{input:?}"),
            (Err(got), Err(want)) => assert!(
                got.message.contains(want),
                "{input:?}: message {:?} lacks {want:?}",
                got.message
            ),
            (got, want) => panic!("{input:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn sizes() {
        check_size("1024", Ok(1024));
        check_size("0", Ok(0));
        check_size("256MiB", Ok(256 << 20));
        check_size("256mib", Ok(256 << 20));
        check_size("512KiB", Ok(512 << 10));
        check_size("512 KiB", Ok(512 << 10));
        check_size("1GB", Ok(1_000_000_000));
        check_size("8MB", Ok(8_000_000));
        check_size("10B", Ok(10));
        check_size("1TiB", Ok(1 << 40));
        check_size("", Err("empty size"));
        check_size("MiB", Err("expected a number of bytes"));
        check_size("-1", Err("expected a number of bytes"));
        check_size("1.5GiB", Err("expected a whole number"));
        check_size("256MBs", Err("unknown size unit \"MBs\""));
        check_size("99999999999999999999", Err("too large"));
        check_size("99999999TiB", Err("too large"));
    }

    #[test]
    fn size_hints() {
        let err = parse_size("256Mib!").unwrap_err();
        assert!(err.hint.unwrap_or_default().contains("KiB, MiB"));
        let err = parse_size("256MIBB").unwrap_err();
        assert!(err.hint.unwrap_or_default().starts_with("did you mean"));
    }

    #[test]
    fn durations() {
        check_duration("180s", Ok(180_000));
        check_duration("10m", Ok(600_000));
        check_duration("1h", Ok(3_600_000));
        check_duration("500ms", Ok(500));
        check_duration("1h30m", Ok(5_400_000));
        check_duration("1h 30m", Ok(5_400_000));
        check_duration("2 s", Ok(2_000));
        check_duration("2d", Ok(172_800_000));
        check_duration("0s", Ok(0));
        check_duration("1m30s500ms", Ok(90_500));
        check_duration("", Err("empty duration"));
        check_duration("180", Err("has no unit"));
        check_duration("1h30", Err("has no unit"));
        check_duration("10sec", Err("unknown duration unit \"sec\""));
        check_duration("2 seconds", Err("unknown duration unit \"seconds\""));
        check_duration("10S", Err("unknown duration unit \"S\""));
        check_duration("1.5h", Err("expected whole numbers"));
        check_duration("s", Err("expected a number with a unit"));
        check_duration("-5s", Err("expected a number with a unit"));
        check_duration("99999999999999999d", Err("too large"));
    }

    #[test]
    fn duration_hints() {
        let err = parse_duration("180").unwrap_err();
        assert_eq!(
            err.hint.as_deref().map(|h| h.starts_with("write \"180s\"")),
            Some(true)
        );
        let err = parse_duration("10sec").unwrap_err();
        assert!(err
            .hint
            .unwrap_or_default()
            .starts_with("did you mean \"10s\"?"));
        let err = parse_duration("10S").unwrap_err();
        assert!(err
            .hint
            .unwrap_or_default()
            .starts_with("did you mean \"10s\"?"));
    }
}
