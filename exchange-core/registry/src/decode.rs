//! The one decoder of framed records: Confluent wire frame → writer schema from the registry → Avro datum.
//!
//! The router reads `std.` records with it (resolving each writer schema to the shared schema it routes), and
//! every delivery channel reads `sub.` records with it (in the view schema the frame names). Parsed schemas
//! come from the registry's view, so decoding never parses schema text.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::headers::HeaderBuilder;
use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, Schema};
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
///
/// Each writer schema is prepared once per decoder: apache-avro's `from_avro_datum` resolves the schema's names
/// on every call, which cost more than the decode itself on the router's hot path.
#[derive(Clone)]
pub struct FrameDecoder {
    registry: Arc<Registry>,
    prepared: Arc<RwLock<HashMap<u32, Arc<Prepared>>>>,
}

/// A writer schema ready to decode with, and whether it equals each static reader it was asked for.
struct Prepared {
    schema: AvroSchema,
    /// apache-avro's reader with the schema's names resolved once; its "header" is empty, so it reads a bare
    /// datum (the Confluent frame is taken off before).
    datum: GenericSingleObjectReader,
    /// By the address of a `'static` reader schema: whether it differs from this writer schema (comparing two
    /// schemas builds their canonical forms, too dear for every record).
    compared: RwLock<HashMap<usize, bool>>,
}

/// No single-object header: the datum starts at once.
struct BareDatum;

impl HeaderBuilder for BareDatum {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
    }
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder").finish_non_exhaustive()
    }
}

impl FrameDecoder {
    /// A decoder over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            prepared: Arc::default(),
        }
    }

    /// The prepared writer schema with registry id `id`.
    fn prepared(&self, id: u32) -> Result<Arc<Prepared>, DecodeError> {
        if let Some(p) = self.prepared.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(p);
        }
        let schema = self.schema(id)?;
        let datum =
            GenericSingleObjectReader::new_with_header_builder(schema.schema().clone(), BareDatum)?;
        let prepared = Arc::new(Prepared {
            schema,
            datum,
            compared: RwLock::default(),
        });
        if let Ok(mut m) = self.prepared.write() {
            m.insert(id, prepared.clone());
        }
        Ok(prepared)
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
        let (id, writer, value) = self.read(framed)?;
        match reader {
            Some(r) if r != writer.schema.schema() => Ok((id, value.resolve(r)?)),
            _ => Ok((id, value)),
        }
    }

    /// [`decode`](Self::decode) to a reader schema that lives for the whole process (a shared schema), whose
    /// comparison with each writer schema is made once.
    pub fn decode_to(
        &self,
        framed: &[u8],
        reader: &'static Schema,
    ) -> Result<(u32, Value), DecodeError> {
        let (id, writer, value) = self.read(framed)?;
        if writer.differs_from(reader) {
            Ok((id, value.resolve(reader)?))
        } else {
            Ok((id, value))
        }
    }

    /// Takes the frame off and reads the datum with its writer schema: the schema id, the prepared writer schema
    /// and the value as written.
    fn read(&self, framed: &[u8]) -> Result<(u32, Arc<Prepared>, Value), DecodeError> {
        let (id, mut body) = wire::decode(framed)?;
        let writer = self.prepared(id)?;
        let value = writer.datum.read_value(&mut body)?;
        Ok((id, writer, value))
    }
}

impl Prepared {
    /// Whether `reader` differs from this writer schema, compared once per reader: a `'static` schema is never
    /// freed, so its address names it for good.
    fn differs_from(&self, reader: &'static Schema) -> bool {
        let address = std::ptr::from_ref(reader) as usize;
        if let Some(d) = self
            .compared
            .read()
            .ok()
            .and_then(|m| m.get(&address).copied())
        {
            return d;
        }
        let d = reader != self.schema.schema();
        if let Ok(mut m) = self.compared.write() {
            m.insert(address, d);
        }
        d
    }
}
