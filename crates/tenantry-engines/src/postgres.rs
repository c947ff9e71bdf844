//! Tenant spaces on a PostgreSQL shard.
//!
//! - `shared`: the region's shared database. Every table with a `tenant_id` column gets row-level
//!   security, forced, with the policy `tenant_id = current_setting('tenantry.tenant_id', true)`,
//!   and the application connects as `tenantry_app` — not the tables' owner, without
//!   `BYPASSRLS` — so a session that has not set the tenant sees nothing.
//! - `schema`: a schema `t_<tenant id>` in the shared database, with its own migration ledger
//!   (`"t_<id>"._sqlx_migrations`), reachable by `tenantry_app` through schema privileges.
//! - `database`: a database `tenant_<tenant id>` with a role of the same name and a generated
//!   password; `CONNECT` is revoked from `PUBLIC`, so no other tenant's role can reach it.
//!
//! The control plane connects as the shard's admin (a superuser), one short-lived connection per
//! tenant database so that thousands of tenants do not hold thousands of connections.
//! Migrations of one space are serialised by an advisory lock on the space's name; sqlx's own
//! database-wide lock is off, so that the schemas of one database migrate in parallel.

use crate::application::Application;
use crate::driver::{Credentials, PooledDatabase, SpaceDriver, SpaceStatus};
use crate::error::{Result, SpaceError};
use async_trait::async_trait;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::SecretString;
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use tenantry_core::ident::quote;
use tenantry_core::space::Space;
use tenantry_core::{Engine, Isolation, Slug, TenantId};

/// The role applications use to reach shared and schema spaces.
pub const APP_ROLE: &str = "tenantry_app";

const SEED_LEDGER: &str = "CREATE TABLE IF NOT EXISTS tenantry_seeds (
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
)";

/// The PostgreSQL driver of one shard.
pub struct PgSpaces {
    shard: String,
    admin: PgConnectOptions,
    shared_database: String,
    app: Application,
}

fn password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// Runs one statement built from validated, quoted identifiers.
async fn exec(conn: &mut PgConnection, sql: String) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether a database error has one of these SQLSTATE codes.
fn is_code(e: &sqlx::Error, codes: &[&str]) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| codes.contains(&c.as_ref())))
}

/// `CREATE …` that may race with another creator: "already exists" counts as done.
async fn create_idempotently(conn: &mut PgConnection, sql: String) -> Result<()> {
    match exec(conn, sql).await {
        // duplicate_database, duplicate_object, unique_violation (concurrent catalog insert)
        Err(SpaceError::Database(e)) if is_code(&e, &["42P04", "42710", "23505", "42P06"]) => {
            Ok(())
        }
        other => other,
    }
}

impl PgSpaces {
    pub fn new(
        shard: &str,
        admin_url: &str,
        shared_database: &str,
        app: Application,
    ) -> Result<Self> {
        quote(shared_database)?;
        Ok(Self {
            shard: shard.to_owned(),
            admin: PgConnectOptions::from_str(admin_url)?,
            shared_database: shared_database.to_owned(),
            app,
        })
    }

