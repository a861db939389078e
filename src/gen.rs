//! `riskgate gen`: a deterministic generator of labeled event streams to tune rules on.
//!
//! The same [`GenConfig`] always yields the same bytes (a SplitMix64 generator seeded from
//! `seed`; no clock, no thread timing, no hash-map order). Every withdrawal carries `label`
//! (`scam` or `legit`) and an extra `typology` field naming the behaviour that produced it
//! (riskgate's parser ignores fields the contract does not name, so the stream scores as is).
//!
//! # Users and typologies
//! Each user is drawn into one typology. Honest users make up `1 - scam_share` of the users,
//! split as follows (shares of the honest users):
//!
//! | typology | share | behaviour |
//! | --- | --- | --- |
//! | `regular` | 62% | established account; withdraws every few days to one of its own 1-3 addresses, amounts around a personal median; 6% of withdrawals go to a new address of its own, 2% are one-off big purchases (8-20x the median) |
//! | `whale` | 5% | like `regular` with a median of tens of thousands of USD; 10% new addresses |
//! | `traveller` | 10% | `regular`, plus one trip: a login from a new device, then within the hour a withdrawal, to a new address half the time |
//! | `first-large` | 10% | account opened during the stream; within 3 days a large first withdrawal (5k-60k USD) to its own new cold wallet, then regular behaviour |
//! | `telegram-newcomer` | 5% | young account referred from Telegram (honest crypto community), small withdrawals to its own address |
//! | `reset-legit` | 8% | `regular`, plus a forgotten password: reset, login on its usual device, a withdrawal within hours (to a new address 30% of the time) |
//!
//! Scam victims make up `scam_share` of the users (shares of the victims):
//!
//! | typology | share | behaviour |
//! | --- | --- | --- |
//! | `telegram-coach` | 35% | investment "coach" met on Telegram: account opened days before (referral `telegram`), 3-6 transfers 1-4 days apart, each 1.8-3x the last, to addresses of the coach's gang (half the time a new one) |
//! | `fake-support` | 20% | account takeover / fake support: established honest history, then a password reset, a login on a new device minutes later, and one or two withdrawals draining the account to a new address |
//! | `mule-victim` | 25% | established honest history, then pays (a quarter of them twice) a mule collection address that about 5 other victims pay within the same 6 hours |
//! | `romance` | 20% | established honest history, then 5-10 transfers 5-9 days apart to one new address, each 15-40% more than the last |
//!
//! Scam addresses belong to gangs (3 addresses each for coaches; one per mule campaign); a
//! third of the gangs and mule campaigns use an address from the shipped watchlists
//! (`rules/hk-police/watchlists/scameter.txt`, `rules/community-darklist/watchlists/mew-darklist.json`).
//! Scam withdrawals are labeled `scam`, everything else `legit` (including the honest history
//! of users who later fall victim).
//!
//! Across typologies: 3% of withdrawals are `cancelled` (10% of scam ones: victims who hesitate);
//! 40% of honest withdrawals follow a login 1-60 minutes earlier; 5% carry no `device_id` (API
//! withdrawals); TRON USDT is used 70% of the time, Ethereum (USDT or ETH) 30%, with EVM
//! addresses sometimes in mixed case. Locales are `zh-HK` (70%) or `en`.
//!
//! Events outside `[start, start + days)` are dropped and the rest are sorted by time (ties in
//! generation order); withdrawal ids (`wd-000001`, ...) follow that order. The generator holds
//! the events in memory to sort them: about 300 bytes per event.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::time::{Timestamp, MICROS_PER_DAY, MICROS_PER_HOUR};

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Seed of the pseudo-random generator: the same config gives the same bytes.
    pub seed: u64,
    /// Number of users.
    pub users: u32,
    /// Length of the stream in days, from `start`.
    pub days: u32,
    /// The users' country (ISO 3166 alpha-2), e.g. `HK`.
    pub region: String,
    /// First instant of the stream.
    pub start: Timestamp,
    /// Share of users who fall victim to a scam during the stream (0 to 1).
    pub scam_share: f64,
}

