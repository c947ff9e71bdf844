//! The CLI against a running server (`--server URL --token T`): the same commands, the same
//! output and the same exit codes as on the catalog.

mod common;

use common::server::Server;
use common::{Env, as_array, make_test_env, parse_json};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// `tenantry` with `--server` and `--token`.
struct Remote<'a> {
    env: &'a Env,
    base: String,
    token: String,
}

impl Remote<'_> {
    fn run(&self, args: &[&str]) -> Output {
        self.env
            .command()
            .args(["--server", &self.base, "--token", &self.token])
            .args(args)
            .output()
            .expect("run tenantry")
    }

    /// Runs with `-o json`, requires success, parses standard output.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(&[args, &["-o", "json"]].concat());
        assert!(
            out.status.success(),
            "remote `tenantry {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        parse_json(&out.stdout, args)
    }

    /// Requires the command to fail with `code`, saying each of `words`.
    fn refused(&self, args: &[&str], code: i32, words: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "`tenantry {}`: {stderr}",
            args.join(" ")
        );
        for w in words {
            assert!(stderr.contains(w), "{w:?} not in: {stderr}");
        }
        stderr
    }
}

fn token(env: &Env, scope: &str, name: &str) -> String {
    env.json(&["token", "create", "--scope", scope, "--name", name])["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn every_command_works_remotely_and_prints_what_it_prints_locally() {
    let env = make_test_env();
    let server = Server::start(&env, &[]);
    let admin = Remote {
        env: &env,
        base: server.base.clone(),
        token: token(&env, "admin", "root"),
    };

    // Create and wait (the server's worker runs it; the client follows the operation).
    let acme = admin.json(&[
        "tenant", "create", "acme", "--plan", "standard", "--region", "eu-west",
    ]);
    assert_eq!(acme["state"], "active", "{acme:#}");
    assert_eq!(acme["isolation"], "shared");
    assert_eq!(acme["storage"]["exists"], true, "{acme:#}");

    // Queue without waiting, then follow the operation by its id.
    let queued = admin.json(&[
        "tenant",
        "create",
        "globex",
        "--plan",
        "premium",
        "--region",
        "us-east",
        "--no-wait",
    ]);
    let op_id = queued["operation"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let op = admin.json(&["ops", "show", &op_id]);
        if op["state"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {op:#}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Lifecycle through the server.
    let suspended = admin.json(&["tenant", "suspend", "acme"]);
    assert_eq!(suspended["tenant"]["state"], "suspended", "{suspended:#}");
    assert_eq!(suspended["operation"]["state"], "succeeded");
    assert_eq!(
        admin.json(&["tenant", "resume", "acme"])["tenant"]["state"],
        "active"
    );
    assert_eq!(
        admin.json(&["tenant", "delete", "globex"])["tenant"]["state"],
        "deleted"
    );

    let listed = as_array(admin.json(&["tenant", "list"]));
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(as_array(admin.json(&["tenant", "list", "--all"])).len(), 2);

    // The same answers, byte for byte as JSON, from the server and from the catalog.
    for args in [
        &["tenant", "show", "acme"][..],
        &["tenant", "show", "globex"],
        &["tenant", "list", "--all"],
        &["tenant", "history", "acme"],
        &["ops", "list"],
        &["ops", "list", "--tenant", "acme"],
        &["ops", "show", &op_id],
        &["events", "list"],
        &["events", "list", "--tenant", "acme", "--after", "1"],
        &["events", "dead-letters"],
        &["shard", "list"],
        &["region", "list"],
        &["plan", "list"],
        &["pool", "status"],
        &["token", "list"],
    ] {
        assert_eq!(admin.json(args), env.json(args), "`{}`", args.join(" "));
    }
    let history = as_array(admin.json(&["tenant", "history", "acme"]));
    let to: Vec<_> = history.iter().map(|t| t["to"].as_str().unwrap()).collect();
    assert_eq!(to.last(), Some(&"active"), "{history:#?}");
    let types: Vec<_> = as_array(admin.json(&["events", "list", "--tenant", "acme"]))
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&types[..3], common::PROVISIONED);

    // Shards at run time.
    let dir = env.path().join("extra-shard");
    let shard = admin.json(&[
        "shard",
        "add",
        "eu-west-9",
        "--region",
        "eu-west",
        "--engine",
        "sqlite",
        "--directory",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(shard["state"], "active", "{shard:#}");
    assert_eq!(
        admin.json(&["shard", "drain", "eu-west-9"])["state"],
        "draining"
    );
    assert_eq!(
        admin.json(&["shard", "activate", "eu-west-9"])["state"],
        "active"
    );

    // A dry run of the fleet migration (nothing pending) names every space.
    let planned = as_array(admin.json(&["migrate", "--dry-run"]));
    assert!(!planned.is_empty());
    assert!(
        planned.iter().all(|r| r["result"] == "would_apply"),
        "{planned:#?}"
    );

    // Nothing is interrupted.
    assert_eq!(admin.json(&["ops", "resume"]), serde_json::json!([]));

    // Tokens: created through the server (printed once), used, revoked, refused.
    let created = admin.json(&["token", "create", "--scope", "reader", "--name", "dash"]);
    assert_eq!(created["scope"], "reader");
    let reader = Remote {
        env: &env,
        base: server.base.clone(),
        token: created["token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(as_array(reader.json(&["tenant", "list"])).len(), 1);
    reader.refused(
        &["tenant", "suspend", "acme"],
        2,
        &["scope operator", "reader"],
    );
    reader.refused(&["token", "list"], 2, &["scope admin"]);
    let revoked = admin.json(&["token", "revoke", "dash"]);
    assert!(revoked["revoked_at"].is_string(), "{revoked:#}");
    reader.refused(
        &["tenant", "list"],
        2,
        &["refused the token", "unknown or revoked"],
    );
}

#[test]
fn bad_input_and_bad_tokens_are_refused_remotely_as_locally() {
    let env = make_test_env();
    let server = Server::start(&env, &[]);
    let op = Remote {
        env: &env,
        base: server.base.clone(),
        token: token(&env, "operator", "ops"),
    };
    let create = |slug: &'static str, plan: &'static str| {
        vec![
            "tenant", "create", slug, "--plan", plan, "--region", "eu-west",
        ]
    };

    // Bad input: exit 2 with the message the catalog gives, and nothing created.
    for (args, words) in [
        (create("Bad_Slug", "standard"), &["slug"][..]),
        (create("acme", "gold"), &["unknown plan \"gold\""]),
        (vec!["tenant", "show", "nobody"], &["no tenant \"nobody\""]),
        (vec!["tenant", "resume", "nobody"], &["nobody"]),
        (vec!["ops", "show", "not-an-id"], &["not an operation id"]),
    ] {
        let remote = op.refused(&args, 2, words);
        let local = env.command().args(&args).output().unwrap();
        assert_eq!(local.status.code(), Some(2));
        assert_eq!(remote, String::from_utf8_lossy(&local.stderr), "{args:?}");
    }
    assert!(as_array(op.json(&["tenant", "list", "--all"])).is_empty());

    // An illegal transition, remotely.
    op.json(&create("acme", "standard"));
    op.refused(&["tenant", "resume", "acme"], 2, &["active"]);
    op.refused(&create("acme", "standard"), 2, &["already exists"]);

    // Tokens: none, a wrong one; and --server given to a command that is local by nature.
    let out = env
        .command()
        .args(["--server", &server.base, "tenant", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an API token"));
    let wrong = Remote {
        env: &env,
        base: server.base.clone(),
        token: "tty_wrong".into(),
    };
    wrong.refused(&["tenant", "list"], 2, &["refused the token"]);
    for cmd in [&["init", "elsewhere"][..], &["serve"], &["openapi"]] {
        op.refused(cmd, 2, &["works on this machine only", "--server"]);
    }

    // The environment variables work as the flags do.
    let out = env
        .command()
        .env("TENANTRY_SERVER", &server.base)
        .env("TENANTRY_TOKEN", &op.token)
        .args(["tenant", "show", "acme", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A server that is not there: a failure (1), saying where it looked.
    let nowhere = Remote {
        env: &env,
        base: "http://127.0.0.1:9".into(),
        token: op.token.clone(),
    };
    nowhere.refused(&["tenant", "list"], 1, &["could not reach the server"]);
}

#[test]
fn events_tail_follows_a_server() {
    let env = make_test_env();
    let server = Server::start(&env, &[]);
    let tok = token(&env, "operator", "ops");
    let mut tail = env
        .command_std()
        .args(["--server", &server.base, "--token", &tok])
        .args(["events", "tail", "--after", "0", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let remote = Remote {
        env: &env,
        base: server.base.clone(),
        token: tok.clone(),
    };
    remote.json(&[
        "tenant", "create", "acme", "--plan", "standard", "--region", "eu-west",
    ]);
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < common::PROVISIONED.len() {
        let line = lines.next().expect("tail printed an event").unwrap();
        let e: Value = serde_json::from_str(&line).unwrap();
        seen.push(e["event_type"].as_str().unwrap().to_owned());
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert_eq!(seen, common::PROVISIONED);
}
