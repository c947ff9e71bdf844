//! Terraform (or OpenTofu) as an infrastructure driver: a workspace per tenant, the tenant's
//! root module rendered as JSON around the tier's module, state kept under the tenant's state
//! key, plans saved and summarised before they are applied, and drift found by a refresh-only
//! plan.
//!
//! Every run is non-interactive (`-input=false`), uses a shared plugin cache, and is bounded:
//! one Terraform process per tenant at a time (a per-tenant lock) and at most `parallelism`
//! processes at once (a semaphore). Terraform's output is passed, line by line, to the caller,
//! which puts it in the operation's progress log.

use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tenantry_core::TenantId;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// What can go wrong driving Terraform.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TerraformError {
    /// The configured binary is missing or does not run.
    #[error(
        "the Terraform binary {binary:?} cannot be run ({problem}); install Terraform or OpenTofu, or set infrastructure.terraform.binary"
    )]
    Binary { binary: String, problem: String },
    /// A Terraform command failed; its own error output is kept.
    #[error("terraform {command} failed for tenant {tenant}: {stderr}")]
    Failed {
        command: &'static str,
        tenant: String,
        stderr: String,
    },
    /// Preparing the workspace failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Terraform printed something unexpected.
    #[error("could not read terraform's {what}: {problem}")]
    Output { what: &'static str, problem: String },
}

/// How the driver is set up.
#[derive(Debug, Clone)]
pub struct TerraformConfig {
    /// `terraform` or `tofu`, or a path to either.
    pub binary: String,
    /// Where tenant workspaces are kept (`<root>/<tenant id>/`).
    pub workspaces: PathBuf,
    /// The local backend's directory; state files are `<root>/tenants/<tenant id>.tfstate`.
    pub state_root: PathBuf,
    /// Shared provider plugin cache.
    pub plugin_cache: PathBuf,
    /// At most this many Terraform processes at once.
    pub parallelism: usize,
    /// A backend other than the local one: its type and settings; each tenant's state key is
    /// added as `key` (`prefix` for `gcs`).
    pub backend: Option<(String, serde_json::Map<String, Value>)>,
}

/// The resources a plan would add, change and destroy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    /// `(address, action)` for every resource with an action.
    pub resources: Vec<(String, String)>,
    /// The saved plan file, applied exactly by [`Terraform::apply`].
    #[serde(skip)]
    pub plan_file: PathBuf,
}

impl PlanSummary {
    pub fn is_empty(&self) -> bool {
        self.add + self.change + self.destroy == 0
    }
}

