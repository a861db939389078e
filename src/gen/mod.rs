//! `riskgate gen`: a deterministic generator of labeled event streams to tune rules on.
//!
//! The same [`GenConfig`] always yields the same bytes (a SplitMix64 generator seeded from
//! `seed`; no clock, no thread timing, no hash-map order). Every withdrawal in the measured
//! window carries `label` (`scam` or `legit`) and an extra `typology` field naming the behaviour
//! that produced it (riskgate's parser ignores fields the contract does not name, so the stream
//! scores as is). Withdrawals of the warm-up (`warmup_days` before `start`) carry no `label`:
//! they build history and count in no labeled figure of `riskgate replay`.
//!
//! The typologies, their default shares and every knob are described in the README section
//! "Generating labeled streams: `riskgate gen`"; the code of each is in `user.rs`.

mod rng;
mod typology;
mod user;

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::time::{Timestamp, MICROS_PER_DAY, MICROS_PER_HOUR};

use rng::Rng;
pub use typology::parse_mix;
use typology::{Mix, Typology};
use user::{Address, Net, UserGen, World};

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Seed of the pseudo-random generator: the same config gives the same bytes.
    pub seed: u64,
    /// Number of users.
    pub users: u32,
    /// Length of the measured stream in days, from `start`.
    pub days: u32,
    /// The users' country (ISO 3166 alpha-2), e.g. `HK`.
    pub region: String,
    /// First instant of the measured stream.
    pub start: Timestamp,
    /// Share of users who fall victim to a scam during the stream (0 to 1).
    pub scam_share: f64,
    /// Days of honest history written before `start` (unlabeled withdrawals, logins, resets).
    pub warmup_days: u32,
    /// Typology weights overriding the defaults, `(typology name, weight)`; weights are
    /// relative within the honest users and within the victims (see [`parse_mix`]).
    pub mix: Vec<(String, f64)>,
    /// Multiplies every amount (honest and scam).
    pub amount_scale: f64,
    /// Multiplies scam amounts only.
    pub scam_amount_scale: f64,
    /// Multiplies the gaps between a victim's scam transfers (0.5: twice as fast).
    pub pace: f64,
    /// Victims per coach gang and per job-scam platform (a mule campaign has one more).
    pub gang_size: u32,
}

impl GenConfig {
    /// `seed`, `users`, `days`; region `HK`, start 2026-11-01T00:00:00Z, scam share 0.12, no
    /// warm-up, the default mix, scales and pace 1, gangs of 5 victims.
    pub fn new(seed: u64, users: u32, days: u32) -> GenConfig {
        GenConfig {
            seed,
            users,
            days,
            region: "HK".to_string(),
            start: Timestamp::from_micros(1_793_491_200_000_000),
            scam_share: 0.12,
            warmup_days: 0,
            mix: Vec::new(),
            amount_scale: 1.0,
            scam_amount_scale: 1.0,
            pace: 1.0,
            gang_size: 5,
        }
    }
}

/// What was generated, by typology (sorted by name).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GenSummary {
    /// Lines written.
    pub events: u64,
    /// Withdrawals written.
    pub withdrawals: u64,
    /// Withdrawals labeled `scam`.
    pub scam_withdrawals: u64,
    /// Withdrawals of the warm-up (no label).
    pub warmup_withdrawals: u64,
    /// `(typology, users, withdrawals, scam withdrawals)`.
    pub typologies: Vec<(String, u64, u64, u64)>,
}

struct Profile {
    user_id: String,
    created_at: i64,
    locale: &'static str,
    referral: &'static str,
}

pub(crate) enum Kind {
    Login { device: String },
    Reset,
    Withdrawal(Box<Wd>),
}

pub(crate) struct Wd {
    amount: f64,
    address: Address,
    asset: &'static str,
    device: Option<String>,
    cancelled: bool,
    scam: bool,
    typology: Typology,
}

pub(crate) struct Ev {
    ts: i64,
    seq: u64,
    user: u32,
    kind: Kind,
}

fn finite_or(x: f64, default: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        default
    }
}

