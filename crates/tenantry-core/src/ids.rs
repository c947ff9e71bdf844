//! Tenant identifiers. The id is what every table and path carries; the slug is what people type.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A tenant's stable identity: a UUID (v7, so that ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl TenantId {
    /// A fresh id for a new tenant.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id without hyphens, safe to use inside identifiers and file names.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }

    /// The prefix of every key the tenant's code keeps in a shared key-value store (Redis):
    /// queues, caches and locks of two tenants never share a name, whatever names their code
    /// gives them. Dedicated compute receives it as `REDIS_PREFIX`; the router gives it with
    /// every request of a shared tenant.
    pub fn key_prefix(&self) -> String {
        format!("tenantry:{}:", self.simple())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TenantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A tenant's human name: lower-case letters, digits and hyphens, starting with a letter,
/// 2 to 63 characters (`^[a-z][a-z0-9-]{1,62}$`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// Why a string is not a valid slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid slug {value:?}: {problem}; a slug is 2 to 63 characters of a-z, 0-9 and '-', starting with a letter (e.g. \"acme-corp\")"
)]
pub struct InvalidSlug {
    /// The rejected input.
    pub value: String,
    /// What exactly is wrong with it.
    pub problem: &'static str,
}

impl Slug {
    /// Validates `value` as a slug.
    pub fn parse(value: &str) -> Result<Self, InvalidSlug> {
        let invalid = |problem| InvalidSlug {
            value: value.to_owned(),
            problem,
        };
        let mut chars = value.chars();
        match chars.next() {
            None => return Err(invalid("it is empty")),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(invalid("it must start with a lower-case letter"));
            }
            _ => {}
        }
        if value.len() < 2 {
            return Err(invalid("it is too short"));
        }
        if value.len() > 63 {
            return Err(invalid("it is longer than 63 characters"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(invalid(
                "it contains a character other than a-z, 0-9 or '-'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Slug {
    type Err = InvalidSlug;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Slug::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_slugs() {
        for ok in ["acme", "globex-2", "a1", "initech-corp-europe"] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_slugs_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("a", "too short"),
            ("Acme", "start with"),
            ("1acme", "start with"),
            ("acme_corp", "character"),
            ("acme corp", "character"),
        ];
        for (bad, why) in cases {
            let err = Slug::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        assert!(Slug::parse(&"a".repeat(64)).is_err());
        assert!(Slug::parse(&"a".repeat(63)).is_ok());
    }

    proptest! {
        #[test]
        fn parse_agrees_with_the_documented_pattern(s in "\\PC{0,70}") {
            let pattern = regex::Regex::new("^[a-z][a-z0-9-]{1,62}$").unwrap();
            prop_assert_eq!(Slug::parse(&s).is_ok(), pattern.is_match(&s));
        }
    }
}
