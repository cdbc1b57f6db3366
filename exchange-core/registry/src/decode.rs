//! The one decoder of framed records: Confluent wire frame → writer schema from the registry → Avro datum.
//!
//! The router reads `std.` records with it (resolving each writer schema to the shared schema it routes), and
//! every delivery channel reads `sub.` records with it (in the view schema the frame names). Parsed schemas
//! come from the registry's view, so decoding never parses schema text.

use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::Schema;
use unsilo_bus::wire;

use crate::{AvroSchema, Registry};

/// Why a framed record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a Confluent frame.
    #[error("not a Confluent frame: {0}")]
    Frame(#[from] wire::WireError),
    /// The frame names a schema id the registry does not know.
    #[error("schema id {id}: {source}")]
    UnknownSchema {
        /// The id in the frame.
        id: u32,
        /// What the registry said.
        source: crate::Error,
    },
    /// The body does not decode with the writer schema (or does not resolve to the reader schema).
    #[error("{0}")]
    Datum(#[from] apache_avro::Error),
}

/// Decodes Confluent-framed Avro records with the registry's parsed schemas.
#[derive(Clone)]
pub struct FrameDecoder {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder").finish_non_exhaustive()
    }
}

impl FrameDecoder {
    /// A decoder over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// The parsed schema with registry id `id`.
    pub fn schema(&self, id: u32) -> Result<AvroSchema, DecodeError> {
        self.registry
            .avro_schema_by_id(id as i32)
            .map_err(|source| DecodeError::UnknownSchema { id, source })
    }

    /// Decodes one framed record: its schema id and its value, written with the frame's schema and, when
    /// `reader` is given and differs, resolved to `reader` by the Avro resolution rules.
    pub fn decode(
        &self,
        framed: &[u8],
        reader: Option<&Schema>,
    ) -> Result<(u32, Value), DecodeError> {
        let (id, mut body) = wire::decode(framed)?;
        let writer = self.schema(id)?;
        let reader = reader.filter(|r| *r != writer.schema());
        let value = apache_avro::from_avro_datum(writer.schema(), &mut body, reader)?;
        Ok((id, value))
    }
}
