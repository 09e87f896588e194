//! Kustomer's webhook signature: `X-Kustomer-Webhook-Signature` is the lowercase hex of
//! HMAC-SHA256 over the raw request body, keyed with the webhook's token. Checked over the bytes as
//! received, before anything is parsed, in constant time (`hmac`'s `verify_slice`).

use hmac::{Hmac, KeyInit, Mac};

use crate::config::Secret;

type HmacSha256 = Hmac<sha2::Sha256>;

/// True when `header` (the signature as sent; hex, either case, surrounding spaces allowed) is the
/// HMAC-SHA256 of `body` under one of `tokens`. A missing, malformed or truncated signature is
/// false, never an error.
pub fn verify(tokens: &[Secret], body: &[u8], header: Option<&[u8]>) -> bool {
    let Some(signature) = header.and_then(unhex) else {
        return false;
    };
    if signature.len() != 32 {
        return false;
    }
    let mut ok = false;
    // Every token is tried (no early exit): the time taken does not tell which token matched.
    for token in tokens {
        if let Ok(mut mac) = HmacSha256::new_from_slice(token.expose().as_bytes()) {
            mac.update(body);
            ok |= mac.verify_slice(&signature).is_ok();
        }
    }
    ok
}

/// The lowercase hex signature of `body` under `token` (the fake's sender and the tests' clients).
pub fn sign(token: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; the empty answer is never
    // produced.
    let Ok(mut mac) = HmacSha256::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hex digits to bytes; `None` for anything else (odd length, a non-hex byte, more than 64 bytes).
fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.trim_ascii();
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    text.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231, test case 2.
    const KEY: &str = "Jefe";
    const DATA: &[u8] = b"what do ya want for nothing?";
    const MAC: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn signs_and_verifies_the_rfc_4231_vector() {
        assert_eq!(sign(KEY, DATA), MAC);
        let tokens = [Secret::new("old"), Secret::new(KEY)];
        assert!(verify(&tokens, DATA, Some(MAC.as_bytes())));
        assert!(verify(&tokens, DATA, Some(MAC.to_uppercase().as_bytes())));
        assert!(verify(&tokens, DATA, Some(format!(" {MAC}\t").as_bytes())));
    }

    #[test]
    fn refuses_wrong_missing_truncated_and_garbage_signatures() {
        let tokens = [Secret::new(KEY)];
        assert!(!verify(&tokens, DATA, None));
        assert!(!verify(&tokens, DATA, Some(b"")));
        assert!(!verify(&tokens, DATA, Some(&MAC.as_bytes()[..62])));
        assert!(!verify(&tokens, DATA, Some(&MAC.as_bytes()[..63])));
        assert!(!verify(
            &tokens,
            b"what do ya want for nothing!",
            Some(MAC.as_bytes())
        ));
        assert!(!verify(&[Secret::new("jefe")], DATA, Some(MAC.as_bytes())));
        assert!(!verify(&tokens, DATA, Some("zz".repeat(32).as_bytes())));
        assert!(!verify(&[], DATA, Some(MAC.as_bytes())));
        let mut longer = MAC.to_string();
        longer.push_str("00");
        assert!(!verify(&tokens, DATA, Some(longer.as_bytes())));
    }
}
