#!/usr/bin/env python3
"""make soak: one host under a mixed load for `--minutes` (default 10), checking every answer.

Figures and a verdict; the exit status says only whether the script ran (`--strict` makes it 1
on an unexpected error or RSS growth). The load, all of it at once, on one host with its default
options and default logging (to a file):

  bulk       wrk -t1 -c`--wrk-connections`, GET /hello-world and GET /params/soak?x=1 in turn,
             paced by a Lua `delay` to at most about `--wrk-rate` requests per second (its non-2xx and
             socket errors are unexpected errors)
  hello      GET /hello-world on keep-alive connections: 200 `Hello world!`
  json       POST /params/{id}?q=.. with a JSON body, GET /params/{id}: the params echoed back
  uploads    POST /upload-hash, 0-2 MiB with Content-Length or chunked: its SHA-256 and length;
             POST /echo (full duplex), up to 256 KiB, sized or chunked: the same bytes back
  streams    GET /blob/{n} sized and ?chunked (0-2 MiB, every byte checked), GET /numbers/{n}
  hangs      GET /hang/{0.05-1 s}/{msg}: suspended guests, answered with msg
  sse        clients of GET /server-sent-events that read 1-4 events ({"count": 1}, 2, ...)
             and leave, some mid-wait
  slow       a head sent over ≈3 s (→ 200), a head that never ends (→ 408 after
             --header-timeout), a 4 MiB response read at ≈1.6 MB/s, a 256 KiB upload sent at
             ≈160 KB/s (→ its hash)
  reload     every `--reload-every` seconds the test guest version or version2 replaces
             routes/v/GET.wasm (in place with a copy, or by an atomic rename, in turn); a reader
             polls GET /v: it must answer v1 or v2, never the old one once the new one was seen
  faults     now and then: GET /exception (a panic: 500), /http-error (403), /panic-stream
             (the test guest panic_mid_stream: a 200 cut off), /alloc-bomb (the memory limit:
             500), /spin (the CPU limit: 504), /kill (closed without an answer), /nope (404)

Each answer is ok, an expected error (what the faults and the stalled head must give) or an
unexpected error (anything else: a wrong status, a wrong body, a timeout, a reset...). Every
minute one line: requests (wrk and the Python clients), expected errors by kind, unexpected
errors, p99 of the short Python requests and of wrk, the host's RSS (VmRSS) and open files, the
`live=` instances of the last access line, reloads, and the host's WARN/ERROR log lines: those
the faults cause (log/f: a panic, the memory and CPU limits) and any other (log/o). At the
end: totals, the unexpected errors with examples, the instances alive and files open once the
load stopped, and the verdicts "0 unexpected errors" and "RSS flat after warm-up" (the median
RSS of the last minute against that of the first minute after `--warmup` minutes; flat within
max(8 MiB, 10 %)).

Only 127.0.0.1 is used; every loop stops at the deadline, and every process started here is
killed by PID when the script ends, also on Ctrl-C.
"""
import collections
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from harness import (BadResponse, Sampler, Server, bench_parser, check_inputs, error_kind, fmt_us, machine, on_signal, parse_duration_us,
                     open_fds, percentile, raise_open_files, read_head, rss_kib, split_addr, spawn, stop,
                     stop_all)

