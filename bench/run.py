#!/usr/bin/env python3
"""make bench: wasm-host next to a native hyper server answering the same bytes. Figures only.

Sections (all by default; `--only hello,streams` runs some):

  hello      GET /hello-world with `wrk -t1 -cN -d<secs>s --latency` at 1, 16, 64 and 256
             keep-alive connections, native and host alternately for `--rounds` rounds; the
             round with the most req/s is reported, with its p50/p99 and the server's peak RSS
             during it. The host runs with its default logging (the access log, to a file);
             one more row at 64 connections runs it with RUST_LOG=warn (no access log), and
             rows at 1 and 64 with --instance-reuse 1000 (default logging). The row
             `host (wasi:http)` is the same host answering GET /wasi-hello, the example
             wasi_hello: a standard wasi:http/proxy component sending the same bytes. With
             --vs-wasmtime, `wasmtime serve` runs that same component too.
  streams    1 GiB GET /fill/1073741824 sized and chunked, and a 1 GiB POST /count upload,
             on both servers alternately; MB/s (best round) and peak RSS (highest of all
             rounds, VmRSS sampled every 10 ms).
  idle       the host's RSS one second after start-up, serving the example routes.
  startup    time from exec to the `listening on` line with 100 routes (copies of the example
             hello_world) from a warm compile cache: one start warms it, then the best and
             the median of 3 starts.
  hang       10,000 concurrent GET /hang/<secs>/x (handlers sleeping in wasi:clocks), one
             connection each: all answered?, time, the host's peak RSS.
  instances  16,500 concurrent hangs with --max-instances 16000: how many got 200, how many a
             clean 503 (`server busy`), anything else; or what the host said if it refused to
             start.
  polyglot   the handlers in Python and JavaScript (make examples-polyglot) next to Rust ones,
             wrk -t1 -c16, with a fresh instance per request and with --instance-reuse 1000;
             skipped (saying so) when they are not built.

Each target of the performance issue is printed next to its figure (`met` / `MISSED`), and
all of them again in a summary at the end. The machine's other load moves every figure: rerun
a section before believing a miss. Only 127.0.0.1 is used; the script starts every server
itself and kills them (by PID) when it ends, also on Ctrl-C.
"""
import collections
import errno
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from harness import (BadResponse, PeakRss, Server, anonymous_kib, bench_parser, check_inputs, fmt_us, machine,
                     on_signal, raise_open_files, read_head, rss_kib, split_addr, stop_all, target_dir, wrk)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("hello", "streams", "idle", "startup", "hang", "instances", "polyglot")
CONNECTIONS = (1, 16, 64, 256)
GIB = 1 << 30
MIB = 1 << 20
# The 1 GiB transfers; the upload is sent from this buffer again and again.
SEND_BUFFER = b"x" * (4 * MIB)
# Non-blocking connects in flight at once in the hang sections: keeps the host's accept queue
# short (a full queue drops SYNs, and the client then retries only after a second).
MAX_CONNECTING = 200
# The least each hang sleeps in the instances section (connecting 16,500 took ≈27 s).
INSTANCES_HANG_SECS = 50
# --instance-reuse for the reuse rows of the hello section.
REUSE = 1000
WASMTIME_INSTALL = "make wasmtime-cli, or cargo install wasmtime-cli --version 48.0.8 --locked"


def report_problems(server):
    count, first = server.log_problems()
    if count:
        print(f"  note: the {server.name} log has {count} WARN/ERROR lines, e.g.:")
        for line in first:
            print(f"    {line[:200]}")


# ---------------------------------------------------------------------------------------------
# Targets: each is printed beside its figure and collected for the summary.


class Targets:
    def __init__(self):
        self.rows = []

    def check(self, name, figure, met):
        """Records a target; `met` is True, False or None (not measured). Returns the verdict."""
        verdict = {True: "met", False: "MISSED", None: "not measured"}[met]
        self.rows.append((name, figure, verdict))
        return verdict

    def print_summary(self):
        if not self.rows:
            return
        print("\n== targets of the performance issue")
        width = max(len(name) for name, _, _ in self.rows)
        for name, figure, verdict in self.rows:
            print(f"  {name:<{width}}  {verdict:<12}  {figure}")


# ---------------------------------------------------------------------------------------------
# Formatting.


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}×"


