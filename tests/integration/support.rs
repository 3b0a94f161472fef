//! Test support: start the real `wasm-host` binary on port 0, talk to it over real sockets.

#![allow(dead_code, reason = "each test file uses its own subset of the helpers")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wasm-host");

/// A running `wasm-host run`, killed (by its PID) when dropped.
pub struct Server {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// The admin listener's address, if it printed `admin listening on http://ADDR` (with
    /// `--admin-listen`) before its `listening on` line.
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `wasm-host run <routes> --listen 127.0.0.1:0 <args>` and waits for its
    /// `listening on` line.
    pub fn start(routes: &Path, args: &[&str]) -> Server {
        Self::start_command("run", routes, args, &[])
    }

    /// Starts `wasm-host <command> <dir> --listen 127.0.0.1:0 <args>` with extra environment
    /// variables and waits for its `listening on` line.
    pub fn start_command(
        command: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Server {
        Self::spawn(command, dir, args, env, None)
    }

    /// Starts `wasm-host run <routes> --admin-listen 127.0.0.1:0 <args>`: [`start`](Self::start)
    /// with the admin listener on a free port of its own ([`admin_url`](Self::admin_url)).
    pub fn start_with_admin(routes: &Path, args: &[&str]) -> Server {
        let args: Vec<&str> = ["--admin-listen", "127.0.0.1:0"].iter().chain(args).copied().collect();
        let server = Self::start(routes, &args);
        assert!(server.admin.is_some(), "no `admin listening on` line; log:\n{}", server.log());
        server
    }

    /// Starts `wasm-host run` like [`start`](Self::start) but leaves its stderr (the log)
    /// unread until the returned sender is sent to or dropped: a log sink that has stalled.
    pub fn start_with_stalled_log(routes: &Path, args: &[&str]) -> (Server, std::sync::mpsc::Sender<()>) {
        let (release, gate) = std::sync::mpsc::channel();
        (Self::spawn("run", routes, args, &[], Some(gate)), release)
    }

    fn spawn(
        command: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        log_gate: Option<std::sync::mpsc::Receiver<()>>,
    ) -> Server {
        // A compile cache shared by the test servers (not the user's): faster starts.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
        let cache_args: &[&std::ffi::OsStr] = if args.iter().any(|a| a.contains("cache")) {
            &[]
        } else {
            &["--cache-dir".as_ref(), cache.as_os_str()]
        };
        let mut child = Command::new(BIN)
            .arg(command)
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(cache_args)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasm-host");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            if let Some(gate) = log_gate {
                let _ = gate.recv();
            }
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&strip_ansi(&line));
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let admin = Arc::new(Mutex::new(None));
        let admin_sink = admin.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("admin listening on http://") {
                    *admin_sink.lock().unwrap() = Some(addr.parse::<SocketAddr>().unwrap());
                    continue;
                }
                let addr = line.strip_prefix("listening on http://");
                if let Some(addr) = addr.or_else(|| line.strip_prefix("listening on https://")) {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(600)) {
            // The admin line comes first: it is known once the main one is.
            Ok(addr) => Server { child, addr, admin: *admin.lock().unwrap(), log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        eventually(timeout, || self.log().contains(needle))
    }

    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://admin-addr` + `path`, on the admin listener ([`start_with_admin`](Self::start_with_admin)).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin.expect("started without --admin-listen"), path)
    }

    /// GET `path` on the admin listener with a real client; (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let mut resp = client().get(&self.admin_url(path)).call().unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    }

    /// Requests parked now (`wasm_host_parked_requests` on the admin listener).
    pub fn parked_requests(&self) -> usize {
        let (_, metrics) = self.admin_get("/metrics");
        let value = metrics.lines().find_map(|l| l.strip_prefix("wasm_host_parked_requests "));
        value
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no wasm_host_parked_requests:\n{metrics}"))
    }

    /// Connects a raw socket.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(status.unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `live=` (instances alive) of the last access line for `path` in `log`, if any.
pub fn last_live(log: &str, path: &str) -> Option<usize> {
    let line = log.lines().rev().find(|l| l.contains(&format!(" path={path} ")))?;
    line.split(" live=").nth(1)?.split_whitespace().next()?.parse().ok()
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A routes tree in a temp dir, built from (relative file path, component path) pairs.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree { dir };
        for (rel, src) in files {
            tree.put(rel, src);
        }
        tree
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies `src` to `rel` atomically (write beside, then rename).
    pub fn put(&self, rel: &str, src: &str) {
        let dest = self.dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let tmp = self.dir.path().join(format!(".tmp-{}", rel.replace('/', "_")));
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, &dest).unwrap();
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let dest = self.dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// A parsed response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length, chunked or until close) from `r`. `head_only` for HEAD.
pub fn read_response(r: &mut impl BufRead, head_only: bool) -> Option<RawResponse> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let end = line == b"\r\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut resp = RawResponse { status, headers, body: Vec::new() };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body).ok()?;
        resp.body = body;
    } else if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim_end(), 16).ok()?;
            let mut data = vec![0; size + 2];
            r.read_exact(&mut data).ok()?;
            if size == 0 {
                break;
            }
            resp.body.extend_from_slice(&data[..size]);
        }
    } else {
        r.read_to_end(&mut resp.body).ok()?;
    }
    Some(resp)
}

/// Sends raw bytes on a new connection and reads one response.
pub fn raw(server: &Server, request: &[u8]) -> Option<RawResponse> {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    read_response(&mut BufReader::new(s), false)
}

/// Sends raw bytes and returns everything the server sends until it closes.
pub fn raw_all(server: &Server, request: &[u8]) -> Vec<u8> {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Sends raw bytes and returns everything the server sends until it closes the connection;
/// `None` if it is still open after the socket's read timeout (30 s). Unlike [`raw_all`],
/// tells a close from a connection left open.
pub fn raw_until_closed(server: &Server, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok().map(|_| out)
}

/// Whether the server closed the connection: the next read sees end of stream or a reset.
/// A read that times out (the socket's read timeout) means the connection is still open, and
/// so does a byte arriving: both are `false`.
pub fn is_closed(r: &mut impl Read) -> bool {
    let mut b = [0u8; 1];
    match r.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

/// An HTTP client that does not treat 4xx/5xx as errors.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// GET with a real client; (status, body).
pub fn get(server: &Server, path: &str) -> (u16, String) {
    let mut resp = client().get(&server.url(path)).call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// A `/proc/PID/status` memory figure in KiB (`VmHWM:` peak RSS, `VmRSS:`, …).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line =
        status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The process's peak RSS in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    memory_kib(pid, "VmHWM:")
}

/// How long a command that is expected to exit by itself (a `run` or `dev` refusing to start)
/// may take before the test gives up on it.
pub const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// `Command::output` for a command expected to exit by itself: on a regression that makes a
/// `run` start serving instead of refusing, the test fails (the process killed) after
/// [`EXIT_WITHIN`] instead of waiting forever.
pub trait ExitsByItself {
    /// Runs the command, collecting its output; panics if it runs longer than [`EXIT_WITHIN`].
    fn exits(&mut self) -> std::process::Output;
}

impl ExitsByItself for Command {
    fn exits(&mut self) -> std::process::Output {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {self:?}: {e}"));
        let collect = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                pipe.read_to_end(&mut bytes).unwrap();
                bytes
            })
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + EXIT_WITHIN;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{self:?} still ran after {EXIT_WITHIN:?}; it was expected to exit by itself");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    }
}
