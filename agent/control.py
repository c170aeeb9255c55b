"""The agent's local control endpoint: status and anomaly hand-off on 127.0.0.1, token required."""

from __future__ import annotations

import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("selfheal.control")

MAX_BODY = 1 << 20
STATUS_PATH = "/v1/status"
ANOMALIES_PATH = "/v1/anomalies"


class ControlApi:
    """What the endpoint calls into; the daemon provides it."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        hand_off: Callable[[list[str]], dict[str, int]],
    ) -> None:
        self.status = status
        self.hand_off = hand_off


class ControlServer:
    """A small HTTP server on loopback; start/stop as a context manager, one named thread."""

    def __init__(self, api: ControlApi, token: str, port: int = 0) -> None:
        handler = _make_handler(api, token)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        handler.port = self.port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 1.0},  # a shutdown check once a second, idle otherwise
            name="selfheal-control",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    api: ControlApi
    token: str
    port: int
    timeout = 10  # seconds a client may stall before the connection is dropped
    server_version = "selfheal-agent"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control %s - " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        if not self._allowed():
            return
        if self.path != STATUS_PATH:
            self._reply(404, {"error": f"no such endpoint {self.path}"})
            return
        self._reply(200, self.api.status())

    def do_POST(self) -> None:
        if not self._allowed():
            return
        if self.path != ANOMALIES_PATH:
            self._reply(404, {"error": f"no such endpoint {self.path}"})
            return
        body = self._body()
        if body is None:
            return
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            self._reply(400, {"error": 'expected {"ids": ["<anomaly id>", ...]}'})
            return
        self._reply(202, self.api.hand_off(ids))

    def _allowed(self) -> bool:
        # DNS rebinding: a browser page may reach 127.0.0.1 under a foreign host name.
        host = (self.headers.get("Host") or "").lower()
        if host not in {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}:
            self._reply(403, {"error": "bad Host header"})
            return False
        given = self.headers.get("Authorization") or ""
        expected = f"Bearer {self.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            self._reply(401, {"error": "missing or wrong token"})
            return False
        return True

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._reply(413 if length > MAX_BODY else 400, {"error": "bad Content-Length"})
            return None
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._reply(400, {"error": "body is not JSON"})
            return None

    def _reply(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, sort_keys=True).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _make_handler(api: ControlApi, token: str) -> type[_Handler]:
    # A subclass per server keeps the token off any shared class attribute.
    return type("ControlHandler", (_Handler,), {"api": api, "token": token, "port": 0})


def call(
    port: int, token: str, path: str, payload: Any = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """A client for the endpoint (the CLI, the plugin's hand-off and the tests use it)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method="GET" if data is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except json.JSONDecodeError:
            return exc.code, None
