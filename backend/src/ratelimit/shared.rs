//! Rate limits held in Redis (`REDIS_URL`), so every replica draws on one allowance per key
//! and per device (DESIGN §2). One Lua script takes as many requests as are wanted and fit,
//! atomically, by GCRA (the generic cell rate algorithm governor uses in process): each
//! bucket keeps only its "theoretical arrival time", in milliseconds of Redis's own clock, so
//! replicas' clocks do not matter and a bucket costs one small key that expires when full.
//!
//! Redis is an optimisation of correctness, never a dependency of ingestion: every call has
//! a short deadline, and a failure makes the caller fall back to its in-process limiter.
//! Device ids reach Redis only as an HMAC under the server secret, never as sent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use sha2::Sha256;

use super::Allowance;
use crate::throttled::Traffic;

/// How long a limit check may wait for Redis before the local limiter decides instead.
const CALL_DEADLINE: Duration = Duration::from_millis(250);
/// How often a lost connection is tried again; in between, the local limiter decides.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// KEYS: the key's bucket, then optionally the device's. ARGV: wanted, then per bucket its
/// emission interval (ms per request) and its burst (requests). Returns {admitted, wait_ms}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wanted = tonumber(ARGV[1])
local buckets = {}
local admitted = wanted
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local room = math.floor((now + burst * interval - tat) / interval)
  if room < 0 then room = 0 end
  if room < admitted then admitted = room end
  buckets[i] = { key = key, tat = tat, interval = interval, burst = burst }
end
local wait = 0
for _, b in ipairs(buckets) do
  local tat = b.tat + admitted * b.interval
  if admitted > 0 then
    redis.call('SET', b.key, tat, 'PX', math.ceil(tat - now) + 1000)
  end
  if admitted < wanted then
    local next_at = tat + b.interval - b.burst * b.interval
    if next_at - now > wait then wait = next_at - now end
  end
end
return { admitted, wait }
";

/// What Redis granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub admitted: u64,
    /// Milliseconds until one more would be admitted, when fewer than wanted were.
    pub wait_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("not connected to Redis; the next try is due shortly")]
    Waiting,
}

pub struct SharedLimits {
    client: Client,
    script: Script,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    last_attempt: Mutex<Option<Instant>>,
    device_key: Vec<u8>,
}

impl SharedLimits {
    /// `url` was validated with the config; `server_secret` keys the device ids' HMAC, the
    /// same on every replica.
    pub fn new(url: &str, server_secret: &[u8]) -> Result<SharedLimits, redis::RedisError> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(server_secret).expect("HMAC accepts keys of any length");
        mac.update(b"rollwatch rate-limited devices");
        Ok(SharedLimits {
            client: Client::open(url)?,
            script: Script::new(GCRA),
            connection: tokio::sync::Mutex::new(None),
            last_attempt: Mutex::new(None),
            device_key: mac.finalize().into_bytes().to_vec(),
        })
    }

    /// Takes up to `wanted` requests of `traffic` from the key's (and the device's) bucket.
    pub async fn take(
        &self,
        traffic: Traffic,
        limits: Allowance,
        key_id: i64,
        device: Option<&str>,
        wanted: u64,
    ) -> Result<Granted, SharedLimitError> {
        let mut connection = self.connection().await?;
        let kind = match traffic {
            Traffic::Reports => "reports",
            Traffic::Usage => "usage",
        };
        // Whole milliseconds keep the script's arithmetic exact (Lua numbers print as %.14g).
        let interval = |per_minute: u32| (60_000 / u64::from(per_minute.max(1))).max(1);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("rollwatch:limit:{kind}:key:{key_id}"))
            .arg(wanted)
            .arg(interval(limits.per_key))
            .arg(limits.per_key);
        if let Some(device) = device {
            invocation
                .key(format!(
                    "rollwatch:limit:{kind}:device:{}",
                    self.device_hash(key_id, device)
                ))
                .arg(interval(limits.per_device))
                .arg(limits.per_device);
        }
        let call = invocation.invoke_async::<(u64, u64)>(&mut connection);
        match tokio::time::timeout(CALL_DEADLINE, call).await {
            Ok(Ok((admitted, wait_ms))) => Ok(Granted { admitted, wait_ms }),
            Ok(Err(e)) => {
                self.forget_connection().await;
                Err(e.into())
            }
            Err(_) => {
                self.forget_connection().await;
                Err(SharedLimitError::Timeout(CALL_DEADLINE))
            }
        }
    }

    fn device_hash(&self, key_id: i64, device: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.device_key).expect("HMAC accepts any key");
        mac.update(&key_id.to_be_bytes());
        mac.update(device.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The connection, opened now if none is and the last try is long enough ago.
    async fn connection(&self) -> Result<MultiplexedConnection, SharedLimitError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
                return Err(SharedLimitError::Waiting);
            }
            *last = Some(Instant::now());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CALL_DEADLINE)
            .set_response_timeout(CALL_DEADLINE);
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }
}
