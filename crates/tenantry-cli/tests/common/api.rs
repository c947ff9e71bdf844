//! `tenantry serve` as the API tests drive it: the process, tokens, and a client whose every
//! answer is checked against the committed OpenAPI document.

use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

pub use super::server::Server;

/// The committed OpenAPI document (the drift test below keeps it equal to the code's), made
/// strict: an object in a response may carry only the properties the spec names.
pub struct Spec(Value);

impl Spec {
    pub fn load() -> Spec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .unwrap();
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        forbid_undocumented_properties(&mut doc["components"]);
        Spec(doc)
    }

    /// The body of `res`, after checking that the spec lists its status and content type for
    /// `method` `template` and that the body matches the schema given there.
    pub async fn body(&self, method: &str, template: &str, res: reqwest::Response) -> Value {
        let status = res.status().as_u16().to_string();
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        let what = format!(
            "{} {template} answered {status} ({content_type})",
            method.to_uppercase()
        );
        let response = &self.0["paths"][template][method]["responses"][&status];
        assert!(
            response.is_object(),
            "{what}, which the spec does not list: {body}"
        );
        let schema = &response["content"][&content_type]["schema"];
        assert!(
            schema.is_object(),
            "{what}: the spec gives no schema for that content type"
        );
        let mut root = schema.clone();
        root["components"] = self.0["components"].clone();
        let validator = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}, not as the spec says: {errors:#?}\n{body:#}"
        );
        body
    }
}

/// Adds `additionalProperties: false` to every object schema that lists its properties and
/// says nothing about others.
fn forbid_undocumented_properties(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(forbid_undocumented_properties);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_undocumented_properties),
        _ => {}
    }
}

pub fn token(env: &super::Env, scope: &str, name: &str) -> String {
    let v = env.json(&["token", "create", "--scope", scope, "--name", name]);
    v["token"].as_str().unwrap().to_owned()
}

/// A client whose every answer is checked against the spec.
pub struct CheckedApi<'a> {
    pub client: reqwest::Client,
    pub server: &'a Server,
    pub spec: Spec,
}

impl<'a> CheckedApi<'a> {
    pub fn new(server: &'a Server) -> Self {
        CheckedApi {
            client: reqwest::Client::new(),
            server,
            spec: Spec::load(),
        }
    }

    /// Sends `method` to `path` (an instance of the spec's `template`) with `token` and `body`;
    /// returns the status and the body, checked against the spec.
    pub async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(
                method.to_uppercase().parse().unwrap(),
                self.server.url(path),
            )
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, self.spec.body(method, template, res).await)
    }

    pub async fn get(&self, template: &str, path: &str, token: &str) -> Value {
        let (status, body) = self.call("get", template, path, token, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Polls an operation (checking each answer) until it ends.
    pub async fn finish(&self, url: &str, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let op = self.get("/api/v1/operations/{id}", url, token).await;
            if op["state"] == "succeeded" || op["state"] == "failed" {
                return op;
            }
            assert!(Instant::now() < deadline, "operation never finished: {op}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
