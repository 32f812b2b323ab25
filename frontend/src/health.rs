//! Rates judged against the gate policy's limits (DESIGN §8), for colouring cells.

/// Limits on the three rates; a missing limit is not checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub crash_rate: Option<f64>,
    pub update_failure_rate: Option<f64>,
    pub install_failure_rate: Option<f64>,
}

impl Limits {
    /// The default gate policy of every app (docs/gating.md): 2 % crashes per session, 5 %
    /// failed updates and installs per attempt.
    #[cfg(test)]
    pub const DEFAULT_POLICY: Limits = Limits {
        crash_rate: Some(0.02),
        update_failure_rate: Some(0.05),
        install_failure_rate: Some(0.05),
    };
}

/// The `Limits` of a `PolicyLimits` fragment, whichever operation's copy of it `policy` is.
macro_rules! limits_of {
    ($policy:expr) => {
        $crate::health::Limits {
            crash_rate: $policy.crash_rate.max_rate,
            update_failure_rate: $policy.update_failure_rate.max_rate,
            install_failure_rate: $policy.install_failure_rate.max_rate,
        }
    };
}
pub(crate) use limits_of;

/// Above this share of its limit a rate is a warning: close enough to watch.
const WARN_SHARE_OF_LIMIT: f64 = 0.5;

/// How a rate stands against its limit, worst last (so `max` picks the worst).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// No denominator (no usage sent) or no limit: nothing to judge.
    Unknown,
    Good,
    Warn,
    Bad,
}

impl Tier {
    pub fn of(rate: Option<f64>, limit: Option<f64>) -> Tier {
        match (rate, limit) {
            (Some(rate), Some(limit)) if rate.is_finite() => {
                if rate > limit {
                    Tier::Bad
                } else if rate > limit * WARN_SHARE_OF_LIMIT {
                    Tier::Warn
                } else {
                    Tier::Good
                }
            }
            _ => Tier::Unknown,
        }
    }

    /// The CSS class that colours it.
    pub fn class(self) -> &'static str {
        match self {
            Tier::Unknown => "tier-unknown",
            Tier::Good => "tier-good",
            Tier::Warn => "tier-warn",
            Tier::Bad => "tier-bad",
        }
    }

    /// Words for it, so colour is never the only signal.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Unknown => "no data",
            Tier::Good => "healthy",
            Tier::Warn => "near limit",
            Tier::Bad => "over limit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_judged_against_their_limit() {
        let limit = Limits::DEFAULT_POLICY.crash_rate;
        assert_eq!(Tier::of(Some(0.0), limit), Tier::Good);
        assert_eq!(Tier::of(Some(0.01), limit), Tier::Good);
        assert_eq!(Tier::of(Some(0.011), limit), Tier::Warn);
        assert_eq!(Tier::of(Some(0.02), limit), Tier::Warn);
        assert_eq!(Tier::of(Some(0.021), limit), Tier::Bad);
    }

    #[test]
    fn without_a_rate_or_a_limit_nothing_is_judged() {
        assert_eq!(Tier::of(None, Some(0.02)), Tier::Unknown);
        assert_eq!(Tier::of(Some(0.5), None), Tier::Unknown);
        assert_eq!(Tier::of(Some(f64::NAN), Some(0.02)), Tier::Unknown);
    }

    #[test]
    fn the_worst_tier_wins() {
        let tiers = [Tier::Good, Tier::Bad, Tier::Unknown, Tier::Warn];
        assert_eq!(tiers.into_iter().max(), Some(Tier::Bad));
        assert_eq!(Tier::Bad.class(), "tier-bad");
    }
}
