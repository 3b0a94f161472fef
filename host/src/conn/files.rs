//! Static files on a connection: a GET or HEAD that no route answers, with `--static`. The
//! decisions (which file, preconditions, ranges, coding) are `site::static_files`'; this file
//! runs the resolution on a blocking thread, writes the head it planned and pumps the file
//! through the same [`pump`] and [`BodyEncoder`] as any streamed body. 404, 412 and 416 go
//! through `Conn::fail` like every other failure.

use std::borrow::Cow;
use std::hash::{BuildHasher as _, Hasher as _};

use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{BodySource, pump};
use super::exchange::RequestBody;
use super::failure::{Answer, Failure};
use super::{Conn, Next, Outcome};
use crate::http::{BodyEncoder, BodyKind, RequestHead, encode_head, plan_response};
use crate::static_files::{Conditions, PlanError, Resolution, accepted_encodings, plan};

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Whether this request is one for the static files: GET or HEAD, with `--static`.
    pub(super) fn serves_static(&self, head: &RequestHead) -> bool {
        self.app.static_dir.is_some() && matches!(head.method.as_str(), "GET" | "HEAD")
    }

    /// Answers a GET or HEAD from the static directory.
    pub(super) async fn serve_static(&mut self, head: &RequestHead, body: &mut RequestBody) -> Outcome {
        let Some(dir) = self.app.static_dir.clone() else {
            return self.fail(head, body, Failure::NotFound, None).await;
        };
        let accepted = accepted_encodings(joined(head, "accept-encoding").as_deref());
        let path = head.path.clone();
        let resolved = tokio::task::spawn_blocking(move || dir.resolve(&path, &accepted)).await;
        let file = match resolved {
            Ok(Resolution::File(file)) => file,
            Ok(Resolution::NotFound(refusal)) => {
                tracing::debug!(path = %head.path, "static file not served: {refusal}");
                return self.fail(head, body, Failure::NotFound, None).await;
            }
            Ok(Resolution::AddSlash) => return self.redirect_to_slash(head, body).await,
            Err(e) => return self.fail(head, body, Failure::FileRead(std::io::Error::other(e)), None).await,
        };
        let conditions = Conditions {
            if_match: joined(head, "if-match"),
            if_none_match: joined(head, "if-none-match"),
            if_modified_since: joined(head, "if-modified-since"),
            if_unmodified_since: joined(head, "if-unmodified-since"),
            range: joined(head, "range"),
            if_range: joined(head, "if-range"),
        };
        let planned = match plan(&file.representation, &conditions, &boundary()) {
            Ok(planned) => planned,
            Err(PlanError::PreconditionFailed) => {
                return self.fail(head, body, Failure::PreconditionFailed, None).await;
            }
            Err(PlanError::RangeNotSatisfiable(len)) => {
                return self.fail(head, body, Failure::RangeNotSatisfiable(len), None).await;
            }
        };
        let keep_alive = head.keep_alive && !self.app.shutdown.is_given() && self.settle_body(body).await;
        let length = planned.body_len();
        let plan = plan_response(
            head.method == "HEAD",
            head.version,
            planned.status,
            BodyKind::Sized(length),
            keep_alive,
        );
        self.io.out.clear();
        let headers = planned.headers.iter().map(|(n, v)| (*n, v.as_bytes()));
        if let Err(e) = encode_head(
            &mut self.io.out,
            head.version,
            planned.status,
            headers,
            plan.framing,
            plan.keep_alive,
        ) {
            return self.fail(head, body, e.into(), None).await;
        }
        let status = Some(planned.status);
        let next = if plan.keep_alive { Next::KeepAlive } else { Next::Close };
        if self.io.write_out_with(&[]).await.is_err() {
            return Outcome { status, bytes: 0, next: Next::Close, aborted: true };
        }
        let mut wire = self.io.out.len() as u64;
        if !plan.send_body {
            return Outcome { status, bytes: wire, next, aborted: false };
        }
        let mut source = BodySource::file(file.file, planned.parts);
        let mut encoder = BodyEncoder::new(plan.framing);
        let times = self.pump_times();
        match pump(&mut self.io, &mut source, &mut encoder, times, &mut wire, &self.app.runtime).await {
            Ok(()) => Outcome { status, bytes: wire, next, aborted: false },
            Err(failure) => {
                failure.log(&self.app.metrics, Some("static"), true);
                Outcome { status, bytes: wire, next: Next::Close, aborted: true }
            }
        }
    }

    /// 301 from a directory path without its trailing slash to the path with one (the query
    /// kept), so relative links in its `index.html` resolve inside it.
    async fn redirect_to_slash(&mut self, head: &RequestHead, body: &mut RequestBody) -> Outcome {
        let mut location = format!("{}/", head.path);
        if !head.query.is_empty() {
            location.push('?');
            location.push_str(&head.query);
        }
        let answer = Answer {
            status: 301,
            message: Cow::Borrowed("moved permanently"),
            extra: Some(("location", location.into())),
            page: None,
            close: false,
        };
        let close = !head.keep_alive || self.app.shutdown.is_given() || !self.settle_body(body).await;
        self.send_answer(&answer, close, head.method == "HEAD").await
    }
}

/// Every value of the header fields named `name`, joined with `, ` (RFC 9110 §5.3); `None`
/// when there are none or one is not UTF-8.
fn joined(head: &RequestHead, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for value in head.header_all(name) {
        let value = std::str::from_utf8(value).ok()?;
        match &mut out {
            None => out = Some(value.to_owned()),
            Some(all) => {
                all.push_str(", ");
                all.push_str(value);
            }
        }
    }
    out
}

/// A fresh `multipart/byteranges` boundary: 128 random bits (std's per-process random hash
/// keys), so it cannot be predicted to collide with file content.
fn boundary() -> String {
    let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", random(), random())
}
