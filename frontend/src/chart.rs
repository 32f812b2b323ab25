//! The reports-over-time chart: SVG bars drawn by the app, one per hour or day of the range.

use chrono::{DateTime, Utc};
use leptos::prelude::*;

use crate::api::Interval;
use crate::format;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 140.0;
/// A sliver between bars so neighbours stay apart at 90 bars.
const GAP: f64 = 0.15;

impl Interval {
    pub fn seconds(self) -> i64 {
        match self {
            Interval::Hour => 3600,
            Interval::Day => 24 * 3600,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub count: i64,
    /// The bucket's start, RFC 3339.
    pub at: String,
}

/// Bars for the buckets from `start` to `end` (every bucket, empty ones at zero height), scaled
/// to the largest. Points outside the range are left out.
pub fn bars(
    points: &[(String, i64)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: Interval,
) -> Vec<Bar> {
    let step = interval.seconds();
    let first = start.timestamp().div_euclid(step) * step;
    let buckets = ((end.timestamp() - first).div_euclid(step) + 1).max(1) as usize;
    let mut counts = vec![0_i64; buckets];
    for (at, count) in points {
        let Ok(at) = DateTime::parse_from_rfc3339(at) else {
            continue;
        };
        let index = (at.timestamp() - first).div_euclid(step);
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| counts.get_mut(i)) {
            *slot += count;
        }
    }
    let highest = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = WIDTH / buckets as f64;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let height = HEIGHT * count as f64 / highest;
            let at = DateTime::from_timestamp(first + i as i64 * step, 0).unwrap_or_default();
            Bar {
                x: i as f64 * width + width * GAP / 2.0,
                y: HEIGHT - height,
                width: width * (1.0 - GAP),
                height,
                count,
                at: at.to_rfc3339(),
            }
        })
        .collect()
}

/// The chart, with its numbers in words for screen readers and in each bar's tooltip.
#[component]
pub fn ReportsChart(bars: Vec<Bar>, interval: Interval) -> impl IntoView {
    let total: i64 = bars.iter().map(|bar| bar.count).sum();
    let highest = bars.iter().map(|bar| bar.count).max().unwrap_or(0);
    let first = bars
        .first()
        .map(|bar| format::time(&bar.at))
        .unwrap_or_default();
    let last = bars
        .last()
        .map(|bar| format::time(&bar.at))
        .unwrap_or_default();
    let description = format!(
        "Reports per {}: {} in total, at most {} in one {}",
        interval.noun(),
        format::count(total),
        format::count(highest),
        interval.noun()
    );
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    view! {
        <figure class="chart">
            <svg viewBox=view_box preserveAspectRatio="none" role="img" aria-label=description.clone()>
                {bars
                    .into_iter()
                    .map(|bar| {
                        let title = format!("{}: {} reports", format::time(&bar.at), format::count(bar.count));
                        view! {
                            <rect x=bar.x y=bar.y width=bar.width height=bar.height>
                                <title>{title}</title>
                            </rect>
                        }
                    })
                    .collect_view()}
            </svg>
            <figcaption>
                <span>{first}</span>
                <span>{description}</span>
                <span>{last}</span>
            </figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").to_utc()
    }

    #[test]
    fn every_bucket_gets_a_bar_scaled_to_the_highest() {
        let points = [
            ("2026-11-22T10:00:00+00:00".to_owned(), 4),
            ("2026-11-22T12:00:00+00:00".to_owned(), 2),
            ("2026-11-20T00:00:00+00:00".to_owned(), 99),
        ];
        let bars = bars(
            &points,
            at("2026-11-22T09:30:00Z"),
            at("2026-11-22T12:10:00Z"),
            Interval::Hour,
        );
        let counts: Vec<i64> = bars.iter().map(|bar| bar.count).collect();
        assert_eq!(counts, [0, 4, 0, 2]);
        assert_eq!(bars[0].at, "2026-11-22T09:00:00+00:00");
        assert_eq!(bars[1].height, HEIGHT);
        assert_eq!(bars[3].height, HEIGHT / 2.0);
        assert_eq!(bars[3].y, HEIGHT / 2.0);
        assert!(bars[3].x + bars[3].width <= WIDTH);
    }

    #[test]
    fn an_empty_series_draws_flat_bars() {
        let bars = bars(
            &[],
            at("2026-11-15T12:00:00Z"),
            at("2026-11-22T12:00:00Z"),
            Interval::Day,
        );
        assert_eq!(bars.len(), 8);
        assert!(bars.iter().all(|bar| bar.height == 0.0));
    }
}