impl GenConfig {
    /// `seed`, `users`, `days`; region `HK`, start 2026-11-01T00:00:00Z, scam share 0.12.
    pub fn new(seed: u64, users: u32, days: u32) -> GenConfig {
        GenConfig {
            seed,
            users,
            days,
            region: "HK".to_string(),
            start: Timestamp::from_micros(1_793_491_200_000_000),
            scam_share: 0.12,
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
    /// `(typology, users, withdrawals, scam withdrawals)`.
    pub typologies: Vec<(String, u64, u64, u64)>,
}

/// SplitMix64: tiny, fast, and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [lo, hi] (inclusive).
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.saturating_sub(lo).saturating_add(1).max(1) as u64;
        lo.saturating_add((self.next_u64() % span) as i64)
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space spread.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).max(1e-12).ln()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get((self.next_u64() % items.len() as u64) as usize)
    }
}

/// Known scam addresses from the shipped watchlists (a few of each).
const SCAMETER_TRON: [&str; 4] = [
    "TQ5hy8bGn6ZpLmD1oYdHuWxZ3fQ2sJkN9a",
    "TXm2kV7cRr4PqWzL8nBf6YdS1hGjE3tUo9",
    "TGv4sN8pQ1wXe7rMz2kLy6uJc5dHb3aTfR",
    "TLkP9x2QmZ7vN4bR8sD1fW6gH3jY5tUe2c",
];
const WATCHLIST_EVM: [&str; 5] = [
    "0x9F8e7D6c5B4a3928171615141312111009080706",
    "0xfb6E71e0800BcCC0db8a9Cf326fe3213CA1A0EA0",
    "0xB4c9d8A5812a024BDb177991af256dA144776033",
    "0x5ddD20aC4bACFf3f148aF4C8C24194a1C102CfE5",
    "0x03f034Fb47965123ea4148e3147E2cfdC5B1f7a5",
];

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Net {
    Tron,
    Eth,
}

#[derive(Clone, Debug)]
struct Address {
    net: Net,
    text: String,
}

fn new_address(rng: &mut Rng, net: Net) -> Address {
    let text = match net {
        Net::Tron => {
            let mut s = String::from("T");
            for _ in 0..33 {
                s.push(char::from(*rng.pick(BASE58).unwrap_or(&b'1')));
            }
            s
        }
        Net::Eth => {
            let mixed = rng.chance(0.3);
            let mut s = String::from("0x");
            for _ in 0..40 {
                let c = char::from(*rng.pick(HEX).unwrap_or(&b'0'));
                s.push(if mixed && rng.chance(0.5) {
                    c.to_ascii_uppercase()
                } else {
                    c
                });
            }
            s
        }
    };
    Address { net, text }
}

fn random_net(rng: &mut Rng) -> Net {
    if rng.chance(0.7) {
        Net::Tron
    } else {
        Net::Eth
    }
}

