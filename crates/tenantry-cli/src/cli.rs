//! The command line, as clap types.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tenantry_core::{Isolation, TenantState};

/// Tenantry: a control plane for multi-tenant SaaS.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: $TENANTRY_CONFIG, then ./tenantry.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table, env = "TENANTRY_OUTPUT")]
    pub output: Output,
    /// Log format (logs go to standard error)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Run the command against a `tenantry serve` at this URL (e.g. http://127.0.0.1:8080)
    /// instead of directly on the catalog
    #[arg(long, global = true, value_name = "URL", env = "TENANTRY_SERVER")]
    pub server: Option<String>,
    /// The API token for --server (`tenantry token create`)
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "TENANTRY_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// More logging (-v: info, -vv: debug); RUST_LOG overrides
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables
    Table,
    /// JSON, for scripts
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a working default configuration and the storefront sample application into DIR
    Init(InitArgs),
    /// Create, inspect and change tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Lifecycle events from the outbox
    #[command(subcommand)]
    Events(EventsCommand),
    /// Durable operations and their steps
    #[command(subcommand)]
    Ops(OpsCommand),
    /// Plans and their defaults
    #[command(subcommand)]
    Plan(ListOnly),
    /// Regions and their shards
    #[command(subcommand)]
    Region(ListOnly),
    /// Shards: list, add at run time, drain, activate
    #[command(subcommand)]
    Shard(ShardCommand),
    /// The warm pool of pre-created, migrated databases (PostgreSQL shards)
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Bring tenant spaces to the application's latest migration
    Migrate(MigrateArgs),
    /// Compare every tenant's declared state (space, storage, licence, compute, infrastructure)
    /// with what is observed once, and repair what drifted (`tenantry serve` does this on its
    /// interval)
    Reconcile(ReconcileArgs),
    /// Placement advice from the tenants' statistics and the growth thresholds
    #[command(subcommand)]
    Placement(PlacementCommand),
    /// Serve the REST API, run the worker and the event relay until stopped
    Serve(ServeArgs),
    /// API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the REST API's OpenAPI document (as committed in docs/openapi.json)
    Openapi,
    /// Serve as a region's data plane: create and migrate new tenants' spaces when the control
    /// plane asks (regions.<name>.data_plane), signed with TENANTRY_DATA_PLANE_SECRET
    DataPlane(DataPlaneArgs),
    /// Serve the storefront sample application for the fleet's tenants through the tenant
    /// router (tenant by Host or X-Tenant), optionally as its region's data plane too
    Storefront(StorefrontArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write into (created if missing)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite an existing tenantry.toml
    #[arg(long)]
    pub force: bool,
    /// Put the catalog (database tenantry_catalog) and one shard per region on this PostgreSQL
    /// server, given as a superuser URL such as postgres://postgres@127.0.0.1:5432/postgres
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Provision a tenant
    Create(CreateArgs),
    /// List tenants
    List(ListArgs),
    /// Show one tenant: placement, space, storage, compute, licence, schema version
    Show(SlugArg),
    /// The tenant's state transitions, oldest first
    History(SlugArg),
    /// Stop serving a tenant; its data and storage are kept
    Suspend(SlugArg),
    /// Serve a suspended tenant again
    Resume(SlugArg),
    /// Remove a tenant's space and storage; its catalog record stays, state deleted
    Delete(SlugArg),
    /// Show a tenant's host names, or replace them (--primary, --alias, --clear)
    Domains(DomainsArgs),
    /// What a tenant holds (rows per table, size) and how its queries go
    Stats(StatsArgs),
    /// Move a tenant's data live to another isolation or shard of its region (PostgreSQL)
    Move(MoveArgs),
    /// Change a tenant's plan: placement runs again; a new isolation is a live move, new
    /// compute or quota an update (licence reissued, dedicated compute started or removed)
    Update(UpdateArgs),
    /// Verify a tenant's licence with the installation's public key and show what it grants
    Licence(SlugArg),
    /// Print the Kubernetes objects of a tenant's own compute (secret values redacted)
    Manifests(SlugArg),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The tenant's slug
    pub slug: String,
    /// The new plan (see `tenantry plan list`)
    #[arg(long)]
    pub plan: String,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The tenant's slug
    pub slug: String,
    /// The isolation to move to: shared, schema or database
    #[arg(long, value_parser = parse_isolation, required_unless_present_any = ["complete", "rollback", "cancel"])]
    pub to: Option<Isolation>,
    /// The shard to move to [default: as for a new tenant of that isolation]
    #[arg(long, conflicts_with_all = ["complete", "rollback", "cancel"])]
    pub shard: Option<String>,
    /// Move to this region instead: a residency change, recorded as such (its storage follows)
    #[arg(long, requires = "to")]
    pub region: Option<String>,
    /// End the tenant's last move: remove its data from the old place
    #[arg(long, conflicts_with_all = ["to", "rollback", "cancel"])]
    pub complete: bool,
    /// Undo the tenant's last move: back to the old place, with the changes made since
    #[arg(long, conflicts_with_all = ["to", "cancel"])]
    pub rollback: bool,
    /// Stop the tenant's move under way, before its switch: the target is removed and the
    /// tenant stays where it is
    #[arg(long, conflicts_with = "to")]
    pub cancel: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The tenant's slug
    pub slug: String,
    /// Count the tenant's rows and measure its size now (otherwise the last figures)
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Args)]
pub struct DomainsArgs {
    /// The tenant's slug
    pub slug: String,
    /// The new primary host name (replaces the tenant's domains with this and the --alias names)
    #[arg(long, conflicts_with = "clear")]
    pub primary: Option<String>,
    /// A further host name; repeatable; needs --primary
    #[arg(long = "alias", value_name = "DOMAIN", requires = "primary")]
    pub aliases: Vec<String>,
    /// Remove every domain of the tenant
    #[arg(long)]
    pub clear: bool,
}

