//! No identity out of a Sentry event, before anything of it is stored (issue 14, DESIGN §5.1):
//! the fields that carry one are dropped, and every string left is scrubbed of emails, IP
//! addresses and home-directory user names by our own clients' scrubber.

use std::sync::LazyLock;

use rollwatch_client::Scrubber;
use serde_json::{Map, Value};

static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(|| Scrubber::new(&[]));

/// Keys dropped wherever they stand: who the user is, where they are, what they are logged in
/// with. (`user` inside a stack frame's variables goes too: better lost than kept.)
const IDENTITY_KEYS: &[&str] = &[
    "user",
    "ip_address",
    "server_name",
    "cookies",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    "x-sentry-auth",
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "query_string",
    "device_app_hash",
    "did",
    // Python's command line: arguments are the app's input, often a user's files or secrets.
    "sys.argv",
];

/// Text scrubbed of emails, IP addresses, home-directory user names, and the query strings
/// and fragments of the URLs in it (where tokens travel).
pub fn text(value: &str) -> String {
    SCRUBBER.scrub(&without_url_queries(value))
}

fn without_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, url) = rest.split_at(start);
        out.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .unwrap_or(url.len());
        let (url, after) = url.split_at(end);
        out.push_str(&url[..url.find(['?', '#']).unwrap_or(url.len())]);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The event without identity: the keys above gone, the request's body, environment and URL
/// query gone, a device's given name gone, every other string scrubbed.
pub fn event(event: &mut Value) {
    if let Some(request) = event.get_mut("request").and_then(Value::as_object_mut) {
        request.remove("data");
        request.remove("env");
        if let Some(Value::String(url)) = request.get_mut("url") {
            url.truncate(url.find(['?', '#']).unwrap_or(url.len()));
        }
        if let Some(headers) = request.get_mut("headers") {
            drop_identity_headers(headers);
        }
    }
    if let Some(device) = event
        .pointer_mut("/contexts/device")
        .and_then(Value::as_object_mut)
    {
        // "Alice's iPhone".
        device.remove("name");
    }
    walk(event);
}

/// Sentry sends headers as an object or as `[name, value]` pairs.
fn drop_identity_headers(headers: &mut Value) {
    match headers {
        Value::Object(map) => map.retain(|name, _| !is_identity(name)),
        Value::Array(pairs) => {
            pairs.retain(|pair| !pair.get(0).and_then(Value::as_str).is_some_and(is_identity))
        }
        _ => {}
    }
}

fn is_identity(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    IDENTITY_KEYS.contains(&key.as_str()) || key.contains("token") || key.contains("secret")
}

fn walk(value: &mut Value) {
    match value {
        Value::String(value) => {
            let scrubbed = text(value);
            if scrubbed != *value {
                *value = scrubbed;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        Value::Object(map) => walk_object(map),
        _ => {}
    }
}

fn walk_object(map: &mut Map<String, Value>) {
    map.retain(|key, _| !is_identity(key));
    map.values_mut().for_each(walk);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identity_fields_are_dropped_and_text_scrubbed_everywhere() {
        let mut sent = json!({
            "user": {"email": "alice@example.com", "ip_address": "203.0.113.9"},
            "server_name": "alices-laptop",
            "request": {
                "url": "https://app.example/p?token=abc#x",
                "query_string": "token=abc",
                "cookies": "session=1",
                "data": {"password": "hunter2"},
                "env": {"REMOTE_ADDR": "203.0.113.9"},
                "headers": {"Authorization": "Bearer x", "Cookie": "a=b", "User-Agent": "UA"}
            },
            "contexts": {"device": {"name": "Alice's iPhone", "arch": "arm64"}},
            "breadcrumbs": {"values": [{"message": "mail bob@example.org from 198.51.100.7"}]},
            "exception": {"values": [{"type": "E", "value": "open /home/alice/notes.txt"}]},
            "extra": {"X-Api-Token": "t"}
        });
        event(&mut sent);
        let kept = sent.to_string();
        for secret in [
            "alice@example.com",
            "203.0.113.9",
            "alices-laptop",
            "token=abc",
            "session=1",
            "hunter2",
            "Bearer x",
            "a=b",
            "Alice's iPhone",
            "bob@example.org",
            "198.51.100.7",
            "/home/alice",
            "X-Api-Token",
        ] {
            assert!(!kept.contains(secret), "{secret} kept in {kept}");
        }
        assert_eq!(sent["request"]["url"], "https://app.example/p");
        assert_eq!(sent["request"]["headers"]["User-Agent"], "UA");
        assert_eq!(sent["contexts"]["device"]["arch"], "arm64");
        assert_eq!(sent["exception"]["values"][0]["type"], "E");
    }

    #[test]
    fn urls_in_text_lose_their_query_strings() {
        assert_eq!(
            text("GET https://h.example/api?token=abc#f done, see http://x.example/?q"),
            "GET https://h.example/api done, see http://x.example/"
        );
        assert_eq!(text("no url? fine"), "no url? fine");
    }

    #[test]
    fn header_pairs_lose_their_identity_headers() {
        let mut headers = json!([["Cookie", "a=b"], ["Accept", "*/*"]]);
        drop_identity_headers(&mut headers);
        assert_eq!(headers, json!([["Accept", "*/*"]]));
    }
}
