//! Runs source connectors: restarts a failed source after an exponential backoff with jitter when its error
//! says a retry may help, stops it (and says why) when it says not, and stops every source on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};
use unsilo_connectors::sdk::{RetryHint, Source, SourceContext};

/// First wait before restarting a failed source.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before restart number `attempt` (from 0): doubling from 0.5 s up to 60 s, with ±20 % jitter so
/// that many connectors failing together do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    base.mul_f64(jitter)
}

/// Runs `source` until shutdown, restarting it after transient failures; each failure is shown in
/// `metrics`' live flows.
pub async fn supervise(
    mut source: Box<dyn Source>,
    ctx: SourceContext,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let connector = ctx.connector.clone();
    let mut shutdown = ctx.shutdown.clone();
    let mut attempt = 0u32;
    loop {
        match source.run(ctx.clone()).await {
            Ok(()) => {
                info!(connector = %connector, "Source stopped.");
                return;
            }
            Err(e) if e.hint == RetryHint::NoRetry => {
                metrics.flows.source_error(&connector, &e.to_string());
                error!(connector = %connector, error = %e, "Source failed and will not be retried; fix the cause and restart the hub.");
                return;
            }
            Err(e) => {
                metrics.flows.source_error(&connector, &e.to_string());
                let wait = backoff(attempt);
                warn!(connector = %connector, error = %e, retry_in_ms = wait.as_millis() as u64, "Source failed; retrying.");
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.wait() => {
                        info!(connector = %connector, "Source stopped while waiting to retry.");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(400) && backoff(0) <= Duration::from_millis(600)
        );
        assert!(
            backoff(3) >= Duration::from_millis(3_200)
                && backoff(3) <= Duration::from_millis(4_800)
        );
        assert!(backoff(30) <= Duration::from_secs(72));
        assert!(backoff(30) >= Duration::from_secs(48));
    }
}
