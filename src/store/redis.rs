//! The Redis backend: synchronous connections (the `redis` crate) to one server (`redis://`,
//! `rediss://`) or to a Redis Cluster (`redis+cluster://`, `rediss+cluster://`), a small pool of
//! them so that threads sharing a scorer do not queue behind one socket, a timeout on every call.
//!
//! Keys (all beginning with the prefix exactly as given; hash tags keep each user's, each
//! destination's and each id's keys in one Redis Cluster slot):
//! - `P{u:USER}`: the user's record (string; the snapshot encoding of one user);
//! - `P{u:USER}:w`: the ids of the user's withdrawals applied in the last day (sorted set, id ->
//!   wall-clock ms), so that a record resumed after a crash never applies one twice;
//! - `P{d:DEST}`, `P{d:DEST}:z` and `P{d:DEST}:f`: the destination's payers (hash and sorted
//!   set) and their earliest payments (hash; `dest_others_first_days`), see `scripts.rs`;
//! - `P{g:start}`: the earliest time of any event recorded (`state_days`; a sorted set whose
//!   one member `t` has that time in microseconds as its score, lowered with `ZADD LT`, so
//!   that the order events arrive in does not matter; exact for times below 2^53
//!   microseconds, as every time of the store: see `scripts`);
//! - `P{w:ID}`: a processed withdrawal id (`1` when cancelled or imported; `c:DIGEST:SECONDS`
//!   when claimed by a completed withdrawal whose content hashes to DIGEST (48 bits: it only
//!   tells a resumed record from another one reusing its id), at wall-clock SECONDS).
//!
//! Scoring is one round trip (a pipeline: GET the user, EXISTS the id, EVALSHA the count,
//! ZSCORE the earliest event).
//! Every write is a step on one slot, so that one protocol serves a single server and a
//! cluster (see `record_withdrawal` and the README's "Running a fleet").

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use redis::{Cmd, ConnectionLike, Value};
use sha2::Digest;

use super::scripts::{DEST_RECORD, DEST_USERS, USER_CAS};
use crate::error::Error;
use crate::event::{Event, Status, Withdrawal};
use crate::state::snapshot::{decode_user, encode_user};
use crate::state::{
    others_first_days, state_days, user_hash, Earliest, TxFeatures, UserState, DEST_RETENTION,
    DEST_TIMES, MAX_DEST_USERS,
};
use crate::time::MICROS_PER_DAY;

/// Connecting (and the first PING) must succeed within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// Every later read or write must complete within this.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Compare-and-set attempts before a record gives up (each failure means another process
/// recorded the same user in between; a few in a row are already rare).
const MAX_ATTEMPTS: usize = 200;
/// Wall-clock safety net on every key: 800 days without a write. Never decides a feature
/// (retention follows event time; this only drops keys nobody touched for longer than the
/// contract's 400-day horizon).
pub(crate) const KEY_TTL_SECONDS: u64 = 800 * 86_400;
/// How long a user remembers the ids of the withdrawals applied to its record (`P{u:USER}:w`).
const APPLIED_IDS_MS: u64 = 24 * 3_600_000;
/// A claimed id whose record was interrupted (a crash, a lost connection) is resumed by the same
/// withdrawal sent again within this; later it is only a duplicate. Half of `APPLIED_IDS_MS`, so
/// that hosts whose clocks differ by up to 12 hours still find the applied id.
const RESUME_MS: u64 = APPLIED_IDS_MS / 2;

/// What the URL named: one server or a cluster.
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A pooled connection.
enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(con) => con,
            Conn::Cluster(con) => &mut **con,
        }
    }

    /// Sends `pipe` (no `atomic`, no `ignore`: every command's reply comes back, in order). On
    /// a cluster each node gets its own commands, all sent before any reply is read: still one
    /// round trip, but no order holds between commands of different slots.
    fn query<T: redis::FromRedisValue>(&mut self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        match self {
            Conn::Single(con) => pipe.query(con),
            Conn::Cluster(con) => {
                let mut cluster = redis::cluster::cluster_pipe();
                for cmd in pipe.cmd_iter() {
                    cluster.add_command(cmd.clone());
                }
                cluster.query(con)
            }
        }
    }
}

