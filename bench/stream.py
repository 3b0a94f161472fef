#!/usr/bin/env python3
"""make bench-stream: streaming throughput and the host's memory while streaming.

Starts `wasm-host run` on the example routes, then measures with curl:
  - a 1 GiB sized response   (GET /blob/1073741824)
  - a 1 GiB chunked response (GET /blob/1073741824?chunked)
  - a 1 GiB upload           (POST /upload-hash, chunked request body from a pipe)
and samples the host's resident memory (VmRSS) every 10 ms, printing the peak of each run.
"""
import json
import re
import tempfile
import subprocess
import sys
import threading
import time

GIB = 1 << 30


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def curl(args, stdin=None, body_to="/dev/null"):
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", body_to, "-w", "%{time_total} %{size_download}"] + args,
        stdin=stdin, capture_output=True, text=True, check=True,
    ).stdout.split()
    return float(out[0]), int(float(out[1]))


def main():
    host, routes = sys.argv[1], sys.argv[2]
    server = subprocess.Popen(
        [host, "run", routes, "--listen", "127.0.0.1:0", "--max-body", "unlimited"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"},
    )
    try:
        line = server.stdout.readline()
        addr = re.search(r"listening on (http://\S+)", line).group(1)
        idle = rss_kib(server.pid)
        print(f"host idle RSS: {idle / 1024:.1f} MiB")
        runs = [
            ("1 GiB sized response  ", lambda: curl([f"{addr}/blob/{GIB}"]), "down"),
            ("1 GiB chunked response", lambda: curl([f"{addr}/blob/{GIB}?chunked"]), "down"),
        ]
        for name, run, _ in runs:
            with Sampler(server.pid) as s:
                secs, down = run()
            assert down == GIB, f"{name}: got {down} bytes"
            print(f"{name}: {GIB / secs / 1e6:8.0f} MB/s   peak RSS {s.peak / 1024:6.1f} MiB")
        with Sampler(server.pid) as s:
            feeder = subprocess.Popen(["head", "-c", str(GIB), "/dev/zero"], stdout=subprocess.PIPE)
            with tempfile.NamedTemporaryFile() as answer:
                secs, _ = curl(["-T", "-", "-X", "POST", f"{addr}/upload-hash"], stdin=feeder.stdout,
                               body_to=answer.name)
                received = json.load(open(answer.name))["bytes"]
            feeder.wait()
        assert received == GIB, f"upload: the handler received {received} bytes"
        print(f"1 GiB upload-hash     : {GIB / secs / 1e6:8.0f} MB/s   peak RSS {s.peak / 1024:6.1f} MiB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
