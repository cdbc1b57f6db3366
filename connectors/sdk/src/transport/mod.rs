//! Transports: how records get from a source system to the hub.
//!
//! Each transport is *config → build → run*: a typed config struct (`deny_unknown_fields`, documented fields)
//! builds a [`Source`](crate::sdk::Source) that runs until shutdown, submits batches of raw input to the sink and
//! checkpoints its cursor only after the sink acknowledged them.

mod poll;
pub use poll::{deserialize_duration, parse_duration};

pub mod file_drop;
pub mod http_poll;
pub mod kafka_topic;
pub mod sql_poll;
