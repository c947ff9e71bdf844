//! A small job queue per tenant in Redis, every key under the tenant's prefix
//! ([`TenantId::key_prefix`](tenantry_core::TenantId::key_prefix)): two tenants that both use a
//! queue named `emails` push to and take from two different lists.

use crate::error::{Result, StoreError};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// The Redis key of `queue` under `prefix`; refuses names that are not `[a-z0-9_-]{1,64}`.
pub fn queue_key(prefix: &str, queue: &str) -> Result<String> {
    let valid = !queue.is_empty()
        && queue.len() <= 64
        && queue
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(StoreError::Invalid(format!(
            "{queue:?} is not a queue name: use 1 to 64 of a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(format!("{prefix}queue:{queue}"))
}

/// Appends a job; returns how many jobs wait in the queue.
pub async fn push(redis: &mut ConnectionManager, key: &str, payload: &str) -> Result<i64> {
    Ok(redis.lpush(key, payload).await?)
}

/// Takes the oldest job, if any.
pub async fn take(redis: &mut ConnectionManager, key: &str) -> Result<Option<String>> {
    Ok(redis.rpop(key, None).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked_and_prefixed() {
        assert_eq!(
            queue_key("tenantry:ab:", "emails").unwrap(),
            "tenantry:ab:queue:emails"
        );
        for bad in ["", "Emails", "a:b", "a*", &"x".repeat(65)] {
            assert!(queue_key("p:", bad).is_err(), "{bad:?}");
        }
    }
}
