//! Contract section 2: every field of the `tx` object a rule sees, with its window boundaries
//! ((t - D, t]: t - D excluded, t included), EVM normalization, out-of-order events, devices,
//! password resets and watchlists.

mod support;

use riskgate::{Scorer, Tx};
use serde_json::json;
use support::contract::*;

const EVM: &str = "0xAbCdEf0123456789abcdef0123456789ABCDEF01";

fn scorer() -> Scorer {
    Rules::new().scorer()
}

/// The tx of withdrawal `w` after observing `history` (JSON lines) in order.
fn tx_after(history: &[String], w: &W) -> Tx {
    let s = scorer();
    observe(&s, history);
    s.tx(&w.w())
}

/// A completed withdrawal of user `u` at `T0 + secs` of `amount` to `dest`.
fn h(id: &str, u: &str, secs: i64, amount: f64, dest: &str) -> String {
    wd(id, u, &at(secs), amount, dest).line()
}

/// The withdrawal being scored: user `u` at T0 + 100 days, to `dest`.
const T: i64 = 100 * DAY;
fn now(u: &str, dest: &str) -> W {
    wd("now", u, &at(T), 77.5, dest)
}

#[test]
fn fields_from_the_event() {
    let w = wd("wd-9", "u-7", &at(0), 12.25, "TDest")
        .user("locale", json!("zh-HK"))
        .user("referral", json!("telegram"))
        .set("asset", json!("ETH"))
        .set("network", json!("ETH"))
        .country("SG");
    let tx = tx_after(&[], &w);
    assert_eq!(tx.id, "wd-9");
    assert_eq!(tx.user_id, "u-7");
    assert_eq!(tx.asset, "ETH");
    assert_eq!(tx.network, "ETH");
    assert_eq!(tx.country, "SG");
    assert_eq!(tx.locale, "zh-HK");
    assert_eq!(tx.referral, "telegram");
    assert_eq!(tx.destination, "TDest");
    assert_eq!(tx.amount_usd, 12.25);
    let tx = tx_after(&[], &wd("x", "u", &at(0), 1.0, "T"));
    assert_eq!(tx.locale, "en");
    assert_eq!(tx.referral, "");
}

#[test]
fn destination_is_normalized_only_when_it_is_an_evm_address() {
    assert_eq!(
        tx_after(&[], &now("u", EVM)).destination,
        EVM.to_ascii_lowercase()
    );
    for other in [
        "TAbCdEf",
        "0xABCDEF",
        "bc1QXYZ",
        "0xAbCdEf0123456789abcdef0123456789ABCDEF0Z",
        " 0xABCDEF0123456789abcdef0123456789ABCDEF01",
    ] {
        assert_eq!(
            tx_after(&[], &now("u", other)).destination,
            other,
            "kept exactly"
        );
    }
}

#[test]
fn account_age_days_is_floored_and_never_below_zero() {
    let age = |created: &str| {
        tx_after(&[], &now("u", "X").user("created_at", json!(created)))
            .features
            .account_age_days
    };
    assert_eq!(age(&at(T - 10 * DAY)), 10);
    assert_eq!(age(&at(T - 10 * DAY + 1)), 9, "one second short of 10 days");
    assert_eq!(age(&at_us(T * 1_000_000 - 1)), 0);
    assert_eq!(age(&at(T)), 0);
    assert_eq!(age(&at(T + 5 * DAY)), 0, "created after the withdrawal");
    // offsets are honoured: t is 2026-06-09T00:00:00Z
    assert_eq!(at(T), "2026-06-09T00:00:00Z");
    let created = "2026-06-07T08:00:00+08:00";
    assert_eq!(age(created), 2, "created_at {created}");
}

#[test]
fn is_new_address_and_prior_withdrawals_count_completed_history_only() {
    let tx = tx_after(&[], &now("u", "X"));
    assert!(tx.features.is_new_address);
    assert_eq!(tx.features.prior_withdrawals, 0);

    let history = [
        h("1", "u", 0, 5.0, "X"),
        h("2", "u", DAY, 5.0, "Y"),
        wd("3", "u", &at(2 * DAY), 5.0, "Z").cancelled().line(),
        h("4", "other", 3 * DAY, 5.0, "W"),
    ];
    let tx = tx_after(&history, &now("u", "X"));
    assert!(!tx.features.is_new_address);
    assert_eq!(
        tx.features.prior_withdrawals, 2,
        "cancelled and other users' withdrawals are not history"
    );
    assert!(
        tx_after(&history, &now("u", "Z")).features.is_new_address,
        "a cancelled withdrawal leaves the address new"
    );
    assert!(
        tx_after(&history, &now("u", "W")).features.is_new_address,
        "another user's address is new to u"
    );
    // history older than any window still counts
    let old = [h("old", "u", T - 300 * DAY, 1.0, "X")];
    let tx = tx_after(&old, &now("u", "X"));
    assert!(!tx.features.is_new_address);
    assert_eq!(tx.features.prior_withdrawals, 1);
}

