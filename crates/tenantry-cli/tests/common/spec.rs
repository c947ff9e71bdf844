//! Responses checked against the OpenAPI document: every answer of a test's request must have
//! a status the document lists for that route, the media type it names, and a body valid
//! under its schema — so an answer that drifts from the spec fails the test.
//!
//! The document is `docs/openapi.json`, which a test keeps equal to what the code generates.
//! Its schemas are JSON Schema 2020-12 (OpenAPI 3.1); `$ref`s into `#/components/schemas`
//! resolve because each response schema is validated with the document's components beside it.
//! Objects are checked strictly: a field the document does not declare is an error too.

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use std::sync::LazyLock;

/// The committed OpenAPI document.
pub static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("docs/openapi.json");
    Spec::new(serde_json::from_str(&text).expect("docs/openapi.json is JSON"))
});

pub struct Spec {
    doc: Value,
    /// The document's components, objects made strict (see [`strict`]).
    components: Value,
}

/// An answer that passed the check.
pub struct Checked {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Checked {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// `.checked()` sends a request and checks its answer against [`SPEC`].
pub trait SendChecked {
    fn checked(self) -> impl Future<Output = Checked>;
}

impl SendChecked for RequestBuilder {
    async fn checked(self) -> Checked {
        let (client, request) = self.build_split();
        let request = request.expect("a valid request");
        let method = request.method().as_str().to_lowercase();
        let path = request.url().path().to_owned();
        let response = client.execute(request).await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{method} {path} answered {status} with a body that is not JSON: {e}")
            })
        };
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        SPEC.check(&method, &path, status.as_u16(), content_type, &body);
        Checked {
            status,
            headers,
            body,
        }
    }
}

impl Spec {
    pub fn new(doc: Value) -> Self {
        let mut components = doc["components"].clone();
        strict(&mut components["schemas"]);
        Self { doc, components }
    }

    /// The document's path template for a concrete path: literal segments must be equal,
    /// `{param}` segments match any; the template with most literal segments wins.
    fn template(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .filter_map(|t| {
                let parts: Vec<&str> = t.split('/').collect();
                let fits = parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| p.starts_with('{') || p == s);
                fits.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), t))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, t)| t.as_str())
    }

    /// Panics, saying what drifted, unless the answer is one the document describes.
    pub fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &Value) {
        let route = format!("{method} {path}");
        let Some(template) = self.template(path) else {
            // Not an API route (/healthz, /metrics): nothing to check against.
            assert!(
                !path.starts_with("/api/v1/"),
                "{route}: no such path in the OpenAPI document"
            );
            return;
        };
        let responses = &self.doc["paths"][template][method]["responses"];
        assert!(
            responses.is_object(),
            "{route}: the OpenAPI document has no {method} for {template}"
        );
        let response = &responses[status.to_string()];
        assert!(
            response.is_object(),
            "{route} answered {status}, which the OpenAPI document does not list for {template}: {body}"
        );
        let Some(content) = response["content"].as_object() else {
            assert!(
                body.is_null(),
                "{route} {status}: the document says no body: {body}"
            );
            return;
        };
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let schema = &content.get(media).unwrap_or_else(|| {
            panic!(
                "{route} {status} answered {media:?}; the document names {:?}",
                content.keys().collect::<Vec<_>>()
            )
        })["schema"];
        let mut root = json!({ "components": self.components.clone() });
        if let Some(schema) = schema.as_object() {
            for (k, v) in schema {
                root[k] = v.clone();
            }
        }
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{route}: the document's schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{route} {status}: the body does not match the OpenAPI document ({template}):\n  {}\nbody: {body:#}",
            errors.join("\n  ")
        );
    }
}

/// Adds `unevaluatedProperties: false` to every object schema that lists its properties, so
/// that an undeclared field is an error (utoipa leaves objects open).
fn strict(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
            for v in map.values_mut() {
                strict(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}