fn watchlisted(rng: &mut Rng, net: Net) -> Address {
    let list: &[&str] = match net {
        Net::Tron => &SCAMETER_TRON,
        Net::Eth => &WATCHLIST_EVM,
    };
    let text = rng.pick(list).copied().unwrap_or_default().to_string();
    Address { net, text }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Typology {
    Regular,
    Whale,
    Traveller,
    FirstLarge,
    TelegramNewcomer,
    ResetLegit,
    TelegramCoach,
    FakeSupport,
    MuleVictim,
    Romance,
}

impl Typology {
    fn name(self) -> &'static str {
        match self {
            Typology::Regular => "regular",
            Typology::Whale => "whale",
            Typology::Traveller => "traveller",
            Typology::FirstLarge => "first-large",
            Typology::TelegramNewcomer => "telegram-newcomer",
            Typology::ResetLegit => "reset-legit",
            Typology::TelegramCoach => "telegram-coach",
            Typology::FakeSupport => "fake-support",
            Typology::MuleVictim => "mule-victim",
            Typology::Romance => "romance",
        }
    }

    const HONEST: [(Typology, f64); 6] = [
        (Typology::Regular, 0.62),
        (Typology::Whale, 0.05),
        (Typology::Traveller, 0.10),
        (Typology::FirstLarge, 0.10),
        (Typology::TelegramNewcomer, 0.05),
        (Typology::ResetLegit, 0.08),
    ];
    const SCAM: [(Typology, f64); 4] = [
        (Typology::TelegramCoach, 0.35),
        (Typology::FakeSupport, 0.20),
        (Typology::MuleVictim, 0.25),
        (Typology::Romance, 0.20),
    ];

    fn draw(rng: &mut Rng, scam_share: f64) -> Typology {
        let table: &[(Typology, f64)] = if rng.chance(scam_share) {
            &Typology::SCAM
        } else {
            &Typology::HONEST
        };
        let mut x = rng.unit();
        for &(t, share) in table {
            if x < share {
                return t;
            }
            x -= share;
        }
        table.last().map_or(Typology::Regular, |&(t, _)| t)
    }
}

struct Profile {
    user_id: String,
    created_at: i64,
    locale: &'static str,
    referral: &'static str,
}

enum Kind {
    Login { device: String },
    Reset,
    Withdrawal(Box<Wd>),
}

struct Wd {
    amount: f64,
    address: Address,
    asset: &'static str,
    device: Option<String>,
    cancelled: bool,
    scam: bool,
    typology: Typology,
}

struct Ev {
    ts: i64,
    seq: u64,
    user: u32,
    kind: Kind,
}

/// One user's generation context.
struct UserGen<'a> {
    rng: Rng,
    index: u32,
    typology: Typology,
    devices: Vec<String>,
    own: Vec<Address>,
    median: f64,
    events: &'a mut Vec<Ev>,
    seq: &'a mut u64,
}

impl UserGen<'_> {
    fn push(&mut self, ts: i64, kind: Kind) {
        *self.seq += 1;
        self.events.push(Ev {
            ts,
            seq: *self.seq,
            user: self.index,
            kind,
        });
    }

    /// A fresh address with probability `p_new`, else one of the user's own (a fresh Tron
    /// address from `world` when they have none yet).
    fn new_or_own_address(&mut self, p_new: f64, world: &mut Rng) -> Address {
        if self.rng.chance(p_new) {
            let net = random_net(&mut self.rng);
            new_address(&mut self.rng, net)
        } else {
            self.rng
                .pick(&self.own)
                .cloned()
                .unwrap_or_else(|| new_address(world, Net::Tron))
        }
    }

    fn login(&mut self, ts: i64, device: &str) {
        self.push(
            ts,
            Kind::Login {
                device: device.to_string(),
            },
        );
    }

    fn device(&mut self) -> Option<String> {
        if self.rng.chance(0.05) {
            None
        } else {
            self.rng.pick(&self.devices).cloned()
        }
    }

    fn asset_for(&mut self, net: Net) -> &'static str {
        match net {
            Net::Tron => "USDT",
            Net::Eth if self.rng.chance(0.6) => "USDT",
            Net::Eth => "ETH",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn withdraw(
        &mut self,
        ts: i64,
        amount: f64,
        address: Address,
        device: Option<String>,
        scam: bool,
        typology: Typology,
    ) {
        let cancelled = self.rng.chance(if scam { 0.10 } else { 0.03 });
        let asset = self.asset_for(address.net);
        let amount = (amount.max(1.0) * 100.0).round() / 100.0;
        self.push(
            ts,
            Kind::Withdrawal(Box::new(Wd {
                amount,
                address,
                asset,
                device,
                cancelled,
                scam,
                typology,
            })),
        );
    }

    /// Honest withdrawals from `from` to `to`, about every `interval_days`.
    fn honest_activity(&mut self, from: i64, to: i64, interval_days: f64, new_address_rate: f64) {
        let mut t = from + (self.rng.exp(interval_days) * MICROS_PER_DAY as f64) as i64;
        while t < to {
            let device = self.device();
            if let Some(d) = &device {
                if self.rng.chance(0.4) {
                    let before = self.rng.int(1, 60) * MICROS_PER_MINUTE;
                    let d = d.clone();
                    self.login(t - before, &d);
                }
            }
            let mut amount = self.rng.lognormal(self.median, 0.5);
            if self.rng.chance(0.02) {
                amount *= self.rng.range(8.0, 20.0);
            }
            let address = if self.own.is_empty() || self.rng.chance(new_address_rate) {
                let net = random_net(&mut self.rng);
                let a = new_address(&mut self.rng, net);
                self.own.push(a.clone());
                a
            } else {
                self.rng
                    .pick(&self.own)
                    .cloned()
                    .unwrap_or_else(|| Address {
                        net: Net::Tron,
                        text: String::new(),
                    })
            };
            let typology = self.typology;
            self.withdraw(t, amount, address, device, false, typology);
            t += (self.rng.exp(interval_days).max(0.05) * MICROS_PER_DAY as f64) as i64;
        }
    }
}

