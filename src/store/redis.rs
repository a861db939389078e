//! The Redis backend: synchronous connections (the `redis` crate), a small pool of them so
//! that threads sharing a scorer do not queue behind one socket, a timeout on every call.
//!
//! Keys (all beginning with the prefix exactly as given; hash tags keep each user's and each
//! destination's keys in one Redis Cluster slot):
//! - `P{u:USER}`: the user's record (string; the snapshot encoding of one user);
//! - `P{d:DEST}` and `P{d:DEST}:z`: the destination's payers (hash and sorted set, see
//!   `scripts.rs`);
//! - `P{w:ID}`: a processed withdrawal id (string `1`).
//!
//! Scoring is one round trip (a pipeline: GET the user, EXISTS the id, EVALSHA the count).
//! Recording is a compare-and-set: WATCH the user and the id while reading them (one round
//! trip), then MULTI / SET user / SET id / EVAL the destination script / EXEC (one more),
//! retried when another process changed the user in between. On a single server the whole
//! record is one transaction; on a Cluster it spans three slots (see the README's gaps).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Connection, Value};

use super::scripts::{DEST_RECORD, DEST_USERS};
use crate::error::Error;
use crate::event::{Event, Status, Withdrawal};
use crate::state::snapshot::{decode_user, encode_user};
use crate::state::{TxFeatures, UserState, DEST_RETENTION, DEST_TIMES, MAX_DEST_USERS};
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

pub(crate) struct RedisStore {
    client: redis::Client,
    url: String,
    prefix: String,
    dest_users_sha: String,
    idle: Mutex<Vec<Connection>>,
}

/// A withdrawal's id and the commands that record it besides the user (for `update_user`).
type WithRecord<'a> = (&'a str, &'a dyn Fn(&mut redis::Pipeline));

/// What a state read returned.
struct Fetched {
    user: Option<UserState>,
    id_seen: bool,
    dest_users: (i64, i64),
}

