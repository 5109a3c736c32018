//! WebAuthn ceremonies for Ed25519 credentials (COSE alg -8, EdDSA).
//!
//! `webauthn-rs-core` verifies ES256 and RS256 but cannot read Ed25519 keys, and
//! Chromium's authenticator (like security keys that follow the server's order)
//! registers Ed25519 when it is offered first, as `@simplewebauthn/server` does.
//! This module checks those ceremonies the way WebAuthn Level 3 §7.1 and §7.2
//! say, with `ed25519-dalek` for the signatures: client data (type, challenge,
//! origin), authenticator data (RP id hash, user presence, backup flags,
//! counter), and the attestation statement for the formats a relying party that
//! asks for `attestation: "none"` receives (`none`, and `packed` self-attestation).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_cbor_2::Value as Cbor;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// COSE: key type OKP, algorithm EdDSA, curve Ed25519.
const KTY_OKP: i128 = 1;
const ALG_EDDSA: i128 = -8;
const CRV_ED25519: i128 = 6;

const FLAG_UP: u8 = 0x01;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;

/// What a ceremony must match.
pub struct Expected<'a> {
    pub rp_id: &'a str,
    /// Origins as `scheme://host[:port]`.
    pub origins: &'a [String],
    /// The challenge issued, base64url without padding.
    pub challenge: &'a str,
}

/// Why a ceremony failed (logged at debug level; holds no secret).
pub type Failure = String;

/// A verified registration.
#[derive(Debug)]
pub struct Attested {
    pub credential_id: Vec<u8>,
    /// The COSE key as the authenticator encoded it.
    pub cose_key: Vec<u8>,
    pub counter: u32,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub aaguid: [u8; 16],
}

fn int(v: &Cbor) -> Option<i128> {
    match v {
        Cbor::Integer(i) => Some(*i),
        _ => None,
    }
}

fn map_get(map: &std::collections::BTreeMap<Cbor, Cbor>, key: i128) -> Option<&Cbor> {
    map.get(&Cbor::Integer(key))
}

/// The Ed25519 public key of a COSE key, if it is one (`None` for other key types).
pub fn ed25519_key(cose: &[u8]) -> Option<Result<VerifyingKey, Failure>> {
    let Ok(Cbor::Map(map)) = serde_cbor_2::from_slice::<Cbor>(cose) else { return None };
    if map_get(&map, 1).and_then(int) != Some(KTY_OKP) {
        return None;
    }
    Some((|| {
        if map_get(&map, 3).and_then(int) != Some(ALG_EDDSA) {
            return Err("OKP key without alg -8".to_owned());
        }
        if map_get(&map, -1).and_then(int) != Some(CRV_ED25519) {
            return Err("OKP key on a curve other than Ed25519".to_owned());
        }
        let Some(Cbor::Bytes(x)) = map_get(&map, -2) else { return Err("OKP key without x".to_owned()) };
        let x: [u8; 32] = x.as_slice().try_into().map_err(|_| "Ed25519 key of the wrong length".to_owned())?;
        VerifyingKey::from_bytes(&x).map_err(|_| "Ed25519 key is not a curve point".to_owned())
    })())
}

fn b64(response: &Value, field: &str) -> Result<Vec<u8>, Failure> {
    let text = response.get(field).and_then(Value::as_str).ok_or_else(|| format!("{field} missing"))?;
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| format!("{field} is not base64url"))
}

/// §7.1 steps 7-12 / §7.2 steps 11-16: the client data, returning its SHA-256.
fn check_client_data(raw: &[u8], kind: &str, expected: &Expected<'_>) -> Result<[u8; 32], Failure> {
    let data: Value = serde_json::from_slice(raw).map_err(|_| "clientDataJSON is not JSON".to_owned())?;
    if data.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(format!("clientDataJSON type is not {kind}"));
    }
    if data.get("challenge").and_then(Value::as_str).map(|c| c.trim_end_matches('=')) != Some(expected.challenge) {
        return Err("challenge does not match".to_owned());
    }
    let origin = data.get("origin").and_then(Value::as_str).unwrap_or_default();
    if !expected.origins.iter().any(|o| o == origin) {
        return Err(format!("origin {origin:?} is not expected"));
    }
    if data.get("crossOrigin").and_then(Value::as_bool) == Some(true) {
        return Err("cross-origin ceremony".to_owned());
    }
    Ok(Sha256::digest(raw).into())
}

