//! RFC 4648 base32 (the upper-case alphabet, no padding): how authenticator apps expect a TOTP
//! secret to be written. Small enough to own rather than add a crate for.

use zeroize::{Zeroize, Zeroizing};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in base32 without padding. The result may hold a secret, so it is zeroized on drop.
pub(crate) fn encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(buffer >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(buffer << (5 - bits)));
    }
    buffer.zeroize();
    out
}

/// The bytes of unpadded base32 `text` (either case); `None` unless `text` is the canonical
/// encoding of some bytes (a valid length, only alphabet symbols, zero trailing bits).
pub(crate) fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for c in text.bytes() {
        buffer = (buffer << 5) | u16::from(value(c)?);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(low_byte(buffer >> bits));
        }
    }
    let trailing_is_zero = buffer & ((1 << bits) - 1) == 0;
    buffer.zeroize();
    trailing_is_zero.then_some(out)
}

fn symbol(five_bits: u16) -> char {
    // INVARIANT: the mask keeps the index below 32, the alphabet's length.
    ALPHABET
        .get(usize::from(five_bits & 0x1f))
        .map_or('=', |&b| char::from(b))
}

fn value(symbol: u8) -> Option<u8> {
    match symbol.to_ascii_uppercase() {
        c @ b'A'..=b'Z' => Some(c - b'A'),
        c @ b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

fn low_byte(word: u16) -> u8 {
    let [_, low] = word.to_be_bytes();
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_test_strings_encode_without_padding() {
        let cases = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(encode(plain.as_bytes()).as_str(), encoded);
            assert_eq!(decode(encoded).unwrap().as_slice(), plain.as_bytes());
            assert_eq!(
                decode(&encoded.to_lowercase()).unwrap().as_slice(),
                plain.as_bytes()
            );
        }
    }

    #[test]
    fn every_length_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..=bytes.len() {
            let encoded = encode(&bytes[..len]);
            assert_eq!(decode(&encoded).unwrap().as_slice(), &bytes[..len]);
        }
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "M", "MZX", "MZXW6Y", "MZ=", "MY======", "MZ1Q", "MÿXQ", "MZ", "MZXR",
        ] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }
}
