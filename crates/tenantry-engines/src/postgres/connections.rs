//! Connections into tenant spaces: counted against a per-shard limit, and kept open for a moment
//! between calls.
//!
//! The steps of one operation (migrate, seed, first admin, verify) each work in the same space
//! one after the other. Opening a PostgreSQL connection costs a backend start, authentication
//! and a cold catalog cache — a few milliseconds each, the largest part of a claimed warm-pool
//! database's provisioning. So a connection that ends its call cleanly is parked, keyed by its
//! database and `search_path`, and the next call into the same space takes it back if it comes
//! within [`IDLE_FOR`]. Only connections in a clean state are parked (no transaction, no
//! session lock, no `SET`: the driver never uses one), at most [`IDLE_CONNECTIONS`] of them,
//! and they keep their place in the shard's limit: a caller who finds the limit reached closes
//! the oldest parked one rather than wait.
//!
//! Never parked: connections into warm-pool databases, which must have no sessions when a tenant
//! adopts (renames) them — possibly from another process.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Result, SpaceError};

/// How many connections a shard's driver parks at most.
pub const IDLE_CONNECTIONS: usize = 4;

/// How long a parked connection may wait for its next call.
pub const IDLE_FOR: Duration = Duration::from_secs(5);

/// A pooled connection idle for this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pings a pooled connection before handing it out only when it sat idle for
/// [`PING_AFTER_IDLE`] or more, instead of before every acquisition (sqlx's default): a round
/// trip saved on each call of a connection in steady use, which is known to be alive.
pub(crate) fn ping_when_idle(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// A connection into a space, holding one of the shard's connection permits.
pub(super) struct SpaceConn {
    conn: PgConnection,
    _permit: OwnedSemaphorePermit,
}

impl SpaceConn {
    /// Closes the connection (and frees its permit). For connections that may hold session
    /// state: a session advisory lock, say.
    pub(super) async fn close(self) -> Result<()> {
        self.conn.close().await?;
        Ok(())
    }
}

impl Deref for SpaceConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for SpaceConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

struct Parked {
    database: String,
    search_path: String,
    since: Instant,
    conn: SpaceConn,
}

/// The connections of one shard's driver into its spaces.
pub(super) struct SpaceConnections {
    permits: Arc<Semaphore>,
    parked: Mutex<VecDeque<Parked>>,
    never_park: &'static str,
}

impl SpaceConnections {
    /// At most `limit` connections at once; connections into databases whose name starts with
    /// `never_park` are always closed after use.
    pub(super) fn new(limit: usize, never_park: &'static str) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            parked: Mutex::new(VecDeque::new()),
            never_park,
        }
    }

    /// A parked connection into `database` with `search_path` that still answers, if any.
    pub(super) async fn take(&self, database: &str, search_path: &str) -> Option<SpaceConn> {
        let (found, expired) = {
            let mut parked = self.parked.lock().expect("parked connections");
            let expired: Vec<Parked> = drain_where(&mut parked, |p| p.since.elapsed() > IDLE_FOR);
            let at = parked
                .iter()
                .rposition(|p| p.database == database && p.search_path == search_path);
            (at.and_then(|i| parked.remove(i)), expired)
        };
        close_later(expired);
        let found = found?;
        let mut conn = found.conn;
        // The server may have closed it (a restart, `DROP DATABASE … WITH (FORCE)`); one parked
        // only a moment ago is taken as it is, like a pool's (see [`ping_when_idle`]).
        if found.since.elapsed() >= PING_AFTER_IDLE && conn.ping().await.is_err() {
            return None;
        }
        Some(conn)
    }

    /// A permit for a new connection: waits for one, closing the oldest parked connection
    /// rather than waiting while one is parked.
    pub(super) async fn permit(&self) -> Result<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                return Ok(permit);
            }
            let oldest = self.parked.lock().expect("parked connections").pop_front();
            match oldest {
                Some(p) => {
                    let _ = p.conn.close().await;
                }
                None => {
                    return Arc::clone(&self.permits)
                        .acquire_owned()
                        .await
                        .map_err(|_| SpaceError::Database(sqlx::Error::PoolClosed));
                }
            }
        }
    }

    /// Wraps a freshly opened connection with its permit.
    pub(super) fn counted(conn: PgConnection, permit: OwnedSemaphorePermit) -> SpaceConn {
        SpaceConn {
            conn,
            _permit: permit,
        }
    }

    /// Ends a call that left `conn` in a clean state: parks it for the next call into the same
    /// space (closing the oldest parked one when full), or closes it.
    pub(super) async fn release(&self, database: &str, search_path: &str, conn: SpaceConn) {
        if database.starts_with(self.never_park) {
            let _ = conn.close().await;
            return;
        }
        let evicted = {
            let mut parked = self.parked.lock().expect("parked connections");
            parked.push_back(Parked {
                database: database.to_owned(),
                search_path: search_path.to_owned(),
                since: Instant::now(),
                conn,
            });
            (parked.len() > IDLE_CONNECTIONS).then(|| parked.pop_front())
        };
        close_later(evicted.into_iter().flatten());
    }

    /// Closes the parked connections into `database`: before it is dropped or renamed.
    pub(super) async fn forget(&self, database: &str) {
        let gone = drain_where(&mut self.parked.lock().expect("parked connections"), |p| {
            p.database == database
        });
        for p in gone {
            let _ = p.conn.close().await;
        }
    }

    /// Closes every parked connection.
    pub(super) async fn close_all(&self) {
        let gone: Vec<Parked> = self
            .parked
            .lock()
            .expect("parked connections")
            .drain(..)
            .collect();
        for p in gone {
            let _ = p.conn.close().await;
        }
    }
}

/// Closes parked connections without making the caller wait for the server's goodbye; each
/// frees its permit when closed.
fn close_later(parked: impl IntoIterator<Item = Parked>) {
    for p in parked {
        tokio::spawn(async move {
            let _ = p.conn.close().await;
        });
    }
}

fn drain_where(parked: &mut VecDeque<Parked>, pred: impl Fn(&Parked) -> bool) -> Vec<Parked> {
    let mut out = Vec::new();
    let mut kept = VecDeque::with_capacity(parked.len());
    for p in parked.drain(..) {
        if pred(&p) {
            out.push(p)
        } else {
            kept.push_back(p)
        }
    }
    *parked = kept;
    out
}
