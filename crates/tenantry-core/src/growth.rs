//! Placement that grows with the tenant: thresholds on what a tenant holds and how its queries
//! go (the seeds' `migration_thresholds`), and the move they advise. Pure: the figures come from
//! the catalog's statistics, the advice goes to `tenantry placement recommend`.

use crate::isolation::Isolation;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A threshold: a tenant crossing any of `when` belongs in `to` (or more isolated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowthRule {
    pub to: Isolation,
    pub when: GrowthWhen,
}

/// The figures that count; any one crossed is enough.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowthWhen {
    /// Rows over all its tables.
    #[serde(default)]
    pub rows: Option<i64>,
    /// Rows of one table, by name (`customers = 100000`).
    #[serde(default)]
    pub table_rows: BTreeMap<String, i64>,
    /// Its data's size, in MiB.
    #[serde(default)]
    pub size_mb: Option<i64>,
    /// Mean query time its router reports, in milliseconds.
    #[serde(default)]
    pub avg_query_ms: Option<f64>,
}

impl GrowthWhen {
    pub fn is_empty(&self) -> bool {
        self.rows.is_none()
            && self.table_rows.is_empty()
            && self.size_mb.is_none()
            && self.avg_query_ms.is_none()
    }
}

/// What a tenant holds and how its queries go.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub rows: BTreeMap<String, i64>,
    pub size_bytes: i64,
    pub avg_query_ms: Option<f64>,
}

/// A move the thresholds advise, and the figure that crossed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub to: Isolation,
    pub reason: String,
}

/// The most isolated placement above `current` whose rule `usage` crosses; `None` when the
/// tenant is where it belongs.
pub fn recommend(
    rules: &[GrowthRule],
    current: Isolation,
    usage: &Usage,
) -> Option<Recommendation> {
    rules
        .iter()
        .filter(|r| r.to > current)
        .filter_map(|r| crossed(&r.when, usage).map(|reason| (r.to, reason)))
        .max_by_key(|(to, _)| *to)
        .map(|(to, reason)| Recommendation { to, reason })
}

/// `rules` with every threshold raised by `margin` (0.2: 20 % higher): a tenant that crosses
/// these is past the original ones by at least that much.
pub fn with_margin(rules: &[GrowthRule], margin: f64) -> Vec<GrowthRule> {
    let raise = |n: i64| (n as f64 * (1.0 + margin)).ceil() as i64;
    rules
        .iter()
        .map(|r| GrowthRule {
            to: r.to,
            when: GrowthWhen {
                rows: r.when.rows.map(raise),
                table_rows: r
                    .when
                    .table_rows
                    .iter()
                    .map(|(t, n)| (t.clone(), raise(*n)))
                    .collect(),
                size_mb: r.when.size_mb.map(raise),
                avg_query_ms: r.when.avg_query_ms.map(|ms| ms * (1.0 + margin)),
            },
        })
        .collect()
}

/// The first figure of `usage` that crosses `when`, in words.
fn crossed(when: &GrowthWhen, usage: &Usage) -> Option<String> {
    let total: i64 = usage.rows.values().sum();
    if let Some(limit) = when.rows
        && total >= limit
    {
        return Some(format!("{total} rows ≥ {limit}"));
    }
    for (table, limit) in &when.table_rows {
        let n = usage.rows.get(table).copied().unwrap_or(0);
        if n >= *limit {
            return Some(format!("{n} {table} ≥ {limit}"));
        }
    }
    if let Some(limit) = when.size_mb
        && usage.size_bytes >= limit * 1024 * 1024
    {
        return Some(format!(
            "{} MiB ≥ {limit} MiB",
            usage.size_bytes / (1024 * 1024)
        ));
    }
    if let (Some(limit), Some(avg)) = (when.avg_query_ms, usage.avg_query_ms)
        && avg >= limit
    {
        return Some(format!("mean query {avg:.1} ms ≥ {limit} ms"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_margin_raises_every_threshold() {
        let raised = with_margin(&rules(), 0.2);
        assert_eq!(raised[0].when.table_rows["customers"], 1200);
        assert_eq!(raised[1].when.rows, Some(120_000));
        let usage = |customers| Usage {
            rows: [("customers".to_owned(), customers)].into(),
            ..Usage::default()
        };
        assert!(recommend(&rules(), Isolation::Shared, &usage(1100)).is_some());
        assert!(recommend(&raised, Isolation::Shared, &usage(1100)).is_none());
        assert!(recommend(&raised, Isolation::Shared, &usage(1200)).is_some());
    }

    fn rules() -> Vec<GrowthRule> {
        vec![
            GrowthRule {
                to: Isolation::Schema,
                when: GrowthWhen {
                    table_rows: [("customers".to_owned(), 1000)].into(),
                    ..GrowthWhen::default()
                },
            },
            GrowthRule {
                to: Isolation::Database,
                when: GrowthWhen {
                    rows: Some(100_000),
                    avg_query_ms: Some(50.0),
                    ..GrowthWhen::default()
                },
            },
        ]
    }

    fn usage(customers: i64, orders: i64, avg: Option<f64>) -> Usage {
        Usage {
            rows: [
                ("customers".to_owned(), customers),
                ("orders".to_owned(), orders),
            ]
            .into(),
            size_bytes: 0,
            avg_query_ms: avg,
        }
    }

    #[test]
    fn the_most_isolated_crossed_placement_above_the_current_one_is_advised() {
        assert_eq!(
            recommend(&rules(), Isolation::Shared, &usage(10, 10, None)),
            None
        );
        let r = recommend(&rules(), Isolation::Shared, &usage(1500, 10, None)).unwrap();
        assert_eq!(
            (r.to, r.reason.as_str()),
            (Isolation::Schema, "1500 customers ≥ 1000")
        );
        let r = recommend(&rules(), Isolation::Shared, &usage(1500, 99_000, None)).unwrap();
        assert_eq!(r.to, Isolation::Database, "{r:?}");
        let r = recommend(&rules(), Isolation::Schema, &usage(5, 5, Some(80.0))).unwrap();
        assert_eq!(
            (r.to, r.reason.as_str()),
            (Isolation::Database, "mean query 80.0 ms ≥ 50 ms")
        );
        assert_eq!(
            recommend(
                &rules(),
                Isolation::Database,
                &usage(1_000_000, 0, Some(900.0))
            ),
            None,
            "never a move down"
        );
    }
}
