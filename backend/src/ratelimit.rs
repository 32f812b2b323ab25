//! Per-key and per-device rate limits on ingestion (governor, in memory, per replica).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub type NotUntil = governor::NotUntil<<DefaultClock as Clock>::Instant>;

/// Whole seconds until a refused caller may try again, rounded up (`Retry-After`).
pub fn retry_after_secs(clock: &DefaultClock, not_until: &NotUntil) -> u64 {
    let wait = not_until.wait_time_from(clock.now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

pub struct RateLimits {
    per_key: DefaultKeyedRateLimiter<i64>,
    per_device: DefaultKeyedRateLimiter<u64>,
    /// Device ids are kept only as salted hashes, even in memory.
    device_hasher: RandomState,
    clock: DefaultClock,
}

pub fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    pub fn new(per_key_per_minute: u32, per_device_per_minute: u32) -> Self {
        RateLimits {
            per_key: RateLimiter::keyed(per_minute(per_key_per_minute)),
            per_device: RateLimiter::keyed(per_minute(per_device_per_minute)),
            device_hasher: RandomState::new(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one report from the device's allowance (when it names itself), then the key's.
    pub fn check(&self, key_id: i64, device_id: Option<&str>) -> Result<(), ApiError> {
        if let Some(device) = device_id {
            let hashed = self.device_hasher.hash_one((key_id, device));
            self.per_device
                .check_key(&hashed)
                .map_err(|not_until| self.limited(not_until))?;
        }
        self.per_key
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
        self.per_key.retain_recent();
        self.per_key.shrink_to_fit();
        self.per_device.retain_recent();
        self.per_device.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_limit_holds_and_says_when_to_retry() {
        let limits = RateLimits::new(3, 100);
        for _ in 0..3 {
            limits.check(1, None).expect("within the limit");
        }
        match limits.check(1, None) {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limits
            .check(2, None)
            .expect("another key has its own allowance");
    }

    #[test]
    fn one_device_cannot_use_up_the_key() {
        let limits = RateLimits::new(100, 2);
        limits.check(1, Some("device-a")).expect("first");
        limits.check(1, Some("device-a")).expect("second");
        assert!(limits.check(1, Some("device-a")).is_err());
        limits.check(1, Some("device-b")).expect("other device");
    }
}
