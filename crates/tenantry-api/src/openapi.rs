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
        crate::routes::operations::list,
        crate::routes::operations::show,
        crate::routes::operations::resume,
        crate::routes::storage::show,
        crate::routes::plans::list,
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
        crate::routes::topology::regions,
        crate::routes::topology::shards,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&BearerAuth)
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

/// The document as pretty JSON, as committed in `docs/openapi.json`.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}
