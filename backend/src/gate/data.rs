//! The counts the gate reads, through the one roll-up: a version of a channel (optionally one
//! platform and architecture) over the window of hours up to its last hour with any data.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::baseline::VersionSeen;
use super::evaluate::{Measured, SliceKey, Window};
use crate::model::{Arch, Counts, Dimension, Platform};
use crate::rollup::{self, HOUR_SECONDS, Slice};

/// The slice of an app's data a gate looks at; the version varies, the rest does not.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    pub app_id: i64,
    pub channel: &'a str,
    pub platform: Option<Platform>,
    pub arch: Option<Arch>,
}

impl Selection<'_> {
    fn slice(&self, version: Option<&str>) -> Slice {
        Slice {
            version: version.map(str::to_owned),
            channel: Some(self.channel.to_owned()),
            platform: self.platform,
            arch: self.arch,
            ..Slice::default()
        }
    }
}

/// Every version with usage on the selection's channel, with its first hour.
pub async fn versions_seen(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
) -> Result<Vec<VersionSeen>, DbErr> {
    let versions =
        rollup::versions_with_usage(db, selection.app_id, &selection.slice(None)).await?;
    Ok(versions
        .into_iter()
        .map(|(version, first_hour)| VersionSeen {
            version,
            first_hour,
        })
        .collect())
}

/// The `window_hours` up to the version's last hour with any data; `None` without data.
pub async fn last_window(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    window_hours: u32,
) -> Result<Option<Window>, DbErr> {
    let slice = selection.slice(Some(version));
    let Some(last_hour) = rollup::last_hour(db, selection.app_id, &slice).await? else {
        return Ok(None);
    };
    let first_hour = last_hour - (i64::from(window_hours) - 1) * HOUR_SECONDS;
    Ok(window(first_hour, last_hour + HOUR_SECONDS))
}

/// The hours from `first_hour` until the version had `sessions` sessions (all its hours
/// with data when it never had that many); `None` without usage.
pub async fn first_sessions_window(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    first_hour: i64,
    sessions: u64,
) -> Result<Option<Window>, DbErr> {
    let mut slice = selection.slice(Some(version));
    slice.from_hour = Some(first_hour);
    let hours = rollup::series(db, selection.app_id, &slice, HOUR_SECONDS).await?;
    let mut seen = 0;
    let mut last = None;
    for (hour, counts) in hours {
        seen += counts.sessions;
        last = Some(hour);
        if seen >= sessions {
            break;
        }
    }
    Ok(last.and_then(|last| window(first_hour, last + HOUR_SECONDS)))
}

fn window(first_hour: i64, until: i64) -> Option<Window> {
    Some(Window {
        from: DateTime::<Utc>::from_timestamp(first_hour, 0)?,
        to: DateTime::<Utc>::from_timestamp(until, 0)?,
    })
}

/// The version's counts over the `window_hours` up to its last hour with any data.
pub async fn measure(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    window_hours: u32,
) -> Result<Measured, DbErr> {
    let window = last_window(db, selection, version, window_hours).await?;
    measure_in(db, selection, version, window).await
}

/// The version's counts over `window` (nothing without one).
pub async fn measure_in(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    window: Option<Window>,
) -> Result<Measured, DbErr> {
    let Some(window) = window else {
        return Ok(Measured {
            version: version.to_owned(),
            window: None,
            counts: Counts::default(),
            sliced_alike: true,
        });
    };
    let slice = selection.windowed(version, window);
    let totals = rollup::totals(db, selection.app_id, &slice).await?;
    Ok(Measured {
        version: version.to_owned(),
        window: Some(window),
        counts: totals.counts,
        sliced_alike: totals.sliced_alike,
    })
}

/// The version's platform, arch and platform × arch slices with data over `window`, each
/// with its counts: one read by platform × arch, summed here into platforms and archs.
pub async fn slices(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    window: Window,
) -> Result<BTreeMap<SliceKey, Measured>, DbErr> {
    let slice = selection.windowed(version, window);
    let cells = rollup::cells(
        db,
        selection.app_id,
        &slice,
        &[Dimension::Platform, Dimension::Arch],
    )
    .await?;
    let known = |cell: &rollup::Cell| {
        (
            cell.key.platform.as_deref().and_then(Platform::from_stored),
            cell.key.arch.as_deref().and_then(Arch::from_stored),
        )
    };
    // As `rollup::cells` judges a split: counts that do not say their platform (arch) may
    // belong to any platform (arch) slice, so none of those is sliced alike.
    let unknown_platform = cells
        .iter()
        .any(|cell| known(cell).0.is_none_or(|p| p == Platform::Unknown));
    let unknown_arch = cells
        .iter()
        .any(|cell| known(cell).1.is_none_or(|a| a == Arch::Unknown));
    let mut slices: BTreeMap<SliceKey, Measured> = BTreeMap::new();
    for cell in &cells {
        let (Some(platform), Some(arch)) = known(cell) else {
            continue;
        };
        let platform = Some(platform).filter(|p| *p != Platform::Unknown);
        let arch = Some(arch).filter(|a| *a != Arch::Unknown);
        let mut keys = Vec::with_capacity(3);
        if let (Some(_), Some(_)) = (platform, arch) {
            keys.push((
                SliceKey { platform, arch },
                !unknown_platform && !unknown_arch,
            ));
        }
        if platform.is_some() {
            let key = SliceKey {
                platform,
                arch: None,
            };
            keys.push((key, !unknown_platform));
        }
        if arch.is_some() {
            let key = SliceKey {
                platform: None,
                arch,
            };
            keys.push((key, !unknown_arch));
        }
        for (key, alike) in keys {
            let measured = slices.entry(key).or_insert_with(|| Measured {
                version: version.to_owned(),
                window: Some(window),
                counts: Counts::default(),
                sliced_alike: alike,
            });
            measured.counts.add(&cell.counts);
        }
    }
    Ok(slices)
}

impl Selection<'_> {
    fn windowed(&self, version: &str, window: Window) -> Slice {
        Slice {
            from_hour: Some(window.from.timestamp()),
            until: Some(window.to.timestamp()),
            ..self.slice(Some(version))
        }
    }
}
