//! Time. Every time decision in Strongroom (TTLs, expiry, `deletion_time`, rotation) asks a
//! [`Clock`], so tests can drive time with a [`VirtualClock`] instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to. Cheap to clone; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use strongroom::{Clock, VirtualClock};
/// let clock = VirtualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!((clock.now() - t0).whole_seconds(), 3600);
/// ```
#[derive(Debug, Clone)]
pub struct VirtualClock {
    nanos: Arc<AtomicI64>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new()
    }
}

impl VirtualClock {
    /// A virtual clock starting at the current system time.
    pub fn new() -> VirtualClock {
        VirtualClock::at(OffsetDateTime::now_utc())
    }

    /// A virtual clock starting at `t`.
    pub fn at(t: OffsetDateTime) -> VirtualClock {
        let nanos = i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        VirtualClock {
            nanos: Arc::new(AtomicI64::new(nanos)),
        }
    }

    /// Move time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let add = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(add, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> OffsetDateTime {
        let n = self.nanos.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// `t + d`, checked. Every addition of a caller-influenced duration to a time goes through
/// here: `OffsetDateTime + Duration` panics past year 9999, and a panic under a lock would
/// poison it for the life of the process. The request parsers already refuse durations past
/// Go's limit (as OpenBao does), so this is the last line, answering bad input instead.
pub(crate) fn later(t: OffsetDateTime, d: Duration) -> Result<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .ok_or_else(|| {
            Error::invalid_input(format!("duration of {}s is out of range", d.as_secs()))
        })
}

/// Unix nanoseconds of `t + d`, for expiries stored as `i64` nanoseconds. A time past what
/// `i64` nanoseconds hold (year 2262) saturates: it stays "later than any now", where a
/// failed conversion would have read as "never expires".
pub(crate) fn expiry_ns(t: OffsetDateTime, d: Duration) -> Result<i64> {
    Ok(i64::try_from(later(t, d)?.unix_timestamp_nanos()).unwrap_or(i64::MAX))
}

/// RFC 3339 with nanoseconds, as OpenBao prints times (`2026-11-27T21:34:23.969306953Z`).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parse an RFC 3339 time.
pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_advanced() {
        let c = VirtualClock::at(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(c.now(), OffsetDateTime::UNIX_EPOCH);
        let c2 = c.clone();
        c2.advance(Duration::from_millis(1500));
        assert_eq!(c.now().unix_timestamp_nanos(), 1_500_000_000);
    }

    #[test]
    fn time_arithmetic_refuses_instead_of_panicking() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            later(now, Duration::from_secs(60))
                .unwrap()
                .unix_timestamp(),
            60
        );
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(i64::MAX as u64),
        ] {
            let e = later(now, d).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
            assert!(expiry_ns(now, d).is_err());
        }
        // Go's longest duration from today is past i64 nanoseconds: saturated, still an expiry.
        let today = OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap();
        assert_eq!(
            expiry_ns(today, crate::util::duration::MAX).unwrap(),
            i64::MAX
        );
        assert_eq!(
            expiry_ns(now, Duration::from_secs(2)).unwrap(),
            2_000_000_000
        );
    }

    #[test]
    fn rfc3339_round_trips_nanoseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_815_443_123_456_789).unwrap();
        let s = rfc3339(t);
        assert_eq!(s, "2026-11-27T21:37:23.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
    }
}
