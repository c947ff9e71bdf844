//! Rendering: human tables by default, JSON with `--output json`.

use crate::cli::Output;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// A table with the house style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Prints `value` as JSON, or calls `human` to print it for people.
pub fn emit<T: Serialize>(output: Output, value: &T, human: impl FnOnce(&T)) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).expect("output serialises")
        ),
        Output::Table => human(value),
    }
}

/// An optional value for a table cell.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