pub(crate) struct RedisStore {
    client: Client,
    url: String,
    prefix: String,
    dest_users_sha: String,
    /// What a failed connection says: `cannot connect`, over TLS when the URL asks for it (a
    /// certificate the host does not trust fails there).
    cannot_connect: &'static str,
    idle: Mutex<Vec<Conn>>,
    /// An upper bound of the earliest event the store holds (`P{g:start}`), from this
    /// process's reads and writes of it: the store's only ever goes down.
    known_start: Earliest,
}

/// What a state read returned.
struct Fetched {
    user: Option<UserState>,
    id_seen: bool,
    /// The other payers in 24 hours and 30 days, and the earliest other payment.
    dest_users: (i64, i64, Option<i64>),
    /// The earliest event recorded (`state_days`).
    earliest: Option<i64>,
}

/// What the user's compare-and-set answered (`scripts::USER_CAS`).
enum Cas {
    Applied,
    /// The withdrawal's id is among the user's applied ones: nothing changed.
    AppliedBefore,
    /// The record changed since it was read: here it is now.
    Changed(Option<Vec<u8>>),
}

/// How a record ended, besides a failing store.
enum Outcome {
    Done,
    Duplicate,
    Failed(Error),
}

/// A withdrawal's id and where its record marks the user as applied (for `compare_and_set`).
struct Applying<'a> {
    id: &'a str,
    ids_key: String,
    now_ms: u64,
}

