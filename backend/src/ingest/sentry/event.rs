//! A Sentry event as a Rollwatch report (docs/sentry.md): an unhandled exception or a fatal
//! event is a crash whose reason is the exception type; a handled error is a rollout failure
//! only when the app tags it `rollwatch.event_type`.

use serde_json::Value;

use super::dimensions::{self, Said};
use super::scrub;
use crate::model::{self, EventType, GroupKey, Release};

/// The tag that makes a handled event an update or install failure.
pub const EVENT_TYPE_TAG: &str = "rollwatch.event_type";

/// Why an accepted event was not counted.
#[derive(Debug, PartialEq, Eq)]
pub enum NotCounted {
    /// A handled error, not tagged as a failure: not a rollout failure.
    Handled,
    /// No release, or one that is not a valid version: it cannot be placed in a rollout.
    NoRelease(String),
    /// An environment that is not a valid channel.
    BadEnvironment(String),
}

/// The group of `event` for the key's app, when it is a rollout failure.
pub fn group_key(event: &Value, app_name: &str, browser: bool) -> Result<GroupKey, NotCounted> {
    let exceptions = exceptions(event);
    let tagged = tag(event, EVENT_TYPE_TAG).and_then(|t| match t.trim() {
        "update_failed" => Some(EventType::UpdateFailed),
        "install_failed" => Some(EventType::InstallFailed),
        _ => None,
    });
    let unhandled = exceptions
        .iter()
        .any(|e| e.pointer("/mechanism/handled") == Some(&Value::Bool(false)));
    let fatal = event.get("level").and_then(Value::as_str) == Some("fatal");
    let event_type = match tagged {
        Some(event_type) => event_type,
        None if unhandled || fatal => EventType::Crash,
        None => return Err(NotCounted::Handled),
    };
    let release = event
        .get("release")
        .and_then(Value::as_str)
        .ok_or_else(|| NotCounted::NoRelease("the event has no release".to_owned()))?;
    let release = dimensions::release(release).map_err(|e| NotCounted::NoRelease(e.message))?;
    let channel = dimensions::channel(event.get("environment").and_then(Value::as_str))
        .map_err(|e| NotCounted::BadEnvironment(e.message))?;
    let sdk_name = event.pointer("/sdk/name").and_then(Value::as_str);
    let (platform, arch) = dimensions::platform_and_arch(Said {
        os_name: event.pointer("/contexts/os/name").and_then(Value::as_str),
        arch: event
            .pointer("/contexts/device/arch")
            .or_else(|| event.pointer("/contexts/device/archs/0"))
            .and_then(Value::as_str),
        build: release.build,
        browser: browser || sdk_name.is_some_and(dimensions::is_browser_sdk),
    });
    Ok(GroupKey {
        release: Release {
            app_name: app_name.to_owned(),
            version: release.version,
            channel,
            platform,
            arch,
        },
        event_type,
        reason: reason(event, &exceptions, event_type),
    })
}

/// The exception values, newest last (Sentry's order), in either of the protocol's shapes.
fn exceptions(event: &Value) -> Vec<&Value> {
    let values = match event.get("exception") {
        Some(Value::Object(exception)) => exception.get("values"),
        other => other,
    };
    values
        .and_then(Value::as_array)
        .map(|values| values.iter().collect())
        .unwrap_or_default()
}

/// A tag's value; Sentry sends tags as an object or as `[key, value]` pairs.
fn tag<'e>(event: &'e Value, name: &str) -> Option<&'e str> {
    match event.get("tags")? {
        Value::Object(tags) => tags.get(name)?.as_str(),
        Value::Array(pairs) => pairs.iter().find_map(|pair| {
            (pair.get(0)?.as_str()? == name)
                .then(|| pair.get(1)?.as_str())
                .flatten()
        }),
        _ => None,
    }
}