/// Generates the stream described by `config` and writes it to `out` as JSON Lines.
pub fn generate(config: &GenConfig, out: &mut dyn Write) -> Result<GenSummary, Error> {
    let start = config.start.as_micros();
    let end = start.saturating_add(i64::from(config.days) * MICROS_PER_DAY);
    let warm_from = start.saturating_sub(i64::from(config.warmup_days) * MICROS_PER_DAY);
    let span = (end - start).max(1);
    let scam_share = if config.scam_share.is_finite() {
        config.scam_share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = Mix::new(&config.mix);
    let mut world_rng = Rng::new(config.seed, u64::MAX);

    // Typologies first, so that gangs, campaigns and groups can be sized to their members.
    let typologies: Vec<Typology> = (0..config.users)
        .map(|i| {
            mix.draw(
                &mut Rng::new(config.seed, u64::from(i) << 1 | 1),
                scam_share,
            )
        })
        .collect();
    let count = |t: Typology| typologies.iter().filter(|x| **x == t).count();
    let mut world = World::new(
        &mut world_rng,
        user::WorldSizes {
            users: config.users as usize,
            coach_victims: count(Typology::TelegramCoach),
            job_victims: count(Typology::JobScam),
            mule_victims: count(Typology::MuleVictim),
            p2p_payers: count(Typology::P2pPayer),
            gang_size: config.gang_size.max(1) as usize,
        },
        start,
        span,
    );
    world.amount_scale = finite_or(config.amount_scale, 1.0);
    world.scam_scale = world.amount_scale * finite_or(config.scam_amount_scale, 1.0);
    world.pace = finite_or(config.pace, 1.0);

    let width = config.users.max(1).to_string().len().max(4);
    let mut profiles = Vec::with_capacity(typologies.len());
    let mut events: Vec<Ev> = Vec::new();
    let mut seq = 0_u64;
    for (i, &typology) in typologies.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let mut rng = Rng::new(config.seed, u64::from(index) << 1);
        let user_id = format!("u-{:0width$}", index + 1);
        let locale = if rng.chance(0.7) { "zh-HK" } else { "en" };
        let honest_referral = *rng
            .pick(&[
                "organic", "organic", "organic", "organic", "ads", "ads", "ads", "friend",
                "friend", "telegram",
            ])
            .unwrap_or(&"organic");
        let (young, referral) = match typology {
            Typology::FirstLarge => (true, honest_referral),
            Typology::TelegramNewcomer => (true, "telegram"),
            Typology::TelegramCoach => (
                rng.chance(0.75),
                *rng.pick(&[
                    "telegram", "telegram", "telegram", "telegram", "telegram", "telegram",
                    "whatsapp", "whatsapp", "ads", "organic",
                ])
                .unwrap_or(&"telegram"),
            ),
            Typology::JobScam => (
                rng.chance(0.5),
                *rng.pick(&[
                    "whatsapp", "whatsapp", "whatsapp", "telegram", "telegram", "ads", "ads",
                    "organic", "friend", "organic",
                ])
                .unwrap_or(&"whatsapp"),
            ),
            _ => (false, honest_referral),
        };
        let created_at = if young {
            start + (rng.unit() * (span as f64 * 0.8)) as i64
        } else {
            start - rng.int(60, 1500) * MICROS_PER_DAY - rng.int(0, 86_399) * 1_000_000
        };
        let median = world.amount_scale
            * match typology {
                Typology::Whale => rng.lognormal(40_000.0, 0.5).clamp(8_000.0, 400_000.0),
                Typology::TelegramNewcomer => rng.lognormal(150.0, 0.6).clamp(20.0, 800.0),
                _ => rng.lognormal(300.0, 1.0).clamp(20.0, 20_000.0),
            };
        let device_count = if rng.chance(0.3) { 2 } else { 1 };
        let devices: Vec<String> = (1..=device_count)
            .map(|k| format!("d-{}-{k}", index + 1))
            .collect();
        let own_count = rng.int(1, 3);
        let own: Vec<Address> = (0..own_count)
            .map(|_| {
                let net = Net::random(&mut rng);
                Address::new(&mut rng, net)
            })
            .collect();
        let mut g = UserGen {
            rng,
            index,
            typology,
            devices,
            own,
            median,
            events: &mut events,
            seq: &mut seq,
        };
        let first_seen = created_at.max(warm_from);
        g.run(&mut world, &mut world_rng, first_seen, start, end);
        profiles.push((
            Profile {
                user_id,
                created_at,
                locale,
                referral,
            },
            typology,
        ));
    }

    events.retain(|e| e.ts >= warm_from && e.ts < end);
    events.sort_by_key(|e| (e.ts, e.seq));
    write_events(config, start, &events, &profiles, out)
}

