//! The report and usage payloads of DESIGN §5: parsed once, validated, normalised.

use serde::Deserialize;

use crate::error::ApiError;
use crate::model::{self, Arch, EventType, FieldError, GroupKey, Platform, Release, UsageKind};

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

impl RawApplication {
    fn release(&self, system: &RawSystem) -> Result<Release, FieldError> {
        if let Some(os_version) = &system.os_version {
            model::text("system.os_version", os_version, model::MAX_VERSION_CHARS)?;
        }
        Ok(Release {
            app_name: model::app_name("application.name", &self.name)?,
            version: model::version("application.version", &self.version)?,
            channel: model::channel("application.channel", &self.channel)?,
            platform: Platform::parse("system.platform", &system.platform)?,
            arch: Arch::parse("system.arch", &system.arch)?,
        })
    }
}

impl RawReport {
    pub fn group_key(&self) -> Result<GroupKey, FieldError> {
        Ok(GroupKey {
            release: self.application.release(&self.system)?,
            event_type: EventType::parse("event.type", &self.event.kind)?,
            reason: model::text("event.reason", &self.event.reason, model::MAX_REASON_CHARS)?,
        })
    }
}

/// A validated usage report.
#[derive(Clone, Debug)]
pub struct Usage {
    pub release: Release,
    pub kind: UsageKind,
    pub count: i64,
}

impl RawUsage {
    pub fn validate(&self) -> Result<Usage, FieldError> {
        if !(1..=MAX_USAGE_COUNT).contains(&self.count) {
            return Err(FieldError::new(
                "count",
                format!("count must be between 1 and {MAX_USAGE_COUNT}"),
            ));
        }
        Ok(Usage {
            release: self.application.release(&self.system)?,
            kind: UsageKind::parse("kind", &self.kind)?,
            count: self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> Result<GroupKey, ApiError> {
        Ok(parse::<RawReport>(json.as_bytes())?.group_key()?)
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
        assert_eq!(key.release.platform, Platform::Windows);
        assert_eq!(key.release.arch, Arch::X86_64);
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
