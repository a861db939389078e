//! The helpers of the integration tests and of the benches that need them, one file per concept.
//! Every test file says `mod support;` and imports what it uses; a bench says
//! `#[path = "../tests/support/mod.rs"] mod support;`.
//!
//! - [`contract`]: the contract tests' helpers: rule directories in temp dirs, events as JSON
//!   the way a host sends them, store-aware scorers, a runner for the built binary.
//! - [`hardening`]: the hardening tests' helpers (malformed input, reload, properties,
//!   determinism): a policy with an explicit `[limits]` body, files written under a dir, a
//!   withdrawal as one event line.
//! - [`hostile`]: the hostile-script cases of `tests/hostile/*.toml` and the rule set each is
//!   loaded into (the hostile test and the hostile bench).
//! - [`redis_server`]: a real `redis-server` on a free port (Redis store tests and benches).
//! - [`serve`]: a running `riskgate serve` and a raw HTTP/1.1 client (service tests and bench).
#![allow(dead_code)] // each test target uses its own subset

pub mod contract;
pub mod hardening;
pub mod hostile;
#[cfg(feature = "redis")]
pub mod redis_server;
pub mod serve;
