#!/usr/bin/env python3
"""make bench-slow: slow-client attacks (Debian's slowhttptest) on the host while normal clients
are measured. Figures only: it asserts nothing, the exit status says only whether it ran.

Attacks (all by default; `--only slowloris,slow-read` runs some), each on a fresh host with its
default options (and its default logging, to a file), `--connections` slowhttptest connections
opened at `--rate` per second:

  slowloris  -H   request heads that never end: a header line every `--interval` seconds,
                  GET /hello-world (the host's --header-timeout bounds them)
  slow-body  -B   POST /upload-hash with Content-Length 1 MB, the body trickled a few bytes
                  every `--interval` seconds (--body-timeout does not see a trickle; a
                  minimum body rate, --min-rate where the host has it, bounds them)
  slow-read  -X   GET /fill/67108864 (64 MiB: more than loopback's socket buffers take, so
                  the host's stream stalls) read 32 bytes a second through a TCP window of
                  32-64 bytes (--send-timeout bounds them on the host; the client still
                  reads what the kernel had queued long after); at most `--read-connections`
                  (default 200: each stalled one queues up to 4 MiB, tcp_wmem's maximum, of
                  kernel socket memory; 300 took 1.1 GiB here, at the machine's tcp_mem floor)
  range      -R   GET /style.css (--static examples/assets) with a Range header of up to
                  ≈3,000 overlapping ranges (the "Apache killer")

Each attack has three phases: `--before` seconds of probes alone, the attack (slowhttptest runs
for `--secs` seconds, and is started again whenever it ends sooner: when the host has closed all
its connections, or at once for the range attack, whose requests are answered), then `--after`
seconds of probes alone (slowhttptest has closed its connections: the recovery). Two probes run
throughout:

  keep-alive  `--probe-threads` threads, each GET /hello-world as fast as it can on a keep-alive
              connection (a new one after a failure and every 100 requests)
  new conn    `--fresh-rate` requests per second, each on a new connection (Connection: close):
              what a client arriving during the attack gets

A probe request succeeds with a 200 `Hello world!` within `--timeout` seconds. For each phase and
probe: requests/s, the success ratio, failures by kind, p50/p99/max latency, the worst second
(fewest successes in a whole second of the phase), and the host's RSS and open files, at their
peak and at the end of the phase (VmRSS and /proc/PID/fd sampled every 250 ms). Below each table:
slowhttptest's own figures (its connections at their peak, closed at the end, seconds its probe
saw the service available), the peak of the kernel's TCP memory (/proc/net/sockstat, the whole
machine's), the statuses of the host's access log other than the probes' 200s, and why the
host's log says requests failed.

Only 127.0.0.1 is used; every process is started here and killed by PID when it ends, also on
Ctrl-C. The machine's other load (builds!) moves every figure.
"""
import collections
import csv
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from harness import (Sampler, Server, bench_parser, check_inputs, error_kind, fmt_us, machine, on_signal, percentile, raise_open_files,
                     split_addr, spawn, stop, stop_all)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_PATH = "/hello-world"
PROBE_BODY = b"Hello world!"
# A keep-alive probe opens a new connection after this many requests, so new connections are
# probed by those threads too.
REQUESTS_PER_CONNECTION = 100
# Pause after a failed probe request, so a refusing host is not hammered in a tight loop.
FAILURE_PAUSE = 0.05
# Extra seconds slowhttptest gets past its own -l before it is killed.
SLOWHTTPTEST_GRACE = 30
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Attack:
    """One slowhttptest mode and the argv it is run with."""

    def __init__(self, name, flag, path, what, extra, connections=lambda a: a.connections):
        self.name, self.flag, self.path, self.what, self.extra = name, flag, path, what, extra
        self.connections = connections

    def argv(self, args, url, secs):
        """The command without its report options (`-g -o PREFIX`, added when it is run)."""
        return ["slowhttptest", self.flag, "-c", str(self.connections(args)), "-r", str(args.rate), "-l", str(secs),
                "-p", "3", "-u", url + self.path, *self.extra(args)]


ATTACKS = (
    Attack("slowloris", "-H", "/hello-world", "request heads that never end",
           lambda a: ["-i", str(a.interval), "-x", "24"]),
    Attack("slow-body", "-B", "/upload-hash", "a 1 MB POST body trickled in",
           lambda a: ["-i", str(a.interval), "-x", "24", "-s", "1000000"]),
    Attack("slow-read", "-X", "/fill/67108864", "64 MiB responses read through a tiny window",
           lambda a: ["-w", "32", "-y", "64", "-n", "1", "-z", "32", "-k", "1"],
           connections=lambda a: min(a.connections, a.read_connections)),
    Attack("range", "-R", "/style.css", "Range headers of many overlapping ranges",
           lambda a: ["-a", "10", "-b", "3000"]),
)