#[derive(Serialize)]
struct OutUser<'a> {
    country: &'a str,
    created_at: String,
    locale: &'a str,
    referral: &'a str,
}

#[derive(Serialize)]
struct OutWithdrawal<'a> {
    kind: &'static str,
    ts: String,
    user_id: &'a str,
    id: String,
    asset: &'a str,
    network: &'static str,
    amount_usd: f64,
    destination: &'a str,
    user: OutUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'static str>,
    typology: &'static str,
}

#[derive(Serialize)]
struct OutLogin<'a> {
    kind: &'static str,
    ts: String,
    user_id: &'a str,
    device_id: &'a str,
}

#[derive(Serialize)]
struct OutReset<'a> {
    kind: &'static str,
    ts: String,
    user_id: &'a str,
}

fn rfc3339(micros: i64) -> String {
    Timestamp::from_micros(micros.div_euclid(1_000_000) * 1_000_000).to_string()
}

fn write_events(
    config: &GenConfig,
    start: i64,
    events: &[Ev],
    profiles: &[(Profile, Typology)],
    out: &mut dyn Write,
) -> Result<GenSummary, Error> {
    let io = |e: std::io::Error| Error::io(Path::new("<output>"), e);
    let mut summary = GenSummary::default();
    let mut by_typology: std::collections::BTreeMap<&'static str, (u64, u64, u64)> =
        std::collections::BTreeMap::new();
    for (_, t) in profiles {
        by_typology.entry(t.name()).or_default().0 += 1;
    }
    for e in events {
        let Some((profile, _)) = profiles.get(e.user as usize) else {
            continue;
        };
        let ts = rfc3339(e.ts);
        let line = match &e.kind {
            Kind::Login { device } => serde_json::to_string(&OutLogin {
                kind: "login",
                ts,
                user_id: &profile.user_id,
                device_id: device,
            }),
            Kind::Reset => serde_json::to_string(&OutReset {
                kind: "password_reset",
                ts,
                user_id: &profile.user_id,
            }),
            Kind::Withdrawal(w) => {
                summary.withdrawals += 1;
                let warm = e.ts < start;
                let counts = by_typology.entry(w.typology.name()).or_default();
                if warm {
                    summary.warmup_withdrawals += 1;
                } else {
                    counts.1 += 1;
                    if w.scam {
                        summary.scam_withdrawals += 1;
                        counts.2 += 1;
                    }
                }
                serde_json::to_string(&OutWithdrawal {
                    kind: "withdrawal",
                    ts,
                    user_id: &profile.user_id,
                    id: format!("wd-{:06}", summary.withdrawals),
                    asset: w.asset,
                    network: w.address.net.name(),
                    amount_usd: w.amount,
                    destination: &w.address.text,
                    user: OutUser {
                        country: &config.region,
                        created_at: rfc3339(profile.created_at),
                        locale: profile.locale,
                        referral: profile.referral,
                    },
                    device_id: w.device.as_deref(),
                    status: w.cancelled.then_some("cancelled"),
                    label: match (warm, w.scam) {
                        (true, _) => None,
                        (false, true) => Some("scam"),
                        (false, false) => Some("legit"),
                    },
                    typology: w.typology.name(),
                })
            }
        }
        .map_err(|e| Error::io(Path::new("<output>"), e))?;
        out.write_all(line.as_bytes()).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        summary.events += 1;
    }
    out.flush().map_err(io)?;
    summary.typologies = by_typology
        .into_iter()
        .map(|(name, (u, w, s))| (name.to_string(), u, w, s))
        .collect();
    Ok(summary)
}

/// Hours as microseconds.
fn hours(h: f64) -> i64 {
    (h * MICROS_PER_HOUR as f64) as i64
}
