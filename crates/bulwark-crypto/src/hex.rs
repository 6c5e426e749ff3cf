//! Lowercase hex, for vectors, check values and signature headers.

/// `bytes` as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                *DIGITS.get(usize::from(nibble)).unwrap_or(&b'0'),
            ));
        }
    }
    out
}

/// The bytes of an even-length string of hex digits (either case); `None` for anything else.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_non_digits() {
        assert_eq!(to_hex(&[0x00, 0x7f, 0xff]), "007fff");
        assert_eq!(from_hex("007fFF"), Some(vec![0x00, 0x7f, 0xff]));
        assert_eq!(from_hex(""), Some(vec![]));
        for bad in ["0", "+f", "-1", "zz", "0x", " 0"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }
}
