"""An OpsGenie-like HTTP server on 127.0.0.1 that records requests, for the real opsgenie-sdk.

Modes: "ok" (202 with a requestId, alerts de-duplicated by alias like OpsGenie), "500",
"429", "nonjson" (200 with a non-JSON body), "hang" (accepts, never answers), and a
separate `tests.support.loopback.refused_url()` where nothing listens.

`prefix` serves the API under a path, as Jira Service Management Operations does
(`prefix="/jsm/ops/integration"`: `og.url` then ends with it, like the real
`https://api.atlassian.com/jsm/ops/integration`). A request outside the prefix gets 404 and is
recorded, so `unexpected()` shows a client that dropped the prefix. `api_key` makes the server
answer 401, as the real APIs do, to any other `Authorization: GenieKey <key>`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

TEST_API_KEY = "og-test-key-0123456789abcdef"  # what the tests and benchmarks configure


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


class FakeOpsGenie:
    """Run with `with FakeOpsGenie() as og:`; `og.url` is the SDK host to use."""

    def __init__(self, mode: str = "ok", *, prefix: str = "", api_key: str | None = None) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix must start with / and not end with it, got {prefix!r}")
        self.mode = mode
        self.prefix = prefix
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.alerts: dict[str, dict[str, Any]] = {}  # alias -> {"status", "count", ...}
        self._lock = threading.Lock()
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                url = urlparse(self.path)
                rec = Recorded("POST", url.path, parse_qs(url.query), dict(self.headers), body)
                with fake._lock:
                    fake.requests.append(rec)
                fake._answer(self, rec)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{prefix}"
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, per server started.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def _answer(self, handler: BaseHTTPRequestHandler, rec: Recorded) -> None:
        if not self._api_path(rec.path):
            self._send(handler, 404, {"message": "Not found", "took": 0.0})
            return
        if self.api_key is not None and rec.headers.get("Authorization") != f"GenieKey {self.api_key}":
            self._send(handler, 401, {"message": "Key format is not valid!", "took": 0.0})
            return
        mode = self.mode
        if mode == "hang":
            self._release.wait(120)
            return
        if mode in ("500", "429"):
            self._send(handler, int(mode), {"message": "unavailable", "took": 0.0})
            return
        if mode == "nonjson":
            self._send_raw(handler, 200, b"<html>surprise</html>", "text/html")
            return
        with self._lock:
            self._apply(rec)
        self._send(handler, 202, {"result": "Request will be processed",
                                  "took": 0.01, "requestId": str(uuid.uuid4())})

    def _api_path(self, path: str) -> str | None:
        """The path below the prefix (`/v2/...`), or None for a path outside it."""
        if not path.startswith(self.prefix + "/"):
            return None
        return path[len(self.prefix):]

    def _apply(self, rec: Recorded) -> None:
        path = self._api_path(rec.path) or ""
        parts = path.strip("/").split("/")  # v2/alerts or v2/alerts/<alias>/close
        if parts[:2] != ["v2", "alerts"]:
            return
        if len(parts) == 2 and isinstance(rec.body, dict):
            alias = rec.body.get("alias") or rec.body.get("message")
            current = self.alerts.get(alias)
            if current and current["status"] == "open":
                current["count"] += 1
            else:
                self.alerts[alias] = {"status": "open", "count": 1, "body": rec.body}
        elif len(parts) == 4 and parts[3] == "close":
            alert = self.alerts.get(unquote(parts[2]))  # the SDK percent-encodes the alias
            if alert:
                alert["status"] = "closed"

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        FakeOpsGenie._send_raw(handler, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send_raw(handler: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    # --- helpers for tests ---------------------------------------------------------------

    def creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.rstrip("/") == self.prefix + "/v2/alerts"]

    def closes(self) -> list[Recorded]:
        return [r for r in self.requests
                if r.path.startswith(self.prefix + "/v2/alerts/") and r.path.endswith("/close")]

    def unexpected(self) -> list[Recorded]:
        """Requests outside the prefix (answered 404)."""
        return [r for r in self.requests if self._api_path(r.path) is None]

    def open_aliases(self) -> set[str]:
        return {a for a, v in self.alerts.items() if v["status"] == "open"}

    def __enter__(self) -> FakeOpsGenie:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
