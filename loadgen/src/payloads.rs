//! The request bodies of each scenario, built once before the run so the load generator
//! spends its time sending, not formatting.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

/// Distinct groups in the many-groups scenarios.
const DISTINCT_GROUPS: usize = 10_000;
/// In the details scenario, one request in this many carries details.
const DETAILS_EVERY: usize = 10;
/// Size of the details text before gzip.
const DETAILS_BYTES: usize = 8 * 1024;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Scenario {
    HotGroup,
    DistinctGroups,
    TenPercentDetails,
}

impl Scenario {
    pub fn title(self) -> &'static str {
        match self {
            Scenario::HotGroup => "one hot group",
            Scenario::DistinctGroups => "10,000 distinct groups",
            Scenario::TenPercentDetails => "10,000 groups, 10% with 8 KiB details",
        }
    }

    /// The bodies to cycle through: request `n` sends `bodies[n % len]`.
    pub fn bodies(self, app_name: &str) -> Result<Vec<Bytes>, std::io::Error> {
        match self {
            Scenario::HotGroup => Ok(vec![report(app_name, 0, None)]),
            Scenario::DistinctGroups => Ok((0..DISTINCT_GROUPS)
                .map(|group| report(app_name, group, None))
                .collect()),
            Scenario::TenPercentDetails => (0..DISTINCT_GROUPS)
                .map(|group| {
                    let details = if group % DETAILS_EVERY == 0 {
                        Some(gzip_base64(&details_text(group))?)
                    } else {
                        None
                    };
                    Ok(report(app_name, group, details.as_deref()))
                })
                .collect(),
        }
    }
}

/// A crash report of `app_name` in group number `group`, with base64 gzip details if given.
fn report(app_name: &str, group: usize, details: Option<&str>) -> Bytes {
    let mut body = json!({
        "application": { "name": app_name, "version": "4.2.0", "channel": "stable" },
        "system": { "platform": "windows", "arch": "x86_64", "os_version": "10.0.22631" },
        "event": { "type": "crash", "reason": format!("EXCEPTION_ACCESS_VIOLATION_{group:05}") },
    });
    if let Some(data) = details {
        body["details"] = json!({ "encoding": "gzip", "data": data });
    }
    Bytes::from(body.to_string())
}

/// A stack-trace-like text of `DETAILS_BYTES`, different for every group (xorshift addresses,
/// so gzip cannot shrink it to nothing).
fn details_text(group: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ group as u64;
    let mut text = Vec::with_capacity(DETAILS_BYTES + 64);
    let mut frame = 0;
    while text.len() < DETAILS_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.extend_from_slice(
            format!(
                "#{frame:03} 0x{state:016x} in module_{:02}.dll\n",
                state % 97
            )
            .as_bytes(),
        );
        frame += 1;
    }
    text.truncate(DETAILS_BYTES);
    text
}

fn gzip_base64(bytes: &[u8]) -> Result<String, std::io::Error> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    Ok(STANDARD.encode(encoder.finish()?))
}

/// The mean body size in bytes, for the run's header.
pub fn mean_len(bodies: &[Bytes]) -> usize {
    bodies.iter().map(Bytes::len).sum::<usize>() / bodies.len().max(1)
}
