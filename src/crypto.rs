//! Ids, tokens, signed cookie values and constant-time comparison (spec §2.3, §3).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random string over `alphabet`; `gen_range` samples without modulo bias.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect()
}

/// Session tokens: shaped like [`new_id`], the creation time in base 36 and then 23
/// random characters. The random part alone is 137 bits, above the 128 bits asked of
/// session identifiers (OWASP: 64), and the time it reveals is the session's
/// `createdAt`, which `get-session` returns anyway. Every sign-in inserts a token into
/// the unique token index; with fully random tokens each insert landed on a random
/// page of it, which at a million sessions meant a page read per insert, a page
/// image per insert in PostgreSQL's WAL after each checkpoint, and many more pages
/// for each SQLite checkpoint to write back.
pub fn new_session_token() -> String {
    new_id()
}

/// Row ids: 32 characters of `[a-zA-Z0-9]` like Better Auth's, of which the first
/// nine are the creation time in milliseconds in lowercase base 36 (ordered until the
/// year 5138) and the other 23 are random (137 bits). New rows then land at the right
/// edge of the primary-key index, and of the guest email index, whose placeholder
/// addresses embed the id, instead of on a random page of each: at a million rows the
/// random pages no longer fit in the cache and every insert paid for reading them.
pub fn new_id() -> String {
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut id = time_prefix(millis);
    id.push_str(&random_string(32 - TIME_DIGITS, ALNUM));
    id
}

const TIME_DIGITS: usize = 9;
const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn time_prefix(mut millis: u64) -> String {
    let mut digits = [b'0'; TIME_DIGITS];
    for d in digits.iter_mut().rev() {
        *d = BASE36[(millis % 36) as usize];
        millis /= 36;
    }
    String::from_utf8(digits.to_vec()).expect("ASCII digits")
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Signs and verifies cookie values with HMAC-SHA256 over the server secret.
/// The keyed state is computed once and cloned per use.
#[derive(Clone)]
pub struct Signer {
    keyed: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<secret>)")
    }
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        let keyed = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        Signer { keyed }
    }

    fn signature(&self, raw: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(raw.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// `encodeURIComponent("<raw>.<base64 signature>")`, the value Better Auth puts on the wire.
    pub fn sign_cookie_value(&self, raw: &str) -> String {
        let signed = format!("{raw}.{}", self.signature(raw));
        encode_uri_component(&signed)
    }

    /// The raw value of a signed cookie, or `None` when the signature is missing or wrong.
    pub fn verify_cookie_value(&self, wire: &str) -> Option<String> {
        let decoded = if wire.contains('%') {
            percent_encoding::percent_decode_str(wire).decode_utf8().ok()?.into_owned()
        } else {
            wire.to_owned()
        };
        let (raw, sig) = decoded.rsplit_once('.')?;
        if sig.len() != 44 || !sig.ends_with('=') {
            return None;
        }
        let given = STANDARD.decode(sig).ok()?;
        let mut mac = self.keyed.clone();
        mac.update(raw.as_bytes());
        mac.verify_slice(&given).ok()?;
        Some(raw.to_owned())
    }
}

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is escaped.
pub fn encode_uri_component(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "better-auth-secret-12345678901234567890";
    const TOKEN: &str = "abcdefghijklmnopqrstuvwxyz012345";
    const WIRE: &str = "abcdefghijklmnopqrstuvwxyz012345.I9CRtBzOYKOp91pmsrUITzor0IvV8qog4R1ydDphbLY%3D";

    #[test]
    fn ids_are_32_alphanumerics_ordered_by_creation_time() {
        assert_eq!(time_prefix(0), "000000000");
        assert_eq!(time_prefix(1_798_761_600_000), "0myc87pc0"); // 2027-01-01
        assert!(time_prefix(1_798_761_600_000) < time_prefix(1_798_761_600_001));
        assert!(time_prefix(4_102_444_800_000) > time_prefix(1_798_761_600_000)); // 2100
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a[..TIME_DIGITS] <= b[..TIME_DIGITS]);
        for id in [&a, &b, &new_session_token()] {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn signs_the_spec_test_vector() {
        assert_eq!(Signer::new(SECRET).sign_cookie_value(TOKEN), WIRE);
    }

    #[test]
    fn verifies_the_spec_test_vector_and_rejects_other_secrets() {
        assert_eq!(Signer::new(SECRET).verify_cookie_value(WIRE).as_deref(), Some(TOKEN));
        assert_eq!(Signer::new("another-secret-that-is-long-enough!!").verify_cookie_value(WIRE), None);
    }

    #[test]
    fn rejects_tampered_and_malformed_values() {
        let s = Signer::new(SECRET);
        assert_eq!(s.verify_cookie_value(&WIRE.replace("abc", "abd")), None);
        assert_eq!(s.verify_cookie_value(TOKEN), None);
        assert_eq!(s.verify_cookie_value("x.short="), None);
        assert_eq!(s.verify_cookie_value("%zz"), None);
        // Unencoded form is accepted too (decoding only happens when `%` is present).
        let plain = WIRE.replace("%3D", "=");
        assert_eq!(s.verify_cookie_value(&plain).as_deref(), Some(TOKEN));
    }

    #[test]
    fn ids_are_32_alphanumerics() {
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, new_id());
    }
}
