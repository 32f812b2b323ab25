//! Rates judged against the gate policy's limits (DESIGN §8), for colouring cells: the gate's
//! own judgement, which the server sends with every cell.

use crate::api::{GateMetricStatus, GateVerdict};

/// Limits on the three rates; a missing limit is not checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub crash_rate: Option<f64>,
    pub update_failure_rate: Option<f64>,
    pub install_failure_rate: Option<f64>,
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

/// How a rate stands against its limit, as the gate judges it, worst last (so `max` picks
/// the worst). Never from a point estimate alone: a handful of crashes on thin data is
/// undecided, not over the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Nothing measured (no usage sent) or no limit: nothing to judge.
    Unknown,
    /// Credibly within the limit.
    Good,
    /// Not enough data to say either way.
    Warn,
    /// Credibly over the limit.
    Bad,
}

impl Tier {
    pub fn of_status(status: GateMetricStatus) -> Tier {
        match status {
            GateMetricStatus::Pass => Tier::Good,
            GateMetricStatus::Fail => Tier::Bad,
            GateMetricStatus::InsufficientData => Tier::Warn,
            GateMetricStatus::NotMeasured => Tier::Unknown,
        }
    }

    pub fn of_verdict(verdict: GateVerdict) -> Tier {
        match verdict {
            GateVerdict::Pass => Tier::Good,
            GateVerdict::Fail => Tier::Bad,
            GateVerdict::InsufficientData => Tier::Warn,
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
            Tier::Good => "within limit",
            Tier::Warn => "undecided",
            Tier::Bad => "over limit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_gate_never_the_point_estimate() {
        assert_eq!(Tier::of_status(GateMetricStatus::Pass), Tier::Good);
        assert_eq!(Tier::of_status(GateMetricStatus::Fail), Tier::Bad);
        assert_eq!(
            Tier::of_status(GateMetricStatus::InsufficientData).label(),
            "undecided"
        );
        assert_eq!(
            Tier::of_status(GateMetricStatus::NotMeasured),
            Tier::Unknown
        );
        assert_eq!(Tier::of_verdict(GateVerdict::InsufficientData), Tier::Warn);
    }

    #[test]
    fn the_worst_tier_wins() {
        let tiers = [Tier::Good, Tier::Bad, Tier::Unknown, Tier::Warn];
        assert_eq!(tiers.into_iter().max(), Some(Tier::Bad));
        assert_eq!(Tier::Bad.class(), "tier-bad");
    }
}
