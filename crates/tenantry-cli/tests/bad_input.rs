//! Bad input and broken configuration: exit code 2, a message on standard error that says what
//! was wrong, and nothing changed — the catalog (tenants, events, operations) and the files
//! under `data/` are as they were. `--dry-run` likewise changes nothing.

mod common;

use common::*;

/// An environment with one active tenant, `acme`, so duplicates and transitions can be tried.
fn env_with_acme() -> Env {
    let env = make_test_env();
    env.create("acme", "standard", "eu-west", &[]);
    env.create("globex", "premium", "us-east", &[]);
    env
}

/// Runs `tenantry ARGS`, which must be refused with exit code 2 and a message on standard error
/// containing every one of `words` (case-insensitively), changing nothing.
fn assert_refused(env: &Env, args: &[&str], words: &[&str]) {
    let before = env.snapshot();
    let out = env.command().args(args).output().expect("run tenantry");
    let stderr = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "`tenantry {}` should exit 2; it exited {} with:\n{stderr}",
        args.join(" "),
        out.status
    );
    for word in words {
        assert!(
            stderr.to_lowercase().contains(&word.to_lowercase()),
            "`tenantry {}`: the message should mention {word:?}:\n{stderr}",
            args.join(" ")
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "`tenantry {}` panicked:\n{stderr}",
        args.join(" ")
    );
    let after = env.snapshot();
    assert_snapshot_eq(&before, &after, args);
}

fn assert_snapshot_eq(before: &Snapshot, after: &Snapshot, args: &[&str]) {
    assert_eq!(
        before.files,
        after.files,
        "`tenantry {}` changed the files",
        args.join(" ")
    );
    assert_eq!(
        before.tenants,
        after.tenants,
        "`tenantry {}` changed the tenants",
        args.join(" ")
    );
    assert_eq!(
        before.events,
        after.events,
        "`tenantry {}` changed the events",
        args.join(" ")
    );
    assert_eq!(
        before.operations,
        after.operations,
        "`tenantry {}` changed the operations",
        args.join(" ")
    );
}

fn create<'a>(slug: &'a str, plan: &'a str, region: &'a str) -> Vec<&'a str> {
    vec!["tenant", "create", slug, "--plan", plan, "--region", region]
}

#[test]
fn invalid_slugs_are_refused() {
    let env = env_with_acme();
    for slug in ["Bad_Slug", "a", "1abc", "acme corp", "acme_corp"] {
        assert_refused(&env, &create(slug, "standard", "eu-west"), &["slug", slug]);
    }
    // Too long (64 characters).
    let long = format!("a{}", "b".repeat(63));
    assert_refused(&env, &create(&long, "standard", "eu-west"), &["slug", "63"]);
}

#[test]
fn an_unknown_plan_is_refused() {
    let env = env_with_acme();
    assert_refused(&env, &create("hooli", "gold", "eu-west"), &["plan", "gold"]);
}

#[test]
fn an_unknown_region_is_refused() {
    let env = env_with_acme();
    assert_refused(
        &env,
        &create("hooli", "standard", "mars"),
        &["region", "mars"],
    );
}

#[test]
fn a_duplicate_slug_is_refused() {
    let env = env_with_acme();
    assert_refused(
        &env,
        &create("acme", "standard", "eu-west"),
        &["acme", "exists"],
    );
    // Also in another region and plan, and for a database tenant.
    assert_refused(
        &env,
        &create("acme", "premium", "us-east"),
        &["acme", "exists"],
    );
    assert_refused(
        &env,
        &create("globex", "premium", "us-east"),
        &["globex", "exists"],
    );
}

#[test]
fn illegal_transitions_are_refused() {
    let env = env_with_acme();
    assert_refused(
        &env,
        &["tenant", "resume", "acme"],
        &["active", "already active"],
    );
    env.tenantry(["tenant", "suspend", "acme"]).success();
    assert_refused(
        &env,
        &["tenant", "suspend", "acme"],
        &["suspended", "already"],
    );
    env.tenantry(["tenant", "delete", "globex"]).success();
    assert_refused(&env, &["tenant", "resume", "globex"], &["deleted"]);
    assert_refused(&env, &["tenant", "suspend", "globex"], &["deleted"]);
    assert_refused(&env, &["tenant", "delete", "globex"], &["deleted"]);
}

#[test]
fn an_unknown_tenant_is_refused() {
    let env = env_with_acme();
    for cmd in ["show", "history", "suspend", "resume", "delete"] {
        assert_refused(&env, &["tenant", cmd, "nobody"], &["nobody"]);
    }
}

#[test]
fn an_invalid_isolation_is_refused() {
    let env = env_with_acme();
    let mut args = create("hooli", "standard", "eu-west");
    args.extend(["--isolation", "rows"]);
    assert_refused(&env, &args, &["isolation", "rows"]);
}

#[test]
fn an_invalid_admin_email_is_refused() {
    let env = env_with_acme();
    for email in ["nope", "a@b", "two words@x.example", "@acme.example"] {
        let mut args = create("hooli", "standard", "eu-west");
        args.extend(["--admin-email", email]);
        assert_refused(&env, &args, &["email", email]);
    }
}

