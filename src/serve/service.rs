//! What every request shares: the state backend, the metrics, the decision log, and reloads.

use std::path::PathBuf;
use std::sync::Arc;

use super::backend::Backend;
use super::metrics::Metrics;
use crate::audit::DecisionLog;

/// The running service's shared parts.
pub(crate) struct Service {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) metrics: Metrics,
    /// Where `/v1/score` decisions are appended, with `--log`.
    pub(crate) log: Option<Arc<DecisionLog>>,
    rules_dir: PathBuf,
    /// One reload at a time, so that the live set and `riskgate_ruleset_info` agree.
    reload_lock: parking_lot::Mutex<()>,
}

impl Service {
    pub(crate) fn new(
        backend: Box<dyn Backend>,
        rules_dir: PathBuf,
        log: Option<Arc<DecisionLog>>,
    ) -> Service {
        let metrics = Metrics::new(&backend.scorer().rules());
        Service {
            backend,
            metrics,
            log,
            rules_dir,
            reload_lock: parking_lot::Mutex::new(()),
        }
    }

    /// Loads the rules directory again and makes it live (`/v1/reload`, SIGHUP): the new
    /// ruleset id, or every problem found, the current set staying live. Blocks (reads files
    /// and compiles scripts): call it off the request threads.
    pub(crate) fn reload(&self) -> Result<String, Vec<String>> {
        let _one_at_a_time = self.reload_lock.lock();
        match self.backend.scorer().reload(&self.rules_dir) {
            Ok(rules) => {
                self.metrics.set_ruleset(&rules);
                self.metrics.reload(true);
                tracing::info!(ruleset = rules.id(), dir = %self.rules_dir.display(), "rules reloaded");
                Ok(rules.id().to_string())
            }
            Err(e) => {
                self.metrics.reload(false);
                let problems: Vec<String> = if e.problems().is_empty() {
                    vec![e.to_string()]
                } else {
                    e.problems().iter().map(ToString::to_string).collect()
                };
                tracing::warn!(
                    problems = problems.len(),
                    first = problems.first().map(String::as_str).unwrap_or_default(),
                    kept = self.backend.scorer().rules().id(),
                    "reload refused; the current rule set stays live"
                );
                Err(problems)
            }
        }
    }
}
