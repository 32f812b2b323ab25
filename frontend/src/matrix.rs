//! The rollout matrix: `rolloutHealth` cells pivoted into versions (newest first) × channels,
//! each with its platform or architecture breakdown, and the rate the view is about, coloured
//! by the gate's judgement of that rate (sent with each cell).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::api::rollout_page::HealthFields as HealthCell;
use crate::api::{EventType, GateMetric, GateMetricStatus};
use crate::health::{Limits, Tier};
use crate::view_state::Breakdown;

/// The rate a view judges: crashes per session, or failures per attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Crash,
    UpdateFailure,
    InstallFailure,
}

impl Metric {
    /// Crash rate unless the view is about failed updates or installs.
    pub fn for_event(event: Option<EventType>) -> Metric {
        match event {
            None | Some(EventType::Crash) => Metric::Crash,
            Some(EventType::UpdateFailed) => Metric::UpdateFailure,
            Some(EventType::InstallFailed) => Metric::InstallFailure,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::Crash => "crash rate",
            Metric::UpdateFailure => "update failure rate",
            Metric::InstallFailure => "install failure rate",
        }
    }

    /// What its denominator counts.
    pub fn usage_label(self) -> &'static str {
        match self {
            Metric::Crash => "sessions",
            Metric::UpdateFailure => "update attempts",
            Metric::InstallFailure => "install attempts",
        }
    }

    pub fn limit(self, limits: &Limits) -> Option<f64> {
        match self {
            Metric::Crash => limits.crash_rate,
            Metric::UpdateFailure => limits.update_failure_rate,
            Metric::InstallFailure => limits.install_failure_rate,
        }
    }

    fn gate_metric(self) -> GateMetric {
        match self {
            Metric::Crash => GateMetric::CrashRate,
            Metric::UpdateFailure => GateMetric::UpdateFailureRate,
            Metric::InstallFailure => GateMetric::InstallFailureRate,
        }
    }

    /// (failures, attempts) of a cell for this metric.
    fn counts(self, cell: &HealthCell) -> (i64, i64) {
        match self {
            Metric::Crash => (cell.crashes, cell.sessions),
            Metric::UpdateFailure => (
                cell.update_failures,
                cell.update_failures + cell.updates_succeeded,
            ),
            Metric::InstallFailure => (
                cell.install_failures,
                cell.install_failures + cell.installs_succeeded,
            ),
        }
    }
}

/// Counts of one cell or one line of its breakdown, with the gate's judgement of its rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub reports: i64,
    pub failures: i64,
    /// The metric's denominator: sessions or attempts.
    pub usage: i64,
    /// The gate's status for the rate; `None` when the server judged nothing.
    pub status: Option<GateMetricStatus>,
    /// Its time-uniform bounds at the policy's confidence.
    pub bounds: (Option<f64>, Option<f64>),
}

impl Tally {
    fn of(cell: &HealthCell, metric: Metric) -> Tally {
        let (failures, usage) = metric.counts(cell);
        let judged = cell
            .judged
            .iter()
            .find(|judged| judged.metric == metric.gate_metric());
        Tally {
            reports: cell.reports,
            failures,
            usage,
            status: judged.map(|judged| judged.status),
            bounds: judged.map_or((None, None), |judged| {
                (judged.current.lower, judged.current.upper)
            }),
        }
    }

    pub fn tier(&self) -> Tier {
        self.status.map_or(Tier::Unknown, Tier::of_status)
    }

