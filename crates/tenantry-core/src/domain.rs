//! Tenant domains: the host names a tenant is reached by — one primary and any number of
//! aliases, unique across tenants — so that a request's `Host` resolves to its tenant.
//!
//! Names are normalised once, here: lower case, no trailing dot. A request's host is turned into
//! a name the same way, after its port is dropped ([`Domain::from_host`]), so that lookups are
//! exact matches.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated, normalised host name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

/// Why a host name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid domain {value:?}: {problem}")]
pub struct InvalidDomain {
    pub value: String,
    pub problem: &'static str,
}

impl Domain {
    /// Validates and normalises a host name such as `shop.acme.example`.
    pub fn parse(value: &str) -> Result<Self, InvalidDomain> {
        let invalid = |problem| InvalidDomain {
            value: value.to_owned(),
            problem,
        };
        let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > 253 {
            return Err(invalid("it is longer than 253 characters"));
        }
        if !name.contains('.') {
            return Err(invalid(
                "it needs at least two labels, like shop.example.com",
            ));
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("each label must have 1 to 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("a label cannot start or end with '-'"));
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(invalid(
                    "it contains a character other than a-z, 0-9, '-' or '.' (use the punycode form of an international name)",
                ));
            }
        }
        Ok(Self(name))
    }

    /// The domain of a request's `Host` header value (`Shop.Acme.example:8443` →
    /// `shop.acme.example`).
    pub fn from_host(host: &str) -> Result<Self, InvalidDomain> {
        let without_port = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        };
        Self::parse(without_port)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Domain {
    type Error = InvalidDomain;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

/// A tenant's domains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDomains {
    pub primary: Option<Domain>,
    #[serde(default)]
    pub aliases: Vec<Domain>,
}

impl TenantDomains {
    /// From raw names: validated, aliases sorted, duplicates (and an alias equal to the
    /// primary) dropped. Aliases without a primary are refused: the primary is the name a
    /// tenant is known by.
    pub fn parse(primary: Option<&str>, aliases: &[String]) -> Result<Self, InvalidDomain> {
        let primary = primary.map(Domain::parse).transpose()?;
        let mut parsed = aliases
            .iter()
            .map(|a| Domain::parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        if primary.is_none()
            && let Some(first) = parsed.first()
        {
            return Err(InvalidDomain {
                value: first.to_string(),
                problem: "an alias needs a primary domain; give one with --domain",
            });
        }
        parsed.sort();
        parsed.dedup();
        parsed.retain(|a| Some(a) != primary.as_ref());
        Ok(Self {
            primary,
            aliases: parsed,
        })
    }

    /// Every name, the primary first.
    pub fn all(&self) -> impl Iterator<Item = &Domain> {
        self.primary.iter().chain(&self.aliases)
    }

    pub fn is_empty(&self) -> bool {
        self.primary.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(
            Domain::parse("Shop.ACME.example.").unwrap().as_str(),
            "shop.acme.example"
        );
        assert_eq!(
            Domain::from_host("Shop.Acme.example:8443")
                .unwrap()
                .as_str(),
            "shop.acme.example"
        );
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "ü.example",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
        assert!(Domain::parse(&format!("{}.example", "a".repeat(64))).is_err());
    }

    #[test]
    fn aliases_are_sorted_deduplicated_and_need_a_primary() {
        let d = TenantDomains::parse(
            Some("acme.example"),
            &[
                "www.acme.example".into(),
                "ACME.example".into(),
                "b.acme.example".into(),
                "www.acme.example".into(),
            ],
        )
        .unwrap();
        assert_eq!(d.primary.unwrap().as_str(), "acme.example");
        assert_eq!(
            d.aliases.iter().map(Domain::as_str).collect::<Vec<_>>(),
            ["b.acme.example", "www.acme.example"]
        );
        assert!(TenantDomains::parse(None, &["www.acme.example".into()]).is_err());
    }
}
