//! Provisioning on the embedded default: placement by plan and rules, what `tenant show`
//! reports, and what lands on disk (the tenant's space, its rows, its storage folder).

mod common;

use common::*;
use serde_json::Value;

/// The shard called `name` in `shard list -o json`.
fn shard<'a>(shards: &'a [Value], name: &str) -> &'a Value {
    shards
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no shard {name:?} in {shards:#?}"))
}

#[test]
fn tenants_are_placed_by_plan_region_and_compliance_rule() {
    let env = make_test_env();

    let acme = env.create("acme", "standard", "eu-west", &[]);
    assert_eq!(acme["isolation"], "shared", "{acme:#}");
    assert_eq!(acme["region"], "eu-west");
    assert_eq!(acme["plan"], "standard");
    assert_eq!(acme["space"]["kind"], "shared");

    let globex = env.create("globex", "premium", "us-east", &[]);
    assert_eq!(globex["isolation"], "database", "{globex:#}");
    assert_eq!(globex["space"]["kind"], "database");
    let shards = as_array(env.json(&["shard", "list"]));
    let globex_shard = shard(&shards, &str_of(&globex, "shard"));
    assert_eq!(
        globex_shard["region"], "us-east",
        "globex must live on a us-east shard: {globex_shard:#}"
    );
    assert_eq!(globex["space"]["shard"], globex["shard"]);

    let initech = env.create("initech", "standard", "eu-west", &["--compliance", "hipaa"]);
    assert_eq!(initech["isolation"], "database", "{initech:#}");
    assert_eq!(
        initech["placement"]["rule"], "compliance-dedicated-database",
        "{initech:#}"
    );
    let reason = str_of(&initech["placement"], "reason");
    assert!(
        reason.to_lowercase().contains("hipaa"),
        "the reason should name hipaa: {reason:?}"
    );
    let initech_shard = shard(&shards, &str_of(&initech, "shard"));
    assert_eq!(initech_shard["region"], "eu-west");

    // The catalog agrees with what create printed.
    let listed = as_array(env.json(&["tenant", "list"]));
    let slugs: Vec<&str> = listed.iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["acme", "globex", "initech"]);
    for t in &listed {
        assert_eq!(t["state"], "active", "{t:#}");
    }
}

#[test]
fn show_reports_placement_space_and_schema_version_and_never_a_password() {
    let env = make_test_env();
    env.create("acme", "standard", "eu-west", &[]);
    env.create("globex", "premium", "us-east", &[]);
    for slug in ["acme", "globex"] {
        let t = env.show(slug);
        for key in [
            "id",
            "slug",
            "plan",
            "region",
            "state",
            "isolation",
            "shard",
            "placement",
            "space",
            "schema_version",
        ] {
            assert!(
                t.get(key).is_some_and(|v| !v.is_null()),
                "tenant show {slug}: no {key}: {t:#}"
            );
        }
        for key in ["rule", "reason"] {
            assert!(
                t["placement"][key].as_str().is_some_and(|s| !s.is_empty()),
                "placement.{key}: {t:#}"
            );
        }
        for key in ["kind", "shard", "path"] {
            assert!(
                t["space"][key].as_str().is_some_and(|s| !s.is_empty()),
                "space.{key}: {t:#}"
            );
        }
        assert!(
            t["schema_version"].as_i64().is_some_and(|v| v > 0),
            "schema_version: {t:#}"
        );
        assert_eq!(t["slug"], slug);
        assert_eq!(t["state"], "active");
        assert_no_password(&t, "$");
        // The table form works too and names the tenant.
        let out = env.tenantry(["tenant", "show", slug]).success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(text.contains(slug), "{text}");
        assert!(!text.to_lowercase().contains("password"), "{text}");
    }
}

fn assert_no_password(v: &Value, at: &str) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let lower = k.to_lowercase();
                assert!(
                    !lower.contains("password") && !lower.contains("secret"),
                    "tenant show exposes {at}.{k}"
                );
                assert_no_password(v, &format!("{at}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_no_password(v, &format!("{at}[{i}]"));
            }
        }
        Value::String(s) => {
            assert!(
                !s.to_lowercase().contains("password"),
                "tenant show exposes a password at {at}: {s:?}"
            );
            // A connection URL with credentials (scheme://user:pass@host).
            if let Some((_, rest)) = s.split_once("://") {
                let authority = rest.split('/').next().unwrap_or_default();
                assert!(
                    !(authority.contains('@') && authority.contains(':')),
                    "tenant show exposes credentials at {at}: {s:?}"
                );
            }
        }
        _ => {}
    }
}

