//! Simulated releases whose true rates are known, drawn many times with seeded randomness:
//! the gate must keep its promised error rates (DESIGN §8). Observed rates are printed; read
//! them with `cargo test -p rollwatch --test api gate_simulation -- --nocapture`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::Binomial;
use rollwatch::gate::evaluate::{Baseline, Measured, Verdict, evaluate};
use rollwatch::gate::policy::GatePolicy;
use rollwatch::model::{Counts, Metric};

const DRAWS: u32 = 2000;
/// Three standard errors of an error rate near 5 % estimated from `DRAWS` draws.
const TOLERANCE: f64 = 0.015;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    metric: Metric,
    baseline_rate: f64,
    /// `None`: no baseline at all.
    baseline_trials: Option<u64>,
    rate: f64,
    trials: u64,
}

/// Verdict frequencies over the draws.
#[derive(Debug)]
struct Observed {
    pass: f64,
    fail: f64,
    insufficient: f64,
}

fn counts(metric: Metric, rng: &mut StdRng, rate: f64, trials: u64) -> Counts {
    let events = rng.sample(Binomial::new(trials, rate).unwrap());
    match metric {
        Metric::CrashRate => Counts {
            sessions: trials,
            crashes: events,
            ..Counts::default()
        },
        Metric::UpdateFailureRate => Counts {
            // Sessions enough for the required crash metric to pass on its own.
            sessions: 100_000,
            update_failed: events,
            update_succeeded: trials - events,
            ..Counts::default()
        },
        Metric::InstallFailureRate => Counts {
            sessions: 100_000,
            install_failed: events,
            install_succeeded: trials - events,
            ..Counts::default()
        },
    }
}

fn simulate(policy: &GatePolicy, scenario: Scenario, seed: u64) -> Observed {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut pass, mut fail, mut insufficient) = (0u32, 0u32, 0u32);
    for _ in 0..DRAWS {
        let release = Measured {
            version: "1.5.0".to_owned(),
            window: None,
            counts: counts(scenario.metric, &mut rng, scenario.rate, scenario.trials),
        };
        let baseline = scenario.baseline_trials.map(|trials| Baseline {
            measured: Measured {
                version: "1.4.0".to_owned(),
                window: None,
                counts: counts(scenario.metric, &mut rng, scenario.baseline_rate, trials),
            },
            requested: false,
        });
        match evaluate(policy, &release, baseline.as_ref()).verdict {
            Verdict::Pass => pass += 1,
            Verdict::Fail => fail += 1,
            Verdict::InsufficientData => insufficient += 1,
        }
    }
    let share = |n: u32| f64::from(n) / f64::from(DRAWS);
    let observed = Observed {
        pass: share(pass),
        fail: share(fail),
        insufficient: share(insufficient),
    };
    println!(
        "{:<44} {:>7.3}% vs {:>7.3}%  n={:>6}  PASS {:>5.1}%  FAIL {:>5.1}%  INSUFFICIENT {:>5.1}%",
        scenario.name,
        scenario.rate * 100.0,
        scenario.baseline_rate * 100.0,
        scenario.trials,
        observed.pass * 100.0,
        observed.fail * 100.0,
        observed.insufficient * 100.0,
    );
    observed
}

/// A crash scenario against a baseline crashing in 1 % of 20 000 sessions.
fn crashes(name: &'static str, relative_rise: f64, sessions: u64) -> Scenario {
    Scenario {
        name,
        metric: Metric::CrashRate,
        baseline_rate: 0.01,
        baseline_trials: Some(20_000),
        rate: 0.01 * (1.0 + relative_rise),
        trials: sessions,
    }
}

#[test]
fn equal_rates_rarely_fail_and_large_regressions_nearly_always_do() {
    let policy = GatePolicy::default();
    let alpha = 1.0 - policy.confidence;
    println!(
        "default policy: confidence {}, crash limit {:?}, regression limit {:?}, {} draws each",
        policy.confidence, policy.crash_rate.max_rate, policy.crash_rate.max_regression, DRAWS
    );

    let equal = simulate(
        &policy,
        crashes("crash rate equal to baseline", 0.0, 20_000),
        1,
    );
    assert!(equal.fail <= alpha + TOLERANCE, "{equal:?}");
    assert!(
        equal.pass >= 0.9,
        "a sound release mostly passes: {equal:?}"
    );

    let small = simulate(&policy, crashes("crash rate +5%", 0.05, 20_000), 2);
    assert!(small.fail <= alpha + TOLERANCE, "{small:?}");

    // Exactly the tolerated +20 %: the null hypothesis holds at its edge, so this is where
    // the test spends its whole error budget.
    let at_limit = simulate(
        &policy,
        crashes("crash rate +20% (the limit)", 0.2, 20_000),
        3,
    );
    assert!(at_limit.fail <= alpha + TOLERANCE, "{at_limit:?}");

    let doubled = simulate(&policy, crashes("crash rate +100%", 1.0, 20_000), 4);
    assert!(doubled.fail >= 0.99, "{doubled:?}");

    // At the policy's minimum sample the test has little power, but must stay honest.
    let thin = simulate(
        &policy,
        crashes("crash rate equal, minimum sample", 0.0, 1000),
        5,
    );
    assert!(thin.fail <= alpha + TOLERANCE, "{thin:?}");
}

#[test]
fn tiny_samples_are_insufficient_data_whatever_the_rates() {
    let policy = GatePolicy::default();
    for (seed, (name, rise)) in [("tiny sample, equal", 0.0), ("tiny sample, +100%", 1.0)]
        .into_iter()
        .enumerate()
    {
        let tiny = simulate(&policy, crashes(name, rise, 200), 10 + seed as u64);
        assert_eq!(tiny.insufficient, 1.0, "{name}: {tiny:?}");
    }
}

#[test]
fn an_absolute_limit_fails_a_release_sitting_on_it_at_most_one_time_in_twenty() {
    let policy = GatePolicy::default();
    let alpha = 1.0 - policy.confidence;
    let limit = policy.crash_rate.max_rate.unwrap();
    let on_limit = Scenario {
        name: "crash rate at the 2% limit, no baseline",
        metric: Metric::CrashRate,
        baseline_rate: 0.0,
        baseline_trials: None,
        rate: limit,
        trials: 5000,
    };
    let observed = simulate(&policy, on_limit, 20);
    assert!(observed.fail <= alpha + TOLERANCE, "{observed:?}");
    let far_above = simulate(
        &policy,
        Scenario {
            name: "crash rate at twice the 2% limit, no baseline",
            rate: 2.0 * limit,
            ..on_limit
        },
        21,
    );
    assert!(far_above.fail >= 0.99, "{far_above:?}");
}

#[test]
fn update_failures_keep_the_same_error_rates() {
    let policy = GatePolicy::default();
    let alpha = 1.0 - policy.confidence;
    let equal = Scenario {
        name: "update failure rate equal to baseline",
        metric: Metric::UpdateFailureRate,
        baseline_rate: 0.02,
        baseline_trials: Some(5000),
        rate: 0.02,
        trials: 5000,
    };
    let observed = simulate(&policy, equal, 30);
    assert!(observed.fail <= alpha + TOLERANCE, "{observed:?}");
    let doubled = simulate(
        &policy,
        Scenario {
            name: "update failure rate +100%",
            rate: 0.04,
            ..equal
        },
        31,
    );
    assert!(doubled.fail >= 0.99, "{doubled:?}");
}
