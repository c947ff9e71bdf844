//! From the catalog's records to the API's contract.

use tenantry_api_types::responses as api;
use tenantry_catalog::model;

pub fn tenant(t: model::Tenant) -> api::Tenant {
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
        created_at: t.created_at,
        updated_at: t.updated_at,
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
        created_at: op.created_at,
        updated_at: op.updated_at,
        finished_at: op.finished_at,
    }
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

pub fn shard(s: model::Shard) -> api::Shard {
    api::Shard {
        room_left: s.capacity.saturating_sub(s.used),
        name: s.name,
        region: s.region,
        engine: s.engine,
        state: s.state,
        capacity: s.capacity,
        used: s.used,
    }
}
