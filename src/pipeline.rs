//! The request pipeline (spec §1.3), the top of the engine: rate limit → route →
//! origin check → endpoint → commit of the endpoint's staged writes in one
//! transaction (through a guest conversion when one is due) → response.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use crate::auth::Auth;
use crate::callbacks::{CallbackRequest, EventKind, EventOrigin};
use crate::endpoint::{AfterCommit, Ctx, Outcome, RouteDef};
use crate::error::AuthError;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::{cors, origin};
use crate::link::{Conversion, StoreErrorOr};
use crate::routes::TABLES;
use crate::session::Current;
use crate::storage::{Constraint, StoreError};

/// Every route with a fixed path, by method and path, built once from the route tables.
static ROUTER: LazyLock<HashMap<(&'static str, &'static str), &'static RouteDef>> = LazyLock::new(|| {
    TABLES.iter().flat_map(|t| t.iter()).filter(|d| !d.path.contains(':')).map(|d| ((d.method, d.path), d)).collect()
});

/// Routes whose last segment is a parameter (`/reset-password/:token`): method,
/// the path before the parameter (with its `/`), the route.
static WITH_PARAM: LazyLock<Vec<(&'static str, &'static str, &'static RouteDef)>> = LazyLock::new(|| {
    TABLES
        .iter()
        .flat_map(|t| t.iter())
        .filter_map(|d| d.path.rfind("/:").map(|i| (d.method, &d.path[..=i], d)))
        .collect()
});

/// The route for a method and relative path; a plugin's routes only when the
/// plugin is on. Anything else, a wrong method or a trailing slash is a 404 with
/// an empty body (spec §1.1). A parameter is one non-empty segment.
pub fn route(auth: &Auth, method: &str, path: &str) -> Option<&'static RouteDef> {
    let fixed = ROUTER.get(&(method, path)).copied();
    fixed.or_else(|| param_route(method, path)).filter(|def| def.plugin.is_none_or(|p| auth.cfg.has(p)))
}

fn param_route(method: &str, path: &str) -> Option<&'static RouteDef> {
    WITH_PARAM.iter().find_map(|(m, prefix, def)| {
        let value = path.strip_prefix(prefix)?;
        (*m == method && !value.is_empty() && !value.contains('/')).then_some(*def)
    })
}

/// Serves one request. Never panics and never fails: every error becomes its response.
pub async fn handle(auth: &Arc<Auth>, req: Request) -> Response {
    if let Some(preflight) = cors::preflight(&auth.cfg, &req) {
        return preflight;
    }
    let mut resp = measured(auth, &req).await;
    auth.sessions.cookies.tidy(&req, &mut resp.headers);
    cors::allow(&auth.cfg, &req, &mut resp);
    resp
}

async fn measured(auth: &Arc<Auth>, req: &Request) -> Response {
    let Some(metrics) = &auth.metrics else { return answer(auth, req).await };
    if auth.cfg.metrics_route() == Some(req.path.as_str()) && req.method == "GET" {
        return metrics_page(metrics);
    }
    let started = std::time::Instant::now();
    let resp = answer(auth, req).await;
    let label = route(auth, &req.method, &req.path).map_or(crate::metrics::UNMATCHED, |d| (d.method, d.path));
    metrics.request(label, resp.status, started.elapsed());
    resp
}

/// The Prometheus text page.
pub fn metrics_page(metrics: &crate::metrics::Metrics) -> Response {
    let mut resp = Response::empty(200);
    resp.headers.push(("content-type".into(), "text/plain; version=0.0.4; charset=utf-8".into()));
    resp.body = metrics.render().into_bytes();
    resp
}

async fn answer(auth: &Arc<Auth>, req: &Request) -> Response {
    match process(auth, req).await {
        Ok(resp) => resp,
        Err(e) => {
            if let AuthError::DatabaseUnavailable(detail) = &e {
                auth.db_health.failed(&auth.store, detail);
            }
            if let Some(m) = &auth.metrics {
                match &e {
                    AuthError::DatabaseUnavailable(_) => m.failure(true),
                    AuthError::Internal(_) => m.failure(false),
                    _ => {}
                }
            }
            Response::error(&e)
        }
    }
}

