#!/usr/bin/env python3
"""make bench-reload: how fast a deploy is served, and whether any request fails meanwhile.

1. Latency: 20 times, write a new handler version beside the routes tree and `mv` it over
   v/GET.wasm, then poll GET /v until the new version answers. Every version has new content
   (a unique custom section appended to the component), so each swap compiles from scratch,
   like a real deploy of new code.
2. Availability: wrk keeps 32 connections busy on GET /v while 100 swaps happen; wrk's error
   counts (socket errors, non-2xx) are the failed requests.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def with_custom_section(component, tag):
    """The component plus a custom section: same code, new bytes (so a new content hash)."""
    name = b"wasm-host-bench"
    payload = leb128(len(name)) + name + tag.encode()
    return component + b"\x00" + leb128(len(payload)) + payload


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except Exception as e:  # noqa: BLE001 - any failure counts as "not yet"
        return f"error: {e}"


def deploy(routes, data):
    tmp = os.path.join(routes, ".deploy.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(routes, "v", "GET.wasm"))


def main():
    host, v1_path, v2_path = sys.argv[1:4]
    versions = [open(v1_path, "rb").read(), open(v2_path, "rb").read()]
    answers = ["v1", "v2"]
    with tempfile.TemporaryDirectory() as routes, tempfile.TemporaryDirectory() as cache:
        os.mkdir(os.path.join(routes, "v"))
        deploy(routes, versions[0])
        server = subprocess.Popen(
            [host, "run", routes, "--listen", "127.0.0.1:0", "--cache-dir", cache],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"},
        )
        try:
            addr = re.search(r"listening on (http://\S+)", server.stdout.readline()).group(1)
            url = f"{addr}/v"
            assert get(url) == "v1"

            latencies = []
            for i in range(1, 21):
                want = answers[i % 2]
                data = with_custom_section(versions[i % 2], f"latency-{i}")
                start = time.perf_counter()
                deploy(routes, data)
                while get(url) != want:
                    if time.perf_counter() - start > 30:
                        raise SystemExit(f"swap {i} not served after 30 s")
                latencies.append((time.perf_counter() - start) * 1000)
            latencies.sort()
            p95 = latencies[int(0.95 * (len(latencies) - 1))]
            print(f"mv -> first response from the new version, 20 swaps (fresh compile each):")
            print(f"  p50 {statistics.median(latencies):6.1f} ms   p95 {p95:6.1f} ms   max {latencies[-1]:6.1f} ms")

            done = threading.Event()

            def swapper():
                for i in range(100):
                    deploy(routes, with_custom_section(versions[i % 2], f"load-{i}"))
                    time.sleep(0.1)
                done.set()

            wrk = subprocess.Popen(
                ["wrk", "-t2", "-c32", "-d14s", url], stdout=subprocess.PIPE, text=True,
            )
            time.sleep(1)
            t = threading.Thread(target=swapper)
            t.start()
            out, _ = wrk.communicate()
            t.join()
            requests = re.search(r"(\d+) requests in", out).group(1)
            socket = re.search(r"Socket errors: (.*)", out)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            print("100 swaps under wrk load (32 connections, 14 s):")
            print(f"  requests {requests}   non-2xx {non2xx.group(1) if non2xx else 0}   "
                  f"socket errors {socket.group(1) if socket else 'none'}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
