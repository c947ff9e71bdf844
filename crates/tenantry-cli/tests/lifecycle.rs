//! Suspend, resume and delete: the events and transitions they record, what they keep and what
//! they remove, and reusing a deleted tenant's slug.

mod common;

use common::*;

fn pair(from: Option<&str>, to: &str) -> (Option<String>, String) {
    (from.map(str::to_owned), to.to_owned())
}

#[test]
fn events_and_history_follow_the_lifecycle_in_order() {
    let env = make_test_env();
    env.create("acme", "standard", "eu-west", &[]);
    assert_eq!(env.event_types("acme"), PROVISIONED);

    let suspended = env.json(&["tenant", "suspend", "acme"]);
    assert_eq!(suspended["tenant"]["state"], "suspended", "{suspended:#}");
    assert_eq!(suspended["operation"]["state"], "succeeded");
    let resumed = env.json(&["tenant", "resume", "acme"]);
    assert_eq!(resumed["tenant"]["state"], "active", "{resumed:#}");
    let deleted = env.json(&["tenant", "delete", "acme"]);
    assert_eq!(deleted["tenant"]["state"], "deleted", "{deleted:#}");

    assert_eq!(
        env.event_types("acme"),
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantActivated",
            "TenantSuspended",
            "TenantResumed",
            "TenantDeleted",
        ]
    );
    // Every event names the tenant.
    let id = str_of(&env.show("acme"), "id");
    for e in env.events("acme") {
        assert_eq!(e["tenant_id"], id.as_str(), "{e:#}");
    }
    assert_eq!(
        env.transitions("acme"),
        [
            pair(None, "requested"),
            pair(Some("requested"), "validating"),
            pair(Some("validating"), "provisioning"),
            pair(Some("provisioning"), "active"),
            pair(Some("active"), "suspended"),
            pair(Some("suspended"), "active"),
            pair(Some("active"), "deleting"),
            pair(Some("deleting"), "deleted"),
        ]
    );
    // Each change is an operation that succeeded.
    let kinds: Vec<String> = env
        .operations()
        .iter()
        .map(|op| {
            assert_eq!(op["state"], "succeeded", "{op:#}");
            str_of(op, "kind")
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["delete", "provision", "resume", "suspend"]);
}

#[test]
fn suspend_and_resume_keep_data_and_storage() {
    let env = make_test_env();
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let globex = env.create("globex", "premium", "us-east", &[]);
    for t in [&acme, &globex] {
        let slug = str_of(t, "slug");
        let id = str_of(t, "id");
        let path = space_path(t);
        let rows = tenant_rows(&path, &id);
        assert!(rows > 0);

        env.tenantry(["tenant", "suspend", slug.as_str()]).success();
        let shown = env.show(&slug);
        assert_eq!(shown["state"], "suspended");
        assert!(path.is_file(), "suspend kept {}", path.display());
        assert_eq!(tenant_rows(&path, &id), rows, "suspend keeps the data");
        assert_eq!(admin_count(&path, &id), 1);
        assert!(env.storage_folder(t).is_dir(), "suspend keeps storage");
        assert_eq!(shown["space"], t["space"]);

        env.tenantry(["tenant", "resume", slug.as_str()]).success();
        assert_eq!(env.show(&slug)["state"], "active");
        assert_eq!(tenant_rows(&path, &id), rows);
        assert!(env.storage_folder(t).is_dir());
    }
}

#[test]
fn deleting_a_database_tenant_removes_its_file_and_storage_and_keeps_its_record() {
    let env = make_test_env();
    let globex = env.create("globex", "premium", "us-east", &[]);
    let neighbour = env.create("hooli", "enterprise", "us-east", &[]);
    let path = space_path(&globex);
    assert!(path.is_file());

    env.tenantry(["tenant", "delete", "globex"]).success();

    for suffix in ["", "-wal", "-shm", "-journal"] {
        let f = format!("{}{suffix}", path.display());
        assert!(!std::path::Path::new(&f).exists(), "{f} is left behind");
    }
    assert!(
        !env.storage_folder(&globex).exists(),
        "{} is left behind",
        env.storage_folder(&globex).display()
    );
    // The neighbour is untouched.
    assert!(space_path(&neighbour).is_file());
    assert_eq!(
        admin_count(&space_path(&neighbour), &str_of(&neighbour, "id")),
        1
    );
    assert!(env.storage_folder(&neighbour).is_dir());

    // The record stays, state deleted, with its placement.
    let shown = env.show("globex");
    assert_eq!(shown["state"], "deleted", "{shown:#}");
    assert_eq!(shown["id"], globex["id"]);
    assert_eq!(shown["placement"], globex["placement"]);
    let listed = as_array(env.json(&["tenant", "list"]));
    assert!(
        listed.iter().all(|t| t["slug"] != "globex"),
        "tenant list hides deleted tenants: {listed:#?}"
    );
    let all = as_array(env.json(&["tenant", "list", "--all"]));
    let found: Vec<_> = all.iter().filter(|t| t["slug"] == "globex").collect();
    assert_eq!(found.len(), 1, "{all:#?}");
    assert_eq!(found[0]["state"], "deleted");
    // The shard has room for it again.
    let shards = as_array(env.json(&["shard", "list"]));
    let us = shards.iter().find(|s| s["name"] == "us-east-1").unwrap();
    assert_eq!(us["used"], 1, "{us:#}");
}

