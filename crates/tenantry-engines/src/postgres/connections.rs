//! Connections into tenant spaces: counted against a per-shard limit, kept open for a moment
//! between calls, and kept warm for the warm pool's next databases.
//!
//! The steps of one operation (migrate, seed, first admin, verify) each work in the same space
//! one after the other. Opening a PostgreSQL connection costs a backend start, authentication
//! and a cold catalog cache — a few milliseconds each, the largest part of a claimed warm-pool
//! database's provisioning. So a connection that ends its call cleanly is parked, keyed by its
//! database and `search_path`, and the next call into the same space takes it back if it comes
//! within [`IDLE_FOR`]. Only connections in a clean state are parked (no transaction, no
//! session lock, no `SET`: the driver never uses one), and they keep their place in the shard's
//! limit: a caller who finds the limit reached closes the oldest parked one rather than wait.
//!
//! Closing a connection ends its backend, which costs the server a process exit: done during
//! a call, it competes for the CPU with the very operation the call serves (on two cores, it
//! stalled the next catalog statement of a provisioning by ~2 ms). So calls never close what
//! they park; upkeep does ([`SpaceConnections::tidy`]: those idle past [`IDLE_FOR`], and the
//! oldest beyond [`IDLE_CONNECTIONS`]), after each operation and on each pass of `serve`.
//!
//! Warm connections are parked connections into pooled databases nobody has claimed yet, opened
//! ahead of time and warmed (see `PgSpaces::keep_warm`), so that the provisioning that claims
//! one finds its backend started and its caches filled. At most [`WARM_CONNECTIONS`] per shard;
//! they do not expire, and are the last to be closed when the shard's limit is reached.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Result, SpaceError};

/// How many parked connections a shard's upkeep leaves open.
pub const IDLE_CONNECTIONS: usize = 4;

/// How long a parked connection is kept for its next call.
pub const IDLE_FOR: Duration = Duration::from_secs(5);

/// How many warm connections into pooled databases a shard's driver keeps at most.
pub const WARM_CONNECTIONS: usize = 2;

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
    warm: Mutex<VecDeque<Parked>>,
}

impl SpaceConnections {
    /// At most `limit` connections at once.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            parked: Mutex::new(VecDeque::new()),
            warm: Mutex::new(VecDeque::new()),
        }
    }

    /// A parked (or warm) connection into `database` with `search_path` that still answers,
    /// if any.
    pub(super) async fn take(&self, database: &str, search_path: &str) -> Option<SpaceConn> {
        let is_wanted = |p: &Parked| p.database == database && p.search_path == search_path;
        let found = {
            let mut parked = self.parked.lock().expect("parked connections");
            let at = parked.iter().rposition(is_wanted);
            at.and_then(|i| parked.remove(i))
        };
        let found = found.or_else(|| {
            let mut warm = self.warm.lock().expect("warm connections");
            let at = warm.iter().position(is_wanted);
            at.and_then(|i| warm.remove(i))
        })?;
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
            let oldest = oldest.or_else(|| self.warm.lock().expect("warm connections").pop_front());
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
    /// space. Closing surplus ones is upkeep's ([`Self::tidy`]); until then they are bounded by
    /// the shard's limit.
    pub(super) fn release(&self, database: &str, search_path: &str, conn: SpaceConn) {
        self.parked
            .lock()
            .expect("parked connections")
            .push_back(Parked {
                database: database.to_owned(),
                search_path: search_path.to_owned(),
                since: Instant::now(),
                conn,
            });
    }

    /// Closes the parked connections idle past [`IDLE_FOR`], and the oldest beyond
    /// [`IDLE_CONNECTIONS`]; returns how many it closed.
    pub(super) async fn tidy(&self) -> usize {
        let surplus = {
            let mut parked = self.parked.lock().expect("parked connections");
            let mut surplus = drain_where(&mut parked, |p| p.since.elapsed() > IDLE_FOR);
            let over = parked.len().saturating_sub(IDLE_CONNECTIONS);
            surplus.extend(parked.drain(..over));
            surplus
        };
        let closed = surplus.len();
        for p in surplus {
            let _ = p.conn.close().await;
        }
        closed
    }

    /// Keeps `conn`, just warmed, into the pooled database `database` until a call into it
    /// takes it (closing the oldest warm one when full).
    pub(super) fn keep_warm(&self, database: &str, conn: SpaceConn) {
        let evicted = {
            let mut warm = self.warm.lock().expect("warm connections");
            warm.push_back(Parked {
                database: database.to_owned(),
                search_path: "public".to_owned(),
                since: Instant::now(),
                conn,
            });
            (warm.len() > WARM_CONNECTIONS).then(|| warm.pop_front())
        };
        close_later(evicted.into_iter().flatten());
    }

    /// The pooled databases with a warm connection.
    pub(super) fn warm_databases(&self) -> Vec<String> {
        let warm = self.warm.lock().expect("warm connections");
        warm.iter().map(|p| p.database.clone()).collect()
    }

    /// Closes the parked and warm connections into `database`: before it is dropped.
    pub(super) async fn forget(&self, database: &str) {
        let mut gone = drain_where(&mut self.parked.lock().expect("parked connections"), |p| {
            p.database == database
        });
        gone.extend(drain_where(
            &mut self.warm.lock().expect("warm connections"),
            |p| p.database == database,
        ));
        for p in gone {
            let _ = p.conn.close().await;
        }
    }

    /// Closes every parked and warm connection.
    pub(super) async fn close_all(&self) {
        let mut gone: Vec<Parked> = self
            .parked
            .lock()
            .expect("parked connections")
            .drain(..)
            .collect();
        gone.extend(self.warm.lock().expect("warm connections").drain(..));
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