#[test]
fn an_invalid_compliance_tag_is_refused() {
    let env = env_with_acme();
    let mut args = create("hooli", "standard", "eu-west");
    args.extend(["--compliance", "HIPAA"]);
    assert_refused(&env, &args, &["compliance", "HIPAA"]);
}

/// Runs `args` against a broken configuration (`broken` applied to the good one), which must be
/// refused with exit 2 and a message containing `words`; the good configuration is restored
/// afterwards and nothing may have changed.
fn assert_config_refused(env: &Env, broken: impl Fn(&str) -> String, words: &[&str]) {
    let before = env.snapshot();
    let good = std::fs::read_to_string(env.config_path()).unwrap();
    env.replace_config(&broken(&good));
    let commands: [&[&str]; 4] = [
        &[
            "tenant", "create", "hooli", "--plan", "standard", "--region", "eu-west",
        ],
        &["tenant", "list"],
        &["tenant", "suspend", "acme"],
        &["shard", "list"],
    ];
    for args in commands {
        let out = env.command().args(args).output().expect("run tenantry");
        let stderr = stderr_of(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "`tenantry {}` with a broken configuration should exit 2; it exited {}:\n{stderr}",
            args.join(" "),
            out.status
        );
        assert!(stderr.contains("tenantry.toml"), "name the file:\n{stderr}");
        for word in words {
            assert!(
                stderr.to_lowercase().contains(&word.to_lowercase()),
                "`tenantry {}`: the message should mention {word:?}:\n{stderr}",
                args.join(" ")
            );
        }
    }
    env.replace_config(&good);
    let after = env.snapshot();
    assert_snapshot_eq(&before, &after, &["(broken configuration)"]);
}

#[test]
fn a_shard_in_an_unknown_region_is_refused() {
    let env = env_with_acme();
    assert_config_refused(
        &env,
        |good| {
            format!(
                "{good}\n[[shards]]\nname = \"ap-south-1\"\nregion = \"ap-south\"\n\
                 engine = \"sqlite\"\ndirectory = \"data/shards/ap-south-1\"\n"
            )
        },
        &["shards[", "region", "ap-south"],
    );
    assert!(!env.shard_dir("ap-south-1").exists());
}

#[test]
fn an_unknown_key_is_refused() {
    let env = env_with_acme();
    assert_config_refused(
        &env,
        |good| format!("frobnicate = true\n{good}"),
        &["frobnicate"],
    );
}

#[test]
fn invalid_toml_is_refused() {
    let env = env_with_acme();
    assert_config_refused(
        &env,
        |good| format!("{good}\n[[[ this is not toml\n"),
        &["toml"],
    );
}

#[test]
fn a_missing_configuration_is_refused() {
    let env = make_test_env();
    std::fs::remove_file(env.config_path()).unwrap();
    let out = env.command().args(["tenant", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("tenantry.toml"), "{stderr}");
    assert!(stderr.contains("tenantry init"), "{stderr}");
    assert!(!env.data_dir().join("catalog.db").exists());
}

#[test]
fn a_dry_run_prints_the_placement_and_steps_and_changes_nothing() {
    let env = env_with_acme();
    let steps = env.steps("provision");
    let cases = [
        (
            "hooli",
            "standard",
            "eu-west",
            vec![],
            "shared",
            "plan:standard",
        ),
        (
            "initech",
            "premium",
            "us-east",
            vec![],
            "database",
            "plan:premium",
        ),
        (
            "umbrella",
            "standard",
            "eu-west",
            vec!["--compliance", "hipaa"],
            "database",
            "compliance-dedicated-database",
        ),
        // business asks for a schema, which SQLite cannot host: the fallback decides.
        ("stark", "business", "eu-west", vec![], "database", ""),
    ];
    for (slug, plan, region, extra, isolation, rule) in cases {
        let mut args = create(slug, plan, region);
        args.extend(extra.iter().copied());
        args.push("--dry-run");

        let before = env.snapshot();
        let value = env.json(&args);
        assert_eq!(value["dry_run"], true, "{value:#}");
        let p = &value["plan"];
        assert_eq!(p["slug"], slug, "{value:#}");
        assert_eq!(p["placement"]["isolation"], isolation, "{value:#}");
        if !rule.is_empty() {
            assert_eq!(p["placement"]["rule"], rule, "{value:#}");
        }
        assert!(
            p["placement"]["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{value:#}"
        );
        let planned: Vec<String> = as_array(p["steps"].clone())
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(planned, steps);

        // The human form says it is a dry run and names the decision and the steps.
        let out = env.tenantry(&args).success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(text.to_lowercase().contains("dry run"), "{text}");
        assert!(text.contains(isolation), "{text}");
        assert!(
            text.contains(&steps[0]) && text.contains(steps.last().unwrap()),
            "{text}"
        );

        assert_snapshot_eq(&before, &env.snapshot(), &args);
        env.tenantry(["tenant", "show", slug]).code(2);
    }
}

#[test]
fn a_dry_run_of_bad_input_is_refused_too() {
    let env = env_with_acme();
    let mut args = create("acme", "standard", "eu-west");
    args.push("--dry-run");
    assert_refused(&env, &args, &["acme", "exists"]);
    let mut args = create("Bad_Slug", "standard", "eu-west");
    args.push("--dry-run");
    assert_refused(&env, &args, &["slug"]);
}
