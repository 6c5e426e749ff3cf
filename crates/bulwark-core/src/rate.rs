//! Token buckets for API keys and their orgs: `per_sec` tokens a second up to `burst`; a
//! request takes one. The store keeps the buckets (on PostgreSQL in a table all replicas
//! share; on SQLite, whose database one process owns, in that process).

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Refill, tokens per second (> 0).
    pub per_sec: f64,
    /// Capacity (≥ 1).
    pub burst: f64,
}

/// What a take found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Whether a token was taken.
    pub allowed: bool,
    /// The bucket's capacity.
    pub limit: u64,
    /// Whole tokens left.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a token is there (0 when allowed).
    pub retry_after_secs: u64,
}

impl Verdict {
    /// The verdict for a bucket left holding `tokens` after a take that was (or was not)
    /// `allowed`.
    #[must_use]
    pub fn after(bucket: Bucket, tokens: f64, allowed: bool) -> Self {
        let tokens = tokens.clamp(0.0, bucket.burst);
        let secs = |missing: f64| (missing.max(0.0) / bucket.per_sec).ceil() as u64;
        Self {
            allowed,
            limit: bucket.burst as u64,
            remaining: tokens.floor() as u64,
            reset_secs: secs(bucket.burst - tokens),
            retry_after_secs: if allowed {
                0
            } else {
                secs(1.0 - tokens).max(1)
            },
        }
    }

    /// The tighter of two verdicts (both must allow).
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        let (tight, _) = if self.remaining <= other.remaining {
            (self, other)
        } else {
            (other, self)
        };
        Self {
            allowed: self.allowed && other.allowed,
            retry_after_secs: self.retry_after_secs.max(other.retry_after_secs),
            ..tight
        }
    }
}

/// Refills `tokens` for `elapsed_secs` and takes one if it can: `(tokens after, allowed)`.
#[must_use]
pub fn take(bucket: Bucket, tokens: f64, elapsed_secs: f64) -> (f64, bool) {
    let refilled = (tokens + elapsed_secs.max(0.0) * bucket.per_sec).min(bucket.burst);
    if refilled >= 1.0 {
        (refilled - 1.0, true)
    } else {
        (refilled, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bucket = Bucket {
        per_sec: 2.0,
        burst: 4.0,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut tokens = B.burst;
        for _ in 0..4 {
            let (t, ok) = take(B, tokens, 0.0);
            assert!(ok);
            tokens = t;
        }
        let (t, ok) = take(B, tokens, 0.0);
        assert!(!ok);
        let v = Verdict::after(B, t, ok);
        assert_eq!((v.remaining, v.retry_after_secs, v.reset_secs), (0, 1, 2));
        // Half a second later one token is back.
        let (t, ok) = take(B, t, 0.5);
        assert!(ok);
        assert!(t.abs() < 1e-9);
        // A long pause never overfills.
        assert_eq!(take(B, 0.0, 3600.0), (3.0, true));
    }

    #[test]
    fn the_tighter_verdict_wins() {
        let a = Verdict::after(B, 3.0, true);
        let b = Verdict::after(B, 0.5, false);
        let both = a.and(b);
        assert!(!both.allowed);
        assert_eq!(both.remaining, 0);
        assert_eq!(both.retry_after_secs, 1);
    }
}
