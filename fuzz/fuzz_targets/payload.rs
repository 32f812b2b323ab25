//! The report, batch and usage parser (DESIGN §5): any bytes, no panic, bounded memory, and
//! whatever is accepted obeys the contract.

#![no_main]

use std::sync::atomic::AtomicUsize;

use libfuzzer_sys::fuzz_target;
use rollwatch::ingest::details;
use rollwatch::ingest::payload::{MAX_USAGE_COUNT, RawBatch, RawReport, RawUsage, parse};
use rollwatch::model::{
    Arch, EventType, MAX_CHANNEL_CHARS, MAX_NAME_CHARS, MAX_REASON_CHARS, MAX_VERSION_CHARS,
    Platform, Release, UsageKind,
};
use rollwatch_fuzz::{Tracking, measure, report_peak};

#[global_allocator]
static ALLOCATOR: Tracking = Tracking::new();
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The server's default details caps (config.rs, `REPORTS_MAX_DETAILS_*`).
const MAX_COMPRESSED: usize = 131_072;
const MAX_DECOMPRESSED: u64 = 1_048_576;

fuzz_target!(|data: &[u8]| {
    let ((), peak) = measure(&ALLOCATOR, || check(data));
    report_peak(&PEAK, "payload", peak, data.len());
    // Parsing copies strings out of the input and builds error messages: a small multiple of
    // the input, plus a decoder's fixed state when an accepted report has details.
    let bound = 16 * data.len() + (1 << 20);
    assert!(
        peak <= bound,
        "{peak} bytes live at once for a {}-byte input",
        data.len()
    );
});

fn check(data: &[u8]) {
    check_report(data);
    if let Ok(batch) = parse::<RawBatch>(data) {
        for item in &batch.reports {
            check_report(item.get().as_bytes());
        }
    }
    if let Ok(raw) = parse::<RawUsage>(data) {
        if let Ok(usage) = raw.validate() {
            assert!(
                (1..=MAX_USAGE_COUNT).contains(&usage.count),
                "{}",
                usage.count
            );
            assert_eq!(usage.count, raw.count);
            assert_eq!(
                UsageKind::from_stored(usage.kind.as_str()),
                Some(usage.kind)
            );
            check_release(&usage.release);
        }
    }
}

fn check_report(bytes: &[u8]) {
    let Ok(raw) = parse::<RawReport>(bytes) else {
        return;
    };
    let Ok(key) = raw.group_key() else {
        return;
    };
    check_release(&key.release);
    check_text(&key.reason, MAX_REASON_CHARS);
    assert_eq!(
        EventType::from_stored(key.event_type.as_str()),
        Some(key.event_type)
    );
    if let Some(os_version) = &raw.system.os_version {
        check_text(os_version.trim(), MAX_VERSION_CHARS);
    }
    // The same report parsed twice is the same group.
    let again = parse::<RawReport>(bytes)
        .expect("parsed once")
        .group_key()
        .expect("accepted once");
    assert_eq!(again, key);
    assert_eq!(again.hash(), key.hash());
    assert_eq!(key.hash().len(), 64);
    if let Some(d) = &raw.details {
        if let Ok(details) = details::decode(&d.encoding, &d.data, MAX_COMPRESSED, MAX_DECOMPRESSED)
        {
            assert!(details.gzip.len() <= MAX_COMPRESSED);
            assert!(details.decompressed_len <= MAX_DECOMPRESSED);
        }
    }
}

fn check_release(release: &Release) {
    check_text(&release.app_name, MAX_NAME_CHARS);
    check_text(&release.version, MAX_VERSION_CHARS);
    check_text(&release.channel, MAX_CHANNEL_CHARS);
    assert_eq!(
        Platform::from_stored(release.platform.as_str()),
        Some(release.platform)
    );
    assert_eq!(Arch::from_stored(release.arch.as_str()), Some(release.arch));
}

/// What `model::text` promises of an accepted value.
fn check_text(value: &str, max: usize) {
    assert!(!value.is_empty(), "empty value accepted");
    assert_eq!(value, value.trim(), "untrimmed value accepted: {value:?}");
    assert!(
        value.chars().count() <= max,
        "over {max} characters: {value:?}"
    );
    for c in value.chars() {
        assert!(!c.is_control(), "control character accepted: {value:?}");
        assert!(
            c == ' ' || !c.is_whitespace(),
            "space other than U+0020 accepted: {value:?}"
        );
        assert!(
            !matches!(u32::from(c), 0x00AD | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xE0001 | 0xE0020..=0xE007F),
            "invisible character U+{:04X} accepted: {value:?}",
            u32::from(c)
        );
    }
}
