//! The `process` runtime, the embedded default: each dedicated tenant's application runs as a
//! local process of its own, on a port of its own, with the tenant's environment.
//!
//! Processes outlive the command that started them (a `tenantry tenant create` ends; the
//! tenant's storefront keeps serving), so the runtime keeps what it started in a folder per
//! tenant — `state.json` (process id, port) and the process's log — and observes the process
//! afresh each time: a process id counts as the tenant's only while `/proc/<pid>/cmdline` still
//! names the tenant (process ids are reused), and as healthy only while it answers its health
//! check. A restarted tenant gets its old port back when it is free.

use crate::{ComputeError, ComputeRuntime, ComputeSpec, ComputeState, ComputeStatus, Result};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tenantry_core::TenantId;

/// How many times a process that exits while starting is started.
const START_ATTEMPTS: u32 = 3;

/// The path every process answers its health check on.
pub const HEALTH_PATH: &str = "/healthz";

/// How to start a tenant's process.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Where each tenant's state and log are kept.
    pub dir: PathBuf,
    /// The program to run (the `tenantry` binary).
    pub program: PathBuf,
    /// Arguments before the tenant's own: `storefront`, `--config …`.
    pub args: Vec<OsString>,
    /// The address processes listen on.
    pub host: String,
    /// How long a starting process has to answer its health check.
    pub health_timeout: Duration,
}

/// What the runtime remembers of a tenant's process.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProcessRecord {
    pid: Option<u32>,
    port: u16,
    started_at: Option<DateTime<Utc>>,
}

/// Runs dedicated tenants as local processes.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    options: ProcessOptions,
    http: reqwest::Client,
}