fn client_ip(auth: &Auth, req: &Request) -> Option<String> {
    crate::net::client_ip(req.peer_ip.as_deref(), req.header("x-forwarded-for"), &auth.cfg.trusted_proxies)
}

async fn process(auth: &Arc<Auth>, req: &Request) -> Result<Response, AuthError> {
    if req.http_version == "HTTP/1.1" && req.header("host").is_none_or(str::is_empty) {
        return Err(AuthError::MissingHost);
    }
    let client_ip = client_ip(auth, req);
    let now = auth.clock.now_ms();
    if let Err(e) = auth.limiter.check(auth.store.as_ref(), &req.path, client_ip.as_deref(), now).await {
        if matches!(e, AuthError::TooManyRequests { .. }) {
            let from = EventOrigin { ip: client_ip.as_deref(), path: Some(&req.path), extension: &req.extension };
            auth.emit(EventKind::RateLimited, None, None, &from);
        }
        return Err(e);
    }
    let route = route(auth, &req.method, &req.path).ok_or(AuthError::NotFound)?;
    if req.body.len() > auth.cfg.advanced.max_body_size {
        return Err(AuthError::PayloadTooLarge(auth.cfg.advanced.max_body_size));
    }
    origin::check_cookie_origin(&auth.cfg, req)?;
    let ctx = Ctx::new(auth, req, client_ip);
    let mut outcome = match (route.endpoint)(&ctx).await {
        Ok(outcome) => outcome,
        Err(AuthError::Unauthorized) if ctx.had_dead_session() => {
            let mut refused = Response::error(&AuthError::Unauthorized);
            refused
                .headers
                .extend(auth.sessions.cookies.expire_session().into_iter().map(|c| ("set-cookie".into(), c)));
            return Ok(refused);
        }
        Err(e) => return Err(e),
    };
    if outcome.new_session.is_some() && !route.mints_session() {
        return Err(AuthError::internal(format!("{} minted a session but its table says it does not", route.path)));
    }
    match (commit(auth, &ctx, route, &mut outcome).await, outcome.error_redirect.take()) {
        (Ok(()), _) => {
            let from = EventOrigin { ip: ctx.client_ip.as_deref(), path: Some(&req.path), extension: &req.extension };
            for (kind, user_id, new_user_id) in &outcome.events {
                auth.emit(*kind, Some(user_id), new_user_id.as_deref(), &from);
            }
            if !outcome.after.is_empty() {
                let request = CallbackRequest::of(req, ctx.client_ip.clone());
                for work in std::mem::take(&mut outcome.after) {
                    match work {
                        AfterCommit::Notify(which, user) => {
                            let _ = auth.account_callbacks.notify(which, &request, &user).await;
                        }
                        AfterCommit::Send(which, mail) => auth.send_quietly(which, &request, mail).await,
                        AfterCommit::SendOtp { email, otp, kind } => {
                            let _ = auth.account_callbacks.send_otp(&request, &email, &otp, &kind).await;
                        }
                    }
                }
            }
            Ok(outcome.response)
        }
        (Err(e), Some(url)) => Ok(Response::redirect_with_error(&url, e.redirect_code())),
        (Err(e), None) => Err(e),
    }
}

