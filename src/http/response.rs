use serde::Serialize;

use crate::error::{AuthError, RETRY_AFTER_S};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An error as HTTP: `{code, message}` and its status (an empty body for unknown routes
    /// and [`AuthError::Empty`]).
    pub fn error(e: &AuthError) -> Response {
        e.log_if_internal();
        let status = e.status();
        if matches!(e, AuthError::NotFound | AuthError::Empty(_)) {
            return Response::empty(status);
        }
        let mut body = serde_json::Map::new();
        if let Some(code) = e.code() {
            body.insert("code".into(), code.into());
        }
        body.insert("message".into(), e.message().into());
        let mut resp = Response::json(status, &serde_json::Value::Object(body));
        match e {
            AuthError::TooManyRequests { retry_after } => {
                // Better Auth's header, and the standard one (what Kernia and HTTP clients read).
                resp.headers.push(("x-retry-after".into(), retry_after.to_string()));
                resp.headers.push(("retry-after".into(), retry_after.to_string()));
            }
            AuthError::DatabaseUnavailable(_)
            | AuthError::SecondaryStorageUnavailable(_)
            | AuthError::TooManyConnections => {
                resp.headers.push(("retry-after".into(), RETRY_AFTER_S.to_string()));
            }
            AuthError::RequestTimeout => resp.headers.push(("connection".into(), "close".into())),
            _ => {}
        }
        resp
    }

    pub fn empty(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        Response::json_text(status, serde_json::to_vec(value).expect("response bodies serialize"))
    }

    /// A JSON answer already written.
    pub fn json_text(status: u16, body: Vec<u8>) -> Self {
        Response { status, headers: vec![("content-type".into(), "application/json".into())], body }
    }

    /// A 302 to `location` with an empty body.
    pub fn redirect(location: &str) -> Self {
        Response { status: 302, headers: vec![("location".into(), location.to_owned())], body: Vec::new() }
    }

    /// A 302 to `url` with `error=<code>` added to its query.
    pub fn redirect_with_error(url: &str, code: &str) -> Self {
        let (base, fragment) = url.split_once('#').map_or((url, None), |(b, f)| (b, Some(f)));
        let sep = if base.contains('?') { '&' } else { '?' };
        let code: String = form_urlencoded::byte_serialize(code.as_bytes()).collect();
        let mut location = format!("{base}{sep}error={code}");
        if let Some(f) = fragment {
            location.push('#');
            location.push_str(f);
        }
        Response::redirect(&location)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_redirects_keep_the_query_and_fragment() {
        let at = |r: Response| r.header("location").unwrap().to_owned();
        assert_eq!(at(Response::redirect_with_error("http://a/x", "INVALID_TOKEN")), "http://a/x?error=INVALID_TOKEN");
        assert_eq!(at(Response::redirect_with_error("http://a/x?y=1#f", "E")), "http://a/x?y=1&error=E#f");
    }

    #[test]
    fn errors_render_as_code_and_message() {
        let r = Response::error(&AuthError::UserAlreadyExists);
        assert_eq!(r.status, 422);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL");
        assert_eq!(v["message"], "User already exists. Use another email.");
    }

    #[test]
    fn not_found_has_an_empty_body() {
        let r = Response::error(&AuthError::NotFound);
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    #[test]
    fn rate_limit_has_only_a_message_and_a_retry_header() {
        let r = Response::error(&AuthError::TooManyRequests { retry_after: 7 });
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v.get("code").is_none());
        assert!(r.headers.iter().any(|(k, v)| k == "x-retry-after" && v == "7"));
        assert_eq!(r.header("retry-after"), Some("7"));
    }

    #[test]
    fn an_unavailable_database_is_a_503_to_retry_without_details() {
        let r = Response::error(&AuthError::DatabaseUnavailable("connection refused at 10.0.0.5".into()));
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("2"));
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("DATABASE_UNAVAILABLE") && !body.contains("10.0.0.5"));
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let r = Response::error(&AuthError::internal("disk on fire at /var/secret"));
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }
}
