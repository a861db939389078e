//! Risk tiers: a leaf module, so that the rules (which parse tier names) and the decisions
//! (which compute tiers) both use it without importing each other.

use serde::{Deserialize, Serialize};

/// Risk tiers, ordered `allow < notice < warn < cool_off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// No warning.
    Allow,
    /// A light notice.
    Notice,
    /// The anti-scam warning.
    Warn,
    /// The withdrawal waits through a cooling-off period.
    CoolOff,
}

impl Tier {
    /// All tiers, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Allow, Tier::Notice, Tier::Warn, Tier::CoolOff];

    /// The tier's name in files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Allow => "allow",
            Tier::Notice => "notice",
            Tier::Warn => "warn",
            Tier::CoolOff => "cool_off",
        }
    }

    /// Parses a tier name.
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
