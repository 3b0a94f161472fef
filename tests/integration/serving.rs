//! Serving a site: static files (`--static`) and HTTPS (`--tls-cert`/`--tls-key`), through the
//! real binary over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use test_artifacts as a;

use crate::support::*;

/// A static directory with a few typed files, a docs folder with an index, a precompressed
/// script, a dotfile, and a secret beside it (outside the root).
struct Site {
    /// Holds `root/` and `secret.txt`.
    dir: tempfile::TempDir,
}

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let put = |rel: &str, bytes: &[u8]| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        };
        put("index.html", b"<h1>home</h1>");
        put("style.css", b"body{}");
        put("app.js", b"console.log('plain');");
        put("app.js.br", b"BROTLI-BYTES");
        put("app.js.gz", b"GZIP-BYTES");
        put("logo.png", b"\x89PNG\r\n\x1a\nfake");
        put("data.bin", b"0123456789");
        put("docs/index.html", b"<h1>docs</h1>");
        put("docs/page.txt", b"page");
        put("hello", b"static, not the route");
        put(".env", b"DOTFILE-CONTENT");
        put(".well-known/security.txt", b"Contact: mailto:x@example.com");
        std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("style.css"), root.join("alias.css")).unwrap();
        Site { dir }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
}

fn routes() -> Tree {
    Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD), ("form/POST.wasm", a::EXAMPLE_ECHO)])
}

fn start(site: &Site, routes: &Tree, extra: &[&str]) -> Server {
    let root = site.root();
    let mut args = vec!["--static", root.to_str().unwrap(), "--no-watch"];
    args.extend_from_slice(extra);
    Server::start(routes.path(), &args)
}

/// Sends one request with extra header lines and reads the response.
fn request(s: &Server, method: &str, path: &str, headers: &[&str]) -> RawResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut c = s.connect();
    c.write_all(req.as_bytes()).unwrap();
    read_response(&mut BufReader::new(c), method == "HEAD").expect("a response")
}

#[test]
fn static_files_get_their_types_and_validators_and_routes_win() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    for (path, content_type, body) in [
        ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>"),
        ("/style.css", "text/css; charset=utf-8", "body{}"),
        ("/alias.css", "text/css; charset=utf-8", "body{}"),
        ("/app.js", "text/javascript; charset=utf-8", "console.log('plain');"),
        ("/logo.png", "image/png", "\u{89}PNG"),
        ("/data.bin", "application/octet-stream", "0123456789"),
        ("/.well-known/security.txt", "text/plain; charset=utf-8", "Contact"),
    ] {
        let r = request(&s, "GET", path, &[]);
        assert_eq!(r.status, 200, "{path}");
        let got = r.header("content-type").unwrap();
        assert!(
            got == content_type || (path == "/app.js" && got == "application/javascript; charset=utf-8"),
            "{path}: {got}"
        );
        if path != "/logo.png" {
            assert!(r.text().starts_with(body), "{path}: {}", r.text());
        }
        assert!(r.header("etag").unwrap().starts_with('"'), "{path}");
        assert!(r.header("last-modified").unwrap().ends_with("GMT"), "{path}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"), "{path}");
    }
    // A route beats a file of the same path; a route without the method keeps its 405.
    assert_eq!(get(&s, "/hello"), (200, "Hello world!".into()));
    assert_eq!(request(&s, "GET", "/form", &[]).status, 405);
    // HEAD: the GET's head, no body.
    let mut c = s.connect();
    c.write_all(b"HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    let head = read_response(&mut r, true).unwrap();
    assert_eq!((head.status, head.header("content-length")), (200, Some("6")));
    let next = read_response(&mut r, false).unwrap();
    assert_eq!(next.text(), "body{}", "nothing followed the HEAD answer but the next response");
    // Other methods on unrouted paths are still 404; unknown files too.
    assert_eq!(request(&s, "POST", "/style.css", &["Content-Length: 0"]).status, 404);
    assert_eq!(request(&s, "GET", "/missing.txt", &[]).status, 404);
    assert!(s.wait_for_log("route=static", Duration::from_secs(10)), "{}", s.log());
}