    pub fn rate(&self) -> Option<f64> {
        (self.usage > 0).then(|| self.failures as f64 / self.usage as f64)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatrixCell {
    pub total: Tally,
    /// Per platform or architecture, most reports first; empty without a breakdown.
    pub parts: Vec<(String, Tally)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub metric: Metric,
    pub versions: Vec<String>,
    pub channels: Vec<String>,
    cells: BTreeMap<(String, String), MatrixCell>,
}

impl Matrix {
    /// `totals` by version and channel; `parts` by those and the breakdown's dimension.
    pub fn build(
        totals: &[HealthCell],
        parts: &[HealthCell],
        breakdown: Breakdown,
        metric: Metric,
    ) -> Matrix {
        let key = |cell: &HealthCell| {
            (
                cell.version.clone().unwrap_or_default(),
                cell.channel.clone().unwrap_or_default(),
            )
        };
        let mut pivot: BTreeMap<(String, String), MatrixCell> = totals
            .iter()
            .map(|cell| {
                let total = Tally::of(cell, metric);
                (
                    key(cell),
                    MatrixCell {
                        total,
                        parts: Vec::new(),
                    },
                )
            })
            .collect();
        for cell in parts {
            let part = match breakdown {
                Breakdown::None => None,
                Breakdown::Platform => cell.platform.clone(),
                Breakdown::Arch => cell.arch.clone(),
            };
            if let (Some(part), Some(entry)) = (part, pivot.get_mut(&key(cell))) {
                entry.parts.push((part, Tally::of(cell, metric)));
            }
        }
        for cell in pivot.values_mut() {
            cell.parts
                .sort_by(|(a, x), (b, y)| y.reports.cmp(&x.reports).then_with(|| a.cmp(b)));
        }
        let mut versions: Vec<String> = pivot.keys().map(|(v, _)| v.clone()).collect();
        versions.sort_by(|a, b| compare_versions(b, a));
        versions.dedup();
        let mut channels: Vec<String> = pivot.keys().map(|(_, c)| c.clone()).collect();
        channels.sort_by(|a, b| channel_rank(a).cmp(&channel_rank(b)).then_with(|| a.cmp(b)));
        channels.dedup();
        Matrix {
            metric,
            versions,
            channels,
            cells: pivot,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn cell(&self, version: &str, channel: &str) -> Option<&MatrixCell> {
        self.cells.get(&(version.to_owned(), channel.to_owned()))
    }
}

/// Well-known channels first, from the most to the least stable; others after, by name.
fn channel_rank(channel: &str) -> usize {
    const KNOWN: [&str; 5] = ["stable", "beta", "alpha", "nightly", "dev"];
    KNOWN
        .iter()
        .position(|known| known.eq_ignore_ascii_case(channel))
        .unwrap_or(KNOWN.len())
}

/// Orders versions as people read them: numbers by value (1.10 after 1.9), and a release after
/// its pre-releases (2.0.0 after 2.0.0-beta.2).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a_core, a_pre) = a.split_once('-').map_or((a, None), |(c, p)| (c, Some(p)));
    let (b_core, b_pre) = b.split_once('-').map_or((b, None), |(c, p)| (c, Some(p)));
    compare_natural(a_core, b_core).then_with(|| match (a_pre, b_pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => compare_natural(a, b),
    })
}

/// Compares runs of digits by value and everything else as text.
fn compare_natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (chunks(a), chunks(b));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// "1.10rc2" → "1", "10", "rc", "2": digit runs and letter runs; separators dropped.
fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let first = rest.chars().next()?;
        let end = rest
            .find(|c: char| {
                !c.is_ascii_alphanumeric() || c.is_ascii_digit() != first.is_ascii_digit()
            })
            .unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GateVerdict;
    use crate::api::rollout_page::{HealthFieldsJudged, HealthFieldsJudgedCurrent};

    fn cell(
        version: &str,
        channel: Option<&str>,
        platform: Option<&str>,
        crashes: i64,
        sessions: i64,
    ) -> HealthCell {
        HealthCell {
            version: Some(version.to_owned()),
            channel: channel.map(str::to_owned),
            platform: platform.map(str::to_owned),
            arch: None,
            reports: crashes + 1,
            crashes,
            update_failures: 1,
            install_failures: 0,
            sessions,
            updates_succeeded: 9,
            installs_succeeded: 0,
            verdict: GateVerdict::InsufficientData,
            judged: vec![HealthFieldsJudged {
                metric: GateMetric::UpdateFailureRate,
                status: GateMetricStatus::InsufficientData,
                current: HealthFieldsJudgedCurrent {
                    lower: Some(0.01),
                    upper: Some(0.4),
                },
            }],
        }
    }

    /// The totals of `parts`, as the server sums them by version and channel.
    fn totals(parts: &[HealthCell]) -> Vec<HealthCell> {
        let mut totals: Vec<HealthCell> = Vec::new();
        for part in parts {
            match totals
                .iter_mut()
                .find(|t| t.version == part.version && t.channel == part.channel)
            {
                Some(total) => {
                    total.reports += part.reports;
                    total.crashes += part.crashes;
                    total.sessions += part.sessions;
                }
                None => totals.push(HealthCell {
                    platform: None,
                    ..part.clone()
                }),
            }
        }
        totals
    }

    #[test]
    fn versions_read_newest_first_by_value() {
        let mut versions = vec![
            "1.9.0",
            "1.10.0",
            "2.0.0-beta.2",
            "2.0.0",
            "2.0.0-beta.10",
            "1.9",
        ];
        versions.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(
            versions,
            [
                "2.0.0",
                "2.0.0-beta.10",
                "2.0.0-beta.2",
                "1.10.0",
                "1.9.0",
                "1.9"
            ]
        );
    }

    #[test]
    fn cells_are_pivoted_and_summed_over_the_breakdown() {
        let cells = [
            cell("1.0.0", Some("beta"), Some("linux"), 1, 100),
            cell("1.0.0", Some("stable"), Some("windows"), 3, 100),
            cell("1.0.0", Some("stable"), Some("macos"), 1, 300),
            cell("1.1.0", Some("stable"), Some("windows"), 0, 0),
        ];
        let matrix = Matrix::build(&totals(&cells), &cells, Breakdown::Platform, Metric::Crash);
        assert_eq!(matrix.versions, ["1.1.0", "1.0.0"]);
        assert_eq!(matrix.channels, ["stable", "beta"]);
        let stable = matrix.cell("1.0.0", "stable").expect("cell");
        assert_eq!(
            (
                stable.total.reports,
                stable.total.failures,
                stable.total.usage
            ),
            (6, 4, 400)
        );
        assert_eq!(stable.total.rate(), Some(0.01));
        let parts: Vec<&str> = stable.parts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(parts, ["windows", "macos"]);
        assert_eq!(
            matrix.cell("1.1.0", "stable").expect("cell").total.rate(),
            None
        );
        assert!(matrix.cell("1.1.0", "beta").is_none());
    }

    #[test]
    fn the_metric_follows_the_event_filter_and_counts_attempts() {
        let cells = [cell("1.0.0", Some("stable"), None, 1, 100)];
        let metric = Metric::for_event(Some(EventType::UpdateFailed));
        let matrix = Matrix::build(&cells, &cells, Breakdown::None, metric);
        let total = &matrix.cell("1.0.0", "stable").expect("cell").total;
        assert_eq!((total.failures, total.usage), (1, 10));
        assert!(
            matrix
                .cell("1.0.0", "stable")
                .expect("cell")
                .parts
                .is_empty()
        );
        // Coloured by the gate's status, sent by the server, not by the 10 % point estimate.
        assert_eq!(total.tier(), Tier::Warn);
        assert_eq!(total.bounds, (Some(0.01), Some(0.4)));
        assert_eq!(Metric::for_event(None), Metric::Crash);
        // No judgement of the crash rate was sent: nothing to colour by.
        let crashes = Matrix::build(&cells, &cells, Breakdown::None, Metric::Crash);
        assert_eq!(
            crashes.cell("1.0.0", "stable").expect("cell").total.tier(),
            Tier::Unknown
        );
    }
}
