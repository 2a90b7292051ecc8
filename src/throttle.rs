//! Per-key request budgets (token buckets) kept in memory: each key may make up to
//! `per_minute` requests at once and earns them back evenly over a minute. Used by the
//! token endpoint, per client id and per source address.
//!
//! In memory and per process: with several replicas each one keeps its own budget, so
//! the budget a client sees is per replica. That bounds what one process spends on
//! Argon2, which is what the budget is for.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// At most this many keys are tracked; beyond it, keys whose budget is full again are
/// forgotten first (they would start full anyway), then the oldest.
const MAX_KEYS: usize = 10_000;

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s budget, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            forget_some(&mut buckets, now, capacity, per_second);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let earned = now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + earned).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

fn forget_some(
    buckets: &mut HashMap<String, Bucket>,
    now: Instant,
    capacity: f64,
    per_second: f64,
) {
    buckets.retain(|_, b| {
        let earned = now.saturating_duration_since(b.updated).as_secs_f64() * per_second;
        b.tokens + earned < capacity
    });
    if buckets.len() >= MAX_KEYS {
        let oldest = buckets
            .iter()
            .min_by_key(|(_, b)| b.updated)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            buckets.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_budget_at_once_then_one_request_per_share_of_a_minute() {
        let limiter = RateLimiter::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert!(limiter.check_at("a", start).is_ok());
        }
        let wait = limiter.check_at("a", start).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(limiter.check_at("b", start).is_ok(), "keys are apart");
        assert!(
            limiter
                .check_at("a", start + Duration::from_secs(1))
                .is_ok()
        );
        assert!(
            limiter
                .check_at("a", start + Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let limiter = RateLimiter::new(0);
        for _ in 0..1000 {
            assert!(limiter.check("a").is_ok());
        }
    }

    #[test]
    fn the_number_of_keys_kept_is_bounded() {
        let limiter = RateLimiter::new(5);
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 500) {
            let _ = limiter.check_at(&i.to_string(), now);
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
