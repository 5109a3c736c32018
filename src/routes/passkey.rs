//! The passkey plugin (spec §10): WebAuthn registration and sign-in with the JSON
//! of `@simplewebauthn` that the official client sends and expects.
//!
//! Signatures, attestation, origins, RP id hashes and counters are checked by
//! `webauthn-rs-core`, on the blocking pool; this module builds the option JSON,
//! keeps the single-use challenges (a signed cookie naming a `verification` row)
//! and stores the credentials in Better Auth's `passkey` table.
//!
//! Guests: a passkey sign-in mints a session, so a guest who signs in with a real
//! account's passkey is converted by the engine in `link.rs` like on every other
//! path. A guest who registers a passkey on their own account becomes a registered
//! account in place (same id, same session, other sessions revoked), unless
//! `upgrade_anonymous` is off.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationFormat, AttestationMetadata, COSEAlgorithm, COSEKey, Credential, ParsedAttestation,
    ParsedAttestationData, PublicKeyCredential, RegisterPublicKeyCredential, RegisteredExtensions,
    UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

use crate::auth::Auth;
use crate::crypto::{new_id, random_string};
use crate::endpoint::{Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::body::Body;
use crate::http::response::Response;
use crate::model::{Passkey, Session, SessionAndUserJson, SessionJson, User, UserJson, Verification};
use crate::route;
use crate::session::Current;
use crate::storage::{Login, PasskeyBy, Profile, WriteOp};
use crate::webauthn_eddsa;

pub const ROUTES: &[RouteDef] = &[
    route!("GET", "/passkey/generate-register-options", register_options, plugin = Passkey),
    route!("POST", "/passkey/verify-registration", verify_registration, plugin = Passkey),
    route!("GET", "/passkey/generate-authenticate-options", authenticate_options, plugin = Passkey),
    route!("POST", "/passkey/verify-authentication", verify_authentication, plugin = Passkey, signs_in = "passkey"),
    route!("GET", "/passkey/list-user-passkeys", list, plugin = Passkey),
    route!("POST", "/passkey/delete-passkey", delete, plugin = Passkey),
    route!("POST", "/passkey/update-passkey", update, plugin = Passkey),
];

/// How long a challenge (cookie and row) lives, in seconds.
const CHALLENGE_TTL_S: i64 = 300;
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
const USER_HANDLE_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// What `@simplewebauthn/server` offers by default: EdDSA, ES256, RS256.
const ALGORITHMS: [i64; 3] = [-8, -7, -257];

/// The plugin's options; the router serves these routes only when they are set.
fn options(auth: &Auth) -> Result<&crate::config::PasskeyOptions, AuthError> {
    auth.cfg.passkey.as_ref().ok_or(AuthError::NotFound)
}

/// `rpID`: the option, or the host name of the base URL.
fn rp_id(auth: &Auth) -> String {
    if let Some(id) = auth.cfg.passkey.as_ref().and_then(|p| p.rp_id.clone()) {
        return id;
    }
    let origin = &auth.cfg.base_origin;
    let host = origin.split_once("://").map_or(origin.as_str(), |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']').map_or(host, |(h, _)| h).trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if host.is_empty() {
        "localhost".into()
    } else {
        host.to_owned()
    }
}

fn rp_name(auth: &Auth) -> String {
    auth.cfg.passkey.as_ref().and_then(|p| p.rp_name.clone()).unwrap_or_else(|| "Better Auth".into())
}

/// The origins a ceremony may come from: the configured ones, or the request's `Origin`.
fn expected_origins(auth: &Auth, ctx: &Ctx<'_>) -> Option<Vec<url::Url>> {
    let configured = auth.cfg.passkey.as_ref().map(|p| p.origin.clone()).unwrap_or_default();
    let origins = if configured.is_empty() {
        vec![ctx.req.header("origin").filter(|o| !o.is_empty() && *o != "null")?.to_owned()]
    } else {
        configured
    };
    let parsed: Vec<url::Url> = origins.iter().filter_map(|o| url::Url::parse(o).ok()).collect();
    (!parsed.is_empty()).then_some(parsed)
}

fn webauthn(auth: &Auth, origins: Vec<url::Url>) -> WebauthnCore {
    WebauthnCore::new_unsafe_experts_only(
        &rp_name(auth),
        &rp_id(auth),
        origins,
        std::time::Duration::from_millis(60_000),
        Some(false),
        Some(false),
    )
}

fn random_challenge() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The user registering a passkey: a session is required and, for a registered
/// user, a fresh one (`session.fresh_age`). A guest has no other credential to
/// re-check, so a guest's session is never too old for this.
async fn registering_user<'c>(ctx: &'c Ctx<'_>) -> Result<(&'c Session, &'c User), AuthError> {
    let Current::Valid { session, user, .. } = ctx.current().await? else {
        return Err(AuthError::Unauthorized);
    };
    let fresh_age = ctx.auth.cfg.session.fresh_age;
    if !user.is_anonymous && fresh_age > 0 && ctx.auth.clock.now_ms() - session.created_at >= fresh_age * 1000 {
        return Err(AuthError::SessionNotFresh);
    }
    Ok((session, user))
}