#[test]
fn is_new_address_compares_evm_addresses_case_insensitively() {
    let history = [h(
        "1",
        "u",
        0,
        5.0,
        &EVM.to_ascii_uppercase().replace("0X", "0x"),
    )];
    assert!(!tx_after(&history, &now("u", EVM)).features.is_new_address);
    assert!(
        !tx_after(&history, &now("u", &EVM.to_ascii_lowercase()))
            .features
            .is_new_address
    );
    // non-EVM destinations are compared exactly
    let history = [h("1", "u", 0, 5.0, "TAbc")];
    assert!(
        tx_after(&history, &now("u", "tabc"))
            .features
            .is_new_address
    );
}

#[test]
fn the_24h_window_excludes_t_minus_24h_and_includes_t() {
    let history = [
        h("edge", "u", T - DAY, 1000.0, "A"), // excluded: exactly t - 24h
        wd("in", "u", &at_us((T - DAY) * 1_000_000 + 1), 1.0, "A").line(), // 1 microsecond inside
        h("mid", "u", T - HOUR, 10.0, "B"),
        h("at-t", "u", T, 100.0, "C"), // included: exactly t
        h("other-user", "v", T - HOUR, 5000.0, "A"),
        wd("cancel", "u", &at(T - 60), 3000.0, "A")
            .cancelled()
            .line(),
    ];
    let f = tx_after(&history, &now("u", "Z")).features;
    assert_eq!(f.withdrawals_24h, 3);
    assert_eq!(f.amount_usd_24h, 111.0);
    assert_eq!(f.prior_withdrawals, 4);
}

#[test]
fn the_24h_window_at_millisecond_precision() {
    let history = [wd("ms", "u", "2026-03-01T12:00:00.001Z", 7.0, "A").line()];
    let f = tx_after(
        &history,
        &wd("now", "u", "2026-03-02T12:00:00.001Z", 1.0, "A"),
    )
    .features;
    assert_eq!(
        f.withdrawals_24h, 0,
        "exactly 24h earlier, to the millisecond"
    );
    let f = tx_after(
        &history,
        &wd("now", "u", "2026-03-02T20:00:00+08:00", 1.0, "A"),
    )
    .features;
    assert_eq!(
        f.withdrawals_24h, 1,
        "1 ms inside the window, written with an offset"
    );
    assert_eq!(f.amount_usd_24h, 7.0);
}

#[test]
fn median_over_90_days_odd_even_and_empty() {
    assert_eq!(
        tx_after(&[], &now("u", "X")).features.median_amount_usd_90d,
        0.0,
        "empty"
    );
    let odd = [
        h("1", "u", T - 10 * DAY, 300.0, "A"),
        h("2", "u", T - 20 * DAY, 100.0, "A"),
        h("3", "u", T - DAY, 200.0, "B"),
    ];
    assert_eq!(
        tx_after(&odd, &now("u", "X"))
            .features
            .median_amount_usd_90d,
        200.0
    );
    let mut even = odd.to_vec();
    even.push(h("4", "u", T - 2 * DAY, 1000.0, "C"));
    assert_eq!(
        tx_after(&even, &now("u", "X"))
            .features
            .median_amount_usd_90d,
        250.0,
        "mean of the two middle values"
    );
    let single = [h("1", "u", T - 89 * DAY, 42.0, "A")];
    assert_eq!(
        tx_after(&single, &now("u", "X"))
            .features
            .median_amount_usd_90d,
        42.0
    );
}

#[test]
fn the_90d_window_excludes_t_minus_90d_and_includes_t() {
    let history = [
        h("edge", "u", T - 90 * DAY, 1_000_000.0, "A"), // excluded
        h("inside", "u", T - 90 * DAY + 1, 10.0, "A"),
        h("at-t", "u", T, 20.0, "A"),
        h("later", "u", T + 1, 5_000_000.0, "A"), // out of order: after t, excluded
        h("other", "v", T - DAY, 9_000_000.0, "A"), // another user's
        wd("c", "u", &at(T - DAY), 9_000_000.0, "A")
            .cancelled()
            .line(),
    ];
    assert_eq!(
        tx_after(&history, &now("u", "X"))
            .features
            .median_amount_usd_90d,
        15.0
    );
    let only_edge = [h("edge", "u", T - 90 * DAY, 50.0, "A")];
    assert_eq!(
        tx_after(&only_edge, &now("u", "X"))
            .features
            .median_amount_usd_90d,
        0.0
    );
}

#[test]
fn out_of_order_history_counts_in_prior_and_new_address_but_not_in_windows() {
    // Processed first, but dated after the withdrawal being scored.
    let history = [h("future", "u", T + HOUR, 500.0, "X")];
    let f = tx_after(&history, &now("u", "X")).features;
    assert_eq!(f.prior_withdrawals, 1);
    assert!(!f.is_new_address);
    assert_eq!(f.withdrawals_24h, 0);
    assert_eq!(f.amount_usd_24h, 0.0);
    assert_eq!(f.median_amount_usd_90d, 0.0);
    assert_eq!(f.dest_amount_usd_30d, 0.0);
    assert_eq!(f.dest_first_used_days, 0.0, "never below 0");
}

