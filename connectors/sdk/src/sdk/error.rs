//! Errors of sources and sinks, with the retry hint that lets the runtime decide about retries.

/// What the runtime should do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryHint {
    /// Retrying cannot help (bad configuration, a mapping that does not load): stop and tell the operator.
    NoRetry,
    /// A transient failure (the source is down, a timeout, the bus is busy): retry after an exponential backoff.
    WithBackoff,
}

/// A source failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// Whether to retry.
    pub hint: RetryHint,
    /// What went wrong, for the operator (never containing credentials).
    pub message: String,
}

impl SourceError {
    /// A failure that a retry after a backoff may fix.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            hint: RetryHint::WithBackoff,
            message: message.into(),
        }
    }

    /// A failure that no retry will fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            hint: RetryHint::NoRetry,
            message: message.into(),
        }
    }
}

/// The sink or checkpoint store could not make something durable (the bus failed). The batch was not
/// acknowledged: the source must not checkpoint past it, and should retry it.
#[derive(Debug, thiserror::Error)]
#[error("could not make the batch durable: {0}")]
pub struct SinkError(pub String);

impl From<SinkError> for SourceError {
    fn from(e: SinkError) -> Self {
        SourceError::transient(e.to_string())
    }
}
