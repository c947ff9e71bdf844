//! The remote backend: a client of a `tenantry serve`'s REST API (`--server URL --token T`).
//!
//! Operations are queued by the server and run by its worker; this client follows them by
//! polling `GET /operations/{id}` and reports each finished step, as the local backend does
//! while running them. Problem documents become [`RemoteError::Problem`], whose message is the
//! server's `detail` — the same sentence the local backend would print — and whose exit code
//! follows the status (4xx: bad input, 2; else 1).

use super::{Backend, Counter, TenantQuery};
use crate::progress::StepProgress;
use anyhow::Result;
use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tenantry_api::routes::events::DeadLetter;
use tenantry_api_types::admin::{
    AddShard, CreateToken, CreatedToken, FillPool, MigrateFleet, PlacementAdvice, Plan, PoolCount,
    PoolFilled, SpaceResult, Token,
};
use tenantry_api_types::requests::{CreateTenant, MoveTenant, SetDomains, UpdateTenant};
use tenantry_api_types::responses::{
    Accepted, Domains, Event, EventPage, Operation, ProvisionPlan, Region, Shard, Tenant,
    TenantCompute, TenantLicence, TenantPage, TenantStats, TenantStorage, Transition,
};
use tenantry_catalog::model::OperationKind;
use tenantry_core::shard::ShardState;
use tenantry_orchestrator::OrchestratorError;
use uuid::Uuid;

/// How often a followed operation is looked at.
const POLL: Duration = Duration::from_millis(200);
/// The most items a list request asks for (the API's limit).
const PAGE: i64 = 1000;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `--server` is not an http(s) URL.
    #[error("--server {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The server refused the request with a problem document.
    #[error("{}", problem_message(*.status, .detail))]
    Problem {
        status: u16,
        /// The problem's `type` URI.
        kind: String,
        detail: String,
    },
    /// No answer, or not one of the API's.
    #[error("could not reach the server at {url}: {error}")]
    Unreachable { url: String, error: String },
    /// An answer the client cannot read (another program on that port, or another version).
    #[error("the server at {url} answered {status} with an unexpected body: {error}")]
    Unexpected {
        url: String,
        status: u16,
        error: String,
    },
}

fn problem_message(status: u16, detail: &str) -> String {
    match status {
        401 => format!("the server refused the token: {detail}"),
        403 => format!("the server refused the request: {detail}"),
        _ => detail.to_owned(),
    }
}

impl RemoteError {
    /// Whether the caller's request was at fault (a 4xx answer, or a bad `--server`).
    pub fn is_bad_input(&self) -> bool {
        match self {
            RemoteError::BadUrl(_) => true,
            RemoteError::Problem { status, .. } => (400..500).contains(status),
            _ => false,
        }
    }
}

#[derive(serde::Deserialize)]
struct ProblemBody {
    #[serde(rename = "type")]
    kind: String,
    detail: String,
}

pub struct Remote {
    client: reqwest::Client,
    base: Url,
    token: String,
}

impl Remote {
    pub fn new(server: &str, token: String) -> Result<Self, RemoteError> {
        let base = Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| RemoteError::BadUrl(server.to_owned()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RemoteError::Unreachable {
                url: server.to_owned(),
                error: e.to_string(),
            })?;
        Ok(Self {
            client,
            base,
            token,
        })
    }

    /// `<server>/api/v1/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked to be a base URL")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, T), RemoteError> {
        let shown = url.to_string();
        let unreachable = |e: reqwest::Error| RemoteError::Unreachable {
            url: shown.clone(),
            error: e.to_string(),
        };
        let mut request = self
            .client
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let unexpected = |error: String| RemoteError::Unexpected {
            url: shown.clone(),
            status: status.as_u16(),
            error,
        };
        if !status.is_success() {
            let problem: ProblemBody = serde_json::from_slice(&bytes).map_err(|_| {
                unexpected(String::from_utf8_lossy(&bytes).chars().take(200).collect())
            })?;
            return Err(RemoteError::Problem {
                status: status.as_u16(),
                kind: problem.kind,
                detail: problem.detail,
            });
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| unexpected(e.to_string()))?;
        Ok((status, value))
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, RemoteError> {
        Ok(self.call(Method::GET, url, None).await?.1)
    }

