"""Record the sandbox's Calls API answers once, then replay them byte for byte over HTTP.

The sandbox builds every page on demand (an SQLite query, `json.loads` of each call, `json.dumps` of the
page) in pure Python: on a 2-core machine that alone costs more CPU than landing the records, so through
the live sandbox every contender measures the vendor stand-in rather than itself. The benchmark pages the
sandbox once (that pass is reported as the sandbox's own serving rate), keeps each answer on disk, and
serves the recorded bytes to every contender: same URLs, same bodies, same `next_page_uri` chain, Basic
auth checked, HTTP/1.1 keep-alive, as Twilio does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

CALLS_PATH = "/2010-04-01/Accounts/{sid}/Calls.json"


def request_key(target: str) -> str:
    """A request target with its query decoded and sorted, so any client's encoding of it matches."""
    parts = urlsplit(target)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query)


def record_calls(base_url: str, sid: str, token: str, first_day: str, last_day: str, out: Path) -> dict:
    """Page through the Calls API as the clients do; write each answer to `out`; return the summary."""
    import requests

    marker = out / "index.json"
    if marker.exists():
        return json.loads(marker.read_text())
    out.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    session.auth = (sid, token)
    path = CALLS_PATH.format(sid=sid)
    target = f"{path}?StartTime>={first_day}&StartTime<={last_day}&PageSize=1000"
    pages: dict[str, str] = {}
    records = 0
    t0 = time.perf_counter()
    while target:
        response = session.get(base_url + target, timeout=120)
        response.raise_for_status()
        body = response.content
        name = f"{len(pages):05d}.json"
        (out / name).write_bytes(body)
        pages[request_key(target)] = name
        page = json.loads(body)
        records += len(page["calls"])
        target = page.get("next_page_uri")
    summary = {"pages": pages, "records": records, "seconds": time.perf_counter() - t0,
               "first": request_key(f"{path}?StartTime>={first_day}&StartTime<={last_day}&PageSize=1000")}
    marker.write_text(json.dumps(summary))
    return summary


class Replay:
    """An HTTP server answering the recorded requests with the recorded bytes (404 for anything else)."""

    def __init__(self, folder: Path, sid: str, token: str, host: str = "127.0.0.1") -> None:
        index = json.loads((folder / "index.json").read_text())
        pages = {key: folder / name for key, name in index["pages"].items()}
        expected = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                if self.headers.get("Authorization") != expected:
                    self._send(401, b'{"code": 20003, "message": "Authenticate", "status": 401}')
                    return
                path = pages.get(request_key(self.path))
                if path is None:
                    self._send(404, b'{"code": 20404, "message": "not recorded", "status": 404}')
                    return
                self._send(200, path.read_bytes())

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-replay", daemon=True)

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
