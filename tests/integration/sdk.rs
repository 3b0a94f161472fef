//! The SDK's request and response helpers through the real binary: typed extraction, JSON
//! errors, typed bodies, a streamed multipart upload, cookies, redirects; and `wasm-host new`
//! producing a crate that builds, passes its test and answers.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use test_artifacts as a;

use crate::support::*;

/// A server with every SDK test guest, as the module docs of each guest describe.
fn sdk_server(args: &[&str]) -> (Tree, Server) {
    let tree = Tree::new(&[
        ("items/{id}/ANY.wasm", a::SDK_EXTRACT),
        ("body/ANY.wasm", a::SDK_BODY),
        ("upload/POST.wasm", a::SDK_UPLOAD),
        ("web/ANY.wasm", a::SDK_WEB),
    ]);
    let server = Server::start(tree.path(), args);
    (tree, server)
}

/// Sends one request with these extra header lines and body; reads the response.
fn send(s: &Server, method: &str, target: &str, headers: &[&str], body: &[u8]) -> RawResponse {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    raw(s, &bytes).unwrap_or_else(|| panic!("no response to {method} {target}"))
}

fn json_of(r: &RawResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// Asserts `r` is the JSON error `{"error": ...}` with this status; returns the message.
fn json_error(r: &RawResponse, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    json_of(r)["error"].as_str().unwrap_or_else(|| panic!("no error message: {}", r.text())).to_owned()
}

/// Asserts `r` is a text error with this status; returns the message.
fn text_error(r: &RawResponse, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"), "{r:?}");
    r.text()
}

#[test]
fn json_body_needs_a_json_content_type() {
    let (_t, s) = sdk_server(&[]);
    let item = br#"{"name": "pen", "price": 3}"#;

    let r = send(&s, "POST", "/items/7", &["Content-Type: application/json"], item);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(json_of(&r), json!({ "id": 7, "item": { "name": "pen", "price": 3 } }));

    let message = json_error(&send(&s, "POST", "/items/7", &["Content-Type: text/plain"], item), 415);
    assert_eq!(
        message,
        "expected a JSON body (Content-Type: application/json), got Content-Type: text/plain"
    );
    let message = json_error(&send(&s, "POST", "/items/7", &[], item), 415);
    assert!(message.ends_with("got no Content-Type"), "{message}");

    // The opt-out reads the same body whatever its label.
    let r = send(&s, "POST", "/items/7?lenient", &["Content-Type: text/plain"], item);
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn errors_are_json_when_parsing_json_or_when_the_client_accepts_json() {
    let (_t, s) = sdk_server(&[]);

    // Raised while parsing JSON: JSON whatever the Accept header, naming the field.
    let r = send(
        &s,
        "POST",
        "/items/7",
        &["Content-Type: application/json"],
        br#"{"name": "pen", "price": "cheap"}"#,
    );
    let message = json_error(&r, 400);
    assert!(message.starts_with("invalid JSON field `price`: invalid type: string \"cheap\""), "{message}");
    let message =
        json_error(&send(&s, "POST", "/items/7", &["Content-Type: application/json"], b"{\"name\""), 400);
    assert!(message.contains("EOF"), "{message}");

    // A plain HttpError: JSON for a client that prefers JSON, text otherwise.
    let target = "/items/7?page=1&deny";
    let message = json_error(&send(&s, "GET", target, &["Accept: application/json"], b""), 403);
    assert_eq!(message, "item 7 is private");
    let r = send(&s, "GET", target, &["Accept: text/html,application/xhtml+xml,*/*;q=0.8"], b"");
    assert_eq!(text_error(&r, 403), "item 7 is private");
    assert_eq!(text_error(&send(&s, "GET", target, &["Accept: */*"], b""), 403), "item 7 is private");
    assert_eq!(text_error(&send(&s, "GET", target, &[], b""), 403), "item 7 is private");

    // The SDK's own 400s follow the same rule.
    let message = json_error(&send(&s, "GET", "/items/x?page=1", &["Accept: application/json"], b""), 400);
    assert!(message.contains("`id`"), "{message}");
}

#[test]
fn params_and_query_deserialize_with_400s_naming_the_field() {
    let (_t, s) = sdk_server(&[]);
    let r = send(&s, "GET", "/items/7?page=2&q=a+b%21", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r), json!({ "id": 7, "page": 2, "q": "a b!" }));
    assert_eq!(json_of(&send(&s, "GET", "/items/7?page=2", &[], b""))["q"], Value::Null);

    let cases = [
        ("/items/seven?page=1", "invalid route parameter `id`: invalid digit found in string"),
        ("/items/7?page=two", "invalid query parameter `page`: invalid digit found in string"),
        ("/items/7", "invalid query string: missing field `page`"),
        ("/items/99999999999?page=1", "invalid route parameter `id`: number too large to fit in target type"),
    ];
    for (target, expected) in cases {
        assert_eq!(text_error(&send(&s, "GET", target, &[], b""), 400), expected, "{target}");
    }
}

/// A multipart body with a text field and two files.
fn multipart_body(boundary: &str, big: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHoliday \u{1F3D6}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"beach.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(big);
    body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"empty\"; filename=\"e\"\r\n\r\n\r\n--{boundary}--\r\n").as_bytes());
    body
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn each_body_type_is_converted_by_its_content_type() {
    let (_t, s) = sdk_server(&[]);
    let body = |headers: &[&str], bytes: &[u8]| {
        let r = send(&s, "POST", "/body", headers, bytes);
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
        json_of(&r)
    };

    assert_eq!(body(&[], b""), json!({ "kind": "empty" }));
    assert_eq!(body(&["Content-Type: application/json"], b""), json!({ "kind": "empty" }));
    assert_eq!(
        body(&["Content-Type: application/json; charset=utf-8"], br#"{"a": [1, null]}"#),
        json!({ "kind": "json", "value": { "a": [1, null] } })
    );
    assert_eq!(
        body(&["Content-Type: application/x-www-form-urlencoded"], b"name=Ada+L&lang=en&name=%C3%A9"),
        json!({ "kind": "form", "fields": [["name", "Ada L"], ["lang", "en"], ["name", "é"]] })
    );
    assert_eq!(
        body(&["Content-Type: application/x-www-form-urlencoded"], b"user=ada&age=36"),
        json!({ "kind": "form", "fields": [["user", "ada"], ["age", "36"]] })
    );
    let r = send(
        &s,
        "POST",
        "/body?typed",
        &["Content-Type: application/x-www-form-urlencoded"],
        b"user=ada&age=36",
    );
    assert_eq!(json_of(&r), json!({ "kind": "typed-form", "value": { "user": "ada", "age": 36 } }));
    assert_eq!(
        body(&["Content-Type: text/plain"], "héllo".as_bytes()),
        json!({ "kind": "text", "text": "héllo" })
    );
    assert_eq!(
        body(&["Content-Type: text/plain; charset=iso-8859-1"], b"caf\xe9"),
        json!({ "kind": "text", "text": "café" })
    );
    let png = b"\x89PNG\r\n\x1a\n\0\0";
    assert_eq!(
        body(&["Content-Type: image/png"], png),
        json!({ "kind": "bytes", "len": png.len(), "sha256": sha256_hex(png) })
    );
    assert_eq!(body(&[], b"raw"), json!({ "kind": "bytes", "len": 3, "sha256": sha256_hex(b"raw") }));

    let photo: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let v = body(
        &["Content-Type: multipart/form-data; boundary=\"--b o u n d\""],
        &multipart_body("--b o u n d", &photo),
    );
    assert_eq!(v["kind"], "multipart");
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        (&parts[0]["name"], &parts[0]["text"], &parts[0]["filename"]),
        (&json!("title"), &json!("Holiday 🏖"), &Value::Null)
    );
    assert_eq!(parts[1]["filename"], "beach.bin");
    assert_eq!(parts[1]["content_type"], "application/octet-stream");
    assert_eq!(parts[1]["len"], photo.len());
    assert_eq!(parts[1]["sha256"], sha256_hex(&photo));
    assert_eq!((&parts[2]["len"], &parts[2]["text"]), (&json!(0), &Value::Null));

    // Multipart text fields feed `req.form::<T>()` too.
    let form = b"--B\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nada\r\n\
                 --B\r\nContent-Disposition: form-data; name=\"age\"\r\n\r\n36\r\n--B--\r\n";
    let r = send(&s, "POST", "/body?typed", &["Content-Type: multipart/form-data; boundary=B"], form);
    assert_eq!(json_of(&r)["value"], json!({ "user": "ada", "age": 36 }));
}