/// Commits the endpoint's writes, through a guest conversion when one is due.
async fn commit(auth: &Arc<Auth>, ctx: &Ctx<'_>, route: &RouteDef, outcome: &mut Outcome) -> Result<(), AuthError> {
    if let Some(ended) = outcome.guest_ended.take() {
        outcome.writes.push(ended.write(auth.clock.now_ms()));
    }
    let (on_conflict, on_used) = (outcome.on_conflict.take(), outcome.on_used.take());
    let store_error = |e: StoreError| match (e, &on_conflict, &on_used) {
        (StoreError::Conflict(Constraint::UserEmail | Constraint::UserUsername), Some(err), _) => err.clone(),
        (StoreError::Conflict(Constraint::Verification), _, Some(err)) => err.clone(),
        (e, _, _) => AuthError::from(e),
    };
    match conversion(auth, ctx, route, outcome).await? {
        None => auth.store.apply(std::mem::take(&mut outcome.writes)).await.map_err(store_error)?,
        Some(conversion) => {
            let (guest, new_user) = (conversion.guest_user.id.clone(), conversion.new_user.id.clone());
            match tokio::spawn(auth.linker.clone().convert(conversion)).await {
                Ok(Ok(linked)) => {
                    if linked && guest != new_user {
                        outcome.events.push((EventKind::Linked, guest, Some(new_user)));
                    }
                }
                Ok(Err(StoreErrorOr::Store(e))) => return Err(store_error(e)),
                Ok(Err(StoreErrorOr::Auth(e))) => return Err(e),
                Err(e) => return Err(AuthError::internal(format!("conversion task failed: {e}"))),
            }
        }
    }
    Ok(())
}

/// A conversion when a route that mints a session did so while the request carried a guest's.
async fn conversion(
    auth: &Auth,
    ctx: &Ctx<'_>,
    route: &RouteDef,
    outcome: &mut Outcome,
) -> Result<Option<Conversion>, AuthError> {
    if !route.mints_session() || auth.anonymous_callbacks.is_none() || !auth.allows_linking() {
        return Ok(None);
    }
    let Some(new_user) = outcome.new_user.clone() else { return Ok(None) };
    let Current::Valid { session, user, .. } = ctx.current().await? else { return Ok(None) };
    if !user.is_anonymous {
        return Ok(None);
    }
    Ok(Some(Conversion {
        guest_session: session.clone(),
        guest_user: user.clone(),
        new_user,
        writes: std::mem::take(&mut outcome.writes),
        request: CallbackRequest::of(ctx.req, ctx.client_ip.clone()),
        method: route.signs_in.unwrap_or_default(),
        at_ms: auth.clock.now_ms(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Plugin;
    use crate::routes::TABLES;

    fn all_routes() -> impl Iterator<Item = &'static RouteDef> {
        TABLES.iter().flat_map(|t| t.iter())
    }

    #[test]
    fn exact_matches_only() {
        assert!(ROUTER.contains_key(&("POST", "/sign-up/email")));
        for (method, path) in [("GET", "/sign-up/email"), ("POST", "/sign-up/email/"), ("POST", "//sign-up/email")] {
            assert!(!ROUTER.contains_key(&(method, path)), "{method} {path}");
        }
        assert_eq!(ROUTER.len() + WITH_PARAM.len(), all_routes().count());
    }

    #[test]
    fn a_parameter_is_one_non_empty_segment() {
        assert_eq!(param_route("GET", "/reset-password/abc").map(|d| d.path), Some("/reset-password/:token"));
        for (method, path) in
            [("GET", "/reset-password/"), ("GET", "/reset-password/a/b"), ("POST", "/reset-password/a")]
        {
            assert!(param_route(method, path).is_none(), "{method} {path}");
        }
    }

    /// The routes that convert a guest are Better Auth's sign-in paths (spec §7.3).
    #[test]
    fn the_routes_that_mint_sessions_are_the_sign_ins() {
        let minting: Vec<_> = all_routes().filter(|d| d.mints_session()).map(|d| d.path).collect();
        for path in &minting {
            let sign_in = [
                "/sign-in/",
                "/sign-up/",
                "/magic-link/verify",
                "/passkey/verify-authentication",
                "/verify-email",
                "/email-otp/verify-email",
            ]
            .iter()
            .any(|p| path.starts_with(p));
            assert!(sign_in, "{path} mints a session but is not a sign-in path");
        }
        assert_eq!(minting.len(), 10, "{minting:?}");
        let passkey = all_routes().filter(|d| d.plugin == Some(Plugin::Passkey)).count();
        assert_eq!(passkey, 7);
    }
}
