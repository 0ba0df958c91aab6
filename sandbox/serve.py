"""Serve the sandbox world: every vendor on its own loopback port, plus the SFTP drop and an admin port.

    sb = Sandbox(world_dir).start()
    sb.connections["phone_system"]      # Airflow connection JSON (docs/CONTRACTS.md section 1)
    sb.set_clock(datetime(2026, 9, 5, tzinfo=UTC))
    sb.inject("twilio.calls", "429", count=2)
    sb.stop()

Pages are read from SQLite per request; only records with `available_at <= clock` are served.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from sandbox import world as W

ENDPOINTS = ("twilio.calls", "twilio.dispositions", "qualtrics.export", "typeform.responses", "x.mentions",
             "facebook.feed", "facebook.comments", "linkedin.posts", "linkedin.comments", "sftp")
HTTP_FAULTS = ("429", "500", "503", "slow", "drop", "malformed", "drift_new_field", "drift_missing_field",
               "drift_type_change", "repeat", "bad_auth")
SFTP_FAULTS = ("truncated", "corrupt", "drop", "slow", "bad_auth")
# bad data, served on every request until cleared (DataFaults): what a quality gate must catch
DATA_FAULTS = ("set_field", "drop_field", "duplicate_key", "skip_day")
# the natural key of a served record, for choosing records (`every`) and for the log of touched keys
RECORD_KEYS = ("sid", "disposition_id", "responseId", "token", "$URN", "id")
LINKEDIN_VERSION = "202510"
# listing totals remembered per vendor (VendorApp.count): each paging sequence needs one
COUNT_CACHE_SIZE = 1024
FB_VERSION = "v21.0"


def _secret(seed: int, name: str, n: int = 32) -> str:
    return hashlib.sha256(f"crm-sandbox:{seed}:{name}".encode()).hexdigest()[:n]


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def _unb64(s: str) -> object:
    pad = "=" * (-len(s) % 4)
    return json.loads(base64.urlsafe_b64decode(s + pad))


def _resume_after(where: list[str], args: list[object], column: str, key: str, forward: bool,
                  last: tuple[object, object]) -> None:
    """Append the keyset condition that resumes a listing after the row `last` = (column value, key), as a row
    value `(column, key) > (?, ?)` (or `<` going backwards), so that SQLite starts its index scan at the token.
    The listing's other bounds on `column` on the same side are kept as filters but marked unindexable with a
    unary plus: SQLite bounds a range by one term per side, and when it chose the window's bound over the
    token's it scanned from the window's edge to the token on every page, which made paging through a window
    quadratic (half a second a page at five million calls)."""
    same_side = (">", ">=") if forward else ("<", "<=")
    for i, term in enumerate(where):
        parts = term.split()
        if not parts or parts[0] != column:
            continue
        if len(parts) != 3 or parts[2] != "?":  # a bound this cannot read would silently stay the index's bound
            raise ValueError(f"_resume_after: write the bound {term!r} on {column} as '{column} <op> ?'")
        if parts[1] in same_side:
            where[i] = "+" + term
    where.append(f"({column}, {key}) {'>' if forward else '<'} (?, ?)")
    args += [last[0], last[1]]


def _parse_time(value: str) -> int:
    """ISO 8601 (with or without zone, Z or +00:00 / +0000) or unix seconds -> epoch seconds (UTC)."""
    v = value.strip()
    if v.lstrip("-").isdigit():
        return int(v)
    v = v.replace("Z", "+00:00")
    if len(v) >= 5 and v[-5] in "+-" and v[-3] != ":":
        v = v[:-2] + ":" + v[-2:]
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


@dataclass
class Response:
    status: int = 200
    body: bytes | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    records: str | None = None  # path of the record list in a JSON body, for drift and repeat faults
    content_type: str = "application/json"


class FaultBox:
    """Faults waiting to be consumed, per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[dict]] = {}
        self.log: list[dict] = []

    def add(self, endpoint: str, fault: str, count: int = 1, **opts: object) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown sandbox endpoint {endpoint!r}: use one of {', '.join(ENDPOINTS)}")
        allowed = SFTP_FAULTS if endpoint == "sftp" else HTTP_FAULTS
        if fault not in allowed:
            raise ValueError(f"unknown fault {fault!r} for {endpoint}: use one of {', '.join(allowed)}")
        with self._lock:
            self._faults.setdefault(endpoint, []).append({"fault": fault, "remaining": int(count), **opts})

    def take(self, endpoint: str, kinds: tuple[str, ...] | None = None) -> dict | None:
        with self._lock:
            for f in self._faults.get(endpoint, []):
                if f["remaining"] > 0 and (kinds is None or f["fault"] in kinds):
                    f["remaining"] -= 1
                    self.log.append({"endpoint": endpoint, "fault": f["fault"], "at": time.time()})
                    return dict(f)
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> dict[str, list[dict]]:
        with self._lock:
            return {k: [dict(f) for f in v if f["remaining"] > 0] for k, v in self._faults.items()}