#[test]
fn malformed_bodies_are_400s_saying_why_never_a_panic() {
    let (_t, s) = sdk_server(&[]);
    let post = |target: &str, content_type: &str, bytes: &[u8]| {
        send(&s, "POST", target, &[&format!("Content-Type: {content_type}")], bytes)
    };

    let message = json_error(&post("/body", "application/json", b"{\"a\": tru}"), 400);
    assert!(message.starts_with("invalid JSON"), "{message}");
    let message = text_error(&post("/body", "text/plain", b"caf\xe9"), 400);
    assert!(message.starts_with("invalid UTF-8"), "{message}");
    let message = text_error(&post("/body", "text/plain; charset=shift_jis", b"x"), 415);
    assert!(message.contains("unsupported charset"), "{message}");
    let message =
        text_error(&post("/body?typed", "application/x-www-form-urlencoded", b"user=ada&age=300"), 400);
    assert_eq!(message, "invalid form field `age`: number too large to fit in target type");
    let message = text_error(&post("/body?typed", "application/json", b"{}"), 415);
    assert!(message.starts_with("expected a form body"), "{message}");

    let cases: [(&str, &[u8], &str); 5] = [
        ("multipart/form-data; boundary=B", b"--X\r\n\r\n--X--", "no boundary found"),
        (
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nunfinished",
            "inside a part",
        ),
        (
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--",
            "no Content-Disposition",
        ),
        ("multipart/form-data; boundary=B", b"--B\r\nnot a header\r\n\r\nx\r\n--B--", "part head is invalid"),
        ("multipart/form-data", b"--B--", "has no boundary"),
    ];
    for (content_type, bytes, why) in cases {
        for target in ["/body", "/upload"] {
            let r = post(target, content_type, bytes);
            let message = text_error(&r, 400);
            assert!(message.contains(why), "{target} {content_type} {bytes:?}: {message}");
        }
    }
    assert_eq!(
        text_error(&post("/upload", "application/json", b"{}"), 415).split(',').next(),
        Some("expected a multipart/form-data body")
    );
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

/// Reads a memory figure (`VmRSS`, `VmHWM`: KiB) of a process.
#[test]
fn multipart_upload_of_100_mib_streams_through_the_hook_in_bounded_memory() {
    const SIZE: usize = 100 << 20;
    // 16 MiB of handler memory: buffering the upload would trap long before its end.
    let (_t, s) = sdk_server(&["--max-body", "unlimited", "--max-memory", "16MiB"]);
    let boundary = "----upload-7d1f";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nbig one\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"big.bin\"\r\n\r\n"
    );
    let tail = format!(
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"note\"; filename=\"n.txt\"\r\n\r\nsmall\r\n--{boundary}--\r\n"
    );
    let length = head.len() + SIZE + tail.len();
    // Reset the server's peak-memory mark (Linux: "5" clears VmHWM), so what follows measures
    // the upload, not start-up's compilation.
    std::fs::write(format!("/proc/{}/clear_refs", s.pid()), "5").unwrap();
    let before = memory_kib(s.pid(), "VmRSS:");
    let c = s.connect();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(
            format!(
                "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
                 Content-Length: {length}\r\n\r\n{head}"
            )
            .as_bytes(),
        )
        .unwrap();
        // Odd-sized writes of a pattern holding CR, LF and `-`, so boundary candidates straddle
        // every chunk border.
        let mut hash = Sha256::new();
        let piece: Vec<u8> = (0..49_999u32).map(|i| b"\r\n--upload-7d1\0xyz"[(i % 17) as usize]).collect();
        let mut left = SIZE;
        while left > 0 {
            let n = left.min(piece.len());
            hash.update(&piece[..n]);
            w.write_all(&piece[..n]).unwrap();
            left -= n;
        }
        w.write_all(tail.as_bytes()).unwrap();
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    let r = read_response(&mut BufReader::new(c), false).expect("a response");
    let sent = writer.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json_of(&r);
    assert_eq!(v["fields"], json!({ "title": "big one" }));
    assert_eq!(
        v["files"],
        json!([
            { "name": "data", "filename": "big.bin", "bytes": SIZE, "sha256": sent },
            { "name": "note", "filename": "n.txt", "bytes": 5, "sha256": sha256_hex(b"small") },
        ])
    );
    // Nor did the host hold the body: its peak memory grew by less than half the upload
    // (the handler instance's own memory, at most 16 MiB, included).
    let grown = memory_kib(s.pid(), "VmHWM:").saturating_sub(before);
    assert!(grown < (SIZE as u64 / 1024) / 2, "host peak RSS grew by {grown} KiB during the upload");
}

