//! Random secrets and their hashes: keys and tokens are shown once and stored only hashed.

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

/// `n` bytes from the operating system's RNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ServiceError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ServiceError::Random(e.to_string()))?;
    Ok(bytes)
}

/// `prefix` + 64 lowercase hex characters (32 random bytes).
pub fn new_secret(prefix: &str) -> Result<String, ServiceError> {
    Ok(format!("{prefix}{}", hex::encode(random_bytes::<32>()?)))
}

/// True when `secret` is `prefix` followed by exactly 64 lowercase hex characters.
pub fn has_secret_format(secret: &str, prefix: &str) -> bool {
    secret.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 64
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Lowercase hex of the SHA-256 of `data`, as keys, tokens and group hashes are stored.
///
/// Written out rather than `hex::encode`, whose per-character iterator showed up in the
/// ingest path's profile (two hashes per report).
pub fn sha256_hex(data: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(data.as_bytes()) {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// What may be shown of a secret after creation: its type prefix and a few characters.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_format_and_differ() {
        let a = new_secret("rpk_").expect("os rng");
        let b = new_secret("rpk_").expect("os rng");
        assert!(has_secret_format(&a, "rpk_"), "{a}");
        assert_ne!(a, b);
        assert!(!has_secret_format(&a.to_uppercase(), "rpk_"));
        assert!(!has_secret_format(&a[..40], "rpk_"));
        assert!(!has_secret_format(&a.replacen("rpk_", "rwt_", 1), "rpk_"));
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