def _path_get(rec: dict, path: str) -> tuple[dict | None, str]:
    """The dict holding the last part of a dotted path (`values.QID1`), and that last part."""
    *parents, last = path.split(".")
    node: object = rec
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), last


def _record_key(rec: dict) -> str:
    for name in RECORD_KEYS:
        if rec.get(name) not in (None, ""):
            return str(rec[name])
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()


def _record_day(rec: dict, path: str) -> str | None:
    """The UTC day (YYYY-MM-DD) of a time field, ISO 8601 or RFC 2822 (Twilio) or epoch ms (LinkedIn)."""
    from email.utils import parsedate_to_datetime

    holder, last = _path_get(rec, path)
    value = holder.get(last) if holder else None
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000, UTC).date().isoformat()
        if value[:4].isdigit():
            return datetime.fromtimestamp(_parse_time(value), UTC).date().isoformat()
        return parsedate_to_datetime(value).astimezone(UTC).date().isoformat()
    except (ValueError, TypeError, IndexError):
        return None


class DataFaults:
    """Bad data served on purpose, on every request to an endpoint until cleared: the vendor's records
    themselves are wrong (what a warehouse's quality gate has to catch), unlike FaultBox's transport faults.

    - `set_field`: `field` (dotted, e.g. `values.QID1`) is set to `value` (an out-of-range score);
    - `drop_field`: `field` disappears from the records (a vanished column);
    - `duplicate_key`: each chosen record is served twice under its key, as two conflicting versions whose
      `field` is `values[0]` in the first copy and `values[1]` in the second;
    - `skip_day`: records whose `time_field` falls on the UTC `day` (YYYY-MM-DD) are not served at all.

    `every=N` (default 1) picks the records whose key hashes to 0 modulo N (deterministic). `touched`
    remembers the keys each fault changed, withheld or duplicated, for tests to reconcile with.
    """

    REQUIRED = {"set_field": ("field", "value"), "drop_field": ("field",), "duplicate_key": ("field", "values"),
                "skip_day": ("day", "time_field")}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[dict]] = {}
        self._touched: dict[tuple[str, str], set[str]] = {}

    def add(self, endpoint: str, fault: str, **opts: object) -> None:
        if endpoint not in ENDPOINTS or endpoint == "sftp":
            raise ValueError(f"data faults apply to the HTTP endpoints: use one of "
                             f"{', '.join(e for e in ENDPOINTS if e != 'sftp')}, not {endpoint!r}")
        if fault not in DATA_FAULTS:
            raise ValueError(f"unknown data fault {fault!r}: use one of {', '.join(DATA_FAULTS)}")
        missing = [k for k in self.REQUIRED[fault] if k not in opts]
        if missing:
            raise ValueError(f"data fault {fault!r} needs {', '.join(missing)}")
        if fault == "duplicate_key" and (not isinstance(opts["values"], list) or len(opts["values"]) != 2):
            raise ValueError("duplicate_key needs values: a list of two values, one per copy")
        if fault == "skip_day":
            try:
                datetime.strptime(str(opts["day"]), "%Y-%m-%d")
            except ValueError:
                raise ValueError(f"skip_day: day must be YYYY-MM-DD, got {opts['day']!r}") from None
        every = opts.get("every", 1)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        with self._lock:
            self._faults.setdefault(endpoint, []).append({"fault": fault, **opts})

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> dict[str, list[dict]]:
        with self._lock:
            return {k: [dict(f) for f in v] for k, v in self._faults.items() if v}

    def touched(self, endpoint: str, fault: str) -> set[str]:
        """Keys of the records `fault` changed on `endpoint` so far (served or withheld)."""
        with self._lock:
            return set(self._touched.get((endpoint, fault), set()))

    def apply(self, endpoint: str, records: list) -> list:
        """The records as the faulty vendor serves them (a new list; `records` is not changed)."""
        with self._lock:
            faults = [dict(f) for f in self._faults.get(endpoint, [])]
        if not faults:
            return records
        order = {name: i for i, name in enumerate(("skip_day", "set_field", "drop_field", "duplicate_key"))}
        out = [json.loads(json.dumps(r)) if isinstance(r, dict) else r for r in records]
        touched: list[tuple[str, str]] = []
        for f in sorted(faults, key=lambda f: order[f["fault"]]):
            kind, every = f["fault"], int(f.get("every", 1))
            kept = []
            for rec in out:
                if not isinstance(rec, dict):
                    kept.append(rec)
                    continue
                key = _record_key(rec)
                chosen = int(hashlib.sha256(key.encode()).hexdigest(), 16) % every == 0
                if kind == "skip_day":
                    if chosen and _record_day(rec, str(f["time_field"])) == f["day"]:
                        touched.append((kind, key))
                        continue
                elif chosen:
                    holder, last = _path_get(rec, str(f["field"]))
                    if holder is not None and kind == "set_field":
                        holder[last] = f["value"]
                        touched.append((kind, key))
                    elif holder is not None and kind == "drop_field" and last in holder:
                        del holder[last]
                        touched.append((kind, key))
                    elif holder is not None and kind == "duplicate_key":
                        twin = json.loads(json.dumps(rec))
                        holder[last] = f["values"][0]
                        twin_holder, _ = _path_get(twin, str(f["field"]))
                        twin_holder[last] = f["values"][1]  # type: ignore[index]
                        kept += [rec, twin]
                        touched.append((kind, key))
                        continue
                kept.append(rec)
            out = kept
        with self._lock:
            for kind, key in touched:
                self._touched.setdefault((endpoint, kind), set()).add(key)
        return out