impl RedisStore {
    /// `url`: `redis://` or `rediss://` (one server), `redis+cluster://` or
    /// `rediss+cluster://` with one or more comma-separated `HOST:PORT` (a cluster's seed nodes).
    pub(crate) fn open(url: &str, prefix: &str) -> Result<RedisStore, Error> {
        let shown = super::redact(url);
        let bad = |e: redis::RedisError| Error::store(format!("{shown}: bad address: {e}"));
        let client = match cluster_nodes(url) {
            Some(nodes) => Client::Cluster(
                redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(IO_TIMEOUT)
                    // A node that stays down fails the call (the host decides), after two
                    // tries at most (the crate's default is 16, with growing waits).
                    .retries(2)
                    .build()
                    .map_err(bad)?,
            ),
            None => Client::Single(redis::Client::open(url).map_err(bad)?),
        };
        let store = RedisStore {
            client,
            url: shown,
            prefix: prefix.to_owned(),
            dest_users_sha: redis::Script::new(DEST_USERS).get_hash().to_owned(),
            cannot_connect: if url.starts_with("rediss") {
                "cannot connect over TLS (a server certificate signed by a private CA needs \
                 SSL_CERT_FILE=that CA's PEM file)"
            } else {
                "cannot connect"
            },
            idle: Mutex::new(Vec::new()),
            known_start: Earliest::default(),
        };
        let mut con = store.connect()?;
        store
            .load_scripts(&mut con)
            .map_err(|e| store.failure("cannot load the store's scripts", &e))?;
        store.idle.lock().push(con);
        Ok(store)
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} (prefix {:?})", self.url, self.prefix)
    }

    fn connect(&self) -> Result<Conn, Error> {
        let mut con = match &self.client {
            Client::Single(client) => {
                let con = client
                    .get_connection_with_timeout(CONNECT_TIMEOUT)
                    .map_err(|e| self.failure(self.cannot_connect, &e))?;
                con.set_read_timeout(Some(IO_TIMEOUT))
                    .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
                    .map_err(|e| self.failure(self.cannot_connect, &e))?;
                Conn::Single(con)
            }
            Client::Cluster(client) => Conn::Cluster(Box::new(
                client
                    .get_connection()
                    .map_err(|e| self.failure(self.cannot_connect, &e))?,
            )),
        };
        redis::cmd("PING")
            .query::<()>(con.like())
            .map_err(|e| self.failure(self.cannot_connect, &e))?;
        Ok(con)
    }

    /// Loads the scoring script (on every master of a cluster).
    fn load_scripts(&self, con: &mut Conn) -> redis::RedisResult<()> {
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(DEST_USERS)
            .query::<Value>(con.like())
            .map(drop)
    }

    fn failure(&self, what: &str, e: &redis::RedisError) -> Error {
        Error::store(format!("{}: {what}: {e}", self.url))
    }

    /// Runs `op` on a pooled connection. A connection that failed is dropped, not pooled
    /// again; a script the server forgot (a restart) is loaded again and `op` retried once.
    fn with_connection<T>(
        &self,
        mut op: impl FnMut(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let pooled = self.idle.lock().pop();
        let mut con = match pooled {
            Some(con) => con,
            None => self.connect()?,
        };
        let result = match op(&mut con) {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.load_scripts(&mut con).and_then(|()| op(&mut con))
            }
            other => other,
        };
        match result {
            Ok(value) => {
                self.idle.lock().push(con);
                Ok(value)
            }
            Err(e) => Err(self.failure("request failed", &e)),
        }
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}{{u:{user}}}", self.prefix)
    }

    /// The payers hash, the payers sorted set and the earliest payments hash (see `scripts`).
    fn dest_keys(&self, destination: &str) -> (String, String, String) {
        let hash = format!("{}{{d:{destination}}}", self.prefix);
        let zset = format!("{hash}:z");
        let first = format!("{hash}:f");
        (hash, zset, first)
    }

    fn id_key(&self, id: &str) -> String {
        format!("{}{{w:{id}}}", self.prefix)
    }

    /// The earliest event recorded (`state_days`): member `t` of this sorted set.
    fn start_key(&self) -> String {
        format!("{}{{g:start}}", self.prefix)
    }

    /// Lowers the earliest event recorded to `ts` (no change when it is earlier already).
    /// Returns false, adding nothing, when the store holds `ts` or an earlier time already, as
    /// far as this process knows (`known_start`): almost every event after the first, so the
    /// fleet's one shared key is not written on every event. The key has no TTL: it is one
    /// small key, and expiring it would put the rules back in cold-start mode.
    fn lower_start(&self, pipe: &mut redis::Pipeline, ts: i64) -> bool {
        if self.known_start.get().is_some_and(|known| known <= ts) {
            return false;
        }
        pipe.cmd("ZADD")
            .arg(self.start_key())
            .arg("LT")
            .arg(ts)
            .arg("t")
            .ignore();
        true
    }

    /// PING (every master of a cluster).
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.with_connection(|con| redis::cmd("PING").query::<()>(con.like()))
    }

    /// Everything a score reads, in one round trip: the user's record, whether the id was
    /// recorded, and the destination's payer counts.
    fn fetch(&self, w: &Withdrawal, destination: &str) -> Result<Fetched, Error> {
        /// The user's record, whether the id was recorded, and `DEST_USERS`'s reply.
        type Reply = (Option<Vec<u8>>, bool, (i64, i64, i64, i64), Option<f64>);
        let user_key = self.user_key(&w.user_id);
        let id_key = self.id_key(&w.id);
        let (hash, zset, first) = self.dest_keys(destination);
        let now = w.ts.as_micros();
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY).to_string();
        let day_start = now.saturating_sub(MICROS_PER_DAY).to_string();
        let now = now.to_string();
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(&user_key)
            .cmd("EXISTS")
            .arg(&id_key)
            .cmd("EVALSHA")
            .arg(&self.dest_users_sha)
            .arg(3)
            .arg(&hash)
            .arg(&zset)
            .arg(&first)
            .arg(&w.user_id)
            .arg(&now)
            .arg(&month_start)
            .arg(&day_start)
            .arg(user_hash(&w.user_id).to_string())
            .arg(DEST_RETENTION)
            .cmd("ZSCORE")
            .arg(self.start_key())
            .arg("t");
        let (bytes, id_seen, (day, month, found, first), start): Reply =
            self.with_connection(|con| con.query(&pipe))?;
        let dest_users = (day, month, (found == 1).then_some(first));
        let user = bytes.map(|b| self.decode(&user_key, &b)).transpose()?;
        // A time in microseconds is below 2^53: the score holds it exactly.
        let earliest = start.map(|t| t as i64);
        if let Some(t) = earliest {
            self.known_start.lower(t);
        }
        Ok(Fetched {
            user,
            id_seen,
            dest_users,
            earliest,
        })
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<UserState, Error> {
        decode_user(bytes).map_err(|m| {
            Error::store(format!(
                "{}: key {key:?} does not hold a riskgate user record ({m})",
                self.url
            ))
        })
    }

    /// The features a withdrawal sees (contract section 2), computed by the same code as the
    /// in-process state, and whether its id was recorded already.
    pub(crate) fn features(
        &self,
        w: &Withdrawal,
        destination: &str,
    ) -> Result<(TxFeatures, bool), Error> {
        let fetched = self.fetch(w, destination)?;
        let mut f = TxFeatures::empty(w);
        if let Some(user) = &fetched.user {
            user.fill(
                &mut f,
                w.ts.as_micros(),
                destination,
                w.device_id.as_deref(),
            );
        }
        let (day, month, first) = fetched.dest_users;
        (f.dest_users_24h, f.dest_users_30d) = (day, month);
        f.dest_others_first_days = others_first_days(first, w.ts.as_micros());
        f.state_days = state_days(fetched.earliest, w.ts.as_micros());
        Ok((f, fetched.id_seen))
    }

    /// Records an event as the in-process state does; a withdrawal's id is marked processed
    /// (`Err(Duplicate)` and no change when it was marked before).
    pub(crate) fn record(&self, event: &Event) -> Result<(), Error> {
        let ts = event.ts().as_micros();
        match event {
            Event::Withdrawal(w) => self.record_withdrawal_event(w),
            Event::PasswordReset { user_id, .. } => {
                self.update_user(user_id, ts, |u| u.record_reset(ts))
            }
            Event::Login {
                user_id, device_id, ..
            } => self.update_user(user_id, ts, |u| u.record_device(device_id, ts)),
        }
    }

    /// A withdrawal: completed, it enters history with its id; cancelled, only its id is kept.
    pub(crate) fn record_withdrawal_event(&self, w: &Withdrawal) -> Result<(), Error> {
        match w.status {
            Status::Completed => self.record_withdrawal(w),
            Status::Cancelled => self.mark_id(&w.id),
        }
    }

    /// A cancelled withdrawal: only its id is remembered.
    fn mark_id(&self, id: &str) -> Result<(), Error> {
        let key = self.id_key(id);
        let set: Option<String> = self.with_connection(|con| {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(KEY_TTL_SECONDS)
                .query(con.like())
        })?;
        match set {
            Some(_) => Ok(()),
            None => Err(Error::duplicate(id)),
        }
    }

    /// A completed withdrawal, in steps that each touch one slot (two round trips):
    ///
    /// 1. claim the id (`SET P{w:ID} c:DIGEST:SECONDS NX GET`, DIGEST naming what the withdrawal
    ///    records) and read the user's record, in one pipeline. An id held already is a
    ///    duplicate, unless it holds this very withdrawal's claim from less than `RESUME_MS`
    ///    ago: an earlier attempt stopped midway, and this one resumes it;
    /// 2. compare-and-set the user's record (`USER_CAS` on `P{u:USER}` and `P{u:USER}:w`: the
    ///    new record only if the stored one is still the one read (sent back whole), and only
    ///    if the id is not among the user's applied ones, to which it is added), pipelined with
    ///    the destination script (which ignores a (user, time) it holds already). A record
    ///    changed meanwhile comes back in the script's reply, is updated again and set again.
    ///
    /// An interruption anywhere leaves the id claimed, the user applied or not, the
    /// destination recorded or not; the same withdrawal sent again within `RESUME_MS` finishes
    /// what is missing and answers `Duplicate` when the user was applied already (the answer a
    /// retry gets once a record completed). Two processes resuming the same claim at once apply
    /// it once: the user's applied ids decide, in the same script as the record.
    fn record_withdrawal(&self, w: &Withdrawal) -> Result<(), Error> {
        let destination = crate::event::normalize_address(&w.destination);
        let address: Arc<str> = Arc::from(destination.as_ref());
        let (hash, zset, first) = self.dest_keys(&destination);
        let ts = w.ts.as_micros();
        let now_ms = wall_clock_ms();
        let digest = claim_digest(w, &destination);
        let claim = format!("c:{digest}:{}", now_ms / 1000);
        let id_key = self.id_key(&w.id);
        let user_key = self.user_key(&w.user_id);
        let mut dest = redis::cmd("EVAL");
        dest.arg(DEST_RECORD)
            .arg(3)
            .arg(&hash)
            .arg(&zset)
            .arg(&first)
            .arg(&w.user_id)
            .arg(ts)
            .arg(DEST_RETENTION)
            .arg(MAX_DEST_USERS)
            .arg(DEST_TIMES)
            .arg(KEY_TTL_SECONDS)
            .arg(user_hash(&w.user_id).to_string());
        let mut read = redis::pipe();
        read.cmd("SET")
            .arg(&id_key)
            .arg(&claim)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(KEY_TTL_SECONDS)
            .cmd("GET")
            .arg(&user_key);
        let applying = Applying {
            id: &w.id,
            ids_key: format!("{user_key}:w"),
            now_ms,
        };
        let update = |u: &mut UserState| {
            u.record_withdrawal(address.clone(), ts, w.amount_usd, w.device_id.as_deref())
        };
        let outcome = self.with_connection(|con| {
            let (held, bytes): (Option<String>, Option<Vec<u8>>) = con.query(&read)?;
            if let Some(held) = held {
                if !resumable(&held, &digest, now_ms) {
                    return Ok(Outcome::Duplicate);
                }
            }
            self.compare_and_set(
                con,
                &w.user_id,
                ts,
                Some(&applying),
                Some(&dest),
                bytes,
                &update,
            )
        })?;
        Self::finish(outcome, &w.id)
    }

    /// A login or a password reset: the user's record read, then compare-and-set (two round
    /// trips). Recorded twice (a retry after a failure), it changes no feature.
    fn update_user(
        &self,
        user_id: &str,
        ts: i64,
        update: impl Fn(&mut UserState),
    ) -> Result<(), Error> {
        let user_key = self.user_key(user_id);
        let outcome = self.with_connection(|con| {
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&user_key).query(con.like())?;
            self.compare_and_set(con, user_id, ts, None, None, bytes, &update)
        })?;
        Self::finish(outcome, "")
    }

    fn finish(outcome: Outcome, id: &str) -> Result<(), Error> {
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Duplicate => Err(Error::duplicate(id)),
            Outcome::Failed(e) => Err(e),
        }
    }

    /// Step 2 of a record: `update` (the in-process state's own `record_*` code) applied to the
    /// record `bytes` as read, set with `USER_CAS` while the stored record is still that one;
    /// `first` (the destination script) and the lowering of the earliest event recorded to the
    /// event's time `ts` ride along with the first attempt.
    #[allow(clippy::too_many_arguments)]
    fn compare_and_set(
        &self,
        con: &mut Conn,
        user_id: &str,
        ts: i64,
        applying: Option<&Applying<'_>>,
        first: Option<&Cmd>,
        mut bytes: Option<Vec<u8>>,
        update: &dyn Fn(&mut UserState),
    ) -> redis::RedisResult<Outcome> {
        let user_key = self.user_key(user_id);
        let user_key = user_key.as_str();
        for attempt in 0..MAX_ATTEMPTS {
            let mut user = match bytes
                .as_deref()
                .map(|b| self.decode(user_key, b))
                .transpose()
            {
                Ok(user) => user.unwrap_or_default(),
                Err(e) => return Ok(Outcome::Failed(e)),
            };
            update(&mut user);
            let mut pipe = redis::pipe();
            let cas = pipe
                .cmd("EVAL")
                .arg(USER_CAS)
                .arg(2)
                .arg(user_key)
                .arg(applying.map_or(user_key, |a| a.ids_key.as_str()))
                // The record as read (`""`: none; a stored record is never empty), compared
                // by the script as it stands: cheaper than hashing it on both sides.
                .arg(bytes.as_deref().unwrap_or_default())
                .arg(encode_user(&user))
                .arg(KEY_TTL_SECONDS);
            match applying {
                Some(a) => cas.arg(a.id).arg(a.now_ms).arg(APPLIED_IDS_MS),
                None => cas.arg("").arg(0).arg(0),
            };
            if let (0, Some(cmd)) = (attempt, first) {
                pipe.add_command(cmd.clone());
            }
            let lowering = attempt == 0 && self.lower_start(&mut pipe, ts);
            let replies: Vec<Value> = con.query(&pipe)?;
            if lowering {
                // Only once the store took it: a failed write is retried with the event.
                self.known_start.lower(ts);
            }
            match cas_reply(replies.into_iter().next())? {
                Cas::Applied => return Ok(Outcome::Done),
                Cas::AppliedBefore => return Ok(Outcome::Duplicate),
                Cas::Changed(now) => bytes = now,
            }
        }
        Ok(Outcome::Failed(Error::store(format!(
            "{}: user {user_id:?} changed under {MAX_ATTEMPTS} attempts in a row to record it",
            self.url
        ))))
    }

    /// Writes a snapshot's state (read by `crate::snapshot::read_state`) into the store, whose
    /// prefix must hold no key yet: each user's record, each destination's payers and the
    /// withdrawal ids, pipelined in batches. Returns the number of keys written.
    pub(crate) fn import(
        &self,
        state: &crate::state::State,
        ids: &[Box<str>],
    ) -> Result<usize, Error> {
        if let Some(key) = self.any_key()? {
            return Err(Error::store(format!(
                "{}: the prefix {:?} already holds keys (e.g. {key:?}); import into an empty one",
                self.url, self.prefix
            )));
        }
        let mut pipe = redis::pipe();
        let mut pending = 0;
        let mut written = 0;
        let mut failed = None;
        let mut flush = |pipe: &mut redis::Pipeline, pending: &mut usize, force: bool| {
            if failed.is_none() && (*pending >= 512 || (force && *pending > 0)) {
                if let Err(e) = self.with_connection(|con| con.query::<()>(pipe)) {
                    failed = Some(e);
                }
                pipe.clear();
                *pending = 0;
            }
        };
        state.for_each_record(|record| {
            match record {
                crate::state::Record::User(user, record) => {
                    pipe.cmd("SET")
                        .arg(self.user_key(user))
                        .arg(encode_user(record))
                        .arg("EX")
                        .arg(KEY_TTL_SECONDS)
                        .ignore();
                    pending += 1;
                    written += 1;
                }
                crate::state::Record::Destination(destination, payers, earliest) => {
                    let (hash, zset, first) = self.dest_keys(destination);
                    if earliest.time != i64::MIN {
                        let mut set = redis::cmd("HSET");
                        set.arg(&first)
                            .arg("u")
                            .arg(earliest.user.to_string())
                            .arg("t")
                            .arg(earliest.time);
                        if earliest.other != i64::MIN {
                            set.arg("o").arg(earliest.other);
                        }
                        pipe.add_command(set).ignore();
                        pipe.cmd("EXPIRE").arg(&first).arg(KEY_TTL_SECONDS).ignore();
                        pending += 2;
                        written += 1;
                    }
                    for (user, times) in &payers {
                        let Some(newest) = times.first() else {
                            continue;
                        };
                        let list: Vec<String> = times.iter().map(i64::to_string).collect();
                        pipe.cmd("HSET")
                            .arg(&hash)
                            .arg(*user)
                            .arg(list.join(","))
                            .ignore();
                        pipe.cmd("ZADD")
                            .arg(&zset)
                            .arg(newest.to_string())
                            .arg(*user)
                            .ignore();
                        pending += 2;
                    }
                    pipe.cmd("EXPIRE").arg(&hash).arg(KEY_TTL_SECONDS).ignore();
                    pipe.cmd("EXPIRE").arg(&zset).arg(KEY_TTL_SECONDS).ignore();
                    pending += 2;
                    written += 2;
                }
            }
            flush(&mut pipe, &mut pending, false);
        });
        if let Some(earliest) = state.earliest() {
            if self.lower_start(&mut pipe, earliest) {
                pending += 1;
                written += 1;
            }
        }
        for id in ids {
            pipe.cmd("SET")
                .arg(self.id_key(id))
                .arg(1)
                .arg("EX")
                .arg(KEY_TTL_SECONDS)
                .ignore();
            pending += 1;
            written += 1;
            flush(&mut pipe, &mut pending, false);
        }
        flush(&mut pipe, &mut pending, true);
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Some key under the prefix, if any (SCAN, the prefix's glob characters escaped).
    fn any_key(&self) -> Result<Option<String>, Error> {
        let mut pattern = String::new();
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        self.with_connection(|con| match con {
            Conn::Single(con) => scan_for_one(con, &pattern, |con, scan| scan.query(con)),
            Conn::Cluster(con) => {
                // SCAN walks one node's keys: walk every master's, by address.
                use redis::cluster_routing::{
                    MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo,
                };
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let Value::Map(nodes) = con.route_command(&redis::cmd("PING"), all)? else {
                    return Err((redis::ErrorKind::ClientError, "no cluster nodes").into());
                };
                for (address, _) in nodes {
                    let address: String = redis::from_redis_value(&address)?;
                    let Some((host, port)) = address.rsplit_once(':') else {
                        continue;
                    };
                    let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port: port.parse().unwrap_or_default(),
                    });
                    let found = scan_for_one(con, &pattern, |con, scan| {
                        con.route_command(scan, node.clone())
                            .and_then(redis::from_owned_redis_value)
                    })?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                Ok(None)
            }
        })
    }
}

