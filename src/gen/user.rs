//! Addresses, the shared world (gangs, mule campaigns, merchants, P2P groups) and what each
//! typology does.

use super::rng::Rng;
use super::typology::Typology;
use super::{hours, Ev, Kind, Wd, MICROS_PER_MINUTE};
use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR};

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
pub(super) enum Net {
    Tron,
    Eth,
}

impl Net {
    pub(super) fn random(rng: &mut Rng) -> Net {
        if rng.chance(0.7) {
            Net::Tron
        } else {
            Net::Eth
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Net::Tron => "TRON",
            Net::Eth => "ETH",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Address {
    pub(super) net: Net,
    pub(super) text: String,
}

impl Address {
    pub(super) fn new(rng: &mut Rng, net: Net) -> Address {
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

    fn watchlisted(rng: &mut Rng, net: Net) -> Address {
        let list: &[&str] = match net {
            Net::Tron => &SCAMETER_TRON,
            Net::Eth => &WATCHLIST_EVM,
        };
        let text = rng.pick(list).copied().unwrap_or_default().to_string();
        Address { net, text }
    }
}

/// How many of each shared thing the world needs.
pub(super) struct WorldSizes {
    pub(super) users: usize,
    pub(super) coach_victims: usize,
    pub(super) job_victims: usize,
    pub(super) mule_victims: usize,
    pub(super) p2p_payers: usize,
    pub(super) gang_size: usize,
}

/// A mule collection address and the window in which its victims pay it.
struct MuleCampaign {
    address: Address,
    at: i64,
    hours: i64,
}

/// Everything users share: scam gangs' addresses, mule campaigns, popular services, P2P groups.
pub(super) struct World {
    /// Investment-coach gangs: a few addresses each, paid by their victims over weeks.
    gangs: Vec<Vec<Address>>,
    /// Job/task-scam platforms: two deposit addresses each.
    platforms: Vec<Vec<Address>>,
    campaigns: Vec<MuleCampaign>,
    /// Popular services (exchanges' deposit addresses, payment processors, shops), paid by
    /// hundreds of honest users; the first ones are the most popular.
    merchants: Vec<Address>,
    /// Small shared P2P addresses (an OTC trader, a friend), each paid by a handful of users.
    p2p: Vec<Address>,
    seen: [usize; 4],
    pub(super) amount_scale: f64,
    pub(super) scam_scale: f64,
    pub(super) pace: f64,
}

/// Users per P2P address.
const P2P_GROUP: usize = 6;

impl World {
    pub(super) fn new(rng: &mut Rng, sizes: WorldSizes, start: i64, span: i64) -> World {
        let gang = sizes.gang_size.max(1);
        let gangs = (0..sizes.coach_victims.div_ceil(gang).max(1))
            .map(|g| {
                let net = Net::random(rng);
                let n = rng.int(2, 4);
                let mut addresses: Vec<Address> = (0..n).map(|_| Address::new(rng, net)).collect();
                if g % 3 == 0 {
                    if let Some(first) = addresses.first_mut() {
                        *first = Address::watchlisted(rng, net);
                    }
                }
                addresses
            })
            .collect();
        let platforms = (0..sizes.job_victims.div_ceil(gang).max(1))
            .map(|p| {
                let net = Net::random(rng);
                let mut addresses: Vec<Address> = (0..2).map(|_| Address::new(rng, net)).collect();
                if p % 4 == 1 {
                    if let Some(first) = addresses.first_mut() {
                        *first = Address::watchlisted(rng, net);
                    }
                }
                addresses
            })
            .collect();
        let campaigns = (0..sizes.mule_victims.div_ceil(gang + 1).max(1))
            .map(|c| {
                let net = Net::random(rng);
                let address = if c % 3 == 1 {
                    Address::watchlisted(rng, net)
                } else {
                    Address::new(rng, net)
                };
                let at = start + span / 5 + (rng.unit() * (span as f64 * 0.75)) as i64;
                MuleCampaign {
                    address,
                    at,
                    hours: rng.int(2, 12),
                }
            })
            .collect();
        let merchants = (0..(sizes.users / 1500).max(2))
            .map(|_| {
                let net = Net::random(rng);
                Address::new(rng, net)
            })
            .collect();
        let p2p = (0..sizes.p2p_payers.div_ceil(P2P_GROUP).max(1))
            .map(|_| {
                let net = Net::random(rng);
                Address::new(rng, net)
            })
            .collect();
        World {
            gangs,
            platforms,
            campaigns,
            merchants,
            p2p,
            seen: [0; 4],
            amount_scale: 1.0,
            scam_scale: 1.0,
            pace: 1.0,
        }
    }

    /// The next member's share of a shared list (members are assigned in turn).
    fn next<'a, T>(list: &'a [T], seen: &mut usize, per: usize) -> Option<&'a T> {
        let i = *seen / per.max(1);
        *seen += 1;
        list.get(i % list.len().max(1))
    }

    /// 1-3 favourite popular services, skewed to the most popular ones.
    fn favourite_merchants(&self, rng: &mut Rng) -> Vec<Address> {
        let n = rng.int(1, 3);
        (0..n)
            .filter_map(|_| {
                let len = self.merchants.len().max(1) as f64;
                // Zipf-like: index = len^u - 1.
                let i = (len.powf(rng.unit()) - 1.0).floor() as usize;
                self.merchants.get(i).cloned()
            })
            .collect()
    }
}

/// Where an honest user's withdrawals go besides their own addresses.
#[derive(Default)]
struct Habits {
    interval_days: f64,
    new_address_rate: f64,
    merchants: Vec<Address>,
    merchant_rate: f64,
    p2p: Option<Address>,
    p2p_rate: f64,
    /// When the user starts paying `p2p` (new customers keep joining a P2P desk).
    p2p_from: i64,
}

/// One user's generation context.
pub(super) struct UserGen<'a> {
    pub(super) rng: Rng,
    pub(super) index: u32,
    pub(super) typology: Typology,
    pub(super) devices: Vec<String>,
    pub(super) own: Vec<Address>,
    pub(super) median: f64,
    pub(super) events: &'a mut Vec<Ev>,
    pub(super) seq: &'a mut u64,
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

    fn login(&mut self, ts: i64, device: &str) {
        self.push(
            ts,
            Kind::Login {
                device: device.to_string(),
            },
        );
    }

    /// One of the user's devices (5% of the time none: an API withdrawal).
    fn device(&mut self) -> Option<String> {
        if self.rng.chance(0.05) {
            None
        } else {
            self.rng.pick(&self.devices).cloned()
        }
    }

    fn usual_device(&self) -> Option<String> {
        self.devices.first().cloned()
    }

    fn asset_for(&mut self, net: Net) -> &'static str {
        match net {
            Net::Tron => "USDT",
            Net::Eth if self.rng.chance(0.6) => "USDT",
            Net::Eth => "ETH",
        }
    }

