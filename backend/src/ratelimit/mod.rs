//! Per-key and per-device rate limits on ingestion: in Redis when `REDIS_URL` is set, so the
//! limit is global across replicas (`shared`), else (and whenever Redis cannot answer) in
//! process with governor. Reports and usage have limits of their own: usage is the
//! denominator of every rate, and losing it to a crash storm's reports would inflate them.

pub mod shared;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::throttled::Traffic;
use shared::SharedLimits;

pub type NotUntil = governor::NotUntil<<DefaultClock as Clock>::Instant>;

/// Whole seconds until a refused caller may try again, rounded up (`Retry-After`).
pub fn retry_after_secs(clock: &DefaultClock, not_until: &NotUntil) -> u64 {
    let wait = not_until.wait_time_from(clock.now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// One kind of traffic's allowances.
struct Limits {
    per_key: DefaultKeyedRateLimiter<i64>,
    per_device: DefaultKeyedRateLimiter<u64>,
}

impl Limits {
    fn new(per_key_per_minute: u32, per_device_per_minute: u32) -> Self {
        Limits {
            per_key: RateLimiter::keyed(per_minute(per_key_per_minute)),
            per_device: RateLimiter::keyed(per_minute(per_device_per_minute)),
        }
    }

    fn forget_idle(&self) {
        self.per_key.retain_recent();
        self.per_key.shrink_to_fit();
        self.per_device.retain_recent();
        self.per_device.shrink_to_fit();
    }
}

/// Allowances per minute of one kind of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub per_key: u32,
    pub per_device: u32,
}

/// What one request was granted: `admitted` of the items it wanted; when fewer, the
/// `Retry-After` of the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub admitted: u64,
    pub retry_after_secs: u64,
}

pub struct RateLimits {
    allowances: [Allowance; 2],
    reports: Limits,
    usage: Limits,
    shared: Option<SharedLimits>,
    /// Redis failed at the last check: the local limiter decides until it answers again.
    shared_down: AtomicBool,
    /// Device ids are kept only as salted hashes, even in memory.
    device_hasher: RandomState,
    clock: DefaultClock,
}

pub fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    pub fn new(reports: Allowance, usage: Allowance, shared: Option<SharedLimits>) -> Self {
        RateLimits {
            allowances: [reports, usage],
            shared,
            shared_down: AtomicBool::new(false),
            reports: Limits::new(reports.per_key, reports.per_device),
            usage: Limits::new(usage.per_key, usage.per_device),
            device_hasher: RandomState::new(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes up to `wanted` items of `traffic` from the key's allowance and the device's
    /// (when it names itself): in Redis when configured and answering, else in process.
    pub async fn admit(
        &self,
        traffic: Traffic,
        key_id: i64,
        device_id: Option<&str>,
        wanted: u64,
    ) -> Admission {
        if let Some(shared) = &self.shared {
            let allowance = self.allowances[usize::from(traffic == Traffic::Usage)];
            match shared
                .take(traffic, allowance, key_id, device_id, wanted)
                .await
            {
                Ok(granted) => {
                    if self.shared_down.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "Redis answers again: rate limits are shared across replicas"
                        );
                    }
                    return Admission {
                        admitted: granted.admitted,
                        retry_after_secs: granted.wait_ms.div_ceil(1000).max(1),
                    };
                }
                Err(e) => {
                    if !self.shared_down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "Redis cannot be asked: rate limits fall back to this replica's own until it answers");
                    }
                }
            }
        }
        let mut admitted = 0;
        while admitted < wanted {
            match self.check(traffic, key_id, device_id) {
                Ok(()) => admitted += 1,
                Err(ApiError::RateLimited { retry_after_secs }) => {
                    return Admission {
                        admitted,
                        retry_after_secs,
                    };
                }
                Err(_) => break,
            }
        }
        Admission {
            admitted,
            retry_after_secs: 1,
        }
    }

    /// Where the limits are held, for `/readyz`.
    pub fn holder(&self) -> &'static str {
        match (&self.shared, self.shared_down.load(Ordering::Relaxed)) {
            (None, _) => "in-process",
            (Some(_), false) => "redis",
            (Some(_), true) => "in-process (Redis unreachable)",
        }
    }

    /// Takes one request of `traffic` from the device's allowance (when it names itself),
    /// then the key's, in process.
    fn check(
        &self,
        traffic: Traffic,
        key_id: i64,
        device_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let limits = match traffic {
            Traffic::Reports => &self.reports,
            Traffic::Usage => &self.usage,
        };
        if let Some(device) = device_id {
            let hashed = self.device_hasher.hash_one((key_id, device));
            limits
                .per_device
                .check_key(&hashed)
                .map_err(|not_until| self.limited(not_until))?;
        }
        limits
            .per_key
            .check_key(&key_id)
            .map_err(|not_until| self.limited(not_until))
    }

    fn limited(&self, not_until: NotUntil) -> ApiError {
        ApiError::RateLimited {
            retry_after_secs: retry_after_secs(&self.clock, &not_until),
        }
    }

    /// Forgets keys and devices that are back to a full allowance, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.reports.forget_idle();
        self.usage.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowing(per_key: u32, per_device: u32) -> Allowance {
        Allowance {
            per_key,
            per_device,
        }
    }

    #[test]
    fn the_key_limit_holds_and_says_when_to_retry() {
        let limits = RateLimits::new(allowing(3, 100), allowing(100, 100), None);
        for _ in 0..3 {
            limits
                .check(Traffic::Reports, 1, None)
                .expect("within the limit");
        }
        match limits.check(Traffic::Reports, 1, None) {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limits
            .check(Traffic::Reports, 2, None)
            .expect("another key has its own allowance");
        limits
            .check(Traffic::Usage, 1, None)
            .expect("usage has its own allowance");
    }

    #[tokio::test]
    async fn a_request_is_admitted_as_far_as_the_allowance_goes() {
        let limits = RateLimits::new(allowing(5, 100), allowing(100, 100), None);
        let first = limits.admit(Traffic::Reports, 1, None, 3).await;
        assert_eq!(first.admitted, 3);
        let second = limits.admit(Traffic::Reports, 1, None, 4).await;
        assert_eq!(second.admitted, 2);
        assert!(second.retry_after_secs >= 1);
        assert_eq!(limits.holder(), "in-process");
    }

    #[test]
    fn one_device_cannot_use_up_the_key() {
        let limits = RateLimits::new(allowing(100, 2), allowing(100, 2), None);
        let reports = |device| limits.check(Traffic::Reports, 1, Some(device));
        reports("device-a").expect("first");
        reports("device-a").expect("second");
        assert!(reports("device-a").is_err());
        reports("device-b").expect("other device");
    }
}
