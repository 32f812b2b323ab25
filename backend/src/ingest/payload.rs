//! The report and usage payloads of DESIGN §5: parsed once, validated, normalised.
//!
//! Every body, and every report of a batch, is judged by the same rules: objects where the
//! contract has objects (never an array filled in by position), no key twice in an object,
//! unknown keys ignored, and one error code for one mistake wherever it appears.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Error as _, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

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
    #[serde(deserialize_with = "object")]
    pub application: RawApplication,
    #[serde(deserialize_with = "object")]
    pub system: RawSystem,
    #[serde(deserialize_with = "object")]
    pub event: RawEvent,
    #[serde(default, deserialize_with = "optional_object")]
    pub details: Option<RawDetails>,
}

#[derive(Debug, Deserialize)]
pub struct RawBatch {
    /// Each parsed alone, from its own bytes, by `parse`.
    pub reports: Vec<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
pub struct RawUsage {
    #[serde(deserialize_with = "object")]
    pub application: RawApplication,
    #[serde(deserialize_with = "object")]
    pub system: RawSystem,
    pub kind: String,
    pub count: i64,
}

/// Parses a JSON object into `T`: syntax errors are 400, wrong shapes (an array or a scalar
/// for an object, a key twice, a missing or mistyped field) 422 naming the field.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map(|Object(value)| value)
        .map_err(shape_error)?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// A JSON object and nothing else: serde's derived structs also take an array, filled in by
/// position, and let an unknown key repeat. Wrapping a struct position in `Object` refuses
/// both there.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        let unique = UniqueKeys {
            inner: map,
            seen: Vec::new(),
        };
        T::deserialize(MapAccessDeserializer::new(unique)).map(Object)
    }
}

/// The keys of one object, each at most once.
struct UniqueKeys<A> {
    inner: A,
    seen: Vec<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for UniqueKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.inner.next_key::<String>()? else {
            return Ok(None);
        };
        if self.seen.contains(&key) {
            return Err(A::Error::custom(format_args!("{DUPLICATE_KEY}{key}`")));
        }
        let field = seed.deserialize(key.as_str().into_deserializer())?;
        self.seen.push(key);
        Ok(Some(field))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

const DUPLICATE_KEY: &str = "duplicate key `";

fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    Object::deserialize(deserializer).map(|Object(value)| value)
}

fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<Object<T>>::deserialize(deserializer).map(|value| value.map(|Object(value)| value))
}

fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.classify() != serde_json::error::Category::Data {
        return ApiError::MalformedJson(inner.to_string());
    }
    let message = strip_position(&inner.to_string());
    let parent = if path == "." { None } else { Some(path) };
    // serde names a missing (or repeated) field only in its message; the path stops at its
    // parent.
    let missing = ["missing field `", DUPLICATE_KEY, "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
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

    /// The field a refusal names, when it is a 422.
    fn refused_field(json: &str) -> String {
        match report(json) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a 422 for {json}: {other:?}"),
        }
    }

    #[test]
    fn objects_only_wherever_the_contract_has_an_object() {
        let array_for_application = VALID.replace(
            r#"{"name": " editor ", "version": "1.4.2", "channel": "stable"}"#,
            r#"["editor", "1.4.2", "stable"]"#,
        );
        assert_eq!(refused_field(&array_for_application), "application");
        let array_for_details = VALID.replace(
            "\n    }",
            r#", "details": ["gzip", "H4sI"]
    }"#,
        );
        assert_eq!(refused_field(&array_for_details), "details");
        assert_eq!(refused_field(r#"[{"name": "editor"}, {}, {}]"#), "");
        assert!(matches!(
            parse::<RawUsage>(b"[1, 2]"),
            Err(ApiError::InvalidField { .. })
        ));
    }

    #[test]
    fn a_key_twice_is_refused_known_or_unknown_at_any_depth() {
        let twice_known = VALID.replace(
            r#""version": "1.4.2","#,
            r#""version": "1.4.2", "version": "9.9.9","#,
        );
        assert_eq!(refused_field(&twice_known), "application.version");
        let twice_unknown = VALID.replace(
            r#""os_version": "10.0.22631""#,
            r#""os_version": "10.0.22631", "extra": 1, "extra": 2"#,
        );
        assert_eq!(refused_field(&twice_unknown), "system.extra");
        let twice_at_the_root =
            VALID.replace("{\n", r#"{"event": {"type": "crash", "reason": "x"}, "#);
        assert_eq!(refused_field(&twice_at_the_root), "event");
    }

    #[test]
    fn a_batch_is_judged_by_the_rules_of_single_reports() {
        let twice = VALID.replace(
            r#""version": "1.4.2","#,
            r#""version": "1.4.2", "version": "9.9.9","#,
        );
        let body = format!(r#"{{"reports": [{VALID}, {twice}, ["a", "b"]]}}"#);
        let batch: RawBatch = parse(body.as_bytes()).expect("a well-formed batch");
        let judged: Vec<Result<GroupKey, ApiError>> = batch
            .reports
            .iter()
            .map(|item| report(item.get()))
            .collect();
        assert!(judged[0].is_ok());
        assert!(
            matches!(&judged[1], Err(ApiError::InvalidField { field, .. }) if field == "application.version")
        );
        assert!(matches!(&judged[2], Err(ApiError::InvalidField { .. })));
    }
}
