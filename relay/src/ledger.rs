//! The relay's ledger: who is bound to which wallet, what each contributed per round as the
//! relay's own verifier scored it, and what was refused and why.
//!
//! SQLite, compiled in (the embedded default: one file in `--data-dir`, nothing to install), in
//! WAL mode so the HTTP handlers read while the swarm writes. The schema is versioned with
//! `user_version` ([`MIGRATIONS`]); a ledger written by a newer relay is refused at start rather
//! than rewritten. Every write that can be refused is checked inside one transaction, so a refused
//! binding or contribution leaves the ledger exactly as it was.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use alloy_primitives::Address;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use tabswarm_protocol::api::{LeaderboardEntry, PeerRecord, RejectionRecord, RoundRecord};
use tabswarm_protocol::identity::{self, BindingDomain, BindingError, SignedBinding};
use tabswarm_protocol::rollout::ScoredGroup;

/// File name of the ledger inside the relay's data folder.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// The contribution round `now` falls in: rounds are `unix time / round_secs` (`--round-secs`,
/// at least 1, checked when the swarm starts).
pub fn round_of(now: u64, round_secs: u64) -> u64 {
    now / round_secs.max(1)
}
/// Rejections kept (the oldest are pruned beyond this, so a flood cannot fill the disk).
pub const MAX_REJECTIONS: i64 = 100_000;
/// Rows a leaderboard answers at most.
pub const LEADERBOARD_ROWS: usize = 100;

/// The schema, one migration per step; never edit a released step, append a new one.
pub const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE bindings (
        peer_id      TEXT PRIMARY KEY,
        address      TEXT NOT NULL,
        nonce        TEXT NOT NULL,
        issued_at    INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        chain_id     INTEGER NOT NULL,
        signed       TEXT NOT NULL,
        received_at  INTEGER NOT NULL,
        chain_tx     TEXT
    );
    CREATE INDEX bindings_by_address ON bindings(address);
    CREATE TABLE used_nonces (
        address TEXT NOT NULL,
        nonce   TEXT NOT NULL,
        PRIMARY KEY (address, nonce)
    );
    CREATE TABLE contributions (
        round      INTEGER NOT NULL,
        peer_id    TEXT NOT NULL,
        address    TEXT NOT NULL,
        groups     INTEGER NOT NULL,
        rollouts   INTEGER NOT NULL,
        reward     REAL NOT NULL,
        last_seen  INTEGER NOT NULL,
        PRIMARY KEY (round, peer_id)
    );
    CREATE INDEX contributions_by_address ON contributions(address);
    CREATE TABLE rejections (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       INTEGER NOT NULL,
        peer_id  TEXT,
        kind     TEXT NOT NULL,
        reason   TEXT NOT NULL
    );
    CREATE INDEX rejections_by_peer ON rejections(peer_id);
    CREATE TABLE round_submissions (
        round    INTEGER PRIMARY KEY,
        tx       TEXT NOT NULL,
        at       INTEGER NOT NULL
    );",
    ),
    M::up(
        // Swarm-model updates the relay took into a version, credited to the sender's wallet.
        "CREATE TABLE model_updates (
        version  TEXT NOT NULL,
        peer_id  TEXT NOT NULL,
        address  TEXT NOT NULL,
        at       INTEGER NOT NULL,
        PRIMARY KEY (version, peer_id)
    );
    CREATE INDEX model_updates_by_address ON model_updates(address);",
    ),
    M::up(
        // Rollout groups already credited, so one re-published after a restart (when the gossip
        // layer's memory of it is gone) is not credited again. The newest CREDITED_GROUPS kept.
        "CREATE TABLE credited_groups (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        peer_id         TEXT NOT NULL,
        question        TEXT NOT NULL,
        policy_version  INTEGER NOT NULL,
        UNIQUE (peer_id, question, policy_version)
    );",
    ),
];

