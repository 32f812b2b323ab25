//! Release dimensions out of what a Sentry SDK says: the version and build of its `release`,
//! its `environment`, and the OS and architecture names of its contexts, normalised to the
//! closed sets of DESIGN §5. Events and sessions go through the same chain (docs/sentry.md),
//! so both sides of a rate are sliced alike wherever they can be.

use crate::model::{self, Arch, FieldError, Platform};

/// Sentry SDKs' own default when the app sets no environment.
pub const DEFAULT_CHANNEL: &str = "production";

/// A Sentry `release` split as Rollwatch reads it: `package@1.4.2+build` → version `1.4.2`,
/// build `build`.
#[derive(Debug, PartialEq, Eq)]
pub struct SentryRelease<'a> {
    pub version: String,
    pub build: Option<&'a str>,
}

pub fn release(release: &str) -> Result<SentryRelease<'_>, FieldError> {
    // An npm-style package may itself hold an `@` (`@scope/app@1.2.0`): the version follows
    // the last one.
    let without_package = release.rsplit_once('@').map_or(release, |(_, v)| v);
    let (version, build) = match without_package.split_once('+') {
        Some((version, build)) => (version, Some(build).filter(|b| !b.is_empty())),
        None => (without_package, None),
    };
    Ok(SentryRelease {
        version: model::version("release", version)?,
        build,
    })
}

/// The channel of an `environment`, `production` when there is none.
pub fn channel(environment: Option<&str>) -> Result<String, FieldError> {
    match environment.map(str::trim).filter(|e| !e.is_empty()) {
        Some(environment) => model::channel("environment", environment),
        None => Ok(DEFAULT_CHANNEL.to_owned()),
    }
}

/// What the SDK and the payload said about where the app runs; `None` where they said nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Said<'a> {
    pub os_name: Option<&'a str>,
    pub arch: Option<&'a str>,
    pub build: Option<&'a str>,
    /// The SDK is a browser's (`sentry.javascript.browser` and its framework wrappers).
    pub browser: bool,
}

/// The platform and arch by the one chain: contexts, then the release's build metadata
/// (`1.4.2+linux.x86_64`), then a browser SDK means `web`; else `unknown`.
pub fn platform_and_arch(said: Said<'_>) -> (Platform, Arch) {
    let (build_platform, build_arch) = said.build.map(from_build).unwrap_or_default();
    let platform = said
        .os_name
        .map(platform_of_os)
        .or(build_platform)
        .or(said.browser.then_some(Platform::Web))
        .unwrap_or(Platform::Unknown);
    let arch = said
        .arch
        .map(arch_of)
        .or(build_arch)
        // Our own browser script says `other` for a page's architecture; a browser SDK alike.
        .or((platform == Platform::Web).then_some(Arch::Other))
        .unwrap_or(Arch::Unknown);
    (platform, arch)
}

/// Whether an SDK name (`sentry.javascript.browser`, `sentry.javascript.react`, …) or a
/// `sentry_client` (`sentry.javascript.browser/8.0.0`) is a browser's.
pub fn is_browser_sdk(name: &str) -> bool {
    const BROWSER: &[&str] = &[
        "sentry.javascript.browser",
        "sentry.javascript.react",
        "sentry.javascript.vue",
        "sentry.javascript.angular",
        "sentry.javascript.svelte",
        "sentry.javascript.ember",
        "sentry.javascript.solid",
    ];
    let name = name.split('/').next().unwrap_or(name).trim();
    BROWSER.contains(&name)
}

/// Platform and arch named exactly by build metadata's dot- or dash-separated parts.
fn from_build(build: &str) -> (Option<Platform>, Option<Arch>) {
    let named = |part: &str| part != Platform::Other.as_str() && part != "unknown";
    let mut found = (None, None);
    for part in build.split(['.', '-']).map(str::to_ascii_lowercase) {
        if !named(&part) {
            continue;
        }
        found.0 = found.0.or(Platform::from_stored(&part));
        found.1 = found.1.or(Arch::from_stored(&part));
    }
    found
}

/// `os.name` as SDKs send it (`Windows`, `Darwin`, `iPadOS`, `Ubuntu`, …), by the same table
/// as our own Rust client.
fn platform_of_os(name: &str) -> Platform {
    Platform::from_stored(rollwatch_client::normalise_platform(name)).unwrap_or(Platform::Other)
}

fn arch_of(name: &str) -> Arch {
    Arch::from_stored(rollwatch_client::normalise_arch(name)).unwrap_or(Arch::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_loses_its_package_and_build() {
        let parsed = release("editor@1.4.2+build.7").expect("valid");
        assert_eq!(parsed.version, "1.4.2");
        assert_eq!(parsed.build, Some("build.7"));
        assert_eq!(release("@scope/app@2.0.0").expect("valid").version, "2.0.0");
        assert_eq!(release("1.0").expect("valid").build, None);
        assert!(release("editor@").is_err());
        assert!(release(&"9".repeat(65)).is_err());
    }

    #[test]
    fn environment_is_the_channel_production_by_default() {
        assert_eq!(channel(Some(" beta ")).expect("valid"), "beta");
        assert_eq!(channel(None).expect("valid"), "production");
        assert_eq!(channel(Some("")).expect("valid"), "production");
    }

    #[test]
    fn os_and_arch_names_normalise_to_the_closed_sets() {
        let of = |os: &str, arch: &str| {
            platform_and_arch(Said {
                os_name: Some(os),
                arch: Some(arch),
                ..Said::default()
            })
        };
        assert_eq!(of("Darwin", "arm64"), (Platform::Macos, Arch::Aarch64));
        assert_eq!(of("macOS", "x86_64"), (Platform::Macos, Arch::X86_64));
        assert_eq!(of("iPadOS", "arm64e"), (Platform::Ios, Arch::Aarch64));
        assert_eq!(
            of("Android", "arm64-v8a"),
            (Platform::Android, Arch::Aarch64)
        );
        assert_eq!(of("Windows", "amd64"), (Platform::Windows, Arch::X86_64));
        assert_eq!(of("Ubuntu", "x64"), (Platform::Linux, Arch::X86_64));
        assert_eq!(of("Linux", "armv7l"), (Platform::Linux, Arch::Armv7));
        assert_eq!(of("FreeBSD", "riscv64"), (Platform::Other, Arch::Other));
    }

    #[test]
    fn build_metadata_and_browser_sdks_fill_what_contexts_leave_out() {
        let from_build = platform_and_arch(Said {
            build: Some("windows.x86_64"),
            ..Said::default()
        });
        assert_eq!(from_build, (Platform::Windows, Arch::X86_64));
        let contexts_win = platform_and_arch(Said {
            os_name: Some("Linux"),
            build: Some("windows-aarch64"),
            ..Said::default()
        });
        assert_eq!(contexts_win, (Platform::Linux, Arch::Aarch64));
        let browser = platform_and_arch(Said {
            browser: true,
            ..Said::default()
        });
        assert_eq!(browser, (Platform::Web, Arch::Other));
        assert_eq!(
            platform_and_arch(Said {
                build: Some("build.7"),
                ..Said::default()
            }),
            (Platform::Unknown, Arch::Unknown)
        );
        assert!(is_browser_sdk("sentry.javascript.browser/8.55.0"));
        assert!(!is_browser_sdk("sentry.javascript.node"));
    }
}