#[test]
fn hours_since_password_reset_uses_the_latest_reset_at_or_before_t() {
    let f = |events: &[String]| {
        tx_after(events, &now("u", "X"))
            .features
            .hours_since_password_reset
    };
    assert_eq!(f(&[]), f64::INFINITY, "none");
    assert_eq!(f(&[reset("u", &at(T - 2 * HOUR))]), 2.0);
    assert_eq!(f(&[reset("u", &at(T))]), 0.0, "a reset at t counts");
    assert_eq!(
        f(&[reset("u", &at(T + 1))]),
        f64::INFINITY,
        "a reset after t does not"
    );
    assert_eq!(
        f(&[
            reset("u", &at(T - 5 * HOUR)),
            reset("u", &at(T + HOUR)),
            reset("u", &at(T - 30 * HOUR))
        ]),
        5.0,
        "the latest with ts <= t, whatever the processing order"
    );
    assert_eq!(
        f(&[reset("v", &at(T - HOUR))]),
        f64::INFINITY,
        "another user's reset"
    );
    assert_eq!(f(&[reset("u", &at(T - 30 * 60))]), 0.5);
    let ms = [reset("u", &at_us(T * 1_000_000 - 1_000))];
    let hours = f(&ms);
    assert!(
        (hours - 0.001 / 3600.0).abs() < 1e-12,
        "kept to the millisecond: {hours}"
    );
}

#[test]
fn device_age_hours_from_logins_and_completed_withdrawals() {
    let f = |events: &[String], w: W| tx_after(events, &w).features.device_age_hours;
    let w = || now("u", "X").device("d1");
    assert_eq!(f(&[], now("u", "X")), f64::INFINITY, "no device_id");
    assert_eq!(
        f(&[login("u", &at(T - 3 * HOUR), "d1")], now("u", "X")),
        f64::INFINITY,
        "no device_id on the withdrawal"
    );
    assert_eq!(f(&[], w()), 0.0, "never seen");
    assert_eq!(
        f(&[login("u", &at(T - 3 * HOUR), "d1")], w()),
        3.0,
        "seen at a login"
    );
    assert_eq!(f(&[login("u", &at(T), "d1")], w()), 0.0, "login at t");
    assert_eq!(
        f(
            &[
                login("u", &at(T - HOUR), "d1"),
                login("u", &at(T - 10 * HOUR), "d1")
            ],
            w()
        ),
        10.0,
        "from the first time seen"
    );
    assert_eq!(
        f(
            &[wd("p", "u", &at(T - 5 * HOUR), 1.0, "Y")
                .device("d1")
                .line()],
            w()
        ),
        5.0,
        "seen on a completed withdrawal"
    );
    assert_eq!(
        f(
            &[wd("p", "u", &at(T - 5 * HOUR), 1.0, "Y")
                .device("d1")
                .cancelled()
                .line()],
            w()
        ),
        0.0,
        "a cancelled withdrawal does not count"
    );
    assert_eq!(
        f(&[login("v", &at(T - 5 * HOUR), "d1")], w()),
        0.0,
        "seen for another user only"
    );
    assert_eq!(
        f(&[login("u", &at(T - 5 * HOUR), "d2")], w()),
        0.0,
        "another device"
    );
    assert_eq!(
        f(&[login("u", &at(T + HOUR), "d1")], w()),
        0.0,
        "seen only after t"
    );
    assert_eq!(
        f(
            &[
                login("u", &at(T + HOUR), "d1"),
                login("u", &at(T - 2 * HOUR), "d1")
            ],
            w()
        ),
        2.0,
        "seen after t and before t: the time at or before t counts"
    );
}

#[test]
fn dest_users_count_distinct_other_users_in_24h_and_30d() {
    let history = [
        h("a1", "a", T - HOUR, 1.0, "D"),
        h("a2", "a", T - 2 * HOUR, 1.0, "D"), // same user again: counted once
        h("b", "b", T - DAY, 1.0, "D"),       // exactly t - 24h: only in the 30d window
        h("c", "c", T - 30 * DAY, 1.0, "D"),  // exactly t - 30d: in neither
        h("d", "d", T - 30 * DAY + 1, 1.0, "D"),
        h("e", "e", T, 1.0, "D"),           // at t: in both
        h("self", "u", T - HOUR, 1.0, "D"), // the user themself: never
        wd("f", "f", &at(T - HOUR), 1.0, "D").cancelled().line(),
        h("g", "g", T - HOUR, 1.0, "OTHER"),
        h("late", "l", T + 1, 1.0, "D"), // after t: in neither
    ];
    let f = tx_after(&history, &now("u", "D")).features;
    assert_eq!(f.dest_users_24h, 2, "a and e");
    assert_eq!(f.dest_users_30d, 4, "a, b, d and e");
    let f = tx_after(&history, &now("zz", "D")).features;
    assert_eq!(f.dest_users_24h, 3, "u counts for another user");
}

