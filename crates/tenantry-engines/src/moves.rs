//! What a live tenant move needs whatever the engine: the tables it copies, the per-table
//! checksums it compares, and the words it uses to say where two sides differ.
//!
//! The engines' building blocks ([`crate::postgres::moves`], [`crate::sqlite::moves`]) share
//! these types so that the orchestrator drives a move the same way on either, and reports a
//! failed comparison in the same terms.

/// The change log of tenants under move, in the space a tenant leaves.
pub const CHANGES: &str = "tenantry_move_changes";
/// Tenants under move in a space; `paused` once a move switched away from it.
pub const MOVING: &str = "tenantry_move_tenants";

/// A table of the tenant's as a move copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveTable {
    pub name: String,
    /// Its primary key's columns, in order.
    pub key: Vec<String>,
    /// Every column, in order.
    pub columns: Vec<String>,
}

/// One table's count and checksum of the tenant's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChecksum {
    pub table: String,
    pub rows: i64,
    pub checksum: String,
}

impl TableChecksum {
    /// This table's count and checksum (the source's) beside `target`'s, in words.
    pub fn beside(&self, target: &TableChecksum) -> String {
        format!(
            "{}: {} rows (checksum {}) at the source, {} rows (checksum {}) at the target",
            self.table, self.rows, self.checksum, target.rows, target.checksum
        )
    }
}

/// Where two sides' rows of a table differ, in words: runs of consecutive rows of the source
/// (in key order) that are missing or different at the target, as key ranges, then rows only
/// the target has. At most `limit` entries, the rest counted.
pub fn key_ranges(
    source: &[(String, String)],
    target: &[(String, String)],
    limit: usize,
) -> Vec<String> {
    let at_target: std::collections::HashMap<&str, &str> = target
        .iter()
        .map(|(k, h)| (k.as_str(), h.as_str()))
        .collect();
    let mut out = Vec::new();
    let mut run: Option<(&str, &str, usize)> = None;
    let close = |run: &mut Option<(&str, &str, usize)>, out: &mut Vec<String>| {
        if let Some((from, to, n)) = run.take() {
            out.push(if n == 1 {
                format!("{from} (1 row)")
            } else {
                format!("{from} to {to} ({n} rows)")
            });
        }
    };
    for (key, hash) in source {
        if at_target.get(key.as_str()) == Some(&hash.as_str()) {
            close(&mut run, &mut out);
        } else {
            run = Some(match run {
                Some((from, _, n)) => (from, key.as_str(), n + 1),
                None => (key.as_str(), key.as_str(), 1),
            });
        }
    }
    close(&mut run, &mut out);
    let at_source: std::collections::HashSet<&str> =
        source.iter().map(|(k, _)| k.as_str()).collect();
    out.extend(
        target
            .iter()
            .filter(|(k, _)| !at_source.contains(k.as_str()))
            .map(|(k, _)| format!("{k} (only at the target)")),
    );
    if out.len() > limit {
        let more = out.len() - limit;
        out.truncate(limit);
        out.push(format!("and {more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::key_ranges;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, h)| (k.to_string(), h.to_string()))
            .collect()
    }

    #[test]
    fn differences_are_told_as_runs_of_keys_and_rows_only_the_target_has() {
        let source = rows(&[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d"), ("5", "e")]);
        let target = rows(&[("1", "a"), ("2", "x"), ("4", "d"), ("5", "e"), ("9", "z")]);
        assert_eq!(
            key_ranges(&source, &target, 10),
            ["2 to 3 (2 rows)", "9 (only at the target)"]
        );
        assert_eq!(key_ranges(&source, &source, 10), Vec::<String>::new());
        let all_changed = rows(&[("1", "q"), ("3", "q"), ("5", "q")]);
        assert_eq!(key_ranges(&source, &all_changed, 2), ["1 to 5 (5 rows)"]);
        assert_eq!(
            key_ranges(&rows(&[("1", "a")]), &rows(&[("7", "q"), ("8", "q")]), 1),
            ["1 (1 row)", "and 2 more"]
        );
    }
}
