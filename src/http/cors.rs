//! CORS for pages on other origins (`cors_origins`): a page at `https://app.example.com`
//! calling auth routes served from `https://auth.example.com`, or from another port of
//! the same host, with its cookies. Better Auth leaves this to the framework around it;
//! the native server has none, so the engine answers it, for every transport alike.
//!
//! Only an `Origin` equal to a listed origin, as the browser serializes it, is answered
//! with `Access-Control-Allow-Origin` (never `*`: credentials need the exact origin) and
//! `Access-Control-Allow-Credentials`. Anything else gets no CORS headers, so the
//! browser keeps the answer from the page.

use crate::config::Config;
use crate::http::request::Request;
use crate::http::response::Response;

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The request's `Origin` when it is one of `cors_origins`.
fn allowed<'r>(cfg: &Config, req: &'r Request) -> Option<&'r str> {
    let origin = req.header("origin")?;
    cfg.cors_origins.iter().any(|o| o == origin).then_some(origin)
}

/// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an
/// allowed origin: 204 with the methods the routes use and the headers asked for.
/// `None` for anything else, which then goes through the pipeline as any request.
pub fn preflight(cfg: &Config, req: &Request) -> Option<Response> {
    if req.method != "OPTIONS" || req.header("access-control-request-method").is_none() {
        return None;
    }
    let origin = allowed(cfg, req)?;
    let mut resp = Response::empty(204);
    resp.headers.push(("access-control-allow-origin".into(), origin.to_owned()));
    resp.headers.push(("access-control-allow-credentials".into(), "true".into()));
    resp.headers.push(("access-control-allow-methods".into(), "GET, POST".into()));
    if let Some(asked) = req.header("access-control-request-headers").filter(|h| !h.trim().is_empty()) {
        resp.headers.push(("access-control-allow-headers".into(), asked.to_owned()));
    }
    resp.headers.push(("access-control-max-age".into(), PREFLIGHT_MAX_AGE.into()));
    resp.headers.push(("vary".into(), "Origin".into()));
    Some(resp)
}

/// Lets an allowed origin's page read `resp`. Every answer varies by `Origin` once
/// CORS is on, so a shared cache never hands one origin's headers to another.
pub fn allow(cfg: &Config, req: &Request, resp: &mut Response) {
    if cfg.cors_origins.is_empty() {
        return;
    }
    resp.headers.push(("vary".into(), "Origin".into()));
    if let Some(origin) = allowed(cfg, req) {
        resp.headers.push(("access-control-allow-origin".into(), origin.to_owned()));
        resp.headers.push(("access-control-allow-credentials".into(), "true".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    fn cfg(origins: &[&str]) -> Config {
        let mut o: Options = serde_json::from_value(serde_json::json!({
            "database": "sqlite::memory:", "secret": "s".repeat(32), "base_url": "http://localhost:4000",
        }))
        .unwrap();
        o.cors_origins = origins.iter().map(|s| s.to_string()).collect();
        Config::from_options(o).unwrap()
    }

    fn preflight_from(origin: &str) -> Request {
        Request::new("OPTIONS", "/sign-up/email")
            .with_header("origin", origin)
            .with_header("access-control-request-method", "POST")
            .with_header("access-control-request-headers", "content-type")
    }

    #[test]
    fn a_listed_origin_gets_its_preflight_and_credentials() {
        let c = cfg(&["http://localhost:3000"]);
        let resp = preflight(&c, &preflight_from("http://localhost:3000")).unwrap();
        assert_eq!(resp.status, 204);
        assert_eq!(resp.header("access-control-allow-origin"), Some("http://localhost:3000"));
        assert_eq!(resp.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(resp.header("access-control-allow-headers"), Some("content-type"));
        let mut answer = Response::empty(200);
        allow(&c, &Request::new("GET", "/get-session").with_header("origin", "http://localhost:3000"), &mut answer);
        assert_eq!(answer.header("access-control-allow-origin"), Some("http://localhost:3000"));
    }

    #[test]
    fn other_origins_and_spellings_get_nothing() {
        // Configured spellings are stored as the browser serializes the origin.
        let c = cfg(&["HTTP://LOCALHOST:3000/"]);
        assert_eq!(c.cors_origins, ["http://localhost:3000"]);
        for origin in ["http://localhost:3001", "http://localhost:3000/", "null", "http://evil.localhost:3000"] {
            assert!(preflight(&c, &preflight_from(origin)).is_none(), "{origin}");
            let mut answer = Response::empty(200);
            allow(&c, &Request::new("GET", "/get-session").with_header("origin", origin), &mut answer);
            assert_eq!(answer.header("access-control-allow-origin"), None, "{origin}");
            assert_eq!(answer.header("vary"), Some("Origin"));
        }
        // Not a preflight: no Access-Control-Request-Method.
        let plain = Request::new("OPTIONS", "/sign-up/email").with_header("origin", "http://localhost:3000");
        assert!(preflight(&c, &plain).is_none());
    }

    #[test]
    fn nothing_changes_without_cors_origins() {
        let c = cfg(&[]);
        assert!(preflight(&c, &preflight_from("http://localhost:3000")).is_none());
        let mut answer = Response::empty(200);
        allow(&c, &Request::new("GET", "/get-session").with_header("origin", "http://localhost:3000"), &mut answer);
        assert!(answer.headers.is_empty());
    }

    #[test]
    fn values_that_are_not_origins_are_refused() {
        for bad in ["localhost:3000", "http://localhost:3000/app", "https://*.example.com", "ftp://x", "http://u@h", ""]
        {
            let mut o: Options = serde_json::from_value(serde_json::json!({
                "database": "sqlite::memory:", "secret": "s".repeat(32),
            }))
            .unwrap();
            o.cors_origins = vec![bad.to_owned()];
            let err = Config::from_options(o).unwrap_err().to_string();
            assert!(err.contains("cors_origins"), "{bad}: {err}");
        }
    }
}
