//! JSON by hand where serde_json's generic paths were a visible share of `riskgate score`:
//! strings escaped eight bytes at a time (safe Rust, plain `u64` arithmetic).

/// An integer as serde_json writes it (itoa's digits).
pub(crate) fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Whether any of the 8 bytes of `block` is a quote, a backslash or a control character (below
/// 0x20): the bytes serde_json escapes (the classic "has a zero byte" and "has a byte less than n" tests on one `u64`).
fn needs_escape(block: &[u8]) -> bool {
    let mut word = [0_u8; 8];
    let n = block.len().min(8);
    word.get_mut(..n)
        .unwrap_or_default()
        .copy_from_slice(block.get(..n).unwrap_or_default());
    let v = u64::from_le_bytes(word);
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = v.wrapping_sub(ONES * 0x20) & !v & HIGHS;
    (control | zero_in(v ^ (ONES * u64::from(b'"'))) | zero_in(v ^ (ONES * u64::from(b'\\')))) != 0
}

/// `s` as a JSON string, escaped exactly as serde_json escapes it: `\"`, `\\`, `\b`, `\t`,
/// `\n`, `\f`, `\r` and `\u00xx` (lower-case hex) for the other control characters; every other
/// character (non-ASCII and DEL included) as it is. Eight bytes are checked at a time.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.push(b'"');
    // `start..` is still to be copied; the clean 8-byte blocks before `at` are skipped over.
    let mut start = 0;
    let mut at = 0;
    while let Some(block) = bytes.get(at..at + 8) {
        if needs_escape(block) {
            for (k, &b) in block.iter().enumerate() {
                if let Some(escape) = escape_of(b) {
                    out.extend_from_slice(bytes.get(start..at + k).unwrap_or_default());
                    push_escape(out, b, escape);
                    start = at + k + 1;
                }
            }
        }
        at += 8;
    }
    for (k, &b) in bytes.get(at..).unwrap_or_default().iter().enumerate() {
        if let Some(escape) = escape_of(b) {
            out.extend_from_slice(bytes.get(start..at + k).unwrap_or_default());
            push_escape(out, b, escape);
            start = at + k + 1;
        }
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// The character after the backslash for a byte serde_json escapes (`u` for `\u00xx`).
fn escape_of(b: u8) -> Option<u8> {
    match b {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0x08 => Some(b'b'),
        0x09 => Some(b't'),
        0x0a => Some(b'n'),
        0x0c => Some(b'f'),
        0x0d => Some(b'r'),
        0..=0x1f => Some(b'u'),
        _ => None,
    }
}

fn push_escape(out: &mut Vec<u8>, b: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'\\');
    out.push(escape);
    if escape == b'u' {
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