/// A gang of coach scammers: a few addresses its victims pay.
struct Gang {
    addresses: Vec<Address>,
}

/// A mule collection address and the hour its victims pay it.
struct MuleCampaign {
    address: Address,
    at: i64,
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
    label: &'static str,
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

/// Generates the stream described by `config` and writes it to `out` as JSON Lines.
pub fn generate(config: &GenConfig, out: &mut dyn Write) -> Result<GenSummary, Error> {
    let start = config.start.as_micros();
    let end = start.saturating_add(i64::from(config.days) * MICROS_PER_DAY);
    let span = (end - start).max(1);
    let scam_share = if config.scam_share.is_finite() {
        config.scam_share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut world = Rng::new(config.seed, u64::MAX);

    // Typologies first, so that gangs and mule campaigns can be sized to their victims.
    let typologies: Vec<Typology> = (0..config.users)
        .map(|i| {
            Typology::draw(
                &mut Rng::new(config.seed, u64::from(i) << 1 | 1),
                scam_share,
            )
        })
        .collect();
    let coach_victims = typologies
        .iter()
        .filter(|t| **t == Typology::TelegramCoach)
        .count();
    let mule_victims = typologies
        .iter()
        .filter(|t| **t == Typology::MuleVictim)
        .count();
    let gangs: Vec<Gang> = (0..coach_victims.div_ceil(5).max(1))
        .map(|g| {
            let net = random_net(&mut world);
            let mut addresses: Vec<Address> =
                (0..3).map(|_| new_address(&mut world, net)).collect();
            if g % 3 == 0 {
                if let Some(first) = addresses.first_mut() {
                    *first = watchlisted(&mut world, net);
                }
            }
            Gang { addresses }
        })
        .collect();
    let campaigns: Vec<MuleCampaign> = (0..mule_victims.div_ceil(6).max(1))
        .map(|c| {
            let net = random_net(&mut world);
            let address = if c % 3 == 1 {
                watchlisted(&mut world, net)
            } else {
                new_address(&mut world, net)
            };
            let at = start + span / 4 + (world.unit() * (span as f64 * 0.7)) as i64;
            MuleCampaign { address, at }
        })
        .collect();

    let width = config.users.max(1).to_string().len().max(4);
    let mut profiles = Vec::with_capacity(typologies.len());
    let mut events: Vec<Ev> = Vec::new();
    let mut seq = 0_u64;
    let (mut coach_seen, mut mule_seen) = (0_usize, 0_usize);
    for (i, &typology) in typologies.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let mut rng = Rng::new(config.seed, u64::from(index) << 1);
        let user_id = format!("u-{:0width$}", index + 1);
        let locale = if rng.chance(0.7) { "zh-HK" } else { "en" };
        let mut referral = *rng
            .pick(&["organic", "organic", "organic", "ads", "ads", "friend"])
            .unwrap_or(&"organic");
        let young = matches!(
            typology,
            Typology::FirstLarge | Typology::TelegramNewcomer | Typology::TelegramCoach
        );
        let created_at = if young {
            start + (rng.unit() * (span as f64 * 0.8)) as i64
        } else {
            start - rng.int(60, 1500) * MICROS_PER_DAY - rng.int(0, 86_399) * 1_000_000
        };
        if matches!(
            typology,
            Typology::TelegramNewcomer | Typology::TelegramCoach
        ) {
            referral = "telegram";
        }
        let median = match typology {
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
                let net = random_net(&mut rng);
                new_address(&mut rng, net)
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

        // Devices are known from a login shortly after the account opens or the stream starts.
        let first_seen = created_at.max(start);
        for d in g.devices.clone() {
            let at = first_seen + g.rng.int(1, 12 * 60) * MICROS_PER_MINUTE;
            g.login(at, &d);
        }
        let activity_from = first_seen + 12 * MICROS_PER_HOUR;
        let interval = g.rng.range(3.0, 10.0);
        match typology {
            Typology::Regular => g.honest_activity(activity_from, end, interval, 0.06),
            Typology::Whale => g.honest_activity(activity_from, end, interval, 0.10),
            Typology::Traveller => {
                let trip = start + (g.rng.unit() * span as f64) as i64;
                g.honest_activity(activity_from, end, interval, 0.06);
                let device = format!("d-{}-travel", index + 1);
                g.login(trip, &device);
                let at = trip + g.rng.int(5, 50) * MICROS_PER_MINUTE;
                let address = g.new_or_own_address(0.5, &mut world);
                let amount = g.rng.lognormal(g.median * 2.0, 0.6);
                g.withdraw(at, amount, address, Some(device), false, typology);
            }
            Typology::FirstLarge => {
                let at = created_at + g.rng.int(2, 72) * MICROS_PER_HOUR;
                let net = random_net(&mut g.rng);
                let cold = new_address(&mut g.rng, net);
                g.own = vec![cold.clone()];
                let amount = g.rng.range(5_000.0, 60_000.0);
                let device = g.device();
                g.withdraw(at, amount, cold, device, false, typology);
                g.honest_activity(at, end, interval, 0.03);
            }
            Typology::TelegramNewcomer => {
                g.honest_activity(activity_from, end, interval.min(5.0), 0.05)
            }
            Typology::ResetLegit => {
                g.honest_activity(activity_from, end, interval, 0.06);
                let reset = start + (g.rng.unit() * span as f64) as i64;
                g.push(reset, Kind::Reset);
                let device = g.devices.first().cloned().unwrap_or_default();
                let login = reset + g.rng.int(2, 30) * MICROS_PER_MINUTE;
                g.login(login, &device);
                let at = reset + g.rng.int(1, 20) * MICROS_PER_HOUR;
                let address = g.new_or_own_address(0.3, &mut world);
                let amount = g.rng.lognormal(g.median, 0.5);
                g.withdraw(at, amount, address, Some(device), false, typology);
            }
            Typology::TelegramCoach => {
                let gang = gangs.get(coach_seen % gangs.len().max(1));
                coach_seen += 1;
                let transfers = g.rng.int(3, 6);
                let mut at = created_at + g.rng.int(6, 96) * MICROS_PER_HOUR;
                let mut amount = g.rng.range(200.0, 1_500.0);
                let mut last: Option<Address> = None;
                let device = g.devices.first().cloned();
                for _ in 0..transfers {
                    let address = match (&last, gang) {
                        (Some(a), _) if g.rng.chance(0.5) => a.clone(),
                        (_, Some(gang)) => g
                            .rng
                            .pick(&gang.addresses)
                            .cloned()
                            .unwrap_or_else(|| new_address(&mut world, Net::Tron)),
                        (_, None) => new_address(&mut world, Net::Tron),
                    };
                    last = Some(address.clone());
                    g.withdraw(at, amount, address, device.clone(), true, typology);
                    amount *= g.rng.range(1.8, 3.0);
                    at += g.rng.int(24, 96) * MICROS_PER_HOUR;
                }
            }
            Typology::FakeSupport => {
                let takeover = start + span / 3 + (g.rng.unit() * (span as f64 * 0.6)) as i64;
                g.honest_activity(activity_from, takeover, interval, 0.05);
                g.push(takeover, Kind::Reset);
                let device = format!("d-{}-x", index + 1);
                let login = takeover + g.rng.int(5, 60) * MICROS_PER_MINUTE;
                g.login(login, &device);
                let net = random_net(&mut g.rng);
                let drain_to = if g.rng.chance(0.25) {
                    watchlisted(&mut g.rng, net)
                } else {
                    new_address(&mut g.rng, net)
                };
                let balance = (g.median * g.rng.range(10.0, 40.0)).clamp(2_000.0, 80_000.0);
                let first = login + g.rng.int(2, 30) * MICROS_PER_MINUTE;
                let amount = balance * g.rng.range(0.6, 0.95);
                g.withdraw(
                    first,
                    amount,
                    drain_to.clone(),
                    Some(device.clone()),
                    true,
                    typology,
                );
                if g.rng.chance(0.4) {
                    let second = first + g.rng.int(5, 90) * MICROS_PER_MINUTE;
                    let amount = balance * g.rng.range(0.05, 0.3);
                    g.withdraw(second, amount, drain_to, Some(device), true, typology);
                }
            }
            Typology::MuleVictim => {
                let campaign = campaigns.get(mule_seen % campaigns.len().max(1));
                mule_seen += 1;
                let at = campaign.map_or(start + span / 2, |c| c.at)
                    + g.rng.int(0, 6 * 60) * MICROS_PER_MINUTE;
                g.honest_activity(activity_from, at, interval, 0.05);
                let address = campaign
                    .map_or_else(|| new_address(&mut world, Net::Tron), |c| c.address.clone());
                let amount = g.rng.lognormal(800.0, 0.6);
                let device = g.device();
                g.withdraw(at, amount, address.clone(), device.clone(), true, typology);
                if g.rng.chance(0.25) {
                    let again = at + g.rng.int(10, 120) * MICROS_PER_MINUTE;
                    let amount = g.rng.lognormal(800.0, 0.6);
                    g.withdraw(again, amount, address, device, true, typology);
                }
            }
            Typology::Romance => {
                let from = start + (g.rng.unit() * (span as f64 * 0.4)) as i64;
                g.honest_activity(activity_from, from, interval, 0.05);
                let net = random_net(&mut g.rng);
                let partner = new_address(&mut g.rng, net);
                let mut at = from;
                let mut amount = g.rng.range(100.0, 300.0);
                let device = g.devices.first().cloned();
                for _ in 0..g.rng.int(5, 10) {
                    g.withdraw(at, amount, partner.clone(), device.clone(), true, typology);
                    amount *= g.rng.range(1.15, 1.4);
                    at += g.rng.int(5, 9) * MICROS_PER_DAY + g.rng.int(0, 23) * MICROS_PER_HOUR;
                }
            }
        }
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

    events.retain(|e| e.ts >= start && e.ts < end);
    events.sort_by_key(|e| (e.ts, e.seq));
    write_events(config, &events, &profiles, out)
}

fn write_events(
    config: &GenConfig,
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
                let counts = by_typology.entry(w.typology.name()).or_default();
                counts.1 += 1;
                if w.scam {
                    summary.scam_withdrawals += 1;
                    counts.2 += 1;
                }
                serde_json::to_string(&OutWithdrawal {
                    kind: "withdrawal",
                    ts,
                    user_id: &profile.user_id,
                    id: format!("wd-{:06}", summary.withdrawals),
                    asset: w.asset,
                    network: match w.address.net {
                        Net::Tron => "TRON",
                        Net::Eth => "ETH",
                    },
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
                    label: if w.scam { "scam" } else { "legit" },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_stable() {
        // Reference values of SplitMix64 seeded with 0 (after one increment).
        let mut r = Rng(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
