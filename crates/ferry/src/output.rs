//! How results look: escaped remote strings, the upload announcement, the
//! store listing, human sizes, and JSON.

use std::borrow::Cow;

use chrono::{Local, TimeZone};
use ferry_protocol::FileEntry;

/// Makes a remote string safe for a terminal: control characters (escape
/// sequences included) and invisible ones (those names refuse) are shown as
/// `\u{..}` instead of being interpreted or hidden.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
    let unsafe_at = |(at, c)| ferry_protocol::name::is_forbidden_at(text, at, c);
    if !text.char_indices().any(unsafe_at) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.char_indices()
            .map(|(at, c)| {
                if unsafe_at((at, c)) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Local time as `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn local_time(unix: i64) -> String {
    Local.timestamp_opt(unix, 0).single().map_or_else(
        || unix.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// `alice<2026-01-31 14:05:09>: Uploaded name`, the older designs' line.
pub(crate) fn announcement(handle: &str, at: i64, verb: &str, name: &str) -> String {
    format!(
        "{}<{}>: {verb} {}",
        shown(handle),
        local_time(at),
        shown(name)
    )
}

/// `1.5 MiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The store listing as a table.
pub(crate) fn listing_table(entries: &[FileEntry]) -> String {
    if entries.is_empty() {
        return "The hub's store is empty.".to_owned();
    }
    let width = entries
        .iter()
        .map(|e| shown(&e.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:>10}  {:<12}  {:<19}  {}\n",
        "NAME", "SIZE", "OWNER", "MODIFIED", "HASH"
    );
    for e in entries {
        out.push_str(&format!(
            "{:<width$}  {:>10}  {:<12}  {:<19}  {}\n",
            shown(&e.name),
            human_size(e.size),
            shown(&e.owner),
            local_time(e.modified),
            e.hash.short()
        ));
    }
    out.push_str(&format!(
        "{} files, {}",
        entries.len(),
        human_size(entries.iter().map(|e| e.size).sum())
    ));
    out
}

/// An entry as JSON: the same shape as the HTTP API's.
pub(crate) use ferry_hub::http::entry_json;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_made_visible() {
        assert_eq!(shown("plain.txt"), "plain.txt");
        assert_eq!(shown("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(shown("tips\u{200B}.sh"), "tips\\u{200b}.sh");
    }

    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
    }
}
