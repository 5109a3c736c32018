//! Ids, tokens, signed cookie values, verification JWTs and constant-time
//! comparison (spec §2.3, §3; account-routes §7.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random string over `alphabet`; `gen_range` samples without modulo bias.
/// The SHA-256 of a token, unpadded base64url: how tokens are stored hashed.
pub fn sha256_b64url(token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

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

impl Signer {
    /// Unpadded base64url HMAC-SHA256 of `data`: `createHMAC("SHA-256", "base64urlnopad").sign`.
    pub fn mac_b64url(&self, data: &[u8]) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut mac = self.keyed.clone();
        mac.update(data);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is [`Signer::mac_b64url`] of `data`, compared in constant time.
    pub fn verify_mac_b64url(&self, data: &[u8], signature: &str) -> bool {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else { return false };
        let mut mac = self.keyed.clone();
        mac.update(data);
        mac.verify_slice(&given).is_ok()
    }
}

/// Why a verification JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Malformed, signed with another key or algorithm.
    Invalid,
    /// Its `exp` has passed.
    Expired,
}

impl Signer {
    /// A compact HS256 JWS over `claims` (a JSON object, serialized in its order)
    /// with the protected header `{"alg":"HS256"}`, as jose's `SignJWT` makes it.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let input = format!("{header}.{payload}");
        let mut mac = self.keyed.clone();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The claims of an HS256 JWT signed with this secret, checked as jose's
    /// `jwtVerify` does without clock tolerance: `exp` (optional) must be after
    /// `now_s`, `nbf` (optional) not after it.
    pub fn verify_jwt(&self, token: &str, now_s: i64) -> Result<serde_json::Map<String, serde_json::Value>, JwtError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Invalid);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Invalid);
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Invalid)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") || header.get("crit").is_some() {
            return Err(JwtError::Invalid);
        }
        let mut mac = self.keyed.clone();
        mac.update(&token.as_bytes()[..token.len() - signature.len() - 1]);
        mac.verify_slice(&decode(signature)?).map_err(|_| JwtError::Invalid)?;
        let serde_json::Value::Object(claims) =
            serde_json::from_slice(&decode(payload)?).map_err(|_| JwtError::Invalid)?
        else {
            return Err(JwtError::Invalid);
        };
        let time = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or(JwtError::Invalid),
        };
        if time("iat")?.is_none() && claims.contains_key("iat") {
            return Err(JwtError::Invalid);
        }
        if time("nbf")?.is_some_and(|nbf| nbf > now_s as f64) {
            return Err(JwtError::Invalid);
        }
        if time("exp")?.is_some_and(|exp| exp <= now_s as f64) {
            return Err(JwtError::Expired);
        }
        Ok(claims)
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

    #[test]
    fn verification_jwts_round_trip_and_expire() {
        let signer = Signer::new("secret-0123456789");
        let claims = serde_json::json!({ "email": "a@x.io", "userId": "u1", "iat": 100, "exp": 200 });
        let token = signer.sign_jwt(&claims);
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiJ9."), "{token}");
        assert_eq!(signer.verify_jwt(&token, 199).unwrap()["email"], "a@x.io");
        assert_eq!(signer.verify_jwt(&token, 200), Err(JwtError::Expired));
        assert_eq!(Signer::new("another").verify_jwt(&token, 150), Err(JwtError::Invalid));
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(signer.verify_jwt(&tampered, 150), Err(JwtError::Invalid));
        assert_eq!(signer.verify_jwt("a.b", 150), Err(JwtError::Invalid));
        // Claims keep their order: email first, then userId, iat, exp.
        let payload = token.split('.').nth(1).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), r#"{"email":"a@x.io","userId":"u1","iat":100,"exp":200}"#);
    }

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
