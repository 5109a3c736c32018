/// Data a transport attaches to a request for its own callbacks (the Python
/// bindings keep the asyncio event loop of the request there).
pub type Extension = Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>;

/// A request as the core sees it: the path is already relative to the base path.
#[derive(Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path relative to the auth base path, e.g. `/sign-up/email`.
    pub path: String,
    /// Raw query string without the `?`.
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Address of the TCP peer, when the transport knows it.
    pub peer_ip: Option<String>,
    /// `HTTP/1.0`, `HTTP/1.1`, ... as the transport received it; empty when unknown.
    pub http_version: &'static str,
    /// The transport's own data for callbacks (see [`Extension`]).
    pub extension: Extension,
}

impl std::fmt::Debug for Request {
    // Headers carry cookies and the body carries passwords: neither is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request { method: method.to_ascii_uppercase(), path: path.to_owned(), ..Default::default() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn with_json(mut self, body: &serde_json::Value) -> Self {
        self.body = serde_json::to_vec(body).expect("JSON values serialize");
        self.with_header("content-type", "application/json")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`, looking through every `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every cookie of every `Cookie` header, as `(name, value)`.
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(k, v)| (k, v.trim()))
    }

    pub fn has_cookies(&self) -> bool {
        self.headers.iter().any(|(k, v)| k == "cookie" && !v.trim().is_empty())
    }

    /// First value of a query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}