impl ProcessRuntime {
    pub fn new(options: ProcessOptions) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client without custom TLS builds");
        Self { options, http }
    }

    fn tenant_dir(&self, tenant: TenantId) -> PathBuf {
        self.options.dir.join(tenant.to_string())
    }

    fn record_path(&self, tenant: TenantId) -> PathBuf {
        self.tenant_dir(tenant).join("state.json")
    }

    /// The tenant's process log.
    pub fn log_path(&self, tenant: TenantId) -> PathBuf {
        self.tenant_dir(tenant).join("process.log")
    }

    fn endpoint(&self, port: u16) -> String {
        format!("http://{}:{port}", self.options.host)
    }

    async fn read_record(&self, tenant: TenantId) -> Result<Option<ProcessRecord>> {
        let path = self.record_path(tenant);
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ComputeError::Runtime(format!(
                    "{} is not a process record ({e}): remove it and reconcile",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ComputeError::io(format!("reading {}", path.display()))(e)),
        }
    }

    async fn write_record(&self, tenant: TenantId, record: &ProcessRecord) -> Result<()> {
        let dir = self.tenant_dir(tenant);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(ComputeError::io(format!("creating {}", dir.display())))?;
        let path = self.record_path(tenant);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(ComputeError::io(format!("writing {}", tmp.display())))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(ComputeError::io(format!("writing {}", path.display())))
    }

    /// The process id of the tenant's live process, if it has one.
    async fn live_pid(&self, tenant: TenantId) -> Result<Option<(u32, u16)>> {
        Ok(self.read_record(tenant).await?.and_then(|r| {
            r.pid
                .filter(|pid| runs_for(*pid, tenant))
                .map(|pid| (pid, r.port))
        }))
    }

    async fn healthy(&self, port: u16) -> std::result::Result<(), String> {
        let url = format!("{}{HEALTH_PATH}", self.endpoint(port));
        match self.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("{url} answered {}", r.status())),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    /// A port for the tenant: its previous one when free, else one the system picks.
    fn pick_port(&self, previous: Option<u16>) -> Result<u16> {
        if let Some(port) = previous
            && TcpListener::bind((self.options.host.as_str(), port)).is_ok()
        {
            return Ok(port);
        }
        let listener = TcpListener::bind((self.options.host.as_str(), 0)).map_err(
            ComputeError::io(format!("finding a free port on {}", self.options.host)),
        )?;
        listener
            .local_addr()
            .map(|a| a.port())
            .map_err(ComputeError::io("reading a port"))
    }

    /// Starts the tenant's process; returns its process id and port.
    async fn start(&self, spec: &ComputeSpec, previous: Option<u16>) -> Result<(u32, u16)> {
        let port = self.pick_port(previous)?;
        let dir = self.tenant_dir(spec.tenant);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(ComputeError::io(format!("creating {}", dir.display())))?;
        let log_path = self.log_path(spec.tenant);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(ComputeError::io(format!("opening {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(ComputeError::io(format!("opening {}", log_path.display())))?;
        let mut command = tokio::process::Command::new(&self.options.program);
        command
            .args(&self.options.args)
            .arg("--tenant")
            .arg(spec.tenant.to_string())
            .arg("--listen")
            .arg(format!("{}:{port}", self.options.host))
            .envs(&spec.env)
            .envs(
                spec.secret_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.expose_secret())),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C meant for the command that started it is not
            // meant for the tenant.
            .process_group(0);
        let mut child = command.spawn().map_err(ComputeError::io(format!(
            "starting {} for tenant {}",
            self.options.program.display(),
            spec.slug
        )))?;
        let pid = child.id().ok_or_else(|| {
            ComputeError::Runtime(format!("tenant {}'s process exited at once", spec.slug))
        })?;
        // Reap it when it exits, so that a dead process does not linger as a zombie that
        // still looks alive.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        self.write_record(
            spec.tenant,
            &ProcessRecord {
                pid: Some(pid),
                port,
                started_at: Some(Utc::now()),
            },
        )
        .await?;
        tracing::info!(tenant = %spec.tenant, slug = spec.slug, pid, port, "started the tenant's process");
        Ok((pid, port))
    }

    /// Starts the tenant's process and waits until it is healthy; a process that exits while
    /// starting (its port taken meanwhile, its database briefly out of connections) is
    /// started again, up to [`START_ATTEMPTS`] times.
    async fn start_healthy(&self, spec: &ComputeSpec) -> Result<(u32, u16)> {
        let mut attempt = 1;
        loop {
            let previous = self.read_record(spec.tenant).await?.map(|r| r.port);
            let (pid, port) = self.start(spec, previous).await?;
            match self.await_healthy(spec.tenant, pid, port).await {
                Ok(()) => return Ok((pid, port)),
                Err(e) if attempt < START_ATTEMPTS && !runs_for(pid, spec.tenant) => {
                    tracing::warn!(tenant = %spec.tenant, attempt, error = %e, "the tenant's process exited while starting; starting it again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the tenant's process answers its health check.
    async fn await_healthy(&self, tenant: TenantId, pid: u32, port: u16) -> Result<()> {
        let deadline = Instant::now() + self.options.health_timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if !runs_for(pid, tenant) {
                return Err(ComputeError::Unhealthy {
                    tenant,
                    secs: self.options.health_timeout.as_secs(),
                    detail: format!(
                        "the process exited; its log ({}) ends with: {}",
                        self.log_path(tenant).display(),
                        log_tail(&self.log_path(tenant))
                    ),
                });
            }
            match self.healthy(port).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ComputeError::Unhealthy {
            tenant,
            secs: self.options.health_timeout.as_secs(),
            detail: last,
        })
    }
}

#[async_trait::async_trait]
impl ComputeRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn ensure_running(&self, spec: &ComputeSpec) -> Result<ComputeStatus> {
        let (pid, port) = match self.live_pid(spec.tenant).await? {
            Some((pid, port)) => {
                self.await_healthy(spec.tenant, pid, port).await?;
                (pid, port)
            }
            None => self.start_healthy(spec).await?,
        };
        Ok(ComputeStatus {
            state: ComputeState::Running,
            endpoint: Some(self.endpoint(port)),
            detail: Some(format!("pid {pid}")),
        })
    }

    async fn stop(&self, tenant: TenantId) -> Result<()> {
        let Some(mut record) = self.read_record(tenant).await? else {
            return Ok(());
        };
        if let Some(pid) = record.pid.filter(|pid| runs_for(*pid, tenant)) {
            terminate(pid, tenant).await;
            tracing::info!(%tenant, pid, "stopped the tenant's process");
        }
        record.pid = None;
        record.started_at = None;
        self.write_record(tenant, &record).await
    }

    async fn remove(&self, tenant: TenantId) -> Result<()> {
        self.stop(tenant).await?;
        let dir = self.tenant_dir(tenant);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ComputeError::io(format!("removing {}", dir.display()))(e)),
        }
    }

    async fn status(&self, tenant: TenantId) -> Result<ComputeStatus> {
        let Some(record) = self.read_record(tenant).await? else {
            return Ok(ComputeStatus::absent());
        };
        let endpoint = Some(self.endpoint(record.port));
        let Some(pid) = record.pid.filter(|pid| runs_for(*pid, tenant)) else {
            return Ok(ComputeStatus {
                state: ComputeState::Stopped,
                endpoint,
                detail: None,
            });
        };
        Ok(match self.healthy(record.port).await {
            Ok(()) => ComputeStatus {
                state: ComputeState::Running,
                endpoint,
                detail: Some(format!("pid {pid}")),
            },
            Err(e) => ComputeStatus {
                state: ComputeState::Unhealthy,
                endpoint,
                detail: Some(format!("pid {pid}: {e}")),
            },
        })
    }
}

/// Whether `pid` is a live process started for `tenant` (its command line names the tenant).
/// A zombie's command line is empty, so a process that died counts as gone.
fn runs_for(pid: u32, tenant: TenantId) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let tenant = tenant.to_string();
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == tenant.as_bytes())
}

/// SIGTERM, a grace period, then SIGKILL.
async fn terminate(pid: u32, tenant: TenantId) {
    use nix::sys::signal::{Signal, kill};
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    let pid_of = nix::unistd::Pid::from_raw(raw);
    let _ = kill(pid_of, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !runs_for(pid, tenant) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = kill(pid_of, Signal::SIGKILL);
}

/// The last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(nothing)".into()
    } else {
        tail
    }
}