    fn withdraw(
        &mut self,
        ts: i64,
        amount: f64,
        address: Address,
        device: Option<String>,
        scam: bool,
    ) {
        let cancelled = self.rng.chance(if scam { 0.10 } else { 0.03 });
        let asset = self.asset_for(address.net);
        let amount = (amount.max(1.0) * 100.0).round() / 100.0;
        let typology = self.typology;
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

    /// A fresh address of the user's own (remembered) with probability `p_new`, else one of
    /// their own.
    fn own_or_new(&mut self, p_new: f64) -> Address {
        if self.own.is_empty() || self.rng.chance(p_new) {
            let net = Net::random(&mut self.rng);
            let a = Address::new(&mut self.rng, net);
            self.own.push(a.clone());
            a
        } else {
            let i = self.rng.int(0, self.own.len() as i64 - 1) as usize;
            self.own.get(i).cloned().unwrap_or_else(|| Address {
                net: Net::Tron,
                text: String::new(),
            })
        }
    }

    /// A fresh address that is not the user's (a seller, a scammer).
    fn foreign(&mut self) -> Address {
        let net = Net::random(&mut self.rng);
        Address::new(&mut self.rng, net)
    }

    /// Honest withdrawals from `from` to `to`, about every `habits.interval_days`.
    fn honest_activity(&mut self, from: i64, to: i64, habits: &Habits) {
        let interval = habits.interval_days.max(0.2);
        let mut t = from + (self.rng.exp(interval) * MICROS_PER_DAY as f64) as i64;
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
            let x = self.rng.unit();
            let address = if x < habits.merchant_rate && !habits.merchants.is_empty() {
                amount = self.rng.lognormal(self.median * 0.7, 0.7);
                let i = self.rng.int(0, habits.merchants.len() as i64 - 1) as usize;
                habits.merchants.get(i).cloned()
            } else if x < habits.merchant_rate + habits.p2p_rate && t >= habits.p2p_from {
                habits.p2p.clone()
            } else {
                None
            };
            let address = match address {
                Some(a) => a,
                None => {
                    if self.rng.chance(0.02) {
                        amount *= self.rng.range(8.0, 20.0);
                    }
                    self.own_or_new(habits.new_address_rate)
                }
            };
            self.withdraw(t, amount, address, device, false);
            t += (self.rng.exp(interval).max(0.05) * MICROS_PER_DAY as f64) as i64;
        }
    }

