//! Placement: a pure, explainable function from a tenant's characteristics to its isolation and
//! compute.
//!
//! The decision is made in a fixed order, and the first thing that decides is named in the
//! result (`rule`) with a one-line `reason`, which the catalog stores in the tenant's metadata:
//!
//! 1. the plan's defaults (`plan:<name>`);
//! 2. the first matching rule of `[[placement.rules]]`, in file order;
//! 3. a per-tenant override from `[placement.overrides.<slug>]`;
//! 4. an operator's `--isolation` on the command line (`operator-override`);
//! 5. if the result is `schema` and the region's shards cannot host schemas (SQLite), the
//!    configured `schema_fallback`, reported in the reason.

use crate::isolation::{Compute, Isolation, UnknownValue, words};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A plan's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Isolation a tenant of this plan gets unless a rule or override says otherwise.
    pub isolation: Isolation,
    /// Compute a tenant of this plan gets unless a rule or override says otherwise.
    #[serde(default = "default_compute")]
    pub compute: Compute,
    /// Storage quota in MiB.
    #[serde(default = "default_quota")]
    pub storage_quota_mb: u64,
    /// Memory of a dedicated tenant's compute (requested and its limit), in Kubernetes' units.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// CPU of a dedicated tenant's compute (requested and its limit), in Kubernetes' units.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// A line for people reading `tenantry plan list`.
    #[serde(default)]
    pub description: String,
}

fn default_compute() -> Compute {
    Compute::Shared
}

fn default_quota() -> u64 {
    1024
}

fn default_memory() -> String {
    "512Mi".into()
}

fn default_cpu() -> String {
    "500m".into()
}

/// What a rule matches on; every condition given must hold (an empty condition matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Matches when the tenant carries any of these compliance tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance_any: Vec<String>,
    /// Matches tenants of these plans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<String>,
    /// Matches tenants of these regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Matches tenants with at least this many members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_members: Option<u64>,
    /// Matches tenants with at least this many API calls a month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_monthly_api_calls: Option<u64>,
}

/// One ordered placement rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The name recorded as the deciding rule.
    pub name: String,
    /// When the rule applies.
    #[serde(default)]
    pub when: Condition,
    /// Isolation to give; the plan's when absent.
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Compute to give; the plan's when absent.
    #[serde(default)]
    pub compute: Option<Compute>,
    /// Why, in words; recorded with the decision.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A per-tenant override, keyed by slug in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Isolation to give this tenant.
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Compute to give this tenant.
    #[serde(default)]
    pub compute: Option<Compute>,
    /// Shard to place this tenant's database on (must be in its region).
    #[serde(default)]
    pub shard: Option<String>,
}

/// What happens to a tenant whose placement says `schema` in a region whose shards cannot host
/// schemas (SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchemaFallback {
    /// Give it a database of its own instead (stronger isolation; the default).
    #[default]
    Database,
    /// Put it in the shared database instead.
    Shared,
    /// Refuse to provision it.
    Reject,
}

words!(SchemaFallback, "schema fallback", Database => "database", Shared => "shared", Reject => "reject");

/// The tenant characteristics placement looks at.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Characteristics {
    pub plan: String,
    pub region: String,
    #[serde(default)]
    pub compliance: Vec<String>,
    #[serde(default)]
    pub members: u64,
    #[serde(default)]
    pub monthly_api_calls: u64,
}

/// Everything placement decides with.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub plans: &'a BTreeMap<String, Plan>,
    pub rules: &'a [Rule],
    pub overrides: &'a BTreeMap<String, Override>,
    pub schema_fallback: SchemaFallback,
}

/// The decision, as stored in the tenant's metadata.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub isolation: Isolation,
    pub compute: Compute,
    /// The name of what decided: `plan:<name>`, a rule's name, `override:<slug>`,
    /// `operator-override`, or `schema-fallback`.
    pub rule: String,
    /// One line saying why.
    pub reason: String,
    /// Whether a per-tenant or operator override decided.
    #[serde(default)]
    pub overridden: bool,
    /// A shard named by an override, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_shard: Option<String>,
}

/// Why placement could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    #[error("unknown plan {plan:?}; known plans: {known}")]
    UnknownPlan { plan: String, known: String },
    #[error(
        "{slug} would get schema isolation, but region {region:?} has no shard that can host schemas and placement.schema_fallback is \"reject\"; add a PostgreSQL shard to the region or choose another isolation"
    )]
    SchemaUnavailable { slug: String, region: String },
}

