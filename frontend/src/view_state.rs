//! What a page shows, kept in its URL so a view can be shared and survives a reload.

use chrono::{DateTime, Duration, Utc};

use crate::api::{EventType, Interval};

/// A closed set of values offered in a `<select>` and written into URLs.
pub trait Choice: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    /// Its spelling in a URL.
    fn url_value(self) -> &'static str;
    /// Its name on screen.
    fn label(self) -> &'static str;

    fn from_url_value(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.url_value() == value)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Range {
    Day,
    #[default]
    Week,
    Month,
    Quarter,
}

impl Range {
    fn duration(self) -> Duration {
        match self {
            Range::Day => Duration::hours(24),
            Range::Week => Duration::days(7),
            Range::Month => Duration::days(30),
            Range::Quarter => Duration::days(90),
        }
    }

    /// A day is read per hour; longer ranges per day.
    pub fn interval(self) -> Interval {
        match self {
            Range::Day => Interval::Hour,
            _ => Interval::Day,
        }
    }

    /// The start of the range ending `now`.
    pub fn since(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.duration()
    }
}

impl Choice for Range {
    const ALL: &'static [Self] = &[Range::Day, Range::Week, Range::Month, Range::Quarter];
    fn url_value(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
            Range::Quarter => "90d",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Range::Day => "Last 24 hours",
            Range::Week => "Last 7 days",
            Range::Month => "Last 30 days",
            Range::Quarter => "Last 90 days",
        }
    }
}

/// The event-type filter; `None` is every type.
impl Choice for Option<EventType> {
    const ALL: &'static [Self] = &[
        None,
        Some(EventType::Crash),
        Some(EventType::UpdateFailed),
        Some(EventType::InstallFailed),
    ];
    fn url_value(self) -> &'static str {
        match self {
            None => "all",
            Some(EventType::Crash) => "crash",
            Some(EventType::UpdateFailed) => "update_failed",
            Some(EventType::InstallFailed) => "install_failed",
        }
    }
    fn label(self) -> &'static str {
        match self {
            None => "All events",
            Some(EventType::Crash) => "Crashes",
            Some(EventType::UpdateFailed) => "Failed updates",
            Some(EventType::InstallFailed) => "Failed installs",
        }
    }
}

/// The event type of a group; `None` when the server stored one this app does not know.
pub fn event_name(event: Option<EventType>) -> &'static str {
    event.map_or("other", |event| Some(event).label())
}

/// What each matrix cell is split by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Breakdown {
    #[default]
    None,
    Platform,
    Arch,
}

impl Choice for Breakdown {
    const ALL: &'static [Self] = &[Breakdown::None, Breakdown::Platform, Breakdown::Arch];
    fn url_value(self) -> &'static str {
        match self {
            Breakdown::None => "none",
            Breakdown::Platform => "platform",
            Breakdown::Arch => "arch",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Breakdown::None => "No breakdown",
            Breakdown::Platform => "By platform",
            Breakdown::Arch => "By architecture",
        }
    }
}

/// The rollout-health page's filters: `?range=24h&event=crash&by=platform`. Defaults are left
/// out of the URL; unknown values fall back to the default rather than failing the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthView {
    pub range: Range,
    /// `None`: every event type.
    pub event: Option<EventType>,
    pub breakdown: Breakdown,
}

const RANGE: &str = "range";
const EVENT: &str = "event";
const BREAKDOWN: &str = "by";

impl HealthView {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        HealthView {
            range: choice(&get, RANGE),
            event: choice(&get, EVENT),
            breakdown: choice(&get, BREAKDOWN),
        }
    }

    /// `?…` with what differs from the defaults, or "" when nothing does.
    pub fn query_string(&self) -> String {
        let defaults = HealthView::default();
        let mut pairs = Vec::new();
        if self.range != defaults.range {
            pairs.push((RANGE, self.range.url_value()));
        }
        if self.event.is_some() {
            pairs.push((EVENT, self.event.url_value()));
        }
        if self.breakdown != defaults.breakdown {
            pairs.push((BREAKDOWN, self.breakdown.url_value()));
        }
        query_string(pairs)
    }
}

/// A release of an app, as the gate page's URL names it: `?version=1.4.2&channel=stable`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub channel: String,
}