    async fn connect_admin(&self) -> Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.admin).await?)
    }

    /// A connection to `database`, with `schema` as the search path when given.
    async fn connect(&self, database: &str, schema: Option<&str>) -> Result<PgConnection> {
        let mut options = self.admin.clone().database(database);
        if let Some(schema) = schema {
            options = options.options([("search_path", quote(schema)?)]);
        }
        Ok(PgConnection::connect_with(&options).await?)
    }

    fn database_of<'a>(&self, space: &'a Space) -> Result<&'a str> {
        space
            .database
            .as_deref()
            .ok_or_else(|| SpaceError::Missing(format!("{space:?} names no database")))
    }

    async fn database_exists(&self, conn: &mut PgConnection, name: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?,
        )
    }

    async fn ensure_database(&self, name: &str) -> Result<()> {
        let mut admin = self.connect_admin().await?;
        if !self.database_exists(&mut admin, name).await? {
            create_idempotently(&mut admin, format!("CREATE DATABASE {}", quote(name)?)).await?;
        }
        exec(
            &mut admin,
            format!(
                "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
                quote(name)?
            ),
        )
        .await?;
        admin.close().await?;
        Ok(())
    }

    /// Creates the application role (cluster-wide, once) and lets it into the shared database.
    async fn ensure_app_role(&self) -> Result<()> {
        let mut admin = self.connect_admin().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(APP_ROLE)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            create_idempotently(
                &mut admin,
                format!(
                    "CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
                ),
            )
            .await?;
        }
        exec(
            &mut admin,
            format!(
                "GRANT CONNECT ON DATABASE {} TO {APP_ROLE}",
                quote(&self.shared_database)?
            ),
        )
        .await?;
        admin.close().await?;
        Ok(())
    }

    /// Creates (or resets the password of) the role of a dedicated database, and lets only it in.
    async fn ensure_tenant_role(&self, database: &str) -> Result<Credentials> {
        let role = quote(database)?;
        let secret = password();
        let mut admin = self.connect_admin().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(database)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            create_idempotently(
                &mut admin,
                format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
            )
            .await?;
        }
        // The password is generated from [A-Za-z0-9]: safe inside a literal.
        exec(&mut admin, format!("ALTER ROLE {role} PASSWORD '{secret}'")).await?;
        exec(
            &mut admin,
            format!("GRANT CONNECT ON DATABASE {role} TO {role}"),
        )
        .await?;
        admin.close().await?;
        Ok(Credentials {
            role: database.to_owned(),
            password: SecretString::from(secret),
        })
    }

    /// The migration ledger of a space, as a (quoted, for schemas) table name.
    fn ledger(space: &Space) -> Result<String> {
        Ok(match &space.schema {
            Some(schema) => format!("{}._sqlx_migrations", quote(schema)?),
            None => "_sqlx_migrations".to_owned(),
        })
    }

    /// Tables of the connection's current schema that carry `tenant_id`, children first.
    async fn tenant_tables(conn: &mut PgConnection) -> Result<Vec<String>> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT c.table_name::text FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE c.column_name = 'tenant_id' AND c.table_schema = current_schema()
               AND t.table_type = 'BASE TABLE'
             ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await?;
        let edges: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
             JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE c.contype = 'f' AND n.nspname = current_schema()",
        )
        .fetch_all(&mut *conn)
        .await?;
        let unquote = |s: &str| {
            s.rsplit('.')
                .next()
                .unwrap_or(s)
                .trim_matches('"')
                .to_owned()
        };
        let mut parents: BTreeMap<String, BTreeSet<String>> = tables
            .iter()
            .map(|t| (t.clone(), BTreeSet::new()))
            .collect();
        for (child, parent) in edges {
            let (child, parent) = (unquote(&child), unquote(&parent));
            if child != parent
                && parents.contains_key(&parent)
                && let Some(p) = parents.get_mut(&child)
            {
                p.insert(parent);
            }
        }
        let mut order = Vec::new();
        let mut left: BTreeSet<String> = tables.into_iter().collect();
        while !left.is_empty() {
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
        Ok(order)
    }

    /// After migrating: row-level security on the shared database's tenant tables, and the
    /// privileges each kind of space gives its application role.
    async fn secure(&self, conn: &mut PgConnection, space: &Space) -> Result<()> {
        let tables = Self::tenant_tables(conn).await?;
        let app_tables: Vec<&String> = tables.iter().filter(|t| *t != "tenantry_seeds").collect();
        match space.kind {
            Isolation::Shared => {
                exec(conn, format!("GRANT USAGE ON SCHEMA public TO {APP_ROLE}")).await?;
                for t in &app_tables {
                    let q = quote(t)?;
                    exec(conn, format!("ALTER TABLE {q} ENABLE ROW LEVEL SECURITY")).await?;
                    exec(conn, format!("ALTER TABLE {q} FORCE ROW LEVEL SECURITY")).await?;
                    let has_policy: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                         AND tablename = $1 AND policyname = 'tenant_isolation')",
                    )
                    .bind(t.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                    if !has_policy {
                        create_idempotently(
                            conn,
                            format!(
                                "CREATE POLICY tenant_isolation ON {q}
                             USING (tenant_id = current_setting('tenantry.tenant_id', true))
                             WITH CHECK (tenant_id = current_setting('tenantry.tenant_id', true))"
                            ),
                        )
                        .await?;
                    }
                    exec(
                        conn,
                        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {q} TO {APP_ROLE}"),
                    )
                    .await?;
                }
            }
            Isolation::Schema => {
                let schema = quote(space.schema.as_deref().unwrap_or_default())?;
                exec(
                    conn,
                    format!("GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE}"),
                )
                .await?;
                for t in &app_tables {
                    exec(
                        conn,
                        format!(
                            "GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.{} TO {APP_ROLE}",
                            quote(t)?
                        ),
                    )
                    .await?;
                }
            }
            Isolation::Database => {
                let role = quote(self.database_of(space)?)?;
                exec(conn, format!("GRANT USAGE ON SCHEMA public TO {role}")).await?;
                for t in &app_tables {
                    exec(
                        conn,
                        format!(
                            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {role}",
                            quote(t)?
                        ),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn schema_version(conn: &mut PgConnection, ledger: &str) -> Result<Option<i64>> {
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(ledger)
            .fetch_one(&mut *conn)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT max(version) FROM {ledger} WHERE success"
        )))
        .fetch_one(&mut *conn)
        .await?)
    }

    /// Creates, migrates and secures a dedicated database; returns its role's credentials.
    async fn create_database_space(&self, space: &Space) -> Result<Credentials> {
        let db = self.database_of(space)?;
        self.ensure_database(db).await?;
        let credentials = self.ensure_tenant_role(db).await?;
        let mut conn = self.connect(db, None).await?;
        sqlx::query(SEED_LEDGER).execute(&mut conn).await?;
        conn.close().await?;
        Ok(credentials)
    }
}