    async fn post<T: DeserializeOwned, B: Serialize + Sync>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<T, RemoteError> {
        let body = serde_json::to_value(body).expect("request bodies serialise");
        Ok(self.call(Method::POST, url, Some(body)).await?.1)
    }

    /// Runs a request that queues an operation, and fetches the operation.
    /// A body that is not JSON (YAML manifests), or the server's problem.
    async fn text(&self, url: Url) -> Result<String, RemoteError> {
        let shown = url.to_string();
        let unreachable = |e: reqwest::Error| RemoteError::Unreachable {
            url: shown.clone(),
            error: e.to_string(),
        };
        let response = self
            .client
            .get(url.clone())
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return self
                .call(Method::GET, url, None)
                .await
                .map(|(_, text)| text);
        }
        response.text().await.map_err(unreachable)
    }

    async fn queued(&self, method: Method, url: Url) -> Result<Operation, RemoteError> {
        let (_, accepted): (_, Accepted) = self.call(method, url, None).await?;
        self.get(self.url(&["operations", &accepted.operation_id.to_string()]))
            .await
    }
}

#[async_trait]
impl Backend for Remote {
    async fn plans(&self) -> Result<Vec<Plan>> {
        Ok(self.get(self.url(&["plans"])).await?)
    }

    async fn placement_advice(&self, refresh: bool) -> Result<Vec<PlacementAdvice>> {
        let mut url = self.url(&["placement", "recommendations"]);
        if refresh {
            url.query_pairs_mut().append_pair("refresh", "true");
        }
        Ok(self.get(url).await?)
    }

    async fn regions(&self) -> Result<Vec<Region>> {
        Ok(self.get(self.url(&["regions"])).await?)
    }

    async fn shards(&self) -> Result<Vec<Shard>> {
        Ok(self.get(self.url(&["shards"])).await?)
    }

    async fn add_shard(&self, shard: AddShard) -> Result<Shard> {
        Ok(self.post(self.url(&["shards"]), &shard).await?)
    }

    async fn set_shard_state(&self, name: &str, state: ShardState) -> Result<Shard> {
        let action = match state {
            ShardState::Draining => "drain",
            ShardState::Active => "activate",
        };
        Ok(self
            .post(self.url(&["shards", name, action]), &serde_json::json!({}))
            .await?)
    }

    async fn plan_provision(&self, mut req: CreateTenant) -> Result<ProvisionPlan> {
        req.dry_run = true;
        Ok(self.post(self.url(&["tenants"]), &req).await?)
    }

    async fn request_provision(&self, req: CreateTenant) -> Result<Operation> {
        let accepted: Accepted = self.post(self.url(&["tenants"]), &req).await?;
        Ok(self
            .get(self.url(&["operations", &accepted.operation_id.to_string()]))
            .await?)
    }

    async fn request(&self, slug: &str, kind: OperationKind) -> Result<Operation> {
        let (method, url) = match kind {
            OperationKind::Suspend => (Method::POST, self.url(&["tenants", slug, "suspend"])),
            OperationKind::Resume => (Method::POST, self.url(&["tenants", slug, "resume"])),
            OperationKind::Delete => (Method::DELETE, self.url(&["tenants", slug])),
            other => anyhow::bail!("a {other} operation cannot be requested by slug"),
        };
        Ok(self.queued(method, url).await?)
    }