#[test]
fn dest_users_treat_evm_case_variants_as_one_destination() {
    let history = [
        h("a", "a", T - HOUR, 1.0, &EVM.to_ascii_lowercase()),
        h("b", "b", T - HOUR, 1.0, EVM),
    ];
    let f = tx_after(
        &history,
        &now("u", &EVM.to_ascii_uppercase().replacen("0X", "0x", 1)),
    )
    .features;
    assert_eq!(f.dest_users_24h, 2);
    assert_eq!(f.dest_users_30d, 2);
}

#[test]
fn dest_users_with_out_of_order_payers() {
    // a paid D long before t; b paid D long after t (processed before the scored withdrawal).
    let history = [
        h("a", "a", T - 10 * DAY, 1.0, "D"),
        h("b", "b", T + 40 * DAY, 1.0, "D"),
    ];
    let f = tx_after(&history, &now("u", "D")).features;
    assert_eq!(f.dest_users_30d, 1, "a is in (t - 30d, t]; b is after t");
    assert_eq!(f.dest_users_24h, 0);
}

#[test]
fn dest_first_used_days_from_the_users_earliest_withdrawal_there() {
    let f = |events: &[String]| {
        tx_after(events, &now("u", "D"))
            .features
            .dest_first_used_days
    };
    assert_eq!(f(&[]), 0.0, "never used");
    assert_eq!(f(&[h("1", "u", T - 12 * HOUR, 1.0, "D")]), 0.5);
    assert_eq!(
        f(&[
            h("1", "u", T - 3 * DAY, 1.0, "D"),
            h("2", "u", T - 200 * DAY, 1.0, "D"),
            h("3", "u", T - DAY, 1.0, "D")
        ]),
        200.0
    );
    assert_eq!(
        f(&[h("1", "v", T - 3 * DAY, 1.0, "D")]),
        0.0,
        "another user's use does not count"
    );
    assert_eq!(
        f(&[wd("1", "u", &at(T - 3 * DAY), 1.0, "D").cancelled().line()]),
        0.0,
        "cancelled does not count"
    );
    assert_eq!(
        f(&[h("1", "u", T + DAY, 1.0, "D")]),
        0.0,
        "after t: never below 0"
    );
    assert_eq!(
        f(&[
            h("1", "u", T + DAY, 1.0, "D"),
            h("2", "u", T - 4 * DAY, 1.0, "D")
        ]),
        4.0
    );
    assert_eq!(f(&[h("1", "u", T - 2 * DAY, 1.0, "Other")]), 0.0);
}

#[test]
fn dest_amount_usd_30d_sums_the_users_own_payments_to_the_destination() {
    let history = [
        h("edge", "u", T - 30 * DAY, 1000.0, "D"), // excluded
        h("in1", "u", T - 30 * DAY + 1, 1.5, "D"),
        h("in2", "u", T, 2.25, "D"),
        h("other-dest", "u", T - DAY, 100.0, "E"),
        h("other-user", "v", T - DAY, 100.0, "D"),
        wd("cancel", "u", &at(T - DAY), 100.0, "D")
            .cancelled()
            .line(),
        h("late", "u", T + 1, 100.0, "D"),
    ];
    assert_eq!(
        tx_after(&history, &now("u", "D"))
            .features
            .dest_amount_usd_30d,
        3.75
    );
    let evm_history = [h("1", "u", T - DAY, 8.0, EVM)];
    assert_eq!(
        tx_after(&evm_history, &now("u", &EVM.to_ascii_lowercase()))
            .features
            .dest_amount_usd_30d,
        8.0
    );
}

/// The extensions beyond the contract: U's history to this destination, in the order recorded.
#[test]
fn dest_prior_last_and_rising_run_follow_the_payments_to_the_destination() {
    let history = [
        h("1", "u", T - 50 * DAY, 100.0, "D"),
        h("2", "u", T - 40 * DAY, 90.0, "D"), // a fall restarts the run
        h("3", "u", T - 30 * DAY, 120.0, "D"),
        h("other-dest", "u", T - 25 * DAY, 5000.0, "E"),
        h("other-user", "v", T - 25 * DAY, 5000.0, "D"),
        wd("cancel", "u", &at(T - 22 * DAY), 1.0, "D")
            .cancelled()
            .line(),
        h("4", "u", T - 20 * DAY, 150.0, "D"),
        h("5", "u", T - 10 * DAY, 150.0, "D"), // equal: not a rise
        h("6", "u", T - 5 * DAY, 160.0, "D"),
        h("7", "u", T - DAY, 200.0, "D"),
    ];
    let f = tx_after(&history, &now("u", "D")).features;
    assert_eq!(f.dest_prior_withdrawals, 7);
    assert_eq!(f.dest_last_amount_usd, 200.0);
    assert_eq!(f.dest_rising_run, 2);
    let g = tx_after(&history[..5], &now("u", "D")).features;
    assert_eq!((g.dest_prior_withdrawals, g.dest_rising_run), (3, 1));
    let fresh = tx_after(&history, &now("u", "New")).features;
    assert_eq!(
        (
            fresh.dest_prior_withdrawals,
            fresh.dest_last_amount_usd,
            fresh.dest_rising_run
        ),
        (0, 0.0, 0)
    );
    let first = tx_after(&history[..1], &now("u", "D")).features;
    assert_eq!(
        (
            first.dest_prior_withdrawals,
            first.dest_last_amount_usd,
            first.dest_rising_run
        ),
        (1, 100.0, 0)
    );
}

