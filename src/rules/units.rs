//! Durations and sizes that users write: a rule's `timeout`, `[sandbox]
//! timeout`, `refine gc --max-age` and `--max-size`.
//!
//! Parsed with humantime and bytesize, so the grammar is the one users know
//! from other tools ("90s", "1h30m", "2 days"; "500M", "20GiB"), numbers
//! never wrap (an overflowing value is an error, not a small one), and
//! negative sizes are refused. A bare number is seconds (or bytes).

/// The longest duration refine accepts: a year. Longer is surely a typo,
/// and podman's `--timeout` must stay representable.
pub const MAX_SECONDS: u64 = 365 * 86_400;

/// Seconds in "90s", "30m", "2h", "1h30m", "3d" or a bare number.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let secs = match s.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            let d = humantime::parse_duration(s)
                .map_err(|e| format!("`{s}` is not a duration ({e})"))?;
            if d.subsec_nanos() != 0 {
                return Err(format!("`{s}` is not a whole number of seconds"));
            }
            d.as_secs()
        }
    };
    if secs == 0 {
        return Err(format!("`{s}` is zero; a duration must be positive"));
    }
    if secs > MAX_SECONDS {
        return Err(format!("`{s}` is longer than a year"));
    }
    Ok(secs)
}

/// Bytes in "500M", "20G" (SI: 10⁹), "20GiB" (2³⁰), "1.5T" or a bare number.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e: String| format!("`{s}` is not a size ({e})"))?;
    if b.as_u64() == u64::MAX {
        return Err(format!("`{s}` is too large"));
    }
    Ok(b.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("3d"), Ok(3 * 86400));
        assert_eq!(parse_duration("120"), Ok(120));
        for bad in [
            "1x",
            "",
            "0",
            "-5m",
            "99999999999999d",
            "18446744073709551616",
            "400d",
            "1.5s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10_000_000_000));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("1.5M"), Ok(1_500_000));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("3KiB"), Ok(3072));
        for bad in ["x", "-1G", "", "1Q", "99999999999999999999E"] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
