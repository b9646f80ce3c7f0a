//! Sizes and durations as people type them: `10GB`, `512MiB`, `1.5 TB`;
//! `30m`, `12h`, `7d`, `2w`. Sizes in decimal units are powers of 1000,
//! binary ones (`KiB`, `MiB`, …) of 1024; a bare number is bytes or seconds.

/// Parses a size in bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split(text);
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("'{text}' is not a size (say 500MB, 10GB or 2TiB)")),
    };
    scale(number, factor).ok_or_else(|| format!("'{text}' is not a size (say 500MB, 10GB or 2TiB)"))
}

/// A short wait: `500ms`, or a [`parse_duration`] (`2s`, `1m`).
pub(crate) fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    if let Some(ms) = text.strip_suffix("ms") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a duration (say 500ms or 2s)"))?;
        return Ok(std::time::Duration::from_millis(ms));
    }
    parse_duration(text).map(std::time::Duration::from_secs)
}

/// Parses a duration in seconds: `30`, `30s`, `30m`, `12h`, `7d`, `2w`.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = split(text);
    let factor: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("'{text}' is not a duration (say 30m, 12h or 7d)")),
    };
    scale(number, factor).ok_or_else(|| format!("'{text}' is not a duration (say 30m, 12h or 7d)"))
}

fn split(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..at], text[at..].trim())
}

fn scale(number: &str, factor: u64) -> Option<u64> {
    if number.is_empty() {
        return None;
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(factor);
    }
    let value = number.parse::<f64>().ok()? * factor as f64;
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then_some(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_as_typed() {
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("1.5 MB"), Ok(1_500_000));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("99999999999999999999TB").is_err());
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert!(parse_duration("7y").is_err());
    }
}
