"""A real HTTP server on loopback (stdlib ``http.server`` in a thread) that records requests.

Each request is answered by ``respond(request) -> (status, headers, body)``; the default
answers 200 ``ok`` (what a Slack webhook says). Tests swap ``respond`` to answer 429, 500 or a
vendor's per-record result.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Loopback:
    """The server's record of requests and how it answers."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    respond: Callable[[Request], Answer] = lambda _r: (200, {}, b"ok")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *statuses: int, then: int = 200, retry_after: str | None = None) -> None:
        """Answer the next requests with ``statuses`` in turn, then ``then`` for good."""
        queue = list(statuses)

        def respond(_r: Request) -> Answer:
            status = queue.pop(0) if queue else then
            headers = {"Retry-After": retry_after} if retry_after and status == 429 else {}
            return status, headers, b"ok" if status < 300 else b"server trouble"

        self.respond = respond


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            req = Request(self.command, self.path, dict(self.headers.items()), self.rfile.read(n))
            state.requests.append(req)
            status, headers, body = state.respond(req)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PATCH = do_PUT = do_GET = _any  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
            pass

    return Handler


@contextmanager
def loopback_server() -> Iterator[Loopback]:
    """Serve on a free loopback port until the block ends."""
    state = Loopback()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
