//! The `tx` a rule sees (contract section 2), as one borrowed, fixed-layout view: what the fast
//! path reads directly, and what the Rhai object map is built from when a rule needs the
//! interpreter.

use rhai::{Dynamic, Map};

use crate::state::TxFeatures;
use crate::tx::Tx;

/// The watchlists holding a destination, as the rule set keeps them or as a [`crate::Tx`] does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Watchlists<'a> {
    /// From the rule set's index (Rhai strings).
    Dynamic(&'a [Dynamic]),
    /// From a [`crate::Tx`].
    Strings(&'a [String]),
}

impl Watchlists<'_> {
    /// Whether `id` is one of them (Rhai's `id in tx.watchlists` for a string `id`).
    pub(crate) fn contains(&self, id: &str) -> bool {
        match self {
            Watchlists::Dynamic(list) => list.iter().any(|d| {
                d.read_lock::<rhai::ImmutableString>()
                    .is_some_and(|s| s.as_str() == id)
            }),
            Watchlists::Strings(list) => list.iter().any(|s| s == id),
        }
    }

    /// How many watchlists.
    pub(crate) fn len(&self) -> usize {
        match self {
            Watchlists::Dynamic(list) => list.len(),
            Watchlists::Strings(list) => list.len(),
        }
    }

    /// The bytes of all the ids (what Rhai counts against `max_string_size` for the array).
    pub(crate) fn total_bytes(&self) -> usize {
        match self {
            Watchlists::Dynamic(list) => list
                .iter()
                .map(|d| {
                    d.read_lock::<rhai::ImmutableString>()
                        .map_or(0, |s| s.len())
                })
                .sum(),
            Watchlists::Strings(list) => list.iter().map(String::len).sum(),
        }
    }

    fn to_array(self) -> rhai::Array {
        match self {
            Watchlists::Dynamic(list) => list.to_vec(),
            Watchlists::Strings(list) => list.iter().map(|s| Dynamic::from(s.clone())).collect(),
        }
    }
}

/// The names of [`TxView::strs`], in order.
pub(crate) const STRING_FIELDS: [&str; 8] = [
    "id",
    "user_id",
    "asset",
    "network",
    "country",
    "locale",
    "referral",
    "destination",
];

/// Every `tx` field of one withdrawal, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TxView<'a> {
    pub(crate) amount_usd: f64,
    pub(crate) features: TxFeatures,
    pub(crate) watchlists: Watchlists<'a>,
    /// The string fields, in this order: id, user_id, asset, network, country, locale,
    /// referral, destination.
    pub(crate) strs: [&'a str; 8],
    /// The length in bytes of the longest string field (see `fastpath::FAST_TEXT_LIMIT`).
    pub(crate) longest_text: usize,
    /// The integer fields as a table (see [`TxView::new`]), for the fast path.
    pub(crate) ints: [i64; 11],
    /// The float fields as a table, for the fast path.
    pub(crate) floats: [f64; 11],
}

