"""A standard `wasi:http/proxy` component in Python: it runs on any wasi:http host, wasm-host too.

Built with componentize-py against the WASI 0.2 WIT (see examples/polyglot/build.sh):

    componentize-py -d <wasi wit> -w wasi:http/proxy@0.2.12 componentize app -o ANY.wasm

Served at `py-wasi/{word}/ANY.wasm` it answers any method with JSON describing the request:

    {"method": "POST", "path": "/py-wasi/hi?x=1", "params": {"word": "hi"},
     "route": "/py-wasi/{word}", "body_bytes": 5, "language": "python"}

wasm-host passes route params as `wasm-host-param-<name>` header fields and the matched route
as `wasm-host-route` (a client cannot forge them: the host strips incoming `wasm-host-*` fields).
The body is read in 64 KiB pieces as it arrives, so a large upload is never held whole.
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

PARAM_PREFIX = "wasm-host-param-"
READ_SIZE = 64 * 1024
# `blocking-write-and-flush` takes at most 4096 bytes per call (wasi:io/streams).
WRITE_SIZE = 4096


def method_name(method) -> str:
    if isinstance(method, Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def body_length(request: IncomingRequest) -> int:
    """Reads the request body to its end, counting bytes, one piece at a time."""
    body = request.consume()
    total = 0
    with body.stream() as stream:
        while True:
            try:
                total += len(stream.blocking_read(READ_SIZE))
            except Err as err:
                if isinstance(err.value, StreamError_Closed):
                    break
                raise
    IncomingBody.finish(body)
    return total


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        fields = request.headers().entries()
        answer = {
            "method": method_name(request.method()),
            "path": request.path_with_query(),
            "params": {
                name[len(PARAM_PREFIX):]: value.decode()
                for name, value in fields
                if name.startswith(PARAM_PREFIX)
            },
            "route": next((value.decode() for name, value in fields if name == "wasm-host-route"), None),
            "body_bytes": body_length(request),
            "language": "python",
        }
        payload = json.dumps(answer).encode()

        headers = Fields.from_list([
            ("content-type", b"application/json"),
            ("content-length", str(len(payload)).encode()),
        ])
        response = OutgoingResponse(headers)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            for start in range(0, len(payload), WRITE_SIZE):
                stream.blocking_write_and_flush(payload[start:start + WRITE_SIZE])
        OutgoingBody.finish(body, None)
