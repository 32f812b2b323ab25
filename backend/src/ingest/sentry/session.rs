//! Sentry release health as usage: each new session (`session` with `init: true`, or every
//! session an aggregate bucket counts) is one `session` of its release and environment. A
//! session carries no OS or arch; they come from the release's build metadata or a browser
//! SDK where they can, else stay `unknown` (docs/sentry.md).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::dimensions::{self, Said};
use crate::ingest::payload::MAX_USAGE_COUNT;
use crate::model::Release;

/// Sentry's own bound: an envelope holds at most 100 sessions, an aggregate 100 buckets.
pub const MAX_SESSIONS: usize = 100;

#[derive(Deserialize)]
struct Attrs {
    release: String,
    environment: Option<String>,
}

#[derive(Deserialize)]
pub struct SessionUpdate {
    #[serde(default)]
    init: bool,
    /// The SDK's device id: only ever a rate-limit key, like `X-Device-ID`; never stored.
    pub did: Option<String>,
    attrs: Attrs,
}

#[derive(Deserialize)]
pub struct SessionAggregates {
    aggregates: Vec<Bucket>,
    attrs: Attrs,
}

#[derive(Deserialize)]
struct Bucket {
    #[serde(default)]
    exited: u64,
    #[serde(default)]
    errored: u64,
    #[serde(default)]
    abnormal: u64,
    #[serde(default)]
    crashed: u64,
}

impl SessionAggregates {
    pub fn buckets(&self) -> usize {
        self.aggregates.len()
    }
}

/// New sessions per release, summed over the envelope's items.
#[derive(Default)]
pub struct Sessions {
    per_release: BTreeMap<Release, u64>,
    /// Items whose release is not a valid version: accepted, not counted.
    pub unplaced: usize,
}

impl Sessions {
    pub fn add_update(&mut self, update: &SessionUpdate, app_name: &str, browser: bool) {
        if update.init {
            self.add(&update.attrs, 1, app_name, browser);
        }
    }

    pub fn add_aggregates(&mut self, item: &SessionAggregates, app_name: &str, browser: bool) {
        let started = item.aggregates.iter().fold(0u64, |sum, b| {
            [b.exited, b.errored, b.abnormal, b.crashed]
                .into_iter()
                .fold(sum, u64::saturating_add)
        });
        // The bound of one `POST /reports/usage`: a key holder cannot inflate a release's
        // sessions (and so flatter its rates) faster through Sentry than through REST.
        if started > MAX_USAGE_COUNT as u64 {
            self.unplaced += 1;
        } else if started > 0 {
            self.add(&item.attrs, started, app_name, browser);
        }
    }

    fn add(&mut self, attrs: &Attrs, started: u64, app_name: &str, browser: bool) {
        let (Ok(release), Ok(channel)) = (
            dimensions::release(&attrs.release),
            dimensions::channel(attrs.environment.as_deref()),
        ) else {
            self.unplaced += 1;
            return;
        };
        let (platform, arch) = dimensions::platform_and_arch(Said {
            build: release.build,
            browser,
            ..Said::default()
        });
        let release = Release {
            app_name: app_name.to_owned(),
            version: release.version,
            channel,
            platform,
            arch,
        };
        *self.per_release.entry(release).or_default() += started;
    }

    pub fn into_counts(self) -> impl Iterator<Item = (Release, u64)> {
        self.per_release.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Arch, Platform};

    fn update(value: serde_json::Value) -> SessionUpdate {
        serde_json::from_value(value).expect("a session")
    }

    #[test]
    fn only_a_new_session_counts_and_updates_of_it_do_not() {
        let mut sessions = Sessions::default();
        let attrs = json!({"release": "editor@1.4.2", "environment": "beta"});
        sessions.add_update(
            &update(json!({"sid": "a", "init": true, "attrs": attrs})),
            "editor",
            false,
        );
        sessions.add_update(
            &update(json!({"sid": "a", "status": "exited", "attrs": attrs})),
            "editor",
            false,
        );
        let counts: Vec<_> = sessions.into_counts().collect();
        assert_eq!(counts.len(), 1);
        let (release, started) = &counts[0];
        assert_eq!(*started, 1);
        assert_eq!(
            (release.version.as_str(), release.channel.as_str()),
            ("1.4.2", "beta")
        );
        assert_eq!(
            (release.platform, release.arch),
            (Platform::Unknown, Arch::Unknown)
        );
    }

    #[test]
    fn aggregates_count_every_session_of_every_bucket() {
        let item: SessionAggregates = serde_json::from_value(json!({
            "aggregates": [
                {"started": "2026-12-02T10:00:00Z", "exited": 5, "errored": 2},
                {"started": "2026-12-02T10:01:00Z", "crashed": 1, "abnormal": 1}
            ],
            "attrs": {"release": "2.0.0+linux.x86_64"}
        }))
        .expect("aggregates");
        let mut sessions = Sessions::default();
        sessions.add_aggregates(&item, "editor", false);
        let counts: Vec<_> = sessions.into_counts().collect();
        let (release, started) = &counts[0];
        assert_eq!(*started, 9);
        assert_eq!(release.channel, "production");
        assert_eq!(
            (release.platform, release.arch),
            (Platform::Linux, Arch::X86_64)
        );
    }

    #[test]
    fn a_session_of_no_valid_release_is_not_placed() {
        let mut sessions = Sessions::default();
        sessions.add_update(
            &update(json!({"init": true, "attrs": {"release": "app@"}})),
            "editor",
            false,
        );
        assert_eq!(sessions.unplaced, 1);
        assert_eq!(sessions.into_counts().count(), 0);
    }
}
