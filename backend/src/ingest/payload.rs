//! The report and usage payloads of DESIGN §5: parsed once, validated, normalised.

use serde::Deserialize;

use crate::error::ApiError;

pub const EVENT_TYPES: [&str; 3] = ["crash", "update_failed", "install_failed"];
pub const PLATFORMS: [&str; 7] = [
    "windows", "macos", "linux", "android", "ios", "web", "other",
];
pub const ARCHES: [&str; 7] = [
    "x86_64",
    "aarch64",
    "x86",
    "armv7",
    "universal",
    "wasm32",
    "other",
];
pub const USAGE_KINDS: [&str; 3] = ["session", "update_succeeded", "install_succeeded"];
/// Upper bound of one usage report, so a single request cannot swamp a denominator.
pub const MAX_USAGE_COUNT: i64 = 1_000_000;

#[derive(Debug, Deserialize)]
pub struct RawApplication {
    pub name: String,
    pub version: String,
    pub channel: String,
}

#[derive(Debug, Deserialize)]
pub struct RawSystem {
    pub platform: String,
    pub arch: String,
    /// Accepted and checked, but not a group dimension and not stored.
    pub os_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
pub struct RawDetails {
    pub encoding: String,
    pub data: String,
}

#[derive(Debug, Deserialize)]
pub struct RawReport {
    pub application: RawApplication,
    pub system: RawSystem,
    pub event: RawEvent,
    pub details: Option<RawDetails>,
}

#[derive(Debug, Deserialize)]
pub struct RawBatch {
    pub reports: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct RawUsage {
    pub application: RawApplication,
    pub system: RawSystem,
    pub kind: String,
    pub count: i64,
}

/// The stable dimensions shared by reports and usage counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Release {
    pub app_name: String,
    pub version: String,
    pub channel: String,
    pub platform: String,
    pub arch: String,
}

/// The seven fields a group is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub release: Release,
    pub event_type: String,
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
            &r.platform,
            &r.arch,
            &self.event_type,
            &self.reason,
        ]
    }

    /// `hex(sha256(name|version|channel|platform|arch|type|reason))`, DESIGN §5 to the letter.
    pub fn hash(&self) -> String {
        crate::secrets::sha256_hex(&self.dimensions().join("|"))
    }
}

/// Parses a JSON document into `T`: syntax errors are 400, wrong shapes 422 naming the field.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(shape_error)?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// Like `parse`, for one element of an already parsed batch.
pub fn parse_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(shape_error)
}

fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.classify() != serde_json::error::Category::Data {
        return ApiError::MalformedJson(inner.to_string());
    }
    let message = strip_position(&inner.to_string());
    let parent = if path == "." { None } else { Some(path) };
    // serde names a missing field only in its message; the path stops at its parent.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    let field = match (parent, missing) {
        (Some(parent), Some(name)) => format!("{parent}.{name}"),
        (None, Some(name)) => name.to_owned(),
        (Some(parent), None) => parent,
        (None, None) => String::new(),
    };
    ApiError::invalid(field, message)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Trims and checks a free-text field: non-empty, at most `max` characters, no control characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Trims, lower-cases and checks a field against its closed list of values.
pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, ApiError> {
    let value = value.trim().to_ascii_lowercase();
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be one of {}", allowed.join(", ")),
        ))
    }
}

/// The checked app name, as the operator commands and the API accept it too.
pub fn app_name(value: &str) -> Result<String, ApiError> {
    text("application.name", value, 64)
}

impl RawApplication {
    fn release(&self, system: &RawSystem) -> Result<Release, ApiError> {
        if let Some(os_version) = &system.os_version {
            text("system.os_version", os_version, 64)?;
        }
        Ok(Release {
            app_name: app_name(&self.name)?,
            version: text("application.version", &self.version, 64)?,
            channel: text("application.channel", &self.channel, 32)?,
            platform: one_of("system.platform", &system.platform, &PLATFORMS)?,
            arch: one_of("system.arch", &system.arch, &ARCHES)?,
        })
    }
}

impl RawReport {
    pub fn group_key(&self) -> Result<GroupKey, ApiError> {
        Ok(GroupKey {
            release: self.application.release(&self.system)?,
            event_type: one_of("event.type", &self.event.kind, &EVENT_TYPES)?,
            reason: text("event.reason", &self.event.reason, 256)?,
        })
    }
}

/// A validated usage report.
#[derive(Clone, Debug)]
pub struct Usage {
    pub release: Release,
    pub kind: String,
    pub count: i64,
}

impl RawUsage {
    pub fn validate(&self) -> Result<Usage, ApiError> {
        if !(1..=MAX_USAGE_COUNT).contains(&self.count) {
            return Err(ApiError::invalid(
                "count",
                format!("count must be between 1 and {MAX_USAGE_COUNT}"),
            ));
        }
        Ok(Usage {
            release: self.application.release(&self.system)?,
            kind: one_of("kind", &self.kind, &USAGE_KINDS)?,
            count: self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> Result<GroupKey, ApiError> {
        parse::<RawReport>(json.as_bytes())?.group_key()
    }

    const VALID: &str = r#"{
        "application": {"name": " editor ", "version": "1.4.2", "channel": "stable"},
        "system": {"platform": "Windows", "arch": "X86_64", "os_version": "10.0.22631"},
        "event": {"type": "crash", "reason": "EXCEPTION_ACCESS_VIOLATION"}
    }"#;

    #[test]
    fn normalises_and_hashes_the_seven_fields() {
        let key = report(VALID).expect("valid report");
        assert_eq!(key.release.app_name, "editor");
        assert_eq!(key.release.platform, "windows");
        assert_eq!(key.release.arch, "x86_64");
        // sha256("editor|1.4.2|stable|windows|x86_64|crash|EXCEPTION_ACCESS_VIOLATION"), by `sha256sum`.
        assert_eq!(
            key.hash(),
            "8ec126442576d02a2acbef2c68858e884ac1979eb7a54b6f9716843911dbed5e"
        );
    }

    #[test]
    fn syntax_errors_are_malformed_and_shape_errors_name_the_field() {
        assert!(matches!(report("{"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(
            report(&format!("{VALID} trailing")),
            Err(ApiError::MalformedJson(_))
        ));
        let err = report(r#"{"application": {"name": "a", "version": 1, "channel": "c"}}"#)
            .expect_err("version is a number");
        assert!(
            matches!(&err, ApiError::InvalidField { field, .. } if field == "application.version"),
            "{err:?}"
        );
    }

    #[test]
    fn rejects_values_outside_the_contract() {
        let cases = [
            ("\"crash\"", "\"explode\"", "event.type"),
            ("\"Windows\"", "\"beos\"", "system.platform"),
            (
                "\"EXCEPTION_ACCESS_VIOLATION\"",
                "\"bad\\u0007bell\"",
                "event.reason",
            ),
            ("\"1.4.2\"", "\"   \"", "application.version"),
        ];
        for (from, to, field) in cases {
            let json = VALID.replace(from, to);
            let err = report(&json).expect_err(field);
            assert!(
                matches!(&err, ApiError::InvalidField { field: f, .. } if f == field),
                "{field}: {err:?}"
            );
        }
        let long = VALID.replace("\"stable\"", &format!("\"{}\"", "c".repeat(33)));
        assert!(
            matches!(report(&long), Err(ApiError::InvalidField { field, .. }) if field == "application.channel")
        );
    }
}
