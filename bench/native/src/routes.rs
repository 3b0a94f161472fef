//! The benchmark routes, answering the same bytes and headers as wasm-host's handlers:
//!
//! - `GET /hello-world`: `Hello world!` as `text/plain; charset=utf-8` (the example
//!   `hello_world`);
//! - `GET /fill/{bytes}`: `bytes` bytes as `application/octet-stream` with `Content-Length`,
//!   one pre-filled 64 KiB chunk handed out again and again (the test guest `fill`); with
//!   `?chunked`, the same without a length (`Transfer-Encoding: chunked`);
//! - `POST /count`: reads the body and answers its length in bytes as text (the test guest
//!   `count`).
//!
//! Anything else is a 404, a known path with another method a 405.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::fill::ResponseBody;

/// The body of `GET /hello-world`.
const HELLO: &[u8] = b"Hello world!";
/// The content type of text answers, as the SDK sets it.
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
/// The content type of byte streams, as the SDK sets it.
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// Answers one request.
pub async fn answer(req: Request<Incoming>) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path();
    let response = match (req.method(), path) {
        (&Method::GET, "/hello-world") => text(Bytes::from_static(HELLO)),
        (&Method::POST, "/count") => count(req.into_body()).await,
        (&Method::GET, _) if path.starts_with("/fill/") => fill(&req),
        (_, "/hello-world" | "/count") => status(StatusCode::METHOD_NOT_ALLOWED),
        (_, _) if path.starts_with("/fill/") => status(StatusCode::METHOD_NOT_ALLOWED),
        _ => status(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

/// `GET /fill/{bytes}[?chunked]`; a size that is not a number is a 400.
fn fill(req: &Request<Incoming>) -> Response<ResponseBody> {
    let Ok(length) = req.uri().path()["/fill/".len()..].parse::<u64>() else {
        return status(StatusCode::BAD_REQUEST);
    };
    let chunked = req.uri().query().is_some_and(|query| query.split('&').any(|pair| pair == "chunked"));
    let mut response = Response::new(ResponseBody::fill(length, !chunked));
    response.headers_mut().insert(CONTENT_TYPE, OCTET_STREAM);
    if !chunked {
        response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

/// `POST /count`: the number of body bytes received, or a 400 if the body broke off.
async fn count(mut body: Incoming) -> Response<ResponseBody> {
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received += frame.data_ref().map_or(0, |data| data.len() as u64),
            Err(_) => return status(StatusCode::BAD_REQUEST),
        }
    }
    text(Bytes::from(received.to_string()))
}

/// `200 OK` with `body` as `text/plain; charset=utf-8`.
fn text(body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    response
}

/// An empty answer with this status.
fn status(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = status;
    response
}
