//! The seeds' infrastructure endpoints (`/api/v1/infrastructure/tenants/{tenantId}…`), as
//! operations of the one orchestrator: provision, update and deprovision answer `202` with the
//! operation to follow, whose steps are the phases Request, Plan, Apply, Deploy, Configure,
//! Verify and Complete. `tenantId` is the tenant's id or its slug. Bodies and entities are in
//! camel case, as the seeds have them.

use super::ApiJson;
use super::tenants::accepted;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use tenantry_api_types::requests::{
    InfrastructureConfiguration, ProvisionInfrastructure, UpdateInfrastructure,
};
use tenantry_api_types::responses::{
    Accepted, InfrastructureOperation, InfrastructurePlan, InfrastructureTransition,
    TenantInfrastructure,
};
use tenantry_catalog::model::{OperationKind, StepState};
use tenantry_orchestrator::InfraRequest;

fn configuration(c: InfrastructureConfiguration) -> serde_json::Value {
    serde_json::to_value(c).expect("a configuration serialises")
}

/// The stored or previewed plan, in its wire shape.
fn plan(value: serde_json::Value) -> Result<InfrastructurePlan, Problem> {
    serde_json::from_value(value).map_err(|e| {
        tracing::error!(error = %e, "a plan summary does not have its wire shape");
        Problem::internal()
    })
}

/// A dry run: the plan's summary, nothing recorded or queued.
async fn preview(
    state: &AppState,
    tenant_ref: &str,
    kind: OperationKind,
    request: InfraRequest,
) -> Result<Response, Problem> {
    let summary = state
        .orch
        .preview_infrastructure(tenant_ref, kind, request)
        .await?;
    Ok(axum::Json(plan(summary)?).into_response())
}

async fn queue(
    state: &AppState,
    caller: &Caller,
    tenant_ref: &str,
    kind: OperationKind,
    request: Option<InfraRequest>,
) -> Result<Response, Problem> {
    let actor = format!("token:{}", caller.name);
    let (tenant, op) = state
        .orch
        .request_infrastructure(tenant_ref, kind, request, &actor)
        .await?;
    state.work.notify_one();
    Ok(accepted(&op, &tenant.slug))
}

/// Provision a tenant's infrastructure: Terraform plans and applies its tier's module.
#[utoipa::path(post, path = "/api/v1/infrastructure/tenants/{tenantId}/provision", tag = "infrastructure",
    params(("tenantId" = String, Path, description = "The tenant's id or slug")),
    request_body = ProvisionInfrastructure,
    responses(
        (status = 202, description = "Provisioning queued", body = Accepted),
        (status = 200, description = "Dry run: the plan", body = InfrastructurePlan),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another operation of the tenant is under way", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request (region, cloud provider, tier, infrastructure that exists)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])))]
pub async fn provision(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant_ref): Path<String>,
    ApiJson(body): ApiJson<ProvisionInfrastructure>,
) -> Result<Response, Problem> {
    let request = InfraRequest {
        tier: body.tier,
        region: body.region,
        cloud_provider: body.cloud_provider,
        configuration: configuration(body.configuration),
    };
    if body.dry_run {
        return preview(&state, &tenant_ref, OperationKind::InfraProvision, request).await;
    }
    queue(
        &state,
        &caller,
        &tenant_ref,
        OperationKind::InfraProvision,
        Some(request),
    )
    .await
}

/// Change a tenant's infrastructure: the difference is planned and applied.
#[utoipa::path(put, path = "/api/v1/infrastructure/tenants/{tenantId}", tag = "infrastructure",
    params(("tenantId" = String, Path, description = "The tenant's id or slug")),
    request_body = UpdateInfrastructure,
    responses(
        (status = 202, description = "Update queued", body = Accepted),
        (status = 200, description = "Dry run: the plan", body = InfrastructurePlan),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant_ref): Path<String>,
    ApiJson(body): ApiJson<UpdateInfrastructure>,
) -> Result<Response, Problem> {
    let tenant = state.orch.tenant_by_ref(&tenant_ref).await?;
    let current = state
        .orch
        .catalog()
        .infrastructure(tenant.id)
        .await?
        .ok_or_else(|| {
            Problem::invalid(
                "tenantId",
                format!(
                    "tenant {} has no infrastructure; provision it first",
                    tenant.slug
                ),
            )
        })?;
    let request = InfraRequest {
        tier: body.tier.unwrap_or(current.tier),
        region: current.region,
        cloud_provider: current.cloud_provider,
        configuration: configuration(body.configuration),
    };
    if body.dry_run {
        return preview(&state, &tenant_ref, OperationKind::InfraUpdate, request).await;
    }
    queue(
        &state,
        &caller,
        &tenant_ref,
        OperationKind::InfraUpdate,
        Some(request),
    )
    .await
}

