//! OpenBao's TTL arithmetic (`sdk/framework/lease.go` `CalculateTTL`): caps, periods and the
//! exact warning texts.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{Error, Result};

/// The limits in force for a mount (its tuning, else the system defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TtlLimits {
    pub default_ttl: Duration,
    pub max_ttl: Duration,
}

/// What a TTL calculation asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TtlRequest {
    /// Requested TTL from now (`ttl` at creation, `increment` at renewal); zero = none.
    pub increment: Duration,
    /// The backend's (role's) TTL, used when no increment is given.
    pub backend_ttl: Duration,
    /// Periodic: the TTL is the period.
    pub period: Duration,
    pub backend_max: Duration,
    pub explicit_max: Duration,
}

/// Go's `time.Duration` string with OpenBao's `humanDuration` trimming: `10h`, `4h`,
/// `23h59m54s`, `1m`.
pub(crate) fn human(d: Duration) -> String {
    let d = Duration::from_secs(d.as_secs());
    let mut s = super::duration::format(d);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if s.ends_with("h0m") {
        s.truncate(s.len() - 2);
    }
    s
}

/// Compute the TTL from `now` for something issued at `start`. Returns the TTL and warnings.
pub(crate) fn calculate(
    limits: TtlLimits,
    req: TtlRequest,
    start: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(Duration, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut max = limits.max_ttl;
    if !req.backend_max.is_zero() && req.backend_max < max {
        max = req.backend_max;
    }
    if !req.explicit_max.is_zero() && req.explicit_max < max {
        max = req.explicit_max;
    }
    if max.is_zero() {
        return Err(Error::invalid_input("max TTL must be greater than zero"));
    }
    let (mut ttl, max_valid) = if !req.period.is_zero() {
        let mut period = req.period;
        if period > max {
            warnings.push(format!(
                "period of {:?} exceeded the effective max_ttl of {:?}; period value is capped accordingly",
                human(period),
                human(max)
            ));
            period = max;
        }
        let mv = (!req.explicit_max.is_zero())
            .then(|| crate::clock::later(start, req.explicit_max))
            .transpose()?;
        (period, mv)
    } else {
        let ttl = if !req.increment.is_zero() {
            req.increment
        } else if !req.backend_ttl.is_zero() {
            req.backend_ttl
        } else {
            limits.default_ttl
        };
        (ttl, Some(crate::clock::later(start, max)?))
    };
    if let Some(mv) = max_valid {
        let left = mv - now;
        if left <= time::Duration::ZERO {
            return Err(Error::invalid_input("past the max TTL, cannot renew"));
        }
        let left = Duration::from_secs(u64::try_from(left.whole_seconds()).unwrap_or(0));
        if left < ttl {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                human(ttl),
                human(left)
            ));
            ttl = left;
        }
    }
    Ok((ttl, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;
    fn lim(d: u64, m: u64) -> TtlLimits {
        TtlLimits {
            default_ttl: Duration::from_secs(d),
            max_ttl: Duration::from_secs(m),
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(10 * H)), "10h");
        assert_eq!(human(Duration::from_secs(86394)), "23h59m54s");
        assert_eq!(human(Duration::from_secs(60)), "1m");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn capped_with_openbao_warning() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let (ttl, w) = calculate(
            lim(2 * H, 4 * H),
            TtlRequest {
                increment: Duration::from_secs(10 * H),
                ..Default::default()
            },
            now,
            now,
        )
        .unwrap();
        assert_eq!(ttl.as_secs(), 4 * H);
        assert_eq!(
            w,
            vec![
                "TTL of \"10h\" exceeded the effective max_ttl of \"4h\"; TTL value is capped accordingly"
            ]
        );
        let (ttl, w) = calculate(lim(2 * H, 4 * H), TtlRequest::default(), now, now).unwrap();
        assert_eq!((ttl.as_secs(), w.len()), (2 * H, 0));
    }

    #[test]
    fn max_counts_from_issue_time_and_periods_cap() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let now = start + time::Duration::seconds(6);
        let (ttl, w) = calculate(
            lim(768 * H, 768 * H),
            TtlRequest {
                increment: Duration::from_secs(100 * H),
                backend_max: Duration::from_secs(24 * H),
                ..Default::default()
            },
            start,
            now,
        )
        .unwrap();
        assert_eq!(ttl.as_secs(), 86394);
        assert!(w[0].contains("\"23h59m54s\""));
        let (ttl, w) = calculate(
            lim(H, 2 * H),
            TtlRequest {
                period: Duration::from_secs(5 * H),
                ..Default::default()
            },
            start,
            now,
        )
        .unwrap();
        assert_eq!(ttl.as_secs(), 2 * H);
        assert!(w[0].starts_with("period of \"5h\" exceeded the effective max_ttl of \"2h\""));
        let late = start + time::Duration::hours(5);
        let e = calculate(lim(H, 2 * H), TtlRequest::default(), start, late).unwrap_err();
        assert_eq!(e.message(), "past the max TTL, cannot renew");
    }
}
