use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn empty(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("response bodies serialize");
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
}