class VendorApp:
    """One vendor: routes requests, checks credentials, serves pages from the world database."""

    name = "vendor"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.base_url = ""
        self._counts: dict[tuple, int] = {}

    # to override
    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        raise NotImplementedError

    def authorized(self, req: Request) -> Response | None:
        """None when the credentials are good, else the vendor's error answer."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        return Response(status, {"error": message})

    def rate_limited(self, fault: dict) -> Response:
        return Response(429, {"error": "Too Many Requests"}, {"Retry-After": str(fault.get("retry_after", 1))})

    def extra_headers(self, req: Request) -> dict[str, str]:
        return {}

    # helpers
    def db(self) -> sqlite3.Connection:
        return self.sb.db()

    def count(self, db: sqlite3.Connection, query: str, args: Sequence[object]) -> int:
        """`select count(*) ...` with `args`, remembered: a vendor states a listing's total on every page, and
        counting a window of half a million responses again for each page of a thousand made paging through it
        quadratic. The world is opened read-only and the clock is among the arguments, so a remembered count
        is the count."""
        key = (query, tuple(args))
        if (total := self._counts.get(key)) is None:
            if len(self._counts) >= COUNT_CACHE_SIZE:
                self._counts.clear()
            total = self._counts[key] = db.execute(query, args).fetchone()[0]
        return total

    @property
    def clock(self) -> int:
        return self.sb.clock_ts


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_query: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _make_handler(app: VendorApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"sandbox-{app.name}/1.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            return

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(method, unquote(split.path), query, {k.lower(): v for k, v in self.headers.items()},
                          body, split.query)
            try:
                resp, fault = self._dispatch(req)
            except Exception as exc:  # a sandbox bug must still answer like a server would
                resp, fault = Response(500, {"error": f"sandbox error: {type(exc).__name__}: {exc}"}), None
            self._send(req, resp, fault)

        def _dispatch(self, req: Request) -> tuple[Response, dict | None]:
            found = app.route(req.method, req.path)
            if found is None:
                return app.error(404, f"no such resource: {req.method} {req.path}"), None
            endpoint, fn = found
            fault = app.sb.faults.take(endpoint)
            if fault:
                kind = fault["fault"]
                if kind == "slow":
                    time.sleep(float(fault.get("seconds", 5)))
                elif kind == "429":
                    return app.rate_limited(fault), None
                elif kind in ("500", "503"):
                    return app.error(int(kind), "Service temporarily unavailable" if kind == "503"
                                     else "Internal server error"), None
                elif kind == "bad_auth":
                    return app.authorized(Request(req.method, req.path, {}, {}, b"", "")) or app.error(
                        401, "unauthorized"), None
            denied = app.authorized(req)
            if denied is not None:
                return denied, None
            req.fault = fault  # type: ignore[attr-defined]
            return fn(req), fault

        def _send(self, req: Request, resp: Response, fault: dict | None) -> None:
            kind = fault["fault"] if fault else None
            body = resp.body
            if isinstance(body, dict | list):
                if resp.records and resp.status == 200:
                    _apply_data_faults(app.sb, app.route(req.method, req.path), body, resp.records)
                if kind and kind.startswith("drift_") and resp.records:
                    _drift(body, resp.records, kind)
                data = json.dumps(body, ensure_ascii=False).encode()
                if kind == "malformed":
                    data = data[: max(1, len(data) // 2)] + b"<html>"
            else:
                data = body or b""
            headers = {**app.extra_headers(req), **resp.headers}
            try:
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type + ("; charset=utf-8" if "json" in
                                                                      resp.content_type else ""))
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                if kind == "drop":
                    self.send_header("Connection", "close")
                self.end_headers()
                if kind == "drop":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if req.method != "HEAD":
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

    return Handler


def _apply_data_faults(sb: Sandbox, found: tuple | None, body: dict | list, path: str) -> None:
    """Replace the record list at `path` in a JSON body by what the faulty vendor serves."""
    if found is None or not isinstance(body, dict):
        return
    parent, last = _path_get(body, path)
    if parent is not None and isinstance(parent.get(last), list):
        parent[last] = sb.data_faults.apply(found[0], parent[last])


def _drift(body: dict | list, path: str, kind: str) -> None:
    """Schema drift on every record of the page: a new field, a missing field, or a changed type."""
    node: object = body
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, list):
        return
    for rec in node:
        if not isinstance(rec, dict):
            continue
        if kind == "drift_new_field":
            rec["sandbox_new_field"] = {"added_in": "drift", "value": 1}
        elif kind == "drift_missing_field":
            for k in list(rec)[1:]:
                if k not in ("id", "sid", "token", "disposition_id", "responseId", "$URN"):
                    del rec[k]
                    break
        elif kind == "drift_type_change":
            for k, v in list(rec.items())[1:]:
                if isinstance(v, str) and k not in ("id", "sid", "token", "disposition_id", "$URN"):
                    rec[k] = {"value": v}
                    break
                if isinstance(v, int | float) and not isinstance(v, bool):
                    rec[k] = str(v)
                    break


# ----------------------------------------------------------------------------------------- Twilio

class TwilioApp(VendorApp):
    """Twilio Voice Calls list, plus the contact center's wrap-up (disposition) feed on the same host."""

    name = "twilio"

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.account_sid = sandbox.meta["account_sid"]
        self.auth_token = _secret(sandbox.seed, "twilio")
        self.api_key = "SK" + _secret(sandbox.seed, "twilio-key")
        self.api_secret = _secret(sandbox.seed, "twilio-key-secret")

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 4 and parts[0] == "2010-04-01" and parts[1] == "Accounts" \
                and parts[3] == "Calls.json":
            return "twilio.calls", self.calls
        if method == "GET" and len(parts) == 4 and parts[0] == "v1" and parts[1] == "Accounts" \
                and parts[3] == "Dispositions.json":
            return "twilio.dispositions", self.dispositions
        return None

    def error(self, status: int, message: str) -> Response:
        code = {401: 20003, 403: 20003, 404: 20404, 429: 20429, 400: 21211}.get(status, 20500)
        return Response(status, {"code": code, "message": message,
                                 "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})

    def rate_limited(self, fault: dict) -> Response:
        r = self.error(429, "Too Many Requests")
        r.headers["Retry-After"] = str(fault.get("retry_after", 1))
        return r

    def authorized(self, req: Request) -> Response | None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Basic "):
            return self.error(401, "Authenticate")
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return self.error(401, "Authenticate")
        if (user, pw) not in ((self.account_sid, self.auth_token), (self.api_key, self.api_secret)):
            return self.error(401, "Authenticate")
        parts = req.path.strip("/").split("/")
        if parts[2] != self.account_sid:
            return self.error(404, f"The requested resource {req.path} was not found")
        return None

    def calls(self, req: Request) -> Response:
        q = req.query
        try:
            size = min(1000, max(1, int(q.get("PageSize", 50))))
            page = int(q.get("Page", 0))
        except ValueError:
            return self.error(400, "PageSize and Page must be integers")
        live = self.sb.live_calls
        where = [] if live else ["available_at <= ?"]
        args: list[object] = [] if live else [self.clock]
        for param in ("StartTime>", "StartTime<", "StartTime", "EndTime>", "EndTime<", "EndTime"):
            if param in q:
                try:
                    day0 = calendar.timegm(time.strptime(q[param][:10], "%Y-%m-%d"))
                except ValueError:
                    return self.error(400, f"Invalid {param.rstrip('<>')} filter {q[param]!r}: use YYYY-MM-DD")
                if param.startswith("StartTime"):  # day granularity, UTC, on the indexed start time
                    if not param.endswith("<"):
                        where.append("start_ts >= ?")
                        args.append(day0)
                    if not param.endswith(">"):
                        where.append("start_ts < ?")
                        args.append(day0 + W.DAY)
                else:
                    op = {"EndTime>": ">=", "EndTime<": "<=", "EndTime": "="}[param]
                    where.append(f"end_day {op} ?")
                    args.append(q[param][:10])
        where.append("start_ts <= ?")  # a call starts before it is served: lets the index bound the scan
        args.append(self.clock)
        json_filters = {k: q[k] for k in ("Status", "To", "From", "ParentCallSid") if k in q}
        token = q.get("PageToken")
        if token:
            try:
                ts, key = _unb64(token[2:])  # type: ignore[misc]
            except Exception:
                return self.error(400, f"Invalid PageToken {token!r}")
            _resume_after(where, args, "start_ts", "key", False, (ts, key))
        sql = f"select key, start_ts, available_at, payload from s_calls where {' and '.join(where)} " \
              f"order by start_ts desc, key desc"
        rows = []
        with self.db() as db:
            cur = db.execute(sql, args)
            for key, ts, ended, payload in cur:
                rec = json.loads(payload)
                if live:
                    _as_of(rec, ended, self.clock)
                if json_filters and not all(
                        (rec.get({"Status": "status", "To": "to", "From": "from",
                                  "ParentCallSid": "parent_call_sid"}[k]) or "") == v
                        for k, v in json_filters.items()):
                    continue
                rows.append((key, ts, rec))
                if len(rows) > size:
                    break
        more = len(rows) > size
        rows = rows[:size]
        back = 2 if (getattr(req, "fault", None) or {}).get("fault") == "repeat" and len(rows) > 2 else 0
        base = f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"
        keep = [(k, v) for k, v in _raw_pairs(req.raw_query) if k not in ("Page", "PageToken")]

        def uri(extra: list[tuple[str, str]]) -> str:
            return base + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in keep + extra)

        nxt = None
        if more and rows:
            last = rows[-1 - back]
            nxt = uri([("Page", str(page + 1)), ("PageToken", "PA" + _b64([last[1], last[0]]))])
        start = page * size
        body = {"calls": [r[2] for r in rows], "page": page, "page_size": size, "start": start,
                "end": start + max(0, len(rows) - 1), "uri": uri([("Page", str(page))] if page else []),
                "first_page_uri": uri([("Page", "0")]), "next_page_uri": nxt,
                "previous_page_uri": uri([("Page", str(page - 1))]) if page > 0 else None}
        return Response(200, body, records="calls")

    def dispositions(self, req: Request) -> Response:
        q = req.query
        try:
            size = min(1000, max(1, int(q.get("PageSize", 50))))
            page = int(q.get("Page", 0))
            after = _parse_time(q["WrappedAfter"]) if q.get("WrappedAfter") else None
            before = _parse_time(q["WrappedBefore"]) if q.get("WrappedBefore") else None
        except (ValueError, KeyError) as exc:
            return self.error(400, f"Invalid parameter: {exc}. WrappedAfter/WrappedBefore are ISO 8601, "
                                   "PageSize an integer")
        where = ["available_at <= ?", "wrapped_at <= ?"]
        args: list[object] = [self.clock, self.clock]
        if after is not None:
            where.append("wrapped_at >= ?")
            args.append(after)
        if before is not None:
            where.append("wrapped_at < ?")
            args.append(before)
        token = q.get("PageToken")
        if token:
            try:
                ts, key = _unb64(token)  # type: ignore[misc]
            except Exception:
                return self.error(400, f"Invalid PageToken {token!r}")
            _resume_after(where, args, "wrapped_at", "key", True, (ts, key))
        with self.db() as db:
            rows = db.execute(f"select key, wrapped_at, payload from s_dispositions where {' and '.join(where)} "
                              f"order by wrapped_at, key limit ?", [*args, size + 1]).fetchall()
        more = len(rows) > size
        rows = rows[:size]
        back = 2 if (getattr(req, "fault", None) or {}).get("fault") == "repeat" and len(rows) > 2 else 0
        nxt = None
        if more:
            last = rows[-1 - back]
            keep = [(k, v) for k, v in _raw_pairs(req.raw_query) if k not in ("Page", "PageToken")]
            nxt = (f"{self.base_url}/v1/Accounts/{self.account_sid}/Dispositions.json?"
                   + urlencode(keep + [("Page", str(page + 1)), ("PageToken", _b64([last[1], last[0]]))]))
        body = {"dispositions": [json.loads(r[2]) for r in rows],
                "meta": {"page": page, "page_size": size, "next_page_url": nxt}}
        return Response(200, body, records="dispositions")


PRICE_DELAY = 600  # Twilio prices a call a few minutes after it ends


def _as_of(call: dict, ended: int, clock: int) -> None:
    """The call as Twilio shows it at `clock`: in progress until it ends, unpriced for a while after."""
    if clock < ended:
        call.update(status="in-progress", end_time=None, duration=None, price=None,
                    date_updated=call["start_time"], answered_by=None)
    elif clock < ended + PRICE_DELAY:
        call["price"] = None


def _raw_pairs(raw_query: str) -> list[tuple[str, str]]:
    return [(k, v) for k, vs in parse_qs(raw_query, keep_blank_values=True).items() for v in vs]


# ----------------------------------------------------------------------------------------- Typeform

class TypeformApp(VendorApp):
    name = "typeform"

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.token = "tfp_" + _secret(sandbox.seed, "typeform", 40)
        self.forms = set(sandbox.meta["forms"].values())

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 3 and parts[0] == "forms" and parts[2] == "responses":
            return "typeform.responses", self.responses
        return None

    def error(self, status: int, message: str) -> Response:
        code = {401: "UNAUTHORIZED", 403: "AUTHENTICATION_FAILED", 404: "FORM_NOT_FOUND", 429: "RATE_LIMITED",
                400: "VALIDATION_ERROR"}.get(status, "INTERNAL_ERROR")
        return Response(status, {"code": code, "description": message})

    def rate_limited(self, fault: dict) -> Response:
        r = self.error(429, "Too many requests: the limit is 2 requests per second per token")
        r.headers["Retry-After"] = str(fault.get("retry_after", 1))
        return r

    def authorized(self, req: Request) -> Response | None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer "):
            return self.error(401, "Authentication credentials not found on the Request Headers")
        if auth[7:].strip() != self.token:
            return self.error(403, "The personal access token is not valid or lacks the responses:read scope")
        return None

    def responses(self, req: Request) -> Response:
        form_id = req.path.strip("/").split("/")[1]
        if form_id not in self.forms:
            return self.error(404, f"Form {form_id!r} not found")
        q = req.query
        try:
            size = int(q.get("page_size", 25))
            if not 1 <= size <= 1000:
                return self.error(400, "page_size must be between 1 and 1000")
            since = _parse_time(q["since"]) if q.get("since") else None
            until = _parse_time(q["until"]) if q.get("until") else None
        except ValueError as exc:
            return self.error(400, f"Invalid since/until ({exc}): use ISO 8601 or unix seconds")
        types: set[str]
        if q.get("response_type"):
            types = {t.strip() for t in q["response_type"].split(",") if t.strip()}
        elif q.get("completed") is not None and q.get("completed") != "":
            types = {"completed"} if q["completed"].lower() == "true" else {"partial", "started"}
        else:
            types = {"completed"}
        bad = types - {"started", "partial", "completed"}
        if bad:
            return self.error(400, f"response_type must be started, partial or completed, not {sorted(bad)}")
        asc = q.get("sort", "submitted_at,desc").endswith(",asc")
        where = ["form_id = ?", "available_at <= ?", "ts <= ?",
                 f"response_type in ({','.join('?' * len(types))})"]
        args: list[object] = [form_id, self.clock, self.clock, *sorted(types)]
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts <= ?")
            args.append(until)
        if q.get("query"):
            where.append("instr(lower(payload), lower(?)) > 0")
            args.append(q["query"])
        with self.db() as db:
            total = self.count(db, f"select count(*) from s_form_responses where {' and '.join(where)}", args)
            for param, newer in (("after", True), ("before", False)):
                tok = q.get(param)
                if not tok:
                    continue
                found = db.execute("select ts from s_form_responses where key = ? and form_id = ?",
                                   (tok, form_id)).fetchone()
                if not found:
                    return self.error(400, f"{param}: unknown response token {tok!r}")
                _resume_after(where, args, "ts", "key", newer, (found[0], tok))
            order = "ts, key" if asc else "ts desc, key desc"
            rows = db.execute(f"select key, payload from s_form_responses where {' and '.join(where)} "
                              f"order by {order} limit ?", [*args, size]).fetchall()
        items = [json.loads(r[1]) for r in rows]
        if (getattr(req, "fault", None) or {}).get("fault") == "repeat" and len(items) > 2:
            items = items + [json.loads(json.dumps(i)) for i in items[:2]]  # the same responses twice
        page_count = (total + size - 1) // size if total else 0
        return Response(200, {"total_items": total, "page_count": page_count, "items": items}, records="items")


# ----------------------------------------------------------------------------------------- the sandbox

class Sandbox:
    """Every vendor of the world on loopback. See the module docstring."""

    def __init__(self, world_dir: str | Path, host: str = "127.0.0.1", clock: datetime | None = None,
                 ports: dict[str, int] | None = None, sftp: bool = True, admin: bool = True,
                 live_calls: bool = False, advertise: str | None = None) -> None:
        self.world_dir = Path(world_dir)
        self.db_path = self.world_dir / W.DB_NAME
        if not self.db_path.exists():
            raise FileNotFoundError(f"no sandbox world at {self.db_path}: run sandbox.world.generate("
                                    f"{str(self.world_dir)!r}) or `python -m sandbox up --world {self.world_dir}`")
        self.host = host  # where the servers listen
        # what clients are told to connect to: a wildcard address is no address to connect to
        self.public_host = advertise or (socket.gethostname() if host in ("0.0.0.0", "::", "") else host)
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            self.meta = {k: json.loads(v) for k, v in db.execute("select key, value from meta")}
        self.seed = int(self.meta["seed"])
        self.start_ts = int(self.meta["start_ts"])
        self.end_ts = int(self.meta["end_ts"])
        self.clock_ts = self.end_ts if clock is None else _to_ts(clock)
        self.faults = FaultBox()
        self.data_faults = DataFaults()
        # live_calls: serve calls from their start, "in-progress" until they end and without a price for
        # PRICE_DELAY after, as Twilio does (so an extractor needs its lookback). Off: calls appear complete.
        self.live_calls = live_calls
        self.ports_wanted = ports or {}
        self.want_sftp = sftp
        self.want_admin = admin
        self.apps: dict[str, VendorApp] = {}
        self.servers: dict[str, ThreadingHTTPServer] = {}
        self.threads: list[threading.Thread] = []
        self.sftp_server = None
        self._clock_listeners: list[Callable[[int], None]] = []

    # ---- world access
    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False)

    @property
    def clock(self) -> datetime:
        return datetime.fromtimestamp(self.clock_ts, UTC)

    def set_clock(self, when: datetime | str | int) -> None:
        """Move world time; records and SFTP drops up to this time become visible."""
        self.clock_ts = _to_ts(when)
        for fn in self._clock_listeners:
            fn(self.clock_ts)

    def inject(self, endpoint: str, fault: str, count: int = 1, **opts: object) -> None:
        """Make the next `count` requests to `endpoint` fail with `fault` (see ENDPOINTS, HTTP_FAULTS)."""
        self.faults.add(endpoint, fault, count, **opts)

    def inject_data(self, endpoint: str, fault: str, **opts: object) -> None:
        """Serve bad data on `endpoint` until `clear_faults()` (see DataFaults, DATA_FAULTS)."""
        self.data_faults.add(endpoint, fault, **opts)

    def clear_faults(self) -> None:
        """Remove every pending transport fault and every data fault: the vendor is fixed."""
        self.faults.clear()
        self.data_faults.clear()

    # ---- lifecycle
    def start(self) -> Sandbox:
        from sandbox import vendors_social, vendors_survey

        app_classes: dict[str, type[VendorApp]] = {
            "twilio": TwilioApp, "typeform": TypeformApp, "qualtrics": vendors_survey.QualtricsApp,
            "x": vendors_social.XApp, "facebook": vendors_social.FacebookApp,
            "linkedin": vendors_social.LinkedInApp,
        }
        for name, cls in app_classes.items():
            app = cls(self)
            server = ThreadingHTTPServer((self.host, self.ports_wanted.get(name, 0)), _make_handler(app))
            server.daemon_threads = True
            app.base_url = f"http://{self.public_host}:{server.server_address[1]}"
            self.apps[name] = app
            self.servers[name] = server
            th = threading.Thread(target=server.serve_forever, name=f"sandbox-{name}", daemon=True)
            th.start()
            self.threads.append(th)
        if self.want_admin:
            from sandbox.admin import AdminApp
            app = AdminApp(self)
            server = ThreadingHTTPServer((self.host, self.ports_wanted.get("admin", 0)), app.handler())
            server.daemon_threads = True
            self.servers["admin"] = server
            th = threading.Thread(target=server.serve_forever, name="sandbox-admin", daemon=True)
            th.start()
            self.threads.append(th)
        if self.want_sftp:
            from sandbox.sftp import SftpDrop
            self.sftp_server = SftpDrop(self, port=self.ports_wanted.get("sftp", 0))
            self.sftp_server.start()
            self._clock_listeners.append(self.sftp_server.materialise)
            self.sftp_server.materialise(self.clock_ts)
        return self

    def stop(self) -> None:
        stoppers = [threading.Thread(target=server.shutdown) for server in self.servers.values()]
        for th in stoppers:  # each shutdown waits up to half a second for its loop: wait for them together
            th.start()
        for th in stoppers:
            th.join()
        for server in self.servers.values():
            server.server_close()
        self.servers.clear()
        if self.sftp_server is not None:
            self.sftp_server.stop()
            self.sftp_server = None
        self._clock_listeners.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what clients need
    def port(self, vendor: str) -> int:
        if vendor == "sftp":
            return self.sftp_server.port if self.sftp_server else 0
        return self.servers[vendor].server_address[1]

    def url(self, vendor: str) -> str:
        return f"http://{self.public_host}:{self.port(vendor)}"

    @property
    def connections(self) -> dict[str, dict]:
        """Airflow connection JSON per conn id (docs/CONTRACTS.md section 1)."""
        tw = self.apps["twilio"]
        m = self.meta
        conns: dict[str, dict] = {
            "phone_system": {"conn_type": "http", "host": self.url("twilio"), "login": tw.account_sid,
                             "password": tw.auth_token,
                             "extra": {"account_sid": tw.account_sid, "page_size": 1000, "lookback_days": 1}},
            "survey_vendor": {"conn_type": "http", "host": self.url("qualtrics"), "login": None,
                              "password": self.apps["qualtrics"].token,
                              "extra": {"survey_ids": [m["survey_id"]]}},
            "web_forms": {"conn_type": "http", "host": self.url("typeform"), "login": None,
                          "password": self.apps["typeform"].token,
                          "extra": {"form_ids": list(m["forms"].values())}},
            "social_x": {"conn_type": "http", "host": self.url("x"), "login": None,
                         "password": self.apps["x"].token, "extra": {"user_id": m["x_user_id"]}},
            "social_facebook": {"conn_type": "http", "host": self.url("facebook"), "login": None,
                                "password": self.apps["facebook"].token,
                                "extra": {"page_id": m["fb_page_id"], "api_version": FB_VERSION}},
            "social_linkedin": {"conn_type": "http", "host": self.url("linkedin"), "login": None,
                                "password": self.apps["linkedin"].token,
                                "extra": {"organization_urn": m["li_org_urn"],
                                          "linkedin_version": LINKEDIN_VERSION}},
        }
        if self.public_host not in ("127.0.0.1", "localhost", "::1"):
            # served over plain http on a private network (the compose `sandbox` profile): the extractors'
            # HTTP client sends credentials over http:// only to loopback unless the connection allows it
            for conn in conns.values():
                conn["extra"]["allow_insecure_http"] = True
        if self.sftp_server is not None:
            conns["survey_vendor_sftp"] = self.sftp_server.connection()
        return conns

    def describe(self) -> dict:
        """Everything `python -m sandbox up` prints: endpoints, ports, credentials, admin controls."""
        out = {"world": str(self.world_dir), "seed": self.seed, "clock": self.clock.isoformat(),
               "world_start": datetime.fromtimestamp(self.start_ts, UTC).isoformat(),
               "world_end": datetime.fromtimestamp(self.end_ts, UTC).isoformat(),
               "ports": {name: s.server_address[1] for name, s in self.servers.items()},
               "connections": self.connections}
        if self.sftp_server is not None:
            out["ports"]["sftp"] = self.sftp_server.port
        if "admin" in self.servers:
            out["admin"] = self.url("admin")
        return out


def _to_ts(when: datetime | str | int) -> int:
    if isinstance(when, int | float):
        return int(when)
    if isinstance(when, str):
        return _parse_time(when)
    if when.tzinfo is None:
        raise ValueError(f"sandbox clock {when!r} must be timezone-aware (UTC)")
    return int(calendar.timegm(when.utctimetuple()))


__all__ = ["Sandbox", "ENDPOINTS", "HTTP_FAULTS", "SFTP_FAULTS", "DATA_FAULTS", "DataFaults", "Response", "Request",
           "VendorApp"]
