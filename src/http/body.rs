//! Request bodies (spec §1.2) and field validation with Better Auth's
//! `VALIDATION_ERROR` framing: `[body.<field>] <message>`, issues joined by `; `.

use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::http::request::Request;
pub use crate::model::is_valid_email;

pub struct Body {
    pub fields: Map<String, Value>,
    /// Form bodies carry only strings; boolean fields accept `"true"` / `"false"` there.
    form: bool,
}

fn media_type(req: &Request) -> Option<String> {
    req.header("content-type").map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

impl Body {
    /// Parses a JSON object (or, where `allow_form`, a urlencoded form). An empty body is `{}`.
    pub fn parse(req: &Request, allow_form: bool) -> Result<Body, AuthError> {
        if req.body.is_empty() {
            return Ok(Body { fields: Map::new(), form: false });
        }
        let allowed =
            if allow_form { "application/json, application/x-www-form-urlencoded" } else { "application/json" };
        match media_type(req).as_deref() {
            Some("application/json") => match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Object(fields)) => Ok(Body { fields, form: false }),
                Ok(other) => Err(AuthError::Validation(format!(
                    "[body] Invalid input: expected object, received {}",
                    type_name(Some(&other))
                ))),
                Err(_) => Err(AuthError::InvalidJson),
            },
            Some("application/x-www-form-urlencoded") if allow_form => {
                let fields = form_urlencoded::parse(&req.body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                Ok(Body { fields, form: true })
            }
            None | Some("") => {
                Err(AuthError::UnsupportedMediaType(format!("Content-Type is required. Allowed types: {allowed}")))
            }
            Some(other) => Err(AuthError::UnsupportedMediaType(format!(
                "Content-Type \"{other}\" is not allowed. Allowed types: {allowed}"
            ))),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn validator(&self) -> Validator<'_> {
        Validator { body: self, issues: Vec::new() }
    }

    /// The one required string field of a body like `{token}`; `VALIDATION_ERROR` otherwise.
    pub fn required_string(&self, key: &str) -> Result<String, AuthError> {
        let mut v = self.validator();
        let value = v.string(key);
        v.finish()?;
        Ok(value.unwrap_or_default())
    }
}

pub const NUL_MESSAGE: &str = "Invalid input: text must not contain NUL characters";

/// A query parameter as text (`None` when absent); a NUL character, which no
/// database stores as text, is a validation error.
pub fn query_text(req: &Request, key: &str) -> Result<Option<String>, AuthError> {
    match req.query_param(key) {
        Some(v) if v.contains('\0') => Err(AuthError::Validation(format!("[query.{key}] {NUL_MESSAGE}"))),
        v => Ok(v),
    }
}

/// Whether any string (or key) inside `v` holds a NUL character.
fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// Collects every issue of a body before failing, like Zod does.
pub struct Validator<'a> {
    body: &'a Body,
    issues: Vec<String>,
}