#[test]
fn deleting_a_shared_tenant_removes_only_its_rows() {
    let env = make_test_env();
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "free", "eu-west", &[]);
    let path = space_path(&acme);
    assert_eq!(path, space_path(&hooli), "both in the shared database");
    let (acme_id, hooli_id) = (str_of(&acme, "id"), str_of(&hooli, "id"));
    let before = rows_by_tenant(&path);
    assert!(before[&acme_id] > 0 && before[&hooli_id] > 0, "{before:?}");

    env.tenantry(["tenant", "delete", "acme"]).success();

    assert!(path.is_file(), "the shared database stays");
    let after = rows_by_tenant(&path);
    assert_eq!(after.get(&acme_id), None, "acme's rows are gone: {after:?}");
    assert_eq!(
        after.get(&hooli_id),
        before.get(&hooli_id),
        "hooli's rows stay"
    );
    assert_eq!(admin_count(&path, &hooli_id), 1);
    assert_eq!(store_settings_count(&path, &hooli_id), 1);
    assert!(
        !env.storage_folder(&acme).exists(),
        "acme's storage is removed"
    );
    assert!(env.storage_folder(&hooli).is_dir(), "hooli's storage stays");
    assert_eq!(env.show("acme")["state"], "deleted");
    assert_eq!(env.show("hooli")["state"], "active");
}

#[test]
fn a_deleted_tenants_slug_can_be_reused() {
    let env = make_test_env();
    let first = env.create("acme", "premium", "eu-west", &[]);
    env.tenantry(["tenant", "delete", "acme"]).success();

    let second = env.create("acme", "standard", "eu-west", &[]);
    assert_ne!(second["id"], first["id"], "a new tenant, with a new id");
    assert_eq!(second["isolation"], "shared");
    let shown = env.show("acme");
    assert_eq!(shown["id"], second["id"], "show finds the live tenant");
    assert_eq!(shown["state"], "active");
    assert!(env.storage_folder(&second).is_dir());
    assert!(!env.storage_folder(&first).exists());
    assert!(!space_path(&first).exists());
    assert_eq!(admin_count(&space_path(&second), &str_of(&second, "id")), 1);

    let live = as_array(env.json(&["tenant", "list"]));
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0]["id"], second["id"]);
    let all = as_array(env.json(&["tenant", "list", "--all"]));
    let states: Vec<(String, String)> = all
        .iter()
        .map(|t| (str_of(t, "id"), str_of(t, "state")))
        .collect();
    assert!(
        states.contains(&(str_of(&first, "id"), "deleted".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&(str_of(&second, "id"), "active".into())),
        "{states:?}"
    );
    // The new tenant's events are its own.
    assert_eq!(env.event_types("acme"), PROVISIONED);
}

#[test]
fn a_failed_tenant_can_be_deleted_and_its_slug_reused() {
    let env = make_test_env();
    let out = env.tenantry_with_failpoints(
        "seed=error",
        [
            "tenant", "create", "acme", "--plan", "premium", "--region", "eu-west",
        ],
    );
    assert!(!out.status.success(), "{}", stderr_of(&out));
    assert_eq!(env.show("acme")["state"], "failed");
    env.tenantry(["tenant", "delete", "acme"]).success();
    let shown = env.show("acme");
    assert_eq!(shown["state"], "deleted", "{shown:#}");
    assert!(!env.storage_folder(&shown).exists());
    let again = env.create("acme", "premium", "eu-west", &[]);
    assert_ne!(again["id"], shown["id"]);
}
