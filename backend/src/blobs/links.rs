//! Download links for the Local store: `/blobs/{id}?expires=…&sig=…`, where `sig` is an
//! HMAC-SHA256 over the id and the expiry, so a link cannot be extended or pointed elsewhere.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separates the link key from the session key both are derived from.
const LINK_KEY_CONTEXT: &[u8] = b"rollwatch blob download links v1";

pub struct LinkSigner {
    key: [u8; 32],
}

impl LinkSigner {
    /// Derives the link key from the server secret.
    pub fn new(server_secret: &[u8]) -> Self {
        LinkSigner {
            key: mac(server_secret, LINK_KEY_CONTEXT)
                .finalize()
                .into_bytes()
                .into(),
        }
    }

    fn mac(&self, blob_id: &str, expires: i64) -> HmacSha256 {
        mac(&self.key, format!("{blob_id}\n{expires}").as_bytes())
    }

    /// The path and query of a link to `blob_id` valid until `expires_at`.
    pub fn path(&self, blob_id: &str, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        let sig = hex::encode(self.mac(blob_id, expires).finalize().into_bytes());
        format!("/blobs/{blob_id}?expires={expires}&sig={sig}")
    }

    /// True when `sig` was made here for this id and expiry, and the expiry has not passed.
    pub fn verify(&self, blob_id: &str, expires: i64, sig: &str, now: DateTime<Utc>) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        // Constant-time comparison.
        let genuine = self.mac(blob_id, expires).verify_slice(&sig).is_ok();
        genuine && now.timestamp() < expires
    }
}

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> (String, i64, String) {
        let (id, query) = path
            .strip_prefix("/blobs/")
            .and_then(|rest| rest.split_once('?'))
            .expect("link shape");
        let mut expires = 0;
        let mut sig = String::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse().expect("number"),
                Some(("sig", v)) => sig = v.to_owned(),
                _ => panic!("unexpected {pair}"),
            }
        }
        (id.to_owned(), expires, sig)
    }

    #[test]
    fn links_verify_until_they_expire_and_only_untouched() {
        let signer = LinkSigner::new(b"server secret of some length....");
        let now = Utc::now();
        let (id, expires, sig) = parts(&signer.path("abc123", now + chrono::Duration::seconds(60)));
        assert!(signer.verify(&id, expires, &sig, now));
        assert!(!signer.verify(&id, expires, &sig, now + chrono::Duration::seconds(61)));
        assert!(!signer.verify("abc124", expires, &sig, now));
        assert!(!signer.verify(&id, expires + 3600, &sig, now));
        let flipped = format!(
            "{}{}",
            if sig.starts_with('0') { '1' } else { '0' },
            &sig[1..]
        );
        assert!(!signer.verify(&id, expires, &flipped, now));
        assert!(!signer.verify(&id, expires, "zz", now));
        let other = LinkSigner::new(b"another server secret...........");
        assert!(!other.verify(&id, expires, &sig, now));
    }
}
