//! Test support for tests that need real servers.
//!
//! Tests talk to real PostgreSQL, never a stand-in. When a server is missing, a test run in CI
//! (`CI` set) fails loudly; elsewhere it is skipped with a printed reason, so that a developer
//! without PostgreSQL can still run the rest of the suite.
//!
//! # Layout
//! - [`postgres`]: the machine's PostgreSQL (a fresh, uniquely named database per test) and
//!   extra PostgreSQL servers started from the server binaries on free ports, standing for the
//!   shards of other regions.

pub mod postgres;

/// Whether the tests run in CI, where a missing server is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Called when a server a test needs is missing: panics in CI, prints the reason otherwise.
/// Returns `None` so that callers can `let Some(x) = … else { return };`.
pub fn missing<T>(what: &str) -> Option<T> {
    if in_ci() {
        panic!("{what} is required in CI but is not available");
    }
    eprintln!("SKIPPED: {what} is not available; this test needs it (in CI it fails instead)");
    None
}