/// Extensions: the first payment to this destination, and how many payments to it rose, counted
/// over all of them (a fall does not reset the count as it resets `dest_rising_run`).
#[test]
fn dest_first_amount_and_rises_count_every_payment_to_the_destination() {
    let history = [
        h("0", "u", T - 60 * DAY, 7.0, "E"),
        h("1", "u", T - 50 * DAY, 100.0, "D"),
        h("2", "u", T - 40 * DAY, 90.0, "D"),
        h("3", "u", T - 30 * DAY, 120.0, "D"),
        h("other-user", "v", T - 25 * DAY, 5000.0, "D"),
        wd("cancel", "u", &at(T - 22 * DAY), 1000.0, "D")
            .cancelled()
            .line(),
        h("4", "u", T - 20 * DAY, 150.0, "D"),
        h("5", "u", T - 10 * DAY, 150.0, "D"),
        h("6", "u", T - 5 * DAY, 160.0, "D"),
        h("7", "u", T - DAY, 200.0, "D"),
    ];
    let f = tx_after(&history, &now("u", "D")).features;
    // Rises: 120 over 90, 150 over 120, 160 over 150, 200 over 160 (not 90, not the equal 150).
    assert_eq!((f.dest_first_amount_usd, f.dest_rises), (100.0, 4));
    let g = tx_after(&history[..3], &now("u", "D")).features;
    assert_eq!((g.dest_first_amount_usd, g.dest_rises), (100.0, 0));
    let fresh = tx_after(&history, &now("u", "New")).features;
    assert_eq!((fresh.dest_first_amount_usd, fresh.dest_rises), (0.0, 0));
    let other = tx_after(&history, &now("u", "E")).features;
    assert_eq!((other.dest_first_amount_usd, other.dest_rises), (7.0, 0));
}

/// Extensions: the payments of the last 30 days to destinations first paid in the last 30
/// days (this one included), and the withdrawals from before those 30 days.
#[test]
fn new_payee_withdrawals_and_withdrawals_before_30d_split_the_history_at_30_days() {
    let history = [
        h("0", "u", T - 200 * DAY, 50.0, "Old"),
        h("1", "u", T - 45 * DAY, 60.0, "Old"),
        h("2", "u", T - 40 * DAY, 70.0, "Q"),
        h("3", "u", T - 20 * DAY, 500.0, "A"),
        h("other-user", "v", T - 15 * DAY, 5000.0, "B"),
        wd("cancel", "u", &at(T - 14 * DAY), 1000.0, "C")
            .cancelled()
            .line(),
        h("4", "u", T - 12 * DAY, 800.0, "A"),
        h("5", "u", T - 10 * DAY, 90.0, "Old"),
        h("6", "u", T - 8 * DAY, 80.0, "Q"),
        h("7", "u", T - 5 * DAY, 1300.0, "B"),
        h("8", "u", T - DAY, 2000.0, "B"),
    ];
    // A (2) and B (2) were first paid within 30 days; Old and Q before, so their payments of
    // the last 30 days (5, 6) do not count; 0, 1 and 2 are older than 30 days.
    let f = tx_after(&history, &now("u", "B")).features;
    assert_eq!(
        (f.new_payee_withdrawals_30d, f.withdrawals_before_30d),
        (4, 3)
    );
    // The same to a new address, or to an old one: the count is the user's, not the payee's.
    let fresh = tx_after(&history, &now("u", "New")).features;
    assert_eq!(
        (
            fresh.new_payee_withdrawals_30d,
            fresh.withdrawals_before_30d
        ),
        (4, 3)
    );
    let old = tx_after(&history, &now("u", "Old")).features;
    assert_eq!(
        (old.new_payee_withdrawals_30d, old.withdrawals_before_30d),
        (4, 3)
    );
    // 10 days on, A's first payment is exactly 30 days old: outside the window (t - 30d, t],
    // so A is no new payee and that payment counts as before; B's two still count.
    let later = tx_after(&history, &wd("now", "u", &at(T + 10 * DAY), 77.5, "B")).features;
    assert_eq!(
        (
            later.new_payee_withdrawals_30d,
            later.withdrawals_before_30d
        ),
        (2, 4)
    );
    let none = tx_after(&history[..1], &now("u", "B")).features;
    assert_eq!(
        (none.new_payee_withdrawals_30d, none.withdrawals_before_30d),
        (0, 1)
    );
}

