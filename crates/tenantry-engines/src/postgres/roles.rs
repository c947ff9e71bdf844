//! Roles on a PostgreSQL shard: the application role `tenantry_app` shared by shared and schema
//! tenants, and a login role of its own per dedicated (or pooled) database.
//!
//! ## Passwords never travel in plain text
//!
//! `CREATE ROLE … PASSWORD` takes no bound parameter, so the password is part of the
//! statement's text, and statement text ends up in logs: the server's (`log_statement = 'ddl'`,
//! or the statement quoted in an error report) and sqlx's own. Like psql's `\password`, we send
//! a SCRAM-SHA-256 verifier computed here (RFC 5802/7677, 4096 iterations, random 16-byte salt),
//! which the server stores as it is: the plain password never leaves this process, and what a
//! log may show is a salted hash of a 40-character random password. The verifier contains only
//! base64 and `$:` characters, and is still escaped as a string literal.
//!
//! Renaming a role clears an MD5 password but keeps a SCRAM verifier; `PgSpaces::adopt`
//! sets a fresh password either way.

use super::sql::{exec, serialised};
use crate::driver::Credentials;
use crate::error::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::{Executor, PgPool, Postgres, Transaction};
use tenantry_core::ident::quote;

/// The role applications use to reach shared and schema spaces: it logs in, is not a superuser,
/// does not bypass row-level security and owns no table. Its password (or other authentication)
/// is the operator's to set.
pub const APP_ROLE: &str = "tenantry_app";

/// Length of generated passwords, from `[A-Za-z0-9]` (about 238 bits).
const PASSWORD_LEN: usize = 40;

/// PostgreSQL's default SCRAM iteration count (`scram_iterations`).
const SCRAM_ITERATIONS: u32 = 4096;

/// A fresh random password.
fn generate_password() -> SecretString {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect::<String>()
        .into()
}

/// A SQL string literal: single quotes doubled. (`standard_conforming_strings` is on, the
/// default since PostgreSQL 9.1, so backslashes are not special.)
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The verifier PostgreSQL stores for `password` (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>
/// :<ServerKey>`). PostgreSQL SASLprep-normalises passwords first; ours are ASCII letters and
/// digits, which SASLprep leaves as they are.
fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations);
    let client_key = hmac_sha256(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
}

/// `PASSWORD '<verifier>'` for `password`, with a fresh salt.
fn password_clause(password: &SecretString) -> String {
    let salt: [u8; 16] = rand::random();
    let verifier = scram_verifier(password.expose_secret(), &salt, SCRAM_ITERATIONS);
    format!("PASSWORD {}", literal(&verifier))
}

pub(super) async fn role_exists<'c, E>(executor: E, role: &str) -> Result<bool>
where
    E: Executor<'c, Database = Postgres>,
{
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(executor)
            .await?,
    )
}

/// Creates the login role `role` if missing and gives it a fresh password either way; lets it
/// connect to `database` (its own). Returns its credentials.
pub(super) async fn ensure_login_role(
    admin: &PgPool,
    role: &str,
    database: &str,
) -> Result<Credentials> {
    let mut tx = serialised(admin).await?;
    let credentials = ensure_login_role_in(&mut tx, role, database).await?;
    tx.commit().await?;
    Ok(credentials)
}

/// [`ensure_login_role`] with the password given rather than a fresh one: the same credentials
/// then reach a tenant's database on two servers (a move from one to the other).
pub(super) async fn ensure_login_role_with(
    admin: &PgPool,
    credentials: &Credentials,
    database: &str,
) -> Result<()> {
    let mut tx = serialised(admin).await?;
    login_role_in(&mut tx, &credentials.role, database, &credentials.password).await?;
    tx.commit().await?;
    Ok(())
}

/// [`ensure_login_role`] inside the caller's [`serialised`] transaction (effective when it
/// commits).
pub(super) async fn ensure_login_role_in(
    tx: &mut Transaction<'static, Postgres>,
    role: &str,
    database: &str,
) -> Result<Credentials> {
    let password = generate_password();
    login_role_in(tx, role, database, &password).await?;
    Ok(Credentials {
        role: role.to_owned(),
        password,
    })
}

/// Creates or alters the login role `role` with `password` and lets it connect to `database`.
async fn login_role_in(
    tx: &mut Transaction<'static, Postgres>,
    role: &str,
    database: &str,
    password: &SecretString,
) -> Result<()> {
    let (quoted, db) = (quote(role)?, quote(database)?);
    let password_clause = password_clause(password);
    let attributes =
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT";
    let exists = role_exists(&mut **tx, role).await?;
    let statement = if exists {
        format!("ALTER ROLE {quoted} WITH {attributes} {password_clause}")
    } else {
        format!("CREATE ROLE {quoted} {attributes} {password_clause}")
    };
    exec(&mut **tx, statement).await?;
    exec(
        &mut **tx,
        format!("GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {quoted}"),
    )
    .await?;
    if exists {
        tracing::info!(role, "reset the password of database role");
    } else {
        tracing::info!(role, "created database role");
    }
    Ok(())
}

pub(super) async fn ensure_app_role(admin: &PgPool, database: &str) -> Result<()> {
    let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
    let mut tx = serialised(admin).await?;
    let privileged: Option<bool> =
        sqlx::query_scalar("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(APP_ROLE)
            .fetch_optional(&mut *tx)
            .await?;
    match privileged {
        None => {
            exec(&mut *tx, format!("CREATE ROLE {APP_ROLE} {attributes}")).await?;
            tracing::info!(role = APP_ROLE, "created the application role");
        }
        Some(true) => {
            exec(&mut *tx, format!("ALTER ROLE {APP_ROLE} WITH {attributes}")).await?;
            tracing::warn!(
                role = APP_ROLE,
                "the application role was superuser or BYPASSRLS; both are now revoked"
            );
        }
        Some(false) => {}
    }
    exec(
        &mut *tx,
        format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE {} TO {APP_ROLE}",
            quote(database)?
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_different() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.expose_secret().len(), PASSWORD_LEN);
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("abc"), "'abc'");
    }

    #[test]
    fn the_scram_verifier_matches_postgresql() {
        // Made by PostgreSQL 15: `SET password_encryption = 'scram-sha-256';
        // CREATE ROLE r PASSWORD 'pencil';` with its salt read back from pg_authid.
        let salt = BASE64.decode("Bb1H8JI+ZFCzrcz/PMEv9g==").unwrap();
        assert_eq!(
            scram_verifier("pencil", &salt, 4096),
            "SCRAM-SHA-256$4096:Bb1H8JI+ZFCzrcz/PMEv9g==$\
             IvhoImLiMxsPqhPlHBa6rSStA8tXCwgeW7BzAn+qt7Y=:\
             0kqTkzSilvqo/KSmphVi+ECZxKEAg8VPxOEhlNAfT5M="
        );
    }
}