#[derive(Debug, Args)]
pub struct SlugArg {
    /// The tenant's slug
    pub slug: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The tenant's slug: 2-63 characters of a-z, 0-9 and '-', starting with a letter
    pub slug: String,
    /// Plan (see `tenantry plan list`)
    #[arg(long)]
    pub plan: String,
    /// Region (see `tenantry region list`)
    #[arg(long)]
    pub region: String,
    /// Compliance tag (hipaa, gdpr, pci, sox, …); repeatable
    #[arg(long = "compliance", value_name = "TAG")]
    pub compliance: Vec<String>,
    /// Number of members (users) the tenant has
    #[arg(long, default_value_t = 0)]
    pub members: u64,
    /// API calls the tenant makes a month
    #[arg(long, default_value_t = 0)]
    pub monthly_api_calls: u64,
    /// Operator's override of the isolation, recorded as such
    #[arg(long, value_parser = parse_isolation)]
    pub isolation: Option<Isolation>,
    /// The bootstrap admin's email [default: admin@<slug>.example]
    #[arg(long)]
    pub admin_email: Option<String>,
    /// The tenant's primary host name (requests with this Host reach the tenant)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// A further host name of the tenant; repeatable; needs --domain
    #[arg(long = "alias", value_name = "DOMAIN", requires = "domain")]
    pub aliases: Vec<String>,
    /// Print the placement decision and the steps that would run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Record the request and queue its operation for a worker (`tenantry serve`) instead of
    /// running it here
    #[arg(long, conflicts_with = "dry_run")]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_state)]
    pub state: Option<TenantState>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long, value_parser = parse_isolation)]
    pub isolation: Option<Isolation>,
    #[arg(long)]
    pub plan: Option<String>,
    /// Include deleted tenants
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events in outbox order
    /// Follow events as they are written (Ctrl-C to stop)
    Tail {
        /// Only this tenant's events
        #[arg(long)]
        tenant: Option<String>,
        /// Start after this sequence number [default: the newest event]
        #[arg(long)]
        after: Option<i64>,
    },
    /// Events a sink refused for good
    DeadLetters,
    List {
        /// Only this tenant's events
        #[arg(long)]
        tenant: Option<String>,
        /// Only events after this sequence number
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Recent operations
    List {
        /// Only this tenant's operations
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One operation with its steps, durations and errors
    Show { id: String },
    /// The step names of an operation kind, in order
    Steps {
        /// provision, suspend, resume or delete
        kind: String,
    },
    /// Finish interrupted operations (one, or all whose worker is gone)
    Resume { id: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum ListOnly {
    /// List them
    List,
}

#[derive(Debug, Subcommand)]
pub enum ShardCommand {
    /// Every shard with its tenants, databases and room left
    List,
    /// Register a shard at run time
    Add(ShardAddArgs),
    /// Stop placing new tenants on a shard (its tenants stay)
    Drain { name: String },
    /// Let a drained shard take new tenants again
    Activate { name: String },
}

#[derive(Debug, Args)]
pub struct ShardAddArgs {
    /// Shard name: a-z, 0-9 and '-', starting with a letter
    pub name: String,
    /// The region it serves
    #[arg(long)]
    pub region: String,
    /// sqlite or postgres
    #[arg(long, value_parser = parse_engine)]
    pub engine: tenantry_core::Engine,
    /// Admin connection URL (postgres)
    #[arg(long)]
    pub url: Option<String>,
    /// Directory of tenant files (sqlite)
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// How many tenant databases it may hold
    #[arg(long, default_value_t = 1000)]
    pub capacity: u32,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create N migrated, empty databases on a shard ahead of time
    Fill {
        #[arg(long)]
        shard: String,
        #[arg(long)]
        count: u32,
    },
    /// Databases waiting in the pool, per shard
    Status,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only report what drifted; queue and apply nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only this tenant (repeatable)
    #[arg(long = "tenant", value_name = "SLUG")]
    pub tenants: Vec<String>,
    /// Only tenants of this region
    #[arg(long)]
    pub region: Option<String>,
    /// Only tenants of this isolation
    #[arg(long, value_parser = parse_isolation)]
    pub isolation: Option<Isolation>,
    /// How many spaces to migrate at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// List, per space, the migrations that would run; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlacementCommand {
    /// Tenants past a growth threshold (placement.growth), with the move each is advised
    Recommend {
        /// Collect every tenant's statistics first (counts rows: slow on large spaces)
        #[arg(long)]
        refresh: bool,
    },
    /// Start, and run here, the moves placement.auto_move allows (past a threshold by its
    /// margin, outside its cooldown), once; `tenantry serve` does this on its interval
    AutoMove {
        /// Collect every tenant's statistics first (counts rows: slow on large spaces)
        #[arg(long)]
        refresh: bool,
    },
}

#[derive(Debug, Args)]
pub struct DataPlaneArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Serve only this region's shards [default: every shard of the configuration]
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct StorefrontArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8070")]
    pub listen: String,
    /// Redis for the per-tenant job queues [env: REDIS_URL]; without it the queues answer 501
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Serve this tenant only (id or slug), whatever a request names: a dedicated tenant's
    /// own compute
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Also serve as the data plane (POST /internal/database/initialize) of --region's shards,
    /// signed with TENANTRY_DATA_PLANE_SECRET
    #[arg(long)]
    pub data_plane: bool,
    /// The region whose data plane this is [default: every shard of the configuration]
    #[arg(long, requires = "data_plane")]
    pub region: Option<String>,
    /// Connections open at most into tenants' own databases, over all of them
    #[arg(long, default_value_t = 50)]
    pub max_tenant_connections: usize,
    /// Connections of each shared database's pool
    #[arg(long, default_value_t = 10)]
    pub shared_connections: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: server.listen of the configuration, 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<String>,
    /// Seconds between looks for work (queued work through the API starts at once)
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (printed once)
    Create {
        /// admin, operator or reader
        #[arg(long)]
        scope: String,
        /// A name to recognise and revoke it by
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a token by name
    Revoke { name: String },
    /// List tokens (never their secret)
    List,
}

fn parse_isolation(s: &str) -> Result<Isolation, String> {
    s.parse()
        .map_err(|e: tenantry_core::isolation::UnknownValue| e.to_string())
}

fn parse_state(s: &str) -> Result<TenantState, String> {
    s.parse()
        .map_err(|e: tenantry_core::isolation::UnknownValue| e.to_string())
}

fn parse_engine(s: &str) -> Result<tenantry_core::Engine, String> {
    s.parse()
        .map_err(|e: tenantry_core::isolation::UnknownValue| e.to_string())
}