    async fn wait(&self, op: &Operation, progress: &StepProgress) -> Result<Operation> {
        let url = self.url(&["operations", &op.id.to_string()]);
        loop {
            let op: Operation = self.get(url.clone()).await?;
            progress.observe(&op);
            match op.state.as_str() {
                "succeeded" => return Ok(op),
                "failed" => {
                    let step = op.steps.iter().find(|s| s.state == "failed");
                    return Err(OrchestratorError::OperationFailed {
                        operation: op.id,
                        step: step.map(|s| s.name.clone()).unwrap_or_default(),
                        error: op.error.clone().unwrap_or_default(),
                    }
                    .into());
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn tenants(&self, q: &TenantQuery) -> Result<Vec<Tenant>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(&["tenants"]);
            {
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("limit", &PAGE.to_string());
                if let Some(s) = q.state {
                    pairs.append_pair("state", &s.to_string());
                }
                if let Some(r) = &q.region {
                    pairs.append_pair("region", r);
                }
                if let Some(i) = q.isolation {
                    pairs.append_pair("isolation", &i.to_string());
                }
                if let Some(p) = &q.plan {
                    pairs.append_pair("plan", p);
                }
                if q.include_deleted {
                    pairs.append_pair("include_deleted", "true");
                }
                if let Some(c) = &cursor {
                    pairs.append_pair("cursor", c);
                }
            }
            let page: TenantPage = self.get(url).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    async fn tenant(&self, slug: &str) -> Result<Tenant> {
        Ok(self.get(self.url(&["tenants", slug])).await?)
    }

    async fn storage(&self, slug: &str) -> Result<TenantStorage> {
        Ok(self.get(self.url(&["tenants", slug, "storage"])).await?)
    }

    async fn compute(&self, slug: &str) -> Result<TenantCompute> {
        Ok(self.get(self.url(&["tenants", slug, "compute"])).await?)
    }

    async fn licence(&self, slug: &str) -> Result<TenantLicence> {
        Ok(self.get(self.url(&["tenants", slug, "licence"])).await?)
    }

    async fn manifests(&self, slug: &str) -> Result<String> {
        Ok(self.text(self.url(&["tenants", slug, "manifests"])).await?)
    }

    async fn change_plan(&self, slug: &str, req: UpdateTenant) -> Result<Option<Operation>> {
        let body = serde_json::to_value(&req).expect("request bodies serialise");
        let (status, answer): (_, serde_json::Value) = self
            .call(Method::PATCH, self.url(&["tenants", slug]), Some(body))
            .await?;
        if status != StatusCode::ACCEPTED {
            return Ok(None);
        }
        let accepted: Accepted = serde_json::from_value(answer)?;
        Ok(Some(
            self.get(self.url(&["operations", &accepted.operation_id.to_string()]))
                .await?,
        ))
    }

    async fn domains(&self, slug: &str) -> Result<Domains> {
        Ok(self.get(self.url(&["tenants", slug, "domains"])).await?)
    }

    async fn request_move(&self, slug: &str, req: MoveTenant) -> Result<Operation> {
        let body = serde_json::to_value(&req).expect("request bodies serialise");
        let url = self.url(&["tenants", slug, "move"]);
        let (_, accepted): (_, Accepted) = self.call(Method::POST, url, Some(body)).await?;
        Ok(self
            .get(self.url(&["operations", &accepted.operation_id.to_string()]))
            .await?)
    }

    async fn stats(&self, slug: &str, refresh: bool) -> Result<TenantStats> {
        let mut url = self.url(&["tenants", slug, "stats"]);
        if refresh {
            url.query_pairs_mut().append_pair("refresh", "true");
        }
        Ok(self.get(url).await?)
    }

    async fn set_domains(&self, slug: &str, domains: SetDomains) -> Result<Domains> {
        let body = serde_json::to_value(&domains).expect("request bodies serialise");
        let url = self.url(&["tenants", slug, "domains"]);
        Ok(self.call(Method::PUT, url, Some(body)).await?.1)
    }

    async fn history(&self, slug: &str) -> Result<Vec<Transition>> {
        Ok(self.get(self.url(&["tenants", slug, "history"])).await?)
    }

    async fn operations(&self, tenant: Option<&str>, limit: i64) -> Result<Vec<Operation>> {
        let mut url = self.url(&["operations"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("limit", &limit.clamp(1, PAGE).to_string());
            if let Some(t) = tenant {
                pairs.append_pair("tenant", t);
            }
        }
        Ok(self.get(url).await?)
    }

    async fn operation(&self, id: Uuid) -> Result<Operation> {
        Ok(self.get(self.url(&["operations", &id.to_string()])).await?)
    }

    async fn open_operations(&self) -> Result<Vec<Operation>> {
        let mut url = self.url(&["operations"]);
        url.query_pairs_mut()
            .append_pair("open", "true")
            .append_pair("limit", &PAGE.to_string());
        Ok(self.get(url).await?)
    }

    async fn resume(&self, id: Uuid, progress: &StepProgress) -> Result<Operation> {
        let url = self.url(&["operations", &id.to_string(), "resume"]);
        let (status, body): (_, serde_json::Value) = self.call(Method::POST, url, None).await?;
        if status == StatusCode::OK {
            // Finished already: the answer is the operation.
            let op: Operation = serde_json::from_value(body)?;
            return self.wait(&op, progress).await;
        }
        let op = self.operation(id).await?;
        self.wait(&op, progress).await
    }

    async fn events(&self, tenant: Option<&str>, after: i64, limit: i64) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut after = after;
        // The API gives at most PAGE events a request; read pages until `limit` or the end.
        while (events.len() as i64) < limit {
            let want = (limit - events.len() as i64).min(PAGE);
            let mut url = self.url(&["events"]);
            {
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("after", &after.to_string());
                pairs.append_pair("limit", &want.to_string());
                if let Some(t) = tenant {
                    pairs.append_pair("tenant", t);
                }
            }
            let page: EventPage = self.get(url).await?;
            let got = page.items.len() as i64;
            events.extend(page.items);
            after = page.next_after;
            if got < want {
                break;
            }
        }
        Ok(events)
    }

    async fn last_event(&self, tenant: Option<&str>) -> Result<i64> {
        let mut after = 0;
        loop {
            let page = self.events(tenant, after, PAGE).await?;
            match page.last() {
                Some(e) => after = e.seq,
                None => return Ok(after),
            }
            if (page.len() as i64) < PAGE {
                return Ok(after);
            }
        }
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        Ok(self.get(self.url(&["events", "dead-letters"])).await?)
    }

    async fn create_token(&self, scope: &str, name: Option<String>) -> Result<CreatedToken> {
        let body = CreateToken {
            scope: scope.to_owned(),
            name,
        };
        Ok(self.post(self.url(&["tokens"]), &body).await?)
    }

    async fn revoke_token(&self, name: &str) -> Result<Token> {
        Ok(self
            .call(Method::DELETE, self.url(&["tokens", name]), None)
            .await?
            .1)
    }

    async fn tokens(&self) -> Result<Vec<Token>> {
        Ok(self.get(self.url(&["tokens"])).await?)
    }

    async fn pool_status(&self) -> Result<Vec<PoolCount>> {
        Ok(self.get(self.url(&["pool"])).await?)
    }

    async fn fill_pool(
        &self,
        shard: &str,
        count: u32,
        progress: &dyn Counter,
    ) -> Result<PoolFilled> {
        // The server fills within the request; there is no count to show until it answers.
        progress.planned(count as usize);
        let body = FillPool {
            shard: shard.to_owned(),
            count,
        };
        let filled: PoolFilled = self.post(self.url(&["pool", "fill"]), &body).await?;
        progress.finished(&format!(
            "pool {shard}: {}/{count} databases ready",
            filled.created
        ));
        Ok(filled)
    }

    async fn migrate(&self, req: MigrateFleet, progress: &dyn Counter) -> Result<Vec<SpaceResult>> {
        // The server migrates within the request and answers with every space's result.
        let results: Vec<SpaceResult> = self.post(self.url(&["migrations"]), &req).await?;
        progress.planned(results.len());
        for r in &results {
            progress.finished(&format!(
                "{} {}",
                r.label,
                crate::commands::describe_space(r)
            ));
        }
        Ok(results)
    }
}
