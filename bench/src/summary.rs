//! Turns the runs `run.sh` measured into the results table: medians over rounds, each mode judged
//! against `bare` of the same round.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One measured run of one mode, a line of the runs file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub(crate) round: u32,
    pub(crate) mode: String,
    /// Requests completed in the measured part.
    pub(crate) requests: u64,
    /// Requests completed in the warm-up.
    pub(crate) warmup_requests: u64,
    pub(crate) duration_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// The server's CPU in user space over the measured part, in clock ticks.
    pub(crate) user_ticks: u64,
    /// The server's CPU in the kernel over the measured part, in clock ticks: its system calls,
    /// and on loopback also the receiving side of what it sends (the OTLP sink's share of TCP).
    pub(crate) sys_ticks: u64,
    pub(crate) clock_ticks_per_s: u64,
    pub(crate) peak_rss_kib: u64,
    /// Spans the sink received over the server's whole life (warm-up included).
    pub(crate) spans: u64,
    /// `trace_exporter_spans_dropped_total` at the end, when the server exposes it.
    pub(crate) dropped: Option<u64>,
    /// Socket errors and non-2xx responses seen by the load generator.
    pub(crate) errors: u64,
}

impl Run {
    fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.duration_s
    }

    /// The share of one core the server used: below ~95% it was not the bottleneck (the load
    /// generator or other work on the machine was), and the throughput ratios mean little.
    fn busy(&self) -> f64 {
        self.cpu_ticks() as f64 / self.clock_ticks_per_s as f64 / self.duration_s
    }

    fn cpu_ticks(&self) -> u64 {
        self.user_ticks + self.sys_ticks
    }

    fn us_per_request(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e6 / self.clock_ticks_per_s as f64 / self.requests.max(1) as f64
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.us_per_request(self.cpu_ticks())
    }

    fn user_us_per_request(&self) -> f64 {
        self.us_per_request(self.user_ticks)
    }

    fn sys_us_per_request(&self) -> f64 {
        self.us_per_request(self.sys_ticks)
    }
}

/// The columns of the runs file, in order (its first line).
pub(crate) const COLUMNS: [&str; 14] = [
    "round",
    "mode",
    "requests",
    "warmup_requests",
    "duration_s",
    "p50_us",
    "p99_us",
    "user_ticks",
    "sys_ticks",
    "clk_tck",
    "peak_rss_kib",
    "spans",
    "dropped",
    "errors",
];

/// A line of the runs file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("runs file line {line}: {reason}")]
pub(crate) struct ParseError {
    line: usize,
    reason: String,
}

/// Parses the tab-separated runs file (header line first, as [`COLUMNS`]).
pub(crate) fn parse_runs(text: &str) -> Result<Vec<Run>, ParseError> {
    let mut runs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() || line.starts_with("round\t") {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let err = |reason: String| ParseError {
            line: line_no,
            reason,
        };
        if fields.len() != COLUMNS.len() {
            return Err(err(format!(
                "{} fields, expected {}",
                fields.len(),
                COLUMNS.len()
            )));
        }
        let int = |i: usize| {
            fields[i]
                .trim()
                .parse::<u64>()
                .map_err(|e| err(format!("{}: {e} in {:?}", COLUMNS[i], fields[i])))
        };
        let float = |i: usize| {
            fields[i]
                .trim()
                .parse::<f64>()
                .map_err(|e| err(format!("{}: {e} in {:?}", COLUMNS[i], fields[i])))
        };
        runs.push(Run {
            round: u32::try_from(int(0)?).map_err(|e| err(e.to_string()))?,
            mode: fields[1].trim().to_owned(),
            requests: int(2)?,
            warmup_requests: int(3)?,
            duration_s: float(4)?,
            p50_us: float(5)?,
            p99_us: float(6)?,
            user_ticks: int(7)?,
            sys_ticks: int(8)?,
            clock_ticks_per_s: int(9)?.max(1),
            peak_rss_kib: int(10)?,
            spans: int(11)?,
            dropped: match fields[12].trim() {
                "" | "-" => None,
                _ => Some(int(12)?),
            },
            errors: int(13)?,
        });
    }
    Ok(runs)
}

