//! The VSHS messages demo: a chat page whose event stream is woken by each posted message.
//!
//! - `GET /chat`: an HTML page with a form and an `EventSource` on `/chat/events`;
//! - `GET /chat/events`: Server-Sent Events, one per message (id = message id, data = text),
//!   starting with the retained history, or after `Last-Event-ID` when the browser reconnects;
//! - `POST /chat` with a form field `message` (`application/x-www-form-urlencoded`, as the
//!   form sends it): publishes it; answers 303 to `/chat` (204 for `fetch` with
//!   `X-Requested-With`).

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::topic;

/// The topic the chat lives on.
const TOPIC: &str = "chat";

/// The longest message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 2_000;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wasm-host chat</title>
<style>
  body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
  #messages { list-style: none; padding: 0; }
  #messages li { padding: .2em 0; border-bottom: 1px solid #eee; }
</style>
</head>
<body>
<h1>Chat</h1>
<form id="form" method="post" action="/chat">
  <input id="message" name="message" autocomplete="off" placeholder="Say something" required>
  <button type="submit">Send</button>
</form>
<ul id="messages"></ul>
<script>
  const list = document.getElementById("messages");
  const events = new EventSource("/chat/events");
  events.onmessage = (e) => {
    const item = document.createElement("li");
    item.textContent = e.data;
    item.dataset.id = e.lastEventId;
    list.appendChild(item);
  };
  document.getElementById("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("message");
    const body = new URLSearchParams({ message: input.value });
    input.value = "";
    await fetch("/chat", { method: "POST", body, headers: { "X-Requested-With": "fetch" } });
  });
</script>
</body>
</html>
"#;

fn handle(req: Request) -> Result<Response, HttpError> {
    match (req.method(), req.path()) {
        ("POST", _) => post(&req),
        (_, "/chat/events") => {
            // History first (everything retained), or what a reconnecting browser missed.
            let after = topic::last_event_id(&req)?.or(Some(0));
            Ok(Response::events(topic::subscribe(TOPIC, after)?))
        }
        _ => Ok(Response::html(PAGE)),
    }
}

fn post(req: &Request) -> Result<Response, HttpError> {
    let form = req.text()?;
    let message = form_field(form, "message").unwrap_or_default();
    let message = message.trim();
    if message.is_empty() {
        return Err(HttpError::bad_request("the form field `message` is empty or missing"));
    }
    let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    // One line per event: newlines would become separate `data:` lines.
    let message = message.replace(['\r', '\n'], " ");
    topic::publish_bytes(TOPIC, message.as_bytes())?;
    if req.header("x-requested-with").is_some() {
        Ok(Response::new(204))
    } else {
        Ok(Response::new(303).with_header("location", "/chat"))
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

/// Percent-decoding with `+` as space; malformed escapes are kept as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

export!(handle);