impl<'a> TxView<'a> {
    /// A view with the fast path's tables filled in: `ints` = account_age_days,
    /// prior_withdrawals, withdrawals_24h, dest_users_24h, dest_users_30d,
    /// dest_prior_withdrawals, dest_rising_run, dest_others_since_first, dest_rises,
    /// new_payee_withdrawals_30d, withdrawals_before_30d; `floats` = amount_usd, amount_usd_24h,
    /// median_amount_usd_90d, hours_since_password_reset, device_age_hours,
    /// dest_first_used_days, dest_amount_usd_30d, dest_last_amount_usd, dest_first_amount_usd,
    /// dest_others_first_days, state_days.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        strings: [&'a str; 8],
        amount_usd: f64,
        features: TxFeatures,
        watchlists: Watchlists<'a>,
    ) -> TxView<'a> {
        let f = &features;
        TxView {
            amount_usd,
            strs: strings,
            longest_text: strings.iter().map(|s| s.len()).max().unwrap_or(0),
            ints: [
                f.account_age_days,
                f.prior_withdrawals,
                f.withdrawals_24h,
                f.dest_users_24h,
                f.dest_users_30d,
                f.dest_prior_withdrawals,
                f.dest_rising_run,
                f.dest_others_since_first,
                f.dest_rises,
                f.new_payee_withdrawals_30d,
                f.withdrawals_before_30d,
            ],
            floats: [
                amount_usd,
                f.amount_usd_24h,
                f.median_amount_usd_90d,
                f.hours_since_password_reset,
                f.device_age_hours,
                f.dest_first_used_days,
                f.dest_amount_usd_30d,
                f.dest_last_amount_usd,
                f.dest_first_amount_usd,
                f.dest_others_first_days,
                f.state_days,
            ],
            features,
            watchlists,
        }
    }

    /// String field `index` of [`TxView::strs`] (`""` past the end, which compiled rules never
    /// ask for).
    #[inline]
    pub(crate) fn text(&self, index: u8) -> &'a str {
        self.strs
            .get(usize::from(index))
            .copied()
            .unwrap_or_default()
    }

    /// The `tx` object map a rule run by the interpreter sees.
    pub(crate) fn to_map(self) -> Map {
        let f = &self.features;
        let mut map = Map::new();
        let mut put = |key: &str, value: Dynamic| {
            map.insert(key.into(), value);
        };
        for (key, value) in STRING_FIELDS.into_iter().zip(self.strs) {
            put(key, value.into());
        }
        put("amount_usd", self.amount_usd.into());
        put("account_age_days", f.account_age_days.into());
        put("is_new_address", f.is_new_address.into());
        put("prior_withdrawals", f.prior_withdrawals.into());
        put("withdrawals_24h", f.withdrawals_24h.into());
        put("amount_usd_24h", f.amount_usd_24h.into());
        put("median_amount_usd_90d", f.median_amount_usd_90d.into());
        put(
            "hours_since_password_reset",
            f.hours_since_password_reset.into(),
        );
        put("device_age_hours", f.device_age_hours.into());
        put("dest_users_24h", f.dest_users_24h.into());
        put("dest_users_30d", f.dest_users_30d.into());
        put("dest_first_used_days", f.dest_first_used_days.into());
        put("dest_amount_usd_30d", f.dest_amount_usd_30d.into());
        put("dest_prior_withdrawals", f.dest_prior_withdrawals.into());
        put("dest_last_amount_usd", f.dest_last_amount_usd.into());
        put("dest_rising_run", f.dest_rising_run.into());
        put("dest_others_since_first", f.dest_others_since_first.into());
        put("dest_first_amount_usd", f.dest_first_amount_usd.into());
        put("dest_rises", f.dest_rises.into());
        put(
            "new_payee_withdrawals_30d",
            f.new_payee_withdrawals_30d.into(),
        );
        put("withdrawals_before_30d", f.withdrawals_before_30d.into());
        put("dest_others_first_days", f.dest_others_first_days.into());
        put("state_days", f.state_days.into());
        put(
            "watchlists",
            Dynamic::from_array(self.watchlists.to_array()),
        );
        map
    }
}

impl Tx {
    /// The `tx` object map a rule run by the Rhai interpreter sees (for tools and benches that
    /// drive Rhai directly; scoring builds it only when an applicable rule needs it).
    pub fn to_rhai_map(&self) -> rhai::Map {
        TxView::from(self).to_map()
    }

    /// The string fields in [`TxView`]'s order: id, user_id, asset, network, country, locale,
    /// referral, destination.
    pub(crate) fn strings(&self) -> [&str; 8] {
        [
            &self.id,
            &self.user_id,
            &self.asset,
            &self.network,
            &self.country,
            &self.locale,
            &self.referral,
            &self.destination,
        ]
    }
}

impl<'a> From<&'a Tx> for TxView<'a> {
    fn from(tx: &'a Tx) -> TxView<'a> {
        TxView::new(
            tx.strings(),
            tx.amount_usd,
            tx.features,
            Watchlists::Strings(&tx.watchlists),
        )
    }
}
