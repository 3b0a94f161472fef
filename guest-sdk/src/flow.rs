//! [`Flow`]: what the host does after the `before` and `stream` hooks, and [`IntoFlow`].

use crate::response::{IntoResponse, Response};

/// What the host does after a `before` or `stream` hook returns.
///
/// Hooks usually return something that converts into a flow (see [`IntoFlow`]): `()` to go
/// on, `Result<(), HttpError>` to go on or refuse.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the request: read the body, then call `after`.
    Proceed,
    /// Answer with this response now. The remaining hooks are not called and the rest of the
    /// request body is discarded.
    Respond(Response),
    /// Drop the connection without sending anything.
    Close,
    /// Full duplex: send this response now and its body while the request body is still
    /// arriving. See [`Flow::begin`].
    Begin(Response),
}

impl Flow {
    /// Go on with the request.
    pub fn proceed() -> Self {
        Self::Proceed
    }

    /// Answer with `response` now, skipping the remaining hooks.
    pub fn respond(response: impl IntoResponse) -> Self {
        Self::Respond(response.into_response())
    }

    /// Drop the connection without sending any response.
    pub fn close() -> Self {
        Self::Close
    }

    /// Full duplex (an echo, a transform): send `response`'s status and headers now, then its
    /// body while the request body is still arriving. Only from `before`.
    ///
    /// The body is chunked, or has exactly the length given to [`Response::sized`]. It is made
    /// of `response`'s own body (complete or streamed), then of the chunks the `stream` hook
    /// passes to [`Request::send`](crate::Request::send): the host alternates between giving
    /// `stream` a chunk of the request body and sending what it queued. Once the request body
    /// is complete, `stream` is called one last time with an empty chunk (to flush whatever it
    /// kept back) and the response ends when everything queued has been sent. `after` is not
    /// called; `stream` may only proceed. The connection closes after the exchange.
    ///
    /// ```no_run
    /// use wasm_host_sdk::prelude::*;
    ///
    /// fn start(_req: &Request) -> Flow {
    ///     Flow::begin(Response::text("echo:\n"))
    /// }
    ///
    /// fn shout(req: &mut Request, chunk: &[u8]) {
    ///     req.send(chunk.to_ascii_uppercase());
    /// }
    ///
    /// export!(before = start, stream = shout, after = |_req| ());
    /// ```
    ///
    /// # Panics
    ///
    /// When the host takes the flow, if `response` is an events stream ([`Response::events`]).
    pub fn begin(response: impl IntoResponse) -> Self {
        Self::Begin(response.into_response())
    }
}

/// What a `before` or `stream` hook may return.
///
/// | returned value | flow |
/// |----------------|------|
/// | [`Flow`] | itself |
/// | `()` | proceed |
/// | `Option<R: IntoResponse>` | `None` proceeds, `Some(r)` answers with `r` |
/// | `Result<T: IntoFlow, E: IntoResponse>` | `Ok(t)` is `t`'s flow, `Err(e)` answers with `e` |
///
/// ```
/// use wasm_host_sdk::prelude::*;
///
/// fn auth(req: &Request) -> Result<(), HttpError> {
///     if req.header("authorization") != Some("Bearer letmein") {
///         return Err(HttpError::unauthorized("Unauthorized"));
///     }
///     Ok(())
/// }
///
/// assert!(matches!(auth(&Request::new("GET", "/")).into_flow(), Flow::Respond(_)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a `before` or `stream` hook",
    label = "this does not implement `IntoFlow`",
    note = "return `()`, a `Flow`, `Result<(), E: IntoResponse>` or `Option<R: IntoResponse>`"
)]
pub trait IntoFlow {
    /// Converts the value into a flow.
    fn into_flow(self) -> Flow;
}

impl IntoFlow for Flow {
    fn into_flow(self) -> Flow {
        self
    }
}

/// Proceed.
impl IntoFlow for () {
    fn into_flow(self) -> Flow {
        Flow::Proceed
    }
}

/// `None` proceeds, `Some(response)` answers now.
impl<R: IntoResponse> IntoFlow for Option<R> {
    fn into_flow(self) -> Flow {
        match self {
            None => Flow::Proceed,
            Some(response) => Flow::respond(response),
        }
    }
}

/// `Ok` gives its flow, `Err(response)` answers now.
impl<T: IntoFlow, E: IntoResponse> IntoFlow for Result<T, E> {
    fn into_flow(self) -> Flow {
        match self {
            Ok(flow) => flow.into_flow(),
            Err(response) => Flow::respond(response),
        }
    }
}
