//! Release gating (DESIGN §8): `releaseGate` and `gatePolicy` for whoever may read the app,
//! `setGatePolicy` for its account's admins. The logic lives in `crate::gate`.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};

use super::error::GqlResult;
use super::reports::readable_app;
use super::types::parse_id;
use super::{actor, state};
use crate::gate::evaluate::GateResult;
use crate::gate::policy::{self, BaselineExposure, GatePolicy, MetricPolicy};
use crate::gate::{self, GateQuery};
use crate::model;
use crate::telemetry::GateCaller;

#[derive(Default)]
pub struct GateQueries;

#[Object]
impl GateQueries {
    /// May `version` be promoted on `channel`? PASS, FAIL or INSUFFICIENT_DATA, with each
    /// rate, its bounds, the baseline's, the tests used and the reasons (docs/gating.md).
    /// `platform` and `arch` narrow the release; `baseline` names the version to compare with
    /// instead of the previous one with enough data.
    #[allow(clippy::too_many_arguments)]
    async fn release_gate(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        version: String,
        channel: String,
        platform: Option<String>,
        arch: Option<String>,
        baseline: Option<String>,
    ) -> GqlResult<GateResult> {
        let app_id = readable_app(ctx, &app_id).await?;
        let query = GateQuery {
            version,
            channel,
            platform,
            arch,
            baseline,
        };
        let state = state(ctx);
        let result = gate::release_gate(&state.db, app_id, &query).await?;
        state
            .metrics
            .gate_evaluated(GateCaller::Api, result.verdict.as_str());
        Ok(result)
    }

    /// The gate policy in force for `channel` of the app, or for all its channels.
    async fn gate_policy(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        channel: Option<String>,
    ) -> GqlResult<GatePolicy> {
        let app_id = readable_app(ctx, &app_id).await?;
        let channel = channel
            .as_deref()
            .map(|c| model::channel("channel", c))
            .transpose()?;
        Ok(policy::effective(&state(ctx).db, app_id, channel.as_deref()).await?)
    }
}

#[derive(Default)]
pub struct GateMutations;

#[Object]
impl GateMutations {
    /// Sets the gate policy of the app (`channel` left out) or of one channel, which then
    /// overrides the app's. What `policy` leaves out keeps the value in force; `null` removes
    /// a limit. Admins of the app's account only; recorded in the audit log.
    async fn set_gate_policy(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        channel: Option<String>,
        policy: GatePolicyInput,
    ) -> GqlResult<GatePolicy> {
        let app_id = parse_id(&app_id, "appId")?;
        Ok(policy::set(
            &state(ctx).db,
            actor(ctx)?,
            app_id,
            channel.as_deref(),
            |in_force| policy.apply(in_force),
        )
        .await?)
    }
}

/// Changes to a gate policy: what is left out keeps its value.
#[derive(InputObject)]
pub struct GatePolicyInput {
    /// 0.8 to 0.999.
    confidence: Option<f64>,
    /// 1 to 2160.
    window_hours: Option<u32>,
    crash_rate: Option<GateMetricPolicyInput>,
    update_failure_rate: Option<GateMetricPolicyInput>,
    install_failure_rate: Option<GateMetricPolicyInput>,
    /// Which hours of the baseline to compare with.
    baseline_exposure: Option<BaselineExposure>,
}

/// Changes to one metric's limits: what is left out keeps its value, `null` removes a limit.
#[derive(InputObject)]
pub struct GateMetricPolicyInput {
    /// Highest acceptable rate, 0.02 = 2 %.
    max_rate: MaybeUndefined<f64>,
    /// Highest acceptable rise over the baseline, 0.2 = +20 %.
    max_regression: MaybeUndefined<f64>,
    min_sample: Option<u64>,
    required: Option<bool>,
}

impl GatePolicyInput {
    fn apply(self, mut policy: GatePolicy) -> GatePolicy {
        if let Some(confidence) = self.confidence {
            policy.confidence = confidence;
        }
        if let Some(window_hours) = self.window_hours {
            policy.window_hours = window_hours;
        }
        if let Some(exposure) = self.baseline_exposure {
            policy.baseline_exposure = exposure;
        }
        for (change, limits) in [
            (self.crash_rate, &mut policy.crash_rate),
            (self.update_failure_rate, &mut policy.update_failure_rate),
            (self.install_failure_rate, &mut policy.install_failure_rate),
        ] {
            if let Some(change) = change {
                change.apply(limits);
            }
        }
        policy
    }
}

impl GateMetricPolicyInput {
    fn apply(self, limits: &mut MetricPolicy) {
        self.max_rate.update_to(&mut limits.max_rate);
        self.max_regression.update_to(&mut limits.max_regression);
        if let Some(min_sample) = self.min_sample {
            limits.min_sample = min_sample;
        }
        if let Some(required) = self.required {
            limits.required = required;
        }
    }
}