impl Validator<'_> {
    pub fn issue(&mut self, key: &str, msg: impl Into<String>) {
        self.issues.push(format!("[body.{key}] {}", msg.into()));
    }

    fn expected(&mut self, key: &str, want: &str) {
        let got = type_name(self.body.get(key));
        self.issue(key, format!("Invalid input: expected {want}, received {got}"));
    }

    /// `s`, unless it holds a NUL character, which no database stores as text.
    fn text(&mut self, key: &str, s: &str) -> Option<String> {
        if s.contains('\0') {
            self.issue(key, NUL_MESSAGE);
            return None;
        }
        Some(s.to_owned())
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.body.get(key) {
            Some(Value::String(s)) => self.text(key, s),
            _ => {
                self.expected(key, "string");
                None
            }
        }
    }

    pub fn optional_string(&mut self, key: &str) -> Option<String> {
        match self.body.get(key) {
            None => None,
            Some(Value::String(s)) => self.text(key, s),
            Some(_) => {
                self.expected(key, "string");
                None
            }
        }
    }

    pub fn email(&mut self, key: &str) -> Option<String> {
        let value = self.string(key)?;
        self.check_email(key, value)
    }

    pub fn optional_email(&mut self, key: &str) -> Option<String> {
        let value = self.optional_string(key)?;
        self.check_email(key, value)
    }

    fn check_email(&mut self, key: &str, value: String) -> Option<String> {
        if is_valid_email(&value) {
            Some(value)
        } else {
            self.issue(key, "Invalid email address");
            None
        }
    }

    pub fn object(&mut self, key: &str) -> Option<Value> {
        match self.body.get(key) {
            Some(v @ Value::Object(_)) if holds_nul(v) => {
                self.issue(key, NUL_MESSAGE);
                None
            }
            Some(v @ Value::Object(_)) => Some(v.clone()),
            _ => {
                self.expected(key, "object");
                None
            }
        }
    }

    pub fn optional_object(&mut self, key: &str) -> Option<Value> {
        match self.body.get(key) {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => {
                self.expected(key, "object");
                None
            }
        }
    }

    pub fn optional_bool(&mut self, key: &str) -> Option<bool> {
        match self.body.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if self.body.form && (s == "true" || s == "false") => Some(s == "true"),
            Some(_) => {
                self.expected(key, "boolean");
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), AuthError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Validation(self.issues.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com", "o'neil@x.io", "x_y-z@a-b.org"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in
            ["", "a", "a@b", "a@b.c", ".a@b.co", "a..b@c.co", "a.@b.co", "a@-b.co", "a b@c.co", "a@b.c0m", "a@@b.co"]
        {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    fn req(ct: Option<&str>, body: &str) -> Request {
        let mut r = Request::new("POST", "/x");
        if let Some(ct) = ct {
            r = r.with_header("content-type", ct);
        }
        r.body = body.as_bytes().to_vec();
        r
    }

    #[test]
    fn content_types() {
        assert_eq!(Body::parse(&req(Some("application/json"), "{oops"), false).err(), Some(AuthError::InvalidJson));
        assert_eq!(Body::parse(&req(Some("text/plain"), "{}"), false).err().map(|e| e.status()), Some(415));
        assert_eq!(Body::parse(&req(None, "{}"), false).err().map(|e| e.status()), Some(415));
        assert!(Body::parse(&req(None, ""), false).is_ok());
        assert!(Body::parse(&req(Some("application/json; charset=utf-8"), "{}"), false).is_ok());
        let form =
            Body::parse(&req(Some("application/x-www-form-urlencoded"), "email=a%40b.co&rememberMe=false"), true)
                .unwrap();
        let mut v = form.validator();
        assert_eq!(v.string("email").as_deref(), Some("a@b.co"));
        assert_eq!(v.optional_bool("rememberMe"), Some(false));
        assert!(Body::parse(&req(Some("application/x-www-form-urlencoded"), "a=b"), false).is_err());
    }

    #[test]
    fn nul_characters_are_refused_in_strings_and_objects() {
        let body = Body::parse(
            &req(Some("application/json"), r#"{"name":"a\u0000b","response":{"id":["x\u0000"]},"ok":"fine"}"#),
            false,
        )
        .unwrap();
        let mut v = body.validator();
        assert_eq!(v.string("name"), None);
        assert_eq!(v.object("response"), None);
        assert_eq!(v.string("ok").as_deref(), Some("fine"));
        assert_eq!(
            v.finish().unwrap_err().message(),
            format!("[body.name] {NUL_MESSAGE}; [body.response] {NUL_MESSAGE}")
        );
    }

    #[test]
    fn validation_messages_follow_zod() {
        let body = Body::parse(&req(Some("application/json"), r#"{"name":5,"email":"nope"}"#), false).unwrap();
        let mut v = body.validator();
        v.string("name");
        v.email("email");
        v.string("password");
        let err = v.finish().unwrap_err();
        assert_eq!(
            err.message(),
            "[body.name] Invalid input: expected string, received number; [body.email] Invalid email address; [body.password] Invalid input: expected string, received undefined"
        );
    }
}