/// The Terraform driver.
pub struct Terraform {
    config: TerraformConfig,
    version: String,
    running: Arc<Semaphore>,
    tenant_locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Terraform {
    /// Checks that the binary runs (so a missing one is reported at start, not mid-operation)
    /// and prepares the shared directories.
    pub async fn new(config: TerraformConfig) -> Result<Self, TerraformError> {
        let out = Command::new(&config.binary)
            .args(["version", "-json"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| TerraformError::Binary {
                binary: config.binary.clone(),
                problem: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(TerraformError::Binary {
                binary: config.binary.clone(),
                problem: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let version = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["terraform_version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        for dir in [
            &config.workspaces,
            &config.plugin_cache,
            &config.state_root.join("tenants"),
        ] {
            std::fs::create_dir_all(dir).map_err(|source| TerraformError::Io {
                action: "creating",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(Self {
            running: Arc::new(Semaphore::new(config.parallelism.max(1))),
            config,
            version,
            tenant_locks: Mutex::default(),
        })
    }

    /// The binary's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The tenant's state key, relative to the backend: `tenants/<tenant id>.tfstate`.
    pub fn state_key(tenant: TenantId) -> String {
        format!("tenants/{tenant}.tfstate")
    }

    /// The tenant's state file (local backend).
    pub fn state_file(&self, tenant: TenantId) -> PathBuf {
        self.config.state_root.join(Self::state_key(tenant))
    }

    /// Where the tenant's last plan is saved (what [`Terraform::apply`] applies).
    pub fn plan_file(&self, tenant: TenantId) -> PathBuf {
        self.workspace(tenant).join("tenant.tfplan")
    }

    fn workspace(&self, tenant: TenantId) -> PathBuf {
        self.config.workspaces.join(tenant.to_string())
    }

    fn lock_of(&self, tenant: TenantId) -> Arc<tokio::sync::Mutex<()>> {
        self.tenant_locks
            .lock()
            .expect("tenant lock map")
            .entry(tenant)
            .or_default()
            .clone()
    }

    /// Writes the tenant's root module: the tier's module with the tenant's variables, every
    /// output of the module re-exported, and the local backend at the tenant's state key.
    pub fn render(
        &self,
        tenant: TenantId,
        module: &Path,
        variables: &Value,
        outputs: &[String],
    ) -> Result<PathBuf, TerraformError> {
        let dir = self.workspace(tenant);
        self.render_in(&dir, tenant, module, variables, outputs)?;
        Ok(dir)
    }

    fn render_in(
        &self,
        dir: &Path,
        tenant: TenantId,
        module: &Path,
        variables: &Value,
        outputs: &[String],
    ) -> Result<(), TerraformError> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| TerraformError::Io {
            action: "creating",
            path: dir.clone(),
            source,
        })?;
        let mut module_block = json!({ "source": module.display().to_string() });
        if let Some(vars) = variables.as_object() {
            for (k, v) in vars {
                module_block[k] = v.clone();
            }
        }
        let output_blocks: serde_json::Map<String, Value> = outputs
            .iter()
            .map(|o| {
                (
                    o.clone(),
                    json!({ "value": format!("${{module.tenant.{o}}}") }),
                )
            })
            .collect();
        let mut root = json!({
            "terraform": { "backend": self.backend_block(tenant) },
            "module": { "tenant": module_block },
        });
        // Terraform refuses an empty `output` block.
        if !output_blocks.is_empty() {
            root["output"] = Value::Object(output_blocks);
        }
        let path = dir.join("main.tf.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&root).expect("json")).map_err(
            |source| TerraformError::Io {
                action: "writing",
                path: path.clone(),
                source,
            },
        )?;
        Ok(())
    }

    /// The root module's backend: the local one at [`Terraform::state_file`], or the configured
    /// one with the tenant's state key.
    fn backend_block(&self, tenant: TenantId) -> Value {
        match &self.config.backend {
            None => json!({ "local": { "path": self.state_file(tenant).display().to_string() } }),
            Some((kind, settings)) => {
                let mut settings = settings.clone();
                let (name, key) = match kind.as_str() {
                    "gcs" => ("prefix", format!("tenants/{tenant}")),
                    _ => ("key", Self::state_key(tenant)),
                };
                settings.insert(name.to_owned(), key.into());
                json!({ kind.clone(): settings })
            }
        }
    }

    /// Whether the tenant has a state with resources in it: the local file, or for another
    /// backend what `terraform state list` finds.
    pub async fn has_state(&self, tenant: TenantId) -> Result<bool, TerraformError> {
        if self.config.backend.is_none() {
            return Ok(self.state_file(tenant).exists());
        }
        let found = std::sync::Mutex::new(false);
        let log = |_: &str| *found.lock().expect("flag") = true;
        let (code, _) = self
            .run(tenant, "state list", &["state", "list", "-no-color"], &log)
            .await?;
        Ok(code == 0 && *found.lock().expect("flag"))
    }

    /// Runs terraform in the tenant's workspace, streaming its output lines to `log`.
    async fn run(
        &self,
        tenant: TenantId,
        command: &'static str,
        args: &[&str],
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(i32, String), TerraformError> {
        self.run_in(&self.workspace(tenant), tenant, command, args, log)
            .await
    }

    /// Runs terraform in `dir` for `tenant`, streaming its output lines to `log`.
    async fn run_in(
        &self,
        dir: &Path,
        tenant: TenantId,
        command: &'static str,
        args: &[&str],
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(i32, String), TerraformError> {
        let _slot = self
            .running
            .acquire()
            .await
            .expect("semaphore is never closed");
        let cli_config = self.config.workspaces.join("terraformrc");
        if !cli_config.exists() {
            let text = format!("plugin_cache_dir = {:?}\n", self.config.plugin_cache);
            std::fs::write(&cli_config, text).map_err(|source| TerraformError::Io {
                action: "writing",
                path: cli_config.clone(),
                source,
            })?;
        }
        let mut child = Command::new(&self.config.binary)
            .args(args)
            .current_dir(dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_CLI_CONFIG_FILE", &cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TerraformError::Binary {
                binary: self.config.binary.clone(),
                problem: e.to_string(),
            })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut all = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.trim().is_empty() {
                log(&line);
            }
        }
        let status = child.wait().await.map_err(|e| TerraformError::Binary {
            binary: self.config.binary.clone(),
            problem: e.to_string(),
        })?;
        let stderr = errors.await.unwrap_or_default();
        let code = status.code().unwrap_or(-1);
        tracing::debug!(%tenant, command, code, "terraform finished");
        Ok((code, stderr))
    }

    async fn run_ok(
        &self,
        tenant: TenantId,
        command: &'static str,
        args: &[&str],
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(), TerraformError> {
        Self::succeeded(tenant, command, self.run(tenant, command, args, log).await?)
    }

    fn succeeded(
        tenant: TenantId,
        command: &'static str,
        (code, stderr): (i32, String),
    ) -> Result<(), TerraformError> {
        match (code, stderr) {
            (0, _) => Ok(()),
            (_, stderr) => Err(TerraformError::Failed {
                command,
                tenant: tenant.to_string(),
                stderr: stderr.trim().to_owned(),
            }),
        }
    }

    /// `terraform init` then `terraform plan -out`, summarised. `destroy` plans the removal of
    /// everything instead.
    pub async fn plan(
        &self,
        tenant: TenantId,
        destroy: bool,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<PlanSummary, TerraformError> {
        let lock = self.lock_of(tenant);
        let _guard = lock.lock().await;
        self.run_ok(tenant, "init", &["init", "-input=false", "-no-color"], log)
            .await?;
        let plan_file = self.plan_file(tenant);
        let out = format!("-out={}", plan_file.display());
        let mut args = vec!["plan", "-input=false", "-no-color", &out];
        if destroy {
            args.push("-destroy");
        }
        self.run_ok(tenant, "plan", &args, log).await?;
        let json = self.show_json(tenant, &plan_file).await?;
        let mut summary = summarise(&json);
        summary.plan_file = plan_file;
        Ok(summary)
    }

    async fn show_json(&self, tenant: TenantId, plan: &Path) -> Result<Value, TerraformError> {
        self.show_json_in(&self.workspace(tenant), tenant, plan)
            .await
    }

    async fn show_json_in(
        &self,
        dir: &Path,
        tenant: TenantId,
        plan: &Path,
    ) -> Result<Value, TerraformError> {
        let _slot = self
            .running
            .acquire()
            .await
            .expect("semaphore is never closed");
        let out = Command::new(&self.config.binary)
            .args(["show", "-json", "-no-color"])
            .arg(plan)
            .current_dir(dir)
            .env(
                "TF_CLI_CONFIG_FILE",
                self.config.workspaces.join("terraformrc"),
            )
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| TerraformError::Binary {
                binary: self.config.binary.clone(),
                problem: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(TerraformError::Failed {
                command: "show",
                tenant: tenant.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        serde_json::from_slice(&out.stdout).map_err(|e| TerraformError::Output {
            what: "plan",
            problem: e.to_string(),
        })
    }

    /// What applying `module` with `variables` would change for the tenant, planned against its
    /// current state in a scratch workspace that is removed afterwards: the tenant's workspace,
    /// saved plan and state are left as they were (the state is only read, without its lock),
    /// so a dry run never disturbs an operation under way.
    pub async fn preview(
        &self,
        tenant: TenantId,
        module: &Path,
        variables: &Value,
        outputs: &[String],
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<PlanSummary, TerraformError> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = self
            .config
            .workspaces
            .join("previews")
            .join(format!("{tenant}-{}-{nonce}", std::process::id()));
        let planned = async {
            self.render_in(&dir, tenant, module, variables, outputs)?;
            let init = ["init", "-input=false", "-no-color"];
            Self::succeeded(
                tenant,
                "init",
                self.run_in(&dir, tenant, "init", &init, log).await?,
            )?;
            let plan_file = dir.join("preview.tfplan");
            let out = format!("-out={}", plan_file.display());
            let args = ["plan", "-input=false", "-no-color", "-lock=false", &out];
            Self::succeeded(
                tenant,
                "plan",
                self.run_in(&dir, tenant, "plan", &args, log).await?,
            )?;
            Ok(summarise(
                &self.show_json_in(&dir, tenant, &plan_file).await?,
            ))
        }
        .await;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a preview workspace");
        }
        planned
    }

    /// Applies exactly the saved plan and returns the root module's outputs (name → value).
    pub async fn apply(
        &self,
        tenant: TenantId,
        plan: &PlanSummary,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<Value, TerraformError> {
        let lock = self.lock_of(tenant);
        let _guard = lock.lock().await;
        let file = plan.plan_file.display().to_string();
        self.run_ok(
            tenant,
            "apply",
            &["apply", "-input=false", "-no-color", "-auto-approve", &file],
            log,
        )
        .await?;
        self.outputs(tenant).await
    }

    /// The root module's outputs, as `name → value`.
    pub async fn outputs(&self, tenant: TenantId) -> Result<Value, TerraformError> {
        let out = Command::new(&self.config.binary)
            .args(["output", "-json", "-no-color"])
            .current_dir(self.workspace(tenant))
            .env(
                "TF_CLI_CONFIG_FILE",
                self.config.workspaces.join("terraformrc"),
            )
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| TerraformError::Binary {
                binary: self.config.binary.clone(),
                problem: e.to_string(),
            })?;
        let raw: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| TerraformError::Output {
                what: "outputs",
                problem: e.to_string(),
            })?;
        Ok(raw
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v["value"].clone()))
                    .collect::<serde_json::Map<_, _>>()
            })
            .map(Value::Object)
            .unwrap_or(Value::Null))
    }

    /// Whether the infrastructure differs from what the tenant's configuration declares: a plan
    /// with `-detailed-exitcode` (2 means a difference). Unlike `-refresh-only`, this also
    /// catches a state edited by hand, which providers that only echo their state (such as
    /// `terraform_data`) would not report on refresh.
    pub async fn drifted(
        &self,
        tenant: TenantId,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<bool, TerraformError> {
        let lock = self.lock_of(tenant);
        let _guard = lock.lock().await;
        let args = [
            "plan",
            "-detailed-exitcode",
            "-input=false",
            "-no-color",
            "-lock-timeout=30s",
        ];
        match self.run(tenant, "plan", &args, log).await? {
            (0, _) => Ok(false),
            (2, _) => Ok(true),
            (_, stderr) => Err(TerraformError::Failed {
                command: "plan",
                tenant: tenant.to_string(),
                stderr: stderr.trim().to_owned(),
            }),
        }
    }

    /// Destroys everything of the tenant's and removes its state and workspace.
    pub async fn destroy(
        &self,
        tenant: TenantId,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(), TerraformError> {
        if !self.workspace(tenant).join("main.tf.json").exists() {
            return Ok(());
        }
        let plan = self.plan(tenant, true, log).await?;
        self.apply(tenant, &plan, log).await?;
        for path in [
            self.state_file(tenant),
            self.state_file(tenant).with_extension("tfstate.backup"),
        ] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(TerraformError::Io {
                        action: "removing",
                        path,
                        source: e,
                    });
                }
                _ => {}
            }
        }
        let dir = self.workspace(tenant);
        std::fs::remove_dir_all(&dir).map_err(|source| TerraformError::Io {
            action: "removing",
            path: dir,
            source,
        })?;
        Ok(())
    }
}

/// Counts a plan's actions from `terraform show -json`.
pub fn summarise(plan: &Value) -> PlanSummary {
    let mut s = PlanSummary::default();
    for rc in plan["resource_changes"].as_array().into_iter().flatten() {
        let actions: Vec<&str> = rc["change"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let action = match actions.as_slice() {
            ["create"] => {
                s.add += 1;
                "create"
            }
            ["update"] => {
                s.change += 1;
                "update"
            }
            ["delete"] => {
                s.destroy += 1;
                "delete"
            }
            ["delete", "create"] | ["create", "delete"] => {
                s.add += 1;
                s.destroy += 1;
                "replace"
            }
            _ => continue,
        };
        s.resources.push((
            rc["address"].as_str().unwrap_or_default().to_owned(),
            action.to_owned(),
        ));
    }
    s
}
