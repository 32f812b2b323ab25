//! The domain vocabulary, defined once: the closed sets of DESIGN §5 (event types, usage
//! kinds, platforms, architectures) and user roles, a release and a group key with its hash,
//! the counts that own the rate formulas of DESIGN §8, and the field-level validation error
//! that REST and GraphQL each translate in their one error map.
//!
//! Nothing here touches the database or HTTP; ingestion, the read API, the gate and the CLI
//! all speak these types.

use std::fmt;

/// A value a caller sent that breaks the contract, with the field it came in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field as the caller named it: `application.version` over REST, `version` in GraphQL.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A closed set of values with one spelling each: `as_str` is how it is stored and sent,
/// `parse` accepts it trimmed and in any case, and the list of values is written once.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$variant_meta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// A value as stored: exactly its spelling.
            pub fn from_stored(stored: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == stored)
            }

            /// A value as a caller sent it: trimmed, in any case; else an error naming `field`.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
                let wanted = value.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|candidate| candidate.as_str().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        FieldError::new(field, format!("{field} must be one of {}", names.join(", ")))
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set! {
    /// What went wrong in the field: the numerators of the rates.
    #[derive(async_graphql::Enum)]
    pub enum EventType {
        Crash = "crash",
        UpdateFailed = "update_failed",
        InstallFailed = "install_failed",
    }
}

closed_set! {
    /// What went right: the denominators of the rates (`POST /reports/usage`).
    pub enum UsageKind {
        Session = "session",
        UpdateSucceeded = "update_succeeded",
        InstallSucceeded = "install_succeeded",
    }
}

closed_set! {
    pub enum Platform {
        Windows = "windows",
        Macos = "macos",
        Linux = "linux",
        Android = "android",
        Ios = "ios",
        Web = "web",
        Other = "other",
        /// Not said by the client (a Sentry session has no OS): never a platform of its own, so
        /// a rate is shown only where reports and usage were sliced alike (docs/sentry.md).
        Unknown = "unknown",
    }
}

closed_set! {
    pub enum Arch {
        X86_64 = "x86_64",
        Aarch64 = "aarch64",
        X86 = "x86",
        Armv7 = "armv7",
        Universal = "universal",
        Wasm32 = "wasm32",
        Other = "other",
        /// Not said by the client, as `Platform::Unknown`.
        Unknown = "unknown",
    }
}

closed_set! {
    /// Admins manage their account; members read the apps they were given.
    #[derive(async_graphql::Enum)]
    pub enum Role {
        Admin = "admin",
        Member = "member",
    }
}

closed_set! {
    /// When an alert rule fires (docs/alerts.md).
    #[derive(async_graphql::Enum)]
    pub enum AlertKind {
        /// The release's gate verdict becomes FAIL.
        GateFail = "gate_fail",
        /// The release's crash rate is credibly above the policy's `maxRate`.
        CrashRate = "crash_rate",
        /// A group new in the release reaches `threshold` reports within `windowMinutes`.
        NewGroup = "new_group",
        /// A group of the release is absent from its baseline version.
        Regression = "regression",
    }
}

closed_set! {
    /// The body a destination receives: Rollwatch's JSON, or Slack's incoming-webhook format.
    #[derive(async_graphql::Enum)]
    pub enum DestinationFormat {
        Generic = "generic",
        Slack = "slack",
    }
}

closed_set! {
    /// What `rolloutHealth` can slice by.
    #[derive(async_graphql::Enum)]
    pub enum Dimension {
        Version = "version",
        Channel = "channel",
        Platform = "platform",
        Arch = "arch",
        EventType = "event_type",
    }
}

/// Bounds of the free-text dimensions (DESIGN §5).
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_VERSION_CHARS: usize = 64;
pub const MAX_CHANNEL_CHARS: usize = 32;
pub const MAX_REASON_CHARS: usize = 256;