# ---------------------------------------------------------------------------------------------
# The probe: normal clients of GET /hello-world.


class Probe:
    """Normal clients measured throughout; each record is (probe, started, seconds, outcome)."""

    def __init__(self, addr, args):
        self.host, self.port = split_addr(addr)
        self.args, self.records, self.lock, self.done = args, [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.keep_alive, daemon=True) for _ in range(args.probe_threads)]
        self.threads.append(threading.Thread(target=self.fresh, daemon=True))
        for thread in self.threads:
            thread.start()

    def record(self, probe, started, outcome):
        with self.lock:
            self.records.append((probe, started, time.monotonic() - started, outcome))

    def one(self, conn, close):
        conn.request("GET", PROBE_PATH, headers={"Connection": "close"} if close else {})
        response = conn.getresponse()
        body = response.read()
        outcome = "ok" if response.status == 200 and body == PROBE_BODY else f"status {response.status}"
        return outcome, response.will_close

    def keep_alive(self):
        conn, served = None, 0
        while not self.done.is_set():
            if conn is None:
                conn, served = http.client.HTTPConnection(self.host, self.port, timeout=self.args.timeout), 0
            started = time.monotonic()
            try:
                outcome, closed = self.one(conn, close=False)
                served += 1
            except Exception as e:  # noqa: BLE001 - every failure is a tallied outcome
                outcome, closed = error_kind(e), True
            self.record("keep-alive", started, outcome)
            if closed or served >= REQUESTS_PER_CONNECTION:
                conn.close()
                conn = None
            if outcome != "ok":
                self.done.wait(FAILURE_PAUSE)

    def fresh(self):
        step = 1 / self.args.fresh_rate
        next_at = time.monotonic()
        while not self.done.wait(max(0.0, next_at - time.monotonic())):
            next_at += step
            started = time.monotonic()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.args.timeout)
            try:
                outcome, _ = self.one(conn, close=True)
            except Exception as e:  # noqa: BLE001
                outcome = error_kind(e)
            finally:
                conn.close()
            self.record("new conn", started, outcome)
            next_at = max(next_at, time.monotonic() - step)  # no burst to catch up after a stall

    def stop(self):
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=self.args.timeout + 5)


def phase_rows(probe, sampler, phases):
    """One row per phase and probe kind, from the records started inside the phase."""
    rows = []
    for phase, start, end in phases:
        samples = sampler.between(start, end)
        rss = max((s[1] for s in samples), default=0) / 1024
        rss_end = samples[-1][1] / 1024 if samples else 0
        fds = max((s[2] for s in samples), default=0)
        fds_end = samples[-1][2] if samples else 0
        for kind in ("keep-alive", "new conn"):
            records = [r for r in probe.records if r[0] == kind and start <= r[1] < end]
            ok = [r for r in records if r[3] == "ok"]
            failed = collections.Counter(r[3] for r in records if r[3] != "ok")
            per_second = collections.Counter(int(r[1] + r[2] - start) for r in ok)
            whole = range(int(end - start))
            worst = min((per_second.get(s, 0) for s in whole), default=None)
            latencies = [r[2] * 1e6 for r in records]
            rows.append({
                "phase": phase, "probe": kind, "secs": end - start, "requests": len(records),
                "rps": len(ok) / (end - start), "ratio": len(ok) / len(records) if records else None,
                "failed": failed, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                "max": max(latencies, default=None), "worst": worst, "rss": rss, "rss_end": rss_end, "fds": fds, "fds_end": fds_end,
            })
    return rows


def print_rows(rows):
    print(f"  {'phase':<7} {'probe':<10} {'ok req/s':>9} {'ok %':>7} {'p50':>9} {'p99':>9} {'max':>9} "
          f"{'worst 1 s':>9} {'RSS peak/end MiB':>16} {'fds peak/end':>12}  failures")
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio'] * 100:.1f}%"
        failed = ", ".join(f"{n} × {kind}" for kind, n in r["failed"].most_common()) or "-"
        print(f"  {r['phase']:<7} {r['probe']:<10} {r['rps']:>9.0f} {ratio:>7} {fmt_us(r['p50']):>9} "
              f"{fmt_us(r['p99']):>9} {fmt_us(r['max']):>9} {r['worst'] if r['worst'] is not None else '-':>9} "
              f"{r['rss']:>8.1f} / {r['rss_end']:>5.1f} {r['fds']:>6} / {r['fds_end']:>4}  {failed}")


# ---------------------------------------------------------------------------------------------
# slowhttptest and the host's log.


