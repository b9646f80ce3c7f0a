//! `Range: bytes=…` (RFC 9110 §14): which spans of a file a GET sends.
//! A header that does not parse is ignored (the whole file is sent), as
//! the RFC asks; spans are sorted and merged, and a request for more than
//! [`MAX_SPANS`] separate spans gets the whole file instead of a part per
//! tiny span.

/// Most separate spans one response sends as parts.
pub(crate) const MAX_SPANS: usize = 16;

/// A span of a file: `len` bytes from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Span {
    fn end(self) -> u64 {
        self.start + self.len
    }
}

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The whole file (no header, or one to ignore).
    Whole,
    /// These spans, sorted, apart from each other.
    Spans(Vec<Span>),
    /// No span lies inside the file: 416.
    Unsatisfiable,
}

/// What `header` asks of a file of `size` bytes.
pub(crate) fn wanted(header: Option<&str>, size: u64) -> Wanted {
    let Some(specs) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    let mut spans = Vec::new();
    for spec in specs.split(',') {
        match span(spec.trim(), size) {
            Parsed::Span(span) => spans.push(span),
            Parsed::Outside => {}
            Parsed::Invalid => return Wanted::Whole,
        }
        if spans.len() > 4 * MAX_SPANS {
            return Wanted::Whole;
        }
    }
    if spans.is_empty() {
        return Wanted::Unsatisfiable;
    }
    let spans = merged(spans);
    if spans.len() > MAX_SPANS
        || spans
            == [Span {
                start: 0,
                len: size,
            }]
    {
        return Wanted::Whole;
    }
    Wanted::Spans(spans)
}

enum Parsed {
    Span(Span),
    Outside,
    Invalid,
}

fn span(spec: &str, size: u64) -> Parsed {
    let Some((first, last)) = spec.split_once('-') else {
        return Parsed::Invalid;
    };
    let number = |text: &str| {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    match (first, last) {
        ("", suffix) => match number(suffix) {
            None => Parsed::Invalid,
            Some(0) => Parsed::Outside,
            Some(_) if size == 0 => Parsed::Outside,
            Some(n) => {
                let len = n.min(size);
                Parsed::Span(Span {
                    start: size - len,
                    len,
                })
            }
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return Parsed::Invalid;
            };
            let end = match last {
                "" => u64::MAX,
                last => match number(last) {
                    Some(end) if end >= start => end,
                    _ => return Parsed::Invalid,
                },
            };
            if start >= size {
                return Parsed::Outside;
            }
            let end = end.min(size - 1);
            Parsed::Span(Span {
                start,
                len: end - start + 1,
            })
        }
    }
}

/// Sorted, with overlapping and touching spans made one.
fn merged(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| s.start);
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end() => {
                last.len = last.len.max(span.end() - last.start);
            }
            _ => out.push(span),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(list: &[(u64, u64)]) -> Wanted {
        Wanted::Spans(
            list.iter()
                .map(|&(start, len)| Span { start, len })
                .collect(),
        )
    }

    #[test]
    fn the_forms_of_rfc_9110_read_as_spans() {
        assert_eq!(wanted(Some("bytes=0-99"), 1000), spans(&[(0, 100)]));
        assert_eq!(wanted(Some("bytes=900-"), 1000), spans(&[(900, 100)]));
        assert_eq!(wanted(Some("bytes=-100"), 1000), spans(&[(900, 100)]));
        assert_eq!(wanted(Some("bytes=990-5000"), 1000), spans(&[(990, 10)]));
        assert_eq!(
            wanted(Some("bytes=500-599, 0-9"), 1000),
            spans(&[(0, 10), (500, 100)])
        );
        assert_eq!(
            wanted(Some("bytes=0-9,5-19,20-29"), 1000),
            spans(&[(0, 30)])
        );
    }

    #[test]
    fn spans_outside_the_file_are_unsatisfiable_and_nonsense_is_ignored() {
        assert_eq!(wanted(Some("bytes=1000-"), 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-0"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=1000-,5-9"), 1000), spans(&[(5, 5)]));
        for ignored in [
            "items=0-1",
            "bytes=9-1",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=0-",
        ] {
            assert_eq!(wanted(Some(ignored), 1000), Wanted::Whole, "{ignored}");
        }
        assert_eq!(wanted(None, 1000), Wanted::Whole);
        let many: Vec<String> = (0..40).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
        let many = format!("bytes={}", many.join(","));
        assert_eq!(wanted(Some(&many), 1000), Wanted::Whole);
    }
}
