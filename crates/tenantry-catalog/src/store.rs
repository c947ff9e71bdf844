//! The catalog store trait. Both backends (SQLite, PostgreSQL) implement it and run the same
//! test suite (`tests/store_suite.rs`), so that a behaviour is the same whichever one a
//! deployment uses.

use crate::Result;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantry_core::config::ShardConfig;
use tenantry_core::domain::{Domain, TenantDomains};
use tenantry_core::shard::{ShardState, ShardUsage};
use tenantry_core::{TenantId, TenantState};
use uuid::Uuid;

#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    // --- shards ---

    /// Makes the catalog's shards match the configuration's declared ones: a declared shard is
    /// inserted if missing and its region, engine, URL, directory and capacity are updated; its
    /// state changes only when the configuration says `draining`, so a shard drained at run
    /// time stays draining across restarts. Shards added at run time are kept.
    async fn sync_shards(&self, declared: &[ShardConfig]) -> Result<()>;
    /// Every shard with the number of tenant databases it holds.
    async fn shards(&self) -> Result<Vec<Shard>>;

    /// The shards in the form the resolver takes.
    async fn shard_usage(&self) -> Result<Vec<ShardUsage>> {
        Ok(self
            .shards()
            .await?
            .into_iter()
            .map(|s| ShardUsage {
                name: s.name,
                region: s.region,
                engine: s.engine,
                state: s.state,
                capacity: s.capacity,
                used: s.used,
            })
            .collect())
    }

    /// Registers a shard at run time (source `runtime`); a name in use is
    /// [`DuplicateShard`](crate::CatalogError::DuplicateShard).
    async fn add_shard(&self, shard: &ShardConfig) -> Result<Shard>;
    /// Drains or activates a shard; an unknown name is
    /// [`ShardNotFound`](crate::CatalogError::ShardNotFound).
    async fn set_shard_state(&self, name: &str, state: ShardState) -> Result<Shard>;

    // --- tenants ---

    /// Records a requested tenant with its `TenantCreated` event, its first transition and its
    /// provisioning operation, in one transaction.
    async fn create_tenant(
        &self,
        tenant: NewTenant,
        cause: Cause,
        operation: NewOperation,
    ) -> Result<(Tenant, Operation)>;
    /// The live tenant with this slug, else the most recently deleted one.
    async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant>;
    /// The live tenant a host name belongs to ([`DomainNotFound`](crate::CatalogError::DomainNotFound)
    /// if none).
    async fn tenant_by_domain(&self, domain: &Domain) -> Result<Tenant>;
    /// A tenant's host names.
    async fn domains(&self, tenant: TenantId) -> Result<TenantDomains>;
    /// Records a milestone of a live move in one transaction: the tenant's new place (with its
    /// epoch bumped, so that stale routers can tell, and its region the new shard's) when given, an audit row, `events`, and
    /// the step's checkpoint when given — then exactly once per checkpoint.
    async fn relocate(
        &self,
        id: TenantId,
        relocation: Option<Relocation>,
        cause: Cause,
        events: Vec<NewEvent>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Tenant>;
    /// Sets the top-level keys of `patch` in an operation's parameters, atomically, keeping
    /// the others (a step's progress, such as a copy's last keys; a request to cancel).
    async fn merge_operation_params(&self, id: Uuid, patch: &serde_json::Value) -> Result<()>;
    /// A tenant's statistics (all zero, never collected, when there are none).
    async fn tenant_stats(&self, tenant: TenantId) -> Result<TenantStats>;
    /// Records rows per table and size, collected from the tenant's space (query figures stay).
    async fn save_space_stats(
        &self,
        tenant: TenantId,
        rows: &std::collections::BTreeMap<String, i64>,
        size_bytes: i64,
        size_estimated: bool,
    ) -> Result<()>;
    /// Adds `queries` taking `ms` in all to the tenant's query figures (the router's report).
    async fn record_queries(&self, tenant: TenantId, queries: i64, ms: f64) -> Result<()>;
    /// Replaces a tenant's host names at once; a name another tenant has is
    /// [`DomainTaken`](crate::CatalogError::DomainTaken) and changes nothing.
    async fn set_domains(&self, tenant: TenantId, domains: &TenantDomains) -> Result<()>;
    async fn tenant(&self, id: TenantId) -> Result<Tenant>;
    async fn tenants(&self, filter: &TenantFilter) -> Result<Vec<Tenant>>;
    /// Updates recorded fields without a state change.
    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant>;
    /// Appends events about a tenant to the outbox (what the reconciler found and did).
    async fn append_events(&self, tenant: TenantId, events: Vec<NewEvent>) -> Result<()>;
    /// Moves a tenant to `to` (checked against the lifecycle), writes the audit row, the events
    /// and `update`, and checkpoints `checkpoint` as done — all in one transaction. If the
    /// tenant is already in `to` and the checkpoint is already done, nothing is written.
    async fn transition(
        &self,
        id: TenantId,
        to: TenantState,
        cause: Cause,
        events: Vec<NewEvent>,
        update: TenantUpdate,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Tenant>;
    /// Every transition of a tenant, oldest first.
    async fn history(&self, id: TenantId) -> Result<Vec<Transition>>;

    // --- events ---

    /// Events after `after_seq`, oldest first, of one tenant or all.
    async fn events(
        &self,
        tenant: Option<TenantId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Event>>;

    // --- secrets (sealed before they get here) ---

    /// Stores (or replaces) a tenant's sealed secret; the catalog never sees the plaintext.
    async fn put_secret(&self, tenant: TenantId, name: &str, ciphertext: &[u8]) -> Result<()>;
    async fn secret(&self, tenant: TenantId, name: &str) -> Result<Option<Vec<u8>>>;
    /// Forgets every secret of a tenant; returns how many there were.
    async fn delete_secrets(&self, tenant: TenantId) -> Result<u64>;
    /// Forgets one secret of a tenant; returns whether it was there.
    async fn delete_secret(&self, tenant: TenantId, name: &str) -> Result<bool>;

    // --- the warm pool ---

    /// Records a pre-created database; an unknown shard is
    /// [`ShardNotFound`](crate::CatalogError::ShardNotFound).
    async fn pool_add(&self, entry: NewPoolEntry) -> Result<PoolEntry>;
    /// Claims a free pooled database of `shard` for `tenant`, atomically: two claims never get
    /// the same entry. Idempotent: the tenant's existing claim on the shard is returned again.
    async fn pool_claim(&self, shard: &str, tenant: TenantId) -> Result<Option<PoolEntry>>;
    /// Forgets an entry (to discard it).
    async fn pool_remove(&self, id: Uuid) -> Result<()>;
    /// Records, in one transaction, that a claimed entry became its tenant's database: the
    /// tenant's space, schema version and sealed credentials, and the entry gone.
    async fn pool_adopted(&self, adoption: PoolAdoption) -> Result<()>;
    /// The pooled databases of one shard or all, oldest first.
    async fn pool_entries(&self, shard: Option<&str>) -> Result<Vec<PoolEntry>>;
    /// Free and claimed entries per shard, one row per shard that has entries.
    async fn pool_status(&self) -> Result<Vec<PoolCount>>;

    // --- API tokens and idempotency ---

    /// Stores a token by its hash; a name in use is refused.
    async fn create_token(&self, name: &str, scope: &str, hash: &str) -> Result<Token>;
    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>>;
    async fn revoke_token(&self, name: &str) -> Result<Token>;
    async fn tokens(&self) -> Result<Vec<Token>>;
    async fn idempotent_response(&self, key: &str) -> Result<Option<IdempotentResponse>>;
    /// Records the first answer under `key`; if another request recorded one first, that one
    /// is returned instead.
    async fn save_idempotent_response(
        &self,
        response: IdempotentResponse,
    ) -> Result<IdempotentResponse>;

    // --- event delivery ---

    /// The last outbox `seq` the sink delivered (0 when it never did).
    async fn sink_cursor(&self, sink: &str) -> Result<i64>;
    async fn set_sink_cursor(&self, sink: &str, seq: i64) -> Result<()>;
    async fn add_dead_letter(&self, letter: DeadLetter) -> Result<()>;
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>>;

    // --- infrastructure ---

    /// The tenant's infrastructure record, if it ever had one.
    async fn infrastructure(&self, tenant: TenantId) -> Result<Option<Infrastructure>>;
    /// Writes the tenant's infrastructure record (inserted, or replacing the tenant's one but
    /// for its id and creation time) and, in the same transaction, `transition` and `events`.
    async fn save_infrastructure(
        &self,
        infra: &Infrastructure,
        transition: Option<NewInfraTransition>,
        events: Vec<NewEvent>,
    ) -> Result<()>;
    /// Every status change of the tenant's infrastructure, oldest first.
    async fn infrastructure_transitions(&self, tenant: TenantId) -> Result<Vec<InfraTransition>>;

    // --- metrics ---

    /// Tenants by state, isolation and region, operations by kind and state, and the newest
    /// outbox sequence, each counted by the database.
    async fn counts(&self) -> Result<CatalogCounts>;

    // --- operations ---

    /// Queues an operation on an existing tenant; refused while another is under way.
    async fn create_operation(
        &self,
        tenant: TenantId,
        operation: NewOperation,
    ) -> Result<Operation>;
    async fn operation(&self, id: Uuid) -> Result<Operation>;
    /// Most recent first.
    async fn operations(&self, tenant: Option<TenantId>, limit: i64) -> Result<Vec<Operation>>;
    /// Takes (or renews) the lease on an open operation for `owner` until `until`. Returns
    /// `None` when another owner holds an unexpired lease or the operation is not open.
    async fn claim_operation(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Operation>>;
    /// Takes the oldest open operation whose lease is free or expired, atomically (several
    /// workers never take the same one): the lease is set to `owner` until `until` and a
    /// `pending` operation becomes `running`.
    async fn claim_next_operation(
        &self,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Operation>>;
    /// Open operations whose lease is free or expired, oldest first.
    async fn claimable_operations(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>>;
    async fn set_operation_state(
        &self,
        id: Uuid,
        state: OperationState,
        error: Option<String>,
    ) -> Result<()>;
    async fn set_step_state(
        &self,
        id: Uuid,
        idx: i64,
        state: StepState,
        error: Option<String>,
    ) -> Result<()>;
    /// Marks step `idx` of operation `id` running and, when given, step `done` done, in one
    /// write, and reads the operation's tenant as the step starts: a runner writes a finished
    /// step's mark with the next step's start, and every step works from a fresh read of its
    /// tenant. One round trip on PostgreSQL.
    async fn start_step(
        &self,
        id: Uuid,
        idx: i64,
        done: Option<i64>,
        tenant: TenantId,
    ) -> Result<Tenant>;
}
