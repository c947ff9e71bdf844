//! Crash recovery and rollback, through `TENANTRY_FAILPOINTS`:
//!
//! - `STEP.before=crash` / `STEP.after=crash` abort the process on either side of a step's
//!   effect; `tenantry ops resume` (without the failpoint) must then finish the operation with
//!   every effect and every event exactly once.
//! - `STEP=error` fails the step for good; the provisioning must roll back, leaving the tenant
//!   `failed` with the step, and no trace of it on disk.
//!
//! The step names come from `tenantry ops steps KIND`. Each case runs in a directory of its own;
//! the cases of one test run on a few threads, and every failing case is reported at once.

mod common;

use common::*;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The two kinds of tenant every case is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// acme-like: `standard`, rows in eu-west's shared database.
    Shared,
    /// globex-like: `premium`, a database of its own.
    Database,
}

impl Kind {
    fn plan(self) -> &'static str {
        match self {
            Kind::Shared => "standard",
            Kind::Database => "premium",
        }
    }
}

const REGION: &str = "eu-west";
const SLUG: &str = "acme";
/// A neighbour in the shared database, which nothing may touch.
const NEIGHBOUR: &str = "hooli";

/// The steps of an operation kind, from the binary itself.
fn steps_of(kind: &str) -> Vec<String> {
    let out = assert_cmd::Command::cargo_bin("tenantry")
        .unwrap()
        .args(["ops", "steps", kind, "-o", "json"])
        .env_remove("TENANTRY_FAILPOINTS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let steps: Vec<String> = as_array(parse_json(&out.stdout, &["ops", "steps", kind]))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert!(!steps.is_empty(), "no {kind} steps");
    steps
}

/// Runs `check` for every case on a few threads; panics listing every case that failed.
fn run_cases<C: std::fmt::Debug + Sync>(cases: &[C], check: impl Fn(&C) + Sync) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| check(case))) {
                        let msg = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "(no message)".into());
                        failures.lock().unwrap().push(format!("{case:?}: {msg}"));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// An environment with the shared-database neighbour, and `acme` of `kind` unless `provisioned`
/// is false.
fn setup(kind: Kind, provisioned: bool) -> Env {
    let env = make_test_env();
    env.create(NEIGHBOUR, "standard", REGION, &[]);
    if provisioned {
        env.create(SLUG, kind.plan(), REGION, &[]);
    }
    env
}

fn create_args(kind: Kind) -> [&'static str; 7] {
    [
        "tenant",
        "create",
        SLUG,
        "--plan",
        kind.plan(),
        "--region",
        REGION,
    ]
}

/// Runs `args` with a crash failpoint, which must abort the process.
fn crash(env: &Env, spec: &str, args: &[&str]) {
    let out = env.tenantry_with_failpoints(spec, args);
    let stderr = stderr_of(&out);
    assert!(
        !out.status.success(),
        "`tenantry {}` with {spec} succeeded:\n{stderr}",
        args.join(" ")
    );
    assert!(
        killed_by_signal(&out),
        "`tenantry {}` with {spec} should abort, it exited {}:\n{stderr}",
        args.join(" "),
        out.status
    );
    assert!(
        stderr.contains("failpoint"),
        "the failpoint {spec} did not fire:\n{stderr}"
    );
}

/// Runs `tenantry ops resume`, which must succeed and leave no operation open; the message
/// says why not otherwise (a lease still held by the dead process, say).
fn resume_interrupted(env: &Env, spec: &str) {
    let out = env
        .command()
        .args(["ops", "resume", "-o", "json"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), stderr_of(&out));
    let open: Vec<String> = env
        .operations()
        .iter()
        .filter(|op| {
            matches!(
                op["state"].as_str(),
                Some("pending" | "running" | "rolling_back")
            )
        })
        .map(|op| {
            format!(
                "{} operation {} is still {} (lease_owner {}, lease_expires_at {})",
                op["kind"], op["id"], op["state"], op["lease_owner"], op["lease_expires_at"]
            )
        })
        .collect();
    assert!(
        out.status.success() && open.is_empty(),
        "after a crash at {spec}, `tenantry ops resume` exited {} and left {} open \
         operation(s): {}\n`ops resume` stdout: {}\n`ops resume` stderr: {}",
        out.status,
        open.len(),
        open.join("; "),
        stdout.trim(),
        stderr.trim()
    );
}

