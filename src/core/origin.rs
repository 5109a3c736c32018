//! Trusted origins and the CSRF checks of spec §13.

use crate::config::Config;
use crate::core::request::Request;
use crate::error::AuthError;

/// `scheme://host[:port]`, lower-cased, of an absolute URL; `None` if it is not one.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut host = host.to_ascii_lowercase();
    for default_port in [("http", ":80"), ("https", ":443")] {
        if scheme == default_port.0 && host.ends_with(default_port.1) {
            host.truncate(host.len() - default_port.1.len());
        }
    }
    Some(format!("{scheme}://{host}"))
}

/// `*` any run of characters, `?` exactly one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

fn matches_pattern(pattern: &str, url: &str) -> bool {
    let Some(origin) = origin_of(url) else {
        return false;
    };
    if pattern.contains(['*', '?']) {
        return if pattern.contains("://") {
            glob(pattern.as_bytes(), origin.as_bytes())
        } else {
            let host = origin.split_once("://").map_or("", |(_, h)| h);
            glob(pattern.as_bytes(), host.as_bytes())
        };
    }
    let is_web = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    if is_web(pattern) {
        return origin_of(pattern).as_deref() == Some(origin.as_str());
    }
    // Custom schemes (`myapp://`): scheme, then authority and path prefix when given.
    url.to_ascii_lowercase().starts_with(&pattern.to_ascii_lowercase())
}

/// A same-site relative URL: one leading `/`, simple characters, an optional simple query.
fn is_safe_relative(url: &str) -> bool {
    let Some(rest) = url.strip_prefix('/') else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    if rest.starts_with('/')
        || rest.starts_with('\\')
        || lower.contains("%2f")
        || lower.contains("%5c")
        || rest.contains("//")
    {
        return false;
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path_ok = path.chars().all(|c| c.is_alphanumeric() || "_-.+/@".contains(c));
    let query_ok = query.chars().all(|c| c.is_alphanumeric() || "_-.+/@=&%".contains(c));
    path_ok && query_ok
}

pub fn is_trusted(cfg: &Config, url: &str, allow_relative: bool) -> bool {
    if allow_relative && url.starts_with('/') {
        return is_safe_relative(url);
    }
    if origin_of(url).as_deref() == Some(cfg.base_origin.as_str()) {
        return true;
    }
    cfg.trusted_origins.iter().any(|p| matches_pattern(p, url))
}

fn request_origin(req: &Request) -> Option<&str> {
    req.header("origin").or_else(|| req.header("referer")).filter(|o| !o.is_empty() && *o != "null")
}

fn check_origin_header(cfg: &Config, req: &Request) -> Result<(), AuthError> {
    let origin = request_origin(req).ok_or(AuthError::MissingOrNullOrigin)?;
    if is_trusted(cfg, origin, false) {
        Ok(())
    } else {
        Err(AuthError::InvalidOrigin)
    }
}

fn csrf_enabled(cfg: &Config) -> bool {
    !cfg.advanced.disable_csrf_check && !cfg.advanced.disable_origin_check
}

/// §13.2 step 1: a state-changing request that carries cookies must come from a trusted origin.
pub fn check_cookie_origin(cfg: &Config, req: &Request) -> Result<(), AuthError> {
    if !csrf_enabled(cfg) || matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS") || !req.has_cookies() {
        return Ok(());
    }
    check_origin_header(cfg, req)
}

/// §13.3: sign-in and sign-up forms are protected against login CSRF even without cookies.
pub fn check_form_csrf(cfg: &Config, req: &Request) -> Result<(), AuthError> {
    if !csrf_enabled(cfg) {
        return Ok(());
    }
    if req.has_cookies() {
        return check_origin_header(cfg, req);
    }
    let site = req.header("sec-fetch-site");
    let has_fetch_metadata =
        site.is_some() || req.header("sec-fetch-mode").is_some() || req.header("sec-fetch-dest").is_some();
    if has_fetch_metadata {
        if site == Some("cross-site") && req.header("sec-fetch-mode") == Some("navigate") {
            return Err(AuthError::CrossSiteNavigationLoginBlocked);
        }
        return check_origin_header(cfg, req);
    }
    match request_origin(req) {
        Some(_) => check_origin_header(cfg, req),
        None => Ok(()),
    }
}

/// §13.2 step 2: callback-type URLs in the body or query must be trusted (relative allowed).
pub fn check_callback_url(
    cfg: &Config,
    field: crate::error::UrlField,
    value: Option<&serde_json::Value>,
) -> Result<(), AuthError> {
    if cfg.advanced.disable_origin_check {
        return Ok(());
    }
    match value {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::String(url)) if is_trusted(cfg, url, true) => Ok(()),
        Some(serde_json::Value::String(_)) => Err(AuthError::InvalidUrl(field)),
        Some(_) => Err(AuthError::UrlNotAString(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::from_json(
            r#"{"database":"sqlite::memory:","secret":"x","base_url":"http://localhost:3000",
                "trusted_origins":["https://app.example.com","*.preview.example.com","myapp://"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn origins_are_extracted() {
        assert_eq!(origin_of("HTTPS://Example.com:443/a?b").as_deref(), Some("https://example.com"));
        assert_eq!(origin_of("http://localhost:3000/x").as_deref(), Some("http://localhost:3000"));
        assert_eq!(origin_of("/relative"), None);
    }

    #[test]
    fn trust_rules() {
        let c = cfg();
        assert!(is_trusted(&c, "http://localhost:3000", false));
        assert!(is_trusted(&c, "https://app.example.com/cb", false));
        assert!(!is_trusted(&c, "https://evil.example.com", false));
        assert!(is_trusted(&c, "https://pr-1.preview.example.com", false));
        assert!(is_trusted(&c, "myapp://callback", false));
        assert!(is_trusted(&c, "/dashboard?tab=1", true));
        assert!(!is_trusted(&c, "//evil.com", true));
        assert!(!is_trusted(&c, "/%2fevil.com", true));
        assert!(!is_trusted(&c, "/dashboard", false));
    }

    #[test]
    fn cookie_bearing_posts_need_a_trusted_origin() {
        let c = cfg();
        let base = Request::new("POST", "/sign-out").with_header("cookie", "a=b");
        assert_eq!(check_cookie_origin(&c, &base), Err(AuthError::MissingOrNullOrigin));
        let evil = base.clone().with_header("origin", "https://evil.com");
        assert_eq!(check_cookie_origin(&c, &evil), Err(AuthError::InvalidOrigin));
        let ok = base.clone().with_header("origin", "http://localhost:3000");
        assert_eq!(check_cookie_origin(&c, &ok), Ok(()));
        assert_eq!(check_cookie_origin(&c, &Request::new("POST", "/sign-out")), Ok(()));
    }

    #[test]
    fn form_csrf_blocks_cross_site_navigation() {
        let c = cfg();
        let r = Request::new("POST", "/sign-in/email")
            .with_header("sec-fetch-site", "cross-site")
            .with_header("sec-fetch-mode", "navigate");
        assert_eq!(check_form_csrf(&c, &r), Err(AuthError::CrossSiteNavigationLoginBlocked));
        let no_origin = Request::new("POST", "/sign-in/email").with_header("sec-fetch-site", "same-origin");
        assert_eq!(check_form_csrf(&c, &no_origin), Err(AuthError::MissingOrNullOrigin));
        assert_eq!(check_form_csrf(&c, &Request::new("POST", "/sign-in/email")), Ok(()));
    }
}
