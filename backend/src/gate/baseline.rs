//! Which versions came before a release: the candidates for its baseline, closest first.
//!
//! Versions are ordered as semantic versions when the release's version parses as one (a
//! leading `v` and a missing minor or patch number are tolerated: `v1.4` is 1.4.0); versions
//! that do not parse are then left out. A release whose version does not parse is placed by
//! when each version was first seen on the channel.

use std::cmp::Reverse;

use semver::Version;

/// A version that has data on the channel, and the first hour it had any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSeen {
    pub version: String,
    pub first_hour: i64,
}

/// The versions before `release`, the closest first.
pub fn earlier_versions<'a>(release: &str, seen: &'a [VersionSeen]) -> Vec<&'a str> {
    let others = seen.iter().filter(|v| v.version != release);
    match parse(release) {
        Some(release) => {
            let mut earlier: Vec<(Version, &str)> = others
                .filter_map(|v| parse(&v.version).map(|parsed| (parsed, v.version.as_str())))
                .filter(|(parsed, _)| *parsed < release)
                .collect();
            earlier.sort_by(|a, b| b.cmp(a));
            earlier.into_iter().map(|(_, version)| version).collect()
        }
        None => {
            let release_first = seen
                .iter()
                .find(|v| v.version == release)
                .map_or(i64::MAX, |v| v.first_hour);
            let mut earlier: Vec<&VersionSeen> =
                others.filter(|v| v.first_hour < release_first).collect();
            earlier.sort_by_key(|v| Reverse((v.first_hour, v.version.as_str())));
            earlier.into_iter().map(|v| v.version.as_str()).collect()
        }
    }
}

/// A semantic version, tolerating a leading `v` and a missing minor or patch number.
fn parse(version: &str) -> Option<Version> {
    let version = version.trim();
    let version = version.strip_prefix(['v', 'V']).unwrap_or(version);
    let core_end = version.find(['-', '+']).unwrap_or(version.len());
    let (core, suffix) = version.split_at(core_end);
    let padding = ".0".repeat(2usize.saturating_sub(core.matches('.').count()));
    Version::parse(&format!("{core}{padding}{suffix}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(versions: &[(&str, i64)]) -> Vec<VersionSeen> {
        versions
            .iter()
            .map(|(version, first_hour)| VersionSeen {
                version: (*version).to_owned(),
                first_hour: *first_hour,
            })
            .collect()
    }

    #[test]
    fn semantic_versions_are_ordered_by_precedence_not_by_text_or_time() {
        let versions = seen(&[
            ("1.10.0", 50),
            ("1.9.3", 10),
            ("1.2", 5),
            ("v1.9.10", 1),
            ("1.10.0-beta.2", 40),
            ("nightly-abc", 45),
            ("2.0.0", 30),
        ]);
        assert_eq!(
            earlier_versions("1.10.0", &versions),
            ["1.10.0-beta.2", "v1.9.10", "1.9.3", "1.2"]
        );
        assert_eq!(earlier_versions("1.2.0", &versions), Vec::<&str>::new());
    }

    #[test]
    fn versions_that_do_not_parse_are_ordered_by_first_seen() {
        let versions = seen(&[
            ("build-7", 300),
            ("build-5", 100),
            ("build-6", 200),
            ("build-8", 400),
        ]);
        assert_eq!(
            earlier_versions("build-7", &versions),
            ["build-6", "build-5"]
        );
        // A release not seen yet comes after everything that was.
        assert_eq!(
            earlier_versions("build-9", &versions),
            ["build-8", "build-7", "build-6", "build-5"]
        );
    }
}