/// Trims and checks a free-text field: non-empty, at most `max` characters, and text that is
/// what it looks like — no control characters, no invisible format characters, no space but
/// the plain one — so two groups never look identical on a dashboard.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("{field} contains control characters"),
        ));
    }
    if let Some(c) = value.chars().find(|&c| is_invisible(c)) {
        return Err(FieldError::new(
            field,
            format!(
                "{field} contains the invisible character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Text made fit for a free-text field from what a third party sent: control and invisible
/// characters become spaces, runs of spaces one, and it is cut at `max` characters; empty
/// when nothing visible is left. For fields Rollwatch derives (a Sentry exception type) rather
/// than takes as given, where refusing the whole report would lose a crash.
pub fn printable(value: &str, max: usize) -> String {
    let mut out = String::new();
    for c in value.chars() {
        let c = if c.is_control() || is_invisible(c) {
            ' '
        } else {
            c
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end()
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Unicode's format characters (General Category Cf: bidirectional overrides and isolates,
/// zero-width spaces and joiners, the BOM, soft hyphens, tags…) and every space but U+0020.
fn is_invisible(c: char) -> bool {
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let code = u32::from(c);
    (c.is_whitespace() && c != ' ')
        || FORMAT
            .iter()
            .any(|&(first, last)| (first..=last).contains(&code))
}

pub fn app_name(field: &str, value: &str) -> Result<String, FieldError> {
    text(field, value, MAX_NAME_CHARS)
}

pub fn version(field: &str, value: &str) -> Result<String, FieldError> {
    text(field, value, MAX_VERSION_CHARS)
}

pub fn channel(field: &str, value: &str) -> Result<String, FieldError> {
    text(field, value, MAX_CHANNEL_CHARS)
}

/// The stable dimensions shared by reports and usage counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Release {
    pub app_name: String,
    pub version: String,
    pub channel: String,
    pub platform: Platform,
    pub arch: Arch,
}

/// The seven fields a group is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub release: Release,
    pub event_type: EventType,
    pub reason: String,
}

impl GroupKey {
    /// The seven fields in the order of DESIGN §5 (and of the `report_groups` columns).
    pub fn dimensions(&self) -> [&str; 7] {
        let r = &self.release;
        [
            &r.app_name,
            &r.version,
            &r.channel,
            r.platform.as_str(),
            r.arch.as_str(),
            self.event_type.as_str(),
            &self.reason,
        ]
    }

    /// `hex(sha256(name|version|channel|platform|arch|type|reason))`, DESIGN §5 to the letter.
    pub fn hash(&self) -> String {
        crate::secrets::sha256_hex(&self.dimensions().join("|"))
    }
}

/// Events out of trials: crashes out of sessions, failed updates out of update attempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub events: u64,
    pub trials: u64,
}

impl Sample {
    pub fn new(events: u64, trials: u64) -> Self {
        Sample { events, trials }
    }

    /// `None` without trials.
    pub fn rate(self) -> Option<f64> {
        (self.trials > 0).then(|| self.events as f64 / self.trials as f64)
    }
}

/// The three rates a release is judged on (DESIGN §8).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "GateMetric")]
pub enum Metric {
    /// Crashes per session.
    CrashRate,
    /// Failed updates per update attempt (failed + succeeded).
    UpdateFailureRate,
    /// Failed installs per install attempt (failed + succeeded).
    InstallFailureRate,
}

impl Metric {
    pub const ALL: [Metric; 3] = [
        Metric::CrashRate,
        Metric::UpdateFailureRate,
        Metric::InstallFailureRate,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Metric::CrashRate => "crash rate",
            Metric::UpdateFailureRate => "update failure rate",
            Metric::InstallFailureRate => "install failure rate",
        }
    }

    /// What the denominator counts, in the plural.
    pub fn trials(self) -> &'static str {
        match self {
            Metric::CrashRate => "sessions",
            Metric::UpdateFailureRate => "update attempts",
            Metric::InstallFailureRate => "install attempts",
        }
    }
}

/// Reports per event type and usage per kind of one slice of an app's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub crashes: u64,
    pub update_failed: u64,
    pub install_failed: u64,
    pub sessions: u64,
    pub update_succeeded: u64,
    pub install_succeeded: u64,
}

impl Counts {
    pub fn add_reports(&mut self, event_type: EventType, n: u64) {
        match event_type {
            EventType::Crash => self.crashes += n,
            EventType::UpdateFailed => self.update_failed += n,
            EventType::InstallFailed => self.install_failed += n,
        }
    }

    pub fn add_usage(&mut self, kind: UsageKind, n: u64) {
        match kind {
            UsageKind::Session => self.sessions += n,
            UsageKind::UpdateSucceeded => self.update_succeeded += n,
            UsageKind::InstallSucceeded => self.install_succeeded += n,
        }
    }

    pub fn add(&mut self, other: &Counts) {
        self.crashes += other.crashes;
        self.update_failed += other.update_failed;
        self.install_failed += other.install_failed;
        self.sessions += other.sessions;
        self.update_succeeded += other.update_succeeded;
        self.install_succeeded += other.install_succeeded;
    }

    /// Every report, of any type.
    pub fn reports(&self) -> u64 {
        self.crashes + self.update_failed + self.install_failed
    }

    /// The numerator and denominator of `metric`: crashes / sessions, and failures over
    /// failures plus successes for updates and installs.
    pub fn sample(&self, metric: Metric) -> Sample {
        match metric {
            Metric::CrashRate => Sample::new(self.crashes, self.sessions),
            Metric::UpdateFailureRate => Sample::new(
                self.update_failed,
                self.update_failed + self.update_succeeded,
            ),
            Metric::InstallFailureRate => Sample::new(
                self.install_failed,
                self.install_failed + self.install_succeeded,
            ),
        }
    }

    pub fn rate(&self, metric: Metric) -> Option<f64> {
        self.sample(metric).rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_sets_parse_trimmed_in_any_case_and_name_their_values() {
        assert_eq!(
            Platform::parse("system.platform", " Windows"),
            Ok(Platform::Windows)
        );
        assert_eq!(Arch::parse("arch", "X86_64"), Ok(Arch::X86_64));
        let err = EventType::parse("event.type", "explode").expect_err("not a type");
        assert_eq!(err.field, "event.type");
        assert_eq!(
            err.message,
            "event.type must be one of crash, update_failed, install_failed"
        );
        for kind in UsageKind::ALL {
            assert_eq!(UsageKind::from_stored(kind.as_str()), Some(*kind));
        }
        assert_eq!(Role::from_stored("Admin"), None, "stored values are exact");
    }

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        assert_eq!(version("v", " 1.4.2 "), Ok("1.4.2".to_owned()));
        assert!(channel("c", &"c".repeat(MAX_CHANNEL_CHARS + 1)).is_err());
        assert!(text("r", "bad\u{7}bell", 10).is_err());
        assert!(text("r", "   ", 10).is_err());
    }

    #[test]
    fn printable_makes_third_party_text_fit_a_field() {
        assert_eq!(
            printable("  Zero\u{202E}Division\n\tError ", 64),
            "Zero Division Error"
        );
        assert_eq!(printable("abcdef", 3), "abc");
        assert_eq!(printable("\u{200B}\u{7}", 10), "");
        assert!(text("event.reason", &printable("x\u{2066}y", 10), 10).is_ok());
    }

    #[test]
    fn invisible_characters_are_refused_wherever_they_stand() {
        for invisible in [
            '\u{202E}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{200B}',  // zero-width space
            '\u{200D}',  // zero-width joiner, also inside emoji (docs/decisions.md)
            '\u{FEFF}',  // byte order mark
            '\u{00AD}',  // soft hyphen
            '\u{00A0}',  // no-break space
            '\u{E0041}', // tag
        ] {
            let value = format!("SIG{invisible}SEGV");
            let err = text("event.reason", &value, 256).expect_err(&value);
            assert_eq!(err.field, "event.reason");
            assert!(err.message.contains("invisible"), "{}", err.message);
        }
        // Visible non-ASCII text stays welcome.
        assert!(text("event.reason", "Ошибка: 失败 ✓ café", 256).is_ok());
    }

    #[test]
    fn rates_follow_design_section_8() {
        let mut counts = Counts::default();
        counts.add_reports(EventType::Crash, 3);
        counts.add_reports(EventType::UpdateFailed, 1);
        counts.add_usage(UsageKind::Session, 300);
        counts.add_usage(UsageKind::UpdateSucceeded, 9);
        assert_eq!(counts.reports(), 4);
        assert_eq!(counts.rate(Metric::CrashRate), Some(0.01));
        assert_eq!(counts.rate(Metric::UpdateFailureRate), Some(0.1));
        assert_eq!(counts.rate(Metric::InstallFailureRate), None);
    }
}
