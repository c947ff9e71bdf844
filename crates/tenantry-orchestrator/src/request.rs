//! A provisioning request: validated in full, and placed, before anything is written — so that
//! bad input leaves the catalog and the disk untouched, and `--dry-run` shows exactly what
//! would happen.

use crate::error::{OrchestratorError, Result};
use crate::steps::PROVISION_STEPS;
use serde::Serialize;
use tenantry_core::domain::TenantDomains;
use tenantry_core::placement::{Characteristics, Placement};
use tenantry_core::space::Space;
use tenantry_core::{Isolation, Slug, TenantId};

/// What a caller asks for when creating a tenant.
#[derive(Debug, Clone, Default)]
pub struct ProvisionRequest {
    pub slug: String,
    pub plan: String,
    pub region: String,
    pub compliance: Vec<String>,
    pub members: u64,
    pub monthly_api_calls: u64,
    /// An operator's override of the isolation.
    pub isolation: Option<Isolation>,
    /// The bootstrap admin's email; `admin@<slug>.example` when absent.
    pub admin_email: Option<String>,
    /// The tenant's primary host name, and its aliases (each free of other tenants).
    pub domain: Option<String>,
    pub aliases: Vec<String>,
}

/// What provisioning would do: the decision and the steps.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionPlan {
    pub tenant_id: TenantId,
    pub slug: Slug,
    pub plan: String,
    pub region: String,
    pub characteristics: Characteristics,
    pub placement: Placement,
    pub shard: String,
    pub space: Space,
    pub admin_email: String,
    pub domains: TenantDomains,
    pub steps: Vec<&'static str>,
}

/// Checks a compliance tag: a lower-case word (`hipaa`, `gdpr`, `pci`, `sox`, …).
pub(crate) fn validate_tag(tag: &str) -> Result<String> {
    let ok = !tag.is_empty()
        && tag.len() <= 32
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(tag.to_owned())
    } else {
        Err(OrchestratorError::InvalidRequest(format!(
            "invalid compliance tag {tag:?}: use a lower-case word such as hipaa, gdpr, pci or sox"
        )))
    }
}

/// Checks an email address enough to refuse typos: one `@`, something on each side, a dot in
/// the domain, no spaces.
pub(crate) fn validate_email(email: &str) -> Result<String> {
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
               && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(email.to_owned())
    } else {
        Err(OrchestratorError::InvalidRequest(format!(
            "invalid admin email {email:?}: expected an address like admin@example.com"
        )))
    }
}

impl ProvisionRequest {
    /// The tenant characteristics placement decides from.
    pub(crate) fn characteristics(&self) -> Result<Characteristics> {
        let mut compliance = self
            .compliance
            .iter()
            .map(|t| validate_tag(t))
            .collect::<Result<Vec<_>>>()?;
        compliance.sort();
        compliance.dedup();
        Ok(Characteristics {
            plan: self.plan.clone(),
            region: self.region.clone(),
            compliance,
            members: self.members,
            monthly_api_calls: self.monthly_api_calls,
        })
    }

    /// The steps a provisioning runs, in order.
    pub fn steps() -> Vec<&'static str> {
        PROVISION_STEPS.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_tags_are_checked() {
        assert!(validate_email("admin@acme.example").is_ok());
        for bad in [
            "",
            "admin",
            "@acme.example",
            "a@b",
            "a b@c.example",
            "a@.example",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert!(validate_tag("hipaa").is_ok());
        assert!(validate_tag("HIPAA").is_err());
        assert!(validate_tag("").is_err());
    }
}
