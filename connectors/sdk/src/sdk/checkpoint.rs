//! Where a polling source keeps its cursor between runs.

use std::sync::Mutex;

use async_trait::async_trait;

use super::SinkError;

/// A connector's checkpoint: an opaque JSON cursor (an `updated_since` time, a page token, a row id, a set of
/// processed files). The runtime keeps it on the compacted `_unsilo.offsets` topic, keyed by connector.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The last saved cursor, if any.
    async fn load(&self) -> Result<Option<serde_json::Value>, SinkError>;
    /// Saves the cursor durably. Call it only after the sink acknowledged everything the cursor covers.
    async fn save(&self, cursor: &serde_json::Value) -> Result<(), SinkError>;
}

/// A checkpoint store in memory: for tests and one-shot tools. Lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    cursor: Mutex<Option<serde_json::Value>>,
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self) -> Result<Option<serde_json::Value>, SinkError> {
        self.cursor
            .lock()
            .map(|c| c.clone())
            .map_err(|_| SinkError("checkpoint lock poisoned".into()))
    }

    async fn save(&self, cursor: &serde_json::Value) -> Result<(), SinkError> {
        *self
            .cursor
            .lock()
            .map_err(|_| SinkError("checkpoint lock poisoned".into()))? = Some(cursor.clone());
        Ok(())
    }
}
