//! The behaviours users are drawn into, and the mix of them.

use super::rng::Rng;

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub(super) enum Typology {
    Regular,
    MerchantPayer,
    P2pPayer,
    Whale,
    Traveller,
    FirstLarge,
    TelegramNewcomer,
    ResetLegit,
    ColdWallet,
    BigPurchase,
    TelegramCoach,
    FakeSupport,
    MuleVictim,
    Romance,
    JobScam,
}

/// Honest typologies and their default weights (shares of the honest users).
pub(super) const HONEST: [(Typology, f64); 10] = [
    (Typology::Regular, 0.44),
    (Typology::MerchantPayer, 0.12),
    (Typology::P2pPayer, 0.08),
    (Typology::Whale, 0.04),
    (Typology::Traveller, 0.08),
    (Typology::FirstLarge, 0.06),
    (Typology::TelegramNewcomer, 0.04),
    (Typology::ResetLegit, 0.06),
    (Typology::ColdWallet, 0.04),
    (Typology::BigPurchase, 0.04),
];

/// Scam typologies and their default weights (shares of the victims).
pub(super) const SCAM: [(Typology, f64); 5] = [
    (Typology::TelegramCoach, 0.28),
    (Typology::FakeSupport, 0.16),
    (Typology::MuleVictim, 0.20),
    (Typology::Romance, 0.16),
    (Typology::JobScam, 0.20),
];

impl Typology {
    pub(super) fn name(self) -> &'static str {
        match self {
            Typology::Regular => "regular",
            Typology::MerchantPayer => "merchant-payer",
            Typology::P2pPayer => "p2p-payer",
            Typology::Whale => "whale",
            Typology::Traveller => "traveller",
            Typology::FirstLarge => "first-large",
            Typology::TelegramNewcomer => "telegram-newcomer",
            Typology::ResetLegit => "reset-legit",
            Typology::ColdWallet => "cold-wallet",
            Typology::BigPurchase => "big-purchase",
            Typology::TelegramCoach => "telegram-coach",
            Typology::FakeSupport => "fake-support",
            Typology::MuleVictim => "mule-victim",
            Typology::Romance => "romance",
            Typology::JobScam => "job-scam",
        }
    }

    pub(super) fn all() -> impl Iterator<Item = Typology> {
        HONEST.iter().chain(SCAM.iter()).map(|&(t, _)| t)
    }
}

/// The weights used to draw typologies: the defaults with the config's overrides applied.
pub(super) struct Mix {
    honest: Vec<(Typology, f64)>,
    scam: Vec<(Typology, f64)>,
}

impl Mix {
    /// Overrides name a typology and give its new weight (relative within honest or scam users;
    /// names that are not typologies are ignored: the CLI refuses them before).
    pub(super) fn new(overrides: &[(String, f64)]) -> Mix {
        let weight = |t: Typology, default: f64| {
            overrides
                .iter()
                .rev()
                .find(|(name, _)| name == t.name())
                .map_or(
                    default,
                    |&(_, w)| if w.is_finite() { w.max(0.0) } else { 0.0 },
                )
        };
        let normalise = |table: &[(Typology, f64)]| {
            let weighted: Vec<(Typology, f64)> =
                table.iter().map(|&(t, d)| (t, weight(t, d))).collect();
            let total: f64 = weighted.iter().map(|&(_, w)| w).sum();
            if total > 0.0 {
                weighted.into_iter().map(|(t, w)| (t, w / total)).collect()
            } else {
                // Every weight zeroed: fall back to the first typology of the table.
                table.iter().take(1).map(|&(t, _)| (t, 1.0)).collect()
            }
        };
        Mix {
            honest: normalise(&HONEST),
            scam: normalise(&SCAM),
        }
    }

    pub(super) fn draw(&self, rng: &mut Rng, scam_share: f64) -> Typology {
        let table: &[(Typology, f64)] = if rng.chance(scam_share) {
            &self.scam
        } else {
            &self.honest
        };
        let mut x = rng.unit();
        for &(t, share) in table {
            if x < share {
                return t;
            }
            x -= share;
        }
        table
            .iter()
            .rev()
            .find(|&&(_, w)| w > 0.0)
            .map_or(Typology::Regular, |&(t, _)| t)
    }
}

/// Parses `name=weight,name=weight,...` (weights are relative, >= 0).
pub fn parse_mix(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected typology=weight"))?;
        let name = name.trim();
        if !Typology::all().any(|t| t.name() == name) {
            let known: Vec<&str> = Typology::all().map(Typology::name).collect();
            return Err(format!(
                "unknown typology {name:?} (known: {})",
                known.join(", ")
            ));
        }
        let weight: f64 = weight
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: the weight must be a number"))?;
        if !weight.is_finite() || weight < 0.0 {
            return Err(format!("{part:?}: the weight must be a number >= 0"));
        }
        out.push((name.to_string(), weight));
    }
    Ok(out)
}
