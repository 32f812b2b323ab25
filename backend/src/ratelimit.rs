//! Per-key and per-device rate limits on ingestion (governor, in memory, per replica).
//! Reports and usage have limits of their own: usage is the denominator of every rate, and
//! losing it to a crash storm's reports would inflate the rates.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::throttled::Traffic;

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

pub struct RateLimits {
    reports: Limits,
    usage: Limits,
    /// Device ids are kept only as salted hashes, even in memory.
    device_hasher: RandomState,
    clock: DefaultClock,
}

pub fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    pub fn new(reports: Allowance, usage: Allowance) -> Self {
        RateLimits {
            reports: Limits::new(reports.per_key, reports.per_device),
            usage: Limits::new(usage.per_key, usage.per_device),
            device_hasher: RandomState::new(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request of `traffic` from the device's allowance (when it names itself),
    /// then the key's.
    pub fn check(
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
        let limits = RateLimits::new(allowing(3, 100), allowing(100, 100));
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

    #[test]
    fn one_device_cannot_use_up_the_key() {
        let limits = RateLimits::new(allowing(100, 2), allowing(100, 2));
        let reports = |device| limits.check(Traffic::Reports, 1, Some(device));
        reports("device-a").expect("first");
        reports("device-a").expect("second");
        assert!(reports("device-a").is_err());
        reports("device-b").expect("other device");
    }
}
