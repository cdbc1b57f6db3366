//! # unsilo-cli
//!
//! The `unsilo` binary and the parts of it other crates' tests use.
//!
//! ## Layout
//!
//! - `main.rs`: the commands (`serve`, `demo`, `simulate`, `bench`, `mapping`, `connector`, and the operator
//!   commands `agency`, `subscription`, `audit`, `dlq`, `registry`).
//! - `admin_cli.rs`: the operator commands, as clients of a running hub's admin API.
//! - [`demo`]: `unsilo demo` — the hub with every source system simulated and agencies subscribed.
//! - [`bench`](mod@bench): the `unsilo bench` measurements written to `docs/benchmarks.md`.

pub mod bench;
pub mod demo;

use unsilo_hub::api_error::ApiError;
use unsilo_hub::auth::Principal;
use unsilo_hub::governance::ApproveRequest;
use unsilo_hub::server::Hub;
use unsilo_policy::model::{Subscription, SubscriptionStatus};

/// Decides subscription `id` as the deciders in turn would: the providing organisation's reviewer first (where the
/// catalogue entry names one, for 有条件 data), then `operator` with `approval`, then `reviewer` confirming where
/// the grant needs two security administrators (双人复核). Stops as soon as the request is no longer waiting. What
/// the people would do with `unsilo subscription approve`, for the demo's and the bench's own set-up.
pub(crate) async fn approve_with_review(
    hub: &Hub,
    operator: &Principal,
    reviewer: &Principal,
    id: &str,
    approval: ApproveRequest,
) -> Result<Subscription, ApiError> {
    let provider = hub
        .control
        .subscription(id)
        .and_then(|s| hub.governance.deciding_provider_of(&s));
    let mut deciders = Vec::new();
    if let Some(agency) = provider {
        deciders.push((
            Principal::Reviewer {
                agency,
                name: crate::demo::DEMO_PROVIDER_REVIEWER.into(),
            },
            approval.clone(),
        ));
    }
    deciders.push((operator.clone(), approval));
    deciders.push((reviewer.clone(), ApproveRequest::default()));
    let mut last = None;
    for (who, approval) in deciders {
        let s = hub.governance.approve(&who, id, approval).await?;
        if s.status != SubscriptionStatus::Requested {
            return Ok(s);
        }
        last = Some(s);
    }
    last.ok_or_else(|| ApiError::Internal(format!("{id}: nobody decided")))
}

/// How hard a simulator works: the knobs every simulator takes, from `unsilo simulate`'s command line or the demo.
#[derive(Debug, Clone, Copy)]
pub struct SimulatorLoad {
    /// Records per second.
    pub rate: f64,
    /// Share of deliberately malformed records (0.0–1.0).
    pub malformed_share: f64,
    /// Seed of the generated data (same seed, same data).
    pub seed: u64,
    /// Stop after this many records (`None`: run until stopped).
    pub limit: Option<u64>,
}

/// A simulator's options: its own fields, then the rate, malformed share, seed and limit of a [`SimulatorLoad`].
#[macro_export]
macro_rules! simulator_options {
    ($load:expr, $($options:ident)::+ { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let load: $crate::SimulatorLoad = $load;
        $($options)::+ {
            $($field $(: $value)?,)*
            rate: load.rate,
            malformed_share: load.malformed_share,
            seed: load.seed,
            limit: load.limit,
            ..Default::default()
        }
    }};
}
