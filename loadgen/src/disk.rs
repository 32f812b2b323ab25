//! The disk's own latency during a run, the baseline for the server's commits.
//!
//! Every acknowledged report waits for a durable commit, so a disk that stalls shows up in the
//! server's tail latency however fast the code is. While a run goes on, a thread writes one
//! 4 KiB block to a file beside the database and waits for `fdatasync`, every 10 ms, as a
//! commit does; its latencies go into the table next to the run's, so a reader can tell a slow
//! server from a slow disk in the same row.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::load::quantile_ms;

const BLOCK: [u8; 4096] = [0x5a; 4096];
const PERIOD: Duration = Duration::from_millis(10);

/// A running probe; `finish` stops it and hands over what it measured.
pub struct DiskProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u32>>,
    path: PathBuf,
}

impl DiskProbe {
    /// Starts probing with a file in `dir`.
    pub fn start(dir: &Path) -> std::io::Result<DiskProbe> {
        let path = dir.join("disk-probe");
        let mut file = File::create(&path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut latencies_us = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let started = Instant::now();
                let synced = file
                    .seek(SeekFrom::Start(0))
                    .and_then(|_| file.write_all(&BLOCK))
                    .and_then(|()| file.sync_data());
                if synced.is_err() {
                    break;
                }
                let took = started.elapsed();
                latencies_us.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                std::thread::sleep(PERIOD.saturating_sub(took));
            }
            latencies_us
        });
        Ok(DiskProbe { stop, thread, path })
    }

    /// Stops the probe and removes its file.
    pub fn finish(self) -> DiskLatency {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies_us = self.thread.join().unwrap_or_default();
        let _ = std::fs::remove_file(&self.path);
        latencies_us.sort_unstable();
        DiskLatency { latencies_us }
    }
}

/// `fdatasync` latencies of one run, sorted.
#[derive(Debug, Default)]
pub struct DiskLatency {
    latencies_us: Vec<u32>,
}

impl DiskLatency {
    /// "p99 / max" in milliseconds, or a dash when nothing was measured.
    pub fn summary(&self) -> String {
        if self.latencies_us.is_empty() {
            return "–".to_owned();
        }
        format!(
            "{:.1} / {:.1}",
            quantile_ms(&self.latencies_us, 0.99),
            quantile_ms(&self.latencies_us, 1.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_syncs_and_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("loadgen-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let probe = DiskProbe::start(&dir).expect("probe");
        // Wait for the first block to be written, however busy the machine: `finish` then
        // waits for that block's sync, so at least one latency is measured. No timing here.
        let probe_file = dir.join("disk-probe");
        while std::fs::metadata(&probe_file).map_or(0, |m| m.len()) < BLOCK.len() as u64 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let latency = probe.finish();
        assert!(!latency.latencies_us.is_empty());
        assert!(latency.latencies_us.is_sorted());
        assert_ne!(latency.summary(), "–");
        assert!(!dir.join("disk-probe").exists());
        std::fs::remove_dir(&dir).expect("the probe's file is gone, so the dir is empty");
    }
}
