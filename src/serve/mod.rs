//! `riskgate serve` (contract section 6): the scorer behind an HTTP/1.1 JSON API.
//!
//! Built with the `serve` cargo feature (on by default). A host that embeds the library sets
//! `default-features = false` and compiles no web stack.
//!
//! One module per concept: `backend` (state and recorded ids), `routes` (the API),
//! `metrics` (Prometheus), `signals` (SIGTERM, SIGHUP), `service` (what requests share).

mod backend;
mod metrics;
mod routes;
mod service;
mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;

use crate::audit::DecisionLog;
use crate::error::Error;
use crate::rules::RuleSet;
use crate::scorer::Scorer;
use crate::store::Store;

pub use routes::MAX_BODY_BYTES;

/// The address `riskgate serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How long requests in flight may take to finish after SIGTERM before the process exits
/// anyway (the contract allows 10 s in all).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// What `riskgate serve` was asked for.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The rules directory (loaded at start, and again on each reload).
    pub rules: PathBuf,
    /// `memory` (the default), `redis://[:PASSWORD@]HOST:PORT[/DB]`, `rediss://...` (TLS) or
    /// `redis+cluster://HOST:PORT[,HOST:PORT...]` (see [`Store::open`]).
    pub store: String,
    /// The prefix of every key in a shared store.
    pub store_prefix: String,
    /// `HOST:PORT` to listen on (port 0 picks a free port; the log names it).
    pub listen: String,
    /// The hash-chained decision log, when wanted.
    pub log: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            rules: PathBuf::from("rules"),
            store: "memory".into(),
            store_prefix: "riskgate:".into(),
            listen: DEFAULT_LISTEN.into(),
            log: None,
        }
    }
}

/// Runs the service until SIGTERM or SIGINT: loads the rules, listens, answers, then finishes
/// the requests in flight and syncs the decision log. Logs (tracing) go to standard error; set
/// `RISKGATE_LOG` to `error`, `warn`, `info` (the default), `debug` or `trace`.
pub fn run(options: ServeOptions) -> Result<(), Error> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("riskgate-serve")
        .build()
        .map_err(|e| Error::io(Path::new("tokio runtime"), e))?;
    let result = runtime.block_on(serve(options));
    // Tasks still running (a request past the grace period) are dropped, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

fn init_logging() {
    let level = std::env::var("RISKGATE_LOG")
        .ok()
        .and_then(|text| text.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    // Fails only when a subscriber is already set (e.g. by an embedding host): keep theirs.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
}

fn open_backend(options: &ServeOptions) -> Result<Box<dyn backend::Backend>, Error> {
    let rules = RuleSet::load(&options.rules)?;
    // An unreachable shared store is an error here, within its connect timeout.
    let store = Store::open(&options.store, &options.store_prefix)?;
    Ok(Box::new(Scorer::with_store(rules, store)))
}

async fn serve(options: ServeOptions) -> Result<(), Error> {
    let backend = open_backend(&options)?;
    let log = match &options.log {
        Some(path) => {
            let log = Arc::new(DecisionLog::open(path)?);
            backend.scorer().set_audit_log(log.clone())?;
            Some(log)
        }
        None => None,
    };
    let service = Arc::new(service::Service::new(
        backend,
        options.rules.clone(),
        log.clone(),
    ));
    let signals =
        signals::Signals::install().map_err(|e| Error::io(Path::new("signal handlers"), e))?;
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .map_err(|e| Error::io(Path::new(&options.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(Path::new(&options.listen), e))?;
    let listener = listener.tap_io(|tcp| {
        // Small request/response pairs on kept-alive connections: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let ruleset = service.backend.scorer().rules().id().to_string();
    let store = service.backend.scorer().store().describe();
    let stopping = signals.spawn(service.clone());
    let mut until_stop = stopping.clone();
    let server =
        axum::serve(listener, routes::router(service)).with_graceful_shutdown(async move {
            let _ = until_stop.wait_for(|stop| *stop).await;
        });
    let mut server = tokio::spawn(async move { server.await });
    tracing::info!(%addr, %ruleset, %store, "listening");
    let mut grace = stopping;
    let finished = tokio::select! {
        result = &mut server => Some(result),
        _ = async {
            let _ = grace.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => None,
    };
    match finished {
        Some(Ok(Ok(()))) => tracing::info!("all connections closed"),
        Some(Ok(Err(e))) => tracing::error!(error = %e, "the server failed"),
        Some(Err(e)) => tracing::error!(error = %e, "the server task failed"),
        None => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight after the grace period; exiting");
            server.abort();
        }
    }
    if let Some(log) = log {
        log.sync()?;
    }
    tracing::info!("stopped");
    Ok(())
}