/// Decides a tenant's placement. `region_supports_schemas` says whether the region's shared
/// shard can host a schema per tenant.
pub fn decide(
    policy: Policy<'_>,
    slug: &str,
    tenant: &Characteristics,
    operator_isolation: Option<Isolation>,
    region_supports_schemas: bool,
) -> Result<Placement, PlacementError> {
    let plan = policy
        .plans
        .get(&tenant.plan)
        .ok_or_else(|| PlacementError::UnknownPlan {
            plan: tenant.plan.clone(),
            known: policy.plans.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
    let mut placement = Placement {
        isolation: plan.isolation,
        compute: plan.compute,
        rule: format!("plan:{}", tenant.plan),
        reason: format!(
            "plan {} defaults to {} isolation and {} compute",
            tenant.plan, plan.isolation, plan.compute
        ),
        overridden: false,
        requested_shard: None,
    };
    if let Some(rule) = policy.rules.iter().find(|r| matches(&r.when, tenant)) {
        placement.isolation = rule.isolation.unwrap_or(placement.isolation);
        placement.compute = rule.compute.unwrap_or(placement.compute);
        placement.rule = rule.name.clone();
        placement.reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| describe_match(&rule.when, tenant));
    }
    if let Some(o) = policy.overrides.get(slug) {
        placement.isolation = o.isolation.unwrap_or(placement.isolation);
        placement.compute = o.compute.unwrap_or(placement.compute);
        placement.requested_shard = o.shard.clone();
        placement.rule = format!("override:{slug}");
        placement.reason = format!(
            "placement.overrides.{slug} in the configuration sets {} isolation and {} compute",
            placement.isolation, placement.compute
        );
        placement.overridden = true;
    }
    if let Some(isolation) = operator_isolation {
        placement.isolation = isolation;
        placement.rule = "operator-override".into();
        placement.reason = format!("an operator asked for {isolation} isolation (--isolation)");
        placement.overridden = true;
    }
    if placement.isolation == Isolation::Schema && !region_supports_schemas {
        let to = match policy.schema_fallback {
            SchemaFallback::Database => Isolation::Database,
            SchemaFallback::Shared => Isolation::Shared,
            SchemaFallback::Reject => {
                return Err(PlacementError::SchemaUnavailable {
                    slug: slug.to_owned(),
                    region: tenant.region.clone(),
                });
            }
        };
        placement.reason = format!(
            "{} chose schema isolation, but region {} has no shard that hosts schemas (SQLite); placement.schema_fallback gives {to} instead",
            placement.rule, tenant.region
        );
        placement.rule = "schema-fallback".into();
        placement.isolation = to;
    }
    Ok(placement)
}

fn matches(when: &Condition, t: &Characteristics) -> bool {
    (when.compliance_any.is_empty() || t.compliance.iter().any(|c| when.compliance_any.contains(c)))
        && (when.plans.is_empty() || when.plans.contains(&t.plan))
        && (when.regions.is_empty() || when.regions.contains(&t.region))
        && when.min_members.is_none_or(|m| t.members >= m)
        && when
            .min_monthly_api_calls
            .is_none_or(|m| t.monthly_api_calls >= m)
}

fn describe_match(when: &Condition, t: &Characteristics) -> String {
    let mut parts = Vec::new();
    let tags: Vec<&str> = t
        .compliance
        .iter()
        .filter(|c| when.compliance_any.contains(c))
        .map(String::as_str)
        .collect();
    if !tags.is_empty() {
        parts.push(format!("compliance tag {}", tags.join(", ")));
    }
    if !when.plans.is_empty() {
        parts.push(format!("plan {}", t.plan));
    }
    if !when.regions.is_empty() {
        parts.push(format!("region {}", t.region));
    }
    if let Some(m) = when.min_members {
        parts.push(format!("{} members ≥ {m}", t.members));
    }
    if let Some(m) = when.min_monthly_api_calls {
        parts.push(format!("{} monthly API calls ≥ {m}", t.monthly_api_calls));
    }
    if parts.is_empty() {
        "the rule matches every tenant".into()
    } else {
        format!("matched on {}", parts.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn make_test_plans() -> BTreeMap<String, Plan> {
        let plan = |isolation, compute| Plan {
            isolation,
            compute,
            storage_quota_mb: 100,
            memory: default_memory(),
            cpu: default_cpu(),
            description: String::new(),
        };
        BTreeMap::from([
            ("free".into(), plan(Isolation::Shared, Compute::Shared)),
            ("standard".into(), plan(Isolation::Shared, Compute::Shared)),
            ("business".into(), plan(Isolation::Schema, Compute::Shared)),
            ("premium".into(), plan(Isolation::Database, Compute::Shared)),
            (
                "enterprise".into(),
                plan(Isolation::Database, Compute::Dedicated),
            ),
        ])
    }

    fn make_test_rules() -> Vec<Rule> {
        vec![
            Rule {
                name: "compliance-dedicated-database".into(),
                when: Condition {
                    compliance_any: vec!["hipaa".into(), "gdpr".into(), "pci".into(), "sox".into()],
                    ..Condition::default()
                },
                isolation: Some(Isolation::Database),
                compute: None,
                reason: None,
            },
            Rule {
                name: "high-traffic".into(),
                when: Condition {
                    min_monthly_api_calls: Some(10_000_000),
                    ..Condition::default()
                },
                isolation: None,
                compute: Some(Compute::Dedicated),
                reason: Some("more than 10M API calls a month".into()),
            },
        ]
    }

    fn tenant(plan: &str) -> Characteristics {
        Characteristics {
            plan: plan.into(),
            region: "eu-west".into(),
            ..Characteristics::default()
        }
    }

    fn decide_with(
        t: &Characteristics,
        overrides: &BTreeMap<String, Override>,
        operator: Option<Isolation>,
        schemas: bool,
        fallback: SchemaFallback,
    ) -> Result<Placement, PlacementError> {
        let plans = make_test_plans();
        let rules = make_test_rules();
        let policy = Policy {
            plans: &plans,
            rules: &rules,
            overrides,
            schema_fallback: fallback,
        };
        decide(policy, "acme", t, operator, schemas)
    }

    fn simple(t: &Characteristics) -> Placement {
        decide_with(t, &BTreeMap::new(), None, true, SchemaFallback::Database).unwrap()
    }

    #[test]
    fn plans_decide_by_default() {
        let p = simple(&tenant("standard"));
        assert_eq!(
            (p.isolation, p.rule.as_str()),
            (Isolation::Shared, "plan:standard")
        );
        let p = simple(&tenant("premium"));
        assert_eq!(p.isolation, Isolation::Database);
        assert!(!p.overridden);
    }

    #[test]
    fn a_compliance_tag_sends_the_tenant_to_a_database_and_says_why() {
        let mut t = tenant("standard");
        t.compliance = vec!["hipaa".into()];
        let p = simple(&t);
        assert_eq!(p.isolation, Isolation::Database);
        assert_eq!(p.rule, "compliance-dedicated-database");
        assert_eq!(p.reason, "matched on compliance tag hipaa");
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let mut t = tenant("free");
        t.compliance = vec!["pci".into()];
        t.monthly_api_calls = 50_000_000;
        assert_eq!(simple(&t).rule, "compliance-dedicated-database");
        t.compliance.clear();
        let p = simple(&t);
        assert_eq!(
            (p.rule.as_str(), p.compute),
            ("high-traffic", Compute::Dedicated)
        );
        assert_eq!(p.isolation, Isolation::Shared);
    }

    #[test]
    fn overrides_beat_rules_and_the_operator_beats_overrides() {
        let overrides = BTreeMap::from([(
            "acme".to_string(),
            Override {
                isolation: Some(Isolation::Schema),
                ..Override::default()
            },
        )]);
        let mut t = tenant("standard");
        t.compliance = vec!["gdpr".into()];
        let p = decide_with(&t, &overrides, None, true, SchemaFallback::Database).unwrap();
        assert_eq!(
            (p.isolation, p.rule.as_str()),
            (Isolation::Schema, "override:acme")
        );
        assert!(p.overridden);
        let p = decide_with(
            &t,
            &overrides,
            Some(Isolation::Shared),
            true,
            SchemaFallback::Database,
        )
        .unwrap();
        assert_eq!(
            (p.isolation, p.rule.as_str()),
            (Isolation::Shared, "operator-override")
        );
    }

    #[test]
    fn schema_without_a_schema_capable_shard_follows_the_fallback() {
        let t = tenant("business");
        let none = BTreeMap::new();
        let p = decide_with(&t, &none, None, false, SchemaFallback::Database).unwrap();
        assert_eq!(
            (p.isolation, p.rule.as_str()),
            (Isolation::Database, "schema-fallback")
        );
        assert!(
            p.reason.contains("plan:business chose schema"),
            "{}",
            p.reason
        );
        let p = decide_with(&t, &none, None, false, SchemaFallback::Shared).unwrap();
        assert_eq!(p.isolation, Isolation::Shared);
        let err = decide_with(&t, &none, None, false, SchemaFallback::Reject).unwrap_err();
        assert!(matches!(err, PlacementError::SchemaUnavailable { .. }));
        let p = decide_with(&t, &none, None, true, SchemaFallback::Reject).unwrap();
        assert_eq!(p.isolation, Isolation::Schema);
    }

    #[test]
    fn an_unknown_plan_lists_the_known_ones() {
        let err = decide_with(
            &tenant("gold"),
            &BTreeMap::new(),
            None,
            true,
            SchemaFallback::Database,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown plan \"gold\"; known plans: business, enterprise, free, premium, standard"
        );
    }

    proptest! {
        /// Placement is a pure function: the same input always gives the same decision, and a
        /// compliance-tagged tenant never lands in shared isolation without an override.
        #[test]
        fn deterministic_and_compliance_is_never_shared(
            plan in proptest::sample::select(vec!["free", "standard", "business", "premium", "enterprise"]),
            tagged in any::<bool>(),
            members in 0u64..1_000_000,
            calls in 0u64..100_000_000,
            schemas in any::<bool>(),
        ) {
            let mut t = tenant(plan);
            t.members = members;
            t.monthly_api_calls = calls;
            if tagged { t.compliance = vec!["sox".into()]; }
            let a = decide_with(&t, &BTreeMap::new(), None, schemas, SchemaFallback::Database).unwrap();
            let b = decide_with(&t, &BTreeMap::new(), None, schemas, SchemaFallback::Database).unwrap();
            prop_assert_eq!(&a, &b);
            if tagged { prop_assert_eq!(a.isolation, Isolation::Database); }
            if !schemas { prop_assert_ne!(a.isolation, Isolation::Schema); }
        }
    }
}
