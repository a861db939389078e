//! Watchlists: addresses a partner reports, as `.txt` (one a line) or `.json` (objects with
//! an `address`). Entries are trimmed and normalized like destinations.

use serde::Deserialize;

use super::problem::{Problems, Source};
use crate::event::normalize_address;

#[derive(Deserialize)]
struct JsonEntry {
    address: String,
}

/// Parses a watchlist file into normalized addresses (duplicates removed).
pub(crate) fn parse(source: &Source<'_>, problems: &mut Problems) -> Vec<String> {
    let mut addresses = if source.name.ends_with(".json") {
        match serde_json::from_str::<Vec<JsonEntry>>(source.text) {
            Ok(entries) => entries
                .into_iter()
                .map(|e| e.address.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            Err(e) => {
                problems.at(
                    &source.name,
                    e.line().max(1),
                    e.column().max(1),
                    format!(
                        "not a JSON array of objects with an \"address\" string: {}",
                        strip_position(&e.to_string())
                    ),
                );
                Vec::new()
            }
        }
    } else {
        source
            .text
            .lines()
            // `#` starts a comment, on its own line or after an address (no address holds a `#`).
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for a in &mut addresses {
        if let std::borrow::Cow::Owned(n) = normalize_address(a) {
            *a = n;
        }
    }
    addresses.sort_unstable();
    addresses.dedup();
    addresses
}

/// serde_json appends " at line L column C"; we print the position up front instead.
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| message.get(..i).unwrap_or(message))
}
