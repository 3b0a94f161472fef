"""What the benchmark scripts share: the servers they start, their RSS, wrk, a small HTTP client.

Every process a script starts goes through `spawn` (or `Server`), and `stop_all` kills the ones
still running by PID, also on Ctrl-C (`on_signal` turns SIGTERM/SIGINT into KeyboardInterrupt).
Only 127.0.0.1 is used. Standard library only; bench/run.py, bench/slow.py and bench/soak.py
import it (the scripts' own folder is on `sys.path` when they run).
"""
import argparse
import http.client
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import threading
import time

# Seconds a server has to print its readiness line.
READY_TIMEOUT = 60


# ---------------------------------------------------------------------------------------------
# Processes: every server goes through `spawn`, and `stop_all` kills what is still running.

PROCS = []


def spawn(argv, **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    PROCS.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.kill()  # by PID: os.kill(proc.pid, SIGKILL)
    proc.wait()
    if proc in PROCS:
        PROCS.remove(proc)


def stop_all():
    for proc in list(PROCS):
        stop(proc)


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def proc_kib(pid, name, field):
    """The `field:` line of /proc/PID/NAME in KiB (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return proc_kib(pid, "status", "VmRSS")


def anonymous_kib(pid):
    """The anonymous part of a process's RSS (heap, stacks, relocated data)."""
    return proc_kib(pid, "smaps_rollup", "Anonymous")


class PeakRss:
    """Samples a process's VmRSS every 10 ms while the `with` block runs."""

    def __init__(self, pid):
        self.pid, self.peak_kib, self.done = pid, rss_kib(pid), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.wait(0.01):
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))

    @property
    def mib(self):
        return self.peak_kib / 1024


class Server:
    """A server process started here, ready once it printed its address.

    `ready` is a regex whose group 1 is `host:port`, looked for on stdout (or stderr for
    wasmtime). Logs (stderr) go to `log` opened in append mode, so the file can be truncated
    between runs while the server writes on.
    """

    def __init__(self, name, argv, log=None, env=None, ready=r"listening on http://(\S+)", ready_on="stdout"):
        self.name, self.argv, self.log = name, argv, log
        self.started = time.monotonic()
        other = open(log, "ab") if log else subprocess.DEVNULL
        if ready_on == "stdout":
            outputs = {"stdout": subprocess.PIPE, "stderr": other}
        else:
            outputs = {"stdout": other, "stderr": subprocess.PIPE}
        self.proc = spawn(argv, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, **outputs)
        if log:
            other.close()
        stream = self.proc.stdout if ready_on == "stdout" else self.proc.stderr
        self.addr, self.said = self._wait_ready(stream.fileno(), re.compile(ready))
        self.ready_after = time.monotonic() - self.started
        # Keep draining the pipe so the server never blocks on a full one.
        threading.Thread(target=drain, args=(stream,), daemon=True).start()

    def _wait_ready(self, fd, pattern):
        """Reads the server's output until `pattern` matches, it exits, or READY_TIMEOUT."""
        said = b""
        deadline = self.started + READY_TIMEOUT
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # the server closed its output: it exited
            said += chunk
            found = pattern.search(said.decode(errors="replace"))
            if found:
                return found.group(1).rstrip("/"), said.decode(errors="replace")
        # Give an exiting server a moment, so `failure` can tell its exit status.
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        return None, said.decode(errors="replace")

    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return f"http://{self.addr}"

    def failure(self):
        """What a server that never got ready said (its output and the end of its log)."""
        self.proc.poll()
        text = self.said
        if self.log and os.path.exists(self.log):
            with open(self.log, errors="replace") as f:
                text += f.read()[-4000:]
        state = "still running" if self.proc.returncode is None else f"exit status {self.proc.returncode}"
        return f"{state}; it said: {text.strip() or '(nothing)'}"

    def truncate_log(self):
        if self.log:
            os.truncate(self.log, 0)

    def log_problems(self, limit=3):
        """Counts the WARN/ERROR lines of the log and returns (count, the first few)."""
        if not self.log or not os.path.exists(self.log):
            return 0, []
        count, first = 0, []
        with open(self.log, "rb") as f:
            for line in f:
                if b" WARN " in line or b" ERROR " in line:
                    count += 1
                    if len(first) < limit:
                        first.append(line.decode(errors="replace").rstrip())
        return count, first

    def stop(self):
        stop(self.proc)


def drain(stream):
    while stream.read(65536):
        pass



