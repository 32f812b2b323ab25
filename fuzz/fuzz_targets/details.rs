//! The details decoder: any input and caps, no panic, never past either cap, and memory
//! bounded by the input rather than by what the gzip inflates to.
//!
//! Input layout: byte 0 picks the mode, bytes 1..4 the caps, the rest is the payload.
//! Mode bit 0 set: the payload is sent as is (the fuzzer explores base64 and its errors);
//! clear: the payload is base64-encoded first (the fuzzer explores gzip). Bit 1 set: the
//! encoding is not "gzip". Bit 2 set: the base64 is wrapped in spaces, which `decode` trims.

#![no_main]

use std::io::Read;
use std::sync::atomic::AtomicUsize;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use rollwatch::error::ApiError;
use rollwatch::ingest::details::decode;
use rollwatch_fuzz::{Tracking, measure, report_peak};

#[global_allocator]
static ALLOCATOR: Tracking = Tracking::new();
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// What the decoder may hold beyond its input and the decoded gzip: flate2's inflate state
/// (a 32 KiB window and its tables) and error messages. "A few KiB" in details.rs, so
/// 256 KiB is a generous ceiling.
const FIXED_STATE: usize = 256 * 1024;

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let mode = input[0];
    // Caps like the configuration's: compressed 1..=64 KiB, decompressed from that to 4 MiB.
    let max_compressed = 1 + usize::from(u16::from_le_bytes([input[1], input[2]]));
    let max_decompressed =
        max_compressed as u64 + (u64::from(input[3]) << 14) % ((4 << 20) - max_compressed as u64);
    let payload = &input[4..];
    let data = if mode & 1 == 1 {
        String::from_utf8_lossy(payload).into_owned()
    } else {
        STANDARD.encode(payload)
    };
    let data = if mode & 4 == 4 {
        format!("  {data}\n")
    } else {
        data
    };
    let encoding = if mode & 2 == 2 { "zstd" } else { "gzip" };

    let (outcome, peak) = measure(&ALLOCATOR, || {
        decode(encoding, &data, max_compressed, max_decompressed)
    });
    report_peak(&PEAK, "details", peak, data.len());
    assert!(
        peak <= 2 * data.len() + FIXED_STATE,
        "{peak} bytes live at once for {} bytes of details (caps {max_compressed}/{max_decompressed})",
        data.len()
    );

    match outcome {
        Ok(details) => {
            assert_eq!(encoding, "gzip");
            assert!(details.gzip.len() <= max_compressed);
            assert!(details.decompressed_len <= max_decompressed);
            assert_eq!(
                STANDARD.decode(data.trim()).ok().as_ref(),
                Some(&details.gzip)
            );
            // The length counted is what a full inflate yields.
            let mut inflated = Vec::new();
            MultiGzDecoder::new(details.gzip.as_slice())
                .take(max_decompressed + 1)
                .read_to_end(&mut inflated)
                .expect("accepted gzip inflates");
            assert_eq!(inflated.len() as u64, details.decompressed_len);
        }
        Err(ApiError::TooLarge { limit, .. }) => {
            assert!(limit == max_compressed as u64 || limit == max_decompressed);
        }
        Err(ApiError::InvalidField { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