impl RedisStore {
    pub(crate) fn open(url: &str, prefix: &str) -> Result<RedisStore, Error> {
        let shown = super::redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| Error::store(format!("{shown}: bad address: {e}")))?;
        let store = RedisStore {
            client,
            url: shown,
            prefix: prefix.to_owned(),
            dest_users_sha: redis::Script::new(DEST_USERS).get_hash().to_owned(),
            idle: Mutex::new(Vec::new()),
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

    fn connect(&self) -> Result<Connection, Error> {
        let mut con = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| self.failure("cannot connect", &e))?;
        con.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| redis::cmd("PING").query::<()>(&mut con))
            .map_err(|e| self.failure("cannot connect", &e))?;
        Ok(con)
    }

    fn load_scripts(&self, con: &mut Connection) -> redis::RedisResult<()> {
        redis::Script::new(DEST_USERS).load(con).map(drop)
    }

    fn failure(&self, what: &str, e: &redis::RedisError) -> Error {
        Error::store(format!("{}: {what}: {e}", self.url))
    }

    /// Runs `op` on a pooled connection. A connection that failed is dropped, not pooled
    /// again; a script the server forgot (a restart) is loaded again and `op` retried once.
    fn with_connection<T>(
        &self,
        mut op: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
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

    fn dest_keys(&self, destination: &str) -> (String, String) {
        let hash = format!("{}{{d:{destination}}}", self.prefix);
        let zset = format!("{hash}:z");
        (hash, zset)
    }

    fn id_key(&self, id: &str) -> String {
        format!("{}{{w:{id}}}", self.prefix)
    }

    /// PING.
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.with_connection(|con| redis::cmd("PING").query::<()>(con))
    }

    /// Everything a score reads, in one round trip: the user's record, whether the id was
    /// recorded, and the destination's payer counts.
    fn fetch(&self, w: &Withdrawal, destination: &str) -> Result<Fetched, Error> {
        let user_key = self.user_key(&w.user_id);
        let id_key = self.id_key(&w.id);
        let (hash, zset) = self.dest_keys(destination);
        let now = w.ts.as_micros();
        let month_start = now.saturating_sub(30 * MICROS_PER_DAY).to_string();
        let day_start = now.saturating_sub(MICROS_PER_DAY).to_string();
        let now = now.to_string();
        let (bytes, id_seen, dest_users): (Option<Vec<u8>>, bool, (i64, i64)) = self
            .with_connection(|con| {
                redis::pipe()
                    .cmd("GET")
                    .arg(&user_key)
                    .cmd("EXISTS")
                    .arg(&id_key)
                    .cmd("EVALSHA")
                    .arg(&self.dest_users_sha)
                    .arg(2)
                    .arg(&hash)
                    .arg(&zset)
                    .arg(&w.user_id)
                    .arg(&now)
                    .arg(&month_start)
                    .arg(&day_start)
                    .query(con)
            })?;
        let user = bytes.map(|b| self.decode(&user_key, &b)).transpose()?;
        Ok(Fetched {
            user,
            id_seen,
            dest_users,
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
        (f.dest_users_24h, f.dest_users_30d) = fetched.dest_users;
        Ok((f, fetched.id_seen))
    }

    /// Records an event as the in-process state does; a withdrawal's id is marked processed
    /// in the same transaction (`Err(Duplicate)` and no change when it was marked before).
    pub(crate) fn record(&self, event: &Event) -> Result<(), Error> {
        let ts = event.ts().as_micros();
        match event {
            Event::Withdrawal(w) => self.record_withdrawal_event(w),
            Event::PasswordReset { user_id, .. } => {
                self.update_user(user_id, None, |u| u.record_reset(ts))
            }
            Event::Login {
                user_id, device_id, ..
            } => self.update_user(user_id, None, |u| u.record_device(device_id, ts)),
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
                .query(con)
        })?;
        match set {
            Some(_) => Ok(()),
            None => Err(Error::duplicate(id)),
        }
    }

    fn record_withdrawal(&self, w: &Withdrawal) -> Result<(), Error> {
        let destination = crate::event::normalize_address(&w.destination);
        let address: Arc<str> = Arc::from(destination.as_ref());
        let (hash, zset) = self.dest_keys(&destination);
        let ts = w.ts.as_micros();
        let dest_args = [
            w.user_id.clone(),
            ts.to_string(),
            DEST_RETENTION.to_string(),
            MAX_DEST_USERS.to_string(),
            DEST_TIMES.to_string(),
            KEY_TTL_SECONDS.to_string(),
        ];
        let id_key = self.id_key(&w.id);
        let extra = |pipe: &mut redis::Pipeline| {
            pipe.cmd("SET")
                .arg(&id_key)
                .arg(1)
                .arg("EX")
                .arg(KEY_TTL_SECONDS)
                .ignore()
                .cmd("EVAL")
                .arg(DEST_RECORD)
                .arg(2)
                .arg(&hash)
                .arg(&zset)
                .arg(dest_args.as_slice())
                .ignore();
        };
        self.update_user(&w.user_id, Some((&w.id, &extra)), |u| {
            u.record_withdrawal(address.clone(), ts, w.amount_usd, w.device_id.as_deref())
        })
    }

    /// Compare-and-set of one user's record: read it under WATCH, apply `update` (the
    /// in-process state's own `record_*` code), write it back in MULTI/EXEC together with
    /// `with`'s commands (a withdrawal's id and destination), again when the user changed in
    /// between. With `with`, the id is watched too: recorded meanwhile, it is a duplicate.
    fn update_user(
        &self,
        user_id: &str,
        with: Option<WithRecord<'_>>,
        update: impl Fn(&mut UserState),
    ) -> Result<(), Error> {
        let user_key = self.user_key(user_id);
        let id_key = with.map(|(id, _)| self.id_key(id));
        let mut outcome = Ok(());
        let mut attempts = 0;
        let done = self.with_connection(|con| loop {
            attempts += 1;
            let mut read = redis::pipe();
            read.cmd("WATCH").arg(&user_key);
            if let Some(id_key) = &id_key {
                read.arg(id_key);
            }
            read.ignore().cmd("GET").arg(&user_key);
            read.cmd("EXISTS")
                .arg(id_key.as_deref().unwrap_or(&user_key));
            let (bytes, exists): (Option<Vec<u8>>, bool) = read.query(con)?;
            if id_key.is_some() && exists {
                redis::cmd("UNWATCH").query::<()>(con)?;
                outcome = Err(Error::duplicate(with.map_or("", |(id, _)| id)));
                return Ok(true);
            }
            let mut user = match bytes.map(|b| self.decode(&user_key, &b)).transpose() {
                Ok(user) => user.unwrap_or_default(),
                Err(e) => {
                    redis::cmd("UNWATCH").query::<()>(con)?;
                    outcome = Err(e);
                    return Ok(true);
                }
            };
            update(&mut user);
            let mut write = redis::pipe();
            write
                .atomic()
                .cmd("SET")
                .arg(&user_key)
                .arg(encode_user(&user))
                .arg("EX")
                .arg(KEY_TTL_SECONDS)
                .ignore();
            if let Some((_, extra)) = with {
                extra(&mut write);
            }
            let result: Value = write.query(con)?;
            if !matches!(result, Value::Nil) {
                return Ok(true);
            }
            if attempts >= MAX_ATTEMPTS {
                return Ok(false);
            }
        })?;
        if !done {
            return Err(Error::store(format!(
                "{}: user {user_id:?} changed under {MAX_ATTEMPTS} attempts in a row to record it",
                self.url
            )));
        }
        outcome
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
                if let Err(e) = self.with_connection(|con| pipe.query::<()>(con)) {
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
                crate::state::Record::Destination(destination, payers) => {
                    let (hash, zset) = self.dest_keys(destination);
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
        self.with_connection(|con| {
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)?;
                if let Some(key) = keys.into_iter().next() {
                    return Ok(Some(key));
                }
                if next == 0 {
                    return Ok(None);
                }
                cursor = next;
            }
        })
    }
}
