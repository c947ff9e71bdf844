//! The seeds' infrastructure endpoints end to end: `tenantry serve` on the embedded default with
//! the module `tenantry init` ships, the real Terraform binary, driven through the API only,
//! every answer checked against the OpenAPI document.

mod common;

use common::api::{CheckedApi, Server, token};
use common::make_test_env;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PHASES: [&str; 7] = [
    "request",
    "plan",
    "apply",
    "deploy",
    "configure",
    "verify",
    "complete",
];

/// Whether the Terraform binary runs; otherwise the test is skipped (and fails in CI).
fn terraform() -> Option<()> {
    let runs = std::process::Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        Some(())
    } else {
        tenantry_testkit::missing("the terraform binary")
    }
}

const BASE: &str = "/api/v1/infrastructure/tenants/{tenantId}";

fn configuration(storage_gb: u64) -> Value {
    json!({ "databaseSize": "Standard_D2s_v3", "storageGb": storage_gb, "enableHa": false })
}

/// Queues an infrastructure operation and waits for it; returns the finished operation.
async fn run(
    api: &CheckedApi<'_>,
    method: &str,
    template: &str,
    path: &str,
    tok: &str,
    body: Option<Value>,
) -> Value {
    let (status, accepted) = api.call(method, template, path, tok, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.finish(accepted["operation_url"].as_str().unwrap(), tok)
        .await
}

fn phases(op: &Value) -> Vec<(String, String)> {
    op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_update_and_deprovision_through_the_api() {
    if terraform().is_none() {
        return;
    }
    let env = make_test_env();
    for slug in ["acme", "globex"] {
        env.tenantry([
            "tenant", "create", slug, "--plan", "standard", "--region", "eu-west",
        ])
        .success();
    }
    let op_tok = token(&env, "operator", "ops");
    let server = Server::start(&env, &[]);
    let api = CheckedApi::new(&server);
    let entity = |slug: &'static str| {
        let api = &api;
        let tok = op_tok.clone();
        async move {
            api.get(
                BASE,
                &format!("/api/v1/infrastructure/tenants/{slug}"),
                &tok,
            )
            .await
        }
    };

    // A dry run answers with the plan and records, queues and applies nothing.
    let (status, planned) = api
        .call(
            "post",
            "/api/v1/infrastructure/tenants/{tenantId}/provision",
            "/api/v1/infrastructure/tenants/acme/provision",
            &op_tok,
            Some(
                json!({ "tier": "professional", "region": "eu-west", "cloudProvider": "AZURE",
                         "configuration": configuration(100), "dryRun": true }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{planned}");
    assert_eq!(
        (&planned["add"], &planned["change"]),
        (&json!(3), &json!(0))
    );
    let (status, _) = api
        .call(
            "get",
            BASE,
            "/api/v1/infrastructure/tenants/acme",
            &op_tok,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !env.path()
            .join("data/terraform/tenants")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );

    // Two tenants at once: each its own workspace and state.
    let mut accepted = Vec::new();
    for slug in ["acme", "globex"] {
        let (status, body) = api
            .call(
                "post",
                "/api/v1/infrastructure/tenants/{tenantId}/provision",
                &format!("/api/v1/infrastructure/tenants/{slug}/provision"),
                &op_tok,
                Some(json!({ "tier": "professional", "region": "eu-west",
                             "cloudProvider": "AZURE", "configuration": configuration(100) })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted.push(body);
    }
    for body in &accepted {
        let op = api
            .finish(body["operation_url"].as_str().unwrap(), &op_tok)
            .await;
        assert_eq!(op["state"], "succeeded", "{op}");
        assert_eq!(
            phases(&op),
            PHASES.map(|p| (p.to_owned(), "done".to_owned()))
        );
    }
    let mut states = Vec::new();
    for slug in ["acme", "globex"] {
        let infra = entity(slug).await;
        let id = infra["tenantId"].as_str().unwrap().to_owned();
        assert_eq!(infra["status"], "ACTIVE", "{infra}");
        assert_eq!(infra["terraformStateKey"], format!("tenants/{id}.tfstate"));
        assert_eq!(infra["namespace"], format!("tenant-{slug}"));
        assert_eq!(infra["plan"]["add"], 3, "{infra}");
        assert_eq!(
            infra["outputs"]["database_endpoint"],
            format!("db-{id}.eu-west.internal")
        );
        assert_eq!(infra["outputs"]["storage_gb"], 100);
        let state = env
            .path()
            .join("data/terraform")
            .join(format!("tenants/{id}.tfstate"));
        assert!(state.is_file(), "{} is missing", state.display());
        let document: Value = serde_json::from_str(
            &std::fs::read_to_string(env.path().join(format!(
                "data/storage/eu-west/tenants/{id}/infrastructure.json"
            )))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(document["outputs"], infra["outputs"]);
        states.push(std::fs::read_to_string(&state).unwrap());
    }
    assert!(states[0].contains("acme-files") && !states[0].contains("globex-files"));
    assert!(states[1].contains("globex-files") && !states[1].contains("acme-files"));

    // A second provision is refused; so is another region or an unknown field, and nothing
    // is queued.
    for body in [
        json!({ "tier": "professional", "region": "eu-west", "cloudProvider": "AZURE", "configuration": {} }),
        json!({ "tier": "professional", "region": "us-east", "cloudProvider": "AZURE", "configuration": {} }),
        json!({ "tier": "professional", "region": "eu-west", "cloudProvider": "AZURE", "configuration": {}, "size": 1 }),
    ] {
        let (status, problem) = api
            .call(
                "post",
                "/api/v1/infrastructure/tenants/{tenantId}/provision",
                "/api/v1/infrastructure/tenants/acme/provision",
                &op_tok,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    }

    // Bad input for a tenant without infrastructure: refused with what to change, nothing made.
    env.tenantry([
        "tenant", "create", "initech", "--plan", "standard", "--region", "eu-west",
    ])
    .success();
    for (body, says) in [
        (
            json!({ "tier": "../../../etc", "region": "eu-west", "cloudProvider": "AZURE", "configuration": {} }),
            "is not a tier name",
        ),
        (
            json!({ "tier": "professional", "region": "eu-west", "cloudProvider": "OVH", "configuration": {} }),
            "unknown cloudProvider",
        ),
        (
            json!({ "tier": "professional", "region": "us-east", "cloudProvider": "AWS", "configuration": {} }),
            "stays in its region",
        ),
    ] {
        let (status, problem) = api
            .call(
                "post",
                "/api/v1/infrastructure/tenants/{tenantId}/provision",
                "/api/v1/infrastructure/tenants/initech/provision",
                &op_tok,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    let (status, _) = api
        .call(
            "get",
            BASE,
            "/api/v1/infrastructure/tenants/initech",
            &op_tok,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An update's dry run plans the one change; the update then plans and applies it.
    let (status, planned) = api
        .call(
            "put",
            BASE,
            "/api/v1/infrastructure/tenants/acme",
            &op_tok,
            Some(json!({ "configuration": configuration(200), "dryRun": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{planned}");
    assert_eq!(
        (&planned["add"], &planned["change"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(entity("acme").await["outputs"]["storage_gb"], 100);
    let op = run(
        &api,
        "put",
        BASE,
        "/api/v1/infrastructure/tenants/acme",
        &op_tok,
        Some(json!({ "configuration": configuration(200) })),
    )
    .await;
    assert_eq!(op["state"], "succeeded", "{op}");
    let infra = entity("acme").await;
    assert_eq!(infra["status"], "ACTIVE");
    assert_eq!(
        (
            &infra["plan"]["add"],
            &infra["plan"]["change"],
            &infra["plan"]["destroy"]
        ),
        (&json!(0), &json!(1), &json!(0)),
        "{infra}"
    );
    assert_eq!(
        infra["plan"]["resources"][0]["address"],
        "module.tenant.terraform_data.storage"
    );
    assert_eq!(infra["outputs"]["storage_gb"], 200);
    // The plan is the operation's too: in the API and in `tenantry ops show`.
    assert_eq!(op["plan"], infra["plan"], "{op}");
    let op_id = op["id"].as_str().unwrap();
    let shown = env.tenantry(["ops", "show", op_id]).success();
    let shown = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
    assert!(
        shown.contains("plan: 0 to add, 1 to change, 0 to destroy")
            && shown.contains("module.tenant.terraform_data.storage"),
        "{shown}"
    );

    // Deprovisioning destroys everything and removes the state.
    let id = infra["tenantId"].as_str().unwrap().to_owned();
    let op = run(
        &api,
        "delete",
        BASE,
        "/api/v1/infrastructure/tenants/acme",
        &op_tok,
        None,
    )
    .await;
    assert_eq!(op["state"], "succeeded", "{op}");
    assert_eq!(entity("acme").await["status"], "DEPROVISIONED");
    assert!(
        !env.path()
            .join(format!("data/terraform/tenants/{id}.tfstate"))
            .exists()
    );
    assert!(
        !env.path()
            .join(format!(
                "data/storage/eu-west/tenants/{id}/infrastructure.json"
            ))
            .exists()
    );

    let transitions = api
        .get(
            "/api/v1/infrastructure/tenants/{tenantId}/transitions",
            &format!("/api/v1/infrastructure/tenants/{id}/transitions"),
            &op_tok,
        )
        .await;
    let path: Vec<(Value, Value)> = transitions
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["fromState"].clone(), t["toState"].clone()))
        .collect();
    assert_eq!(
        path,
        [
            (Value::Null, json!("PROVISIONING")),
            (json!("PROVISIONING"), json!("ACTIVE")),
            (json!("ACTIVE"), json!("UPDATING")),
            (json!("UPDATING"), json!("ACTIVE")),
            (json!("ACTIVE"), json!("DEPROVISIONING")),
            (json!("DEPROVISIONING"), json!("DEPROVISIONED")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_that_fails_to_apply_leaves_nothing_and_says_why() {
    if terraform().is_none() {
        return;
    }
    let env = make_test_env();
    env.tenantry([
        "tenant", "create", "acme", "--plan", "standard", "--region", "eu-west",
    ])
    .success();
    // One resource applies, the next fails in its provisioner: a partial apply to undo.
    let broken = env.path().join("infra/modules/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("main.tf.json"),
        json!({
            "variable": { "tenant_id": { "type": "string" } },
            "resource": { "terraform_data": {
                "database": { "input": "${var.tenant_id}" },
                "dns": {
                    "depends_on": ["terraform_data.database"],
                    "provisioner": { "local-exec": { "command": "echo 'zone quota exceeded' >&2; exit 3" } }
                }
            } }
        })
        .to_string(),
    )
    .unwrap();
    let op_tok = token(&env, "operator", "ops");
    let server = Server::start(&env, &[]);
    let api = CheckedApi::new(&server);
    let op = run(
        &api,
        "post",
        "/api/v1/infrastructure/tenants/{tenantId}/provision",
        "/api/v1/infrastructure/tenants/acme/provision",
        &op_tok,
        Some(json!({ "tier": "broken", "region": "eu-west", "cloudProvider": "LOCAL", "configuration": {} })),
    )
    .await;
    assert_eq!(op["state"], "failed", "{op}");
    let steps = phases(&op);
    assert_eq!(
        steps[2],
        ("apply".to_owned(), "failed".to_owned()),
        "{op:#}"
    );
    let infra = api
        .get(BASE, "/api/v1/infrastructure/tenants/acme", &op_tok)
        .await;
    assert_eq!(infra["status"], "FAILED");
    let error = infra["error"].as_str().unwrap();
    assert!(
        error.starts_with("apply: ") && error.contains("local-exec"),
        "{error}"
    );
    // Nothing Terraform made is left: the database resource that did apply was destroyed with
    // the state. The tenant itself is untouched.
    let id = infra["tenantId"].as_str().unwrap();
    assert!(
        !env.path()
            .join(format!("data/terraform/tenants/{id}.tfstate"))
            .exists()
    );
    assert_eq!(env.json(&["tenant", "show", "acme"])["state"], "active");
    let transitions = api
        .get(
            "/api/v1/infrastructure/tenants/{tenantId}/transitions",
            "/api/v1/infrastructure/tenants/acme/transitions",
            &op_tok,
        )
        .await;
    let last = transitions.as_array().unwrap().last().unwrap();
    assert_eq!(last["toState"], "FAILED");
    assert_eq!(last["trigger"], "rolled back");
}

/// Waits until the `serve` process has died (a failpoint crashed it).
fn wait_for_crash(server: &mut Server) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the failpoint never fired"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_any_phase_is_resumed_to_one_result() {
    if terraform().is_none() {
        return;
    }
    let env = make_test_env();
    let op_tok = token(&env, "operator", "ops");
    let client = reqwest::Client::new();
    for (i, phase) in PHASES.iter().enumerate() {
        for point in ["before", "after"] {
            let slug = format!("t{i}-{point}");
            env.tenantry([
                "tenant", "create", &slug, "--plan", "standard", "--region", "eu-west",
            ])
            .success();
            let failpoint = format!("{phase}.{point}=crash");
            let mut server = Server::start(&env, &[("TENANTRY_FAILPOINTS", &failpoint)]);
            // The answer may or may not make it out before the worker crashes the process.
            let _ = client
                .post(server.url(&format!("/api/v1/infrastructure/tenants/{slug}/provision")))
                .bearer_auth(&op_tok)
                .json(&json!({ "tier": "professional", "region": "eu-west",
                               "cloudProvider": "LOCAL", "configuration": configuration(10) }))
                .send()
                .await;
            wait_for_crash(&mut server);
            drop(server);

            let resumed = env.json(&["ops", "resume"]);
            assert_eq!(
                resumed.as_array().unwrap().len(),
                1,
                "{failpoint}: {resumed}"
            );
            assert_eq!(resumed[0]["state"], "succeeded", "{failpoint}: {resumed}");
            let id = env.json(&["tenant", "show", &slug])["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let server = Server::start(&env, &[]);
            let api = CheckedApi::new(&server);
            let infra = api
                .get(
                    BASE,
                    &format!("/api/v1/infrastructure/tenants/{slug}"),
                    &op_tok,
                )
                .await;
            assert_eq!(infra["status"], "ACTIVE", "{failpoint}: {infra}");
            assert_eq!(infra["outputs"]["storage_gb"], 10, "{failpoint}: {infra}");
            let state = env
                .path()
                .join(format!("data/terraform/tenants/{id}.tfstate"));
            let resources: Value =
                serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
            assert_eq!(
                resources["resources"].as_array().unwrap().len(),
                3,
                "{failpoint}: each resource exactly once"
            );
            let transitions = api
                .get(
                    "/api/v1/infrastructure/tenants/{tenantId}/transitions",
                    &format!("/api/v1/infrastructure/tenants/{slug}/transitions"),
                    &op_tok,
                )
                .await;
            let to: Vec<&str> = transitions
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["toState"].as_str().unwrap())
                .collect();
            assert_eq!(to, ["PROVISIONING", "ACTIVE"], "{failpoint}");
        }
    }
}

/// Changes what the state says `terraform_data.storage` holds, as a hand edit would.
fn edit_state(path: &std::path::Path, gb: u64) {
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    state["serial"] = json!(state["serial"].as_u64().unwrap() + 1);
    for resource in state["resources"].as_array_mut().unwrap() {
        if resource["name"] == "storage" {
            let attributes = &mut resource["instances"][0]["attributes"];
            attributes["input"]["value"]["gb"] = json!(gb);
            attributes["output"]["value"]["gb"] = json!(gb);
        }
    }
    std::fs::write(path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_found_by_one_reconcile_pass_and_gone_at_the_next() {
    if terraform().is_none() {
        return;
    }
    let env = make_test_env();
    env.tenantry([
        "tenant", "create", "acme", "--plan", "standard", "--region", "eu-west",
    ])
    .success();
    let op_tok = token(&env, "operator", "ops");
    {
        let server = Server::start(&env, &[]);
        let api = CheckedApi::new(&server);
        let op = run(
            &api,
            "post",
            "/api/v1/infrastructure/tenants/{tenantId}/provision",
            "/api/v1/infrastructure/tenants/acme/provision",
            &op_tok,
            Some(
                json!({ "tier": "professional", "region": "eu-west", "cloudProvider": "LOCAL",
                         "configuration": configuration(100) }),
            ),
        )
        .await;
        assert_eq!(op["state"], "succeeded", "{op}");
    }
    let id = env.json(&["tenant", "show", "acme"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = env
        .path()
        .join(format!("data/terraform/tenants/{id}.tfstate"));

    let clean = env.json(&["reconcile"]);
    assert_eq!(clean["infrastructure"][0]["drifted"], false, "{clean}");

    edit_state(&state, 999);
    let looked = env.json(&["reconcile", "--dry-run"]);
    assert_eq!(looked["infrastructure"][0]["drifted"], true, "{looked}");
    assert_eq!(
        looked["infrastructure"][0]["repair"],
        Value::Null,
        "a dry run repairs nothing"
    );

    let repaired = env.json(&["reconcile"]);
    assert_eq!(
        (
            &repaired["infrastructure"][0]["drifted"],
            &repaired["infrastructure"][0]["outcome"]
        ),
        (&json!(true), &json!("succeeded")),
        "{repaired}"
    );
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let storage = after["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "storage")
        .unwrap();
    assert_eq!(
        storage["instances"][0]["attributes"]["input"]["value"]["gb"],
        100
    );
    let again = env.json(&["reconcile"]);
    assert_eq!(again["infrastructure"][0]["drifted"], false, "{again}");

    // A suspended tenant's infrastructure is left as it is (by default).
    env.tenantry(["tenant", "suspend", "acme"]).success();
    edit_state(&state, 555);
    let skipped = env.json(&["reconcile"]);
    assert!(
        skipped["infrastructure"].as_array().unwrap().is_empty(),
        "{skipped}"
    );

    let events = env.json(&["events", "list", "--tenant", "acme"]);
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .filter(|t| !t.starts_with("Tenant"))
        .collect();
    assert_eq!(
        types,
        [
            "InfrastructureReady",
            "DriftDetected",
            "InfrastructureReady",
            "DriftRepaired"
        ]
    );
}
