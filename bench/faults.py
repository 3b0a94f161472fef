#!/usr/bin/env python3
"""make bench-faults: how fast a healthy route is served while a handler fails over and over.
Figures only: it asserts nothing, the exit status says only whether it ran.

One host with its default options (2 workers here: one per CPU; --cpu-timeout 1s, --max-memory
64MiB) serves the example routes plus the test guest `faults` at /f (`?at=WHERE&fault=HOW`, see
tests/guests/faults). For each case, `--fault-clients` clients request the failing route again and
again (at most `--fault-rate` times a second each), each on a new connection, while wrk measures GET /hello-world (`--connections` keep-alive
connections, `--secs` seconds). Cases: every fault (loop, trap, panic, grow, huge, recurse) in
every hook (before, stream, after) and in the third pull of a chunked and of an event stream
(after the head: the connection is aborted); `--only loop,trap` keeps some faults.

For each case: hello-world req/s and p99 alone, then with the failing client, and the ratio of
the two (measured one right after the other, so the machine's drift mostly cancels), the
failing requests answered per second and whether each got what the host promises (504 for a
loop and 500 for the others in a hook; an aborted chunked body in a pull), and the host's peak
RSS. A loop runs until
its CPU budget is spent, but yields its worker at every epoch tick (1 ms), so the requests
queued on that worker keep being served in between; the loop's answer takes longer instead.

Only 127.0.0.1 is used; every process is started here and killed by PID when it ends, also on
Ctrl-C. The machine's other load (builds!) moves every figure.
"""
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

from harness import (Server, bench_parser, check_inputs, machine, on_signal, rss_kib, split_addr, stop_all,
                     wrk)

FAULTS = ["loop", "trap", "panic", "grow", "huge", "recurse"]
PLACES = ["before", "stream", "after", "chunk", "event"]
# Seconds a failing request may take before its client gives up (a loop takes --cpu-timeout).
FAULT_TIMEOUT = 30


def fault_request(place, fault):
    """The failing request for one case, closing its connection after the answer."""
    query = f"at={place}&fault={fault}" + ("&pull=3" if place in ("chunk", "event") else "")
    if place == "stream":
        return (f"POST /f?{query} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
                "Content-Length: 5\r\n\r\nhello").encode()
    return f"GET /f?{query} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode()


def as_promised(place, fault, wire):
    """Whether the host answered a failing request as it promises (README, *Hostile handlers*)."""
    if place in ("chunk", "event"):
        # After the head: 200, the pulls before the failing one, and no last chunk.
        return wire.startswith(b"HTTP/1.1 200 ") and not wire.endswith(b"\r\n0\r\n\r\n")
    want = b"504" if fault == "loop" else b"500"
    return wire.startswith(b"HTTP/1.1 " + want + b" ")