/// The median; the mean of the middle two for an even count. `None` when empty.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// One mode's figures over all rounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModeSummary {
    pub(crate) mode: String,
    pub(crate) rounds: usize,
    pub(crate) requests_per_s: f64,
    /// Median over rounds of requests/s divided by `bare`'s in the same round.
    pub(crate) throughput_ratio: Option<f64>,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Median share of one core the server used in the measured runs.
    pub(crate) busy: f64,
    pub(crate) cpu_us_per_request: f64,
    /// Median over rounds of this mode's CPU per request minus `bare`'s in the same round.
    pub(crate) added_cpu_us: Option<f64>,
    /// The same differences, round by round.
    pub(crate) added_cpu_us_per_round: Vec<f64>,
    /// Median over rounds of the user-space part of the added CPU.
    pub(crate) added_user_us: Option<f64>,
    /// Median over rounds of the kernel part of the added CPU.
    pub(crate) added_sys_us: Option<f64>,
    pub(crate) peak_rss_kib: u64,
    /// Spans received by the sink per request sent (warm-ups included), over all rounds.
    pub(crate) spans_per_request: f64,
    /// Dropped spans reported by the server per request sent, over all rounds.
    pub(crate) dropped_per_request: Option<f64>,
    pub(crate) errors: u64,
}

/// The targets: at most this much added CPU per request and at least this share of
/// `bare`'s throughput.
fn target(mode: &str) -> Option<(f64, f64)> {
    match mode {
        "tracewire" => Some((0.8, 0.90)),
        "tracewire-unsampled" => Some((0.25, 0.96)),
        _ => None,
    }
}

/// Summarises `runs` per mode, in order of first appearance.
pub(crate) fn summarize(runs: &[Run]) -> Vec<ModeSummary> {
    let bare: BTreeMap<u32, &Run> = runs
        .iter()
        .filter(|run| run.mode == "bare")
        .map(|run| (run.round, run))
        .collect();
    let mut modes: Vec<&str> = Vec::new();
    for run in runs {
        if !modes.contains(&run.mode.as_str()) {
            modes.push(&run.mode);
        }
    }
    modes
        .into_iter()
        .map(|mode| {
            let of_mode: Vec<&Run> = runs.iter().filter(|run| run.mode == mode).collect();
            let against_bare: Vec<(&Run, &Run)> = of_mode
                .iter()
                .filter_map(|run| bare.get(&run.round).map(|b| (*run, *b)))
                .collect();
            let added_by = |f: fn(&Run) -> f64| -> Vec<f64> {
                against_bare.iter().map(|(run, b)| f(run) - f(b)).collect()
            };
            let added = added_by(Run::cpu_us_per_request);
            let ratios = against_bare
                .iter()
                .map(|(run, b)| run.requests_per_s() / b.requests_per_s())
                .collect();
            let sent: u64 = of_mode
                .iter()
                .map(|run| run.requests + run.warmup_requests)
                .sum();
            let dropped: Option<u64> = of_mode.iter().map(|run| run.dropped).sum();
            let each = |f: fn(&Run) -> f64| median(of_mode.iter().map(|run| f(run)).collect());
            ModeSummary {
                mode: mode.to_owned(),
                rounds: of_mode.len(),
                requests_per_s: each(Run::requests_per_s).unwrap_or(0.0),
                throughput_ratio: median(ratios),
                p50_us: each(|run| run.p50_us).unwrap_or(0.0),
                p99_us: each(|run| run.p99_us).unwrap_or(0.0),
                busy: each(Run::busy).unwrap_or(0.0),
                cpu_us_per_request: each(Run::cpu_us_per_request).unwrap_or(0.0),
                added_cpu_us: median(added.clone()),
                added_cpu_us_per_round: added,
                added_user_us: median(added_by(Run::user_us_per_request)),
                added_sys_us: median(added_by(Run::sys_us_per_request)),
                peak_rss_kib: of_mode
                    .iter()
                    .map(|run| run.peak_rss_kib)
                    .max()
                    .unwrap_or(0),
                spans_per_request: of_mode.iter().map(|run| run.spans).sum::<u64>() as f64
                    / sent.max(1) as f64,
                dropped_per_request: dropped.map(|d| d as f64 / sent.max(1) as f64),
                errors: of_mode.iter().map(|run| run.errors).sum(),
            }
        })
        .collect()
}