#[test]
fn directories_serve_their_index_and_redirect_to_the_slash() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    assert_eq!(request(&s, "GET", "/", &[]).text(), "<h1>home</h1>");
    let r = request(&s, "GET", "/docs/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>docs</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = request(&s, "GET", "/docs?x=1", &[]);
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/?x=1")));
    let r = request(&s, "HEAD", "/docs", &[]);
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
    assert_eq!(request(&s, "GET", "/docs/page.txt", &[]).text(), "page");
    assert_eq!(request(&s, "GET", "/docs/page.txt/", &[]).status, 404);
}

#[test]
fn conditional_requests_get_304_and_412() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    let first = request(&s, "GET", "/style.css", &[]);
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    let h = |name: &str, value: &str| format!("{name}: {value}");
    let status = |headers: &[String]| {
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        request(&s, "GET", "/style.css", &refs)
    };
    let r = status(&[h("If-None-Match", &etag)]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(status(&[h("If-None-Match", "\"nope\"")]).status, 200);
    assert_eq!(status(&[h("If-Modified-Since", &modified)]).status, 304);
    assert_eq!(status(&[h("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status, 200);
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(status(&[h("If-None-Match", "\"nope\""), h("If-Modified-Since", &modified)]).status, 200);
    let r = status(&[h("If-Match", "\"nope\"")]);
    assert_eq!(r.status, 412);
    assert_eq!(status(&[h("If-Match", &etag)]).status, 200);
    assert_eq!(status(&[h("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status, 412);
    // If-Match is checked before If-None-Match.
    assert_eq!(status(&[h("If-Match", "\"nope\""), h("If-None-Match", &etag)]).status, 412);
    // A 304 and a 412 keep the connection.
    let mut c = s.connect();
    let req = format!(
        "GET /style.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n\
         GET /style.css HTTP/1.1\r\nHost: x\r\nIf-Match: \"x\"\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    c.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, false).unwrap().status, 304);
    assert_eq!(read_response(&mut r, false).unwrap().status, 412);
    assert_eq!(read_response(&mut r, false).unwrap().text(), "body{}");
}

#[test]
fn ranges_get_206_416_and_multipart_byteranges() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    let r = request(&s, "GET", "/data.bin", &["Range: bytes=2-4"]);
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    let r = request(&s, "GET", "/data.bin", &["Range: bytes=-3"]);
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = request(&s, "GET", "/data.bin", &["Range: bytes=10-"]);
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */10")));
    let r = request(&s, "GET", "/data.bin", &["Range: chapters=1"]);
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    // If-Range with a stale validator: the whole file.
    let r = request(&s, "GET", "/data.bin", &["Range: bytes=0-0", "If-Range: \"stale\""]);
    assert_eq!((r.status, r.body.len()), (200, 10));
    let etag = r.header("etag").unwrap().to_owned();
    let if_range = format!("If-Range: {etag}");
    let r = request(&s, "GET", "/data.bin", &["Range: bytes=0-0", &if_range]);
    assert_eq!((r.status, r.text().as_str()), (206, "0"));

    let r = request(&s, "GET", "/data.bin", &["Range: bytes=0-1,7-"]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").expect(ct);
    let body = r.text();
    let want = format!(
        "--{boundary}\r\ncontent-type: application/octet-stream\r\ncontent-range: bytes 0-1/10\r\n\r\n01\r\n\
         --{boundary}\r\ncontent-type: application/octet-stream\r\ncontent-range: bytes 7-9/10\r\n\r\n789\r\n\
         --{boundary}--\r\n"
    );
    assert_eq!(body, want);
    assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()));
    // Overlapping ranges: the whole file.
    let r = request(&s, "GET", "/data.bin", &["Range: bytes=0-5,3-8"]);
    assert_eq!((r.status, r.body.len()), (200, 10));
}

#[test]
fn precompressed_siblings_are_served_to_clients_that_accept_them() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    for (accept, body, encoding) in [
        (None, "console.log('plain');", None),
        (Some("gzip, deflate, br"), "BROTLI-BYTES", Some("br")),
        (Some("gzip"), "GZIP-BYTES", Some("gzip")),
        (Some("br;q=0.1, gzip;q=0.9"), "GZIP-BYTES", Some("gzip")),
        (Some("identity"), "console.log('plain');", None),
        (Some("br;q=0, gzip;q=0"), "console.log('plain');", None),
    ] {
        let header = accept.map(|a| format!("Accept-Encoding: {a}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let r = request(&s, "GET", "/app.js", &headers);
        assert_eq!((r.status, r.text().as_str()), (200, body), "{accept:?}");
        assert_eq!(r.header("content-encoding"), encoding, "{accept:?}");
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{accept:?}");
        assert!(r.header("content-type").unwrap().contains("javascript"), "the original's type");
    }
    let plain = request(&s, "GET", "/app.js", &[]);
    let br = request(&s, "GET", "/app.js", &["Accept-Encoding: br"]);
    assert_ne!(plain.header("etag"), br.header("etag"), "each coding has its own entity tag");
    assert_eq!(request(&s, "GET", "/style.css", &["Accept-Encoding: br"]).header("vary"), None);
}

#[test]
fn no_form_of_traversal_reaches_outside_the_root() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    for path in [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%252e%252e/secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/docs%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/secret.txt%00.html",
        "/escape.txt",
        "/up/secret.txt",
        "//secret.txt",
    ] {
        let r = request(&s, "GET", path, &[]);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains(SECRET), "{path}");
    }
    // Raw bytes: refused by the codec (400) or by the static resolver (404), never served.
    for raw_path in
        [&b"/secret.txt\0"[..], b"/\x01../secret.txt", b"/..\\secret.txt", b"/docs\\..\\..\\secret.txt"]
    {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(raw_path);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = raw_all(&s, &req);
        let text = String::from_utf8_lossy(&got);
        let refused = text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 404");
        assert!(refused || got.is_empty(), "{text}");
        assert!(!text.contains(SECRET));
    }
}

#[test]
fn dotfiles_are_served_only_when_asked_for() {
    let site = Site::new();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    for path in ["/.env", "/%2eenv", "/docs/../.env"] {
        let r = request(&s, "GET", path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("DOTFILE"), "{path}");
    }
    drop(s);
    let s = start(&site, &routes, &["--static-dotfiles"]);
    let r = request(&s, "GET", "/.env", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "DOTFILE-CONTENT"));
    assert_eq!(request(&s, "GET", "/up/secret.txt", &[]).status, 404, "still never outside");
}

/// The host's peak resident memory (VmHWM), in KiB.
#[test]
fn a_large_file_downloads_in_bounded_memory() {
    const SIZE: u64 = 96 << 20;
    let site = Site::new();
    let big = site.root().join("big.bin");
    let mut hash = Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for n in 0..SIZE >> 20 {
            let mut b = block.clone();
            b[..8].copy_from_slice(&n.to_le_bytes());
            hash.update(&b);
            f.write_all(&b).unwrap();
        }
    }
    let want = hash.finalize();
    let routes = routes();
    let s = start(&site, &routes, &[]);
    let mut c = s.connect();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let head = read_response(&mut r, true).unwrap();
    assert_eq!(head.header("content-length"), Some(SIZE.to_string().as_str()));
    let mut hash = Sha256::new();
    let mut left = SIZE;
    let mut buf = vec![0; 1 << 16];
    while left > 0 {
        let n = r.read(&mut buf[..(left.min(1 << 16) as usize)]).unwrap();
        assert!(n > 0, "body ended {left} bytes early");
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    assert_eq!(hash.finalize(), want);
    let peak = peak_rss_kib(s.pid());
    assert!(peak < 100 * 1024, "host peak RSS {peak} KiB for a {SIZE}-byte download");
    // The connection is still good for another request.
    r.get_mut().write_all(b"GET /data.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().text(), "0123456789");
}

#[test]
fn routes_lists_the_static_fallback() {
    let site = Site::new();
    let routes = routes();
    let out =
        Command::new(BIN).arg("routes").arg(routes.path()).arg("--static").arg(site.root()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("/**") && last.contains("static files, where no route matches"), "{text}");
    assert!(last.contains(site.root().to_str().unwrap()), "{text}");
    let missing = Command::new(BIN).arg("run").arg(routes.path()).args(["--static", "/no/such/dir"]).exits();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/dir"));
}

// ---- TLS ----

/// A self-signed certificate for `localhost` written as `cert.pem` / `key.pem` in `dir`
/// (atomically each); returns its DER.
fn write_cert(dir: &Path) -> Vec<u8> {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    for (name, pem) in [("cert.pem", pair.cert.pem()), ("key.pem", pair.signing_key.serialize_pem())] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    pair.cert.der().to_vec()
}

/// A TLS client trusting exactly `trusted`.
fn tls_client(trusted: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in trusted {
        roots.add(rustls_pki_types::CertificateDer::from(der.to_vec())).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake.
fn tls_connect(s: &Server, config: &Arc<rustls::ClientConfig>) -> Tls {
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, s.connect());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// The certificate the server presented.
fn presented(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn tls_server(certs: &Path, routes: &Path, extra: &[&str]) -> Server {
    let cert = certs.join("cert.pem");
    let key = certs.join("key.pem");
    let mut args = vec!["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(routes, &args)
}

#[test]
fn https_serves_routes_static_files_streams_sse_and_uploads() {
    let certs = tempfile::tempdir().unwrap();
    let der = write_cert(certs.path());
    let site = Site::new();
    let root = site.root();
    let s = tls_server(certs.path(), Path::new(a::EXAMPLE_ROUTES), &["--static", root.to_str().unwrap()]);
    let config = tls_client(&[&der]);

    let mut tls = tls_connect(&s, &config);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN picks http/1.1 over h2");
    // Keep-alive over one TLS connection: a route, a static file, a range, a chunked stream.
    tls.write_all(
        b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /data.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\nGET /numbers/3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(tls);
    assert_eq!(read_response(&mut r, false).unwrap().text(), "Hello world!");
    assert_eq!(read_response(&mut r, false).unwrap().text(), "body{}");
    let range = read_response(&mut r, false).unwrap();
    assert_eq!((range.status, range.text().as_str()), (206, "12"));
    assert_eq!(read_response(&mut r, false).unwrap().text(), "1\n2\n3\n");

    // A streamed upload (the stream hook hashes it as it arrives).
    let mut tls = tls_connect(&s, &config);
    const UPLOAD: usize = 8 << 20;
    tls.write_all(
        format!("POST /upload-hash HTTP/1.1\r\nHost: x\r\nContent-Length: {UPLOAD}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut hash = Sha256::new();
    let block: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    for _ in 0..UPLOAD / block.len() {
        hash.update(&block);
        tls.write_all(&block).unwrap();
    }
    let resp = read_response(&mut BufReader::new(tls), false).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!((v["bytes"].as_u64(), v["sha256"].as_str()), (Some(UPLOAD as u64), Some(hex.as_str())));

    // Full duplex: the echo streams the body back while it arrives.
    let mut tls = tls_connect(&s, &config);
    tls.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nhello duplex").unwrap();
    let echoed = read_response(&mut BufReader::new(tls), false).unwrap();
    assert_eq!(echoed.text(), "hello duplex");

    // Server-Sent Events.
    let mut tls = tls_connect(&s, &config);
    tls.write_all(b"GET /server-sent-events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(tls);
    let head = read_response(&mut r, true).unwrap();
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut text = String::new();
    while !text.contains("data: {\"count\":2}") {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended: {text}");
        text.push_str(&line);
    }
    assert!(text.contains("data: {\"count\":1}") && text.contains("data: {\"count\":2}"), "{text}");
}

#[test]
fn certificates_rotate_without_dropping_connections() {
    let certs = tempfile::tempdir().unwrap();
    let first = write_cert(certs.path());
    let routes = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = tls_server(certs.path(), routes.path(), &[]);
    let mut old = tls_connect(&s, &tls_client(&[&first]));
    assert_eq!(presented(&old), first);

    let second = write_cert(certs.path());
    let both = tls_client(&[&first, &second]);
    assert!(
        eventually(Duration::from_secs(20), || presented(&tls_connect(&s, &both)) == second),
        "new handshakes never got the new certificate; log:\n{}",
        s.log()
    );
    assert!(s.log().contains("TLS certificate reloaded"), "{}", s.log());
    // The connection made before the rotation still works.
    old.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut BufReader::new(&mut old), false).unwrap().text(), "Hello world!");

    // A broken pair keeps the current one serving, and says why.
    std::fs::write(certs.path().join("cert.pem"), b"garbage").unwrap();
    assert!(s.wait_for_log("keeping the previous certificate", Duration::from_secs(20)), "{}", s.log());
    assert!(s.log().contains("cert.pem"));
    let mut fresh = tls_connect(&s, &both);
    assert_eq!(presented(&fresh), second);
    fresh.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut BufReader::new(&mut fresh), false).unwrap().status, 200);
}

#[test]
fn plain_http_garbage_and_silence_on_the_tls_port_are_closed_cleanly() {
    let certs = tempfile::tempdir().unwrap();
    let der = write_cert(certs.path());
    let routes = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = tls_server(certs.path(), routes.path(), &["--tls-handshake-timeout", "300ms"]);
    // Plain HTTP gets a short plain answer saying why, then the close.
    let got = raw_all(&s, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400") && text.contains("https"), "{text}");
    // Garbage that is not TLS: closed.
    let mut c = s.connect();
    c.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xfe]).unwrap();
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    // A client that never says anything is closed after the handshake deadline.
    let mut silent = s.connect();
    assert!(is_closed(&mut silent), "a silent connection stayed open past the handshake deadline");
    // The server is fine.
    let mut tls = tls_connect(&s, &tls_client(&[&der]));
    tls.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut BufReader::new(tls), false).unwrap().text(), "Hello world!");
}

#[test]
fn bad_or_missing_certificate_files_stop_the_start_naming_the_file() {
    let certs = tempfile::tempdir().unwrap();
    write_cert(certs.path());
    let routes = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let junk = certs.path().join("junk.pem");
    std::fs::write(&junk, b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").unwrap();
    let missing = certs.path().join("missing.pem");
    let other_key = certs.path().join("other-key.pem");
    std::fs::write(&other_key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    for (c, k, named) in [
        (&missing, &key, &missing),
        (&junk, &key, &junk),
        (&cert, &junk, &junk),
        (&cert, &other_key, &other_key),
    ] {
        let out = Command::new(BIN)
            .arg("run")
            .arg(routes.path())
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(c)
            .arg("--tls-key")
            .arg(k)
            .exits();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {c:?} {k:?}");
        assert!(stderr.contains(named.to_str().unwrap()), "{named:?} not named: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
}

#[test]
fn sighup_reloads_a_certificate_change_the_watcher_cannot_see() {
    // The served files are symlinks into a folder the watcher does not watch (it watches the
    // links' folder), so only SIGHUP can pick the new pair up.
    let real = tempfile::tempdir().unwrap();
    let first = write_cert(real.path());
    let certs = tempfile::tempdir().unwrap();
    for name in ["cert.pem", "key.pem"] {
        std::os::unix::fs::symlink(real.path().join(name), certs.path().join(name)).unwrap();
    }
    let routes = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = tls_server(certs.path(), routes.path(), &[]);
    let second = write_cert(real.path());
    let both = tls_client(&[&first, &second]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !s.log().contains("TLS certificate reloaded"),
        "the watcher saw it; this test proves nothing:\n{}",
        s.log()
    );
    assert_eq!(presented(&tls_connect(&s, &both)), first);
    let hup = std::process::Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    assert!(
        eventually(Duration::from_secs(20), || presented(&tls_connect(&s, &both)) == second),
        "SIGHUP did not reload the pair; log:\n{}",
        s.log()
    );
}

#[test]
fn hot_reload_swaps_handlers_behind_tls_too() {
    let certs = tempfile::tempdir().unwrap();
    let der = write_cert(certs.path());
    let routes = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = tls_server(certs.path(), routes.path(), &[]);
    let client = tls_client(&[&der]);
    let version = || {
        let mut c = tls_connect(&s, &client);
        c.write_all(b"GET /v HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        read_response(&mut BufReader::new(&mut c), false).map(|r| r.text()).unwrap_or_default()
    };
    assert_eq!(version(), "v1");
    routes.put("v/GET.wasm", a::VERSION2);
    assert!(eventually(Duration::from_secs(20), || version() == "v2"), "{}", s.log());
}
