//! Webhook signatures: `Rollwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"`, with the destination's secret, as Stripe and Slack sign theirs. A receiver
//! recomputes the HMAC and refuses a timestamp older than a few minutes (a replay).
//! docs/alerts.md shows the check in a few lines of Python; `verify` is the same check.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Rollwatch-Signature";

/// A receiver's default tolerance for the signature's age.
pub const REPLAY_TOLERANCE_SECONDS: i64 = 300;

const SECRET_PREFIX: &str = "rwh_";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Derives each destination's signing secret from the server secret and the destination's
/// random salt: nothing secret is stored, and a copy of the database cannot sign.
#[derive(Clone)]
pub struct DestinationSecrets {
    key: Vec<u8>,
}

impl DestinationSecrets {
    pub fn new(server_secret: &[u8]) -> Self {
        let key = hmac(server_secret, &[b"rollwatch alert destination secrets"])
            .finalize()
            .into_bytes()
            .to_vec();
        DestinationSecrets { key }
    }

    /// `rwh_` and 64 hex characters.
    pub fn secret(&self, salt: &str) -> String {
        let mac = hmac(&self.key, &[salt.as_bytes()]).finalize().into_bytes();
        format!("{SECRET_PREFIX}{}", hex::encode(mac))
    }
}

/// The header value for `body` sent at `timestamp`.
pub fn header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac(secret.as_bytes(), &[t.as_bytes(), b".", body])
        .finalize()
        .into_bytes();
    format!("t={t},v1={}", hex::encode(mac))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is not t=<seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the signature is older than the tolerance (a replay?)")]
    TooOld,
}

/// The receiver's check: the HMAC matches (in constant time) and the timestamp is within
/// `tolerance` seconds of `now`.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signature = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(VerifyError::Malformed);
    };
    let t = timestamp.to_string();
    hmac(secret.as_bytes(), &[t.as_bytes(), b".", body])
        .verify_slice(&signature)
        .map_err(|_| VerifyError::Mismatch)?;
    if (now - timestamp).abs() > tolerance {
        return Err(VerifyError::TooOld);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let secrets = DestinationSecrets::new(b"server secret");
        let secret = secrets.secret("salt-1");
        assert!(secret.starts_with("rwh_") && secret.len() == 68);
        assert_eq!(secret, secrets.secret("salt-1"));
        assert_ne!(secret, secrets.secret("salt-2"));
        assert_ne!(secret, DestinationSecrets::new(b"other").secret("salt-1"));

        let body = br#"{"event":"gate.fail"}"#;
        let signed = header(&secret, 1_000_000, body);
        let tolerance = REPLAY_TOLERANCE_SECONDS;
        assert_eq!(verify(&secret, &signed, body, 1_000_010, tolerance), Ok(()));
        assert_eq!(
            verify(&secret, &signed, b"{}", 1_000_010, tolerance),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                &secrets.secret("salt-2"),
                &signed,
                body,
                1_000_010,
                tolerance
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&secret, &signed, body, 1_000_000 + 301, tolerance),
            Err(VerifyError::TooOld)
        );
        // A timestamp moved forward to pass the age check breaks the HMAC.
        let moved = signed.replace("t=1000000", "t=1000301");
        assert_eq!(
            verify(&secret, &moved, body, 1_000_301, tolerance),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&secret, "v1=00", body, 0, tolerance),
            Err(VerifyError::Malformed)
        );
    }
}
