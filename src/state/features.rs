//! The state-derived `tx` fields.

use serde::Serialize;

use crate::event::Withdrawal;
use crate::time::MICROS_PER_DAY;

/// The `tx` fields that come from state rather than straight from the event (contract
/// section 2). Plain numbers: computing them allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TxFeatures {
    /// Whole days from `user.created_at` to the withdrawal, floored, never below 0.
    pub account_age_days: i64,
    /// No withdrawal in the user's history went to this destination.
    pub is_new_address: bool,
    /// Size of the user's history.
    pub prior_withdrawals: i64,
    /// History entries in `(t - 24h, t]`.
    pub withdrawals_24h: i64,
    /// Their summed `amount_usd`.
    pub amount_usd_24h: f64,
    /// Median `amount_usd` of history in `(t - 90d, t]`; 0.0 when empty.
    pub median_amount_usd_90d: f64,
    /// Hours since the latest password reset at or before t; infinity when none.
    pub hours_since_password_reset: f64,
    /// Hours since the device was first seen; 0.0 when new; infinity without a device.
    pub device_age_hours: f64,
    /// Other users paying this destination in `(t - 24h, t]`.
    pub dest_users_24h: i64,
    /// Other users paying this destination in `(t - 30d, t]`.
    pub dest_users_30d: i64,
    /// Days since the user first paid this destination; 0.0 when never.
    pub dest_first_used_days: f64,
    /// What the user paid this destination in `(t - 30d, t]`.
    pub dest_amount_usd_30d: f64,
    /// Extension beyond the contract: the user's history withdrawals to this destination (all
    /// retained history: at most `MAX_HISTORY` entries within `RETENTION_DAYS`).
    pub dest_prior_withdrawals: i64,
    /// Extension: `amount_usd` of the user's latest recorded history withdrawal to this
    /// destination; 0.0 when none.
    pub dest_last_amount_usd: f64,
    /// Extension: how many of the user's successive history withdrawals to this destination, up
    /// to the latest recorded, were each larger than the one before (0 with fewer than two).
    pub dest_rising_run: i64,
    /// Extension: the user's history withdrawals to other destinations recorded after the first
    /// one to this destination (0 when none went to it).
    pub dest_others_since_first: i64,
    /// Extension: `amount_usd` of the user's first recorded history withdrawal to this
    /// destination; 0.0 when none.
    pub dest_first_amount_usd: f64,
    /// Extension: how many of the user's history withdrawals to this destination were larger
    /// than the one before to it, over all of them (a run broken by a fall still counts).
    pub dest_rises: i64,
    /// Extension: the user's history withdrawals in the last 30 days to destinations the user
    /// first paid in the last 30 days (this destination included).
    pub new_payee_withdrawals_30d: i64,
    /// Extension: the user's history withdrawals at or before 30 days ago.
    pub withdrawals_before_30d: i64,
    /// Extension: days from the earliest withdrawal to this destination by another user, at
    /// or before t, that riskgate remembers (see `destination`'s module docs for what it
    /// forgets); -1.0 when none.
    pub dest_others_first_days: f64,
    /// Extension: days from the earliest event riskgate's state has recorded (any user's
    /// completed withdrawal, login or password reset) to t: how long the engine has been
    /// watching; 0.0 when nothing was recorded yet, never below 0.
    pub state_days: f64,
}

impl TxFeatures {
    /// The features of a withdrawal by a user with no state at all.
    pub(crate) fn empty(w: &Withdrawal) -> TxFeatures {
        let age =
            w.ts.as_micros()
                .saturating_sub(w.user.created_at.as_micros());
        TxFeatures {
            account_age_days: age.div_euclid(MICROS_PER_DAY).max(0),
            is_new_address: true,
            prior_withdrawals: 0,
            withdrawals_24h: 0,
            amount_usd_24h: 0.0,
            median_amount_usd_90d: 0.0,
            hours_since_password_reset: f64::INFINITY,
            device_age_hours: if w.device_id.is_some() {
                0.0
            } else {
                f64::INFINITY
            },
            dest_users_24h: 0,
            dest_users_30d: 0,
            dest_first_used_days: 0.0,
            dest_amount_usd_30d: 0.0,
            dest_prior_withdrawals: 0,
            dest_last_amount_usd: 0.0,
            dest_rising_run: 0,
            dest_others_since_first: 0,
            dest_first_amount_usd: 0.0,
            dest_rises: 0,
            new_payee_withdrawals_30d: 0,
            withdrawals_before_30d: 0,
            dest_others_first_days: -1.0,
            state_days: 0.0,
        }
    }
}
