//! Standard Webhooks signatures: a secret is `whsec_` + base64 of random bytes (24-64;
//! uplift makes 32), one per endpoint; a delivery is signed with
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, `v1,` + base64, and
//! several signatures are separated by spaces (both secrets during a rotation).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A new random secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_…` secret.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(encoded).ok()
}

/// `v1,<base64>` for each secret, space-separated, in the order given.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| key_of(secret))
        .map(|key| format!("v1,{}", STANDARD.encode(sign(&key, id, timestamp, body))))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_is_whsec_and_32_random_bytes_in_base64() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("whsec_"));
        assert_eq!(key_of(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_reference_example() {
        // The example of the Standard Webhooks specification and its libraries' tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_secrets_give_two_signatures_separated_by_a_space() {
        let (new, old) = (new_secret(), new_secret());
        let header = signature_header(&[&new, &old], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature_header(&[&new], "msg_1", 1, b"{}"));
        assert_eq!(parts[1], signature_header(&[&old], "msg_1", 1, b"{}"));
    }
}