/// How many credited groups the ledger remembers to refuse crediting one twice (as many as the
/// relay's gossip layer remembers in memory; the oldest are forgotten first).
pub const CREDITED_GROUPS: u64 = 200_000;

/// What recording a message's groups credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credited {
    /// The wallet credited.
    pub address: Address,
    /// Groups credited now: those not credited before (0 when every one was).
    pub groups: usize,
}

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("ledger {path}: {reason}")]
pub struct LedgerError {
    pub path: PathBuf,
    pub reason: String,
}

/// Why a binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindRefusal {
    #[error("{0}")]
    Invalid(#[from] BindingError),
    #[error("nonce {nonce} was already used by {address}: sign a new binding")]
    NonceReused { address: Address, nonce: String },
    #[error(
        "peer {peer_id} is already bound to {bound} until {expires_at}; rotate the peer key to bind it to {claimed}"
    )]
    PeerTaken { peer_id: String, bound: Address, claimed: Address, expires_at: u64 },
    #[error("the ledger cannot be written: {0}")]
    Storage(String),
    /// The disk holding the ledger is full: nothing was stored, what was stored before is kept.
    #[error("the relay's disk is full: the binding was not stored; try again later")]
    DiskFull,
    /// The ledger's folder became read-only (a file system remounted read-only after errors, a
    /// permission change): nothing was stored, what was stored before is kept.
    #[error("the relay's data folder is read-only: the binding was not stored; try again later")]
    ReadOnly,
}

/// What a failed write met: a full disk and a read-only file system are told apart from other
/// faults, logged once per write with what the operator can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFault {
    DiskFull,
    ReadOnly,
    Other,
}

impl WriteFault {
    fn of(e: &rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => {
                tracing::error!("ledger: the disk is full ({e}); nothing new is stored until there is room");
                Self::DiskFull
            }
            Some(rusqlite::ErrorCode::ReadOnly) => {
                tracing::error!(
                    "ledger: the data folder is read-only ({e}); nothing new is stored until it is writable"
                );
                Self::ReadOnly
            }
            _ => Self::Other,
        }
    }
}

impl BindRefusal {
    /// A failed statement: a full disk or a read-only folder is told apart, the rest is a
    /// storage fault.
    fn from_sqlite(e: rusqlite::Error) -> Self {
        match WriteFault::of(&e) {
            WriteFault::DiskFull => Self::DiskFull,
            WriteFault::ReadOnly => Self::ReadOnly,
            WriteFault::Other => Self::Storage(e.to_string()),
        }
    }

    /// A short, stable name for the reason.
    pub fn kind(&self) -> &'static str {
        match self {
            BindRefusal::Invalid(e) => e.kind(),
            BindRefusal::NonceReused { .. } => "nonce_reused",
            BindRefusal::PeerTaken { .. } => "peer_taken",
            BindRefusal::Storage(_) => "storage",
            BindRefusal::DiskFull => "disk_full",
            BindRefusal::ReadOnly => "read_only",
        }
    }
}

/// What accepting a binding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A new binding (or a renewal by the same wallet with a fresh nonce).
    New(Address),
    /// This very binding was already stored (re-posted or re-announced): nothing changed.
    Known(Address),
}

impl Bound {
    pub fn address(self) -> Address {
        match self {
            Bound::New(a) | Bound::Known(a) => a,
        }
    }
}

/// Why a contribution was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unattributed {
    #[error("peer {0} is not bound to a wallet: publish a binding first")]
    Unbound(String),
    #[error("peer {peer_id}'s binding expired at {expires_at}: sign a new one")]
    Expired { peer_id: String, expires_at: u64 },
    #[error("the ledger cannot be written: {0}")]
    Storage(String),
    #[error("the relay's disk is full: the contribution was not credited")]
    DiskFull,
    #[error("the relay's data folder is read-only: the contribution was not credited")]
    ReadOnly,
}