/// Extension: withdrawals to other destinations since the first one to this destination.
#[test]
fn dest_others_since_first_counts_other_payees_after_the_first_payment() {
    let history = [
        h("1", "u", T - 50 * DAY, 100.0, "E"), // before D was first paid: not counted
        h("2", "u", T - 40 * DAY, 90.0, "D"),
        h("3", "u", T - 30 * DAY, 120.0, "E"),
        h("other-user", "v", T - 25 * DAY, 5000.0, "F"),
        wd("cancel", "u", &at(T - 22 * DAY), 1.0, "F")
            .cancelled()
            .line(),
        h("4", "u", T - 20 * DAY, 150.0, "D"),
        h("5", "u", T - 10 * DAY, 150.0, "F"),
    ];
    assert_eq!(
        tx_after(&history, &now("u", "D"))
            .features
            .dest_others_since_first,
        2
    );
    // Nothing but D since D's first payment.
    assert_eq!(
        tx_after(&history[..2], &now("u", "D"))
            .features
            .dest_others_since_first,
        0
    );
    // Never paid: 0, whatever the user paid before.
    assert_eq!(
        tx_after(&history, &now("u", "New"))
            .features
            .dest_others_since_first,
        0
    );
}

/// Extension: days since the earliest withdrawal to this destination by another user, at or
/// before t (-1.0 when none); out-of-order events lower it; a destination silent for the
/// retention (400 days) or more is forgotten.
#[test]
fn dest_others_first_days_is_the_earliest_payment_by_another_user() {
    let history = [
        h("1", "v", T - 50 * DAY, 100.0, "G"),
        h("2", "w", T - 20 * DAY, 100.0, "G"),
        h("3", "u", T - 10 * DAY, 100.0, "G"),
        h("4", "v", T - 5 * DAY, 100.0, "G"),
        wd("cancel", "x", &at(T - 70 * DAY), 1.0, "G")
            .cancelled()
            .line(),
        h("5", "u", T - 30 * DAY, 100.0, "Own"),
        // At t itself (included), and after t (not yet: out of order).
        h("6", "w", T, 100.0, "Now"),
        h("7", "w", T + DAY, 100.0, "Later"),
    ];
    let days = |u: &str, dest: &str, n: usize| {
        tx_after(&history[..n], &now(u, dest))
            .features
            .dest_others_first_days
    };
    let all = history.len();
    assert_eq!(days("u", "G", all), 50.0, "v's first payment");
    assert_eq!(days("v", "G", all), 20.0, "not v's own: w's");
    assert_eq!(days("w", "G", all), 50.0);
    assert_eq!(days("new", "G", all), 50.0, "a user without state");
    assert_eq!(days("u", "G", 1), 50.0);
    assert_eq!(days("v", "G", 1), -1.0, "only v paid it");
    assert_eq!(days("u", "Own", all), -1.0, "only u paid it");
    assert_eq!(days("v", "Own", all), 30.0);
    assert_eq!(days("u", "Now", all), 0.0, "t is included");
    assert_eq!(days("u", "Later", all), -1.0, "after t: not yet");
    assert_eq!(days("u", "Never", all), -1.0);
    // Processed late, an earlier payment is the earliest.
    let mut late = history.to_vec();
    late.push(h("8", "x", T - 60 * DAY, 100.0, "G"));
    assert_eq!(
        tx_after(&late, &now("u", "G"))
            .features
            .dest_others_first_days,
        60.0
    );
    assert_eq!(
        tx_after(&late, &now("x", "G"))
            .features
            .dest_others_first_days,
        50.0
    );
    // Fractions of a day.
    let half = [h("1", "v", T - DAY / 2, 100.0, "H")];
    assert_eq!(
        tx_after(&half, &now("u", "H"))
            .features
            .dest_others_first_days,
        0.5
    );

    // The retention: a destination whose newest payment is 400 days or more before t is
    // forgotten (400 days less a second is not), and a payment after such a silence starts
    // the earliest payments again.
    let old = [h("1", "v", T, 100.0, "R")];
    let at_day = |d: i64, secs: i64| wd("now", "u", &at(T + d * DAY + secs), 1.0, "R");
    let first = |history: &[String], w: &W| tx_after(history, w).features.dest_others_first_days;
    assert_eq!(first(&old, &at_day(400, 0)), -1.0);
    assert_eq!(first(&old, &at_day(400, -1)), 400.0 - 1.0 / DAY as f64);
    let again = [
        h("1", "v", T, 100.0, "R"),
        h("2", "w", T + 400 * DAY, 100.0, "R"),
    ];
    assert_eq!(
        first(&again, &at_day(401, 0)),
        1.0,
        "v's payment is forgotten"
    );
    let kept = [
        h("1", "v", T, 100.0, "R"),
        h("2", "w", T + 399 * DAY, 100.0, "R"),
    ];
    assert_eq!(
        first(&kept, &at_day(401, 0)),
        401.0,
        "a shorter silence keeps it"
    );
}

