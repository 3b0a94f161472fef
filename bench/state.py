#!/usr/bin/env python3
"""make bench-state: shared-state throughput and many parked long polls. Prints figures only.

1. KV through a handler: GET and PUT /store/bench with wrk (2 threads, 64 connections, 10 s),
   on the embedded store (--state DIR) and on Redis (a redis-server started here on a free
   port, temporary dir, no persistence), next to GET /hello-world in the same run.
2. 10,000 long polls (GET /messages/wait?after=N) parked on one host, woken by one POST:
   the time from the POST until every poll has its answer, and the host's peak RSS.
"""
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

POLLS = 10_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start_host(host, routes, state, extra=()):
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [host, "run", routes, "--listen", "127.0.0.1:0", "--state", state, *extra],
        stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"},
    )
    for _ in range(1200):
        out.seek(0)
        text = out.read()
        if "listening on http://" in text:
            return proc, text.split("listening on http://", 1)[1].split()[0]
        if proc.poll() is not None:
            sys.exit(f"host exited: {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("host did not start")


def http(addr, method, path, body=b"", json=False):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        # POST /messages takes a JSON body (`Json<T>` answers 415 without this content type).
        kind = "Content-Type: application/json\r\n" if json else ""
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: b\r\n{kind}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def wrk(url, script=None):
    args = ["wrk", "-t2", "-c64", "-d10s", url]
    if script:
        args[1:1] = ["-s", script]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec"))
    non2xx = next((l.split()[-1] for l in out.splitlines() if "Non-2xx" in l), "0")
    return float(rps), non2xx


def kv_rates(label, addr, put_script):
    assert http(addr, "PUT", "/store/bench", b"a value of some thirty bytes..") == 204
    hello, _ = wrk(f"http://{addr}/hello-world")
    get, bad_get = wrk(f"http://{addr}/store/bench")
    put, bad_put = wrk(f"http://{addr}/store/bench", put_script)
    print(f"{label:<10} hello {hello:>9.0f} req/s   kv GET {get:>9.0f} req/s   kv PUT {put:>9.0f} req/s"
          f"   (non-2xx: {bad_get}, {bad_put})")


def park_and_wake(label, addr, pid):
    host, port = addr.rsplit(":", 1)
    assert http(addr, "POST", "/messages", b'"warm-up"', json=True) == 200
    # The id of the last message: every poll waits for the one after it.
    last = http_last_id(addr)
    sel = selectors.DefaultSelector()
    socks = []
    request = f"GET /messages/wait?after={last}&timeout=120 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode()
    started = time.monotonic()
    for _ in range(POLLS):
        s = socket.create_connection((host, int(port)))
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, bytearray())
        socks.append(s)
    # Parked when the host has stopped burning CPU for a while.
    idle, before = 0, cpu_ticks(pid)
    while idle < 3 and time.monotonic() - started < 120:
        time.sleep(0.5)
        now = cpu_ticks(pid)
        idle = idle + 1 if now - before <= 2 else 0
        before = now
    parked_rss = rss_mib(pid)
    print(f"{label:<10} {POLLS} polls parked in {time.monotonic() - started:.1f} s (one client connecting one by one), "
          f"host RSS {parked_rss:.0f} MiB")
    peak = parked_rss
    woke = time.monotonic()
    assert http(addr, "POST", "/messages", b'"wake"', json=True) == 200
    done, ok, statuses = 0, 0, {}
    while done < POLLS and time.monotonic() - woke < 60:
        for key, _ in sel.select(timeout=0.05):
            buf = key.data
            chunk = key.fileobj.recv(65536)
            if chunk:
                buf += chunk
                continue
            sel.unregister(key.fileobj)
            key.fileobj.close()
            done += 1
            good = buf.startswith(b"HTTP/1.1 200") and b'"wake"' in buf
            ok += good
            if not good:
                statuses[bytes(buf[:12])] = statuses.get(bytes(buf[:12]), 0) + 1
        peak = max(peak, rss_mib(pid))
    elapsed = time.monotonic() - woke
    print(f"{label:<10} one POST answered {ok}/{POLLS} polls (200 with the message) in {elapsed:.2f} s; "
          f"peak host RSS {peak:.0f} MiB" + (f"; other answers: {statuses}" if statuses else ""))
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def sleep_baseline(addr, pid):
    """10,000 requests to a handler that only sleeps: the cost of a waiting instance itself."""
    host, port = addr.rsplit(":", 1)
    base = rss_mib(pid)
    socks = []
    started = time.monotonic()
    for _ in range(POLLS):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /hang/120/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        socks.append(s)
    idle, before = 0, cpu_ticks(pid)
    while idle < 3 and time.monotonic() - started < 120:
        time.sleep(0.5)
        now = cpu_ticks(pid)
        idle = idle + 1 if now - before <= 2 else 0
        before = now
    rss = rss_mib(pid)
    print(f"{'baseline':<10} {POLLS} sleeping handlers (no state) waiting in their instances: host RSS {rss:.0f} MiB "
          f"({(rss - base) * 1024 / POLLS:.0f} KiB each)")
    for s in socks:
        s.close()


def http_last_id(addr):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /messages/wait?after=0&timeout=0 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1].decode()
    # The last "id": N of the JSON list (chunked framing lines are not digits-with-quotes).
    return max(int(part.split(",")[0].split("}")[0]) for part in body.split('"id":')[1:])


def main():
    only = os.environ.get("BENCH_STATE_ONLY")  # "polls" (both backends) or "redis-polls" to run a part
    host_bin, routes = sys.argv[1], sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = tempfile.mkdtemp(prefix="bench-state-")
    put_script = os.path.join(work, "put.lua")
    with open(put_script, "w") as f:
        f.write('wrk.method = "PUT"\nwrk.body = "a value of some thirty bytes.."\n')
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [redis]
    try:
        time.sleep(0.5)
        many = ["--max-instances", "10500", "--route-max-instances", "10500", "--max-connections", "12000", "--request-timeout", "180s"]
        embedded, addr_e = start_host(host_bin, routes, os.path.join(work, "state"), many)
        procs.append(embedded)
        redis_host, addr_r = start_host(host_bin, routes, f"redis://127.0.0.1:{redis_port}", many)
        procs.append(redis_host)
        print(f"wrk -t2 -c64 -d10s, 2 shared cores; value of 30 bytes")
        if not only:
            kv_rates("embedded", addr_e, put_script)
            kv_rates("redis", addr_r, put_script)
            sleeper, addr_s = start_host(host_bin, routes, "memory", many)
            procs.append(sleeper)
            sleep_baseline(addr_s, sleeper.pid)
            sleeper.kill()
        if only in (None, "polls"):
            park_and_wake("embedded", addr_e, embedded.pid)
        if only in (None, "polls", "redis-polls"):
            park_and_wake("redis", addr_r, redis_host.pid)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
