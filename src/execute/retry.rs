//! When to retry and how long to wait: full-jitter exponential backoff, `Retry-After` honoured.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::executor::{Outcome, Response};
use crate::journey::plan::RetryPolicy;

/// True for answers worth another try: transport failures, 408, 429 and 5xx.
pub fn is_retryable(outcome: &Outcome) -> bool {
    match outcome {
        // A certificate that is not trusted stays so: no retry storm.
        Outcome::Transport(super::executor::TransportError::Untrusted(_)) => false,
        Outcome::Transport(_) => true,
        Outcome::Response(r) => {
            r.status == 408 || r.status == 429 || (500..600).contains(&r.status)
        }
        Outcome::Assumed | Outcome::MockFailed(_) => false,
    }
}

/// `random(0, min(max_backoff, backoff × 2^(n-1)))` for retry `n` (1 = the first retry).
pub fn backoff(policy: &RetryPolicy, retry: u32, rng: &mut fastrand::Rng) -> Duration {
    let exp = policy
        .backoff
        .checked_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .unwrap_or(policy.max_backoff);
    let cap = exp.min(policy.max_backoff);
    let millis = cap.as_millis().min(u64::MAX as u128) as u64;
    Duration::from_millis(rng.u64(0..=millis))
}

/// The `Retry-After` delay of a response: seconds or an HTTP date, relative to `now`.
pub fn retry_after(response: &Response, now: DateTime<Utc>) -> Option<Duration> {
    let header = response.header("retry-after")?;
    let value = header.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // More digits than a u64 holds is still a number of seconds: longer than any max_backoff.
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::MAX);
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(retry_after: &str) -> Response {
        Response {
            status: 429,
            headers: super::super::executor::Headers::Given(vec![(
                "Retry-After".into(),
                retry_after.into(),
            )]),
            body: vec![],
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn backoff_is_capped_and_seeded() {
        let p = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        };
        let mut a = fastrand::Rng::with_seed(7);
        let mut b = fastrand::Rng::with_seed(7);
        for n in 1..10 {
            let d = backoff(&p, n, &mut a);
            assert!(d <= Duration::from_secs(3));
            assert_eq!(d, backoff(&p, n, &mut b));
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = crate::clock::parse("2026-11-20T10:00:00Z").unwrap();
        assert_eq!(
            retry_after(&response("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&response("Fri, 20 Nov 2026 10:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(&response("soon"), now), None);
        assert_eq!(
            retry_after(&response("99999999999999999999"), now),
            Some(Duration::MAX)
        );
    }
}
