//! Sentry envelope framing: a JSON header line, then items, each a JSON item header line and a
//! payload that is either exactly `length` bytes or runs to the next newline.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the envelope header is not a JSON object")]
    Header,
    #[error("item {0}'s header is not a JSON object with a `type`")]
    ItemHeader(usize),
    #[error(
        "item {0}'s `length` runs past the end of the envelope or is not followed by a newline"
    )]
    Length(usize),
}

#[derive(Debug, Deserialize, Default)]
pub struct EnvelopeHeader {
    pub dsn: Option<String>,
    pub event_id: Option<String>,
    pub sdk: Option<SdkInfo>,
}

/// The SDK that framed the envelope (`sentry.javascript.browser`, …).
#[derive(Debug, Deserialize, Default)]
pub struct SdkInfo {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ItemHeader {
    #[serde(rename = "type")]
    pub kind: String,
    pub length: Option<usize>,
}

#[derive(Debug)]
pub struct Item<'a> {
    pub header: ItemHeader,
    pub payload: &'a [u8],
}

#[derive(Debug)]
pub struct Envelope<'a> {
    pub header: EnvelopeHeader,
    pub items: Vec<Item<'a>>,
}

/// The line starting at `at` (without its newline) and where the next line starts.
fn line(body: &[u8], at: usize) -> (&[u8], usize) {
    match body[at..].iter().position(|&byte| byte == b'\n') {
        Some(end) => (&body[at..at + end], at + end + 1),
        None => (&body[at..], body.len()),
    }
}

pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (header_line, mut at) = line(body, 0);
    let header: EnvelopeHeader = serde_json::from_slice::<Value>(header_line)
        .ok()
        .filter(Value::is_object)
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or(EnvelopeError::Header)?;
    let mut items = Vec::new();
    while at < body.len() {
        let index = items.len();
        let (item_line, payload_start) = line(body, at);
        if item_line.iter().all(u8::is_ascii_whitespace) {
            // Trailing newlines after the last item are allowed.
            at = payload_start;
            continue;
        }
        let item_header: ItemHeader =
            serde_json::from_slice(item_line).map_err(|_| EnvelopeError::ItemHeader(index))?;
        let (payload, next) = match item_header.length {
            Some(length) => {
                let end = payload_start
                    .checked_add(length)
                    .filter(|&end| end <= body.len())
                    .ok_or(EnvelopeError::Length(index))?;
                match body.get(end) {
                    None => (&body[payload_start..end], end),
                    Some(b'\n') => (&body[payload_start..end], end + 1),
                    Some(_) => return Err(EnvelopeError::Length(index)),
                }
            }
            // An item header on the last line has an empty payload.
            None => line(body, payload_start),
        };
        items.push(Item {
            header: item_header,
            payload,
        });
        at = next;
    }
    Ok(Envelope { header, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length_are_framed() {
        let body = b"{\"dsn\":\"https://k@h/1\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"session\"}\n{\"s\":2}\n";
        let envelope = parse(body).expect("valid envelope");
        assert_eq!(envelope.header.dsn.as_deref(), Some("https://k@h/1"));
        let kinds: Vec<_> = envelope
            .items
            .iter()
            .map(|item| item.header.kind.as_str())
            .collect();
        assert_eq!(kinds, ["event", "session"]);
        assert_eq!(envelope.items[0].payload, b"{\"a\":1}");
        assert_eq!(envelope.items[1].payload, b"{\"s\":2}");
    }

    #[test]
    fn a_length_payload_may_contain_newlines_and_end_without_one() {
        let body = b"{}\n{\"type\":\"attachment\",\"length\":3}\na\nb";
        let envelope = parse(body).expect("valid envelope");
        assert_eq!(envelope.items[0].payload, b"a\nb");
    }

    #[test]
    fn a_length_that_lies_is_refused() {
        assert_eq!(
            parse(b"{}\n{\"type\":\"event\",\"length\":99}\n{}\n").unwrap_err(),
            EnvelopeError::Length(0)
        );
        assert_eq!(
            parse(b"{}\n{\"type\":\"event\",\"length\":1}\n{}\n").unwrap_err(),
            EnvelopeError::Length(0)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(parse(b"not json\n").unwrap_err(), EnvelopeError::Header);
        assert_eq!(parse(b"[1]\n").unwrap_err(), EnvelopeError::Header);
        assert_eq!(
            parse(b"{}\n{\"length\":2}\n{}\n").unwrap_err(),
            EnvelopeError::ItemHeader(0)
        );
    }

    #[test]
    fn an_item_header_on_the_last_line_has_an_empty_payload() {
        let envelope = parse(b"{}\n{\"type\":\"client_report\"}").expect("valid envelope");
        assert!(envelope.items[0].payload.is_empty());
    }

    #[test]
    fn an_envelope_of_only_a_header_has_no_items() {
        assert!(
            parse(b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n")
                .expect("valid")
                .items
                .is_empty()
        );
    }
}