def slowhttptest_summary(prefix, stdout):
    """Its peak connections, closed at the end, seconds its probe saw the service, its exit."""
    text = ANSI.sub("", stdout)
    found = re.findall(r"Exit status:\s*(.+)", text)
    exit_status = found[-1].strip() if found else "(no exit status printed)"
    try:
        with open(prefix + ".csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return f"no CSV report; exit: {exit_status}"
    if not rows:
        return f"empty CSV report; exit: {exit_status}"
    connected = max(int(r["Connected"]) for r in rows)
    closed = int(rows[-1]["Closed"])
    available = sum(1 for r in rows if int(r["Service Available"]) > 0)
    return (f"connected at most {connected}, closed by the end {closed}, its probe saw the service "
            f"available {available}/{len(rows)} s; exit: {exit_status}")


class KernelTcpMemory:
    """The peak of the kernel's TCP memory (the `mem` pages of /proc/net/sockstat), every 250 ms."""

    def __init__(self):
        self.before_mib = self.peak_mib = self.read()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def read():
        try:
            with open("/proc/net/sockstat") as f:
                found = re.search(r"^TCP:.* mem (\d+)", f.read(), re.M)
        except OSError:
            return 0.0
        return int(found.group(1)) * os.sysconf("SC_PAGE_SIZE") / (1 << 20) if found else 0.0

    def run(self):
        while not self.done.wait(0.25):
            self.peak_mib = max(self.peak_mib, self.read())

    def stop(self):
        self.done.set()
        self.thread.join()


def run_slowhttptest(command, prefix):
    """Runs slowhttptest once (killed if it overruns its -l); returns its summary line."""
    with open(prefix + ".out", "w") as out:
        tool = spawn([*command, "-g", "-o", prefix], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                     cwd=os.path.dirname(prefix))
        try:
            tool.wait(timeout=int(command[command.index("-l") + 1]) + SLOWHTTPTEST_GRACE)
        except subprocess.TimeoutExpired:
            print(f"  slowhttptest did not end {SLOWHTTPTEST_GRACE} s after its -l: killed")
        stop(tool)
    with open(prefix + ".out", errors="replace") as f:
        return slowhttptest_summary(prefix, f.read())


def log_statuses(log):
    """(status, path) -> count over the access log, why connections failed (the host's
    conn::failure lines by message), and the WARN/ERROR lines (count, first three)."""
    statuses, failures, problems, first = collections.Counter(), collections.Counter(), 0, []
    with open(log, "rb") as f:
        for line in f:
            if b" access: " in line:
                found = re.search(rb" status=(\d+)", line)
                route = re.search(rb" path=(\S+)", line)
                statuses[(int(found.group(1)) if found else 0, route.group(1).decode() if route else "?")] += 1
                continue
            found = re.search(rb"conn::failure: (.*?)(?: route=| peer=|$)", line.rstrip())
            if found:
                failures[re.sub(r"\d+", "N", ANSI.sub("", found.group(1).decode(errors="replace")))[:90]] += 1
            if b" WARN " in line or b" ERROR " in line:
                problems += 1
                if len(first) < 3:
                    first.append(ANSI.sub("", line.decode(errors="replace")).rstrip()[:200])
    return statuses, failures, problems, first


def run_attack(args, attack, tmp, routes):
    print(f"\n== {attack.name}: {attack.what}")
    log = os.path.join(tmp, f"{attack.name}.log")
    argv = [args.host, "run", routes, "--listen", "127.0.0.1:0", "--static", args.assets]
    host = Server("host", argv, log=log)
    if host.addr is None:
        print(f"  the host did not start: {host.failure()}")
        host.stop()
        return
    command = attack.argv(args, host.url, args.secs)
    print(f"   {' '.join(command)}")
    print(f"   phases: {args.before} s before, the attack ({args.secs} s), {args.after} s after; probes: "
          f"{args.probe_threads} keep-alive threads, {args.fresh_rate}/s new connections, {args.timeout} s timeout")
    sampler = Sampler(host.pid)
    kernel = KernelTcpMemory()
    probe = Probe(host.addr, args)
    t0 = time.monotonic()
    time.sleep(args.before)
    t1 = time.monotonic()
    summaries = []
    while True:
        left = int(t1 + args.secs - time.monotonic())
        if summaries and left < 2:
            break
        summaries.append(run_slowhttptest(attack.argv(args, host.url, left if summaries else args.secs),
                                          os.path.join(tmp, f"{attack.name}-{len(summaries)}")))
    t2 = time.monotonic()
    time.sleep(args.after)
    t3 = time.monotonic()
    probe.stop()
    sampler.stop()
    kernel.stop()
    crashed = host.proc.poll()
    rows = phase_rows(probe, sampler, [("before", t0, t1), ("attack", t1, t2), ("after", t2, t3)])
    print_rows(rows)
    for i, text in enumerate(summaries[:3]):
        print(f"  slowhttptest{f' run {i + 1}' if len(summaries) > 1 else ''}: {text}")
    if len(summaries) > 3:
        print(f"  ... {len(summaries)} runs of slowhttptest in all")
    print(f"  kernel TCP memory (whole machine): {kernel.before_mib:.0f} MiB before, peak {kernel.peak_mib:.0f} MiB")
    statuses, failures, problems, first = log_statuses(log)
    others = [(n, status, path) for (status, path), n in statuses.items() if (status, path) != (200, PROBE_PATH)]
    listed = ", ".join(fmt_status(n, status, path) for n, status, path in sorted(others, reverse=True)[:6])
    print(f"  host access log: {statuses[(200, PROBE_PATH)]} × 200 {PROBE_PATH} (probes); other: {listed or 'none'}")
    if failures:
        print(f"  host log, why requests failed: {', '.join(f'{n} × {why}' for why, n in failures.most_common(4))}")
    if problems:
        print(f"  host log: {problems} WARN/ERROR lines, e.g.:")
        for line in first:
            print(f"    {line}")
    if crashed is not None:
        print(f"  HOST EXITED during the attack: status {crashed}; end of its log:\n{host.failure()[-2000:]}")
    host.stop()


def fmt_status(count, status, path):
    """`3000 × 408 /x` from the access log; status 0 is a client gone before the answer."""
    answer = status or "no answer (client gone)"
    return f"{count} × {answer} {'(no path: head unfinished)' if path == '?' else path}"


def layout_routes(args, tmp):
    """The example routes plus the test guest `fill` at /fill/{bytes}."""
    routes = os.path.join(tmp, "routes")
    shutil.copytree(args.examples, routes)
    os.makedirs(os.path.join(routes, "fill", "{bytes}"))
    shutil.copyfile(os.path.join(args.guests, "fill.wasm"), os.path.join(routes, "fill", "{bytes}", "GET.wasm"))
    return routes


def parse_args():
    names = [a.name for a in ATTACKS]
    parser = bench_parser(__doc__, "where the test guest fill.wasm is")
    parser.add_argument("--assets", default=os.path.join(REPO, "examples", "assets"),
                        help="served with --static, for the range attack (default: %(default)s)")
    parser.add_argument("--only", default=",".join(names), help=f"attacks to run, of {','.join(names)} (default: all)")
    parser.add_argument("--secs", type=int, default=75,
                        help="length of each attack, slowhttptest -l; longer than the host's default --body-timeout "
                             "(30 s) and --send-timeout (60 s) (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=3000, help="slowhttptest -c (default: 3000)")
    parser.add_argument("--read-connections", type=int, default=200,
                        help="at most this many connections for slow-read, whose stalled connections hold kernel "
                             "memory (default: %(default)s)")
    parser.add_argument("--rate", type=int, default=300, help="slowhttptest -r, connections per second (default: 300)")
    parser.add_argument("--interval", type=int, default=5,
                        help="slowhttptest -i for slowloris and slow body, seconds between follow-up data (default: 5)")
    parser.add_argument("--before", type=int, default=5, help="seconds of probes before each attack (default: 5)")
    parser.add_argument("--after", type=int, default=10, help="seconds of probes after each attack (default: 10)")
    parser.add_argument("--probe-threads", type=int, default=2, help="keep-alive probe threads (default: 2)")
    parser.add_argument("--fresh-rate", type=int, default=50,
                        help="new-connection probe requests per second (default: 50)")
    parser.add_argument("--timeout", type=float, default=5, help="probe request timeout in seconds (default: 5)")
    args = parser.parse_args()
    args.assets = os.path.abspath(args.assets)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in names]
    if unknown:
        parser.error(f"unknown attack(s) {', '.join(unknown)}; known: {', '.join(names)}")
    if min(args.secs, args.connections, args.read_connections, args.rate, args.interval, args.before, args.after,
           args.fresh_rate) < 1:
        parser.error("--secs, --connections, --read-connections, --rate, --interval, --before, --after and "
                     "--fresh-rate must be ≥ 1")
    if args.secs > 600:
        parser.error("--secs: at most 600 (every run here is bounded)")
    check_inputs(parser, args, guests=["fill.wasm"], tools=["slowhttptest"], make="make bench-slow")
    return args


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hard = raise_open_files()
    version = subprocess.run(["slowhttptest", "-h"], capture_output=True, text=True).stdout
    found = re.search(r"version ([\d.]+)", version)
    print(f"wasm-host under slow-client attacks: {args.host}")
    print(f"slowhttptest {found.group(1) if found else '?'}; machine: {machine()}; open files limit {hard}")
    tmp = tempfile.mkdtemp(prefix="wasm-host-slow-")
    try:
        routes = layout_routes(args, tmp)
        for attack in ATTACKS:
            if attack.name in args.only:
                run_attack(args, attack, tmp, routes)
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