/// The type of the exception that ended the program (the last value, as Sentry titles the
/// issue); else the message's first line; bounded, printable and scrubbed.
fn reason(event: &Value, exceptions: &[&Value], event_type: EventType) -> String {
    let exception_type = exceptions
        .last()
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str);
    let message = [
        "/logentry/formatted",
        "/logentry/message",
        "/message/formatted",
        "/message/message",
        "/message",
    ]
    .iter()
    .find_map(|path| event.pointer(path).and_then(Value::as_str));
    let found = exception_type
        .or(message.and_then(|m| m.lines().next()))
        .map(|text| model::printable(&scrub::text(text), model::MAX_REASON_CHARS))
        .filter(|text| !text.is_empty());
    found.unwrap_or_else(|| match event_type {
        EventType::Crash => "fatal".to_owned(),
        other => other.as_str().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Arch, Platform};

    fn python_excepthook() -> Value {
        // As sentry-python 2.x sends an uncaught exception (../shared/notes).
        json!({
            "level": "error",
            "platform": "python",
            "release": "editor@1.4.2+build.7",
            "environment": "beta",
            "exception": {"values": [{
                "type": "ZeroDivisionError",
                "value": "division by zero",
                "mechanism": {"type": "excepthook", "handled": false}
            }]},
            "contexts": {"runtime": {"name": "CPython"}}
        })
    }

    #[test]
    fn an_unhandled_exception_is_a_crash_of_its_release() {
        let key = group_key(&python_excepthook(), "editor", false).expect("counted");
        assert_eq!(key.event_type, EventType::Crash);
        assert_eq!(key.reason, "ZeroDivisionError");
        assert_eq!(key.release.version, "1.4.2");
        assert_eq!(key.release.channel, "beta");
        assert_eq!(key.release.app_name, "editor");
        assert_eq!(
            (key.release.platform, key.release.arch),
            (Platform::Unknown, Arch::Unknown)
        );
    }

    #[test]
    fn contexts_give_platform_and_arch() {
        let mut event = python_excepthook();
        event["contexts"] = json!({"os": {"name": "Darwin"}, "device": {"archs": ["arm64"]}});
        let key = group_key(&event, "editor", false).expect("counted");
        assert_eq!(
            (key.release.platform, key.release.arch),
            (Platform::Macos, Arch::Aarch64)
        );
    }

    #[test]
    fn handled_errors_count_only_when_tagged_a_failure() {
        let mut event = python_excepthook();
        event["exception"]["values"][0]["mechanism"]["handled"] = json!(true);
        assert_eq!(group_key(&event, "editor", false), Err(NotCounted::Handled));
        event["tags"] = json!([["rollwatch.event_type", "update_failed"]]);
        let key = group_key(&event, "editor", false).expect("counted");
        assert_eq!(key.event_type, EventType::UpdateFailed);
        event["tags"] = json!({"rollwatch.event_type": "install_failed"});
        assert_eq!(
            group_key(&event, "editor", false)
                .expect("counted")
                .event_type,
            EventType::InstallFailed
        );
    }

    #[test]
    fn a_fatal_message_is_a_crash_named_by_its_first_line() {
        let event = json!({
            "level": "fatal",
            "release": "2.0.0",
            "logentry": {"formatted": "out of memory for alice@example.com\nat frame 3"}
        });
        let key = group_key(&event, "editor", true).expect("counted");
        assert_eq!(key.event_type, EventType::Crash);
        assert_eq!(key.reason, "out of memory for <email>");
        assert_eq!(key.release.channel, "production");
        assert_eq!(key.release.platform, Platform::Web);
    }

    #[test]
    fn the_last_exception_names_a_chain_and_reasons_are_bounded() {
        let mut event = python_excepthook();
        event["exception"]["values"] = json!([
            {"type": "OSError"},
            {"type": format!("Wrapped\u{202E}{}", "E".repeat(300)), "mechanism": {"handled": false}}
        ]);
        let key = group_key(&event, "editor", false).expect("counted");
        assert!(key.reason.starts_with("Wrapped E"), "{}", key.reason);
        assert_eq!(key.reason.chars().count(), model::MAX_REASON_CHARS);
    }

    #[test]
    fn an_event_without_a_valid_release_is_not_counted() {
        let mut event = python_excepthook();
        event.as_object_mut().expect("object").remove("release");
        assert!(matches!(
            group_key(&event, "editor", false),
            Err(NotCounted::NoRelease(_))
        ));
        event["release"] = json!("editor@");
        assert!(matches!(
            group_key(&event, "editor", false),
            Err(NotCounted::NoRelease(_))
        ));
    }
}
