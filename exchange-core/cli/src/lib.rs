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
