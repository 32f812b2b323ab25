//! The counts the gate reads, through the one roll-up: a version of a channel (optionally one
//! platform and architecture) over the window of hours up to its last hour with any data.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::baseline::VersionSeen;
use super::evaluate::{Measured, Window};
use crate::model::{Arch, Counts, Platform};
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

/// The version's counts over the `window_hours` up to its last hour with any data.
pub async fn measure(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    window_hours: u32,
) -> Result<Measured, DbErr> {
    let nothing = Measured {
        version: version.to_owned(),
        window: None,
        counts: Counts::default(),
        sliced_alike: true,
    };
    let mut slice = selection.slice(Some(version));
    let Some(last_hour) = rollup::last_hour(db, selection.app_id, &slice).await? else {
        return Ok(nothing);
    };
    let first_hour = last_hour - (i64::from(window_hours) - 1) * HOUR_SECONDS;
    let until = last_hour + HOUR_SECONDS;
    let (Some(from), Some(to)) = (
        DateTime::<Utc>::from_timestamp(first_hour, 0),
        DateTime::<Utc>::from_timestamp(until, 0),
    ) else {
        return Ok(nothing);
    };
    slice.from_hour = Some(first_hour);
    slice.until = Some(until);
    let totals = rollup::totals(db, selection.app_id, &slice).await?;
    Ok(Measured {
        version: version.to_owned(),
        window: Some(Window { from, to }),
        counts: totals.counts,
        sliced_alike: totals.sliced_alike,
    })
}
