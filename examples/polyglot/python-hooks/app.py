"""A wasm-host handler in Python, against wasm-host's own `handler` world (`wit/`).

Built with componentize-py (see examples/polyglot/build.sh):

    componentize-py -d wit -w handler componentize app -o GET.wasm

Served at `greet/{name}/GET.wasm` it answers `GET /greet/ada` with JSON:

    {"hello": "ada", "visits": 3, "language": "python"}

`visits` counts the requests for that name in the shared key-value store, so it survives
restarts with the default durable store. A name longer than 64 characters is answered early
by `before` with 400; the body, if any, is counted by `stream` and reported as `body_bytes`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import kv
from wit_world.imports.types import (
    Body_Full,
    Flow_Proceed,
    Flow_Respond,
    Header,
    Request,
    Response,
)

MAX_NAME = 64


def json_response(status: int, value: object) -> Response:
    body = json.dumps(value).encode()
    return Response(status, [Header("content-type", b"application/json")], Body_Full(body))


# Per-request state. componentize-py makes a new `WitWorld` object for every call of a hook,
# so the state lives in the module; `before` resets it, because with --instance-reuse one
# instance serves several requests one after another and module globals persist.
name = ""
body_bytes = 0


class WitWorld(wit_world.WitWorld):
    def before(self, request: Request):
        global name, body_bytes
        name = dict(request.params).get("name", "world")
        body_bytes = 0
        if len(name) > MAX_NAME:
            return Flow_Respond(json_response(400, {"error": f"name longer than {MAX_NAME} characters"}))
        return Flow_Proceed()

    def stream(self, chunk: bytes):
        global body_bytes
        body_bytes += len(chunk)
        return Flow_Proceed()

    def after(self) -> Response:
        try:
            visits = kv.increment("python-greet:" + name, 1)
        except Err as err:
            # The store's errors are values: `unavailable` (e.g. Redis is down) becomes a 503.
            status = 503 if isinstance(err.value, kv.Error_Unavailable) else 500
            return json_response(status, {"error": err.value.value})
        answer = {"hello": name, "visits": visits, "language": "python"}
        if body_bytes:
            answer["body_bytes"] = body_bytes
        return json_response(200, answer)

    def next_chunk(self):
        return None

    def next_event(self):
        return None
