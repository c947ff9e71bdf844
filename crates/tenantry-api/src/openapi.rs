//! The OpenAPI document, generated from the handlers' annotations. `docs/openapi.json` is a
//! committed copy; a test fails when it drifts from this.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenantry control plane",
        description = "Tenants, their operations and lifecycle events. Every route but /healthz, /readyz and the document itself needs `Authorization: Bearer <token>` with the scope named in its security requirement (admin ⊇ operator ⊇ reader). Errors are RFC 9457 problem documents."
    ),
    paths(
        crate::routes::tenants::create,
        crate::routes::tenants::list,
        crate::routes::tenants::show,
        crate::routes::tenants::history,
        crate::routes::tenants::suspend,
        crate::routes::tenants::resume,
        crate::routes::tenants::delete,
        crate::routes::moves::start,
        crate::routes::operations::list,
        crate::routes::operations::show,
        crate::routes::operations::resume,
        crate::routes::storage::show,
        crate::routes::compute::show,
        crate::routes::compute::licence,
        crate::routes::compute::manifests,
        crate::routes::compute::update,
        crate::routes::reconciliation::last,
        crate::routes::storage::stats,
        crate::routes::domains::show,
        crate::routes::domains::set,
        crate::routes::domains::resolve,
        crate::routes::plans::list,
        crate::routes::plans::recommendations,
        crate::routes::shard_admin::add,
        crate::routes::shard_admin::drain,
        crate::routes::shard_admin::activate,
        crate::routes::pool::status,
        crate::routes::pool::fill,
        crate::routes::migrations::run,
        crate::routes::tokens::create,
        crate::routes::tokens::list,
        crate::routes::tokens::revoke,
        crate::routes::events::list,
        crate::routes::events::dead_letters,
        crate::routes::infrastructure::provision,
        crate::routes::infrastructure::show,
        crate::routes::infrastructure::update,
        crate::routes::infrastructure::deprovision,
        crate::routes::infrastructure::transitions,
        crate::routes::topology::regions,
        crate::routes::topology::shards,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&BearerAuth, &CommonProblems)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The problem documents any route may answer besides its own: 401 and 403 where a token is
/// needed, and 400, 413, 415 and 422 where a JSON body is read. Added to every operation, so
/// that the document lists every status a client can get.
struct CommonProblems;

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description).into());
                };
                if op.security.is_some() {
                    add("401", "No token, or an unknown or revoked one");
                    add("403", "The token's scope is too small");
                }
                if op.request_body.is_some() {
                    add("400", "The body is not JSON");
                    add("413", "The body is larger than 64 KiB");
                    add("415", "The body is not sent as application/json");
                    add("422", "The body does not match the schema");
                }
            }
        }
    }
}

/// The document as pretty JSON, as committed in `docs/openapi.json`.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}