/// Every `Set-Cookie` header of a response.
fn set_cookies(r: &RawResponse) -> Vec<&str> {
    r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn cookies_are_set_with_attributes_and_read_back() {
    let (_t, s) = sdk_server(&[]);
    let r = send(&s, "GET", "/web?set=a+b%3Bc%3D%0D%0A", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let cookies = set_cookies(&r);
    assert_eq!(
        cookies,
        ["session=a%20b%3Bc%3D%0D%0A; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600", "theme=dark"]
    );

    // What a browser sends back: name=value pairs.
    let jar = "Cookie: session=a%20b%3Bc%3D%0D%0A; theme=dark";
    let v = json_of(&send(&s, "GET", "/web", &[jar], b""));
    assert_eq!(v, json!({ "session": "a b;c=\r\n", "theme": "dark", "count": 2 }));
    let v = json_of(&send(&s, "GET", "/web", &["Cookie: theme=light", "Cookie: other=1; broken"], b""));
    assert_eq!(v, json!({ "session": null, "theme": "light", "count": 2 }));

    let r = send(&s, "GET", "/web?logout", &[], b"");
    assert_eq!((r.status, r.header("location")), (303, Some("/")));
    assert_eq!(set_cookies(&r), ["session=; Path=/; Max-Age=0"]);

    // An attribute that would break the header is refused, not sent.
    let r = send(&s, "GET", "/web?set=x&path=%2F%0D%0AX-Evil:%201", &[], b"");
    assert_eq!(r.status, 500);
    assert!(set_cookies(&r).is_empty() && r.header("x-evil").is_none(), "{r:?}");
    assert!(r.text().contains("cannot set cookie `session`"), "{}", r.text());
}

#[test]
fn redirects_default_to_303_and_refuse_control_characters() {
    let (_t, s) = sdk_server(&[]);
    let r = send(&s, "POST", "/web?to=/items/7%3Fpage%3D1", &[], b"");
    assert_eq!((r.status, r.header("location")), (303, Some("/items/7?page=1")));
    for status in [301u16, 302, 303, 307, 308] {
        let r = send(&s, "GET", &format!("/web?to=https://example.com/x&status={status}"), &[], b"");
        assert_eq!((r.status, r.header("location")), (status, Some("https://example.com/x")));
    }
    let r = send(&s, "GET", "/web?to=/caf%C3%A9%20bar", &[], b"");
    assert_eq!(r.header("location"), Some("/caf%C3%A9%20bar"));

    for injected in ["/x%0D%0ASet-Cookie:%20admin=1", "/x%0Aevil", "/x%0D", "/x%00"] {
        let r = send(&s, "GET", &format!("/web?to={injected}"), &[], b"");
        assert_eq!(r.status, 500, "{injected}: {r:?}");
        assert!(r.header("location").is_none() && set_cookies(&r).is_empty(), "{injected}: {r:?}");
        assert!(r.text().starts_with("refusing to redirect"), "{}", r.text());
    }

    // A real client follows the redirect to the extraction guest.
    let mut resp = ureq::get(&s.url("/web?to=/items/3%3Fpage%3D4")).call().unwrap();
    let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v, json!({ "id": 3, "page": 4, "q": null }));
}

/// Runs a command, panicking with its output if it fails; returns its stdout.
fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{command:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `cargo` for a project outside this workspace: offline (tests talk to nothing but
/// 127.0.0.1; the crates are in the local cache since the test guests use the same ones), with
/// a target dir kept between runs, and without the outer build's variables.
fn cargo(project: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(args).arg("--offline").current_dir(project);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer = (key.starts_with("CARGO_") && key != "CARGO_HOME") || key.starts_with("RUSTFLAGS");
        if outer || key == "RUSTDOCFLAGS" {
            command.env_remove(key);
        }
    }
    command.env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"));
    command
}

#[test]
fn new_creates_a_handler_that_builds_tests_and_answers() {
    let help = run_ok(Command::new(BIN).args(["new", "--help"]));
    assert!(help.contains("wasm-host new users --route '/users/{id}' --method GET,PUT"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        Command::new(BIN)
            .args(["new", "users", "--route", "/users/{id}", "--method", "GET,PUT"])
            .current_dir(dir.path()),
    );
    assert!(out.contains("cp target/wasm32-wasip2/release/users.wasm 'routes/users/{id}/PUT.wasm'"), "{out}");
    let project = dir.path().join("users");
    // A second handler in the same project, from inside it.
    run_ok(Command::new(BIN).args(["new", "health", "--method", "ANY"]).current_dir(&project));
    let manifest = std::fs::read_to_string(project.join("handlers/users/Cargo.toml")).unwrap();
    assert!(manifest.contains("crate-type = [\"cdylib\"]"), "{manifest}");

    // The generated unit tests run natively and pass.
    let tests = run_ok(&mut cargo(&project, &["test"]));
    for test in ["answers_get", "answers_put", "answers_options"] {
        assert!(tests.contains(&format!("tests::{test} ... ok")), "{test} did not pass:\n{tests}");
    }
    run_ok(&mut cargo(&project, &["build", "--release", "--target", "wasm32-wasip2"]));
    let built: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target/wasm32-wasip2/release");

    let routes = Tree::new(&[]);
    for (wasm, file) in
        [("users", "users/{id}/GET.wasm"), ("users", "users/{id}/PUT.wasm"), ("health", "health/ANY.wasm")]
    {
        routes.put(file, built.join(format!("{wasm}.wasm")).to_str().unwrap());
    }
    let s = Server::start(routes.path(), &[]);
    let r = send(&s, "GET", "/users/42", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "GET /users/42\n"));
    let r = send(&s, "PUT", "/users/ada", &[], b"hello");
    assert_eq!((r.status, r.text().as_str()), (200, "PUT /users/ada: 5 bytes\n"));
    let r = send(&s, "POST", "/users/42", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD, PUT")));
    let r = send(&s, "DELETE", "/health", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "DELETE /health\n"));
}
