//! Worker identity. A lease records which worker holds an operation as `host:pid:nonce`, so that
//! a worker on the same host can tell a holder that died (its process is gone) from one that is
//! only slow, and take a dead worker's operation over at once instead of waiting for the lease
//! to expire.

use uuid::Uuid;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A fresh identity for this process.
pub fn worker_id() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Whether `owner` names a worker process on this host that no longer exists. A holder on
/// another host, or one whose liveness cannot be checked, is presumed alive.
pub fn holder_is_dead(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (_nonce, pid, host) = (parts.next(), parts.next(), parts.next());
    let (Some(pid), Some(host)) = (pid.and_then(|p| p.parse::<u32>().ok()), host) else {
        return false;
    };
    host == hostname()
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_local_worker_is_alive_and_a_gone_one_is_dead() {
        let me = worker_id();
        assert!(!holder_is_dead(&me), "this process is alive");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(holder_is_dead(&format!("{}:{pid}:abcd", hostname())));
        assert!(
            !holder_is_dead(&format!("elsewhere:{pid}:abcd")),
            "other hosts are presumed alive"
        );
        assert!(!holder_is_dead("garbage"));
    }
}
