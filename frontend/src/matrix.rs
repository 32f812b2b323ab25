//! The rollout matrix: `rolloutHealth` cells pivoted into versions (newest first) × channels,
//! each with its platform or architecture breakdown, and the rate the view is about.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::api::EventType;
use crate::api::rollout_page::RolloutPageRolloutHealth as HealthCell;
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

/// Counts of one cell or one line of its breakdown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub reports: i64,
    pub failures: i64,
    /// The metric's denominator: sessions or attempts.
    pub usage: i64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.reports += other.reports;
        self.failures += other.failures;
        self.usage += other.usage;
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
    pub fn build(cells: &[HealthCell], breakdown: Breakdown, metric: Metric) -> Matrix {
        let mut pivot: BTreeMap<(String, String), MatrixCell> = BTreeMap::new();
        for cell in cells {
            let version = cell.version.clone().unwrap_or_default();
            let channel = cell.channel.clone().unwrap_or_default();
            let (failures, usage) = metric.counts(cell);
            let tally = Tally {
                reports: cell.reports,
                failures,
                usage,
            };
            let entry = pivot.entry((version, channel)).or_default();
            entry.total.add(&tally);
            let part = match breakdown {
                Breakdown::None => None,
                Breakdown::Platform => cell.platform.clone(),
                Breakdown::Arch => cell.arch.clone(),
            };
            if let Some(part) = part {
                entry.parts.push((part, tally));
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

    pub fn tier(&self, tally: &Tally, limits: &Limits) -> Tier {
        Tier::of(tally.rate(), self.metric.limit(limits))
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

    fn cell(
        version: &str,
        channel: &str,
        platform: &str,
        crashes: i64,
        sessions: i64,
    ) -> HealthCell {
        HealthCell {
            version: Some(version.to_owned()),
            channel: Some(channel.to_owned()),
            platform: Some(platform.to_owned()),
            arch: None,
            reports: crashes + 1,
            crashes,
            update_failures: 1,
            install_failures: 0,
            sessions,
            updates_succeeded: 9,
            installs_succeeded: 0,
            crash_rate: None,
            update_failure_rate: None,
            install_failure_rate: None,
        }
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
            cell("1.0.0", "beta", "linux", 1, 100),
            cell("1.0.0", "stable", "windows", 3, 100),
            cell("1.0.0", "stable", "macos", 1, 300),
            cell("1.1.0", "stable", "windows", 0, 0),
        ];
        let matrix = Matrix::build(&cells, Breakdown::Platform, Metric::Crash);
        assert_eq!(matrix.versions, ["1.1.0", "1.0.0"]);
        assert_eq!(matrix.channels, ["stable", "beta"]);
        let stable = matrix.cell("1.0.0", "stable").expect("cell");
        assert_eq!(
            stable.total,
            Tally {
                reports: 6,
                failures: 4,
                usage: 400
            }
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
        let cells = [cell("1.0.0", "stable", "linux", 1, 100)];
        let metric = Metric::for_event(Some(EventType::UpdateFailed));
        let matrix = Matrix::build(&cells, Breakdown::None, metric);
        let total = &matrix.cell("1.0.0", "stable").expect("cell").total;
        assert_eq!((total.failures, total.usage), (1, 10));
        assert!(
            matrix
                .cell("1.0.0", "stable")
                .expect("cell")
                .parts
                .is_empty()
        );
        assert_eq!(matrix.tier(total, &Limits::DEFAULT_POLICY), Tier::Bad);
        assert_eq!(Metric::for_event(None), Metric::Crash);
    }
}
