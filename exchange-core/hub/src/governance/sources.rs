//! Sources: replaying a connector's dead letters and re-normalising its `raw.` originals with its current
//! definition (through the ingest stage's [`SourceControl`]).

#[allow(unused_imports)]
use super::*;

/// Body of `POST /admin/connectors/{name}/renormalise`: which stored originals to run again.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenormaliseRequest {
    /// From this time (ms since the epoch, inclusive).
    pub from_ms: i64,
    /// Until this time (exclusive); none = up to now.
    #[serde(default)]
    pub to_ms: Option<i64>,
}

impl Governance {
    /// Runs a connector's rejected originals through its current definition again (operators only), and
    /// records it: see [`SourceControl::replay_source_dead_letters`].
    pub async fn replay_source_dead_letters(
        &self,
        who: &Principal,
        connector: &str,
        filter: DeadLetterFilter,
    ) -> Result<SourceReplay, ApiError> {
        authorize(who, Action::OperateConnectors)?;
        let outcome = self
            .sources
            .replay_source_dead_letters(connector, &filter)
            .await
            .map_err(|e| match e {
                SourceReplayError::UnknownConnector(_) => {
                    ApiError::NotFound(format!("connector `{connector}`"))
                }
                SourceReplayError::Failed(cause) => ApiError::Internal(cause),
            })?;
        self.record_control(
            who,
            "connector.dlq_replay",
            connector,
            json!({ "filter": { "code": filter.code, "since_ms": filter.since_ms }, "outcome": outcome }),
        )
        .await?;
        info!(
            connector,
            taken = outcome.taken,
            accepted = outcome.accepted,
            rejected = outcome.rejected,
            "Source dead letters replayed."
        );
        Ok(outcome)
    }

    /// Runs `raw.<connector>` originals stored from `from_ms` (to `to_ms`) through the connector's current
    /// definition again, publishing to `std.` with the same record ids (operators only), and records it.
    pub async fn renormalise(
        &self,
        who: &Principal,
        connector: &str,
        range: RenormaliseRequest,
    ) -> Result<Renormalisation, ApiError> {
        authorize(who, Action::OperateConnectors)?;
        if range.to_ms.is_some_and(|to| to <= range.from_ms) {
            return Err(ApiError::Invalid("to_ms must be after from_ms".into()));
        }
        let outcome = self
            .sources
            .renormalise(connector, range.from_ms, range.to_ms)
            .await
            .map_err(|e| source_error(e, connector))?;
        self.record_control(
            who,
            "connector.renormalise",
            connector,
            json!({ "from_ms": range.from_ms, "to_ms": range.to_ms, "outcome": outcome }),
        )
        .await?;
        info!(
            connector,
            taken = outcome.taken,
            accepted = outcome.accepted,
            "Source re-normalised from raw."
        );
        Ok(outcome)
    }
}

/// A source operation's failure as the admin API answers it.
fn source_error(e: SourceReplayError, connector: &str) -> ApiError {
    match e {
        SourceReplayError::UnknownConnector(_) => {
            ApiError::NotFound(format!("connector `{connector}`"))
        }
        SourceReplayError::Failed(cause) => ApiError::Internal(cause),
    }
}