MIB = 1 << 20
# /blob/{n}: byte i is i % 251; every answer is compared with a slice of this.
BLOB = bytes(i % 251 for i in range(251)) * ((4 * MIB) // 251 + 1)
# Seconds a Python client waits for the host before the request counts as timed out.
TIMEOUT = 30
# Kinds whose latency is the "short requests" p99 (the rest are long by design).
SHORT = {"hello", "json", "version", "fault"}
# The host's default --header-timeout (a stalled head is answered 408 after it).
HEADER_TIMEOUT = 10
# The test guests served beside the examples: (guest, route file).
GUESTS = (
    ("version.wasm", "v/GET.wasm"),
    ("panic_mid_stream.wasm", "panic-stream/GET.wasm"),
    ("alloc_bomb.wasm", "alloc-bomb/GET.wasm"),
)
WRK_SCRIPT = """
local paths = {"/hello-world", "/params/soak?x=1"}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
delay = function() return %d end
"""


class Expected(Exception):
    """A request answered as its route must fail (a trap's 500, ...): an expected error."""


class Unexpected(Exception):
    """A request answered wrongly: an unexpected error."""


class Tally:
    """Every request's outcome: (ended, kind, class, detail, seconds); class ok/expected/unexpected."""

    def __init__(self):
        self.records, self.lock = [], threading.Lock()
        self.examples = collections.defaultdict(list)  # (kind, detail) -> first few contexts

    def add(self, kind, cls, detail, secs, context=""):
        with self.lock:
            self.records.append((time.monotonic(), kind, cls, detail, secs))
            if cls == "unexpected" and len(self.examples[(kind, detail)]) < 3:
                self.examples[(kind, detail)].append(f"{time.strftime('%H:%M:%S')} {context}")

    def between(self, start, end):
        with self.lock:
            return [r for r in self.records if start <= r[0] < end]


class Load:
    """The clients: each worker is a thread that loops until `deadline`."""

    def __init__(self, args, addr, routes, deadline):
        self.args, self.addr, self.routes, self.deadline = args, addr, routes, deadline
        self.host, self.port = split_addr(addr)
        self.tally, self.done = Tally(), threading.Event()
        self.versions = [read_file(os.path.join(args.guests, name)) for name in ("version.wasm", "version2.wasm")]
        # The reload state, under the tally's lock: swaps so far, the version the last one put
        # in place, when, and when the reader first got it.
        self.reloads, self.reload_lags, self.generation = 0, [], 0
        self.current, self.swapped_at, self.new_seen_at = "v1", None, None
        self.threads = []

    def start(self):
        workers = [(self.hello, 2), (self.json, 1), (self.uploads, 1), (self.streams, 1), (self.hangs, 2),
                   (self.sse, self.args.sse_clients), (self.slow, 2), (self.version_reader, 1), (self.reloader, 1),
                   (self.faults, 1)]
        for target, count in workers:
            for i in range(count):
                thread = threading.Thread(target=self.loop, args=(target, random.Random(i * 7919 + len(self.threads))),
                                          daemon=True, name=target.__name__)
                thread.start()
                self.threads.append(thread)

    def stop(self):
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT + 5)

    def running(self):
        return not self.done.is_set() and time.monotonic() < self.deadline

    def loop(self, work, rng):
        conn = None
        while self.running():
            conn = work(rng, conn)

    # --- checks ---------------------------------------------------------------------------

    def request(self, kind, conn, method, path, body=None, headers=None, check=None, context=None,
                failing=None):
        """One request on a keep-alive http.client connection (a new one when `conn` is None or
        was closed); `check(status, response, body)` raises Expected/Unexpected; `failing` maps
        the failures that are this request's right outcome (a cut stream, a closed connection)
        to their name. Returns the connection to use next."""
        started = time.monotonic()
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        cls, detail = "ok", ""
        try:
            encode_chunked = headers is not None and headers.get("Transfer-Encoding") == "chunked"
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked)
            response = conn.getresponse()
            data = response.read()
            if check:
                check(response.status, response, data)
            elif response.status != 200:
                raise Unexpected(f"status {response.status}")
            if response.will_close:
                conn.close()
                conn = None
        except Expected as e:
            cls, detail = "expected", str(e)
        except Unexpected as e:
            cls, detail = "unexpected", str(e)
        except Exception as e:  # noqa: BLE001 - every failure is a tallied outcome
            cls, detail = "unexpected", error_kind(e)
            if failing and detail in failing:
                cls, detail = "expected", failing[detail]
        if cls != "ok" and conn is not None:
            conn.close()
            conn = None
        self.tally.add(kind, cls, detail, time.monotonic() - started, context or f"{method} {path}")
        return conn

    def hello(self, rng, conn):
        def check(status, _r, body):
            if status != 200 or body != b"Hello world!":
                raise Unexpected(f"status {status}" if status != 200 else "wrong body")
        return self.request("hello", conn, "GET", "/hello-world", check=check)

    def json(self, rng, conn):
        ident, q = str(rng.randrange(10 ** 6)), f"q{rng.randrange(1000)}"
        sent = {"n": rng.randrange(10 ** 9), "s": "é" * rng.randrange(50), "list": list(range(rng.randrange(20)))}
        post = rng.random() < 0.7

        def check(status, _r, body):
            if status != 200:
                raise Unexpected(f"status {status}")
            try:
                got = json.loads(body)
            except ValueError:
                raise Unexpected("not JSON") from None
            want = {"urlParams": {"q": q}, "bodyParams": sent if post else None, "pathParams": {"route": ident}}
            if got != want:
                raise Unexpected("wrong params echoed")
        if post:
            return self.request("json", conn, "POST", f"/params/{ident}?q={q}", body=json.dumps(sent).encode(),
                                headers={"Content-Type": "application/json"}, check=check)
        return self.request("json", conn, "GET", f"/params/{ident}?q={q}", check=check)

    def uploads(self, rng, conn):
        if rng.random() < 0.6:
            size = rng.choice((0, 1, rng.randrange(64 * 1024), rng.randrange(2 * MIB)))
            data = rng.randbytes(size)
            chunked = rng.random() < 0.5

            def check(status, _r, body):
                if status != 200:
                    raise Unexpected(f"status {status}")
                got = json.loads(body)
                if got != {"sha256": hashlib.sha256(data).hexdigest(), "bytes": size}:
                    raise Unexpected("wrong hash or length")
            return self.post("upload", conn, "/upload-hash", data, chunked, rng, check)
        size = rng.randrange(256 * 1024)
        data = rng.randbytes(size)

        def check_echo(status, _r, body):
            if status != 200:
                raise Unexpected(f"status {status}")
            if body != data:
                raise Unexpected(f"echo: {len(body)} bytes back of {size}")
        return self.post("upload", conn, "/echo", data, rng.random() < 0.5, rng, check_echo)

    def post(self, kind, conn, path, data, chunked, rng, check):
        if chunked:
            step = rng.choice((1000, 16 * 1024, 64 * 1024))
            pieces = [data[i:i + step] for i in range(0, len(data), step)]
            return self.request(kind, conn, "POST", path, body=iter(pieces), headers={"Transfer-Encoding": "chunked"},
                                check=check, context=f"POST {path} chunked {len(data)} bytes")
        return self.request(kind, conn, "POST", path, body=data, check=check,
                            context=f"POST {path} {len(data)} bytes")

    def streams(self, rng, conn):
        if rng.random() < 0.75:
            size = rng.choice((0, rng.randrange(100), rng.randrange(64 * 1024, 70 * 1024), rng.randrange(2 * MIB)))
            chunked = rng.random() < 0.5

            def check(status, r, body):
                if status != 200:
                    raise Unexpected(f"status {status}")
                if chunked != (r.getheader("transfer-encoding", "").lower() == "chunked"):
                    raise Unexpected("wrong framing")
                if body != BLOB[:size]:
                    raise Unexpected(f"blob: {len(body)} bytes of {size} or wrong bytes")
            return self.request("stream", conn, "GET", f"/blob/{size}{'?chunked' if chunked else ''}", check=check)
        n = rng.randrange(1, 3000)

        def check_numbers(status, _r, body):
            if status != 200 or body != "".join(f"{i}\n" for i in range(1, n + 1)).encode():
                raise Unexpected(f"status {status}" if status != 200 else "wrong numbers")
        return self.request("stream", conn, "GET", f"/numbers/{n}", check=check_numbers)

    def hangs(self, rng, conn):
        secs, msg = round(rng.uniform(0.05, 1), 2), f"m{rng.randrange(10 ** 6)}"

        def check(status, _r, body):
            if status != 200 or body != msg.encode():
                raise Unexpected(f"status {status}" if status != 200 else "wrong message")
        return self.request("hang", conn, "GET", f"/hang/{secs}/{msg}", check=check)

    def version_reader(self, rng, conn):
        with self.tally.lock:
            generation, current, new_seen_at = self.generation, self.current, self.new_seen_at
        asked = time.monotonic()
        seen = []

        def check(status, _r, body):
            if status != 200:
                raise Unexpected(f"status {status}")
            text = body.decode(errors="replace")
            if text not in ("v1", "v2"):
                raise Unexpected(f"neither v1 nor v2: {text[:40]!r}")
            seen.append(text)
        conn = self.request("version", conn, "GET", "/v", check=check)
        with self.tally.lock:
            if seen and generation == self.generation:  # no swap while the request was out
                now = time.monotonic()
                if seen[0] == current and self.new_seen_at is None:
                    self.new_seen_at = now
                    if self.swapped_at is not None:
                        self.reload_lags.append(now - self.swapped_at)
                elif seen[0] != current and new_seen_at is not None and asked > new_seen_at:
                    self.tally.records.append((now, "version", "unexpected", "the old version after the new one", 0))
                    self.tally.examples[("version", "the old version after the new one")].append(
                        f"{time.strftime('%H:%M:%S')} GET /v answered {seen[0]} after {current} was served")
        self.done.wait(0.02)
        return conn

    def reloader(self, rng, conn):
        """Every --reload-every seconds the other version replaces v/GET.wasm: twice in place
        (truncate and write: the watcher may see a half-written file), twice by rename."""
        if self.done.wait(self.args.reload_every) or not self.running():
            return None
        new = "v2" if self.current == "v1" else "v1"
        data = self.versions[0 if new == "v1" else 1]
        target = os.path.join(self.routes, "v", "GET.wasm")
        with self.tally.lock:
            self.generation += 1
            self.current, self.swapped_at, self.new_seen_at = new, time.monotonic(), None
        if self.reloads % 4 < 2:
            with open(target, "wb") as f:
                f.write(data)
        else:
            tmp = os.path.join(self.routes, ".v.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        self.reloads += 1
        return None

    def sse(self, rng, conn):
        want = rng.randrange(1, 5)
        leave_mid_wait = rng.random() < 0.3
        started = time.monotonic()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        cls, detail = "ok", ""
        try:
            conn.request("GET", "/server-sent-events")
            r = conn.getresponse()
            if r.status != 200 or not r.getheader("content-type", "").startswith("text/event-stream"):
                raise Unexpected(f"status {r.status} {r.getheader('content-type')}")
            text, events = "", []
            while len(events) < want and self.running():
                piece = r.read1(65536)
                if not piece:
                    raise Unexpected(f"stream ended after {len(events)} events")
                text += piece.decode()
                while "\n\n" in text:
                    event, text = text.split("\n\n", 1)
                    if not event.startswith(":"):
                        events.append(event)
            for i, event in enumerate(events, 1):
                if event != f'event: count\ndata: {{"count":{i}}}':
                    raise Unexpected(f"event {i}: {event[:60]!r}")
            if leave_mid_wait:
                time.sleep(rng.uniform(0, 1))
        except Unexpected as e:
            cls, detail = "unexpected", str(e)
        except Exception as e:  # noqa: BLE001
            cls, detail = "unexpected", error_kind(e)
        finally:
            conn.close()
        self.tally.add("sse", cls, detail, time.monotonic() - started, "GET /server-sent-events")
        self.done.wait(rng.uniform(0, 2))
        return None

    def slow(self, rng, conn):
        what = rng.choice(("slow head", "slow head", "stalled head", "slow read", "slow read", "slow upload"))
        started = time.monotonic()
        cls, detail = "ok", ""
        try:
            with socket.create_connection((self.host, self.port), timeout=TIMEOUT) as sock:
                {"slow head": self.slow_head, "stalled head": self.stalled_head, "slow read": self.slow_read,
                 "slow upload": self.slow_upload}[what](sock, rng)
        except Expected as e:
            cls, detail = "expected", str(e)
        except (Unexpected, BadResponse) as e:
            cls, detail = "unexpected", f"{what}: {e}"
        except Exception as e:  # noqa: BLE001
            cls, detail = "unexpected", f"{what}: {error_kind(e)}"
        self.tally.add("slow", cls, detail, time.monotonic() - started, what)
        return None

    def slow_head(self, sock, rng):
        pieces = [b"GET /hello-world HTTP/1.1\r\n", b"Host: soak\r\n", b"User-Agent: slow\r\n", b"X-A: 1\r\n",
                  b"X-B: 2\r\n", b"Connection: close\r\n", b"\r\n"]
        for piece in pieces:
            sock.sendall(piece)
            self.done.wait(0.5)
        status, _, body = read_all(sock)
        if status != 200 or body != b"Hello world!":
            raise Unexpected(f"status {status}")

    def stalled_head(self, sock, rng):
        sock.sendall(b"GET /hello-world HTTP/1.1\r\nHost: soak\r\nX-Never: ")
        sock.settimeout(HEADER_TIMEOUT + 10)
        status, _, _ = read_all(sock)
        if status == 408:
            raise Expected("408 header timeout")
        raise Unexpected(f"stalled head answered {status}")

    def slow_read(self, sock, rng):
        size = 4 * MIB
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.sendall(f"GET /blob/{size} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while True:
            piece = sock.recv(32 * 1024)
            if not piece:
                break
            data += piece
            time.sleep(0.02)
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise Unexpected(f"answered {head[:40]!r}")
        if body != BLOB[:size]:
            raise Unexpected(f"{len(body)} bytes of {size} or wrong bytes")

    def slow_upload(self, sock, rng):
        data = rng.randbytes(256 * 1024)
        sock.sendall(f"POST /upload-hash HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode())
        for i in range(0, len(data), 8192):
            sock.sendall(data[i:i + 8192])
            time.sleep(0.05)
        status, _, body = read_all(sock)
        if status != 200 or json.loads(body) != {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}:
            raise Unexpected(f"status {status}" if status != 200 else "wrong hash")

    def faults(self, rng, conn):
        """One fault every ≈0.5 s, by weight: the trap most often, the CPU-limit spin rarely."""
        path, want, _ = rng.choices(FAULTS, weights=[weight for _, _, weight in FAULTS])[0]
        failing = {kind: FAULT_NAMES[path] for kind in WIRE_FAILURES.get(want, ())}
        self.request("fault", None, "GET", path, check=fault_check(path, want), context=f"GET {path}",
                     failing=failing)
        self.done.wait(0.5)
        return None


# (path, the status it must have or the failure on the wire, how often).
FAULTS = (
    ("/exception", 500, 10),
    ("/http-error", 403, 4),
    ("/nope", 404, 4),
    ("/panic-stream", "cut", 3),
    ("/kill", "closed", 3),
    ("/alloc-bomb", 500, 1),
    ("/spin", 504, 0.3),
)
# The http.client failures that are the right outcome of "cut" and "closed".
WIRE_FAILURES = {"cut": ("body cut off", "connection reset"),
                 "closed": ("closed without an answer", "connection reset")}
# The faults whose failures the host logs at WARN.
FAULT_ROUTES = {"/exception", "/panic-stream", "/alloc-bomb", "/spin"}
FAULT_NAMES = {"/exception": "500 trap", "/http-error": "403 http-error", "/nope": "404", "/panic-stream":
               "200 cut off (panic mid-stream)", "/kill": "closed by /kill", "/alloc-bomb": "500 memory limit",
               "/spin": "504 CPU limit"}


def fault_check(path, want):
    def check(status, _r, _body):
        if status == want:
            raise Expected(FAULT_NAMES[path])
        raise Unexpected(f"{path}: status {status}, not {want}")
    return check


def read_all(sock):
    """Reads a whole response until the connection closes: (status, headers, body de-chunked)."""
    buf = bytearray(65536)
    view = memoryview(buf)
    status, headers, rest = read_head(sock, buf, view)
    data = bytearray(rest)
    while True:
        n = sock.recv_into(view)
        if not n:
            break
        data += view[:n]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = bytearray(), 0
        while True:
            end = data.index(b"\r\n", pos)
            size = int(bytes(data[pos:end]).split(b";")[0], 16)
            if size == 0:
                break
            body += data[end + 2:end + 2 + size]
            pos = end + 2 + size + 2
        return status, headers, bytes(body)
    return status, headers, bytes(data)


# ---------------------------------------------------------------------------------------------
# wrk, the minutes and the end.


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def run_wrk(args, url, secs, script):
    rate_delay = max(0, round(args.wrk_connections * 1000 / args.wrk_rate))
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % rate_delay)
    argv = ["wrk", "-t1", f"-c{args.wrk_connections}", f"-d{secs}s", "--latency", "--timeout", "10s", "-s", script, url]
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=secs + 30)
    except subprocess.TimeoutExpired:
        out = "wrk did not finish"
    stop(proc)
    result = {"requests": 0, "errors": collections.Counter(), "p99": None}
    found = re.search(r"(\d+) requests in", out)
    result["requests"] = int(found.group(1)) if found else 0
    found = re.search(r"^\s+99(?:\.000)?%\s+(\S+)", out, re.M)
    result["p99"] = parse_duration_us(found.group(1)) if found else None
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if found:
        for name, n in zip(("connect", "read", "write", "timeout"), found.groups()):
            if int(n):
                result["errors"][f"wrk {name} error"] += int(n)
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found:
        result["errors"]["wrk non-2xx"] += int(found.group(1))
    if not re.search(r"requests in", out):
        result["errors"][f"wrk failed: {out.strip()[:120]}"] += 1
    return result


def scan_log(log):
    """WARN/ERROR lines, counted by (message with numbers blanked, route, whether the route is one
    of the faults', which log why they fail), and the last access line's live=."""
    problems, live = collections.Counter(), None
    with open(log, "rb") as f:
        for line in f:
            if b" access: " in line:
                found = re.search(rb" live=(\d+)", line)
                if found:
                    live = int(found.group(1))
            elif b" WARN " in line or b" ERROR " in line:
                text = re.sub(r"\x1b\[[0-9;]*m", "", line.decode(errors="replace")).strip()
                route = re.search(r" route=(\S+ \S+)", text)
                route = route.group(1) if route else "-"
                text = re.sub(r"^\S+\s+", "", text.split(" route=")[0])  # less the timestamp and fields
                problems[(re.sub(r"\d+", "N", text)[:110], route, route.split(" ")[-1] in FAULT_ROUTES)] += 1
    return problems, live


def fmt_counts(counter, limit=10):
    return ", ".join(f"{n} × {k}" for k, n in counter.most_common(limit)) or "-"


def fmt_problem(key):
    text, route, fault = key
    return f"{text} [{route}]{' (a fault: expected)' if fault else ''}"


class Minute:
    """One line of the report: the records that ended in [start, end) and wrk's run meanwhile."""

    def __init__(self, index, start, end, records, wrk_result, samples, problems, live, reloads):
        self.index, self.start, self.end = index, start, end
        self.wrk_requests, self.python = wrk_result["requests"], 0
        self.expected = collections.Counter()
        self.unexpected = collections.Counter(wrk_result["errors"])
        self.problems = collections.Counter()
        self.absorb(records, problems)
        self.p99 = percentile([r[4] * 1e6 for r in records if r[1] in SHORT and r[2] == "ok"], 99)
        self.wrk_p99 = wrk_result["p99"]
        self.rss = [s[1] / 1024 for s in samples]
        self.fds = max((s[2] for s in samples), default=0)
        self.live, self.reloads = live, reloads

    def absorb(self, records, problems):
        """Counts `records` and log `problems` in (also those of the seconds after the last minute)."""
        self.python += len(records)
        for _, kind, cls, detail, _ in records:
            if cls == "expected":
                self.expected[detail] += 1
            elif cls == "unexpected":
                self.unexpected[f"{kind}: {detail}"] += 1
        self.problems.update(problems)

    @property
    def requests(self):
        return self.wrk_requests + self.python

    @property
    def rss_end(self):
        return self.rss[-1] if self.rss else 0

    def line(self):
        return (f"  {self.index:>3}  {self.requests:>9}  {sum(self.expected.values()):>8}  "
                f"{sum(self.unexpected.values()):>10}  {fmt_us(self.p99):>9}  {fmt_us(self.wrk_p99):>9}  "
                f"{statistics.median(self.rss) if self.rss else 0:>6.1f}  {max(self.rss, default=0):>6.1f}  "
                f"{self.fds:>5}  {self.live if self.live is not None else '-':>4}  {self.reloads:>7}  "
                f"{sum(n for (_, _, fault), n in self.problems.items() if fault):>5}  "
                f"{sum(n for (_, _, fault), n in self.problems.items() if not fault):>5}")


HEADER = (f"  {'min':>3}  {'requests':>9}  {'expected':>8}  {'unexpected':>10}  {'p99 py':>9}  {'p99 wrk':>9}  "
          f"{'RSS med':>6}  {'RSS max':>6}  {'fds':>5}  {'live':>4}  {'reloads':>7}  {'log/f':>5}  {'log/o':>5}")


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hard = raise_open_files()
    print(f"wasm-host soak: {args.minutes:g} min of mixed load, {args.host}")
    print(f"machine: {machine()}; open files limit {hard}")
    tmp = tempfile.mkdtemp(prefix="wasm-host-soak-")
    try:
        return soak(args, tmp)
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e or 'Ctrl-C'}): stopping the host and the clients", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def soak(args, tmp):
    routes = os.path.join(tmp, "routes")
    shutil.copytree(args.examples, routes)
    for guest, route in GUESTS:
        os.makedirs(os.path.dirname(os.path.join(routes, route)), exist_ok=True)
        shutil.copyfile(os.path.join(args.guests, guest), os.path.join(routes, route))
    log = os.path.join(tmp, "host.log")
    host = Server("host", [args.host, "run", routes, "--listen", "127.0.0.1:0"], log=log)
    if host.addr is None:
        print(f"the host did not start: {host.failure()}")
        return 1
    print(f"host on {host.url} (pid {host.pid}), default options and logging; clients: wrk -c{args.wrk_connections} "
          f"≈{args.wrk_rate}/s, {args.sse_clients} SSE, a reload every {args.reload_every:g} s")
    started = time.monotonic()
    deadline = started + args.minutes * 60
    sampler = Sampler(host.pid, every=1)
    load = Load(args, host.addr, routes, deadline)
    load.start()
    minutes, script = [], os.path.join(tmp, "mix.lua")
    print(HEADER)
    start = time.monotonic()  # minutes are back to back: no answer falls between two
    while time.monotonic() < deadline - 1 and host.proc.poll() is None:
        secs = max(1, min(60, int(deadline - time.monotonic())))
        reloads_before = load.reloads
        wrk_result = run_wrk(args, host.url, secs, script)
        end = time.monotonic()
        problems, live = scan_log(log)
        host.truncate_log()
        minute = Minute(len(minutes) + 1, start, end, load.tally.between(start, end), wrk_result,
                        sampler.between(start, end), problems, live, load.reloads - reloads_before)
        minutes.append(minute)
        print(minute.line(), flush=True)
        if minute.expected:
            print(f"       expected: {fmt_counts(minute.expected)}")
        if minute.unexpected:
            print(f"       UNEXPECTED: {fmt_counts(minute.unexpected)}")
        other = [(key, n) for key, n in problems.items() if not key[2]]
        if other:
            listed = "; ".join(f"{n} × {fmt_problem(key)}" for key, n in other[:3])
            print(f"       host log, other than the faults': {listed}")
        start = end
    load.stop()
    crashed = host.proc.poll()
    # The answers of the seconds between the last minute's end and the clients' stop.
    tail = load.tally.between(start, time.monotonic() + 1)
    problems, _ = scan_log(log)
    if minutes:
        minutes[-1].absorb(tail, problems)
        unexpected = sum(1 for r in tail if r[2] == "unexpected")
        print(f"  (the clients' last {len(tail)} answers, after minute {minutes[-1].index}: counted in it, "
              f"{unexpected} unexpected)")
    # Quiet: let the last streams end, then one request shows what is left alive.
    time.sleep(3)
    host.truncate_log()
    idle = {"rss": 0, "fds": 0, "live": None, "answer": None}
    if crashed is None:
        try:
            conn = http.client.HTTPConnection(load.host, load.port, timeout=10)
            conn.request("GET", "/hello-world", headers={"Connection": "close"})
            idle["answer"] = conn.getresponse().status
            conn.close()
        except Exception as e:  # noqa: BLE001
            idle["answer"] = error_kind(e)
        time.sleep(0.5)
        _, idle["live"] = scan_log(log)
        idle["rss"], idle["fds"] = rss_kib(host.pid) / 1024, open_fds(host.pid)
    sampler.stop()
    summary(args, load, minutes, host, crashed, idle, time.monotonic() - started)
    host.stop()
    return 0


