//! The results table. `bench/run.sh` appends one tab-separated line per
//! measurement to a raw file:
//!
//! - `time  WORKLOAD  TOOL  SECONDS  AMOUNT  UNIT` — one timed run; UNIT is
//!   `bytes` or `files`, AMOUNT how many moved;
//! - `metric  SECTION  NAME  VALUE  UNIT` — a single reading (RSS, req/s…);
//! - `note  TEXT` — printed above the tables.
//!
//! Runs are grouped by workload; each tool gets its median, min and max, a
//! rate, and its median as a ratio to the best (lowest) median among the
//! tools that are not Ferry. Only ratios within one run are comparable.

use anyhow::{Context, bail};

use crate::stats::median;

/// One timed run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    workload: String,
    tool: String,
    seconds: f64,
    amount: f64,
    unit: String,
}

/// One single reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Metric {
    section: String,
    name: String,
    value: String,
    unit: String,
}

/// Everything in a raw file.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    notes: Vec<String>,
    runs: Vec<Run>,
    metrics: Vec<Metric>,
}

pub(crate) fn parse(text: &str) -> anyhow::Result<Raw> {
    let mut raw = Raw::default();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let context = || format!("line {}: {line:?}", number + 1);
        match fields.as_slice() {
            ["note", text] => raw.notes.push((*text).to_owned()),
            ["time", workload, tool, seconds, amount, unit] => raw.runs.push(Run {
                workload: (*workload).to_owned(),
                tool: (*tool).to_owned(),
                seconds: seconds.parse().with_context(context)?,
                amount: amount.parse().with_context(context)?,
                unit: (*unit).to_owned(),
            }),
            ["metric", section, name, value, unit] => raw.metrics.push(Metric {
                section: (*section).to_owned(),
                name: (*name).to_owned(),
                value: (*value).to_owned(),
                unit: (*unit).to_owned(),
            }),
            _ => bail!("unrecognised {}", context()),
        }
    }
    Ok(raw)
}

/// Whether `tool` is one of ours (not a peer to compare against).
fn is_ferry(tool: &str) -> bool {
    tool.starts_with("ferry")
}

/// Distinct values in order of first appearance.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

/// Summary of one tool in one workload.
struct Row<'a> {
    tool: &'a str,
    median: f64,
    min: f64,
    max: f64,
    rounds: usize,
    rate: String,
}

fn rows<'a>(runs: &[&'a Run]) -> Vec<Row<'a>> {
    distinct(runs.iter().map(|r| r.tool.as_str()))
        .into_iter()
        .map(|tool| {
            let mine: Vec<&Run> = runs.iter().copied().filter(|r| r.tool == tool).collect();
            let seconds: Vec<f64> = mine.iter().map(|r| r.seconds).collect();
            let median = median(&seconds).unwrap_or(f64::NAN);
            let rate = match mine[0].unit.as_str() {
                "bytes" => format!("{:.0} MB/s", mine[0].amount / 1e6 / median),
                unit => format!("{:.0} {unit}/s", mine[0].amount / median),
            };
            Row {
                tool,
                median,
                min: seconds.iter().copied().fold(f64::INFINITY, f64::min),
                max: seconds.iter().copied().fold(0.0, f64::max),
                rounds: seconds.len(),
                rate,
            }
        })
        .collect()
}

pub(crate) fn render(raw: &Raw) -> String {
    let mut out = String::new();
    for note in &raw.notes {
        out.push_str(&format!("{note}\n"));
    }
    for workload in distinct(raw.runs.iter().map(|r| r.workload.as_str())) {
        let runs: Vec<&Run> = raw.runs.iter().filter(|r| r.workload == workload).collect();
        let rows = rows(&runs);
        let best_peer = rows
            .iter()
            .filter(|r| !is_ferry(r.tool))
            .map(|r| r.median)
            .fold(f64::INFINITY, f64::min);
        out.push_str(&format!("\n### {workload}\n\n"));
        out.push_str("| tool | median s | min s | max s | runs | rate | ÷ best peer |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for row in rows {
            let ratio = if best_peer.is_finite() {
                format!("{:.2}×", row.median / best_peer)
            } else {
                "–".to_owned()
            };
            let tool = if is_ferry(row.tool) {
                format!("**{}**", row.tool)
            } else {
                row.tool.to_owned()
            };
            out.push_str(&format!(
                "| {tool} | {:.3} | {:.3} | {:.3} | {} | {} | {ratio} |\n",
                row.median, row.min, row.max, row.rounds, row.rate
            ));
        }
    }
    for section in distinct(raw.metrics.iter().map(|m| m.section.as_str())) {
        out.push_str(&format!(
            "\n### {section}\n\n| measure | value | unit |\n|---|---:|---|\n"
        ));
        for metric in raw.metrics.iter().filter(|m| m.section == section) {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                metric.name, metric.value, metric.unit
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "note\tmachine: test\n\
        time\t1 GiB get\tferry\t2.0\t1000000000\tbytes\n\
        time\t1 GiB get\trsync\t1.0\t1000000000\tbytes\n\
        time\t1 GiB get\tnc\t4.0\t1000000000\tbytes\n\
        time\t1 GiB get\tferry\t4.0\t1000000000\tbytes\n\
        time\t1 GiB get\trsync\t3.0\t1000000000\tbytes\n\
        time\t1 GiB get\tnc\t4.0\t1000000000\tbytes\n\
        time\tsmall put\tferry\t2.0\t2000\tfiles\n\
        metric\thub RSS\tpeak during 1 GiB get\t12.5\tMiB\n";

    #[test]
    fn medians_rates_and_ratios_to_the_best_peer() {
        let table = render(&parse(RAW).unwrap());
        assert!(table.starts_with("machine: test\n"), "{table}");
        // ferry median 3.0, rsync (best peer) 2.0, nc 4.0.
        assert!(
            table.contains("| **ferry** | 3.000 | 2.000 | 4.000 | 2 | 333 MB/s | 1.50× |"),
            "{table}"
        );
        assert!(table.contains("| rsync | 2.000 | 1.000 | 3.000 | 2 | 500 MB/s | 1.00× |"));
        assert!(table.contains("| nc | 4.000 | 4.000 | 4.000 | 2 | 250 MB/s | 2.00× |"));
        // No peer ran the small-file workload: no ratio.
        assert!(table.contains("| **ferry** | 2.000 | 2.000 | 2.000 | 1 | 1000 files/s | – |"));
        assert!(table.contains("| peak during 1 GiB get | 12.5 | MiB |"));
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let err = parse("note\tok\ntime\tx\tferry\tfast\t1\tbytes\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(parse("bogus\n").is_err());
    }
}
