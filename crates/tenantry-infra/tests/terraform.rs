//! The Terraform driver against the real binary, with a module built only from the built-in
//! `terraform_data` resource (providers cannot be downloaded here).

use serde_json::json;
use std::path::Path;
use tenantry_core::TenantId;
use tenantry_infra::terraform::{Terraform, TerraformConfig};

const MODULE: &str = r#"{
  "variable": {
    "tenant_id": {"type": "string"},
    "storage_gb": {"type": "number"},
    "enable_ha": {"type": "bool", "default": false}
  },
  "resource": {
    "terraform_data": {
      "database": {"input": {"tenant": "${var.tenant_id}", "ha": "${var.enable_ha}"}},
      "storage": {"input": {"gb": "${var.storage_gb}"}}
    }
  },
  "output": {
    "database_endpoint": {"value": "db-${terraform_data.database.output.tenant}.internal"},
    "storage_gb": {"value": "${terraform_data.storage.output.gb}"}
  }
}"#;

async fn driver(root: &Path) -> Option<Terraform> {
    let module = root.join("modules/standard");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(module.join("main.tf.json"), MODULE).unwrap();
    let config = TerraformConfig {
        binary: std::env::var("TENANTRY_TERRAFORM").unwrap_or_else(|_| "terraform".into()),
        workspaces: root.join("workspaces"),
        state_root: root.join("state"),
        plugin_cache: root.join("plugins"),
        parallelism: 2,
        backend: None,
    };
    match Terraform::new(config).await {
        Ok(t) => Some(t),
        Err(e) => tenantry_testkit::missing(&format!("terraform ({e})")),
    }
}

fn vars(tenant: TenantId, gb: u32) -> serde_json::Value {
    json!({ "tenant_id": tenant.to_string(), "storage_gb": gb })
}

#[tokio::test]
async fn plan_apply_update_drift_and_destroy() {
    let root = tempfile::tempdir().unwrap();
    let Some(tf) = driver(root.path()).await else {
        return;
    };
    let module = root.path().join("modules/standard");
    let outputs = ["database_endpoint".to_string(), "storage_gb".to_string()];
    let tenant = TenantId::generate();
    let log = |_: &str| {};

    tf.render(tenant, &module, &vars(tenant, 100), &outputs)
        .unwrap();
    let plan = tf.plan(tenant, false, &log).await.unwrap();
    assert_eq!((plan.add, plan.change, plan.destroy), (2, 0, 0));
    assert!(
        plan.resources
            .iter()
            .any(|(a, _)| a == "module.tenant.terraform_data.storage")
    );
    let out = tf.apply(tenant, &plan, &log).await.unwrap();
    assert_eq!(out["storage_gb"], 100);
    assert_eq!(out["database_endpoint"], format!("db-{tenant}.internal"));
    assert!(tf.state_file(tenant).exists());
    assert!(!tf.drifted(tenant, &log).await.unwrap());

    // A changed configuration plans exactly one change.
    tf.render(tenant, &module, &vars(tenant, 200), &outputs)
        .unwrap();
    let plan = tf.plan(tenant, false, &log).await.unwrap();
    assert_eq!((plan.add, plan.change, plan.destroy), (0, 1, 0));
    assert_eq!(
        tf.apply(tenant, &plan, &log).await.unwrap()["storage_gb"],
        200
    );

    // A hand-edited state is drift.
    let path = tf.state_file(tenant);
    let state = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, state.replace("\"gb\": 200", "\"gb\": 7")).unwrap();
    assert!(tf.drifted(tenant, &log).await.unwrap());
    let repair = tf.plan(tenant, false, &log).await.unwrap();
    tf.apply(tenant, &repair, &log).await.unwrap();
    assert!(!tf.drifted(tenant, &log).await.unwrap());

    tf.destroy(tenant, &log).await.unwrap();
    assert!(!tf.state_file(tenant).exists());
}

#[tokio::test]
async fn two_tenants_at_once_never_share_a_workspace_or_state() {
    let root = tempfile::tempdir().unwrap();
    let Some(tf) = driver(root.path()).await else {
        return;
    };
    let module = root.path().join("modules/standard");
    let outputs = ["storage_gb".to_string()];
    let (a, b) = (TenantId::generate(), TenantId::generate());
    tf.render(a, &module, &vars(a, 10), &outputs).unwrap();
    tf.render(b, &module, &vars(b, 20), &outputs).unwrap();
    let log = |_: &str| {};
    let run = |t| {
        let tf = &tf;
        async move {
            let plan = tf.plan(t, false, &log).await.unwrap();
            tf.apply(t, &plan, &log).await.unwrap()
        }
    };
    let (oa, ob) = tokio::join!(run(a), run(b));
    assert_eq!(
        (oa["storage_gb"].clone(), ob["storage_gb"].clone()),
        (json!(10), json!(20))
    );
    assert_ne!(tf.state_file(a), tf.state_file(b));
    assert!(tf.state_file(a).exists() && tf.state_file(b).exists());
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let config = TerraformConfig {
        binary: "/nonexistent/terraform".into(),
        workspaces: root.path().join("w"),
        state_root: root.path().join("s"),
        plugin_cache: root.path().join("p"),
        parallelism: 1,
        backend: None,
    };
    let err = Terraform::new(config).await.err().expect("refused");
    assert!(
        err.to_string().contains("install Terraform or OpenTofu"),
        "{err}"
    );
}

#[tokio::test]
async fn a_configured_backend_gets_the_tenant_s_state_key() {
    let root = tempfile::tempdir().unwrap();
    let module = root.path().join("modules/standard");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(module.join("main.tf.json"), MODULE).unwrap();
    let settings = json!({ "bucket": "tenant-states", "region": "eu-west-1" });
    let config = TerraformConfig {
        binary: std::env::var("TENANTRY_TERRAFORM").unwrap_or_else(|_| "terraform".into()),
        workspaces: root.path().join("workspaces"),
        state_root: root.path().join("state"),
        plugin_cache: root.path().join("plugins"),
        parallelism: 1,
        backend: Some(("s3".into(), settings.as_object().unwrap().clone())),
    };
    let tf = match Terraform::new(config).await {
        Ok(t) => t,
        Err(e) => {
            tenantry_testkit::missing::<()>(&format!("terraform ({e})"));
            return;
        }
    };
    let tenant = TenantId::generate();
    let dir = tf.render(tenant, &module, &vars(tenant, 10), &[]).unwrap();
    let root_module: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("main.tf.json")).unwrap()).unwrap();
    assert_eq!(
        root_module["terraform"]["backend"]["s3"],
        json!({ "bucket": "tenant-states", "region": "eu-west-1", "key": format!("tenants/{tenant}.tfstate") })
    );
    // Terraform itself accepts the block (validation needs no backend access).
    let status = std::process::Command::new("terraform")
        .args(["init", "-backend=false", "-input=false", "-no-color"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status = std::process::Command::new("terraform")
        .args(["validate", "-no-color"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}