def section_hello(args, tmp, routes, targets):
    print(f"\n== hello world: GET /hello-world, wrk -t1 -cN -d{args.secs}s --latency, keep-alive")
    print(f"   servers run alternately, rounds: {args.rounds}; each figure is from the round with the most")
    print("   req/s; RSS is the server's peak VmRSS during that round; host = default logging (access")
    print("   log to a file), host (warn) = RUST_LOG=warn")
    log = os.path.join(tmp, "hello-host.log")
    native = start_native(args)
    host = start_host(args, routes, log)
    if host is None or native is None:
        stop_all()
        return
    servers = [native, host, OtherPath(host, "host (wasi:http)", "/wasi-hello")]
    wasmtime = start_wasmtime(args, tmp) if args.vs_wasmtime else None
    if wasmtime:
        servers.append(wasmtime)
    header = (f"  {'conns':>5}  {'server':<15} {'req/s':>9} {'p50':>9} {'p99':>9} {'RSS':>9}  "
              f"{'×native':>7} {'p99×':>6}  target")
    print(header)
    for connections in CONNECTIONS:
        best = best_of_rounds(args, servers, "/hello-world", connections)
        print_hello_rows(connections, servers, best, targets)
    # The access log off: the same host binary with RUST_LOG=warn, next to native again.
    host.stop()
    quiet = start_host(args, routes, os.path.join(tmp, "hello-warn.log"), env={"RUST_LOG": "warn"},
                       name="host (warn)")
    if quiet:
        best = best_of_rounds(args, [native, quiet], "/hello-world", 64)
        print_hello_rows(64, [native, quiet], best, targets)
        quiet.stop()
    # Opt-in instance reuse, default logging: an instance answers up to 1,000 requests.
    reuse = start_host(args, routes, os.path.join(tmp, "hello-reuse.log"),
                       extra=("--instance-reuse", str(REUSE)), name="host (reuse)")
    if reuse:
        for connections in (1, 64):
            best = best_of_rounds(args, [native, reuse], "/hello-world", connections)
            print_hello_rows(connections, [native, reuse], best, targets)
        reuse.stop()
    native.stop()
    if wasmtime:
        wasmtime.stop()


def best_of_rounds(args, servers, path, connections):
    runs = {server.name: [] for server in servers}
    for _ in range(args.rounds):
        for server in servers:
            url = server.url + getattr(server, "path", path)
            runs[server.name].append(wrk(url, connections, args.secs, server.pid))
            # Keep the access log from filling the disk; its writes were paid for already.
            report_and_truncate(server)
    return {name: max(results, key=lambda r: r["rps"]) for name, results in runs.items()}


class OtherPath:
    """Another route of a running server, measured as a row of its own."""

    def __init__(self, server, name, path):
        self.server, self.name, self.path = server, name, path

    def __getattr__(self, attr):
        return getattr(self.server, attr)


def report_and_truncate(server):
    count, first = server.log_problems()
    if count:
        print(f"  note: {server.name} logged {count} WARN/ERROR lines, e.g. {first[0][:160]}")
    server.truncate_log()


def print_hello_rows(connections, servers, best, targets):
    base = best["native"]
    for server in servers:
        r = best[server.name]
        ratio = r["rps"] / base["rps"] if server.name != "native" and base["rps"] else None
        p99_ratio = r["p99"] / base["p99"] if ratio is not None and r["p99"] and base["p99"] else None
        verdict = ""
        if server.name == "host":
            verdict = hello_targets(connections, r, base, ratio, p99_ratio, targets)
        elif server.name == "host (reuse)" and connections == 64 and ratio is not None:
            v = targets.check(f"hello, 64 conns, --instance-reuse {REUSE}: req/s ≥ 0.8× native",
                              f"{ratio:.2f}×", ratio >= 0.8)
            verdict = f"≥0.8×: {v}"
        line = (f"  {connections:>5}  {server.name:<15} {r['rps']:>9.0f} {fmt_us(r['p50']):>9} "
                f"{fmt_us(r['p99']):>9} {r['rss']:>5.1f} MiB  {fmt_ratio(ratio):>7} {fmt_ratio(p99_ratio):>6}  "
                f"{verdict}")
        print(line.rstrip())
        if r["errors"]:
            print(f"{'':>9}{server.name}: {r['errors']}")


