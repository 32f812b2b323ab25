//! CPU time spent per answered request, by the server and by PostgreSQL.
//!
//! Throughput on a shared two-core machine moves with whatever else runs; the CPU time each
//! request costs does not, so it is the figure to compare between runs and between versions.

use std::time::Duration;

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`) on every architecture
/// it runs on, whatever the kernel's own tick rate.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) a process has used so far, its finished threads included.
pub fn process(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name, in parentheses, may hold spaces; the fields after it are plain numbers.
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace();
    // After the name come state (3rd field of the line) … utime (14th) and stime (15th).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// CPU time used so far by every PostgreSQL process on this machine (the server, its
/// background workers and every connection's backend), ended backends excluded.
pub fn postgres() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.starts_with("postgres"))
        })
        .filter_map(process)
        .sum()
}

/// A reading of both, taken before and after a run.
#[derive(Clone, Copy)]
pub struct CpuReading {
    server: Duration,
    postgres: Duration,
}

impl CpuReading {
    pub fn take(server_pid: u32) -> CpuReading {
        CpuReading {
            server: process(server_pid).unwrap_or_default(),
            postgres: postgres(),
        }
    }

    /// Microseconds of CPU per request between `self` and the later reading `after`:
    /// "server / PostgreSQL".
    pub fn per_request(self, after: CpuReading, requests: u64) -> String {
        let per = |before: Duration, after: Duration| {
            after.saturating_sub(before).as_secs_f64() * 1e6 / requests.max(1) as f64
        };
        format!(
            "{:.0} / {:.0}",
            per(self.server, after.server),
            per(self.postgres, after.postgres)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_process_cpu_time_grows_by_the_work_it_does() {
        let pid = std::process::id();
        let before = process(pid).expect("own /proc/PID/stat");
        let started = Instant::now();
        let mut spins = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        let used = process(pid)
            .expect("own /proc/PID/stat")
            .saturating_sub(before);
        // 300 ms of spinning, less whatever the scheduler gave to others; ticks are 10 ms.
        assert!(
            used >= Duration::from_millis(100) && used <= Duration::from_millis(2000),
            "{used:?}"
        );
    }

    #[test]
    fn per_request_divides_the_growth_between_two_readings() {
        let before = CpuReading {
            server: Duration::from_millis(1000),
            postgres: Duration::from_millis(500),
        };
        let after = CpuReading {
            server: Duration::from_millis(1300),
            postgres: Duration::from_millis(600),
        };
        assert_eq!(before.per_request(after, 10_000), "30 / 10");
    }
}
