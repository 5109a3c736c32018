//! URLs as browsers read them (the WHATWG rules, through the `url` crate): what the
//! configuration and the origin checks both need, below both of them.

use url::Url;

/// Whether a parsed URL is an http(s) one.
pub fn is_web(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// `scheme://host[:port]` of an absolute http(s) URL, as a browser serializes its
/// origin; `None` for anything else.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    is_web(&parsed).then(|| parsed.origin().ascii_serialization())
}