def hello_targets(connections, r, base, ratio, p99_ratio, targets):
    verdicts = []
    if connections == 64 and ratio is not None:
        v = targets.check("hello, 64 conns: req/s ≥ 0.5× native", f"{ratio:.2f}×", ratio >= 0.5)
        verdicts.append(f"≥0.5×: {v}")
        if p99_ratio is not None:
            v = targets.check("hello, 64 conns: p99 ≤ 2× native", f"{p99_ratio:.2f}×", p99_ratio <= 2)
            verdicts.append(f"p99 ≤2×: {v}")
    if connections == 1 and r["p50"] is not None and base["p50"] is not None:
        extra = r["p50"] - base["p50"]
        v = targets.check("hello, 1 conn: p50 ≤ native + 15 µs", f"{extra:+.0f} µs ({fmt_us(r['p50'])} vs "
                          f"{fmt_us(base['p50'])})", extra <= 15)
        verdicts.append(f"p50 {extra:+.0f} µs, ≤+15 µs: {v}")
    if connections == 64:
        v = targets.check("hello, 64 conns: host RSS < 32 MiB", f"{r['rss']:.1f} MiB", r["rss"] < 32)
        verdicts.append(f"RSS <32 MiB: {v}")
    return "; ".join(verdicts)


def start_host(args, routes, log, extra=(), env=None, name="host"):
    argv = [args.host, "run", routes, "--listen", "127.0.0.1:0", "--max-body", "unlimited", *extra]
    server = Server(name, argv, log=log, env=env)
    if server.addr is None:
        print(f"  {name} did not start: {server.failure()}")
        server.stop()
        return None
    return server


def start_native(args):
    server = Server("native", [args.native, "--listen", "127.0.0.1:0"])
    if server.addr is None:
        print(f"  native did not start: {server.failure()}")
        server.stop()
        return None
    return server


def start_wasmtime(args, tmp):
    installed = os.path.join(args.target_dir, "wasmtime-cli", "bin")  # by `make wasmtime-cli`
    wasmtime = shutil.which("wasmtime") or shutil.which("wasmtime", path=installed)
    if not wasmtime:
        print(f"  --vs-wasmtime: skipped, no `wasmtime` on PATH (install it with `{WASMTIME_INSTALL}`)")
        return None
    component = build_wasi_hello(args)
    if component is None:
        return None
    version = subprocess.run([wasmtime, "--version"], capture_output=True, text=True).stdout.strip()
    # `-S cli`: Rust's std imports wasi:cli (environment, exit, ...), which serve leaves out by
    # default; port 0 works, the readiness line names the bound address.
    server = Server("wasmtime serve", [wasmtime, "serve", "-S", "cli", "--addr", "127.0.0.1:0", component],
                    log=os.path.join(tmp, "wasmtime.log"), ready=r"Serving HTTP on http://(\S+)",
                    ready_on="stderr")
    if server.addr is None:
        print(f"  wasmtime serve did not start: {server.failure()}")
        server.stop()
        return None
    print(f"  --vs-wasmtime: {version}, `wasmtime serve` on {server.url} with {os.path.relpath(component, REPO)}")
    return server


def build_wasi_hello(args):
    """The example `wasi_hello` (examples/handlers), built by `make build` into the routes tree."""
    component = os.path.join(args.examples, "wasi-hello", "GET.wasm")
    if not os.path.isfile(component):
        print(f"  --vs-wasmtime: no {component} (run `make build`)")
        return None
    return component


# ---------------------------------------------------------------------------------------------
# Streams: 1 GiB down (sized, chunked) and up.


