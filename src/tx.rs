//! The `tx` fields of one withdrawal as plain data (contract section 2): a leaf module, so
//! that the rules (which take it) need not import the scorer (which makes it).

use serde::Serialize;

use crate::state::TxFeatures;

/// Every `tx` field a rule sees for one withdrawal (contract section 2), for inspection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tx {
    /// Withdrawal id.
    pub id: String,
    /// User id.
    pub user_id: String,
    /// Asset.
    pub asset: String,
    /// Network.
    pub network: String,
    /// `user.country`.
    pub country: String,
    /// `user.locale`.
    pub locale: String,
    /// `user.referral`.
    pub referral: String,
    /// Normalized destination.
    pub destination: String,
    /// Amount in USD.
    pub amount_usd: f64,
    /// The state-derived fields.
    #[serde(flatten)]
    pub features: TxFeatures,
    /// Ids of the watchlists holding the destination, sorted.
    pub watchlists: Vec<String>,
}