/// A challenge row and the cookie that names it.
fn issue_challenge(auth: &Auth, value: Value) -> (Verification, String) {
    let token = random_string(32, TOKEN_ALPHABET);
    let now = auth.clock.now_ms();
    let row = Verification {
        id: new_id(),
        identifier: token.clone(),
        value: value.to_string(),
        expires_at: now + CHALLENGE_TTL_S * 1000,
        created_at: now,
        updated_at: now,
    };
    let cookie = auth.sessions.cookies.set(
        &auth.sessions.cookies.passkey_challenge,
        &auth.cfg.signer.sign_cookie_value(&token),
        Some(CHALLENGE_TTL_S),
    );
    (row, cookie)
}

/// The challenge this browser was given for a ceremony of `kind`: its row's
/// identifier and value. Missing, forged, expired or of the other kind: 400
/// `CHALLENGE_NOT_FOUND`.
async fn take_challenge(ctx: &Ctx<'_>, kind: &str) -> Result<(String, Value), AuthError> {
    let auth = ctx.auth;
    let token = ctx
        .req
        .cookie(&auth.sessions.cookies.passkey_challenge)
        .and_then(|raw| auth.cfg.signer.verify_cookie_value(raw))
        .ok_or(AuthError::ChallengeNotFound)?;
    let row = auth.store.verification(&token).await?.ok_or(AuthError::ChallengeNotFound)?;
    let value: Value = serde_json::from_str(&row.value).unwrap_or(Value::Null);
    let kind_matches = value.get("type").and_then(Value::as_str).is_none_or(|t| t == kind);
    if row.expires_at <= auth.clock.now_ms() || !kind_matches || value.get("expectedChallenge").is_none() {
        return Err(AuthError::ChallengeNotFound);
    }
    Ok((token, value))
}

/// A refusal once a challenge was read: it is used up all the same (spec notes, §10).
fn refuse(e: AuthError, token: &str) -> Result<Outcome, AuthError> {
    Ok(Outcome::response(Response::error(&e)).writes([WriteOp::DeleteVerification(token.to_owned())]))
}

fn descriptor(p: &Passkey) -> Value {
    let mut d = json!({ "id": p.credential_id, "type": "public-key" });
    if let Some(t) = p.transports.as_deref().filter(|t| !t.is_empty()) {
        d["transports"] = json!(t.split(',').collect::<Vec<_>>());
    }
    d
}

