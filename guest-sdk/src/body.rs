//! Typed request bodies ([`ParsedBody`]) and the deserialization of query strings, forms,
//! route parameters and JSON into serde types, with 400 messages that name the field.

use std::borrow::Cow;

use serde::de::DeserializeOwned;

use crate::error::HttpError;
use crate::media_type::{self, Parameterized};
use crate::multipart::Multipart;

/// A request body converted by its `Content-Type`, from
/// [`Request::parse_body`](crate::Request::parse_body).
///
/// | `Content-Type` | variant |
/// |---|---|
/// | (no body at all) | [`ParsedBody::Empty`] |
/// | `application/json`, `application/*+json` | [`ParsedBody::Json`] |
/// | `application/x-www-form-urlencoded` | [`ParsedBody::Form`] |
/// | `text/plain` (charset `utf-8` — the default —, `us-ascii` or `iso-8859-1`) | [`ParsedBody::Text`] |
/// | `multipart/form-data` | [`ParsedBody::Multipart`] |
/// | anything else, or none | [`ParsedBody::Bytes`] |
///
/// A body that does not parse as its declared type is a `400 Bad Request` saying why
/// (a `text/plain` body in another charset is a `415 Unsupported Media Type`).
///
/// ```
/// use wasm_host_sdk::{ParsedBody, Request};
///
/// let req = Request::new("POST", "/")
///     .with_header("Content-Type", "application/x-www-form-urlencoded")
///     .with_body("name=Ada+Lovelace&lang=en");
/// let ParsedBody::Form(fields) = req.parse_body().unwrap() else { panic!() };
/// assert_eq!(fields[0], ("name".to_owned(), "Ada Lovelace".to_owned()));
///
/// let bad = Request::new("POST", "/").with_header("Content-Type", "application/json").with_body("{");
/// assert_eq!(bad.parse_body().unwrap_err().status, 400);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedBody<'a> {
    /// The request has no body (zero bytes).
    Empty,
    /// A JSON document.
    Json(serde_json::Value),
    /// Form fields as decoded `(name, value)` pairs, in order.
    Form(Vec<(String, String)>),
    /// Text, decoded from its charset.
    Text(Cow<'a, str>),
    /// Text fields and files.
    Multipart(Multipart),
    /// Any other body, as sent.
    Bytes(&'a [u8]),
}

/// The essence (`type/subtype`, lower case) of a `Content-Type` value.
pub(crate) fn essence(content_type: &str) -> String {
    Parameterized::parse(content_type).map_or_else(
        || content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase(),
        |media| media.value,
    )
}

/// Converts `body` by `content_type` (see [`ParsedBody`]).
pub(crate) fn parse<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<ParsedBody<'a>, HttpError> {
    if body.is_empty() {
        return Ok(ParsedBody::Empty);
    }
    let Some(content_type) = content_type else { return Ok(ParsedBody::Bytes(body)) };
    let essence = essence(content_type);
    Ok(match essence.as_str() {
        json if media_type::is_json(json) => ParsedBody::Json(json_from_slice(body)?),
        "application/x-www-form-urlencoded" => ParsedBody::Form(form_pairs(body)),
        "text/plain" => ParsedBody::Text(decode_text(content_type, body)?),
        "multipart/form-data" => ParsedBody::Multipart(Multipart::parse(content_type, body)?),
        _ => ParsedBody::Bytes(body),
    })
}

/// Decodes a `text/*` body from the charset its `Content-Type` names: `utf-8` (the default),
/// `us-ascii` or `iso-8859-1`; 400 for bytes invalid in that charset, 415 for another charset.
pub(crate) fn decode_text<'a>(content_type: &str, body: &'a [u8]) -> Result<Cow<'a, str>, HttpError> {
    let charset = Parameterized::parse(content_type)
        .and_then(|media| media.param("charset").map(str::to_ascii_lowercase))
        .unwrap_or_else(|| "utf-8".to_owned());
    match charset.as_str() {
        "utf-8" | "utf8" => Ok(Cow::Borrowed(std::str::from_utf8(body)?)),
        "us-ascii" | "ascii" => match body.iter().position(|b| !b.is_ascii()) {
            None => Ok(Cow::Borrowed(std::str::from_utf8(body)?)),
            Some(at) => {
                Err(HttpError::bad_request(format!("invalid US-ASCII: byte {} at offset {at}", body[at])))
            }
        },
        "iso-8859-1" | "latin1" | "l1" => Ok(Cow::Owned(body.iter().map(|&b| char::from(b)).collect())),
        other => Err(HttpError::new(
            415,
            format!("unsupported charset {other:?}: send text/plain as utf-8, us-ascii or iso-8859-1"),
        )),
    }
}

/// The decoded `(name, value)` pairs of an `application/x-www-form-urlencoded` text.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Names where a deserialization failed, for the error messages.
pub(crate) struct Nouns {
    /// The whole input: "query string".
    pub whole: &'static str,
    /// One field of it: "query parameter".
    pub field: &'static str,
}

