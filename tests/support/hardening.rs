//! Helpers shared by the hardening tests (malformed input, reload, properties, determinism) and
//! the hostile-script helpers: temporary rule sets with explicit limits, and events as lines.
#![allow(dead_code)] // each test target uses a different part

use std::path::Path;

/// The policy every temporary rule set of the hardening and hostile tests starts from: thresholds
/// 20/50/90, 24 cooling-off hours, `on_rule_error` as given, `limits` inserted as the `[limits]`
/// body, and one default warning, in `en`. Unlike [`super::contract::policy_default_limits`],
/// which has no `[limits]` section and default warnings in `en` and `fr`, with other texts.
pub fn policy_with_limits(on_rule_error: &str, limits: &str) -> String {
    format!(
        r#"[tiers]
notice = 20
warn = 50
cool_off = 90

[cool_off]
hours = 24

[errors]
on_rule_error = "{on_rule_error}"

[limits]
{limits}

[warnings.default.en]
title = "Check before you send"
body = "About to send {{amount_usd}} USD in {{asset}} to {{destination}}."
"#
    )
}

/// The default limits of the contract, as a `[limits]` body (the hostile bench runs with them).
pub const DEFAULT_LIMITS: &str = "max_rule_ms = 2\nmax_operations = 10000\nmax_call_levels = 16\nmax_expr_depth = 64\nmax_string_size = 4096\nmax_array_size = 1024\nmax_map_size = 256\n";

/// The same, with so many operations allowed that only the wall-clock deadline stops a loop.
pub const HIGH_OPS_LIMITS: &str = "max_rule_ms = 2\nmax_operations = 1000000000000\nmax_call_levels = 16\nmax_expr_depth = 64\nmax_string_size = 4096\nmax_array_size = 1024\nmax_map_size = 256\n";

/// The default limits of the contract, as a `[limits]` body, but with a 50 ms deadline: tests
/// run a debug build on two shared cores, where an interpreted rule once took over the
/// contract's 2 ms (CI, 2026-12-01: the witness rule of `tests/hostile.rs` timed out). The
/// deadline itself is tested with loops that only it can stop (`TEST_HIGH_OPS_LIMITS`).
pub const TEST_LIMITS: &str = "max_rule_ms = 50\nmax_operations = 10000\nmax_call_levels = 16\nmax_expr_depth = 64\nmax_string_size = 4096\nmax_array_size = 1024\nmax_map_size = 256\n";

/// Writes `files` (relative path, contents) under `dir`, creating folders.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (relative, contents) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, contents).expect("write file");
    }
}

/// A withdrawal event line. `extra` is spliced into the object (e.g. `,"device_id":"d1"`). The
/// user was created 2026-01-01, locale `en`, referral `organic`: not the user of
/// [`super::contract::wd`] (created 2025-03-01, no locale), so the two are kept apart.
pub fn withdrawal(
    id: &str,
    user: &str,
    ts: &str,
    amount: f64,
    destination: &str,
    country: &str,
    extra: &str,
) -> String {
    format!(
        r#"{{"kind":"withdrawal","id":"{id}","ts":"{ts}","user_id":"{user}","asset":"USDT","network":"TRON","amount_usd":{amount:?},"destination":"{destination}","user":{{"country":"{country}","created_at":"2026-01-01T00:00:00Z","locale":"en","referral":"organic"}}{extra}}}"#
    )
}