#[async_trait]
impl SpaceDriver for PgSpaces {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn supports(&self, _isolation: Isolation) -> bool {
        true
    }

    fn locate(&self, tenant: TenantId, isolation: Isolation) -> Result<Space> {
        let (database, schema) = match isolation {
            Isolation::Shared => (self.shared_database.clone(), None),
            Isolation::Schema => (
                self.shared_database.clone(),
                Some(format!("t_{}", tenant.simple())),
            ),
            Isolation::Database => (format!("tenant_{}", tenant.simple()), None),
        };
        Ok(Space {
            kind: isolation,
            shard: self.shard.clone(),
            path: None,
            database: Some(database),
            schema,
        })
    }

    async fn create(&self, space: &Space) -> Result<Option<Credentials>> {
        match space.kind {
            Isolation::Shared => {
                self.ensure_database(&self.shared_database).await?;
                self.ensure_app_role().await?;
                let mut conn = self.connect(&self.shared_database, None).await?;
                sqlx::query(SEED_LEDGER).execute(&mut conn).await?;
                conn.close().await?;
                Ok(None)
            }
            Isolation::Schema => {
                self.ensure_database(&self.shared_database).await?;
                self.ensure_app_role().await?;
                let schema = space.schema.as_deref().unwrap_or_default();
                let mut conn = self.connect(&self.shared_database, None).await?;
                create_idempotently(
                    &mut conn,
                    format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)?),
                )
                .await?;
                conn.close().await?;
                let mut conn = self.connect(&self.shared_database, Some(schema)).await?;
                sqlx::query(SEED_LEDGER).execute(&mut conn).await?;
                conn.close().await?;
                Ok(None)
            }
            Isolation::Database => self.create_database_space(space).await.map(Some),
        }
    }

    async fn migrate(&self, space: &Space) -> Result<Option<i64>> {
        let db = self.database_of(space)?;
        let mut migrator = self.app.migrator(Engine::Postgres).await?;
        let ledger = Self::ledger(space)?;
        if space.schema.is_some() {
            migrator.dangerous_set_table_name(ledger.clone());
        }
        let mut conn = self.connect(db, space.schema.as_deref()).await?;
        let lock_key = format!(
            "tenantry-migrate:{db}:{}",
            space.schema.as_deref().unwrap_or("")
        );
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(&lock_key)
            .execute(&mut conn)
            .await?;
        let label = format!(
            "{}/{db}{}",
            self.shard,
            space
                .schema
                .as_deref()
                .map(|s| format!(".{s}"))
                .unwrap_or_default()
        );
        let ran = migrator
            .run_direct(None, &mut conn, false)
            .await
            .map_err(|e| match e {
                MigrateError::VersionMismatch(version) => SpaceError::MigrationChanged {
                    version,
                    space: label.clone(),
                },
                source => SpaceError::Migrate {
                    space: label.clone(),
                    source,
                },
            });
        let secured = match ran {
            Ok(()) => self.secure(&mut conn, space).await,
            Err(e) => Err(e),
        };
        let version = Self::schema_version(&mut conn, &ledger).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(&lock_key)
            .execute(&mut conn)
            .await;
        conn.close().await?;
        secured?;
        version
    }

    async fn pending_migrations(&self, space: &Space) -> Result<Vec<(i64, String)>> {
        let db = self.database_of(space)?;
        let migrator = self.app.migrator(Engine::Postgres).await?;
        let ledger = Self::ledger(space)?;
        let mut conn = self.connect(db, space.schema.as_deref()).await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&ledger)
            .fetch_one(&mut conn)
            .await?;
        let applied: Vec<i64> = if exists.is_some() {
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT version FROM {ledger} WHERE success"
            )))
            .fetch_all(&mut conn)
            .await?
        } else {
            Vec::new()
        };
        conn.close().await?;
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    async fn seed(&self, space: &Space, tenant: TenantId, slug: &Slug) -> Result<usize> {
        let seeds = self.app.seeds()?;
        let mut conn = self
            .connect(self.database_of(space)?, space.schema.as_deref())
            .await?;
        sqlx::query(SEED_LEDGER).execute(&mut conn).await?;
        let mut applied = 0;
        for seed in seeds {
            let mut tx = conn.begin().await?;
            let recorded: Option<String> = sqlx::query_scalar(
                "SELECT checksum FROM tenantry_seeds WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant.to_string())
            .bind(&seed.name)
            .fetch_optional(&mut *tx)
            .await?;
            match recorded {
                Some(sum) if sum == seed.checksum => continue,
                Some(_) => {
                    return Err(SpaceError::SeedChanged {
                        name: seed.name,
                        tenant: slug.to_string(),
                    });
                }
                None => {}
            }
            sqlx::raw_sql(AssertSqlSafe(seed.render(tenant, slug)))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO tenantry_seeds (tenant_id, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(tenant.to_string())
            .bind(&seed.name)
            .bind(&seed.checksum)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            applied += 1;
        }
        conn.close().await?;
        Ok(applied)
    }

    async fn bootstrap_admin(&self, space: &Space, tenant: TenantId, email: &str) -> Result<()> {
        let mut conn = self
            .connect(self.database_of(space)?, space.schema.as_deref())
            .await?;
        sqlx::query(
            "INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'admin')
             ON CONFLICT (tenant_id, email) DO NOTHING",
        )
        .bind(tenant.to_string())
        .bind(email)
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }

    async fn status(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatus> {
        let db = self.database_of(space)?;
        let mut admin = self.connect_admin().await?;
        let exists = self.database_exists(&mut admin, db).await?;
        admin.close().await?;
        if !exists {
            return Ok(SpaceStatus::default());
        }
        let mut conn = self.connect(db, None).await?;
        if let Some(schema) = &space.schema {
            let found: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(schema)
                    .fetch_one(&mut conn)
                    .await?;
            conn.close().await?;
            if !found {
                return Ok(SpaceStatus::default());
            }
            conn = self.connect(db, Some(schema)).await?;
        }
        let mut status = SpaceStatus {
            exists: true,
            schema_version: Self::schema_version(&mut conn, &Self::ledger(space)?).await?,
            ..SpaceStatus::default()
        };
        for table in Self::tenant_tables(&mut conn).await? {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {} WHERE tenant_id = $1",
                quote(&table)?
            )))
            .bind(tenant.to_string())
            .fetch_one(&mut conn)
            .await?;
            status.tenant_rows += n;
            if table == "users" {
                status.admins = sqlx::query_scalar(
                    "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'admin'",
                )
                .bind(tenant.to_string())
                .fetch_one(&mut conn)
                .await?;
            }
            if table == "tenantry_seeds" {
                status.seeds_applied = n;
            }
        }
        conn.close().await?;
        Ok(status)
    }

    async fn remove(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let db = self.database_of(space)?;
        let mut admin = self.connect_admin().await?;
        let exists = self.database_exists(&mut admin, db).await?;
        match space.kind {
            Isolation::Database => {
                exec(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(db)?),
                )
                .await?;
                exec(&mut admin, format!("DROP ROLE IF EXISTS {}", quote(db)?)).await?;
                admin.close().await?;
            }
            Isolation::Schema => {
                admin.close().await?;
                if exists {
                    let mut conn = self.connect(db, None).await?;
                    let schema = quote(space.schema.as_deref().unwrap_or_default())?;
                    exec(&mut conn, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
                    conn.close().await?;
                }
            }
            Isolation::Shared => {
                admin.close().await?;
                if exists {
                    let mut conn = self.connect(db, None).await?;
                    let mut tx = conn.begin().await?;
                    for table in Self::tenant_tables(&mut tx).await? {
                        sqlx::query(AssertSqlSafe(format!(
                            "DELETE FROM {} WHERE tenant_id = $1",
                            quote(&table)?
                        )))
                        .bind(tenant.to_string())
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    conn.close().await?;
                }
            }
        }
        Ok(())
    }

    async fn create_pooled(&self) -> Result<PooledDatabase> {
        let name = format!(
            "tenant_pool_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..20]
        );
        let space = Space {
            kind: Isolation::Database,
            shard: self.shard.clone(),
            path: None,
            database: Some(name.clone()),
            schema: None,
        };
        let credentials = self.create_database_space(&space).await?;
        let schema_version = self.migrate(&space).await?;
        Ok(PooledDatabase {
            database: name,
            credentials,
            schema_version,
        })
    }

    async fn adopt(&self, pooled: &str, tenant: TenantId) -> Result<(Space, Credentials)> {
        let space = self.locate(tenant, Isolation::Database)?;
        let target = self.database_of(&space)?.to_owned();
        let mut admin = self.connect_admin().await?;
        if !self.database_exists(&mut admin, &target).await? {
            exec(
                &mut admin,
                format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote(pooled)?,
                    quote(&target)?
                ),
            )
            .await?;
            exec(
                &mut admin,
                format!(
                    "ALTER ROLE {} RENAME TO {}",
                    quote(pooled)?,
                    quote(&target)?
                ),
            )
            .await?;
        }
        admin.close().await?;
        // Renaming a role clears its password: set a fresh one (idempotent on a retry).
        let credentials = self.ensure_tenant_role(&target).await?;
        Ok((space, credentials))
    }
}