fn expect_events(env: &Env, expected: &[&str]) {
    assert_eq!(env.event_types(SLUG), expected, "events of {SLUG}");
}

fn expect_transitions(env: &Env, expected: &[&str]) {
    let got = env.transitions(SLUG);
    let mut want = Vec::new();
    let mut from: Option<String> = None;
    for to in expected {
        want.push((from.clone(), to.to_string()));
        from = Some(to.to_string());
    }
    assert_eq!(got, want, "history of {SLUG}");
}

/// `tenant_*.db` files in a shard directory.
fn database_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("tenant_"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The tenant has exactly one complete space, one admin, its seed, and its storage.
fn expect_provisioned(env: &Env, kind: Kind, tenant: &Value) {
    let id = str_of(tenant, "id");
    let shard_dir = env.shard_dir(&str_of(tenant, "shard"));
    let path = space_path(tenant);
    assert!(path.is_file(), "the space {} is missing", path.display());
    match kind {
        Kind::Database => {
            assert_eq!(
                database_files(&shard_dir),
                [database_file_name(&id)],
                "exactly one database file, the tenant's"
            );
            assert_eq!(
                rows_by_tenant(&path).keys().collect::<Vec<_>>(),
                [&id],
                "only the tenant's rows in its file"
            );
        }
        Kind::Shared => {
            assert_eq!(path.file_name().unwrap(), "shared.db");
            assert_eq!(database_files(&shard_dir), Vec::<String>::new());
            assert!(tenant_rows(&path, &id) > 0, "the tenant's rows are missing");
        }
    }
    let tables = sqlite_tables(&path);
    for table in STOREFRONT_TABLES {
        assert!(tables.contains(*table), "{table} missing: {tables:?}");
    }
    assert_eq!(admin_count(&path, &id), 1, "exactly one admin user");
    assert_eq!(
        store_settings_count(&path, &id),
        1,
        "exactly one store_settings row"
    );
    assert!(
        env.storage_folder(tenant).is_dir(),
        "the storage folder {} is missing",
        env.storage_folder(tenant).display()
    );
    assert!(tenant["schema_version"].as_i64().is_some_and(|v| v > 0));
}

/// The neighbour in the shared database is intact.
fn expect_neighbour_intact(env: &Env) {
    let n = env.show(NEIGHBOUR);
    assert_eq!(n["state"], "active");
    let path = space_path(&n);
    let id = str_of(&n, "id");
    assert_eq!(admin_count(&path, &id), 1, "the neighbour's admin");
    assert_eq!(
        store_settings_count(&path, &id),
        1,
        "the neighbour's settings"
    );
    assert!(env.storage_folder(&n).is_dir(), "the neighbour's storage");
}

// ---------------------------------------------------------------------------------------------
// Provisioning: a crash on either side of every step, then `ops resume`.

#[derive(Debug)]
struct CrashCase {
    kind: Kind,
    step: String,
    point: &'static str,
}

fn provision_crash_cases(kind: Kind) -> Vec<CrashCase> {
    let mut cases = Vec::new();
    for step in steps_of("provision") {
        for point in ["before", "after"] {
            cases.push(CrashCase {
                kind,
                step: step.clone(),
                point,
            });
        }
    }
    cases
}

fn provision_crash_then_resume(case: &CrashCase) {
    let env = make_test_env();
    let spec = format!("{}.{}=crash", case.step, case.point);
    crash(&env, &spec, &create_args(case.kind));
    resume_interrupted(&env, &spec);

    let t = env.show(SLUG);
    assert_eq!(t["state"], "active", "{t:#}");
    expect_provisioned(&env, case.kind, &t);
    expect_events(&env, PROVISIONED);
    expect_transitions(&env, &["requested", "validating", "provisioning", "active"]);
    let ops = env.operations();
    assert_eq!(ops.len(), 1, "one operation: {ops:#?}");
    assert_eq!(ops[0]["state"], "succeeded");
}

#[test]
fn a_shared_provisioning_survives_a_crash_at_every_step() {
    run_cases(
        &provision_crash_cases(Kind::Shared),
        provision_crash_then_resume,
    );
}

#[test]
fn a_database_provisioning_survives_a_crash_at_every_step() {
    run_cases(
        &provision_crash_cases(Kind::Database),
        provision_crash_then_resume,
    );
}

// ---------------------------------------------------------------------------------------------
// Provisioning: a permanent error at every step rolls back.

#[derive(Debug)]
struct ErrorCase {
    kind: Kind,
    step: String,
}

fn provision_error_rolls_back(case: &ErrorCase) {
    let env = setup(case.kind, false);
    let neighbour = env.show(NEIGHBOUR);
    let shared = space_path(&neighbour);
    let neighbour_rows = tenant_rows(&shared, &str_of(&neighbour, "id"));
    let spec = format!("{}=error", case.step);

    let out = env.tenantry_with_failpoints(&spec, create_args(case.kind));
    let stderr = stderr_of(&out);
    assert!(
        !out.status.success(),
        "create with {spec} succeeded:\n{stderr}"
    );
    assert!(
        !killed_by_signal(&out),
        "an error is not a crash:\n{stderr}"
    );
    assert!(stderr.contains(&case.step), "name the step:\n{stderr}");

    let t = env.show(SLUG);
    let id = str_of(&t, "id");
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["failure"]["step"], case.step.as_str(), "{t:#}");
    assert!(
        t["failure"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{t:#}"
    );

    // No trace: no file of its own, no rows in the shared database, no storage.
    let shard_dir = env.shard_dir(&str_of(&t, "shard"));
    let file = database_file_name(&id);
    for name in std::fs::read_dir(&shard_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    {
        assert!(
            !name.starts_with(&file),
            "{name} is left in {}",
            shard_dir.display()
        );
    }
    assert_eq!(
        tenant_rows(&shared, &id),
        0,
        "rows of the failed tenant remain"
    );
    assert!(
        !env.storage_folder(&t).exists(),
        "the storage folder {} remains",
        env.storage_folder(&t).display()
    );
    assert_eq!(t["storage"]["exists"], false, "{t:#}");

    // The neighbour is untouched.
    assert_eq!(
        tenant_rows(&shared, &str_of(&neighbour, "id")),
        neighbour_rows
    );
    expect_neighbour_intact(&env);

    // The history shows the rollback, the events the failure, each once.
    let history = env.transitions(SLUG);
    assert_eq!(
        history.first(),
        Some(&(None, "requested".to_owned())),
        "{history:?}"
    );
    assert_eq!(
        history.last().map(|(_, to)| to.as_str()),
        Some("failed"),
        "{history:?}"
    );
    assert_eq!(
        history.iter().filter(|(_, to)| to == "failed").count(),
        1,
        "{history:?}"
    );
    expect_events(&env, &["TenantCreated", "TenantFailed"]);

    // The operation failed and nothing it did is left done.
    let op = env
        .operations()
        .into_iter()
        .find(|op| op["tenant_id"] == id.as_str())
        .expect("the provisioning operation");
    assert_eq!(op["state"], "failed", "{op:#}");
    for step in as_array(op["steps"].clone()) {
        assert_ne!(step["state"], "done", "step not undone: {step:#}");
        if step["name"] == case.step.as_str() {
            assert_eq!(step["state"], "failed", "{step:#}");
        }
    }
}

fn provision_error_cases(kind: Kind) -> Vec<ErrorCase> {
    steps_of("provision")
        .into_iter()
        .map(|step| ErrorCase { kind, step })
        .collect()
}

#[test]
fn a_shared_provisioning_rolls_back_an_error_at_every_step() {
    run_cases(
        &provision_error_cases(Kind::Shared),
        provision_error_rolls_back,
    );
}

#[test]
fn a_database_provisioning_rolls_back_an_error_at_every_step() {
    run_cases(
        &provision_error_cases(Kind::Database),
        provision_error_rolls_back,
    );
}

// ---------------------------------------------------------------------------------------------
// Suspend, resume and delete: a crash on either side of every step, then `ops resume`.

#[derive(Debug)]
struct LifecycleCase {
    kind: Kind,
    command: &'static str,
    step: String,
    point: &'static str,
}

fn lifecycle_crash_cases(kind: Kind) -> Vec<LifecycleCase> {
    let mut cases = Vec::new();
    for command in ["suspend", "resume", "delete"] {
        for step in steps_of(command) {
            for point in ["before", "after"] {
                cases.push(LifecycleCase {
                    kind,
                    command,
                    step: step.clone(),
                    point,
                });
            }
        }
    }
    cases
}

fn lifecycle_crash_then_resume(case: &LifecycleCase) {
    let env = setup(case.kind, true);
    if case.command == "resume" {
        env.tenantry(["tenant", "suspend", SLUG]).success();
    }
    let before = env.show(SLUG);
    let id = str_of(&before, "id");
    let path = space_path(&before);
    let spec = format!("{}.{}=crash", case.step, case.point);

    crash(&env, &spec, &["tenant", case.command, SLUG]);
    resume_interrupted(&env, &spec);

    let t = env.show(SLUG);
    let lifecycle = ["requested", "validating", "provisioning", "active"];
    match case.command {
        "suspend" => {
            assert_eq!(t["state"], "suspended", "{t:#}");
            expect_provisioned(&env, case.kind, &t);
            expect_events(&env, &[PROVISIONED, &["TenantSuspended"]].concat());
            expect_transitions(&env, &[&lifecycle[..], &["suspended"]].concat());
        }
        "resume" => {
            assert_eq!(t["state"], "active", "{t:#}");
            expect_provisioned(&env, case.kind, &t);
            expect_events(
                &env,
                &[PROVISIONED, &["TenantSuspended", "TenantResumed"]].concat(),
            );
            expect_transitions(&env, &[&lifecycle[..], &["suspended", "active"]].concat());
        }
        "delete" => {
            assert_eq!(t["state"], "deleted", "{t:#}");
            match case.kind {
                Kind::Database => {
                    for suffix in ["", "-wal", "-shm", "-journal"] {
                        let f = format!("{}{suffix}", path.display());
                        assert!(!Path::new(&f).exists(), "{f} is left behind");
                    }
                }
                Kind::Shared => {
                    assert!(path.is_file(), "the shared database stays");
                    assert_eq!(tenant_rows(&path, &id), 0, "the tenant's rows remain");
                }
            }
            assert!(
                !env.storage_folder(&t).exists(),
                "the storage folder {} remains",
                env.storage_folder(&t).display()
            );
            expect_events(&env, &[PROVISIONED, &["TenantDeleted"]].concat());
            expect_transitions(&env, &[&lifecycle[..], &["deleting", "deleted"]].concat());
            let live = as_array(env.json(&["tenant", "list"]));
            assert!(live.iter().all(|x| x["slug"] != SLUG), "{live:#?}");
        }
        other => unreachable!("{other}"),
    }
    expect_neighbour_intact(&env);
}

#[test]
fn shared_suspend_resume_and_delete_survive_a_crash_at_every_step() {
    run_cases(
        &lifecycle_crash_cases(Kind::Shared),
        lifecycle_crash_then_resume,
    );
}

#[test]
fn database_suspend_resume_and_delete_survive_a_crash_at_every_step() {
    run_cases(
        &lifecycle_crash_cases(Kind::Database),
        lifecycle_crash_then_resume,
    );
}

// ---------------------------------------------------------------------------------------------

#[test]
fn failpoints_are_checked() {
    let env = make_test_env();
    let before = env.snapshot();
    let out = env.tenantry_with_failpoints("migrate=crash", create_args(Kind::Shared));
    assert!(!out.status.success());
    assert!(!killed_by_signal(&out), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("failpoint"), "{}", stderr_of(&out));
    assert_eq!(before, env.snapshot(), "a bad failpoint changes nothing");
}

#[test]
fn resume_with_nothing_interrupted_does_nothing() {
    let env = setup(Kind::Database, true);
    let before = env.snapshot();
    let ops = as_array(env.json(&["ops", "resume"]));
    assert!(ops.is_empty(), "{ops:#?}");
    assert_eq!(before, env.snapshot());
}