def python_get(addr, path):
    """GET with a plain socket reader (1 MiB recv_into); returns (seconds, body bytes)."""
    buf = bytearray(MIB)
    view = memoryview(buf)
    started = time.perf_counter()
    with socket.create_connection(split_addr(addr), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        status, headers, rest = read_head(sock, buf, view)
        if status != 200:
            raise BadResponse(f"status {status}")
        if "content-length" in headers:
            body = read_sized(sock, view, int(headers["content-length"]), len(rest))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = read_chunked(sock, buf, view, rest)
        else:
            raise BadResponse(f"neither Content-Length nor chunked: {headers}")
    return time.perf_counter() - started, body


def read_sized(sock, view, length, already):
    got = already
    while got < length:
        n = sock.recv_into(view)
        if not n:
            break
        got += n
    if got != length:
        raise BadResponse(f"sized body: {got} of {length} bytes")
    return got


def read_chunked(sock, buf, view, rest):
    """Decodes chunked framing over the socket, skipping data; returns the body length."""
    body, left, line, in_trailers = 0, 0, b"", False
    data, n = rest, len(rest)
    pos = 0
    while True:
        while pos < n:
            if left:
                step = min(left, n - pos)
                left -= step
                pos += step
                continue
            end = data.find(b"\n", pos, n)
            if end < 0:
                line += bytes(data[pos:n])
                pos = n
                break
            line += bytes(data[pos:end])
            pos = end + 1
            text = line.rstrip(b"\r")
            line = b""
            if in_trailers:
                if not text:
                    return body
                continue
            size = int(text.split(b";", 1)[0], 16)
            if size == 0:
                in_trailers = True
            else:
                body += size
                left = size + 2  # the data and its CRLF
        n = sock.recv_into(view)
        if not n:
            raise BadResponse(f"chunked body cut off after {body} bytes")
        data, pos = buf, 0


def curl_get(url):
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        raise BadResponse(f"curl: {out.stderr.strip()}")
    secs, size = out.stdout.split()
    return float(secs), int(float(size))


def upload(addr, path, length):
    """POSTs `length` bytes with Content-Length from one 4 MiB buffer; returns (secs, answer)."""
    started = time.perf_counter()
    with socket.create_connection(split_addr(addr), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {length}\r\n"
                     "Connection: close\r\n\r\n".encode())
        view = memoryview(SEND_BUFFER)
        left = length
        while left:
            step = min(left, len(view))
            sock.sendall(view[:step])
            left -= step
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    secs = time.perf_counter() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status != 200:
        raise BadResponse(f"upload answered {head[:60]!r}")
    return secs, body.decode(errors="replace").strip()


def pick_reader(native):
    """Measures the native sized GiB with curl and with the Python reader; returns the faster."""
    path = f"/fill/{GIB}"
    rates = {}
    for name, get in (("curl", lambda: curl_get(native.url + path)), ("python", lambda: python_get(native.addr, path))):
        best = 0.0
        for _ in range(2):
            secs, size = get()
            if size != GIB:
                raise BadResponse(f"{name}: {size} bytes")
            best = max(best, GIB / secs / 1e6)
        rates[name] = best
    reader = max(rates, key=rates.get)
    print(f"  client check (native, sized, best of 2): curl {rates['curl']:.0f} MB/s, Python socket reader "
          f"{rates['python']:.0f} MB/s -> downloads use {reader}")
    return reader


def section_streams(args, tmp, routes, targets):
    print(f"\n== streams: 1 GiB ({GIB} bytes) each way, rounds: {args.rounds}, alternately; MB/s = 10^6 bytes/s,")
    print("   best round; RSS = highest VmRSS sampled every 10 ms over all rounds; host = default logging")
    native = start_native(args)
    host = start_host(args, routes, os.path.join(tmp, "streams-host.log"))
    if host is None or native is None:
        stop_all()
        return
    reader = pick_reader(native)

    def download(server, query):
        path = f"/fill/{GIB}{query}"
        if reader == "curl":
            return curl_get(server.url + path)
        return python_get(server.addr, path)

    def send(server):
        secs, answer = upload(server.addr, "/count", GIB)
        if answer != str(GIB):
            raise BadResponse(f"{server.name} counted {answer!r}, not {GIB}")
        return secs, GIB

    runs = [
        ("GET sized   /fill/1073741824", lambda s: download(s, ""), "sized"),
        ("GET chunked /fill/1073741824?chunked", lambda s: download(s, "?chunked"), "chunked"),
        ("POST /count (Content-Length)", send, "upload"),
    ]
    print(f"  {'transfer':<38} {'native':>10} {'host':>10} {'×native':>8} {'native RSS':>11} {'host RSS':>9}  target")
    for label, run, kind in runs:
        rate = {"native": 0.0, "host": 0.0}
        peak = {"native": 0.0, "host": 0.0}
        failed = None
        for _ in range(args.rounds):
            for server in (native, host):
                try:
                    with PeakRss(server.pid) as rss:
                        secs, size = run(server)
                except (BadResponse, OSError, subprocess.TimeoutExpired) as e:
                    failed = f"{server.name}: {e}"
                    continue
                if size != GIB:
                    failed = f"{server.name}: {size} bytes, not {GIB}"
                    continue
                rate[server.name] = max(rate[server.name], GIB / secs / 1e6)
                peak[server.name] = max(peak[server.name], rss.mib)
                report_and_truncate(server)
        ratio = rate["host"] / rate["native"] if rate["native"] else None
        verdicts = []
        if kind == "upload":
            gbs = rate["host"] / 1000
            v = targets.check("upload 1 GiB through a counting stream hook ≥ 1 GB/s", f"{gbs:.2f} GB/s", gbs >= 1)
            verdicts.append(f"≥1 GB/s: {v}")
        elif ratio is not None:
            v = targets.check(f"1 GiB {kind} response ≥ 0.8× native", f"{ratio:.2f}×", ratio >= 0.8)
            verdicts.append(f"≥0.8×: {v}")
        v = targets.check(f"1 GiB {kind}: host RSS < 32 MiB", f"{peak['host']:.1f} MiB", peak["host"] < 32)
        verdicts.append(f"RSS <32 MiB: {v}")
        print(f"  {label:<38} {rate['native']:>10.0f} {rate['host']:>10.0f} {fmt_ratio(ratio):>8} "
              f"{peak['native']:>7.1f} MiB {peak['host']:>5.1f} MiB  {'; '.join(verdicts)}")
        if failed:
            print(f"    failed: {failed}")
    native.stop()
    host.stop()


# ---------------------------------------------------------------------------------------------
# Idle RSS and start-up.


def section_idle(args, tmp, targets):
    print("\n== idle: host RSS 1 s after `listening on`, serving the example routes (no request yet)")
    host = start_host(args, args.examples, os.path.join(tmp, "idle.log"))
    if host is None:
        targets.check("idle RSS ≤ 16 MiB with the examples", "host did not start", None)
        return
    time.sleep(1)
    mib = rss_kib(host.pid) / 1024
    private = anonymous_kib(host.pid) / 1024
    routes = sum(1 for _, _, files in os.walk(args.examples) for f in files if f.endswith(".wasm"))
    v = targets.check("idle RSS ≤ 16 MiB with the examples", f"{mib:.1f} MiB", mib <= 16)
    print(f"  {routes} handler files: {mib:.1f} MiB   (≤ 16 MiB: {v})")
    print(f"    of which anonymous (the host's own) {private:.1f} MiB; the rest is file pages (the "
          f"binary, libc, compiled handlers), shared with other processes mapping them")
    host.stop()


def custom_section(name, payload):
    """A wasm custom section (id 0): appended to a component, it changes the file's bytes and
    nothing else."""
    def leb(n):
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    body = leb(len(name)) + name.encode() + payload
    return b"\x00" + leb(len(body)) + body


def section_startup(args, tmp, targets):
    count = 100
    print(f"\n== startup: exec -> `listening on` with {count} routes (the example hello_world in")
    print("   distinct folders, each copy made distinct by a custom section, so none shares another's")
    print("   compiled code), default logging, a temporary --cache-dir")
    routes = os.path.join(tmp, "startup-routes")
    cache = os.path.join(tmp, "startup-cache")
    with open(os.path.join(args.examples, "hello-world", "GET.wasm"), "rb") as f:
        hello = f.read()
    for i in range(count):
        os.makedirs(os.path.join(routes, f"r{i:03}"))
        with open(os.path.join(routes, f"r{i:03}", "GET.wasm"), "wb") as f:
            f.write(hello + custom_section(f"bench-copy-{i}", b""))

    def start():
        host = start_host(args, routes, os.path.join(tmp, "startup.log"), extra=("--cache-dir", cache))
        if host is None:
            return None
        secs = host.ready_after
        host.stop()
        return secs

    cold = start()
    if cold is None:
        targets.check("startup, 100 routes, warm cache ≤ 300 ms", "host did not start", None)
        return
    warm = [start() for _ in range(3)]
    if None in warm:
        targets.check("startup, 100 routes, warm cache ≤ 300 ms", "host did not start", None)
        return
    best, median = min(warm), statistics.median(warm)
    v = targets.check("startup, 100 routes, warm cache ≤ 300 ms", f"best {best * 1000:.0f} ms, median "
                      f"{median * 1000:.0f} ms", best <= 0.3)
    print(f"  cold cache (first start): {cold * 1000:.0f} ms")
    print(f"  warm cache, 3 starts: best {best * 1000:.0f} ms, median {median * 1000:.0f} ms, all "
          f"{', '.join(f'{s * 1000:.0f}' for s in warm)} ms   (best ≤ 300 ms: {v})")


# ---------------------------------------------------------------------------------------------
# Many suspended requests.


class Conn:
    __slots__ = ("sock", "state", "buf")

    def __init__(self, sock):
        self.sock, self.state, self.buf = sock, "connecting", bytearray()


def storm(addr, count, path, deadline_secs, pid):
    """Opens `count` connections, each sending one `GET path` (Connection: close), and reads
    every answer. Returns a summary dict; every loop ends by `deadline_secs`."""
    host, port = split_addr(addr)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    answers = collections.Counter()  # (status, first body line) -> count
    failures = collections.Counter()  # reason -> count
    opened = connecting = done = 0
    all_sent_at = None
    last_answer_at = None
    started = time.monotonic()
    deadline = started + deadline_secs

    def finish(conn, reason=None):
        nonlocal done, last_answer_at
        sel.unregister(conn.sock)
        conn.sock.close()
        done += 1
        if reason:
            failures[reason] += 1
            return
        last_answer_at = time.monotonic()
        head, _, body = bytes(conn.buf).partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            failures[f"not an HTTP response: {bytes(conn.buf[:40])!r}"] += 1
            return
        if head.lower().find(b"transfer-encoding: chunked") >= 0:
            body = body.split(b"\r\n", 2)[1] if body.count(b"\r\n") >= 2 else body
        answers[(status, body.decode(errors="replace").strip().splitlines()[0][:60] if body.strip() else "")] += 1

    with PeakRss(pid) as rss:
        while done < count and time.monotonic() < deadline:
            while opened < count and connecting < MAX_CONNECTING:
                sock = socket.socket()
                sock.setblocking(False)
                err = sock.connect_ex((host, port))
                opened += 1
                if err not in (0, errno.EINPROGRESS):
                    sock.close()
                    failures[f"connect: {os.strerror(err)}"] += 1
                    done += 1
                    continue
                sel.register(sock, selectors.EVENT_WRITE, Conn(sock))
                connecting += 1
            for key, _ in sel.select(timeout=0.05):
                conn = key.data
                if conn.state == "connecting":
                    connecting -= 1
                    err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        finish(conn, f"connect: {os.strerror(err)}")
                        continue
                    try:
                        sent = conn.sock.send(request)
                    except OSError as e:
                        finish(conn, f"send: {e.strerror}")
                        continue
                    if sent != len(request):
                        finish(conn, "send: short write")
                        continue
                    conn.state = "reading"
                    sel.modify(conn.sock, selectors.EVENT_READ, conn)
                    if opened == count and connecting == 0:
                        all_sent_at = time.monotonic()
                    continue
                try:
                    chunk = conn.sock.recv(4096)
                except ConnectionResetError:
                    finish(conn, "connection reset")
                    continue
                except OSError as e:
                    finish(conn, f"recv: {e.strerror}")
                    continue
                if chunk:
                    conn.buf += chunk
                else:
                    finish(conn, None if conn.buf else "closed without an answer")
        for key in list(sel.get_map().values()):
            key.fileobj.close()
            failures["no answer before the deadline"] += 1
    return {
        "answers": answers, "failures": failures, "peak": rss.mib,
        "sent": (all_sent_at - started) if all_sent_at else None,
        "last": (last_answer_at - started) if last_answer_at else None,
    }


def max_live(log):
    """The highest `live=` of the access log: instances alive when a request ended."""
    best = None
    with open(log, "rb") as f:
        for line in f:
            found = re.search(rb" live=(\d+)", line)
            if found:
                best = max(best or 0, int(found.group(1)))
    return best


def describe(result):
    parts = [f"{n} × {status} {text!r}" for (status, text), n in sorted(result["answers"].items())]
    parts += [f"{n} × {reason}" for reason, n in sorted(result["failures"].items())]
    return ", ".join(parts) or "nothing"


def section_hang(args, tmp, routes, targets):
    count = 10_000
    path = f"/hang/{args.hang_secs:g}/x"
    print(f"\n== hang: {count} concurrent GET {path}, one connection each (Connection: close),")
    print(f"   at most {MAX_CONNECTING} connects in flight; host --max-instances {count} (and per route) --max-connections "
          f"{count + 1000}, default logging")
    log = os.path.join(tmp, "hang.log")
    host = start_host(args, routes, log,
                      extra=("--max-instances", str(count), "--route-max-instances", str(count),
                             "--max-connections", str(count + 1000)))
    if host is None:
        targets.check("10,000 suspended requests all answered", "host did not start", None)
        return
    base = rss_kib(host.pid) / 1024
    result = storm(host.addr, count, path, args.hang_secs + 120, host.pid)
    ok = result["answers"].get((200, "x"), 0)
    live = max_live(log)
    print(f"  answers: {describe(result)}")
    print(f"  all requests sent after {fmt_secs(result['sent'])}, last answer after {fmt_secs(result['last'])}; "
          f"highest live= in the access log: {live}")
    if live is not None and live < count - 1:
        print(f"  note: at most {live + 1} were alive at once (connecting took longer than a hang); "
              "a larger --hang-secs keeps them all suspended together")
    print(f"  host RSS: {base:.1f} MiB before, peak {result['peak']:.1f} MiB "
          f"({(result['peak'] - base) * 1024 / count:.0f} KiB per request)")
    v1 = targets.check("10,000 suspended requests all answered", f"{ok}/{count} with 200", ok == count)
    v2 = targets.check("10,000 suspended requests: host RSS ≤ 512 MiB", f"peak {result['peak']:.0f} MiB",
                       result["peak"] <= 512)
    print(f"  all answered: {v1}; RSS ≤ 512 MiB: {v2}")
    alive_check(host)
    report_problems(host)
    host.stop()


def section_instances(args, tmp, routes, targets):
    cap, count = 16_000, 16_500
    # Connecting 16,500 takes longer than 20 s here: the hangs sleep long enough for all of
    # them to be suspended together, or the cap is never reached.
    hang_secs = max(args.hang_secs, INSTANCES_HANG_SECS)
    path = f"/hang/{hang_secs:g}/x"
    print(f"\n== instances: {count} concurrent GET {path} with --max-instances {cap} "
          f"(--max-connections {count + 1000})")
    log = os.path.join(tmp, "instances.log")
    host = start_host(args, routes, log,
                      extra=("--max-instances", str(cap), "--route-max-instances", str(cap),
                             "--max-connections", str(count + 1000),
                             "--request-timeout", f"{hang_secs + 60:g}s"))
    if host is None:
        targets.check("16,000 live instances, clean 503 past the cap", "the host refused to start", False)
        return
    result = storm(host.addr, count, path, hang_secs + 120, host.pid)
    ok = result["answers"].get((200, "x"), 0)
    busy = sum(n for (status, text), n in result["answers"].items() if status == 503 and text == "server busy")
    other = count - ok - busy
    print(f"  answers: {describe(result)}")
    print(f"  {ok} × 200, {busy} × 503 `server busy`, {other} other; last answer after {fmt_secs(result['last'])}; "
          f"host peak RSS {result['peak']:.0f} MiB; highest live= in the access log: {max_live(log)}")
    met = ok == cap and busy == count - cap
    v = targets.check("16,000 live instances, clean 503 past the cap", f"{ok} × 200, {busy} × 503, {other} other",
                      met)
    print(f"  {cap} × 200 and {count - cap} × 503: {v}")
    alive_check(host)
    report_problems(host)
    host.stop()


# ---------------------------------------------------------------------------------------------
# Polyglot: handlers in other languages, fresh and reused instances.

# (row, path, what the handler does): each answers 200.
POLYGLOT_ROUTES = (
    ("rust, our world", "/hello-world", "hello_world: text"),
    ("rust, wasi:http", "/wasi-hello", "wasi_hello: text"),
    ("python, our world", "/py/greet/ada", "python-hooks: JSON + one kv increment"),
    ("python, wasi:http", "/py-wasi/hi", "python-wasi: JSON of the request"),
    ("javascript, our world", "/js/notes?id=1", "js-hooks: JSON + one kv get"),
)
# Python with reuse must reach ten times what the components issue measured fresh (≈1,200 req/s).
PYTHON_REUSE_TARGET = 12_000


def section_polyglot(args, tmp, targets):
    built = os.path.join(args.target_dir, "polyglot", "routes")
    print(f"\n== polyglot: handlers in other languages, wrk -t1 -c16 -d{args.secs}s, --state memory")
    if not os.path.isfile(os.path.join(built, "js", "notes", "ANY.wasm")):
        print(f"  skipped: {built} holds no polyglot handlers (run `make examples-polyglot`)")
        targets.check("python, --instance-reuse: ≥ 10× 1,200 req/s", "not measured (not built)", False)
        return
    routes = os.path.join(tmp, "polyglot-routes")
    shutil.copytree(built, routes)
    for route in ("hello-world", "wasi-hello"):
        shutil.copytree(os.path.join(args.examples, route), os.path.join(routes, route))
    print(f"  {'handler':<22} {'what it does':<40} {'mode':<6} {'req/s':>8} {'p50':>9} {'p99':>9} {'RSS':>9}")
    for mode, extra in (("fresh", ()), ("reuse", ("--instance-reuse", str(REUSE)))):
        host = start_host(args, routes, os.path.join(tmp, f"polyglot-{mode}.log"),
                          extra=("--state", "memory", *extra), name=f"host ({mode})")
        if host is None:
            return
        try:
            post(host.addr, "/js/notes", b'{"text": "bench"}')
            for name, path, what in POLYGLOT_ROUTES:
                python_get(host.addr, path)  # one request outside the measurement (and a 200 check)
                r = wrk(host.url + path, 16, args.secs, host.pid)
                print(f"  {name:<22} {what:<40} {mode:<6} {r['rps']:>8.0f} {fmt_us(r['p50']):>9} "
                      f"{fmt_us(r['p99']):>9} {r['rss']:>5.1f} MiB")
                if r["errors"]:
                    print(f"{'':>9}{r['errors']}")
                if name == "python, our world" and mode == "reuse":
                    v = targets.check("python, --instance-reuse: ≥ 10× 1,200 req/s", f"{r['rps']:.0f} req/s",
                                      r["rps"] >= PYTHON_REUSE_TARGET)
                    print(f"{'':>9}≥ {PYTHON_REUSE_TARGET} req/s: {v}")
                report_and_truncate(host)
        except (BadResponse, OSError) as e:
            print(f"  {mode}: a request failed: {e}")
        host.stop()


def post(addr, path, body):
    """POST `body`; raises BadResponse unless the answer is 2xx."""
    with socket.create_connection(split_addr(addr), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = sock.recv(65536).split(b" ", 2)
        if len(head) < 2 or not head[1].startswith(b"2"):
            raise BadResponse(f"POST {path}: {b' '.join(head)[:200]!r}")


def alive_check(host):
    try:
        secs, body = python_get(host.addr, "/hello-world")
        print(f"  afterwards the host still answers: GET /hello-world -> {body} bytes in {secs * 1000:.1f} ms")
    except (BadResponse, OSError) as e:
        print(f"  afterwards GET /hello-world failed: {e} (host {'running' if host.proc.poll() is None else 'exited'})")


def fmt_secs(secs):
    return "-" if secs is None else f"{secs:.2f} s"


# ---------------------------------------------------------------------------------------------


def layout_routes(args, tmp):
    """The example routes plus the two benchmark guests."""
    routes = os.path.join(tmp, "routes")
    shutil.copytree(args.examples, routes)
    os.makedirs(os.path.join(routes, "fill", "{bytes}"))
    shutil.copyfile(os.path.join(args.guests, "fill.wasm"), os.path.join(routes, "fill", "{bytes}", "GET.wasm"))
    os.makedirs(os.path.join(routes, "count"), exist_ok=True)
    shutil.copyfile(os.path.join(args.guests, "count.wasm"), os.path.join(routes, "count", "POST.wasm"))
    return routes


def parse_args():
    parser = bench_parser(__doc__, "where the test guests fill.wasm and count.wasm are")
    parser.add_argument("--native", default=os.path.join(target_dir(), "bench", "release", "bench-native"),
                        help="the bench/native binary (default: %(default)s)")
    parser.add_argument("--target-dir", default=target_dir(),
                        help="cargo target dir (default: %(default)s)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--secs", type=int, default=5, help="seconds of each wrk run (default: 5)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each comparison (default: 2)")
    parser.add_argument("--hang-secs", type=float, default=20,
                        help="how long each request of the hang sections sleeps; longer than connecting them all (default: 20)")
    parser.add_argument("--vs-wasmtime", action="store_true",
                        help="also run `wasmtime serve` with the example wasi_hello (examples/handlers) in the hello section")
    args = parser.parse_args()
    for name in ("native", "target_dir"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if args.secs < 1 or args.rounds < 1 or args.hang_secs <= 0:
        parser.error("--secs and --rounds must be at least 1, --hang-secs above 0")
    if not os.access(args.native, os.X_OK):
        parser.error(f"--native: {args.native} is not an executable (make bench-native builds it)")
    check_inputs(parser, args, guests=["fill.wasm", "count.wasm"])
    return args


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (a background job)
    hard = raise_open_files()
    if "hello" in args.only and not shutil.which("wrk"):
        subprocess.run(["sh", os.path.join(REPO, "scripts", "ensure-tools.sh"), "wrk"], check=True)
    print(f"wasm-host benchmarks: {args.host}")
    print(f"native baseline:      {args.native}")
    print(f"machine: {machine()}; open files limit {hard} (clients and servers share the machine)")
    if hard < 17_600 and ("instances" in args.only or "hang" in args.only):
        print(f"  note: the open files limit {hard} is below what the hang sections need (≈17,600)")
    targets = Targets()
    tmp = tempfile.mkdtemp(prefix="wasm-host-bench-")
    try:
        routes = layout_routes(args, tmp)
        if "hello" in args.only:
            section_hello(args, tmp, routes, targets)
        if "streams" in args.only:
            section_streams(args, tmp, routes, targets)
        if "idle" in args.only:
            section_idle(args, tmp, targets)
        if "startup" in args.only:
            section_startup(args, tmp, targets)
        if "hang" in args.only:
            section_hang(args, tmp, routes, targets)
        if "instances" in args.only:
            section_instances(args, tmp, routes, targets)
        if "polyglot" in args.only:
            section_polyglot(args, tmp, targets)
        targets.print_summary()
        print(f"\nmachine at the end: {machine()}")
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e or 'Ctrl-C'}): stopping the servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
