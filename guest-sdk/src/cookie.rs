//! [`Cookie`]: a `Set-Cookie` header built step by step (RFC 6265), on the `cookie` crate.
//!
//! Names and values are percent-encoded when written and decoded when read
//! ([`Request::cookie`](crate::Request::cookie)), so any string round-trips and none can break
//! the header. `Path` and `Domain` are written as given; one containing a control character or
//! `;` makes [`Response::with_cookie`](crate::Response::with_cookie) answer 500 instead.

use std::fmt;
use std::time::Duration;

/// The `SameSite` attribute of a cookie: whether browsers send it on cross-site requests.
///
/// ```
/// # use wasm_host_sdk::{Cookie, SameSite};
/// assert_eq!(Cookie::new("a", "1").same_site(SameSite::Strict).to_string(), "a=1; SameSite=Strict");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Only on same-site requests.
    Strict,
    /// On same-site requests and top-level cross-site navigations (the browsers' default).
    Lax,
    /// On every request; browsers require `Secure`, which the SDK then adds.
    None,
}

/// A cookie to set with [`Response::with_cookie`](crate::Response::with_cookie).
///
/// ```
/// use std::time::Duration;
/// use wasm_host_sdk::{Cookie, Response, SameSite};
///
/// let response = Response::text("welcome").with_cookie(
///     Cookie::new("session", "abc123")
///         .http_only()
///         .secure()
///         .same_site(SameSite::Lax)
///         .max_age(Duration::from_secs(3600))
///         .path("/"),
/// );
/// assert_eq!(
///     response.header("set-cookie"),
///     Some("session=abc123; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600")
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    inner: cookie::Cookie<'static>,
}

impl Cookie {
    /// A session cookie (no `Max-Age`) called `name` with `value`, without attributes.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { inner: cookie::Cookie::new(name.into(), value.into()) }
    }

    /// A cookie that tells the browser to delete the cookie `name`: an empty value with
    /// `Max-Age=0`. Give it the same `path` and `domain` as the cookie it removes.
    ///
    /// ```
    /// # use wasm_host_sdk::{Cookie, Response};
    /// let logout = Response::redirect("/").with_cookie(Cookie::removal("session").path("/"));
    /// assert_eq!(logout.header("set-cookie"), Some("session=; Path=/; Max-Age=0"));
    /// ```
    pub fn removal(name: impl Into<String>) -> Self {
        Self::new(name, "").max_age(Duration::ZERO)
    }

    /// Adds `HttpOnly`: scripts in the page cannot read the cookie.
    pub fn http_only(mut self) -> Self {
        self.inner.set_http_only(true);
        self
    }

    /// Adds `Secure`: the cookie is only sent over HTTPS.
    pub fn secure(mut self) -> Self {
        self.inner.set_secure(true);
        self
    }

    /// Sets `SameSite`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.inner.set_same_site(match same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
        self
    }

    /// Sets `Max-Age` (whole seconds): the browser keeps the cookie this long.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        self.inner.set_max_age(cookie::time::Duration::seconds(seconds));
        self
    }

    /// Sets `Path`: the cookie is sent for this path and below.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.inner.set_path(path.into());
        self
    }

    /// Sets `Domain`: the cookie is also sent to subdomains of this domain.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.inner.set_domain(domain.into());
        self
    }

    /// The cookie's name, not encoded.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The cookie's value, not encoded.
    pub fn value(&self) -> &str {
        self.inner.value()
    }

    /// The `Set-Cookie` header value, or why it cannot be sent (an attribute holding a control
    /// character or `;`).
    pub(crate) fn header_value(&self) -> Result<String, String> {
        for (attribute, value) in [("path", self.inner.path()), ("domain", self.inner.domain())] {
            if let Some(value) = value
                && value.chars().any(|c| c.is_control() || c == ';')
            {
                return Err(format!(
                    "cannot set cookie `{}`: its {attribute} {value:?} contains a control character or `;`",
                    self.name()
                ));
            }
        }
        Ok(self.inner.encoded().to_string())
    }
}

/// The `Set-Cookie` header value (name and value percent-encoded).
impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.encoded().fmt(f)
    }
}

/// Every cookie of `Cookie` header values, decoded, as `(name, value)`. Malformed pieces are
/// skipped, as browsers do.
pub(crate) fn parse_cookie_header(value: &str) -> impl Iterator<Item = (String, String)> + '_ {
    cookie::Cookie::split_parse_encoded(value)
        .filter_map(Result::ok)
        .map(|cookie| (cookie.name().to_owned(), cookie.value_trimmed().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_and_decoded() {
        let cookie = Cookie::new("cart", "a; b=\r\nc");
        let header = cookie.header_value().unwrap();
        assert!(!header.contains(['\r', '\n', ' ']), "{header}");
        assert_eq!(header.matches(';').count(), 0, "{header}");
        let parsed: Vec<_> = parse_cookie_header(&header).collect();
        assert_eq!(parsed, [("cart".to_owned(), "a; b=\r\nc".to_owned())]);
    }

    #[test]
    fn same_site_none_implies_secure() {
        let header = Cookie::new("a", "1").same_site(SameSite::None).header_value().unwrap();
        assert_eq!(header, "a=1; SameSite=None; Secure");
    }

    #[test]
    fn attributes_with_control_characters_are_refused() {
        let error = Cookie::new("a", "1").path("/\r\nX-Evil: 1").header_value().unwrap_err();
        assert!(error.contains("cookie `a`") && error.contains("path"), "{error}");
        assert!(Cookie::new("a", "1").domain("x;y").header_value().is_err());
    }

    #[test]
    fn request_cookies_parse_with_quotes_and_junk() {
        let parsed: Vec<_> = parse_cookie_header("a=1; b=\"two\";junk; c=%41").collect();
        let names: Vec<_> = parsed.iter().map(|(name, value)| format!("{name}={value}")).collect();
        assert_eq!(names, ["a=1", "b=two", "c=A"]);
    }
}
