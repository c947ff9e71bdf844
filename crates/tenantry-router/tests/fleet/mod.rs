//! A fleet for router tests: a catalog (SQLite, in a temporary directory), one shard — a private
//! PostgreSQL server or a SQLite directory — and an orchestrator that provisions tenants of any
//! isolation there with the storefront's migrations. Shared with the storefront's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tenantry_catalog::CatalogStore;
use tenantry_catalog::model::Tenant;
use tenantry_core::Isolation;
use tenantry_core::config::Config;
use tenantry_core::secrets::MasterKey;
use tenantry_orchestrator::{NoProgress, Orchestrator, ProvisionRequest};
use tenantry_router::{Router, RouterOptions};
use tenantry_testkit::postgres::TestServer;

pub struct Fleet {
    pub orch: Orchestrator,
    pub config: Arc<Config>,
    pub master_key: MasterKey,
    /// The shard's server, for PostgreSQL fleets.
    pub server: Option<TestServer>,
    /// The server of a second shard of the region (`eu-west-2`), where there is one.
    pub second: Option<TestServer>,
    pub dir: tempfile::TempDir,
}

fn storefront() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront")
}

impl Fleet {
    /// A fleet whose shard is a private PostgreSQL server; `None` (after saying why) where
    /// PostgreSQL cannot be started outside CI.
    pub async fn postgres() -> Option<Self> {
        let server = TestServer::start().await?;
        let shard = format!(
            "[[shards]]\nname = \"eu-west-1\"\nregion = \"eu-west\"\nengine = \"postgres\"\nurl = \"{}\"\ncapacity = 100000\n",
            server.url
        );
        Some(Self::with_shard(&shard, Some(server), None).await)
    }

    /// A fleet of two PostgreSQL shards of one region: `eu-west-1` (the shared database) and
    /// `eu-west-2`, each a private server.
    pub async fn postgres_two_shards() -> Option<Self> {
        let (first, second) = (TestServer::start().await?, TestServer::start().await?);
        let shards = format!(
            "shared_shard = \"eu-west-1\"\n\
             [[shards]]\nname = \"eu-west-1\"\nregion = \"eu-west\"\nengine = \"postgres\"\nurl = \"{}\"\ncapacity = 100000\n\
             [[shards]]\nname = \"eu-west-2\"\nregion = \"eu-west\"\nengine = \"postgres\"\nurl = \"{}\"\ncapacity = 100000\n",
            first.url, second.url
        );
        Some(Self::with_shard(&shards, Some(first), Some(second)).await)
    }

    /// A fleet whose shard is a directory of SQLite files.
    pub async fn sqlite() -> Self {
        let shard = "[[shards]]\nname = \"eu-west-1\"\nregion = \"eu-west\"\nengine = \"sqlite\"\ndirectory = \"data/shards/eu-west-1\"\ncapacity = 100000\n";
        Self::with_shard(shard, None, None).await
    }

    async fn with_shard(
        shard: &str,
        server: Option<TestServer>,
        second: Option<TestServer>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let common = tenantry_core::config::DEFAULT_TOML;
        let plans = &common[common.find("# Plans:").unwrap()..];
        let app = storefront();
        let text = format!(
            "[catalog]\nurl = \"sqlite://data/catalog.db\"\n[storage]\nroot = \"data/storage\"\n\
             [secrets]\nmaster_key_file = \"master.key\"\n\
             [application]\nname = \"storefront\"\nmigrations = \"{}\"\nseeds = \"{}\"\n\
             [regions.eu-west]\n{shard}{plans}",
            app.join("migrations").display(),
            app.join("seeds").display()
        );
        let path = dir.path().join("tenantry.toml");
        std::fs::write(&path, text).unwrap();
        let master_key = MasterKey::generate();
        std::fs::write(dir.path().join("master.key"), master_key.to_base64()).unwrap();
        let config = Arc::new(Config::load(&path).unwrap());
        let store = tenantry_catalog::open(&config.catalog.url).await.unwrap();
        let orch = Orchestrator::new(Arc::clone(&config), store, "router-tests")
            .await
            .unwrap();
        Self {
            orch,
            config,
            master_key,
            server,
            second,
            dir,
        }
    }

    pub fn catalog(&self) -> Arc<dyn CatalogStore> {
        Arc::clone(self.orch.catalog())
    }

    /// Provisions `slug` with `isolation` and returns it, active.
    pub async fn tenant(&self, slug: &str, isolation: Isolation) -> Tenant {
        let req = ProvisionRequest {
            slug: slug.into(),
            plan: "standard".into(),
            region: "eu-west".into(),
            isolation: Some(isolation),
            domain: Some(format!("{slug}.shop.example")),
            ..ProvisionRequest::default()
        };
        let (t, op) = self.orch.request_provision(&req).await.unwrap();
        let op = self.orch.run(op.id, &NoProgress).await.unwrap();
        assert_eq!(
            op.state.to_string(),
            "succeeded",
            "provisioning {slug}: {op:?}"
        );
        self.catalog().tenant(t.id).await.unwrap()
    }

    /// A router over the fleet's catalog, with `options` and the fleet's master key.
    pub fn router(&self, options: RouterOptions) -> Router {
        Router::new(
            self.catalog(),
            RouterOptions {
                master_key: Some(self.master_key.clone()),
                ..options
            },
        )
    }

    /// The URL of `database` on the shard's server as `user` (trust authentication).
    pub fn url_as(&self, user: &str, database: &str) -> String {
        let server = self.server.as_ref().expect("a PostgreSQL fleet");
        format!("postgres://{user}@127.0.0.1:{}/{database}", server.port)
    }
}