impl Unattributed {
    pub fn kind(&self) -> &'static str {
        match self {
            Unattributed::Unbound(_) => "unbound_peer",
            Unattributed::Expired { .. } => "binding_expired",
            Unattributed::Storage(_) => "storage",
            Unattributed::DiskFull => "disk_full",
            Unattributed::ReadOnly => "read_only",
        }
    }

    fn from_sqlite(e: rusqlite::Error) -> Self {
        match WriteFault::of(&e) {
            WriteFault::DiskFull => Self::DiskFull,
            WriteFault::ReadOnly => Self::ReadOnly,
            WriteFault::Other => Self::Storage(e.to_string()),
        }
    }
}

/// One round's totals for one address (what a relay submits on chain).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundTotal {
    pub address: Address,
    pub reward: f64,
    pub rollouts: u64,
}

/// The ledger; cheap to clone (one connection behind a mutex: SQLite serialises writers anyway,
/// and every statement here is short).
#[derive(Debug, Clone)]
pub struct Ledger {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn storage(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Ledger {
    /// Opens (creating if missing) the ledger at `path`, switches it to WAL and migrates it to
    /// the current schema.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let error = |reason: String| LedgerError { path: path.to_path_buf(), reason };
        let mut conn = Connection::open(path).map_err(|e| error(e.to_string()))?;
        Self::prepare(&mut conn).map_err(error)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path: path.to_path_buf() })
    }

    /// A ledger in memory (tests, benchmarks).
    pub fn in_memory() -> Result<Self, LedgerError> {
        let error = |reason: String| LedgerError { path: ":memory:".into(), reason };
        let mut conn = Connection::open_in_memory().map_err(|e| error(e.to_string()))?;
        Self::prepare(&mut conn).map_err(error)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path: ":memory:".into() })
    }

    fn prepare(conn: &mut Connection) -> Result<(), String> {
        // WAL: readers do not block the writer; NORMAL sync is durable across process crashes
        // (a power cut may lose the last transactions, never corrupt the file).
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(storage)?;
        if mode != "wal" && mode != "memory" {
            return Err(format!("cannot switch to WAL (journal mode stays {mode})"));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(storage)?;
        Migrations::from_slice(MIGRATIONS).to_latest(conn).map_err(|e| match e {
            rusqlite_migration::Error::MigrationDefinition(
                rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
            ) => "it was written by a newer relay (schema ahead of this build); upgrade the relay".to_owned(),
            other => format!("cannot migrate the schema: {other}"),
        })
    }

    /// Where the ledger lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every write is a transaction).
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every write fail as on a read-only file system (SQLite's `SQLITE_READONLY`; tests).
    #[cfg(test)]
    pub(crate) fn make_read_only(&self, read_only: bool) {
        self.lock().pragma_update(None, "query_only", read_only).expect("query_only");
    }

    /// Forbids the database to grow past its present size, as a full disk would (tests).
    #[cfg(test)]
    pub(crate) fn fill_the_disk(&self) {
        let conn = self.lock();
        let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("pages");
        let _: u64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0)).expect("cap");
    }

    /// The schema version the file is at (what the migration tests check).
    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> i64 {
        self.lock().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap_or(-1)
    }

    /// Verifies `signed` against `domain` at `now`, then stores it unless its nonce was used or its
    /// peer id is bound to another wallet (until that binding expires).
    pub fn bind(&self, signed: &SignedBinding, domain: &BindingDomain, now: u64) -> Result<Bound, BindRefusal> {
        let address = identity::verify(signed, domain, now)?;
        let b = &signed.binding;
        let (addr, nonce) = (address.to_checksum(None), b.nonce.to_string());
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(BindRefusal::from_sqlite)?;
        let current: Option<(String, String, u64)> = tx
            .query_row("SELECT address, nonce, expires_at FROM bindings WHERE peer_id = ?1", [&b.peer_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(BindRefusal::from_sqlite)?;
        if let Some((bound, bound_nonce, expires_at)) = &current {
            if *bound == addr && *bound_nonce == nonce {
                return Ok(Bound::Known(address));
            }
            if *bound != addr && *expires_at > now {
                return Err(BindRefusal::PeerTaken {
                    peer_id: b.peer_id.clone(),
                    bound: bound.parse().map_err(|e| BindRefusal::Storage(format!("stored address: {e}")))?,
                    claimed: address,
                    expires_at: *expires_at,
                });
            }
        }
        let fresh = tx
            .execute("INSERT OR IGNORE INTO used_nonces (address, nonce) VALUES (?1, ?2)", params![addr, nonce])
            .map_err(BindRefusal::from_sqlite)?;
        if fresh == 0 {
            return Err(BindRefusal::NonceReused { address, nonce });
        }
        let json = serde_json::to_string(signed).map_err(|e| BindRefusal::Storage(e.to_string()))?;
        tx.execute(
            "INSERT INTO bindings (peer_id, address, nonce, issued_at, expires_at, chain_id, signed, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(peer_id) DO UPDATE SET address = ?2, nonce = ?3, issued_at = ?4, expires_at = ?5,
                 chain_id = ?6, signed = ?7, received_at = ?8, chain_tx = NULL",
            params![b.peer_id, addr, nonce, b.issued_at, b.expires_at, b.chain_id, json, now],
        )
        .map_err(BindRefusal::from_sqlite)?;
        tx.commit().map_err(BindRefusal::from_sqlite)?;
        Ok(Bound::New(address))
    }

    /// The wallet `peer_id` is bound to at `now`.
    pub fn address_of(&self, peer_id: &str, now: u64) -> Result<Address, Unattributed> {
        let row: Option<(String, u64)> = self
            .lock()
            .query_row("SELECT address, expires_at FROM bindings WHERE peer_id = ?1", [peer_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| Unattributed::Storage(e.to_string()))?;
        match row {
            None => Err(Unattributed::Unbound(peer_id.to_owned())),
            Some((_, expires_at)) if expires_at <= now => {
                Err(Unattributed::Expired { peer_id: peer_id.to_owned(), expires_at })
            }
            Some((address, _)) => address.parse().map_err(|e| Unattributed::Storage(format!("stored address: {e}"))),
        }
    }

    /// Records groups `peer_id` published in `round`, credited with the rewards this relay's
    /// verifier gave them (never a claimed figure). Refused, with nothing written, when the peer
    /// is not bound at `now`. A group (publisher, question, policy version) already credited is
    /// not credited again, across restarts too; the marks and the credit are one transaction, so
    /// a crash leaves both or neither.
    pub fn record(
        &self,
        round: u64,
        peer_id: &str,
        groups: &[ScoredGroup],
        now: u64,
    ) -> Result<Credited, Unattributed> {
        let address = self.address_of(peer_id, now)?;
        let failed = Unattributed::from_sqlite;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(failed)?;
        let (mut credited, mut rollouts, mut reward) = (0usize, 0usize, 0f64);
        {
            let mut mark = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO credited_groups (peer_id, question, policy_version) VALUES (?1, ?2, ?3)",
                )
                .map_err(failed)?;
            for g in groups {
                let question = g.group.question.to_string();
                if mark.execute(params![peer_id, question, g.group.policy_version]).map_err(failed)? == 1 {
                    credited += 1;
                    rollouts += g.scores.len();
                    reward += g.scores.iter().map(|s| f64::from(s.reward)).sum::<f64>();
                }
            }
        }
        if credited > 0 {
            tx.execute(
                "INSERT INTO contributions (round, peer_id, address, groups, rollouts, reward, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(round, peer_id) DO UPDATE SET groups = groups + ?4, rollouts = rollouts + ?5,
                     reward = reward + ?6, last_seen = ?7",
                params![round, peer_id, address.to_checksum(None), credited, rollouts, reward, now],
            )
            .map_err(failed)?;
            tx.execute(
                "DELETE FROM credited_groups WHERE id <= (SELECT MAX(id) FROM credited_groups) - ?1",
                [CREDITED_GROUPS],
            )
            .map_err(failed)?;
        }
        tx.commit().map_err(failed)?;
        Ok(Credited { address, groups: credited })
    }

    /// Credits `peer_id`'s wallet with an update to swarm version `version` (the version it was
    /// made against). Refused, with nothing written, when the peer is not bound at `now`; a second
    /// update for the same version is not counted twice.
    pub fn record_update(&self, version: &str, peer_id: &str, now: u64) -> Result<Address, Unattributed> {
        let address = self.address_of(peer_id, now)?;
        self.lock()
            .execute(
                "INSERT OR IGNORE INTO model_updates (version, peer_id, address, at) VALUES (?1, ?2, ?3, ?4)",
                params![version, peer_id, address.to_checksum(None), now],
            )
            .map_err(Unattributed::from_sqlite)?;
        Ok(address)
    }

    /// Notes a refused item (binding, message, contribution) with its reason. Never fails the
    /// caller: a refusal that cannot be logged is traced instead.
    pub fn reject(&self, peer_id: Option<&str>, kind: &str, reason: &str, now: u64) {
        let conn = self.lock();
        let result = conn
            .execute(
                "INSERT INTO rejections (at, peer_id, kind, reason) VALUES (?1, ?2, ?3, ?4)",
                params![now, peer_id, kind, reason],
            )
            .and_then(|_| {
                conn.execute(
                    "DELETE FROM rejections WHERE id <= (SELECT MAX(id) FROM rejections) - ?1",
                    [MAX_REJECTIONS],
                )
            });
        if let Err(e) = result {
            tracing::warn!(kind, "cannot log a rejection in the ledger: {e}");
        }
    }

    /// Addresses by verified reward, highest first.
    pub fn leaderboard(&self) -> Result<Vec<LeaderboardEntry>, String> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT address, SUM(reward), SUM(rollouts), COUNT(DISTINCT peer_id), MAX(last_seen)
                 FROM contributions GROUP BY address ORDER BY SUM(reward) DESC, address LIMIT ?1",
            )
            .map_err(storage)?;
        let rows = statement
            .query_map([LEADERBOARD_ROWS], |r| {
                Ok(LeaderboardEntry {
                    address: r.get(0)?,
                    reward: r.get(1)?,
                    rollouts: r.get(2)?,
                    peers: r.get(3)?,
                    last_seen: r.get(4)?,
                })
            })
            .map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// Everything the ledger knows about one peer; `None` when it knows nothing.
    pub fn peer(&self, peer_id: &str) -> Result<Option<PeerRecord>, String> {
        let conn = self.lock();
        let binding: Option<(String, u64, u64, Option<String>)> = conn
            .query_row(
                "SELECT address, issued_at, expires_at, chain_tx FROM bindings WHERE peer_id = ?1",
                [peer_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(storage)?;
        let mut statement = conn
            .prepare_cached(
                "SELECT round, groups, rollouts, reward, last_seen FROM contributions
                 WHERE peer_id = ?1 ORDER BY round DESC LIMIT 50",
            )
            .map_err(storage)?;
        let rounds: Vec<RoundRecord> = statement
            .query_map([peer_id], |r| {
                Ok(RoundRecord {
                    round: r.get(0)?,
                    groups: r.get(1)?,
                    rollouts: r.get(2)?,
                    reward: r.get(3)?,
                    last_seen: r.get(4)?,
                })
            })
            .map_err(storage)?
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        let mut statement = conn
            .prepare_cached("SELECT at, kind, reason FROM rejections WHERE peer_id = ?1 ORDER BY id DESC LIMIT 20")
            .map_err(storage)?;
        let rejections: Vec<RejectionRecord> = statement
            .query_map([peer_id], |r| Ok(RejectionRecord { at: r.get(0)?, kind: r.get(1)?, reason: r.get(2)? }))
            .map_err(storage)?
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        let updates: u64 = conn
            .query_row("SELECT COUNT(*) FROM model_updates WHERE peer_id = ?1", [peer_id], |r| r.get(0))
            .map_err(storage)?;
        if binding.is_none() && rounds.is_empty() && rejections.is_empty() && updates == 0 {
            return Ok(None);
        }
        // Over every round, not only the newest listed (a peer's total, as the leaderboard's).
        let (reward, rollouts): (f64, u64) = conn
            .query_row(
                "SELECT COALESCE(SUM(reward), 0.0), COALESCE(SUM(rollouts), 0) FROM contributions WHERE peer_id = ?1",
                [peer_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(storage)?;
        let (address, issued_at, expires_at, chain_tx) = match binding {
            Some((a, i, e, t)) => (Some(a), Some(i), Some(e), t),
            None => (None, None, None, None),
        };
        Ok(Some(PeerRecord {
            peer_id: peer_id.to_owned(),
            address,
            issued_at,
            expires_at,
            chain_tx,
            on_chain: None,
            reward,
            rollouts,
            rounds,
            rejections,
            model_updates: updates,
        }))
    }

    /// Totals per address for one round (what is submitted on chain), by address.
    pub fn round_totals(&self, round: u64) -> Result<Vec<RoundTotal>, String> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT address, SUM(reward), SUM(rollouts) FROM contributions WHERE round = ?1
                 GROUP BY address ORDER BY address",
            )
            .map_err(storage)?;
        let rows = statement
            .query_map([round], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?, r.get::<_, u64>(2)?)))
            .map_err(storage)?;
        rows.map(|row| {
            let (address, reward, rollouts) = row.map_err(storage)?;
            Ok(RoundTotal { address: address.parse().map_err(storage)?, reward, rollouts })
        })
        .collect()
    }

    /// Bindings not yet submitted on chain (their stored signed form), oldest first.
    pub fn unsubmitted_bindings(&self, now: u64) -> Result<Vec<SignedBinding>, String> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT signed FROM bindings WHERE chain_tx IS NULL AND expires_at > ?1 ORDER BY received_at",
            )
            .map_err(storage)?;
        let rows = statement.query_map([now], |r| r.get::<_, String>(0)).map_err(storage)?;
        rows.map(|json| serde_json::from_str(&json.map_err(storage)?).map_err(storage)).collect()
    }

    /// Notes that `peer_id`'s binding is on chain in transaction `tx`.
    pub fn mark_binding_submitted(&self, peer_id: &str, tx: &str) -> Result<(), String> {
        self.lock()
            .execute("UPDATE bindings SET chain_tx = ?2 WHERE peer_id = ?1", params![peer_id, tx])
            .map(drop)
            .map_err(storage)
    }

    /// Rounds before `before` with contributions that have not been submitted on chain.
    pub fn unsubmitted_rounds(&self, before: u64) -> Result<Vec<u64>, String> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT DISTINCT round FROM contributions WHERE round < ?1
                 AND round NOT IN (SELECT round FROM round_submissions) ORDER BY round",
            )
            .map_err(storage)?;
        let rows = statement.query_map([before], |r| r.get(0)).map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// Notes that `round`'s totals are on chain in transaction `tx`.
    pub fn mark_round_submitted(&self, round: u64, tx: &str, now: u64) -> Result<(), String> {
        self.lock()
            .execute(
                "INSERT OR REPLACE INTO round_submissions (round, tx, at) VALUES (?1, ?2, ?3)",
                params![round, tx, now],
            )
            .map(drop)
            .map_err(storage)
    }

    /// How many rows each table holds (what the tests check after a refusal or a crash).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> Result<LedgerCounts, String> {
        let conn = self.lock();
        let count = |table: &str| -> Result<u64, String> {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).map_err(storage)
        };
        Ok(LedgerCounts {
            bindings: count("bindings")?,
            contributions: count("contributions")?,
            rejections: count("rejections")?,
        })
    }
}

/// Row counts of the ledger's tables.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerCounts {
    pub bindings: u64,
    pub contributions: u64,
    pub rejections: u64,
}

#[cfg(test)]
pub(crate) mod tests;
