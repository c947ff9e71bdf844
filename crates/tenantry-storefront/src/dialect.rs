//! One text per query for both engines.
//!
//! Queries are written in PostgreSQL's dialect, with casts where PostgreSQL needs them (`$1::uuid`
//! to compare with a `uuid` column, `id::text` to read one as a string) and `{now}` for the
//! current time. For SQLite, whose ids are already text, the casts are dropped and `{now}`
//! becomes the RFC 3339 text the SQLite migrations store. [`on`] then runs the same code on
//! whichever connection the router gave.

use regex::Regex;
use sqlx::AssertSqlSafe;
use std::sync::LazyLock;
use tenantry_core::Engine;

static CAST: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"::[a-z]+").expect("a valid regex"));

/// `text` for `engine`.
pub(crate) fn sql(engine: Engine, text: &'static str) -> AssertSqlSafe<String> {
    AssertSqlSafe(match engine {
        Engine::Postgres => text.replace("{now}", "now()"),
        Engine::Sqlite => CAST
            .replace_all(text, "")
            .replace("{now}", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
    })
}

/// Runs `$body` with `$conn` bound to the transaction's connection, whatever its engine.
macro_rules! on {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx.scoped() {
            tenantry_router::Scoped::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
            tenantry_router::Scoped::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(crate) use on;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_and_now_are_translated_for_sqlite_only() {
        let text = "UPDATE t SET at = {now} WHERE id = $1::uuid RETURNING id::text";
        assert_eq!(
            sql(Engine::Sqlite, text).0,
            "UPDATE t SET at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = $1 RETURNING id"
        );
        assert_eq!(
            sql(Engine::Postgres, text).0,
            "UPDATE t SET at = now() WHERE id = $1::uuid RETURNING id::text"
        );
    }
}