/// The first key matching `pattern` on one node (SCAN through `scan`), if any.
fn scan_for_one<C>(
    con: &mut C,
    pattern: &str,
    scan: impl Fn(&mut C, &Cmd) -> redis::RedisResult<(u64, Vec<String>)>,
) -> redis::RedisResult<Option<String>> {
    let mut cursor = 0_u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, keys) = scan(con, &cmd)?;
        if let Some(key) = keys.into_iter().next() {
            return Ok(Some(key));
        }
        if next == 0 {
            return Ok(None);
        }
        cursor = next;
    }
}

/// The seed nodes of a `redis+cluster://` or `rediss+cluster://` URL, as one `redis://` or
/// `rediss://` URL each (with the password, and the `#insecure` fragment, of the whole).
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis://", rest)
    } else {
        ("rediss://", url.strip_prefix("rediss+cluster://")?)
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, format!("#{fragment}")),
        None => (rest, String::new()),
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    Some(
        hosts
            .trim_end_matches('/')
            .split(',')
            .map(|host| format!("{scheme}{auth}{host}/{fragment}"))
            .collect(),
    )
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a completed withdrawal records, hashed: a claim resumed by a withdrawal with the same
/// id but other content would apply something else, so that one is a duplicate instead.
fn claim_digest(w: &Withdrawal, destination: &str) -> String {
    let mut hash = sha2::Sha256::new();
    for part in [
        w.user_id.as_bytes(),
        &w.ts.as_micros().to_le_bytes(),
        &w.amount_usd.to_bits().to_le_bytes(),
        destination.as_bytes(),
        w.device_id.as_deref().unwrap_or("\0none").as_bytes(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `true` when an id's stored value is this withdrawal's own claim (`c:DIGEST:SECONDS`) from
/// less than `RESUME_MS` before `now_ms`: a record that stopped midway, to be finished.
fn resumable(held: &str, digest: &str, now_ms: u64) -> bool {
    let mut parts = held.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("c"), Some(d), Some(ms)) if d == digest => ms
            .parse::<u64>()
            .is_ok_and(|secs| now_ms.saturating_sub(secs.saturating_mul(1000)) < RESUME_MS),
        _ => false,
    }
}

/// Reads `USER_CAS`'s reply: `{1}`, `{2}`, or `{0, record-or-nil}`.
fn cas_reply(reply: Option<Value>) -> redis::RedisResult<Cas> {
    let unexpected = || {
        (
            redis::ErrorKind::TypeError,
            "unexpected reply from the record script",
        )
    };
    let Some(Value::Array(items)) = reply else {
        return Err(unexpected().into());
    };
    let mut items = items.into_iter();
    match (items.next(), items.next()) {
        (Some(Value::Int(1)), _) => Ok(Cas::Applied),
        (Some(Value::Int(2)), _) => Ok(Cas::AppliedBefore),
        (Some(Value::Int(0)), Some(Value::BulkString(now))) => Ok(Cas::Changed(Some(now))),
        (Some(Value::Int(0)), Some(Value::Nil) | None) => Ok(Cas::Changed(None)),
        _ => Err(unexpected().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_each_seed_node() {
        assert_eq!(cluster_nodes("redis://h:1"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://:pw@a:1,b:2").unwrap_or_default(),
            ["redis://:pw@a:1/", "redis://:pw@b:2/"]
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://a:1#insecure").unwrap_or_default(),
            ["rediss://a:1/#insecure"]
        );
    }

    #[test]
    fn only_a_recent_claim_with_the_same_content_resumes() {
        assert!(resumable("c:ab:1", "ab", 2000));
        assert!(!resumable("c:ab:1", "cd", 2000));
        assert!(!resumable("1", "ab", 2000));
        assert!(!resumable("c:ab:1", "ab", 1000 + RESUME_MS));
    }
}