def summary(args, load, minutes, host, crashed, idle, elapsed):
    records = load.tally.records
    print(f"\n== summary after {elapsed / 60:.1f} min")
    total_wrk = sum(m.wrk_requests for m in minutes)
    by_kind = collections.Counter(r[1] for r in records)
    print(f"  requests: {sum(m.requests for m in minutes)} ({total_wrk} by wrk; Python clients: "
          f"{fmt_counts(by_kind, 10)})")
    expected = collections.Counter()
    for m in minutes:
        expected.update(m.expected)
    unexpected = collections.Counter()
    for m in minutes:
        unexpected.update(m.unexpected)
    print(f"  expected errors: {sum(expected.values())} ({fmt_counts(expected, 10)})")
    print(f"  unexpected errors: {sum(unexpected.values())}")
    for what, n in unexpected.most_common():
        kind, _, detail = what.partition(": ")
        examples = load.tally.examples.get((kind, detail), [])
        print(f"    {n} × {what}{'  e.g. ' + '; '.join(examples) if examples else ''}")
    lags = sorted(load.reload_lags)
    if lags:
        print(f"  reloads: {load.reloads}; swap -> new version served: p50 {fmt_us(percentile(lags, 50) * 1e6)}, "
              f"max {fmt_us(lags[-1] * 1e6)} ({len(lags)} measured)")
    else:
        print(f"  reloads: {load.reloads}")
    all_problems = collections.Counter()
    for m in minutes:
        all_problems.update(m.problems)
    if all_problems:
        print(f"  host log WARN/ERROR lines: {sum(all_problems.values())}, by message:")
        for key, n in all_problems.most_common(12):
            print(f"    {n} × {fmt_problem(key)}")
    if crashed is not None:
        print(f"  HOST EXITED with status {crashed}: {host.failure()[-1500:]}")
    else:
        print(f"  after the load (3 s quiet): GET /hello-world -> {idle['answer']}; live= {idle['live']}; "
              f"RSS {idle['rss']:.1f} MiB; open files {idle['fds']}")
    warm = [m for m in minutes if m.start - minutes[0].start >= args.warmup * 60 - 1] if minutes else []
    verdict_rss = "not measured (too short for a warm-up and two minutes after it)"
    rss_flat = None
    if len(warm) >= 2:
        first, last = statistics.median(warm[0].rss), statistics.median(warm[-1].rss)
        growth = last - first
        limit = max(8.0, first * 0.10)
        rss_flat = growth <= limit
        spread = f"minute {warm[0].index} median {first:.1f} MiB -> minute {warm[-1].index} median {last:.1f} MiB " \
                 f"({growth:+.1f} MiB; flat within {limit:.1f} MiB)"
        verdict_rss = ("RSS flat after warm-up: " if rss_flat else "RSS GREW after warm-up: ") + spread
    verdict_errors = "0 unexpected errors" if not unexpected else f"{sum(unexpected.values())} UNEXPECTED errors"
    print(f"\n  verdict: {verdict_errors}; {verdict_rss}")
    if args.strict and (unexpected or rss_flat is False or crashed is not None):
        sys.exit(1)


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("DURATION") or 10),
                        help="how long the load runs (default: $DURATION or 10)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="minutes of warm-up before RSS is compared (default: 2, or a fifth of a shorter run)")
    parser.add_argument("--wrk-connections", type=int, default=8, help="wrk connections (default: 8)")
    parser.add_argument("--wrk-rate", type=int, default=3000,
                        help="at most about how many requests/s wrk sends (default: 3000)")
    parser.add_argument("--sse-clients", type=int, default=4, help="SSE clients at once (default: 4)")
    parser.add_argument("--reload-every", type=float, default=5, help="seconds between reloads (default: 5)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on an unexpected error or RSS growth")
    args = parser.parse_args()
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes: above 0 and at most a day")
    if args.warmup is None:
        args.warmup = min(2.0, args.minutes / 5)
    if min(args.wrk_connections, args.wrk_rate, args.sse_clients) < 1 or args.reload_every <= 0:
        parser.error("--wrk-connections, --wrk-rate, --sse-clients must be ≥ 1, --reload-every above 0")
    check_inputs(parser, args, guests=["version2.wasm", *(g for g, _ in GUESTS)], tools=["wrk"], make="make soak")
    return args


if __name__ == "__main__":
    sys.exit(main())