/// The fixed part of authenticator data: RP id hash, flags, counter.
fn check_auth_data(auth_data: &[u8], expected: &Expected<'_>) -> Result<(u8, u32), Failure> {
    if auth_data.len() < 37 {
        return Err("authenticator data too short".to_owned());
    }
    if auth_data[..32] != Sha256::digest(expected.rp_id.as_bytes())[..] {
        return Err("RP id hash does not match".to_owned());
    }
    let flags = auth_data[32];
    if flags & FLAG_UP == 0 {
        return Err("user not present".to_owned());
    }
    if flags & FLAG_BS != 0 && flags & FLAG_BE == 0 {
        return Err("backed up but not backup eligible".to_owned());
    }
    let counter = u32::from_be_bytes([auth_data[33], auth_data[34], auth_data[35], auth_data[36]]);
    Ok((flags, counter))
}

fn verify(key: &VerifyingKey, auth_data: &[u8], client_hash: &[u8; 32], sig: &[u8]) -> Result<(), Failure> {
    let sig = Signature::from_slice(sig).map_err(|_| "signature of the wrong length".to_owned())?;
    let mut signed = auth_data.to_vec();
    signed.extend_from_slice(client_hash);
    key.verify_strict(&signed, &sig).map_err(|_| "signature does not verify".to_owned())
}

/// The attestation object's parts.
struct AttestationObject {
    fmt: String,
    att_stmt: std::collections::BTreeMap<Cbor, Cbor>,
    auth_data: Vec<u8>,
}

fn attestation_object(raw: &[u8]) -> Result<AttestationObject, Failure> {
    let Ok(Cbor::Map(mut map)) = serde_cbor_2::from_slice::<Cbor>(raw) else {
        return Err("attestationObject is not a CBOR map".to_owned());
    };
    let text = |v: Option<Cbor>| match v {
        Some(Cbor::Text(t)) => Some(t),
        _ => None,
    };
    let fmt = text(map.remove(&Cbor::Text("fmt".into()))).ok_or("attestationObject without fmt")?;
    let Some(Cbor::Map(att_stmt)) = map.remove(&Cbor::Text("attStmt".into())) else {
        return Err("attestationObject without attStmt".to_owned());
    };
    let Some(Cbor::Bytes(auth_data)) = map.remove(&Cbor::Text("authData".into())) else {
        return Err("attestationObject without authData".to_owned());
    };
    Ok(AttestationObject { fmt, att_stmt, auth_data })
}

/// Whether a registration response carries an Ed25519 credential.
pub fn registers_ed25519(response: &Value) -> bool {
    let Some(raw) = response.pointer("/response/attestationObject").and_then(Value::as_str) else { return false };
    let Ok(raw) = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')) else { return false };
    let Ok(obj) = attestation_object(&raw) else { return false };
    attested_credential(&obj.auth_data).is_ok_and(|(_, _, key)| ed25519_key(&key).is_some())
}

/// AAGUID, credential id and COSE key.
type AttestedCredential = ([u8; 16], Vec<u8>, Vec<u8>);

/// Attested credential data (§6.5.1): AAGUID, credential id, COSE key.
fn attested_credential(auth_data: &[u8]) -> Result<AttestedCredential, Failure> {
    let aaguid: [u8; 16] = auth_data.get(37..53).and_then(|a| a.try_into().ok()).ok_or("no attested credential")?;
    let len = auth_data.get(53..55).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize).ok_or("no credential id")?;
    let id = auth_data.get(55..55 + len).ok_or("credential id cut short")?.to_vec();
    let rest = &auth_data[55 + len..];
    let mut de = serde_cbor_2::Deserializer::from_slice(rest);
    serde::de::Deserialize::deserialize(&mut de).map(|_: Cbor| ()).map_err(|_| "credential key is not CBOR")?;
    Ok((aaguid, id, rest[..de.byte_offset()].to_vec()))
}