    /// A random instant in `[from, from + span * share)`.
    fn at(&mut self, from: i64, span: i64, share: f64) -> i64 {
        from + (self.rng.unit() * span as f64 * share) as i64
    }

    /// Everything this user does; `first_seen` is when the account (or the warm-up) starts.
    pub(super) fn run(
        &mut self,
        world: &mut World,
        world_rng: &mut Rng,
        first_seen: i64,
        start: i64,
        end: i64,
    ) {
        let span = (end - start).max(1);
        // Devices are known from a login shortly after the account opens or the stream starts.
        for d in self.devices.clone() {
            let at = first_seen + self.rng.int(1, 12 * 60) * MICROS_PER_MINUTE;
            self.login(at, &d);
        }
        let from = first_seen + 12 * MICROS_PER_HOUR;
        let mut habits = Habits {
            interval_days: self.rng.range(3.0, 10.0),
            new_address_rate: 0.06,
            ..Habits::default()
        };
        // Many honest users sometimes pay a popular service.
        if self.rng.chance(0.3) {
            habits.merchants = world.favourite_merchants(&mut self.rng);
            habits.merchant_rate = 0.08;
        }
        // Some honest users pay a friend or a P2P desk that a handful of others pay too.
        if self.rng.chance(0.1) {
            let i = self.rng.int(0, world.p2p.len() as i64 - 1) as usize;
            habits.p2p = world.p2p.get(i).cloned();
            habits.p2p_rate = 0.1;
            habits.p2p_from = self.at(first_seen, end - first_seen, 1.0);
        }
        let pace = world.pace;
        let scam_scale = world.scam_scale;
        match self.typology {
            Typology::Regular => self.honest_activity(from, end, &habits),
            Typology::MerchantPayer => {
                habits.merchants = world.favourite_merchants(&mut self.rng);
                habits.merchant_rate = self.rng.range(0.4, 0.8);
                self.honest_activity(from, end, &habits);
            }
            Typology::P2pPayer => {
                habits.p2p = World::next(&world.p2p, &mut world.seen[0], P2P_GROUP).cloned();
                habits.p2p_rate = self.rng.range(0.3, 0.6);
                // Half the customers were there before; the others join at some point.
                if self.rng.chance(0.5) {
                    habits.p2p_from = self.at(first_seen, end - first_seen, 1.0);
                }
                self.honest_activity(from, end, &habits);
            }
            Typology::Whale => {
                habits.new_address_rate = 0.10;
                self.honest_activity(from, end, &habits);
            }
            Typology::Traveller => {
                self.honest_activity(from, end, &habits);
                let trip = self.at(start, span, 1.0);
                let device = format!("d-{}-travel", self.index + 1);
                self.login(trip, &device);
                for k in 0..self.rng.int(1, 3) {
                    let at =
                        trip + k * 20 * MICROS_PER_HOUR + self.rng.int(5, 50) * MICROS_PER_MINUTE;
                    let address = self.own_or_new(0.4);
                    let amount = self.rng.lognormal(self.median * 2.0, 0.6);
                    self.withdraw(at, amount, address, Some(device.clone()), false);
                }
            }
            Typology::FirstLarge => {
                let at = first_seen + self.rng.int(2, 72) * MICROS_PER_HOUR;
                let net = Net::random(&mut self.rng);
                let cold = Address::new(&mut self.rng, net);
                self.own = vec![cold.clone()];
                let amount = self.rng.range(5_000.0, 60_000.0) * world.amount_scale;
                let device = self.device();
                self.withdraw(at, amount, cold, device, false);
                habits.new_address_rate = 0.03;
                self.honest_activity(at, end, &habits);
            }
            Typology::TelegramNewcomer => {
                habits.interval_days = habits.interval_days.min(5.0);
                habits.new_address_rate = 0.05;
                self.honest_activity(from, end, &habits);
            }
            Typology::ResetLegit => {
                self.honest_activity(from, end, &habits);
                let reset = self.at(start, span, 1.0);
                self.push(reset, Kind::Reset);
                // A forgotten password, sometimes on a new phone.
                let device = if self.rng.chance(0.3) {
                    format!("d-{}-new", self.index + 1)
                } else {
                    self.usual_device().unwrap_or_default()
                };
                let login = reset + self.rng.int(2, 30) * MICROS_PER_MINUTE;
                self.login(login, &device);
                let at = reset + hours(self.rng.range(0.3, 20.0));
                let address = self.own_or_new(0.3);
                let amount = self.rng.lognormal(self.median, 0.5);
                self.withdraw(at, amount, address, Some(device), false);
            }
            Typology::ColdWallet => {
                // Moves most of its holdings to a new hardware wallet of its own.
                let at = self.at(start, span, 1.0);
                self.honest_activity(from, at, &habits);
                let net = Net::random(&mut self.rng);
                let cold = Address::new(&mut self.rng, net);
                let amount =
                    (self.median * self.rng.range(10.0, 50.0)).max(2_000.0 * world.amount_scale);
                let device = self.device();
                self.withdraw(at, amount, cold.clone(), device.clone(), false);
                if self.rng.chance(0.3) {
                    let again = at + self.rng.int(1, 10) * MICROS_PER_DAY;
                    let amount = amount * self.rng.range(0.2, 1.0);
                    self.withdraw(again, amount, cold.clone(), device, false);
                }
                self.own.push(cold);
                self.honest_activity(at, end, &habits);
            }
            Typology::BigPurchase => {
                self.honest_activity(from, end, &habits);
                let at = self.at(start, span, 1.0);
                let to = if self.rng.chance(0.4) {
                    world
                        .favourite_merchants(&mut self.rng)
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| self.foreign())
                } else {
                    self.foreign()
                };
                let amount =
                    (self.median * self.rng.range(5.0, 30.0)).max(1_000.0 * world.amount_scale);
                let device = self.device();
                self.withdraw(at, amount, to, device, false);
            }
            Typology::TelegramCoach => {
                let gang = World::next(&world.gangs, &mut world.seen[1], 1)
                    .cloned()
                    .unwrap_or_default();
                let begin = if first_seen >= start {
                    first_seen + self.rng.int(6, 96) * MICROS_PER_HOUR
                } else {
                    self.at(start, span, 0.6)
                };
                self.honest_activity(from, begin, &habits);
                let transfers = self.rng.int(3, 8);
                let mut at = begin;
                let mut amount = self.rng.range(100.0, 1_500.0) * scam_scale;
                let mut last: Option<Address> = None;
                let device = self.usual_device();
                for _ in 0..transfers {
                    let address = match &last {
                        Some(a) if self.rng.chance(0.5) => a.clone(),
                        _ => self
                            .rng
                            .pick(&gang)
                            .cloned()
                            .unwrap_or_else(|| Address::new(world_rng, Net::Tron)),
                    };
                    last = Some(address.clone());
                    self.withdraw(at, amount, address, device.clone(), true);
                    amount *= self.rng.range(1.5, 3.0);
                    at += hours(self.rng.range(20.0, 120.0) * pace);
                }
            }
            Typology::FakeSupport => {
                let takeover = start + span / 5 + self.at(0, span, 0.75);
                self.honest_activity(from, takeover, &habits);
                if self.rng.chance(0.85) {
                    self.push(takeover, Kind::Reset);
                }
                let device = if self.rng.chance(0.85) {
                    format!("d-{}-x", self.index + 1)
                } else {
                    // Remote-control app on the victim's own phone.
                    self.usual_device().unwrap_or_default()
                };
                let login = takeover + self.rng.int(5, 60) * MICROS_PER_MINUTE;
                self.login(login, &device);
                let net = Net::random(&mut self.rng);
                let drain_to = if self.rng.chance(0.25) {
                    Address::watchlisted(&mut self.rng, net)
                } else {
                    Address::new(&mut self.rng, net)
                };
                let balance = (self.median * self.rng.range(10.0, 40.0))
                    .clamp(1_500.0 * world.amount_scale, 80_000.0 * world.amount_scale)
                    * (scam_scale / world.amount_scale.max(1e-9));
                let mut at = login + self.rng.int(2, 30) * MICROS_PER_MINUTE;
                let mut left = balance;
                for k in 0..self.rng.int(1, 3) {
                    let amount = left
                        * if k == 0 {
                            self.rng.range(0.5, 0.95)
                        } else {
                            self.rng.range(0.3, 1.0)
                        };
                    left -= amount;
                    self.withdraw(at, amount, drain_to.clone(), Some(device.clone()), true);
                    at += hours(self.rng.range(0.1, 2.0) * pace);
                }
            }
            Typology::MuleVictim => {
                let campaign = World::next(&world.campaigns, &mut world.seen[2], 1)
                    .map(|c| (c.address.clone(), c.at, c.hours));
                let (address, at0, window) = campaign
                    .unwrap_or_else(|| (Address::new(world_rng, Net::Tron), start + span / 2, 6));
                let at = at0 + self.rng.int(0, window * 60) * MICROS_PER_MINUTE;
                self.honest_activity(from, at, &habits);
                let amount = self.rng.lognormal(800.0, 0.7) * scam_scale;
                let device = self.device();
                self.withdraw(at, amount, address.clone(), device.clone(), true);
                if self.rng.chance(0.25) {
                    let again = at + hours(self.rng.range(0.2, 3.0) * pace);
                    let amount = self.rng.lognormal(800.0, 0.7) * scam_scale;
                    self.withdraw(again, amount, address, device, true);
                }
            }
            Typology::Romance => {
                let begin = self.at(start, span, 0.4);
                self.honest_activity(from, begin, &habits);
                let partner = self.foreign();
                let mut at = begin;
                let mut amount = self.rng.range(100.0, 500.0) * scam_scale;
                let device = self.usual_device();
                for _ in 0..self.rng.int(4, 12) {
                    self.withdraw(at, amount, partner.clone(), device.clone(), true);
                    amount *= self.rng.range(1.1, 1.4);
                    at += hours(self.rng.range(72.0, 240.0) * pace);
                }
            }
            Typology::JobScam => {
                let platform = World::next(&world.platforms, &mut world.seen[3], 1)
                    .cloned()
                    .unwrap_or_default();
                let begin = if first_seen >= start {
                    first_seen + self.rng.int(6, 72) * MICROS_PER_HOUR
                } else {
                    self.at(start, span, 0.6)
                };
                self.honest_activity(from, begin, &habits);
                let device = self.usual_device();
                let mut at = begin;
                let mut last: Option<Address> = None;
                let small = self.rng.int(3, 10);
                let large = self.rng.int(2, 4);
                let mut amount = self.rng.range(300.0, 1_500.0) * scam_scale;
                for k in 0..small + large {
                    let address = match &last {
                        Some(a) if self.rng.chance(0.6) => a.clone(),
                        _ => self
                            .rng
                            .pick(&platform)
                            .cloned()
                            .unwrap_or_else(|| Address::new(world_rng, Net::Tron)),
                    };
                    last = Some(address.clone());
                    if k < small {
                        // "Tasks": small top-ups, several a day.
                        let task = self.rng.range(15.0, 120.0) * scam_scale;
                        self.withdraw(at, task, address, device.clone(), true);
                        at += hours(self.rng.range(1.0, 20.0) * pace);
                    } else {
                        // Then the "VIP tasks": larger and larger, to unlock the commission.
                        self.withdraw(at, amount, address, device.clone(), true);
                        amount *= self.rng.range(1.8, 3.0);
                        at += hours(self.rng.range(12.0, 48.0) * pace);
                    }
                }
            }
        }
    }
}
