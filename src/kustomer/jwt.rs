//! Membrane access tokens: HS256 JWTs with `{workspaceKey, tenantKey, iat, exp}` signed with the
//! workspace secret (as Membrane's SDK mints them), renewed before they expire. HMAC comes from
//! `ring`, which rustls already builds, so minting adds no crate.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

use crate::config::Secret;

/// Base64url without padding (RFC 7515).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url without padding; `None` on a bad character.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    Some(out)
}

/// Signs `claims` (a JSON object) as an HS256 JWT.
pub fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signature = hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(signature.as_ref()))
}

/// Checks an HS256 JWT's signature and returns its claims (the caller checks `exp` and the rest).
pub fn verify(token: &str, secret: &[u8]) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(
        &key,
        format!("{header}.{payload}").as_bytes(),
        &b64url_decode(signature)?,
    )
    .ok()?;
    serde_json::from_slice(&b64url_decode(payload)?).ok()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints tokens for one workspace and tenant, renewing when less than a quarter of the lifetime is
/// left.
#[derive(Debug)]
pub struct Minter {
    workspace_key: String,
    tenant_key: String,
    secret: Secret,
    lifetime: Duration,
    current: Mutex<Option<(Secret, u64)>>,
}

impl Minter {
    /// A minter; no token is made until the first request.
    pub fn new(
        workspace_key: &str,
        tenant_key: &str,
        secret: Secret,
        lifetime: Duration,
    ) -> Minter {
        Minter {
            workspace_key: workspace_key.to_string(),
            tenant_key: tenant_key.to_string(),
            secret,
            lifetime: lifetime.max(Duration::from_secs(2)),
            current: Mutex::new(None),
        }
    }

    /// A valid token, minting a new one when the current one is missing or about to expire.
    pub fn token(&self) -> Secret {
        let now = now_secs();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let renew_margin = (self.lifetime / 4).as_secs().max(1);
        if let Some((token, exp)) = current.as_ref()
            && now + renew_margin < *exp
        {
            return token.clone();
        }
        let exp = now + self.lifetime.as_secs();
        let claims = serde_json::json!({
            "workspaceKey": self.workspace_key,
            "tenantKey": self.tenant_key,
            "iat": now,
            "exp": exp,
        });
        let token = Secret::new(sign(&claims, self.secret.expose().as_bytes()));
        tracing::debug!(exp, "minted a Membrane access token");
        *current = Some((token.clone(), exp));
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_secret_and_not_without() {
        let token = sign(
            &serde_json::json!({"workspaceKey": "w", "exp": 1}),
            b"s3cret",
        );
        assert_eq!(verify(&token, b"s3cret").unwrap()["workspaceKey"], "w");
        assert!(verify(&token, b"other").is_none());
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(
                b64url_decode(&b64url(text.as_bytes())).unwrap(),
                text.as_bytes()
            );
        }
        assert_eq!(b64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64url(b"fo"), "Zm8");
    }

    #[test]
    fn a_minter_reuses_its_token_until_it_nears_expiry() {
        let m = Minter::new("w", "t", Secret::new("s"), Duration::from_secs(3600));
        let a = m.token();
        assert_eq!(a, m.token());
        let claims = verify(a.expose(), b"s").unwrap();
        assert_eq!(claims["tenantKey"], "t");
        assert!(claims["exp"].as_u64().unwrap() > now_secs() + 3000);
    }
}
