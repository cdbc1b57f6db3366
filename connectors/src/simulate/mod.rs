//! Simulators: stand-ins for the source systems, speaking each system's own raw format with realistic data, at a
//! configurable rate and with a configurable share of malformed records — for demos, tests and benchmarks.
//!
//! - [`fake`]: the realistic data generator every simulator draws from.
//! - [`hotline12345`]: the 12345 hotline's work-order API, served for the hub to poll.
//! - [`qinwuyuan`]: the 秦务员 platform, pushing service cases, ratings and appeals to the hub.

pub mod dept_file;
pub mod dept_sql;
pub mod fake;
pub mod grid;
pub mod hotline12345;
pub mod qinwuyuan;
