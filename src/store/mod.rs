//! Where feature state lives: in process ([`Store::memory`], the default) or in a Redis server
//! or a Redis Cluster shared by any number of riskgate processes ([`Store::open`] with a
//! `redis://`, `rediss://` or `redis+cluster://` URL; contract section 5, `--store`).
//!
//! One feature computation serves both: the shared store keeps each user's record in the same
//! encoding as a state snapshot, decodes it into the same packed user record the in-process
//! state uses (with the user's addresses alongside, in place of interned destination ids), and
//! runs the same `fill` and `record_*` code on it. Per-destination payer counts
//! (`dest_users_24h`, `dest_users_30d`) are counted inside Redis by a small script over the
//! same data the in-process destination record keeps (each payer's latest few withdrawal
//! times), so that a destination with thousands of payers costs a few integers per score, not
//! the whole payer list. The key layout is in the README ("Running a fleet").

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod scripts;

use crate::error::Error;

/// The default key prefix (`--store-prefix`).
pub const DEFAULT_PREFIX: &str = "riskgate:";

/// A feature-state store, handed to [`crate::Scorer::with_store`].
pub struct Store {
    pub(crate) kind: StoreKind,
}

pub(crate) enum StoreKind {
    /// In process (the scorer's own maps).
    Memory,
    /// A Redis server shared by every process that opens it with the same prefix.
    #[cfg(feature = "redis")]
    Redis(Box<redis::RedisStore>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Store {
    /// The in-process store (the default): state lives and dies with the scorer.
    pub fn memory() -> Store {
        Store {
            kind: StoreKind::Memory,
        }
    }

    /// Opens the store named by `url` (keys begin with `prefix`, exactly as given):
    /// - `memory`;
    /// - `redis://[:PASSWORD@]HOST:PORT[/DB]`, one Redis server;
    /// - `rediss://[:PASSWORD@]HOST:PORT[/DB]`, the same over TLS, the server's certificate
    ///   verified against the system's roots (`SSL_CERT_FILE=ca.pem` to trust a private CA
    ///   instead; a `#insecure` fragment skips verification, for tests only);
    /// - `redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]`, a Redis Cluster found through
    ///   any of the nodes named (`rediss+cluster://` over TLS); an extension of the contract.
    ///
    /// A Redis server that cannot be reached is an error within 10 s
    /// ([`crate::ErrorKind::Store`]); so is Redis in a build without the `redis` cargo feature.
    pub fn open(url: &str, prefix: &str) -> Result<Store, Error> {
        if url == "memory" {
            return Ok(Store::memory());
        }
        if [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
        ]
        .iter()
        .any(|scheme| url.starts_with(scheme))
        {
            #[cfg(feature = "redis")]
            {
                return redis::RedisStore::open(url, prefix).map(|r| Store {
                    kind: StoreKind::Redis(Box::new(r)),
                });
            }
            #[cfg(not(feature = "redis"))]
            {
                let _ = prefix;
                return Err(Error::store(
                    "this build has no Redis support (cargo feature `redis`)",
                ));
            }
        }
        Err(Error::store(format!(
            "unknown store {:?}: expected `memory`, redis://HOST:PORT, rediss://HOST:PORT or \
             redis+cluster://HOST:PORT[,HOST:PORT...]",
            redact(url)
        )))
    }

    /// Moves a state snapshot (a `--state` file, see [`crate::Scorer::save_state`]) into this
    /// shared store, whose prefix must hold no key yet: every user and destination record and
    /// the withdrawal ids saved with it. Returns what the snapshot held.
    pub fn import_snapshot(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<crate::SnapshotInfo, Error> {
        let (state, ids, info) = crate::snapshot::read_state(path.as_ref())?;
        match &self.kind {
            StoreKind::Memory => {
                let _ = (state, ids, info);
                Err(Error::store(
                    "the memory store takes a snapshot with `--state`, not an import",
                ))
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis(redis) => redis.import(&state, &ids).map(|_| info),
        }
    }

    /// `true` for the in-process store.
    pub fn is_memory(&self) -> bool {
        matches!(self.kind, StoreKind::Memory)
    }

    /// `memory`, or the store's URL without its password, with the prefix.
    pub fn describe(&self) -> String {
        match &self.kind {
            StoreKind::Memory => "memory".to_owned(),
            #[cfg(feature = "redis")]
            StoreKind::Redis(r) => r.describe(),
        }
    }
}

/// `url` without a password (`redis://:secret@host` becomes `redis://host`), for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!(
                "{}{}",
                url.get(..scheme + 3).unwrap_or_default(),
                url.get(at + 1..).unwrap_or_default()
            )
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://:secret@host:6379/0"), "redis://host:6379/0");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let e = Store::open("postgres://x", "p:")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("unknown store")));
        assert!(Store::open("memory", "p:").is_ok_and(|s| s.is_memory()));
    }
}