/// The results as a Markdown table, with a verdict for the modes the issue sets targets for.
pub(crate) fn markdown(summaries: &[ModeSummary]) -> String {
    let mut out = String::new();
    out.push_str(
        "| mode | rounds | req/s | × bare | p50 µs | p99 µs | server busy | CPU µs/req | added µs/req | added per round | added user | added kernel | peak RSS MiB | spans/req | dropped/req | errors | target |\n",
    );
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|\n");
    let opt = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
    };
    for s in summaries {
        let per_round: Vec<String> = s
            .added_cpu_us_per_round
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect();
        let verdict = match (target(&s.mode), s.added_cpu_us, s.throughput_ratio) {
            (Some((max_added, min_ratio)), Some(added), Some(ratio)) => format!(
                "≤ {max_added} µs, ≥ {min_ratio:.2}×: {}",
                if added <= max_added && ratio >= min_ratio {
                    "met"
                } else {
                    "missed"
                }
            ),
            (Some(_), _, _) => "no bare run to judge by".to_owned(),
            (None, _, _) => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0}% | {:.2} | {} | {} | {} | {} | {:.1} | {:.3} | {} | {} | {} |",
            s.mode,
            s.rounds,
            s.requests_per_s,
            opt(s.throughput_ratio, 3),
            s.p50_us,
            s.p99_us,
            s.busy * 100.0,
            s.cpu_us_per_request,
            opt(s.added_cpu_us, 2),
            per_round.join(", "),
            opt(s.added_user_us, 2),
            opt(s.added_sys_us, 2),
            s.peak_rss_kib as f64 / 1024.0,
            s.spans_per_request,
            opt(s.dropped_per_request, 3),
            s.errors,
            verdict,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose CPU is `cpu_ticks`, a fifth of it in the kernel.
    fn line(round: u32, mode: &str, requests: u64, cpu_ticks: u64, dropped: &str) -> String {
        let sys_ticks = cpu_ticks / 5;
        let user_ticks = cpu_ticks - sys_ticks;
        format!(
            "{round}\t{mode}\t{requests}\t1000\t10\t100\t400\t{user_ticks}\t{sys_ticks}\t100\t20480\t{requests}\t{dropped}\t0\n"
        )
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn added_cpu_is_judged_against_bare_of_the_same_round() {
        let mut text = COLUMNS.join("\t");
        text.push('\n');
        // Round 1: bare 1_000_000 requests in 10 s of CPU = 10 µs each; tracewire 900_000 in
        // 9.45 s = 10.5 µs each. Round 2 is slower for both, by the machine not the mode.
        text += &line(1, "bare", 1_000_000, 1000, "-");
        text += &line(1, "tracewire", 900_000, 945, "0");
        text += &line(2, "tracewire", 500_000, 1000, "10");
        text += &line(2, "bare", 500_000, 900, "-");
        text += &line(3, "bare", 1_000_000, 1000, "-");
        text += &line(3, "tracewire", 1_000_000, 1060, "0");
        let runs = parse_runs(&text).expect("valid runs");
        assert_eq!(runs.len(), 6);
        let summaries = summarize(&runs);
        assert_eq!(summaries[0].mode, "bare");
        assert_eq!(summaries[0].added_cpu_us, Some(0.0));
        let tracewire = &summaries[1];
        let per_round: Vec<String> = tracewire
            .added_cpu_us_per_round
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect();
        assert_eq!(per_round, ["0.50", "2.00", "0.60"]);
        assert_eq!(
            tracewire.added_cpu_us.map(|v| format!("{v:.2}")),
            Some("0.60".to_owned())
        );
        // Split as the runs are (four fifths in user space), each part judged on its own:
        // user +0.40, +1.60, +0.48 and kernel +0.10, +0.40, +0.12.
        let two = |v: Option<f64>| v.map(|v| format!("{v:.2}"));
        assert_eq!(two(tracewire.added_user_us), Some("0.48".to_owned()));
        assert_eq!(two(tracewire.added_sys_us), Some("0.12".to_owned()));
        // Throughput ratios 0.9, 1.0, 1.0.
        assert_eq!(tracewire.throughput_ratio, Some(1.0));
        assert_eq!(tracewire.dropped_per_request, Some(10.0 / 2_403_000.0));
        let table = markdown(&summaries);
        assert!(table.contains("| tracewire | 3 |"), "{table}");
        assert!(
            table.contains("| 0.60 | 0.50, 2.00, 0.60 | 0.48 | 0.12 |"),
            "{table}"
        );
        assert!(table.contains("≤ 0.8 µs, ≥ 0.90×: met"), "{table}");
    }

    #[test]
    fn a_short_line_is_an_error_not_a_panic() {
        let error = parse_runs("1\tbare\t5\n").expect_err("too few fields");
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