class FaultClients:
    """`count` threads sending one case's failing request until stopped; counts the answers."""

    def __init__(self, addr, place, fault, count, rate):
        self.addr, self.place, self.fault = split_addr(addr), place, fault
        self.pause = 1 / rate if rate else 0
        self.request = fault_request(place, fault)
        self.done, self.promised, self.broken = 0, 0, []
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(count)]

    def run(self):
        while not self.stopping.wait(self.pause):
            wire, error = b"", None
            try:
                with socket.create_connection(self.addr, timeout=FAULT_TIMEOUT) as s:
                    s.sendall(self.request)
                    while chunk := s.recv(65536):
                        wire += chunk
            except OSError as e:
                error = e
            with self.lock:
                self.done += 1
                if error is None and as_promised(self.place, self.fault, wire):
                    self.promised += 1
                elif len(self.broken) < 3:
                    self.broken.append(repr(error) if error else wire[:80].decode(errors="replace"))

    def __enter__(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(FAULT_TIMEOUT + 5)
        self.secs = time.monotonic() - self.started


def hello_failures(log):
    """The statuses other than 200 the access log shows for GET /hello-world: `2 × 503`."""
    counts = {}
    with open(log, errors="replace") as f:
        for line in f:
            if " access: " in line and "path=/hello-world " in line:
                found = re.search(r" status=(\S+)", line)
                if found and found.group(1) != "200":
                    counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return ", ".join(f"{n} × {status}" for status, n in sorted(counts.items()))


def layout_routes(args, tmp):
    """The example routes plus the test guest `faults` at /f."""
    routes = os.path.join(tmp, "routes")
    shutil.copytree(args.examples, routes)
    os.makedirs(os.path.join(routes, "f"))
    shutil.copyfile(os.path.join(args.guests, "faults.wasm"), os.path.join(routes, "f", "ANY.wasm"))
    return routes


def row(label, result, base, extra=""):
    ratio = f"{result['rps'] / base:.2f}×" if base else "-"
    p99 = f"{result['p99'] / 1000:.2f} ms" if result["p99"] is not None else "-"
    errors = "; ".join(filter(None, [result["errors"], result.get("statuses") and
                                     f"hello-world answered {result['statuses']}"]))
    errors = f"  [{errors}]" if errors else ""
    print(f"{label:<22} {result['rps']:>10,.0f} {ratio:>7} {p99:>9}  {extra}{errors}", flush=True)


def parse_args():
    parser = bench_parser(__doc__, "where the test guest faults.wasm is")
    parser.add_argument("--only", default=",".join(FAULTS), help=f"faults to run, of {','.join(FAULTS)} (default: all)")
    parser.add_argument("--places", default=",".join(PLACES),
                        help=f"where they happen, of {','.join(PLACES)} (default: all)")
    parser.add_argument("--secs", type=int, default=5, help="length of each wrk run (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections (default: %(default)s)")
    parser.add_argument("--fault-clients", type=int, default=1,
                        help="clients requesting the failing route at once (default: %(default)s)")
    parser.add_argument("--fault-rate", type=float, default=50,
                        help="failing requests per second per client at most, 0 for as many as it can; each "
                             "costs an instance, a trap and a connection, on the same cores as wrk and the "
                             "host (default: %(default)s)")
    args = parser.parse_args()
    for name, known in (("only", FAULTS), ("places", PLACES)):
        chosen = [s.strip() for s in getattr(args, name).split(",") if s.strip()]
        unknown = [s for s in chosen if s not in known]
        if unknown:
            parser.error(f"--{name}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
        setattr(args, name, chosen)
    if not 1 <= args.secs <= 600 or not 1 <= args.connections <= 10_000 or not 1 <= args.fault_clients <= 64 \
            or args.fault_rate < 0:
        parser.error("--secs is 1–600, --connections 1–10000, --fault-clients 1–64, --fault-rate ≥ 0")
    check_inputs(parser, args, guests=["faults.wasm"], tools=["wrk"], make="make bench-faults")
    return args


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = tempfile.mkdtemp(prefix="wasm-host-faults-")
    try:
        routes = layout_routes(args, tmp)
        log = os.path.join(tmp, "host.log")
        host = Server("wasm-host", [args.host, "run", routes, "--listen", "127.0.0.1:0"], log=log)
        if not host.addr:
            print(f"wasm-host did not start: {host.failure()}", file=sys.stderr)
            return 1
        url = f"{host.url}/hello-world"
        print(f"GET /hello-world while a handler fails: {args.host}")
        print(f"wrk -t1 -c{args.connections} -d{args.secs}s; {args.fault_clients} failing client(s), "
              f"{args.fault_rate:g} requests/s each at most; "
              f"machine: {machine()}")
        print(f"{'case':<22} {'req/s':>10} {'ratio':>7} {'p99':>9}  failing requests")
        wrk(url, args.connections, 1, host.pid)  # warm-up
        ratios = []
        for place in args.places:
            for fault in args.only:
                # Hello world alone just before, so the machine's drift cancels out of the ratio.
                host.truncate_log()
                alone = wrk(url, args.connections, args.secs, host.pid)
                alone["statuses"] = hello_failures(log)
                host.truncate_log()
                with FaultClients(host.addr, place, fault, args.fault_clients, args.fault_rate) as faults:
                    result = wrk(url, args.connections, args.secs, host.pid)
                result["statuses"] = hello_failures(log)
                promised = "all as promised" if faults.promised == faults.done else \
                    f"{faults.done - faults.promised} NOT as promised: {'; '.join(faults.broken)}"
                row("  alone", alone, None, f"host RSS {alone['rss']:.1f} MiB")
                row(f"{fault} in {place}", result, alone["rps"],
                    f"{faults.done / faults.secs:,.1f}/s, {promised}; peak RSS {result['rss']:.1f} MiB")
                if alone["rps"]:
                    ratios.append(result["rps"] / alone["rps"])
        if ratios:
            ratios.sort()
            print(f"\nratio to hello world alone: median {ratios[len(ratios) // 2]:.2f}×, lowest {ratios[0]:.2f}×, "
                  f"highest {ratios[-1]:.2f}× over {len(ratios)} cases")
        print(f"host RSS at the end {rss_kib(host.pid) / 1024:.1f} MiB; machine at the end: {machine()}")
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e or 'Ctrl-C'}): stopping the host", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
