//! The order in which a tenant's rows are deleted from a shared space, whatever the engine.
//!
//! Drivers find the tables that carry `tenant_id` and their foreign keys from the database's
//! own catalog (never a hard-coded list, so any application works) and delete children before
//! parents, so that a `RESTRICT` foreign key never stops the deletion half-way.

use std::collections::{BTreeMap, BTreeSet};

/// `tables` ordered children first. `references` holds `(child, parent)` pairs; pairs naming a
/// table outside `tables`, and self-references, are ignored. A reference cycle falls back to
/// name order for the tables in it (the database then says whether that works).
pub(crate) fn children_first(
    tables: impl IntoIterator<Item = String>,
    references: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let mut parents: BTreeMap<String, BTreeSet<String>> =
        tables.into_iter().map(|t| (t, BTreeSet::new())).collect();
    for (child, parent) in references {
        if child != parent
            && parents.contains_key(&parent)
            && let Some(p) = parents.get_mut(&child)
        {
            p.insert(parent);
        }
    }
    let mut order = Vec::with_capacity(parents.len());
    let mut left: BTreeSet<String> = parents.keys().cloned().collect();
    while !left.is_empty() {
        // The tables no remaining table refers to.
        let leaves: Vec<String> = left
            .iter()
            .filter(|t| !left.iter().any(|o| parents[o].contains(*t)))
            .cloned()
            .collect();
        let take = if leaves.is_empty() {
            left.iter().cloned().collect()
        } else {
            leaves
        };
        for t in take {
            left.remove(&t);
            order.push(t);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_test_refs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn children_come_before_their_parents() {
        let tables = ["customers", "orders", "order_items", "users", "carts"].map(String::from);
        let refs = make_test_refs(&[
            ("orders", "customers"),
            ("order_items", "orders"),
            ("carts", "customers"),
            ("users", "users"),
            ("orders", "elsewhere"),
        ]);
        let order = children_first(tables, refs);
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert_eq!(order.len(), 5);
        assert!(at("order_items") < at("orders"));
        assert!(at("orders") < at("customers"));
        assert!(at("carts") < at("customers"));
    }

    #[test]
    fn a_cycle_still_yields_every_table_once() {
        let order = children_first(
            ["a", "b", "c"].map(String::from),
            make_test_refs(&[("a", "b"), ("b", "a"), ("c", "a")]),
        );
        assert_eq!(order, ["c", "a", "b"]);
    }
}
