//! How an application names a tenant: by id, by slug, or by a request's host name.

use std::fmt;
use tenantry_core::TenantId;
use tenantry_core::domain::Domain;

/// A tenant as a request names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TenantKey {
    /// Its id.
    Id(TenantId),
    /// Its slug.
    Slug(String),
    /// One of its domains (a request's `Host`, port and case ignored).
    Host(Domain),
}

impl TenantKey {
    /// The tenant a request names: its `Host` when that is a tenant's domain, else its
    /// `X-Tenant` header (an id or a slug). `None` when neither is usable.
    pub fn from_request(host: Option<&str>, header: Option<&str>) -> Option<Self> {
        if let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) {
            return Some(Self::parse(value));
        }
        host.and_then(|h| Domain::from_host(h).ok()).map(Self::Host)
    }

    /// An id when `value` is one, else a slug.
    pub fn parse(value: &str) -> Self {
        match value.parse::<TenantId>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Slug(value.to_owned()),
        }
    }
}

impl From<TenantId> for TenantKey {
    fn from(id: TenantId) -> Self {
        Self::Id(id)
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Slug(slug) => f.write_str(slug),
            Self::Host(domain) => f.write_str(domain.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_host_and_ids_are_told_from_slugs() {
        let id = "0190a0a0-0000-7000-8000-000000000001";
        assert_eq!(
            TenantKey::from_request(Some("shop.example.com"), Some(id)),
            Some(TenantKey::Id(id.parse().unwrap()))
        );
        assert_eq!(
            TenantKey::from_request(Some("Shop.Example.com:8080"), None),
            Some(TenantKey::Host(Domain::parse("shop.example.com").unwrap()))
        );
        assert_eq!(
            TenantKey::from_request(None, Some(" acme ")),
            Some(TenantKey::Slug("acme".into()))
        );
        assert_eq!(TenantKey::from_request(None, Some("")), None);
        assert_eq!(TenantKey::from_request(Some("not a host!"), None), None);
    }
}