# ---------------------------------------------------------------------------------------------
# Command lines: the options every script has, and the checks of what they name.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def bench_parser(doc, guests_help="where the test guests are"):
    """A parser whose help is the script's docstring (first paragraph, then the rest), with
    --host, --guests and --examples."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(doc.split("\n\n")[1:]))
    parser.add_argument("--host", default=os.path.join(target_dir(), "release", "wasm-host"),
                        help="the wasm-host binary (default: %(default)s)")
    parser.add_argument("--guests", default=os.path.join(target_dir(), "guests", "wasm32-wasip2", "release"),
                        help=f"{guests_help} (default: %(default)s)")
    parser.add_argument("--examples", default=os.path.join(REPO, "examples", "routes"),
                        help="the example routes tree (default: %(default)s)")
    return parser


def check_inputs(parser, args, guests=(), tools=(), make="make"):
    """Makes --host, --guests and --examples absolute and refuses, through `parser.error`, a
    host that is not an executable, a missing guest file, example routes without hello-world
    or a tool not on PATH; `make` is the target that builds or installs them all."""
    for name in ("host", "guests", "examples"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if not os.access(args.host, os.X_OK):
        parser.error(f"--host: {args.host} is not an executable (make build builds it)")
    for guest in guests:
        if not os.path.isfile(os.path.join(args.guests, guest)):
            parser.error(f"--guests: no {guest} in {args.guests} (make test-guests builds it)")
    if not os.path.isfile(os.path.join(args.examples, "hello-world", "GET.wasm")):
        parser.error(f"--examples: {args.examples} holds no hello-world/GET.wasm (make examples builds it)")
    for tool in tools:
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (scripts/ensure-tools.sh {tool}, or {make})")


# ---------------------------------------------------------------------------------------------
# Formatting and the machine.


def fmt_us(us):
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"



def machine():
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


# ---------------------------------------------------------------------------------------------
# wrk.

LATENCY_UNITS = {"us": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000}


def parse_duration_us(text):
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(found.group(1)) * LATENCY_UNITS[found.group(2)]


def wrk(url, connections, secs, pid):
    """Runs wrk once; returns req/s, p50/p99 in µs, errors and the server's peak RSS."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{secs}s", "--latency", url]
    with PeakRss(pid) as rss:
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
            out, failed = run.stdout, run.returncode and f"wrk failed ({run.returncode}): {run.stderr.strip()}"
        except subprocess.TimeoutExpired:
            out, failed = "", "wrk did not finish"
    result = {"rss": rss.mib, "errors": ""}
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(found.group(1)) if found else 0.0
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        result[f"p{pct}"] = parse_duration_us(found.group(1)) if found else None
    problems = []
    found = re.search(r"Socket errors: (.*)", out)
    if found:
        problems.append(f"socket errors: {found.group(1)}")
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found:
        problems.append(f"{found.group(1)} non-2xx")
    if failed:
        problems.append(failed)
    result["errors"] = "; ".join(problems)
    return result



# ---------------------------------------------------------------------------------------------
# A small HTTP/1.1 client on plain sockets.


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


class BadResponse(Exception):
    pass


def read_head(sock, buf, view):
    """Reads until the end of the response head; returns (status, headers, leftover bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        n = sock.recv_into(view)
        if not n:
            raise BadResponse(f"connection closed before the response head ({len(data)} bytes)")
        data += bytes(view[:n])
        if len(data) > 65536 and b"\r\n\r\n" not in data[:65536]:
            raise BadResponse("response head larger than 64 KiB")
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest



def raise_open_files():
    """Raises this process's open files limit (inherited by what it starts) to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def error_kind(exc):
    """A short name for what went wrong with a request (http.client or a socket), for tallies."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed without an answer"
    if isinstance(exc, http.client.IncompleteRead):
        return "body cut off"
    if isinstance(exc, http.client.HTTPException):
        return f"bad response ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def percentile(values, pct):
    """The pct-th percentile (nearest rank) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def open_fds(pid):
    """How many files (sockets included) a process has open; 0 once it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Sampler:
    """Records (time, VmRSS KiB, open fds) of a process every `every` seconds until stopped."""

    def __init__(self, pid, every=0.25):
        self.pid, self.every, self.samples, self.done = pid, every, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            self.samples.append((time.monotonic(), rss_kib(self.pid), open_fds(self.pid)))
            if self.done.wait(self.every):
                return

    def stop(self):
        self.done.set()
        self.thread.join()

    def between(self, start, end):
        return [s for s in self.samples if start <= s[0] < end]