/// Deprovision a tenant's infrastructure: everything Terraform made is destroyed and its state
/// removed. Irreversible.
#[utoipa::path(delete, path = "/api/v1/infrastructure/tenants/{tenantId}", tag = "infrastructure",
    params(("tenantId" = String, Path, description = "The tenant's id or slug")),
    responses(
        (status = 202, description = "Deprovisioning queued", body = Accepted),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])))]
pub async fn deprovision(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant_ref): Path<String>,
) -> Result<Response, Problem> {
    queue(
        &state,
        &caller,
        &tenant_ref,
        OperationKind::InfraDeprovision,
        None,
    )
    .await
}

/// A tenant's infrastructure: its status, configuration, state key, last plan, outputs, and the
/// phase of its latest operation.
#[utoipa::path(get, path = "/api/v1/infrastructure/tenants/{tenantId}", tag = "infrastructure",
    params(("tenantId" = String, Path, description = "The tenant's id or slug")),
    responses((status = 200, body = TenantInfrastructure), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(tenant_ref): Path<String>,
) -> Result<axum::Json<TenantInfrastructure>, Problem> {
    let tenant = state.orch.tenant_by_ref(&tenant_ref).await?;
    let catalog = state.orch.catalog();
    let record = catalog.infrastructure(tenant.id).await?.ok_or_else(|| {
        Problem::not_found(format!(
            "tenant {} has no infrastructure; POST …/provision creates it",
            tenant.slug
        ))
    })?;
    let operation = catalog
        .operations(Some(tenant.id), 20)
        .await?
        .into_iter()
        .find(|op| op.kind.is_infrastructure())
        .map(|op| InfrastructureOperation {
            id: op.id,
            kind: op.kind.to_string(),
            state: op.state.to_string(),
            phase: op
                .state
                .is_open()
                .then(|| op.steps.iter().find(|s| s.state != StepState::Done))
                .flatten()
                .map(|s| s.name.clone()),
            operation_url: format!("/api/v1/operations/{}", op.id),
        });
    Ok(axum::Json(TenantInfrastructure {
        id: record.id,
        tenant_id: record.tenant_id.0,
        status: record.status.to_string(),
        tier: record.tier,
        cloud_provider: record.cloud_provider,
        region: record.region,
        namespace: record.namespace,
        configuration: record.configuration,
        terraform_state_key: record.state_key,
        plan: record.plan.map(plan).transpose()?,
        outputs: record.outputs,
        error: record.error,
        operation,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }))
}

/// Every status change of a tenant's infrastructure, oldest first.
#[utoipa::path(get, path = "/api/v1/infrastructure/tenants/{tenantId}/transitions", tag = "infrastructure",
    params(("tenantId" = String, Path, description = "The tenant's id or slug")),
    responses((status = 200, body = [InfrastructureTransition]), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn transitions(
    State(state): State<AppState>,
    Path(tenant_ref): Path<String>,
) -> Result<axum::Json<Vec<InfrastructureTransition>>, Problem> {
    let tenant = state.orch.tenant_by_ref(&tenant_ref).await?;
    let rows = state
        .orch
        .catalog()
        .infrastructure_transitions(tenant.id)
        .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|t| InfrastructureTransition {
                id: t.id,
                tenant_id: t.tenant_id.0,
                from_state: t.from.map(|s| s.to_string()),
                to_state: t.to.to_string(),
                trigger: t.trigger,
                details: t.details,
                timestamp: t.at,
            })
            .collect(),
    ))
}