/// §7.1: a registration ceremony that created an Ed25519 credential.
pub fn verify_registration(expected: &Expected<'_>, response: &Value) -> Result<Attested, Failure> {
    let inner = response.get("response").ok_or("response missing")?;
    let client_hash = check_client_data(&b64(inner, "clientDataJSON")?, "webauthn.create", expected)?;
    let obj = attestation_object(&b64(inner, "attestationObject")?)?;
    let (flags, counter) = check_auth_data(&obj.auth_data, expected)?;
    if flags & FLAG_AT == 0 {
        return Err("no attested credential data".to_owned());
    }
    let (aaguid, credential_id, cose_key) = attested_credential(&obj.auth_data)?;
    let key = ed25519_key(&cose_key).ok_or("not an Ed25519 credential")??;
    if b64(response, "rawId")? != credential_id {
        return Err("rawId is not the attested credential id".to_owned());
    }
    match obj.fmt.as_str() {
        "none" if obj.att_stmt.is_empty() => {}
        "none" => return Err("attestation \"none\" with a statement".to_owned()),
        // Self attestation: signed by the credential's own key.
        "packed" if !obj.att_stmt.contains_key(&Cbor::Text("x5c".into())) => {
            if obj.att_stmt.get(&Cbor::Text("alg".into())).and_then(int) != Some(ALG_EDDSA) {
                return Err("packed self attestation with another algorithm".to_owned());
            }
            let Some(Cbor::Bytes(sig)) = obj.att_stmt.get(&Cbor::Text("sig".into())) else {
                return Err("packed attestation without sig".to_owned());
            };
            verify(&key, &obj.auth_data, &client_hash, sig)?;
        }
        other => return Err(format!("attestation format {other:?} is not accepted for Ed25519 credentials")),
    }
    Ok(Attested {
        credential_id,
        cose_key,
        counter,
        backup_eligible: flags & FLAG_BE != 0,
        backed_up: flags & FLAG_BS != 0,
        aaguid,
    })
}

/// What an assertion is checked against: the stored credential.
pub struct Stored<'a> {
    pub key: &'a VerifyingKey,
    pub counter: u32,
    pub backup_eligible: bool,
}