impl Release {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Release {
            version: get(DIMENSION_KEYS[0]).unwrap_or_default(),
            channel: get(DIMENSION_KEYS[1]).unwrap_or_default(),
        }
    }

    pub fn query_string(&self) -> String {
        query_string([
            (DIMENSION_KEYS[0], self.version.as_str()),
            (DIMENSION_KEYS[1], self.channel.as_str()),
        ])
    }
}

/// The release dimensions of a report group, carried in the group page's URL (the API finds
/// groups by these, not by hash).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDimensions {
    pub version: String,
    pub channel: String,
    pub platform: String,
    pub arch: String,
    pub event: Option<EventType>,
}

const DIMENSION_KEYS: [&str; 4] = ["version", "channel", "platform", "arch"];

impl GroupDimensions {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        let [version, channel, platform, arch] =
            DIMENSION_KEYS.map(|key| get(key).unwrap_or_default());
        GroupDimensions {
            version,
            channel,
            platform,
            arch,
            event: choice(&get, EVENT),
        }
    }

    pub fn query_string(&self) -> String {
        let values = [&self.version, &self.channel, &self.platform, &self.arch];
        let mut pairs: Vec<(&str, &str)> = DIMENSION_KEYS
            .into_iter()
            .zip(values.map(String::as_str))
            .collect();
        if self.event.is_some() {
            pairs.push((EVENT, self.event.url_value()));
        }
        query_string(pairs)
    }
}

/// The choice under `key`, or the default when it is missing or unknown.
fn choice<C: Choice + Default>(get: &impl Fn(&str) -> Option<String>, key: &str) -> C {
    get(key)
        .as_deref()
        .and_then(C::from_url_value)
        .unwrap_or_default()
}

fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if encoded.is_empty() {
        encoded
    } else {
        format!("?{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_query(query: &str) -> HashMap<String, String> {
        form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn the_default_view_has_an_empty_query() {
        assert_eq!(HealthView::default().query_string(), "");
        assert_eq!(HealthView::from_query(|_| None), HealthView::default());
    }

    #[test]
    fn a_view_survives_its_url() {
        let view = HealthView {
            range: Range::Day,
            event: Some(EventType::UpdateFailed),
            breakdown: Breakdown::Arch,
        };
        let query = view.query_string();
        assert_eq!(query, "?range=24h&event=update_failed&by=arch");
        let parsed = parse_query(&query);
        assert_eq!(HealthView::from_query(|k| parsed.get(k).cloned()), view);
    }

    #[test]
    fn unknown_values_fall_back_to_the_defaults() {
        let parsed = parse_query("?range=forever&event=explosion&by=colour");
        assert_eq!(
            HealthView::from_query(|k| parsed.get(k).cloned()),
            HealthView::default()
        );
    }

    #[test]
    fn ranges_pick_their_interval_and_start() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("time")
            .to_utc();
        assert_eq!(Range::Day.interval(), Interval::Hour);
        assert_eq!(Range::Month.interval(), Interval::Day);
        assert_eq!(
            Range::Day.since(now).to_rfc3339(),
            "2026-11-21T12:00:00+00:00"
        );
        assert_eq!(
            Range::Week.since(now).to_rfc3339(),
            "2026-11-15T12:00:00+00:00"
        );
    }

    #[test]
    fn a_release_survives_its_url() {
        let release = Release {
            version: "2.0.0-rc.1".to_owned(),
            channel: "beta".to_owned(),
        };
        assert_eq!(release.query_string(), "?version=2.0.0-rc.1&channel=beta");
        let parsed = parse_query(&release.query_string());
        assert_eq!(Release::from_query(|k| parsed.get(k).cloned()), release);
    }

    #[test]
    fn group_dimensions_are_escaped_and_restored() {
        let group = GroupDimensions {
            version: "2.0.0-beta+1".to_owned(),
            channel: "early access".to_owned(),
            platform: "windows".to_owned(),
            arch: "x86_64".to_owned(),
            event: Some(EventType::Crash),
        };
        let query = group.query_string();
        assert!(query.contains("version=2.0.0-beta%2B1"), "{query}");
        assert!(query.contains("channel=early+access"), "{query}");
        let parsed = parse_query(&query);
        assert_eq!(
            GroupDimensions::from_query(|k| parsed.get(k).cloned()),
            group
        );
    }
}