#[test]
fn a_database_tenant_gets_its_own_file_with_the_storefront_and_one_admin() {
    let env = make_test_env();
    let globex = env.create("globex", "premium", "us-east", &[]);
    let id = str_of(&globex, "id");
    let path = space_path(&globex);
    assert!(
        path.is_file(),
        "globex's space {} is missing",
        path.display()
    );
    assert_eq!(
        path.parent().unwrap(),
        env.shard_dir(&str_of(&globex, "shard")),
        "the file lives in its shard's directory"
    );
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        database_file_name(&id)
    );
    let tables = sqlite_tables(&path);
    for table in STOREFRONT_TABLES {
        assert!(tables.contains(*table), "{table} missing from {tables:?}");
    }
    assert_eq!(all_admins(&path), 1, "exactly one admin user");
    assert_eq!(admin_count(&path, &id), 1);
    assert_eq!(store_settings_count(&path, &id), 1);
    let owners = rows_by_tenant(&path);
    assert_eq!(
        owners.keys().collect::<Vec<_>>(),
        [&id],
        "every row of globex's file carries globex's id"
    );
    assert!(env.storage_folder(&globex).is_dir());
    assert!(globex["schema_version"].as_i64().is_some_and(|v| v > 0));
}

#[test]
fn a_shared_tenant_has_rows_carrying_its_id_in_the_regions_shared_database() {
    let env = make_test_env();
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let id = str_of(&acme, "id");
    let path = space_path(&acme);
    assert!(path.is_file(), "{} is missing", path.display());
    assert_eq!(path.file_name().unwrap(), "shared.db");
    let tables = sqlite_tables(&path);
    for table in STOREFRONT_TABLES {
        assert!(tables.contains(*table), "{table} missing from {tables:?}");
    }
    assert_eq!(admin_count(&path, &id), 1, "acme's admin user");
    assert_eq!(store_settings_count(&path, &id), 1, "acme's store settings");
    let owners = rows_by_tenant(&path);
    assert_eq!(
        owners.keys().collect::<Vec<_>>(),
        [&id],
        "only acme's id in a fresh shared database"
    );
    assert!(env.storage_folder(&acme).is_dir());
    // No file of its own anywhere.
    for shard in ["eu-west-1", "us-east-1"] {
        if let Ok(entries) = std::fs::read_dir(env.shard_dir(shard)) {
            for e in entries {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!name.starts_with("tenant_"), "unexpected {name} on {shard}");
            }
        }
    }
}

#[test]
fn every_tenant_has_its_storage_folder_under_its_region() {
    let env = make_test_env();
    let tenants = [
        env.create("acme", "standard", "eu-west", &[]),
        env.create("globex", "premium", "us-east", &[]),
        env.create("initech", "standard", "eu-west", &["--compliance", "hipaa"]),
    ];
    for t in &tenants {
        let folder = env.storage_folder(t);
        assert!(folder.is_dir(), "{} is missing", folder.display());
        let shown = env.show(&str_of(t, "slug"));
        assert_eq!(shown["storage"]["exists"], true, "{shown:#}");
    }
    // initech (hipaa) has a database of its own in eu-west, next to the shared database.
    let initech = &tenants[2];
    let path = space_path(initech);
    assert_eq!(path.parent().unwrap(), env.shard_dir("eu-west-1"));
    assert_eq!(all_admins(&path), 1);
    let shared = space_path(&tenants[0]);
    assert_eq!(
        tenant_rows(&shared, &str_of(initech, "id")),
        0,
        "initech has no rows in the shared database"
    );
}

#[test]
fn creating_prints_progress_and_events_are_recorded() {
    let env = make_test_env();
    let out = env
        .tenantry([
            "tenant", "create", "acme", "--plan", "standard", "--region", "eu-west",
        ])
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("acme"), "{stdout}");
    assert_eq!(env.event_types("acme"), PROVISIONED);
    let steps = env.steps("provision");
    let ops = env.operations();
    assert_eq!(ops.len(), 1, "{ops:#?}");
    assert_eq!(ops[0]["kind"], "provision");
    assert_eq!(ops[0]["state"], "succeeded");
    let names: Vec<String> = as_array(ops[0]["steps"].clone())
        .iter()
        .map(|s| {
            assert_eq!(s["state"], "done", "{s:#}");
            str_of(s, "name")
        })
        .collect();
    assert_eq!(names, steps);
}
