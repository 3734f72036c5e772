//! RFC 3339 timestamps as [`SystemTime`].

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp (whole or fractional seconds, any offset).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// `serde(deserialize_with)` helper for a required RFC 3339 field.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    d.deserialize_str(Rfc3339Visitor)
}

struct Rfc3339Visitor;

impl serde::de::Visitor<'_> for Rfc3339Visitor {
    type Value = SystemTime;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 timestamp string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SystemTime, E> {
        parse_rfc3339(v).ok_or_else(|| E::custom("invalid RFC 3339 timestamp"))
    }
}

/// `serde(deserialize_with)` helper for an optional RFC 3339 field (`null` or absent is `None`).
pub(crate) fn deserialize_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SystemTime>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "deserialize")] SystemTime);
    Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(t)| t))
}

/// The end of year 9999 UTC, the latest time [`from_unix`] represents.
pub(crate) const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// `SystemTime` from whole seconds since the Unix epoch, capped at the end of year
/// 9999 (a claim such as `exp: u64::MAX` must not overflow `SystemTime`).
pub(crate) fn from_unix(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs.min(MAX_UNIX_SECS))
}

/// `time + by`, capped at the end of year 9999 like [`from_unix`] (`Duration::MAX`
/// means "never" in tests, and must not overflow `SystemTime`).
pub(crate) fn saturating_add(time: SystemTime, by: Duration) -> SystemTime {
    let latest = from_unix(MAX_UNIX_SECS);
    time.checked_add(by).map_or(latest, |t| t.min(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "test-util")]
    #[test]
    fn saturating_add_caps_at_year_9999() {
        let now = from_unix(1_700_000_000);
        assert_eq!(
            saturating_add(now, Duration::from_secs(5)),
            from_unix(1_700_000_005)
        );
        assert_eq!(saturating_add(now, Duration::MAX), from_unix(MAX_UNIX_SECS));
        assert_eq!(
            saturating_add(from_unix(MAX_UNIX_SECS), Duration::from_secs(1)),
            from_unix(MAX_UNIX_SECS)
        );
    }

    #[test]
    fn from_unix_caps_instead_of_overflowing() {
        assert_eq!(from_unix(u64::MAX), from_unix(MAX_UNIX_SECS));
        assert_eq!(
            from_unix(1_700_000_000),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }

    #[test]
    fn parses_whole_and_fractional_seconds() {
        let whole = parse_rfc3339("2021-08-28T00:41:58Z").unwrap();
        let frac = parse_rfc3339("2021-08-28T00:41:58.935673Z").unwrap();
        assert_eq!(
            frac.duration_since(whole).unwrap(),
            Duration::from_micros(935_673)
        );
        assert_eq!(crate::clock::unix_seconds(whole), 1_630_111_318);
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        let a = parse_rfc3339("2021-08-28T02:41:58+02:00").unwrap();
        let b = parse_rfc3339("2021-08-28T00:41:58Z").unwrap();
        assert_eq!(a, b);
        for bad in [
            "",
            "yesterday",
            "2021-08-28",
            "2021-13-28T00:00:00Z",
            "1630111318",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad:?}");
        }
    }
}
