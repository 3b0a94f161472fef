//! `POST` a `multipart/form-data` body of any size: the `stream` hook feeds each chunk to the
//! SDK's incremental parser (`req.multipart_events`), hashes the content of file parts as it
//! arrives and keeps text fields (at most 64 KiB each). Nothing else is kept, so an upload far
//! larger than the handler's memory limit works. Answers
//! `{"fields": {name: value}, "files": [{"name", "filename", "bytes", "sha256"}]}`; a malformed
//! body is the SDK's 400.

use sha2::{Digest, Sha256};
use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::{Map, Value, json};

/// The longest text field kept.
const MAX_FIELD: usize = 64 * 1024;

/// The part being received.
enum Current {
    Field { name: String, value: Vec<u8> },
    File { head: PartHead, hasher: Sha256, bytes: u64 },
}

#[derive(Default)]
struct Upload {
    current: Option<Current>,
    fields: Map<String, Value>,
    files: Vec<Value>,
}

fn on_chunk(req: &mut Request, chunk: &[u8]) -> Result<(), HttpError> {
    for event in req.multipart_events(chunk)? {
        let upload = req.state_mut::<Upload>();
        match (event, upload.current.as_mut()) {
            (PartEvent::Head(head), _) if head.is_file() => {
                upload.current = Some(Current::File { head, hasher: Sha256::new(), bytes: 0 });
            }
            (PartEvent::Head(head), _) => {
                upload.current = Some(Current::Field { name: head.name().to_owned(), value: Vec::new() });
            }
            (PartEvent::Data(data), Some(Current::File { hasher, bytes, .. })) => {
                hasher.update(&data);
                *bytes += data.len() as u64;
            }
            (PartEvent::Data(data), Some(Current::Field { name, value })) => {
                if value.len() + data.len() > MAX_FIELD {
                    return Err(HttpError::new(
                        413,
                        format!("field `{name}` is longer than {MAX_FIELD} bytes"),
                    ));
                }
                value.extend_from_slice(&data);
            }
            (PartEvent::End, _) => match upload.current.take() {
                Some(Current::File { head, hasher, bytes }) => {
                    let sha256: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
                    upload.files.push(json!({
                        "name": head.name(),
                        "filename": head.filename(),
                        "bytes": bytes,
                        "sha256": sha256,
                    }));
                }
                Some(Current::Field { name, value }) => {
                    let value = String::from_utf8(value)?;
                    upload.fields.insert(name, Value::from(value));
                }
                None => unreachable!("the parser ends only parts it began"),
            },
            (PartEvent::Data(_), None) => unreachable!("the parser sends data only inside a part"),
        }
    }
    Ok(())
}

fn answer(mut req: Request) -> Result<Json<Value>, HttpError> {
    req.multipart_finish()?;
    let upload = req.take_state::<Upload>().unwrap_or_default();
    Ok(Json(json!({ "fields": upload.fields, "files": upload.files })))
}

export!(stream = on_chunk, after = answer);
