#!/usr/bin/env python3
"""The independent HTTP/1.1 request parser of the differential fuzz test (host/src/http/fuzz.rs).

One long-lived process: h11 (PyPI, pinned by scripts/ensure-fuzz.sh) parses the requests the
Rust test generates and writes what it made of each, so both parsers see the same bytes.

Protocol, all integers unsigned 32-bit big-endian:
  stdin   batches: COUNT, then COUNT times (LENGTH, LENGTH bytes): one request each, parsed
          alone on a fresh server-side h11.Connection, as if it were the whole of what a client
          sent so far (no end of file: a message that is not complete is "incomplete").
  stdout  after reading a whole batch, COUNT lines of JSON, one per request, in order, then a
          flush. Byte strings are decoded as latin-1 (one char per byte), so they survive JSON.
A batch is read whole before any answer is written, so neither side can block the other on a
full pipe. End of stdin ends the process.

Each answer line:
  {"head": null, "error": "..."}            the request line or a header field was refused
  {"head": null, "error": null}             the head is not complete
  {"head": {"method", "target", "version", "headers": [[raw name, value], ...],
            "framing": "none" | "chunked" | "length:N"},
   "body": "complete" | "incomplete" | "error",
   "data": decoded body so far, "consumed": bytes of the message (head and body) when
   complete, "error": h11's message when the body was refused}
"""

import json
import struct
import sys

import h11


def latin1(b):
    return bytes(b).decode("latin-1")


def framing(request):
    # h11 has already validated these (one Transfer-Encoding, exactly "chunked"; one
    # Content-Length value, duplicates merged), and for a request neither means no body.
    names = [name for name, _ in request.headers]
    if b"transfer-encoding" in names:
        return "chunked"
    for name, value in request.headers:
        if name == b"content-length":
            n = int(value)
            return "none" if n == 0 else "length:%d" % n
    return "none"


def parse(data, max_head_bytes):
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
    conn.receive_data(data)
    head = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            if head is None:
                return {"head": None, "error": str(e) or type(e).__name__}
            return {"head": head, "body": "error", "data": latin1(body), "error": str(e)}
        if event is h11.NEED_DATA:
            if head is None:
                return {"head": None, "error": None}
            return {"head": head, "body": "incomplete", "data": latin1(body)}
        if isinstance(event, h11.Request):
            head = {
                "method": latin1(event.method),
                "target": latin1(event.target),
                "version": latin1(event.http_version),
                "headers": [[latin1(n), latin1(v)] for n, v in event.headers.raw_items()],
                "framing": framing(event),
            }
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            consumed = len(data) - len(conn.trailing_data[0])
            return {"head": head, "body": "complete", "data": latin1(body), "consumed": consumed}
        else:
            # PAUSED or ConnectionClosed cannot come before EndOfMessage without an EOF.
            return {"head": head, "body": "error", "data": latin1(body), "error": "unexpected event %r" % (event,)}


def read_exact(stream, n):
    buf = stream.read(n)
    if buf is None or len(buf) != n:
        return None
    return buf


def main():
    max_head_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else 65536
    stdin = sys.stdin.buffer
    stdout = sys.stdout
    while True:
        header = read_exact(stdin, 4)
        if header is None:
            return
        (count,) = struct.unpack(">I", header)
        requests = []
        for _ in range(count):
            (length,) = struct.unpack(">I", read_exact(stdin, 4))
            requests.append(read_exact(stdin, length))
        lines = []
        for request in requests:
            try:
                answer = parse(request, max_head_bytes)
            except Exception as e:  # an h11 bug, not a verdict on the request: say so
                answer = {"head": None, "error": None, "crash": "%s: %s" % (type(e).__name__, e)}
            lines.append(json.dumps(answer))
        stdout.write("\n".join(lines))
        stdout.write("\n")
        stdout.flush()


if __name__ == "__main__":
    main()
