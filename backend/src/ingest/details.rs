//! Debug details: base64 of gzip, checked against both caps without ever inflating past them.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::read::MultiGzDecoder;

use crate::error::ApiError;

/// Details that passed every check, kept compressed exactly as sent.
#[derive(Debug, Clone)]
pub struct Details {
    pub gzip: Vec<u8>,
    pub decompressed_len: u64,
}

pub fn decode(
    encoding: &str,
    data: &str,
    max_compressed: usize,
    max_decompressed: u64,
) -> Result<Details, ApiError> {
    if encoding != "gzip" {
        return Err(ApiError::invalid(
            "details.encoding",
            "details.encoding must be \"gzip\"",
        ));
    }
    // Refuse before decoding: base64 carries 3 bytes in every 4 characters.
    if data.len() > max_compressed.div_ceil(3) * 4 {
        return Err(too_large_compressed(max_compressed));
    }
    let gzip = STANDARD.decode(data.trim()).map_err(|e| {
        ApiError::invalid("details.data", format!("details.data is not base64: {e}"))
    })?;
    if gzip.len() > max_compressed {
        return Err(too_large_compressed(max_compressed));
    }
    let decompressed_len = inflated_len(&gzip, max_decompressed)?;
    Ok(Details {
        gzip,
        decompressed_len,
    })
}

fn too_large_compressed(limit: usize) -> ApiError {
    ApiError::TooLarge {
        what: "details",
        limit: limit as u64,
        field: Some("details.data"),
    }
}

/// Streams the gzip through a fixed buffer, stopping one byte past the cap: a zip bomb costs
/// at most the cap in CPU and a few KiB of memory.
fn inflated_len(gzip: &[u8], max_decompressed: u64) -> Result<u64, ApiError> {
    let mut decoder = MultiGzDecoder::new(gzip).take(max_decompressed + 1);
    let mut buffer = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        match decoder.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => {
                return Err(ApiError::invalid(
                    "details.data",
                    format!("details.data is not valid gzip: {e}"),
                ));
            }
        }
    }
    if total > max_decompressed {
        return Err(ApiError::TooLarge {
            what: "decompressed details",
            limit: max_decompressed,
            field: Some("details.data"),
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip_base64(bytes: &[u8]) -> String {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(bytes).expect("in-memory write");
        STANDARD.encode(encoder.finish().expect("in-memory gzip"))
    }

    #[test]
    fn keeps_valid_details_compressed() {
        let data = gzip_base64(br#"{"stack": ["main", "crash"]}"#);
        let details = decode("gzip", &data, 1024, 1024).expect("valid details");
        assert_eq!(details.decompressed_len, 28);
        assert_eq!(STANDARD.encode(&details.gzip), data);
    }

    #[test]
    fn refuses_a_bomb_at_the_decompressed_cap() {
        let bomb = gzip_base64(&vec![0u8; 8 << 20]);
        let err = decode("gzip", &bomb, 64 * 1024, 1 << 20).expect_err("bomb");
        assert!(matches!(
            err,
            ApiError::TooLarge {
                what: "decompressed details",
                ..
            }
        ));
    }

    #[test]
    fn refuses_garbage_and_oversized_input() {
        assert!(matches!(
            decode("gzip", "%%%not base64%%%", 1024, 1024),
            Err(ApiError::InvalidField { .. })
        ));
        assert!(matches!(
            decode(
                "gzip",
                &STANDARD.encode(b"plain text, not gzip"),
                1024,
                1024
            ),
            Err(ApiError::InvalidField { .. })
        ));
        assert!(matches!(
            decode("zstd", "", 1024, 1024),
            Err(ApiError::InvalidField { field, .. }) if field == "details.encoding"
        ));
        let big = STANDARD.encode(vec![7u8; 2048]);
        assert!(matches!(
            decode("gzip", &big, 1024, 1024),
            Err(ApiError::TooLarge {
                what: "details",
                ..
            })
        ));
    }
}
