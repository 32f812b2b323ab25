//! A Sentry request body as the SDK encoded it (`Content-Encoding: gzip | deflate | br` or
//! none), inflated through a fixed buffer that stops one byte past the cap, so a bomb costs
//! at most the cap and is refused, not inflated.

use std::io::Read;

use axum::http::{HeaderMap, header};
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use crate::error::ApiError;

/// The body decoded, when it is at most `cap` bytes once decoded.
pub fn decode(headers: &HeaderMap, raw: &[u8], cap: u64) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => capped(raw, cap),
        "gzip" | "x-gzip" => inflate(MultiGzDecoder::new(raw), cap),
        // HTTP's `deflate` is zlib-wrapped, but some clients send raw deflate; the zlib
        // header's check bits tell them apart.
        "deflate" if is_zlib(raw) => inflate(ZlibDecoder::new(raw), cap),
        "deflate" => inflate(DeflateDecoder::new(raw), cap),
        "br" => inflate(brotli_decompressor::Decompressor::new(raw, 16 * 1024), cap),
        other => Err(ApiError::Malformed(format!(
            "Content-Encoding {other:?} is not one of gzip, deflate, br"
        ))),
    }
}

fn is_zlib(raw: &[u8]) -> bool {
    match raw {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

fn capped(raw: &[u8], cap: u64) -> Result<Vec<u8>, ApiError> {
    if raw.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(raw.to_vec())
}

fn inflate(decoder: impl Read, cap: u64) -> Result<Vec<u8>, ApiError> {
    let mut decoded = Vec::new();
    decoder
        .take(cap + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| ApiError::Malformed(format!("the body does not decode as it says: {e}")))?;
    if decoded.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(decoded)
}

fn too_large(cap: u64) -> ApiError {
    ApiError::TooLarge {
        what: "the decoded request body",
        limit: cap,
        field: None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    use super::*;

    fn encoded(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(encoding).expect("header"),
        );
        headers
    }

    #[test]
    fn gzip_and_zlib_decode_to_what_was_sent() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{}\n").expect("write");
        let gz = gz.finish().expect("gzip");
        assert_eq!(decode(&encoded("gzip"), &gz, 100).expect("gzip"), b"{}\n");
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(b"{}\n").expect("write");
        let zlib = zlib.finish().expect("zlib");
        assert_eq!(
            decode(&encoded("deflate"), &zlib, 100).expect("zlib"),
            b"{}\n"
        );
        assert_eq!(decode(&HeaderMap::new(), b"{}", 100).expect("plain"), b"{}");
    }

    #[test]
    fn a_bomb_is_refused_one_byte_past_the_cap() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&vec![b'a'; 10 << 20]).expect("write");
        let bomb = gz.finish().expect("gzip");
        assert!(bomb.len() < 20 << 10, "{} bytes", bomb.len());
        let err = decode(&encoded("gzip"), &bomb, 1 << 20).expect_err("a bomb");
        assert!(matches!(err, ApiError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn an_unknown_or_lying_encoding_is_refused() {
        for (encoding, body) in [("compress", &b"x"[..]), ("gzip", b"not gzip")] {
            let err = decode(&encoded(encoding), body, 10).expect_err(encoding);
            assert!(matches!(err, ApiError::Malformed(_)), "{err:?}");
        }
    }
}
