//! From the catalog's records to the API's contract.

use tenantry_api_types::admin;
use tenantry_api_types::responses as api;
use tenantry_catalog::model;
use tenantry_orchestrator::fleet::{SpaceOutcome, SpaceResult};

pub fn tenant(t: model::Tenant) -> api::Tenant {
    let redis_prefix = t.id.key_prefix();
    api::Tenant {
        id: t.id.0,
        slug: t.slug,
        plan: t.plan,
        region: t.region,
        state: t.state,
        isolation: t.isolation,
        compute: t.compute,
        shard: t.shard,
        placement: t.placement,
        characteristics: t.characteristics,
        space: t.space,
        admin_email: t.admin_email,
        schema_version: t.schema_version,
        failure: t.failure.map(|f| api::Failure {
            operation: f.operation,
            step: f.step,
            error: f.error,
        }),
        epoch: t.epoch,
        redis_prefix,
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

pub fn provision_plan(plan: tenantry_orchestrator::ProvisionPlan) -> api::ProvisionPlan {
    api::ProvisionPlan {
        slug: plan.slug.to_string(),
        plan: plan.plan,
        region: plan.region,
        placement: plan.placement,
        shard: plan.shard,
        space: plan.space,
        admin_email: plan.admin_email,
        domains: domains(plan.domains),
        steps: plan.steps.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn tenant_stats(s: model::TenantStats) -> api::TenantStats {
    api::TenantStats {
        total_rows: s.rows.values().sum(),
        rows: s.rows,
        size_bytes: s.size_bytes,
        size_estimated: s.size_estimated,
        collected_at: s.collected_at,
        queries: s.queries,
        avg_query_ms: (s.queries > 0).then(|| s.query_ms_total / s.queries as f64),
        queries_since: s.queries_since,
    }
}

pub fn domains(d: tenantry_core::domain::TenantDomains) -> api::Domains {
    api::Domains {
        primary: d.primary.map(String::from),
        aliases: d.aliases.into_iter().map(String::from).collect(),
    }
}

pub fn operation(op: model::Operation) -> api::Operation {
    let steps_done = op
        .steps
        .iter()
        .filter(|s| s.state == model::StepState::Done)
        .count();
    api::Operation {
        id: op.id,
        tenant_id: op.tenant_id.0,
        kind: op.kind.to_string(),
        state: op.state.to_string(),
        error: op.error,
        steps_done,
        steps_total: op.steps.len(),
        steps: op
            .steps
            .into_iter()
            .map(|s| api::Step {
                duration_ms: match (s.started_at, s.finished_at) {
                    (Some(a), Some(b)) => Some((b - a).num_milliseconds()),
                    _ => None,
                },
                name: s.name,
                state: s.state.to_string(),
                attempts: s.attempts,
                last_error: s.last_error,
                started_at: s.started_at,
                finished_at: s.finished_at,
            })
            .collect(),
        lease_owner: op.lease_owner,
        lease_expires_at: op.lease_expires_at,
        created_at: op.created_at,
        updated_at: op.updated_at,
        finished_at: op.finished_at,
        plan: None,
    }
}

/// [`operation`] with its infrastructure plan (see
/// [`Orchestrator::operation_plan`](tenantry_orchestrator::Orchestrator::operation_plan)).
pub fn operation_with_plan(
    op: model::Operation,
    plan: Option<serde_json::Value>,
) -> Result<api::Operation, serde_json::Error> {
    Ok(api::Operation {
        plan: plan.map(serde_json::from_value).transpose()?,
        ..operation(op)
    })
}

pub fn event(e: model::Event) -> api::Event {
    api::Event {
        seq: e.seq,
        id: e.id,
        tenant_id: e.tenant_id.0,
        event_type: e.event_type,
        payload: e.payload,
        created_at: e.created_at,
    }
}

pub fn transition(t: model::Transition) -> api::Transition {
    api::Transition {
        from: t.from,
        to: t.to,
        trigger: t.trigger,
        actor: t.actor,
        details: t.details,
        at: t.at,
    }
}

/// A shard, with the number of live tenants on it (counted by the caller).
pub fn shard(s: model::Shard, tenants: usize) -> api::Shard {
    api::Shard {
        room_left: s.capacity.saturating_sub(s.used),
        location: s.directory.or_else(|| s.url.as_deref().map(redact_url)),
        name: s.name,
        region: s.region,
        engine: s.engine,
        state: s.state,
        capacity: s.capacity,
        used: s.used,
        tenants,
    }
}

/// `postgres://user:secret@host:5432/db` → `postgres://user@host:5432/db`: a shard's URL may
/// carry a password, which no answer shows.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub fn plan(name: &str, p: &tenantry_core::placement::Plan) -> admin::Plan {
    admin::Plan {
        name: name.to_owned(),
        isolation: p.isolation,
        compute: p.compute,
        storage_quota_mb: p.storage_quota_mb,
        description: p.description.clone(),
    }
}

pub fn token(t: model::Token) -> admin::Token {
    admin::Token {
        id: t.id,
        name: t.name,
        scope: t.scope,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

pub fn pool_count(c: model::PoolCount) -> admin::PoolCount {
    admin::PoolCount {
        shard: c.shard,
        available: c.available,
        claimed: c.claimed,
    }
}

pub fn space_result(r: SpaceResult) -> admin::SpaceResult {
    let mut out = admin::SpaceResult {
        label: r.label,
        isolation: r.isolation,
        shard: r.shard,
        tenants: r.tenants,
        result: String::new(),
        from: None,
        to: None,
        version: None,
        migrations: None,
        error: None,
        took_ms: r.took_ms,
    };
    out.result = match r.outcome {
        SpaceOutcome::Migrated { from, to } => {
            (out.from, out.to) = (from, to);
            "migrated"
        }
        SpaceOutcome::UpToDate { version } => {
            out.version = version;
            "up_to_date"
        }
        SpaceOutcome::WouldApply { migrations } => {
            out.migrations = Some(migrations);
            "would_apply"
        }
        SpaceOutcome::Failed { error } => {
            out.error = Some(error);
            "failed"
        }
    }
    .to_owned();
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_cut_from_urls() {
        assert_eq!(
            redact_url("postgres://admin:hunter2@db.example:5432/postgres"),
            "postgres://admin@db.example:5432/postgres"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/postgres"),
            "postgres://postgres@127.0.0.1/postgres"
        );
    }
}
