//! Exit codes and error messages at the binary's edge.

use crate::backend::remote::RemoteError;
use tenantry_catalog::CatalogError;
use tenantry_core::config::ConfigError;
use tenantry_orchestrator::OrchestratorError;

/// Bad input or configuration: nothing was written.
pub const BAD_INPUT: u8 = 2;
/// The command was valid but failed (an operation failed, a server was unreachable or
/// failed). A server's 4xx answer is bad input, as the same request is locally.
pub const FAILED: u8 = 1;

/// Raised by commands for input problems found at the edge.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The exit code for an error.
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<BadInput>() || cause.is::<ConfigError>() {
            return BAD_INPUT;
        }
        if let Some(o) = cause.downcast_ref::<OrchestratorError>() {
            return match o {
                OrchestratorError::InvalidRequest(_)
                | OrchestratorError::Slug(_)
                | OrchestratorError::Placement(_)
                | OrchestratorError::Resolve(_) => BAD_INPUT,
                OrchestratorError::Catalog(c) => catalog_code(c),
                _ => FAILED,
            };
        }
        if let Some(c) = cause.downcast_ref::<CatalogError>() {
            return catalog_code(c);
        }
        if let Some(r) = cause.downcast_ref::<RemoteError>() {
            return if r.is_bad_input() { BAD_INPUT } else { FAILED };
        }
    }
    FAILED
}

fn catalog_code(c: &CatalogError) -> u8 {
    match c {
        CatalogError::DuplicateSlug(_)
        | CatalogError::TenantNotFound(_)
        | CatalogError::OperationNotFound(_)
        | CatalogError::ShardNotFound(_)
        | CatalogError::DuplicateShard(_)
        | CatalogError::TokenNotFound(_)
        | CatalogError::DuplicateToken(_)
        | CatalogError::DomainTaken { .. }
        | CatalogError::DomainNotFound(_)
        | CatalogError::IllegalTransition(_)
        | CatalogError::OperationInProgress { .. } => BAD_INPUT,
        _ => FAILED,
    }
}

/// The error and its causes, one sentence each, without repeating a cause its parent already
/// includes.
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
