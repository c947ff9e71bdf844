//! The OpenAPI document, generated from the handlers' annotations. `docs/openapi.json` is a
//! committed copy; a test fails when it drifts from this.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Response, ResponseBuilder};
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
        crate::routes::operations::show,
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
    modifiers(&BearerAuth, &Problems)
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

/// Problem documents as they are served: `application/problem+json` (a `body = Problem` in an
/// annotation says `application/json`), and the answers every route can give without saying so
/// in its own annotation: 401 and 403 behind a token, 400 (malformed JSON) and 413 (body over
/// the limit) where there is a request body.
struct Problems;

const PROBLEM_JSON: &str = "application/problem+json";

fn is_problem(content: &RefOr<Content>) -> bool {
    matches!(content, RefOr::T(c) if matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")))
}

fn problem_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Problem",
                )))),
            )
            .build(),
    )
}

fn add_problems(op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(r) = response
            && r.content.get("application/json").is_some_and(is_problem)
        {
            let content = r.content.shift_remove("application/json").expect("present");
            r.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
    let mut implied = Vec::new();
    if op.security.is_some() {
        implied.push(("401", "No token, or a token that is unknown or revoked"));
        implied.push(("403", "The token's scope is too small for this route"));
    }
    if op.request_body.is_some() {
        implied.push(("400", "The body is not JSON of the expected shape"));
        implied.push(("413", "The body is larger than the limit"));
    }
    for (status, description) in implied {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
    }
}

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_problems(op);
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
