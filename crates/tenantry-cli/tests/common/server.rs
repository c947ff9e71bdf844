//! A `tenantry serve` started by a test, on a free port of its own.

use super::Env;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// A running `tenantry serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(env: &Env, extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tenantry"));
        cmd.current_dir(env.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1"])
            .env_remove("TENANTRY_CONFIG")
            .env_remove("TENANTRY_FAILPOINTS")
            .env_remove("TENANTRY_SERVER")
            .env_remove("TENANTRY_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tenantry serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines.next().expect("serve printed its address").unwrap();
            if let Some(rest) = line.strip_prefix("tenantry serving http://") {
                let addr = rest.split('/').next().unwrap().to_owned();
                break format!("http://{addr}");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