/// Extension: days from the earliest event riskgate recorded (any user's completed withdrawal,
/// login or password reset; a cancelled withdrawal records nothing) to t, whatever the order
/// the events came in; 0.0 when nothing was recorded, or only events at or after t.
#[test]
fn state_days_is_the_time_since_the_earliest_event_recorded() {
    let days = |history: &[String], u: &str| tx_after(history, &now(u, "A")).features.state_days;
    assert_eq!(days(&[], "u"), 0.0, "nothing recorded yet");
    let history = [
        h("1", "v", T - 10 * DAY, 100.0, "G"),
        reset("y", &at(T - 20 * DAY)),
        login("x", &at(T - 40 * DAY), "d1"),
        wd("cancel", "z", &at(T - 70 * DAY), 1.0, "G")
            .cancelled()
            .line(),
    ];
    assert_eq!(
        days(&history, "u"),
        40.0,
        "x's login, for a user without state"
    );
    assert_eq!(days(&history, "v"), 40.0, "the same for every user");
    assert_eq!(days(&history[..1], "u"), 10.0);
    assert_eq!(days(&history[1..2], "u"), 20.0, "a password reset counts");
    assert_eq!(
        days(&history[3..], "u"),
        0.0,
        "a cancelled withdrawal does not"
    );
    // Processed late, an earlier event is the earliest: the order does not matter.
    let mut late = history.to_vec();
    late.push(login("w", &at(T - 60 * DAY), "d2"));
    assert_eq!(days(&late, "u"), 60.0);
    let mut reversed = late.clone();
    reversed.reverse();
    assert_eq!(days(&reversed, "u"), 60.0);
    // At t itself and after t: 0.0 (never below 0); an event after t does not hide an
    // earlier one.
    assert_eq!(days(&[h("1", "v", T, 1.0, "G")], "u"), 0.0);
    assert_eq!(days(&[h("1", "v", T + DAY, 1.0, "G")], "u"), 0.0);
    let both = [
        h("1", "v", T + DAY, 1.0, "G"),
        h("2", "v", T - DAY, 1.0, "G"),
    ];
    assert_eq!(days(&both, "u"), 1.0);
    // Fractions of a day, to the microsecond.
    assert_eq!(days(&[login("x", &at(T - DAY / 2), "d")], "u"), 0.5);
    assert_eq!(
        days(&[login("x", &at_us(T * 1_000_000 - 1), "d")], "u"),
        1.0 / (DAY as f64 * 1e6)
    );
}

fn watchlist_rules() -> Rules {
    let rules = Rules::new();
    rules.pack("zeta", "regions = [\"HK\"]", &[]);
    rules.append(
        "zeta/pack.toml",
        "[[watchlists]]\nid = \"b-list\"\nfile = \"watchlists/b.txt\"\n\n[[watchlists]]\nid = \"a-list\"\nfile = \"watchlists/a.json\"\n",
    );
    rules.file(
        "zeta/watchlists/b.txt",
        &format!("# comment line\n\n  TShared  \n{}\n0xABC\n\t#not-an-entry\nTOnlyB   # reported 2026-02-01\n", EVM.to_ascii_uppercase().replacen("0X", "0x", 1)),
    );
    rules.file(
        "zeta/watchlists/a.json",
        &format!(
            r#"[{{"address":" TShared","reported":"2026-01-01"}},{{"address":"{}","note":1}},{{"address":"TShared"}},{{"address":"0xabc"}}]"#,
            EVM.to_ascii_lowercase()
        ),
    );
    rules.pack("alpha", "regions = [\"SG\"]", &[]);
    rules.append(
        "alpha/pack.toml",
        "[[watchlists]]\nid = \"list\"\nfile = \"watchlists/l.txt\"\n",
    );
    rules.file("alpha/watchlists/l.txt", "TShared\n");
    rules
}

#[test]
fn watchlists_lists_every_loaded_list_holding_the_destination_sorted() {
    let s = watchlist_rules().scorer();
    let lists = |dest: &str| s.tx(&now("u", dest).w()).watchlists;
    assert_eq!(
        lists("TShared"),
        ["alpha/list", "zeta/a-list", "zeta/b-list"],
        "every loaded list, whatever its regions"
    );
    assert_eq!(
        lists(EVM),
        ["zeta/a-list", "zeta/b-list"],
        "EVM entries normalized in both formats"
    );
    assert_eq!(
        lists(&EVM.to_ascii_lowercase()),
        ["zeta/a-list", "zeta/b-list"]
    );
    assert_eq!(
        lists("TOnlyB"),
        ["zeta/b-list"],
        "a comment after the address is not part of it"
    );
    assert_eq!(
        lists("0xABC"),
        ["zeta/b-list"],
        "not an EVM address: compared exactly"
    );
    assert_eq!(lists("0xabc"), ["zeta/a-list"]);
    assert!(lists("tshared").is_empty(), "non-EVM compared exactly");
    assert!(lists("# comment line").is_empty());
    assert!(lists("#not-an-entry").is_empty());
    assert!(lists("Nowhere").is_empty());
}

