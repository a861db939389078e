//! Signals: SIGTERM (and SIGINT) stop the service gracefully; SIGHUP reloads the rules.

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use super::service::Service;

/// The service's signal handlers, installed before it accepts its first connection (so that a
/// SIGHUP sent once it answers never takes the default action, which would end the process).
pub(crate) struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    pub(crate) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Handles signals in background tasks; the receiver turns `true` on SIGTERM or SIGINT.
    pub(crate) fn spawn(self, service: Arc<Service>) -> watch::Receiver<bool> {
        let (stop, stopping) = watch::channel(false);
        let Signals {
            mut terminate,
            mut interrupt,
            mut hangup,
        } = self;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                "shutting down: no new connections; finishing requests in flight"
            );
            let _ = stop.send(true);
        });
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!(signal = "SIGHUP", "reloading the rules");
                let service = service.clone();
                // Errors are logged by `reload`; the current set stays live.
                let _ = tokio::task::spawn_blocking(move || service.reload()).await;
            }
        });
        stopping
    }
}
