"""The admin port: the sandbox's controls as JSON endpoints, for `python -m sandbox up` users.

    GET  /                     endpoints, ports, credentials, clock (same as --json)
    GET  /clock                {"clock": ISO}
    POST /clock                {"clock": ISO 8601}            move world time
    GET  /faults               pending faults per endpoint
    POST /faults               {"endpoint", "fault", "count"=1, ...options}
    GET  /data-faults          bad data being served, per endpoint
    POST /data-faults          {"endpoint", "fault", ...options}   serve bad data until cleared
    POST /faults/clear         remove every pending fault and every data fault
    GET  /connections          Airflow connection JSON per conn id
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.serve import Sandbox


class AdminApp:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "the body is not valid JSON"}
        path = path.rstrip("/") or "/"
        if method == "GET" and path == "/":
            return 200, self.sb.describe()
        if path == "/clock":
            if method == "POST":
                if "clock" not in data:
                    return 400, {"error": 'send {"clock": "2026-09-05T00:00:00Z"}'}
                try:
                    self.sb.set_clock(str(data["clock"]))
                except ValueError as exc:
                    return 400, {"error": f"bad clock {data['clock']!r}: {exc}"}
            return 200, {"clock": self.sb.clock.isoformat()}
        if path == "/faults" and method == "GET":
            return 200, self.sb.faults.pending()
        if path == "/faults" and method == "POST":
            opts = {k: v for k, v in data.items() if k not in ("endpoint", "fault", "count")}
            try:
                self.sb.inject(str(data.get("endpoint")), str(data.get("fault")), int(data.get("count", 1)), **opts)
            except ValueError as exc:
                return 400, {"error": str(exc)}
            return 200, self.sb.faults.pending()
        if path == "/data-faults" and method == "GET":
            return 200, self.sb.data_faults.pending()
        if path == "/data-faults" and method == "POST":
            opts = {k: v for k, v in data.items() if k not in ("endpoint", "fault")}
            try:
                self.sb.inject_data(str(data.get("endpoint")), str(data.get("fault")), **opts)
            except ValueError as exc:
                return 400, {"error": str(exc)}
            return 200, self.sb.data_faults.pending()
        if path == "/faults/clear" and method == "POST":
            self.sb.clear_faults()
            return 200, {}
        if path == "/connections" and method == "GET":
            return 200, self.sb.connections
        return 404, {"error": f"no admin route {method} {path}: see GET /"}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _do(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, obj = app.answer(method, self.path.split("?")[0], body)
                data = json.dumps(obj, indent=2).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._do("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._do("POST")

        return Handler