#[test]
fn a_rule_sees_every_field_with_its_contract_type() {
    let rules = Rules::new();
    let script = r#"
        let strings = ["id", "user_id", "asset", "network", "country", "locale", "referral", "destination"];
        for k in strings { if type_of(tx[k]) != "string" { throw k + " is " + type_of(tx[k]); } }
        let ints = ["account_age_days", "prior_withdrawals", "withdrawals_24h", "dest_users_24h", "dest_users_30d",
                    "dest_prior_withdrawals", "dest_rising_run", "dest_others_since_first", "dest_rises",
                    "new_payee_withdrawals_30d", "withdrawals_before_30d"];
        for k in ints { if type_of(tx[k]) != "i64" { throw k + " is " + type_of(tx[k]); } }
        let floats = ["amount_usd", "amount_usd_24h", "median_amount_usd_90d", "hours_since_password_reset",
                      "device_age_hours", "dest_first_used_days", "dest_amount_usd_30d", "dest_last_amount_usd",
                      "dest_first_amount_usd", "dest_others_first_days", "state_days"];
        for k in floats { if type_of(tx[k]) != "f64" { throw k + " is " + type_of(tx[k]); } }
        if type_of(tx.is_new_address) != "bool" { throw "is_new_address"; }
        if type_of(tx.watchlists) != "array" { throw "watchlists"; }
        if tx.hours_since_password_reset < 1e300 { throw "not infinite"; }
        if !("w/l" in tx.watchlists) { throw "watchlist membership"; }
        true
    "#;
    rules.pack("w", "regions = [\"*\"]", &[("types", script, "")]);
    rules.append(
        "w/pack.toml",
        "[[watchlists]]\nid = \"l\"\nfile = \"l.txt\"\n",
    );
    rules.file("w/l.txt", "X\n");
    let d = rules.scorer().score(&wd("1", "u", T0, 1.0, "X").w());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(ids(&d.hits), ["w/types"]);
}

#[test]
fn dest_users_with_repeated_later_dated_payments() {
    // a paid D at the same later instant three times, then (processed later) within t's window.
    let history = [
        h("a1", "a", T + DAY, 1.0, "D"),
        h("a2", "a", T + DAY, 1.0, "D"),
        h("a3", "a", T + DAY, 1.0, "D"),
        h("a4", "a", T + 12 * HOUR, 1.0, "D"),
        h("a5", "a", T - HOUR, 1.0, "D"),
    ];
    let f = tx_after(&history, &now("u", "D")).features;
    assert_eq!((f.dest_users_24h, f.dest_users_30d), (1, 1));
}

#[test]
fn one_far_future_event_does_not_make_everyones_history_stale() {
    // Idle users are swept out every so many observations; a single event dated in 2099 must
    // not make a withdrawal two minutes old look older than 400 days.
    let s = scorer();
    observe(
        &s,
        &[
            h("a", "alice", 0, 10.0, "X"),
            login("mallory", "2099-01-01T00:00:00Z", "d"),
        ],
    );
    let routine = riskgate::Event::parse_line(&login("bob", &at(60), "d")).unwrap();
    for _ in 0..(1 << 16) {
        s.observe(&routine);
    }
    let f = s.tx(&wd("b", "alice", &at(120), 1.0, "X").w()).features;
    assert_eq!((f.prior_withdrawals, f.is_new_address), (1, false));
}

#[test]
fn a_far_future_login_does_not_wipe_the_users_own_history() {
    let s = scorer();
    observe(
        &s,
        &[
            h("a", "alice", 0, 10.0, "X"),
            login("alice", "2099-01-01T00:00:00Z", "d"),
            h("b", "alice", 60, 5.0, "Y"),
        ],
    );
    let f = s.tx(&wd("c", "alice", &at(120), 1.0, "X").w()).features;
    assert_eq!(
        (f.prior_withdrawals, f.is_new_address, f.withdrawals_24h),
        (2, false, 2)
    );
}

#[test]
fn a_far_future_payment_does_not_wipe_the_destinations_other_payers() {
    let s = scorer();
    let far = wd("far", "mallory", "2099-01-01T00:00:00Z", 1.0, "D").line();
    observe(
        &s,
        &[h("a", "a", 0, 1.0, "D"), far, h("b", "b", 60, 1.0, "D")],
    );
    let f = s.tx(&wd("c", "u", &at(120), 1.0, "D").w()).features;
    assert_eq!((f.dest_users_24h, f.dest_users_30d), (2, 2));
}

#[test]
fn a_far_future_withdrawal_does_not_wipe_the_users_own_history() {
    let s = scorer();
    let far = wd("far", "alice", "2099-01-01T00:00:00Z", 1.0, "Z").line();
    observe(
        &s,
        &[
            h("a", "alice", 0, 10.0, "X"),
            far,
            h("b", "alice", 60, 5.0, "Y"),
        ],
    );
    let f = s.tx(&wd("c", "alice", &at(120), 1.0, "X").w()).features;
    assert_eq!(
        (f.prior_withdrawals, f.is_new_address, f.withdrawals_24h),
        (3, false, 2)
    );
}