/// A 400 naming the field a deserialization failed at (`invalid query parameter `page`:
/// invalid digit found in string`), or the whole input for errors such as a missing field
/// (`invalid query string: missing field `page``).
fn field_error<E: std::fmt::Display>(nouns: &Nouns, error: &serde_path_to_error::Error<E>) -> String {
    let path = error.path().to_string();
    if path == "." || path == "?" {
        format!("invalid {}: {}", nouns.whole, error.inner())
    } else {
        format!("invalid {} `{path}`: {}", nouns.field, error.inner())
    }
}

/// Deserializes `application/x-www-form-urlencoded` text into `T`.
pub(crate) fn from_urlencoded<T: DeserializeOwned>(encoded: &[u8], nouns: &Nouns) -> Result<T, HttpError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded));
    serde_path_to_error::deserialize(deserializer)
        .map_err(|error| HttpError::bad_request(field_error(nouns, &error)))
}

/// Deserializes decoded `(name, value)` pairs into `T`, parsing numbers and booleans from
/// their text like a query string.
pub(crate) fn from_pairs<'p, T: DeserializeOwned>(
    pairs: impl IntoIterator<Item = (&'p str, &'p str)>,
    nouns: &Nouns,
) -> Result<T, HttpError> {
    // serde_urlencoded's deserializer is the one that turns text into numbers, booleans and
    // options; it reads only encoded text, so encode the pairs (cheap: they are small).
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    from_urlencoded(encoded.as_bytes(), nouns)
}

/// Deserializes JSON into `T`; a 400 (answered as JSON) naming the field on failure.
pub(crate) fn json_from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    let nouns = Nouns { whole: "JSON", field: "JSON field" };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| HttpError::bad_request(field_error(&nouns, &error)).as_json())?;
    deserializer.end().map_err(|error| HttpError::bad_request(format!("invalid JSON: {error}")).as_json())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Page {
        page: u32,
        tag: Option<String>,
    }

    const QUERY: Nouns = Nouns { whole: "query string", field: "query parameter" };

    #[test]
    fn urlencoded_errors_name_the_field() {
        let page: Page = from_urlencoded(b"page=2&tag=a+b", &QUERY).unwrap();
        assert_eq!(page, Page { page: 2, tag: Some("a b".into()) });
        let error = from_urlencoded::<Page>(b"page=two", &QUERY).unwrap_err();
        assert_eq!(
            (error.status, error.message.as_str()),
            (400, "invalid query parameter `page`: invalid digit found in string")
        );
        let error = from_urlencoded::<Page>(b"tag=x", &QUERY).unwrap_err();
        assert_eq!(error.message, "invalid query string: missing field `page`");
    }

    #[test]
    fn pairs_parse_numbers() {
        let nouns = Nouns { whole: "route parameters", field: "route parameter" };
        let page: Page = from_pairs([("page", "7"), ("tag", "a&b=c")], &nouns).unwrap();
        assert_eq!(page, Page { page: 7, tag: Some("a&b=c".into()) });
    }

    #[test]
    fn json_errors_name_the_field_and_are_json() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only deserialized")]
        struct User {
            name: String,
            age: u8,
        }
        let error = json_from_slice::<User>(br#"{"name": "Ada", "age": 300}"#).unwrap_err();
        assert!(error.message.starts_with("invalid JSON field `age`: invalid value"), "{}", error.message);
        assert!(error.is_json());
        let error = json_from_slice::<User>(br#"{"name": "Ada", "age": 1} x"#).unwrap_err();
        assert!(error.message.contains("trailing characters"), "{}", error.message);
    }

    #[test]
    fn text_charsets() {
        assert_eq!(decode_text("text/plain", "é".as_bytes()).unwrap(), "é");
        assert_eq!(decode_text("text/plain; charset=ISO-8859-1", b"caf\xe9").unwrap(), "café");
        assert_eq!(decode_text("text/plain", b"\xff").unwrap_err().status, 400);
        assert_eq!(decode_text("text/plain; charset=us-ascii", b"\xe9").unwrap_err().status, 400);
        assert_eq!(decode_text("text/plain; charset=shift_jis", b"x").unwrap_err().status, 415);
    }

    #[test]
    fn parse_dispatches_on_content_type() {
        assert_eq!(parse(Some("application/json"), b""), Ok(ParsedBody::Empty));
        assert_eq!(parse(None, b"x"), Ok(ParsedBody::Bytes(b"x")));
        assert_eq!(parse(Some("image/png"), b"x"), Ok(ParsedBody::Bytes(b"x")));
        assert_eq!(
            parse(Some("Application/Problem+JSON"), b"[1]"),
            Ok(ParsedBody::Json(serde_json::json!([1])))
        );
        assert_eq!(parse(Some("text/plain; charset=utf-8"), b"hi"), Ok(ParsedBody::Text("hi".into())));
        assert_eq!(parse(Some("multipart/form-data; boundary=b"), b"junk").unwrap_err().status, 400);
    }
}
