//! Webhook notifications, the pure part: the body a state change is sent as (a
//! Slack-compatible `text` line plus structured fields), its HMAC-SHA256 signature the way
//! GitHub and Stripe sign theirs, the receiver's `verify`, and the retry schedule. No I/O:
//! the store records notifications and deliveries, `worker::periodic::webhook_delivery`
//! sends them. docs/notifications.md is the receiver's guide.
//!
//! ```
//! use revenue_os::notify::{sign, verify, VerifyError};
//! use std::time::Duration;
//!
//! let body = br#"{"event":"action_held","text":"..."}"#;
//! let header = sign(b"s3cret", 1_767_225_600, body);
//! assert!(header.starts_with("v1="));
//! let ok = verify(b"s3cret", "1767225600", body, &header, 1_767_225_630, Duration::from_secs(300));
//! assert_eq!(ok, Ok(()));
//! let tampered = verify(b"s3cret", "1767225600", b"{}", &header, 1_767_225_630, Duration::from_secs(300));
//! assert_eq!(tampered.map_err(|e| e.code()), Err("signature_mismatch"));
//! ```

mod render;

pub use crate::contract::{Notification, NotifyEvent};
pub use render::render;

use ring::hmac;
use std::time::Duration;

/// The headers of a delivery.
pub const HEADER_ID: &str = "Webhook-Id";
pub const HEADER_IDEMPOTENCY: &str = "Idempotency-Key";
pub const HEADER_TIMESTAMP: &str = "Webhook-Timestamp";
pub const HEADER_SIGNATURE: &str = "Webhook-Signature";
pub const HEADER_EVENT: &str = "Webhook-Event";

/// What `verify` refused, with a stable code (`code()`) a receiver can log or return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header has no `v1=<64 hex digits>` entry.
    #[error("malformed_header: the signature header has no v1=<hex> entry")]
    MalformedHeader,
    /// The timestamp header is not a whole number of seconds since 1970.
    #[error("malformed_timestamp: the timestamp is not Unix seconds")]
    MalformedTimestamp,
    /// The timestamp is older than the tolerance (a replay, or a clock far behind).
    #[error("timestamp_too_old: the timestamp is older than the tolerance")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error(
        "timestamp_in_future: the timestamp is ahead of the receiver's clock by more than the tolerance"
    )]
    TimestampInFuture,
    /// No `v1` signature matches the body and timestamp under this secret (a tampered body,
    /// a wrong secret).
    #[error("signature_mismatch: no signature matches the timestamp and body")]
    SignatureMismatch,
}

impl VerifyError {
    pub fn code(self) -> &'static str {
        match self {
            VerifyError::MalformedHeader => "malformed_header",
            VerifyError::MalformedTimestamp => "malformed_timestamp",
            VerifyError::TimestampTooOld => "timestamp_too_old",
            VerifyError::TimestampInFuture => "timestamp_in_future",
            VerifyError::SignatureMismatch => "signature_mismatch",
        }
    }
}

/// The signed payload: `"{timestamp}.{body}"`.
fn signed_payload(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + 1 + body.len());
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'.');
    m.extend_from_slice(body);
    m
}

/// The `Webhook-Signature` header value: `v1=` and the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, &signed_payload(&timestamp.to_string(), body));
    format!("v1={}", hex(tag.as_ref()))
}

/// Checks a delivery as a receiver does: the timestamp within `tolerance` of `now` (Unix
/// seconds), and one of the header's `v1=` signatures (comma- or space-separated; several
/// while a secret is rotated) the HMAC of `"{timestamp}.{body}"` under `secret`, compared in
/// constant time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let candidates: Vec<Vec<u8>> = signature_header
        .split([',', ' '])
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(unhex)
        .filter(|s| s.len() == 32)
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedHeader);
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    let tol = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(ts) > tol {
        return Err(VerifyError::TimestampTooOld);
    }
    if ts.saturating_sub(now) > tol {
        return Err(VerifyError::TimestampInFuture);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let payload = signed_payload(timestamp.trim(), body);
    if candidates
        .iter()
        .any(|c| hmac::verify(&key, &payload, c).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// The retry schedule: how a delivery that failed its `attempts`-th time waits before the
/// next, or `None` when it is dead (attempts used up, or older than `max_age`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure; doubled after each further one.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// A delivery this old is not tried again.
    pub max_age: Duration,
}

impl Backoff {
    /// The wait before the next attempt after `attempts` failed ones, given the delivery's
    /// `age` now; `None`: dead-letter it.
    pub fn next(&self, attempts: u32, age: Duration) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let shift = attempts.saturating_sub(1).min(30);
        let wait = self
            .initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max);
        if age + wait > self.max_age {
            return None;
        }
        Some(wait)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| char::from(c).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Duration = Duration::from_secs(300);

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", 1_700_000_000, br#"{"a":1}"#),
            "v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }

    #[test]
    fn a_signed_body_verifies_and_a_changed_one_does_not() {
        let body = br#"{"event":"action_held"}"#;
        let h = sign(b"s", 1000, body);
        assert_eq!(verify(b"s", "1000", body, &h, 1010, TOL), Ok(()));
        let e = verify(b"s", "1000", br#"{"event":"action_helD"}"#, &h, 1010, TOL);
        assert_eq!(e, Err(VerifyError::SignatureMismatch));
        assert_eq!(e.unwrap_err().code(), "signature_mismatch");
        // Another secret, another timestamp (the signature covers it): refused.
        assert_eq!(
            verify(b"t", "1000", body, &h, 1010, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(b"s", "1001", body, &h, 1010, TOL),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn rotation_headers_old_timestamps_and_garbage() {
        let body = b"x";
        let good = sign(b"s", 1000, body);
        let both = format!("v1={}, {good}", "0".repeat(64));
        assert_eq!(verify(b"s", "1000", body, &both, 1000, TOL), Ok(()));
        assert_eq!(
            verify(b"s", "1000", body, &good, 1301, TOL),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            verify(b"s", "1000", body, &good, 699, TOL),
            Err(VerifyError::TimestampInFuture)
        );
        for bad in ["", "v1=", "v1=zz", "sha256=abc", "v0=00"] {
            assert_eq!(
                verify(b"s", "1000", body, bad, 1000, TOL),
                Err(VerifyError::MalformedHeader),
                "{bad}"
            );
        }
        assert_eq!(
            verify(b"s", "soon", body, &good, 1000, TOL),
            Err(VerifyError::MalformedTimestamp)
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_then_gives_up() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
            max_attempts: 6,
            max_age: Duration::from_secs(3600),
        };
        let waits: Vec<Option<u64>> = (1..=6)
            .map(|n| b.next(n, Duration::ZERO).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            waits,
            vec![Some(10), Some(20), Some(40), Some(60), Some(60), None]
        );
        assert_eq!(b.next(1, Duration::from_secs(3595)), None, "too old");
    }
}
