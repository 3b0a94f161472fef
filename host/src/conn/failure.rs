//! Every way an exchange can end without the handler's own response, and the one mapping from
//! such a failure to what the client is sent ([`Failure::answer`]). Custom error pages plug in
//! here; so do the rules that hold for every host answer (no body for HEAD, `connection:
//! close` when the request asked for it), which `Conn::fail` applies.

use std::borrow::Cow;

use tracing::{debug, info, warn};

use crate::http::{BodyError, RequestError, ResponseError, SseError};
use crate::metrics::{FailureReason, Metrics};
use crate::runtime::GuestError;

/// Why an exchange ended without (or in the middle of) the handler's response.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// The codec refused the request head or body.
    #[error(transparent)]
    Malformed(#[from] RequestError),
    /// The request head did not arrive within `--header-timeout`.
    #[error("request head not received in time")]
    HeadTimeout,
    /// The request body stalled for `--body-timeout`.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The client closed or reset the connection.
    #[error("client went away")]
    ClientGone,
    /// The client took the response too slowly (`--send-timeout`, `--min-rate`): the
    /// connection is closed.
    #[error("client read the response too slowly (--send-timeout, --min-rate); connection closed")]
    SendTimeout,
    /// The path cannot be routed safely (`.`/`..` segments, bad percent-encoding).
    #[error("bad request path")]
    BadPath,
    /// No route matches the path.
    #[error("not found")]
    NotFound,
    /// The route has no handler for the method; the `Allow` value.
    #[error("method not allowed")]
    MethodNotAllowed(Box<str>),
    /// The route's handler file failed to load (the log said why when it was loaded).
    #[error("handler unavailable: {0}")]
    Unavailable(std::sync::Arc<str>),
    /// The state store failed while a parked request waited on it (`subscription.park`).
    #[error("a parked request's wait on its topic failed: {0}")]
    StateUnavailable(crate::services::StateError),
    /// `wasm-host dev`: the route's handler does not build; cargo's output.
    #[error("handler build failed")]
    BuildFailed(std::sync::Arc<str>),
    /// The handler asked to drop the connection (`flow::close`).
    #[error("handler closed the connection")]
    HandlerClosed,
    /// A hook call or pull failed, or no instance could be had.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// The handler's response head cannot be written.
    #[error("handler returned an invalid response: {0}")]
    InvalidResponse(#[from] ResponseError),
    /// The handler produced an event that cannot be encoded.
    #[error("handler returned an invalid event: {0}")]
    InvalidEvent(#[from] SseError),
    /// A sized body ended short or ran long.
    #[error(transparent)]
    BodyLength(#[from] BodyError),
    /// A static file's `If-Match` / `If-Unmodified-Since` failed.
    #[error("precondition failed")]
    PreconditionFailed,
    /// No range of a static file's `Range` is satisfiable; the file's length.
    #[error("range not satisfiable")]
    RangeNotSatisfiable(u64),
    /// Reading a static file failed while its body was being sent.
    #[error("reading the file failed: {0}")]
    FileRead(std::io::Error),
}

/// A plain-text answer the host sends for a failure before any response head went out.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Answer {
    /// The status.
    pub status: u16,
    /// The body text (a newline is added).
    pub message: Cow<'static, str>,
    /// Extra head fields (`allow`, `retry-after`).
    pub extra: Option<(&'static str, Box<str>)>,
    /// A page sent instead of `message`: (content type, body).
    pub page: Option<(Cow<'static, str>, Vec<u8>)>,
    /// The connection cannot be reused after this, whatever the request asked: the framing
    /// of what follows is unknown or the client is misbehaving.
    pub close: bool,
}

impl Failure {
    /// What the client is sent for this failure if no response head went out yet; `None`:
    /// nothing, the connection is closed. After a response head, every failure closes the
    /// connection instead: there is never a second response.
    pub(super) fn answer(&self) -> Option<Answer> {
        let plain = |status, message: &'static str, close| Answer {
            status,
            message: Cow::Borrowed(message),
            extra: None,
            page: None,
            close,
        };
        Some(match self {
            Failure::Malformed(e) => Answer {
                status: e.status(),
                message: e.to_string().into(),
                extra: None,
                page: None,
                close: true,
            },
            Failure::HeadTimeout => plain(408, "request head not received in time", true),
            Failure::BodyTimeout => plain(408, "request body not received in time", true),
            Failure::BadPath => plain(400, "bad request path", true),
            Failure::NotFound => plain(404, "not found", false),
            Failure::MethodNotAllowed(allow) => {
                Answer { extra: Some(("allow", allow.clone())), ..plain(405, "method not allowed", false) }
            }
            Failure::Guest(GuestError::Busy | GuestError::RouteBusy(_) | GuestError::Instantiate(_)) => {
                Answer { extra: Some(("retry-after", "1".into())), ..plain(503, "server busy", false) }
            }
            Failure::Unavailable(_) => plain(503, "handler unavailable", false),
            Failure::StateUnavailable(_) => Answer {
                extra: Some(("retry-after", "1".into())),
                ..plain(503, "state store unavailable", false)
            },
            Failure::BuildFailed(_) => plain(500, "handler build failed", false),
            Failure::Guest(GuestError::CpuTimeout(_) | GuestError::Deadline) => {
                plain(504, "handler timed out", false)
            }
            Failure::Guest(
                GuestError::Trap(_)
                | GuestError::Contract(_)
                | GuestError::ErrorCode(_)
                | GuestError::Panic { .. }
                | GuestError::OutOfMemory { .. },
            )
            | Failure::InvalidResponse(_)
            | Failure::InvalidEvent(_)
            | Failure::BodyLength(_) => plain(500, "internal server error", false),
            Failure::PreconditionFailed => plain(412, "precondition failed", false),
            Failure::RangeNotSatisfiable(len) => Answer {
                extra: Some(("content-range", format!("bytes */{len}").into())),
                ..plain(416, "range not satisfiable", false)
            },
            Failure::FileRead(_) => plain(500, "internal server error", false),
            Failure::ClientGone | Failure::SendTimeout | Failure::HandlerClosed => return None,
        })
    }

    /// The failure a response write ended with: the client went away, or read too slowly.
    pub(super) fn of_write(e: &std::io::Error) -> Self {
        if super::io::is_send_timeout(e) { Failure::SendTimeout } else { Failure::ClientGone }
    }

    /// `wasm-host dev`'s page for a failure the developer should see in full: the compiler's
    /// message for a broken build, the panic (message, location) and the symbolised wasm
    /// backtrace for a trap. HTML for browsers, text otherwise; `None` for the rest.
    pub(super) fn dev_page(&self, html: bool) -> Option<(Cow<'static, str>, Vec<u8>)> {
        let (title, detail): (String, &str) = match self {
            Failure::BuildFailed(output) => ("The handler does not build".into(), output),
            Failure::Guest(GuestError::Panic { trap, .. } | GuestError::OutOfMemory { trap, .. }) => {
                (self.to_string(), trap)
            }
            Failure::Guest(GuestError::Trap(trap)) => ("The handler trapped".into(), trap),
            _ => return None,
        };
        Some(if html {
            let body = format!(
                "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>wasm-host dev: {t}</title></head>\n\
                 <body style=\"font-family: sans-serif\"><h1>{t}</h1>\n<pre style=\"background: #f4f4f4; padding: 1em\">{d}</pre>\n\
                 <p>wasm-host dev: this page is shown because the server runs in dev mode.</p></body></html>\n",
                t = escape_html(&title),
                d = escape_html(detail)
            );
            (Cow::Borrowed("text/html; charset=utf-8"), body.into_bytes())
        } else {
            (Cow::Borrowed("text/plain; charset=utf-8"), format!("{title}\n\n{detail}\n").into_bytes())
        })
    }

    /// Why the handler failed, if this is a handler's failure (not the client's, not a
    /// routing answer), for `wasm_host_handler_failures_total`.
    pub(super) fn reason(&self) -> Option<FailureReason> {
        Some(match self {
            Failure::Guest(e) => match e {
                GuestError::Trap(_) => FailureReason::Trap,
                GuestError::Panic { .. } => FailureReason::Panic,
                GuestError::OutOfMemory { .. } => FailureReason::OutOfMemory,
                GuestError::CpuTimeout(_) => FailureReason::CpuTimeout,
                GuestError::Deadline => FailureReason::Deadline,
                GuestError::Contract(_) | GuestError::ErrorCode(_) => FailureReason::BadResponse,
                GuestError::Busy | GuestError::RouteBusy(_) | GuestError::Instantiate(_) => {
                    FailureReason::Busy
                }
            },
            Failure::InvalidResponse(_) | Failure::InvalidEvent(_) | Failure::BodyLength(_) => {
                FailureReason::BadResponse
            }
            Failure::Unavailable(_) | Failure::BuildFailed(_) | Failure::StateUnavailable(_) => {
                FailureReason::Unavailable
            }
            _ => return None,
        })
    }

    /// Logs the failure (the handler's faults and broken streams as warnings with the route,
    /// the client's own doings as info) and counts a handler's failure in `metrics`.
    pub(super) fn log(&self, metrics: &Metrics, route: Option<&str>, head_sent: bool) {
        if let Some(reason) = self.reason() {
            metrics.handler_failed(reason);
        }
        let route = route.unwrap_or("-");
        // One line says what went wrong; wasmtime's account (the wasm backtrace) is for DEBUG.
        if let Failure::Guest(
            GuestError::Panic { trap, .. } | GuestError::OutOfMemory { trap, .. } | GuestError::Trap(trap),
        ) = self
        {
            debug!(route = ?route, request_id = %crate::log::CurrentRequest, "trap: {trap}");
        }
        match self {
            Failure::ClientGone if head_sent => {
                info!(route = ?route, request_id = %crate::log::CurrentRequest, "client went away during the response body")
            }
            Failure::SendTimeout => info!(route = ?route, request_id = %crate::log::CurrentRequest, "{self}"),
            Failure::Guest(GuestError::Busy | GuestError::RouteBusy(_)) => {
                warn!(route = ?route, request_id = %crate::log::CurrentRequest, "{self}")
            }
            Failure::Guest(_)
            | Failure::InvalidResponse(_)
            | Failure::InvalidEvent(_)
            | Failure::BodyLength(_)
            | Failure::FileRead(_)
                if head_sent =>
            {
                warn!(route = ?route, request_id = %crate::log::CurrentRequest, "response body aborted: {self}")
            }
            Failure::Guest(_)
            | Failure::InvalidResponse(_)
            | Failure::InvalidEvent(_)
            | Failure::BodyLength(_) => {
                warn!(route = ?route, request_id = %crate::log::CurrentRequest, "handler failed: {self}")
            }
            Failure::FileRead(_) | Failure::StateUnavailable(_) => {
                warn!(route = ?route, request_id = %crate::log::CurrentRequest, "{self}")
            }
            Failure::Malformed(_) | Failure::HeadTimeout | Failure::BodyTimeout if head_sent => {
                info!(route = ?route, request_id = %crate::log::CurrentRequest, "request body failed during a duplex exchange: {self}")
            }
            _ => {}
        }
    }
}

/// Escapes text for an HTML element's content.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(f: Failure) -> Option<u16> {
        f.answer().map(|a| a.status)
    }

    #[test]
    fn every_failure_maps_to_one_answer() {
        assert_eq!(status(Failure::Malformed(RequestError::UriTooLong)), Some(414));
        assert_eq!(status(Failure::Malformed(RequestError::PayloadTooLarge)), Some(413));
        assert_eq!(status(Failure::HeadTimeout), Some(408));
        assert_eq!(status(Failure::BodyTimeout), Some(408));
        assert_eq!(status(Failure::BadPath), Some(400));
        assert_eq!(status(Failure::NotFound), Some(404));
        assert_eq!(status(Failure::MethodNotAllowed("GET".into())), Some(405));
        assert_eq!(status(Failure::Guest(GuestError::Busy)), Some(503));
        assert_eq!(status(Failure::Guest(GuestError::RouteBusy(500))), Some(503));
        assert_eq!(status(Failure::Guest(GuestError::Instantiate("oom".into()))), Some(503));
        assert_eq!(status(Failure::Guest(GuestError::Deadline)), Some(504));
        assert_eq!(status(Failure::Guest(GuestError::CpuTimeout(Duration::from_secs(1)))), Some(504));
        assert_eq!(status(Failure::Guest(GuestError::Trap("x".into()))), Some(500));
        assert_eq!(status(Failure::InvalidResponse(ResponseError::InvalidStatus(42))), Some(500));
        assert_eq!(status(Failure::Unavailable("broken".into())), Some(503));
        let state = crate::services::StateError::Unavailable("redis down".into());
        assert_eq!(status(Failure::StateUnavailable(state)), Some(503));
        assert_eq!(status(Failure::PreconditionFailed), Some(412));
        assert_eq!(status(Failure::RangeNotSatisfiable(10)), Some(416));
        assert_eq!(status(Failure::FileRead(std::io::ErrorKind::Other.into())), Some(500));
        assert_eq!(status(Failure::ClientGone), None);
        assert_eq!(status(Failure::HandlerClosed), None);
    }

    #[test]
    fn codec_errors_and_timeouts_close_but_routing_answers_keep_the_connection() {
        for f in [
            Failure::Malformed(RequestError::BadRequest("x")),
            Failure::HeadTimeout,
            Failure::BodyTimeout,
            Failure::BadPath,
        ] {
            assert!(f.answer().unwrap().close, "{f:?}");
        }
        for f in
            [Failure::NotFound, Failure::MethodNotAllowed("GET".into()), Failure::Guest(GuestError::Busy)]
        {
            assert!(!f.answer().unwrap().close, "{f:?}");
        }
    }

    #[test]
    fn dev_pages_show_build_errors_and_traps_escaped() {
        let f = Failure::BuildFailed("error[E0308]: expected `<u8>`".into());
        let text = |(ty, page): (Cow<'static, str>, Vec<u8>)| (ty, String::from_utf8(page).unwrap());
        let (ty, page) = text(f.dev_page(true).unwrap());
        assert!(ty.starts_with("text/html") && page.contains("expected `&lt;u8&gt;`"), "{page}");
        let (ty, page) = text(f.dev_page(false).unwrap());
        assert!(ty.starts_with("text/plain") && page.contains("expected `<u8>`"), "{page}");
        let f = Failure::Guest(GuestError::Panic {
            location: "src/lib.rs:3:5".into(),
            message: "boom".into(),
            trap: "0: f".into(),
        });
        let (_, page) = text(f.dev_page(false).unwrap());
        assert!(page.contains("src/lib.rs:3:5") && page.contains("boom") && page.contains("0: f"), "{page}");
        assert!(Failure::NotFound.dev_page(true).is_none());
    }

    #[test]
    fn allow_and_retry_after_ride_along() {
        let a = Failure::MethodNotAllowed("GET, HEAD".into()).answer().unwrap();
        assert_eq!(a.extra, Some(("allow", "GET, HEAD".into())));
        let a = Failure::Guest(GuestError::Busy).answer().unwrap();
        assert_eq!(a.extra, Some(("retry-after", "1".into())));
        let a = Failure::RangeNotSatisfiable(1234).answer().unwrap();
        assert_eq!(a.extra, Some(("content-range", "bytes */1234".into())));
    }
}
