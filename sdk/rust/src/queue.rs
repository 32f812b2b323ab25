//! The durable queue: one file per pending report, batches formed on disk. The layout and
//! rules are the Python client's (`sdk/python/rollwatch/_queue.py`):
//!
//! ```text
//! device_id            the random install id (when enabled)
//! lock                 held (File::try_lock) by the one process sending at a time
//! pending/             <time_ns>-<pid>-<rand>.r.json (a report) or .u.json (one usage count)
//! batches/<name>/      members moved out of pending/ + meta.json (idempotency key, files)
//! ```
//!
//! Every file is written to a dot-named temp file and renamed into place, so a reader sees a
//! whole file or none. A report is in exactly one place at a time: pending files are moved
//! into a batch folder assembled under a dot name and renamed into place whole.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const REPORT: &str = ".r.json";
const USAGE: &str = ".u.json";
const META: &str = "meta.json";
const FORMING: &str = ".forming-";

/// 2n random hex characters; an Idempotency-Key is `random_hex(16)`.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // No OS randomness: time and pid still make names unique within this machine.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8 ^ std::process::id() as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = folder.join(format!(".tmp-{name}-{}", random_hex(4)));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        let _ = f.sync_all();
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Visible names in a folder, sorted (oldest first, as names start with the time).
fn list(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A formed batch: its folder and meta.json (`{"type", "key", "files"}`).
pub struct Batch {
    pub path: PathBuf,
    pub kind: String,
    pub key: String,
    pub files: Vec<String>,
}

impl Batch {
    /// (name, payload) of the members still on disk, in the batch's order.
    pub fn members(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for name in &self.files {
            let path = self.path.join(name);
            match fs::read(&path) {
                Ok(data) => match serde_json::from_slice(&data) {
                    Ok(payload) => out.push((name.clone(), payload)),
                    Err(e) => {
                        log::warn!("rollwatch: dropping unreadable queued report {name}: {e}");
                        let _ = fs::remove_file(&path);
                    }
                },
                Err(_) => continue, // trimmed meanwhile
            }
        }
        out
    }

    /// Keeps `names` under a fresh key; every other member is removed.
    pub fn keep_only(&mut self, names: &[String]) -> std::io::Result<()> {
        self.key = random_hex(16);
        self.files = names.to_vec();
        let meta = json!({"type": self.kind, "key": self.key, "files": self.files});
        write_atomically(&self.path.join(META), meta.to_string().as_bytes())?;
        for name in list(&self.path) {
            if name != META && !names.contains(&name) {
                let _ = fs::remove_file(self.path.join(name));
            }
        }
        Ok(())
    }

    pub fn delete(&self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub struct Queue {
    pub folder: PathBuf,
    pending: PathBuf,
    batches: PathBuf,
    max_files: usize,
    max_bytes: u64,
    lock: File,
}

/// One queued unit for trimming: a pending file or a whole batch.
struct Unit {
    name: String,
    path: PathBuf,
    is_batch: bool,
    files: usize,
    bytes: u64,
}

impl Queue {
    pub fn open(folder: &Path, max_files: usize, max_bytes: u64) -> std::io::Result<Queue> {
        let pending = folder.join("pending");
        let batches = folder.join("batches");
        fs::create_dir_all(&pending)?;
        fs::create_dir_all(&batches)?;
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(folder.join("lock"))?;
        Ok(Queue {
            folder: folder.to_path_buf(),
            pending,
            batches,
            max_files: max_files.max(1),
            max_bytes: max_bytes.max(1),
            lock,
        })
    }

    // --- any process ----------------------------------------------------------------

    pub fn put(&self, usage: bool, payload: &Value) -> std::io::Result<()> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let suffix = if usage { USAGE } else { REPORT };
        let name = format!(
            "{nanos:020}-{}-{}{suffix}",
            std::process::id(),
            random_hex(4)
        );
        write_atomically(&self.pending.join(name), payload.to_string().as_bytes())?;
        self.trim();
        Ok(())
    }

    fn units(&self) -> Vec<Unit> {
        let mut out: Vec<Unit> = list(&self.pending)
            .into_iter()
            .map(|name| {
                let path = self.pending.join(&name);
                let bytes = size(&path);
                Unit {
                    name,
                    path,
                    is_batch: false,
                    files: 1,
                    bytes,
                }
            })
            .collect();
        let names = fs::read_dir(&self.batches)
            .map(|e| {
                e.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for name in names {
            if name.starts_with('.') && !name.starts_with(FORMING) {
                continue;
            }
            let path = self.batches.join(&name);
            let members: Vec<String> = list(&path).into_iter().filter(|n| n != META).collect();
            let bytes = members.iter().map(|n| size(&path.join(n))).sum();
            // A batch being formed sorts first and is never dropped (see trim).
            out.push(Unit {
                name,
                path,
                is_batch: true,
                files: members.len(),
                bytes,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Drops the oldest reports (a formed batch as a whole) until within both bounds.
    pub fn trim(&self) {
        let units = self.units();
        let mut files: usize = units.iter().map(|u| u.files).sum();
        let mut bytes: u64 = units.iter().map(|u| u.bytes).sum();
        for unit in units {
            if files <= self.max_files && bytes <= self.max_bytes {
                break;
            }
            if unit.name.starts_with('.') {
                continue; // being formed by the sender right now
            }
            if unit.is_batch {
                // Renamed away first, so a sender sees the whole batch or none of it.
                let gone = self.batches.join(format!(".drop-{}", random_hex(6)));
                if fs::rename(&unit.path, &gone).is_err() {
                    continue;
                }
                let _ = fs::remove_dir_all(&gone);
            } else if fs::remove_file(&unit.path).is_err() {
                continue;
            }
            files -= unit.files;
            bytes -= unit.bytes;
            log::warn!(
                "rollwatch: queue full, dropped {} oldest report(s)",
                unit.files
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        if !list(&self.pending).is_empty() {
            return false;
        }
        // A batch being formed (".forming-…") holds reports too.
        !fs::read_dir(&self.batches)
            .map(|e| {
                e.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .any(|n| !n.starts_with('.') || n.starts_with(FORMING))
            })
            .unwrap_or(false)
    }

    /// Reports and counts queued; read until two readings agree, as a sender may be moving
    /// files between folders meanwhile.
    pub fn count(&self) -> usize {
        let mut last = None;
        for _ in 0..20 {
            let now: usize = self.units().iter().map(|u| u.files).sum();
            if last == Some(now) {
                break;
            }
            last = Some(now);
            std::thread::sleep(Duration::from_millis(5));
        }
        last.unwrap_or(0)
    }

    // --- the lock holder ------------------------------------------------------------

    /// The sender's lock, released by `unlock` or when the process dies.
    pub fn try_lock(&self) -> bool {
        self.lock.try_lock().is_ok()
    }

    pub fn unlock(&self) {
        let _ = self.lock.unlock();
    }

    /// Undoes what a sender that died mid-way left: half-formed batches, old temp files.
    pub fn recover(&self) {
        for parent in [&self.pending, &self.batches] {
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let path = entry.path();
                if name.starts_with(FORMING) {
                    for member in list(&path) {
                        if member != META {
                            let _ = fs::rename(path.join(&member), self.pending.join(&member));
                        }
                    }
                    let _ = fs::remove_dir_all(&path);
                } else if name.starts_with(".tmp-") || name.starts_with(".drop-") {
                    let old = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(3600));
                    if old {
                        let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
                    }
                }
            }
        }
    }

    /// Moves every pending file into batches: reports by `max_reports` and by body size,
    /// usage counts by release and kind (summed when sent).
    pub fn form_batches(&self, max_reports: usize, max_body_bytes: u64) {
        let mut reports = Vec::new();
        let mut usage: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in list(&self.pending) {
            let path = self.pending.join(&name);
            if name.ends_with(REPORT) {
                reports.push((name, size(&path)));
            } else if name.ends_with(USAGE) {
                let Ok(data) = fs::read(&path) else {
                    continue;
                };
                match serde_json::from_slice::<Value>(&data) {
                    Ok(p) if p.get("kind").is_some() => {
                        let group = json!([p["application"], p["system"], p["kind"]]).to_string();
                        usage.entry(group).or_default().push(name);
                    }
                    _ => {
                        log::warn!("rollwatch: dropping unreadable queued count {name}");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for (name, bytes) in reports {
            if !chunk.is_empty()
                && (chunk.len() >= max_reports || chunk_bytes + bytes > max_body_bytes)
            {
                self.form("reports", std::mem::take(&mut chunk));
                chunk_bytes = 0;
            }
            chunk.push(name);
            chunk_bytes += bytes + 1;
        }
        if !chunk.is_empty() {
            self.form("reports", chunk);
        }
        for names in usage.into_values() {
            for part in names.chunks(10_000) {
                self.form("usage", part.to_vec());
            }
        }
    }

    fn form(&self, kind: &str, names: Vec<String>) {
        let tag = random_hex(4);
        let forming = self.batches.join(format!("{FORMING}{tag}"));
        if let Err(e) = fs::create_dir(&forming) {
            log::warn!("rollwatch: cannot form a batch: {e}");
            return;
        }
        let moved: Vec<String> = names
            .into_iter()
            .filter(|n| fs::rename(self.pending.join(n), forming.join(n)).is_ok())
            .collect();
        let Some(first) = moved.first() else {
            let _ = fs::remove_dir_all(&forming);
            return;
        };
        let stem = first.split('.').next().unwrap_or_default().to_owned();
        let meta = json!({"type": kind, "key": random_hex(16), "files": moved});
        let placed = write_atomically(&forming.join(META), meta.to_string().as_bytes())
            .and_then(|()| fs::rename(&forming, self.batches.join(format!("{stem}-{tag}"))));
        if let Err(e) = placed {
            // `recover` moves the members back on the next cycle.
            log::warn!("rollwatch: cannot place a batch: {e}");
        }
    }

    pub fn batches(&self) -> Vec<Batch> {
        let mut out = Vec::new();
        for name in list(&self.batches) {
            let path = self.batches.join(&name);
            let meta: Value = match fs::read(path.join(META)) {
                Ok(data) => serde_json::from_slice(&data).unwrap_or(Value::Null),
                Err(_) => continue, // dropped meanwhile
            };
            let (Some(kind), Some(key), Some(files)) = (
                meta["type"].as_str(),
                meta["key"].as_str(),
                meta["files"].as_array(),
            ) else {
                log::warn!("rollwatch: dropping a batch with an unreadable key file");
                let _ = fs::remove_dir_all(&path);
                continue;
            };
            out.push(Batch {
                kind: kind.to_owned(),
                key: key.to_owned(),
                files: files
                    .iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect(),
                path,
            });
        }
        out
    }
}
