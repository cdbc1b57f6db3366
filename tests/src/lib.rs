//! End-to-end tests across the whole unsilo system live in `tests/tests/`; this library is empty on purpose
//! and exists so the test crate can sit in the workspace.
