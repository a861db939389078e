//! JSON by hand where serde_json's generic paths were a visible share of `riskgate score`:
//! strings written and scanned eight bytes at a time (safe Rust, plain `u64` arithmetic).

/// An integer as serde_json writes it (itoa's digits).
pub(crate) fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The 8 bytes from `at`, if there are 8.
fn block_at(bytes: &[u8], at: usize) -> Option<[u8; 8]> {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok())
}

/// The bytes of `v` (8, little-endian) that are a quote, a backslash or a control character
/// (below 0x20): the bytes serde_json escapes, and the bytes that end a plain string when
/// reading. Each such byte's high bit is set in the result; the lowest set bit is always the
/// first such byte (the classic "has a zero byte" and "has a byte less than n" tests, whose
/// borrows can only mark bytes above a true one).
fn special_bytes(v: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = v.wrapping_sub(ONES * 0x20) & !v & HIGHS;
    control | zero_in(v ^ (ONES * u64::from(b'"'))) | zero_in(v ^ (ONES * u64::from(b'\\')))
}

/// The offset of the first byte of `bytes` from `at` on that [`special_bytes`] marks (or
/// `bytes.len()`), eight bytes at a time: where a string starting at `at` ends, if it is
/// plain (a quote there, not a backslash or a control character).
pub(crate) fn next_special(bytes: &[u8], mut at: usize) -> usize {
    while let Some(block) = block_at(bytes, at) {
        let special = special_bytes(u64::from_le_bytes(block));
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&b| matches!(b, b'"' | b'\\' | 0..=0x1f))
        .unwrap_or(rest.len())
}

/// `s` as a JSON string, escaped exactly as serde_json escapes it: `\"`, `\\`, `\b`, `\t`,
/// `\n`, `\f`, `\r` and `\u00xx` (lower-case hex) for the other control characters; every other
/// character (non-ASCII and DEL included) as it is.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    loop {
        let at = next_special(bytes, start);
        out.extend_from_slice(bytes.get(start..at).unwrap_or_default());
        let Some(&b) = bytes.get(at) else {
            break;
        };
        push_escape(out, b);
        start = at + 1;
    }
    out.push(b'"');
}

/// The escape of a byte that [`special_bytes`] marks.
fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0a => b'n',
        0x0c => b'f',
        0x0d => b'r',
        _ => b'u',
    };
    out.push(b'\\');
    out.push(short);
    if short == b'u' {
        out.extend_from_slice(b"00");
        out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
        out.push(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte class serde_json escapes, at every offset around the 8-byte blocks.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut pieces: Vec<String> = (0_u8..0x20).map(|b| char::from(b).to_string()).collect();
        pieces.extend(["\"", "\\", "/", "\u{7f}", "é", "請", "🙂", "a"].map(String::from));
        let mut cases = vec![String::new(), "plain ascii text, long enough".to_string()];
        for piece in &pieces {
            for pad in 0..18 {
                cases.push(format!(
                    "{}{piece}{}",
                    "x".repeat(pad),
                    "y".repeat(17 - pad)
                ));
            }
        }
        cases.push(pieces.concat());
        for case in &cases {
            let mut out = Vec::new();
            write_str(&mut out, case);
            let expected = serde_json::to_string(case).unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&out), expected, "{case:?}");
        }
        for n in [0, -1, 7, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            write_int(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