/// `GET /passkey/generate-register-options` (spec §10 #1).
pub async fn register_options(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let opts = options(auth)?;
    let attachment = match ctx.req.query_param("authenticatorAttachment") {
        None => None,
        Some(a) if a == "platform" || a == "cross-platform" => Some(a),
        Some(_) => {
            return Err(AuthError::Validation(
                r#"[query.authenticatorAttachment] Invalid option: expected one of "platform"|"cross-platform""#.into(),
            ))
        }
    };
    let (_, user) = registering_user(ctx).await?;
    let existing = auth.store.passkeys(&user.id).await?;
    let display = if user.email.is_empty() { user.id.clone() } else { user.email.clone() };
    let name = ctx.req.query_param("name").filter(|n| !n.is_empty()).unwrap_or_else(|| display.clone());
    let context = ctx.req.query_param("context");
    let challenge = random_challenge();
    let handle = URL_SAFE_NO_PAD.encode(random_string(32, USER_HANDLE_ALPHABET));

    let mut selection = json!({ "residentKey": "preferred", "userVerification": "preferred" });
    if let Some(custom) = &opts.authenticator_selection {
        for (k, v) in custom {
            selection[k] = v.clone();
        }
    }
    if let Some(a) = attachment {
        selection["authenticatorAttachment"] = json!(a);
    }
    selection["requireResidentKey"] = json!(selection["residentKey"] == "required");
    let body = json!({
        "challenge": challenge,
        "rp": { "name": rp_name(auth), "id": rp_id(auth) },
        "user": { "id": handle, "name": name, "displayName": display },
        "pubKeyCredParams": ALGORITHMS.iter().map(|alg| json!({ "alg": alg, "type": "public-key" })).collect::<Vec<_>>(),
        "timeout": 60000,
        "attestation": "none",
        "excludeCredentials": existing.iter().map(descriptor).collect::<Vec<_>>(),
        "authenticatorSelection": selection,
        "extensions": { "credProps": true },
        "hints": [],
    });
    let (row, cookie) = issue_challenge(
        auth,
        json!({
            "type": "registration",
            "expectedChallenge": challenge,
            "userData": { "id": user.id, "name": name, "displayName": display },
            "context": context,
        }),
    );
    Ok(Outcome::json(&body).cookies([cookie]).writes([WriteOp::InsertVerification(row)]))
}

/// What registration verified, ready to store.
struct Registered {
    credential_id: String,
    public_key: String,
    counter: i64,
    backup_eligible: bool,
    backed_up: bool,
    aaguid: Option<String>,
}

