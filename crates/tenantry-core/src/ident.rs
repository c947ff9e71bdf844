//! Identifiers that reach SQL (database, schema, role and table names) are validated against a
//! strict pattern and then quoted: validation keeps names predictable, quoting keeps a mistake in
//! validation from becoming an injection.

/// An identifier that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a safe SQL identifier: use 1 to 63 characters of a-z, 0-9 and '_', starting with a letter or '_'"
)]
pub struct UnsafeIdentifier {
    pub value: String,
}

/// Checks `name` against `^[a-z_][a-z0-9_]{0,62}$`.
pub fn validate(name: &str) -> Result<&str, UnsafeIdentifier> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(UnsafeIdentifier {
            value: name.to_owned(),
        })
    }
}

/// Validates and double-quotes an identifier for SQL.
pub fn quote(name: &str) -> Result<String, UnsafeIdentifier> {
    validate(name).map(|n| format!("\"{n}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_safe_names_and_refuses_the_rest() {
        assert_eq!(quote("tenant_0190abcd").unwrap(), "\"tenant_0190abcd\"");
        for bad in [
            "",
            "Robert",
            "a\"b",
            "x; drop table t",
            "1abc",
            &"a".repeat(64),
        ] {
            assert!(quote(bad).is_err(), "{bad}");
        }
    }
}
