//! # unsilo-simulate
//!
//! Simulators: stand-ins for the source systems, speaking each system's own raw format with realistic data, at a
//! configurable rate and with a configurable share of malformed records — for demos, tests and benchmarks.
//!
//! Every simulator module has the same shape: an options struct, `run(options, shutdown) -> Result<Stats, Error>`
//! (what it did, or why it stopped), and a pure, seeded generator that tests and benchmarks use without I/O.
//! `unsilo simulate <system>` runs one; `unsilo demo` runs them all against a hub.
//!
//! # Layout
//!
//! - [`fake`]: the realistic data generator every simulator draws from.
//! - [`grid`]: the county grid platform, pushing events (through their workflow), households, residents and grids.
//! - [`qinwuyuan`]: the 秦务员 platform, pushing service cases, ratings and appeals to the hub.
//! - [`hotline12345`]: the 12345 hotline's work-order API, served for the hub to poll.
//! - [`dept_sql`]: departmental tables (a 低保 roster in PostgreSQL, incidents in MySQL), written for the hub to poll.
//! - [`dept_file`]: departmental GBK CSV / XLSX exports, dropped into a folder the hub watches.

mod clock;
pub mod dept_file;
pub mod dept_sql;
pub mod fake;
pub mod grid;
pub mod hotline12345;
mod options;
pub mod qinwuyuan;