/// An AAGUID as a UUID string.
fn aaguid_string(aaguid: &[u8]) -> String {
    let hex: String = aaguid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The origins a ceremony may come from, as `scheme://host[:port]`.
fn origin_strings(origins: &[url::Url]) -> Vec<String> {
    origins.iter().map(|u| u.origin().ascii_serialization()).collect()
}

/// Checks a registration: Ed25519 credentials here, the others with `webauthn-rs-core`.
/// The error is the reason, for the debug log.
fn verify_registration_response(
    core: &WebauthnCore,
    rp_id: &str,
    origins: &[url::Url],
    challenge: &str,
    response: Value,
) -> Result<Registered, String> {
    if !webauthn_eddsa::registers_ed25519(&response) {
        return verify_attestation(core, challenge, response).map_err(|e| format!("{e:?}"));
    }
    let origins = origin_strings(origins);
    let expected = webauthn_eddsa::Expected { rp_id, origins: &origins, challenge };
    let a = webauthn_eddsa::verify_registration(&expected, &response)?;
    Ok(Registered {
        credential_id: URL_SAFE_NO_PAD.encode(&a.credential_id),
        public_key: STANDARD.encode(&a.cose_key),
        counter: i64::from(a.counter),
        backup_eligible: a.backup_eligible,
        backed_up: a.backed_up,
        aaguid: Some(aaguid_string(&a.aaguid)),
    })
}

/// Checks an attestation with `webauthn-rs-core`.
fn verify_attestation(core: &WebauthnCore, challenge: &str, response: Value) -> Result<Registered, WebauthnError> {
    // Transports are hints the library need not understand (newer browsers send
    // values it does not know); they are stored from the raw response instead.
    let mut response = response;
    if let Some(r) = response.get_mut("response").and_then(Value::as_object_mut) {
        r.remove("transports");
    }
    let reg: RegisterPublicKeyCredential =
        serde_json::from_value(response).map_err(|_| WebauthnError::ParseNOMFailure)?;
    let algorithms = vec![COSEAlgorithm::EDDSA, COSEAlgorithm::ES256, COSEAlgorithm::RS256];
    let builder = core
        .new_challenge_register_builder(b"kernia", "kernia", "kernia")?
        .user_verification_policy(UserVerificationPolicy::Preferred)
        .credential_algorithms(algorithms);
    let (_, state) = core.generate_challenge_register(builder)?;
    let state = with_challenge(state, challenge)?;
    let cred = core.register_credential(&reg, &state, None)?;
    let (public_key, aaguid) = attested_key(&reg.response.attestation_object).ok_or(WebauthnError::ParseNOMFailure)?;
    Ok(Registered {
        credential_id: URL_SAFE_NO_PAD.encode(&cred.cred_id),
        public_key: STANDARD.encode(public_key),
        counter: i64::from(cred.counter),
        backup_eligible: cred.backup_eligible,
        backed_up: cred.backup_state,
        aaguid,
    })
}

/// The library's ceremony state with the challenge this server issued (the
/// state is plain data; its challenge is the only part that differs per ceremony).
fn with_challenge<T: serde::Serialize + serde::de::DeserializeOwned>(
    state: T,
    challenge: &str,
) -> Result<T, WebauthnError> {
    let mut v = serde_json::to_value(state).map_err(|_| WebauthnError::ChallengeNotFound)?;
    v["challenge"] = json!(challenge);
    serde_json::from_value(v).map_err(|_| WebauthnError::ChallengeNotFound)
}

/// The COSE key bytes and the AAGUID inside an attestation object's
/// authenticator data (WebAuthn §6.1: rpIdHash 32, flags 1, counter 4, AAGUID 16,
/// credential id length 2, credential id, then the CBOR-encoded key). The
/// library has checked all of it already; this only cuts the stored form out.
fn attested_key(attestation_object: &[u8]) -> Option<(Vec<u8>, Option<String>)> {
    use serde_cbor_2::Value as Cbor;
    let Cbor::Map(map) = serde_cbor_2::from_slice::<Cbor>(attestation_object).ok()? else { return None };
    let Some(Cbor::Bytes(auth_data)) = map.get(&Cbor::Text("authData".into())) else { return None };
    let aaguid = auth_data.get(37..53)?;
    let id_len = u16::from_be_bytes([*auth_data.get(53)?, *auth_data.get(54)?]) as usize;
    let key_start = 55 + id_len;
    let rest = auth_data.get(key_start..)?;
    let mut de = serde_cbor_2::Deserializer::from_slice(rest);
    serde::de::Deserialize::deserialize(&mut de).ok().map(|_: Cbor| ())?;
    let key = rest[..de.byte_offset()].to_vec();
    Some((key, Some(aaguid_string(aaguid))))
}

fn transports_of(response: &Value) -> String {
    response
        .pointer("/response/transports")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// `POST /passkey/verify-registration` (spec §10 #2).
pub async fn verify_registration(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let opts = options(auth)?;
    let (session, user) = registering_user(ctx).await?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let response = v.object("response");
    let name = v.optional_string("name");
    let create_session = v.optional_bool("createSession").unwrap_or(false);
    v.finish()?;
    let Some(response) = response else { unreachable!("validation passed") };
    let Some(origins) = expected_origins(auth, ctx) else {
        return Err(AuthError::FailedToVerifyRegistration(400));
    };
    let (token, challenge) = take_challenge(ctx, "registration").await?;
    if challenge.pointer("/userData/id").and_then(Value::as_str) != Some(user.id.as_str()) {
        return refuse(AuthError::NotAllowedToRegisterPasskey, &token);
    }
    let expected = challenge["expectedChallenge"].as_str().unwrap_or_default().to_owned();
    let transports = transports_of(&response);
    let core = webauthn(auth, origins.clone());
    let rp = rp_id(auth);
    let verified =
        tokio::task::spawn_blocking(move || verify_registration_response(&core, &rp, &origins, &expected, response))
            .await
            .map_err(|e| AuthError::internal(format!("passkey verification task failed: {e}")))?;
    let registered = match verified {
        Ok(r) => r,
        Err(reason) => {
            crate::log::debug(format_args!("passkey registration refused: {reason}"));
            return refuse(AuthError::FailedToVerifyRegistration(400), &token);
        }
    };

    let now = auth.clock.now_ms();
    let passkey = Passkey {
        id: new_id(),
        name: name.map(|n| n.trim().to_owned()),
        public_key: registered.public_key,
        user_id: user.id.clone(),
        credential_id: registered.credential_id,
        counter: registered.counter,
        device_type: if registered.backup_eligible { "multiDevice" } else { "singleDevice" }.into(),
        backed_up: registered.backed_up,
        transports: Some(transports),
        created_at: now,
        aaguid: registered.aaguid,
    };
    let mut writes = vec![WriteOp::ConsumeVerification(token), WriteOp::InsertPasskey(passkey.clone())];
    let mut user = user.clone();
    let upgrades = user.is_anonymous && opts.upgrade_anonymous && auth.allows_linking();
    if upgrades {
        // The guest now has a real credential: a registered account from here on,
        // reachable by this session only (a leaked guest token must not become one).
        let profile = Profile::default();
        writes.push(WriteOp::UpgradeAnonymous { user_id: user.id.clone(), updated_at: now, profile });
        writes.push(WriteOp::RevokeOtherSessions { user_id: user.id.clone(), keep_id: session.id.clone() });
        user.is_anonymous = false;
        user.updated_at = now;
    }
    let out = if create_session {
        let remember = !auth.sessions.dont_remember(ctx.req);
        let new_session = auth.sessions.create(&user.id, false, true, ctx.req, ctx.client_ip.as_deref());
        let mut body = serde_json::to_value(&passkey).unwrap_or_default();
        body["session"] = serde_json::to_value(SessionJson(&new_session)).unwrap_or_default();
        body["user"] = serde_json::to_value(UserJson(&user, auth.user_fields)).unwrap_or_default();
        writes.push(WriteOp::InsertSession(new_session.clone()));
        Outcome::json(&body).cookies(auth.sessions.cookies_for(&new_session, &user, remember))
    } else if upgrades {
        // The same session, now a registered user's: a cached copy must not say "guest".
        let remember = !auth.sessions.dont_remember(ctx.req);
        Outcome::json(&passkey).cookies(auth.sessions.cache_cookies(session, &user, remember))
    } else {
        Outcome::json(&passkey)
    };
    let out = if upgrades { out.upgraded(&user, "passkey") } else { out };
    Ok(out.writes(writes).on_used(AuthError::ChallengeNotFound))
}

/// `GET /passkey/generate-authenticate-options` (spec §10 #3).
pub async fn authenticate_options(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let user_id = match ctx.current().await? {
        Current::Valid { user, .. } => user.id.clone(),
        _ => String::new(),
    };
    let mine = if user_id.is_empty() { Vec::new() } else { auth.store.passkeys(&user_id).await? };
    let challenge = random_challenge();
    let mut body = json!({ "rpId": rp_id(auth), "challenge": challenge });
    if !mine.is_empty() {
        body["allowCredentials"] = json!(mine.iter().map(descriptor).collect::<Vec<_>>());
    }
    body["timeout"] = json!(60000);
    body["userVerification"] = json!("preferred");
    let (row, cookie) = issue_challenge(
        auth,
        json!({ "type": "authentication", "expectedChallenge": challenge, "userData": { "id": user_id } }),
    );
    Ok(Outcome::json(&body).cookies([cookie]).writes([WriteOp::InsertVerification(row)]))
}

/// A stored passkey as the library's credential.
fn credential(p: &Passkey) -> Option<Credential> {
    let cose = STANDARD.decode(&p.public_key).ok()?;
    let value: serde_cbor_2::Value = serde_cbor_2::from_slice(&cose).ok()?;
    Some(Credential {
        cred_id: URL_SAFE_NO_PAD.decode(&p.credential_id).ok()?,
        cred: COSEKey::try_from(&value).ok()?,
        counter: u32::try_from(p.counter).ok()?,
        transports: None,
        user_verified: false,
        backup_eligible: p.device_type == "multiDevice",
        backup_state: p.backed_up,
        registration_policy: UserVerificationPolicy::Preferred,
        extensions: RegisteredExtensions::none(),
        attestation: ParsedAttestation { data: ParsedAttestationData::None, metadata: AttestationMetadata::None },
        attestation_format: AttestationFormat::None,
    })
}

/// Checks an assertion; returns the authenticator's new counter.
fn verify_assertion(
    core: &WebauthnCore,
    challenge: &str,
    response: Value,
    cred: Credential,
) -> Result<u32, WebauthnError> {
    let pkc: PublicKeyCredential = serde_json::from_value(response).map_err(|_| WebauthnError::ParseNOMFailure)?;
    let builder =
        core.new_challenge_authenticate_builder(vec![cred.clone()], None)?.allow_backup_eligible_upgrade(true);
    let (_, state) = core.generate_challenge_authenticate(builder)?;
    let state = with_challenge(state, challenge)?;
    Ok(core.authenticate_single_credential(&pkc, &state, &cred)?.counter())
}

/// `POST /passkey/verify-authentication` (spec §10 #4).
pub async fn verify_authentication(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let auth = ctx.auth;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let response = v.object("response");
    v.finish()?;
    let Some(response) = response else { unreachable!("validation passed") };
    let Some(origins) = expected_origins(auth, ctx) else { return Err(AuthError::OriginMissing) };
    let (token, challenge) = take_challenge(ctx, "authentication").await?;
    let Some(credential_id) = response.get("id").and_then(Value::as_str) else {
        return refuse(AuthError::AuthenticationFailed(400), &token);
    };
    let Some(passkey) = auth.store.passkey(PasskeyBy::CredentialId, credential_id).await? else {
        return refuse(AuthError::PasskeyNotFound(401), &token);
    };
    let expected = challenge["expectedChallenge"].as_str().unwrap_or_default().to_owned();
    let cose = STANDARD.decode(&passkey.public_key).unwrap_or_default();
    let verified = match webauthn_eddsa::ed25519_key(&cose) {
        Some(Ok(key)) => {
            let (rp, origins) = (rp_id(auth), origin_strings(&origins));
            let stored = u32::try_from(passkey.counter).unwrap_or(u32::MAX);
            let backup_eligible = passkey.device_type == "multiDevice";
            tokio::task::spawn_blocking(move || {
                let expected = webauthn_eddsa::Expected { rp_id: &rp, origins: &origins, challenge: &expected };
                let stored = webauthn_eddsa::Stored { key: &key, counter: stored, backup_eligible };
                webauthn_eddsa::verify_assertion(&expected, &response, stored).map_err(|r| (401, r))
            })
            .await
        }
        Some(Err(reason)) => return refuse(AuthError::internal(format!("a stored passkey's key: {reason}")), &token),
        None => {
            let Some(cred) = credential(&passkey) else {
                return refuse(AuthError::internal("a stored passkey's public key does not parse"), &token);
            };
            let core = webauthn(auth, origins);
            tokio::task::spawn_blocking(move || {
                verify_assertion(&core, &expected, response, cred).map_err(|e| match e {
                    WebauthnError::ParseNOMFailure | WebauthnError::ParseCBORFailure(_) => (400, format!("{e:?}")),
                    e => (401, format!("{e:?}")),
                })
            })
            .await
        }
    };
    let verified = verified.map_err(|e| AuthError::internal(format!("passkey verification task failed: {e}")))?;
    let counter = match verified {
        Ok(c) => c,
        Err((status, reason)) => {
            crate::log::debug(format_args!("passkey sign-in refused: {reason}"));
            return refuse(AuthError::AuthenticationFailed(status), &token);
        }
    };
    let Some(user) = auth.store.user(Login::Id, &passkey.user_id).await? else {
        return refuse(AuthError::UserNotFound, &token);
    };

    let remember = !auth.sessions.dont_remember(ctx.req);
    let session = auth.sessions.create(&user.id, false, true, ctx.req, ctx.client_ip.as_deref());
    let answer = Outcome::json(&SessionAndUserJson(&session, &user, auth.user_fields));
    let mut writes = vec![WriteOp::ConsumeVerification(token)];
    if i64::from(counter) > passkey.counter {
        writes.push(WriteOp::UpdatePasskeyCounter { id: passkey.id.clone(), counter: i64::from(counter) });
    }
    writes.push(WriteOp::InsertSession(session.clone()));
    Ok(answer
        .cookies(auth.sessions.cookies_for(&session, &user, remember))
        .writes(writes)
        .on_used(AuthError::ChallengeNotFound)
        .minted(session, user))
}

fn signed_in_user(current: &Current) -> Result<&User, AuthError> {
    match current {
        Current::Valid { user, .. } => Ok(user),
        _ => Err(AuthError::Unauthorized),
    }
}

/// `GET /passkey/list-user-passkeys` (spec §10 #5).
pub async fn list(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let user = signed_in_user(ctx.current().await?)?;
    Ok(Outcome::json(&ctx.auth.store.passkeys(&user.id).await?))
}

/// The caller's own passkey named by the body's `id`: unknown 404, another user's 401.
async fn own_passkey(ctx: &Ctx<'_>, user: &User, id: &str, not_yours: AuthError) -> Result<Passkey, AuthError> {
    match ctx.auth.store.passkey(PasskeyBy::Id, id).await? {
        None => Err(AuthError::PasskeyNotFound(404)),
        Some(p) if p.user_id != user.id => Err(not_yours),
        Some(p) => Ok(p),
    }
}

/// `POST /passkey/delete-passkey` (spec §10 #6).
pub async fn delete(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let user = signed_in_user(ctx.current().await?)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let id = v.string("id");
    v.finish()?;
    let Some(id) = id else { unreachable!("validation passed") };
    let passkey = own_passkey(ctx, user, &id, AuthError::Unauthorized).await?;
    Ok(Outcome::json(&json!({ "status": true })).writes([WriteOp::DeletePasskey(passkey.id)]))
}

/// `POST /passkey/update-passkey` (spec §10 #7): renames a passkey.
pub async fn update(ctx: &Ctx<'_>) -> Result<Outcome, AuthError> {
    let user = signed_in_user(ctx.current().await?)?;
    let body = Body::parse(ctx.req, false)?;
    let mut v = body.validator();
    let id = v.string("id");
    let name = v.string("name").map(|n| n.trim().to_owned());
    if name.as_deref() == Some("") {
        v.issue("name", "Too small: expected string to have >=1 characters");
    }
    v.finish()?;
    let (Some(id), Some(name)) = (id, name) else { unreachable!("validation passed") };
    let mut passkey = own_passkey(ctx, user, &id, AuthError::NotAllowedToRegisterPasskey).await?;
    passkey.name = Some(name.clone());
    Ok(Outcome::json(&json!({ "passkey": passkey })).writes([WriteOp::RenamePasskey { id, name }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attested_key_cuts_the_cose_key_out_of_auth_data() {
        use serde_cbor_2::Value as Cbor;
        let key = serde_cbor_2::to_vec(&Cbor::Map(
            [(Cbor::Integer(1), Cbor::Integer(2)), (Cbor::Integer(3), Cbor::Integer(-7))].into_iter().collect(),
        ))
        .unwrap();
        let mut auth_data = vec![0u8; 37];
        auth_data.extend((0u8..16).collect::<Vec<_>>());
        auth_data.extend([0, 2, 0xAB, 0xCD]);
        auth_data.extend(&key);
        auth_data.extend([0xA0]); // an extensions map after the key is not part of it
        let object = serde_cbor_2::to_vec(&Cbor::Map(
            [
                (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
                (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
            ]
            .into_iter()
            .collect(),
        ))
        .unwrap();
        let (cose, aaguid) = attested_key(&object).unwrap();
        assert_eq!(cose, key);
        assert_eq!(aaguid.as_deref(), Some("00010203-0405-0607-0809-0a0b0c0d0e0f"));
        assert!(attested_key(b"not cbor").is_none());
    }
}