/// §7.2: an authentication ceremony with an Ed25519 credential; returns the new counter.
pub fn verify_assertion(expected: &Expected<'_>, response: &Value, stored: Stored<'_>) -> Result<u32, Failure> {
    let inner = response.get("response").ok_or("response missing")?;
    let client_hash = check_client_data(&b64(inner, "clientDataJSON")?, "webauthn.get", expected)?;
    let auth_data = b64(inner, "authenticatorData")?;
    let (flags, counter) = check_auth_data(&auth_data, expected)?;
    if stored.backup_eligible && flags & FLAG_BE == 0 {
        return Err("a backup-eligible credential lost its backup eligibility".to_owned());
    }
    verify(stored.key, &auth_data, &client_hash, &b64(inner, "signature")?)?;
    // §6.1.1: a counter that does not grow may mean a cloned authenticator.
    if (counter != 0 || stored.counter != 0) && counter <= stored.counter {
        return Err(format!("signature counter went from {} to {counter}", stored.counter));
    }
    Ok(counter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    const RP: &str = "localhost";
    const ORIGIN: &str = "http://localhost:3000";

    fn cose(key: &SigningKey) -> Vec<u8> {
        let mut map = std::collections::BTreeMap::new();
        map.insert(Cbor::Integer(1), Cbor::Integer(KTY_OKP));
        map.insert(Cbor::Integer(3), Cbor::Integer(ALG_EDDSA));
        map.insert(Cbor::Integer(-1), Cbor::Integer(CRV_ED25519));
        map.insert(Cbor::Integer(-2), Cbor::Bytes(key.verifying_key().to_bytes().to_vec()));
        serde_cbor_2::to_vec(&Cbor::Map(map)).unwrap()
    }

    fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": ORIGIN})).unwrap()
    }

    fn enc(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn registration(key: &SigningKey, fmt: &str, challenge: &str) -> Value {
        let id = vec![7u8; 16];
        let mut auth_data = Sha256::digest(RP.as_bytes()).to_vec();
        auth_data.push(FLAG_UP | FLAG_AT);
        auth_data.extend_from_slice(&1u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose(key));
        let cd = client_data("webauthn.create", challenge);
        let mut stmt = std::collections::BTreeMap::new();
        if fmt == "packed" {
            let mut signed = auth_data.clone();
            signed.extend_from_slice(&Sha256::digest(&cd));
            stmt.insert(Cbor::Text("alg".into()), Cbor::Integer(ALG_EDDSA));
            stmt.insert(Cbor::Text("sig".into()), Cbor::Bytes(key.sign(&signed).to_bytes().to_vec()));
        }
        let mut obj = std::collections::BTreeMap::new();
        obj.insert(Cbor::Text("fmt".into()), Cbor::Text(fmt.into()));
        obj.insert(Cbor::Text("attStmt".into()), Cbor::Map(stmt));
        obj.insert(Cbor::Text("authData".into()), Cbor::Bytes(auth_data));
        json!({
            "id": enc(&id), "rawId": enc(&id), "type": "public-key",
            "response": {"clientDataJSON": enc(&cd), "attestationObject": enc(&serde_cbor_2::to_vec(&Cbor::Map(obj)).unwrap())}
        })
    }

    fn assertion(key: &SigningKey, counter: u32, challenge: &str) -> Value {
        let mut auth_data = Sha256::digest(RP.as_bytes()).to_vec();
        auth_data.push(FLAG_UP);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let cd = client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&cd));
        json!({"id": "x", "response": {
            "clientDataJSON": enc(&cd), "authenticatorData": enc(&auth_data), "signature": enc(&key.sign(&signed).to_bytes())
        }})
    }

    #[test]
    fn ed25519_registration_and_assertion_verify() {
        let key = SigningKey::from_bytes(&[42u8; 32]);
        let origins = [ORIGIN.to_owned()];
        let expected = Expected { rp_id: RP, origins: &origins, challenge: "abc" };
        for fmt in ["none", "packed"] {
            let reg = registration(&key, fmt, "abc");
            assert!(registers_ed25519(&reg));
            let attested = verify_registration(&expected, &reg).unwrap();
            assert_eq!((attested.counter, attested.credential_id.len()), (1, 16));
            let vk = ed25519_key(&attested.cose_key).unwrap().unwrap();
            let stored = Stored { key: &vk, counter: 1, backup_eligible: false };
            assert_eq!(verify_assertion(&expected, &assertion(&key, 2, "abc"), stored), Ok(2));
        }
    }

    #[test]
    fn wrong_challenge_key_origin_or_counter_fail() {
        let key = SigningKey::from_bytes(&[42u8; 32]);
        let other = SigningKey::from_bytes(&[43u8; 32]);
        let origins = [ORIGIN.to_owned()];
        let expected = Expected { rp_id: RP, origins: &origins, challenge: "abc" };
        assert!(verify_registration(&expected, &registration(&key, "none", "zzz")).is_err());
        let elsewhere = ["https://evil.example".to_owned()];
        let strange = Expected { rp_id: RP, origins: &elsewhere, challenge: "abc" };
        assert!(verify_registration(&strange, &registration(&key, "none", "abc")).is_err());
        let vk = key.verifying_key();
        let stored = || Stored { key: &vk, counter: 5, backup_eligible: false };
        assert!(verify_assertion(&expected, &assertion(&other, 6, "abc"), stored()).is_err());
        assert!(verify_assertion(&expected, &assertion(&key, 5, "abc"), stored()).is_err());
        assert!(verify_assertion(&expected, &assertion(&key, 6, "abd"), stored()).is_err());
        assert_eq!(verify_assertion(&expected, &assertion(&key, 6, "abc"), stored()), Ok(6));
    }
}
