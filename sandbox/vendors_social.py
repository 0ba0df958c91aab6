"""X API v2 mentions, Facebook Graph page feed and comments, LinkedIn posts and socialActions comments."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote, urlencode

from sandbox.serve import Request, Response, VendorApp, _b64, _parse_time, _resume_after, _secret, _unb64
from sandbox.world import X_EPOCH_MS


def _back(req: Request, n: int) -> int:
    """How many records the next page should repeat (the 'repeat' fault)."""
    return 2 if (getattr(req, "fault", None) or {}).get("fault") == "repeat" and n > 2 else 0


# ----------------------------------------------------------------------------------------- X

class XApp(VendorApp):
    name = "x"
    reachable = 800
    window_seconds = 900
    window_limit = 450

    def __init__(self, sandbox) -> None:  # noqa: ANN001
        super().__init__(sandbox)
        self.token = "AAAAAAAAAAAAAAAAAAAAA" + _secret(sandbox.seed, "x", 40)
        self.user_id = sandbox.meta["x_user_id"]
        self._lock = threading.Lock()
        self._window_start = time.time()
        self._used = 0

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 4 and parts[:2] == ["2", "users"] and parts[3] == "mentions":
            return "x.mentions", self.mentions
        return None

    def error(self, status: int, message: str) -> Response:
        title = {400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found Error",
                 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "")
        return Response(status, {"title": title, "detail": message, "type": "about:blank", "status": status})

    def _rate(self, spend: bool = True) -> tuple[int, int, int]:
        with self._lock:
            now = time.time()
            if now - self._window_start >= self.window_seconds:
                self._window_start, self._used = now, 0
            if spend:
                self._used += 1
            return self.window_limit, max(0, self.window_limit - self._used), \
                int(self._window_start + self.window_seconds)

    def extra_headers(self, req: Request) -> dict[str, str]:
        limit, remaining, reset = self._rate(spend=True)
        return {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(remaining),
                "x-rate-limit-reset": str(reset)}

    def rate_limited(self, fault: dict) -> Response:
        r = self.error(429, "Too Many Requests")
        reset = int(time.time()) + int(fault.get("retry_after", 1))
        r.headers.update({"x-rate-limit-limit": str(self.window_limit), "x-rate-limit-remaining": "0",
                          "x-rate-limit-reset": str(reset)})
        return r

    def authorized(self, req: Request) -> Response | None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:].strip() != self.token:
            return self.error(401, "Unauthorized")
        limit, remaining, reset = self._rate(spend=False)
        if remaining <= 0:
            return self.rate_limited({"retry_after": max(1, reset - int(time.time()))})
        return None

    def mentions(self, req: Request) -> Response:
        uid = req.path.strip("/").split("/")[2]
        if uid != self.user_id:
            return Response(200, {"errors": [{"value": uid, "detail": f"Could not find user with id: [{uid}].",
                                              "title": "Not Found Error", "resource_type": "user",
                                              "parameter": "id", "resource_id": uid,
                                              "type": "https://api.twitter.com/2/problems/resource-not-found"}]})
        q = req.query
        problems = []
        try:
            n = int(q.get("max_results", 10))
            if not 5 <= n <= 100:
                problems.append(f"The `max_results` query parameter value [{q['max_results']}] is not between "
                                "5 and 100")
        except ValueError:
            problems.append(f"The `max_results` query parameter value [{q.get('max_results')}] is not a number")
            n = 10
        where = []
        args: list[object] = []
        try:
            for param, op in (("since_id", ">"), ("until_id", "<")):
                if q.get(param):
                    where.append(f"id_num {op} ?")
                    args.append(int(q[param]))
            if q.get("start_time"):
                where.append("created_at >= ?")
                args.append(_parse_time(q["start_time"]))
            if q.get("end_time"):
                where.append("created_at < ?")
                args.append(_parse_time(q["end_time"]))
            if q.get("pagination_token"):
                where.append("id_num < ?")
                args.append(int(_unb64(q["pagination_token"])))  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            problems.append(f"Invalid parameter: {exc}")
        if problems:
            return Response(400, {"errors": [{"message": p} for p in problems], "title": "Invalid Request",
                                  "detail": "One or more parameters to your request was invalid.",
                                  "type": "https://api.twitter.com/2/problems/invalid-request"})
        cond = (" where " + " and ".join(where)) if where else ""
        sql = (f"with reach as (select id_num, created_at, author_id, payload from s_x_mentions "
               f"where available_at <= ? and id_num <= ? "
               f"order by id_num desc limit {self.reachable}) "
               f"select id_num, author_id, payload from reach{cond} order by id_num desc limit ?")
        with self.db() as db:
            id_bound = ((self.clock * 1000 + 999 - X_EPOCH_MS) << 22) | 0x3FFFFF  # ids grow with time
            rows = db.execute(sql, [self.clock, id_bound, *args, n + 1]).fetchall()
            more = len(rows) > n
            rows = rows[:n]
            users = {}
            if rows and "author_id" in q.get("expansions", "").split(","):
                ids = sorted({r[1] for r in rows})
                for key, payload in db.execute(f"select key, payload from s_x_users where key in "
                                               f"({','.join('?' * len(ids))})", ids):
                    users[key] = json.loads(payload)
        tweet_fields = {f for f in q.get("tweet.fields", "").split(",") if f}
        user_fields = {f for f in q.get("user.fields", "").split(",") if f}
        data = []
        for _, _, payload in rows:
            t = json.loads(payload)
            data.append({k: v for k, v in t.items() if k in ("id", "text", "edit_history_tweet_ids")
                         or k in tweet_fields})
        body: dict = {}
        meta: dict = {"result_count": len(data)}
        if data:
            body["data"] = data
            meta["newest_id"] = data[0]["id"]
            meta["oldest_id"] = data[-1]["id"]
            if users:
                body["includes"] = {"users": [{k: v for k, v in u.items() if k in ("id", "name", "username")
                                               or k in user_fields} for u in users.values()]}
            if more:
                back = _back(req, len(rows))
                meta["next_token"] = _b64(int(rows[-1 - back][0]))
        body["meta"] = meta
        return Response(200, body, records="data")


# ----------------------------------------------------------------------------------------- Facebook

def _split_fields(spec: str) -> dict[str, str]:
    """'id,from{name},comments.summary(true){id,message}' -> {'id': '', 'from': '{name}', 'comments': ...}."""
    out: dict[str, str] = {}
    depth = 0
    cur = ""
    for ch in spec + ",":
        if ch == "," and depth == 0:
            if cur.strip():
                name = re.split(r"[.{(]", cur.strip(), maxsplit=1)[0]
                out[name] = cur.strip()[len(name):]
            cur = ""
            continue
        depth += ch in "{("
        depth -= ch in "})"
        cur += ch
    return out


class FacebookApp(VendorApp):
    name = "facebook"
    default_fields = {"feed": "id,message,created_time", "comments": "id,message,created_time,from"}

    def __init__(self, sandbox) -> None:  # noqa: ANN001
        super().__init__(sandbox)
        self.token = "EAAG" + _secret(sandbox.seed, "facebook", 60)
        self.page_id = sandbox.meta["fb_page_id"]
        self._calls = 0

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        parts = path.strip("/").split("/")
        if method != "GET" or len(parts) != 3 or not re.fullmatch(r"v\d+\.\d+", parts[0]):
            return None
        if parts[2] in ("feed", "posts", "published_posts"):
            return "facebook.feed", self.feed
        if parts[2] == "comments":
            return "facebook.comments", self.comments
        return None

    def error(self, status: int, message: str, code: int = 1, etype: str = "GraphMethodException") -> Response:
        if status >= 500:
            code, etype = 2, "OAuthException"
        return Response(status, {"error": {"message": message, "type": etype, "code": code,
                                           "fbtrace_id": "A" + uuid.uuid4().hex[:22]}})

    def rate_limited(self, fault: dict) -> Response:
        code = int(fault.get("code", 4))
        msg = {4: "(#4) Application request limit reached", 17: "(#17) User request limit reached",
               32: "(#32) Page request limit reached", 613: "(#613) Calls to this api have exceeded the rate "
               "limit."}.get(code, "(#4) Application request limit reached")
        r = self.error(400, msg, code=code, etype="OAuthException")
        minutes = int(fault.get("retry_after_minutes", 1))
        r.headers["X-App-Usage"] = json.dumps({"call_count": 100, "total_cputime": 35, "total_time": 60})
        r.headers["X-Business-Use-Case-Usage"] = json.dumps({self.page_id: [{
            "type": "pages", "call_count": 100, "total_cputime": 30, "total_time": 40,
            "estimated_time_to_regain_access": minutes}]})
        return r

    def extra_headers(self, req: Request) -> dict[str, str]:
        self._calls += 1
        pct = min(99, self._calls // 50)
        return {"X-App-Usage": json.dumps({"call_count": pct, "total_cputime": pct // 2, "total_time": pct // 2})}

    def authorized(self, req: Request) -> Response | None:
        auth = req.header("authorization") or ""
        token = auth[7:].strip() if auth.startswith("Bearer ") else req.query.get("access_token", "")
        if not token:
            return self.error(400, "An active access token must be used to query information about the "
                                   "current user.", code=2500, etype="OAuthException")
        if token != self.token:
            return self.error(400, "Invalid OAuth access token - Cannot parse access token", code=190,
                              etype="OAuthException")
        return None

    def _next_url(self, req: Request, drop: tuple[str, ...], add: dict[str, str]) -> str:
        keep = [(k, v) for k, v in req.query.items() if k not in drop]
        return f"{self.base_url}{req.path}?" + urlencode(keep + list(add.items()))

    def _shape(self, rec: dict, fields: dict[str, str], db) -> dict:  # noqa: ANN001
        out: dict = {"id": rec["id"]}
        for name, sub in fields.items():
            if name == "comments":
                out["comments"] = self._embedded_comments(db, rec["id"], sub)
            elif name in rec:
                out[name] = rec[name]
        return out

    def _embedded_comments(self, db, post_id: str, sub: str) -> dict:  # noqa: ANN001
        inner = re.search(r"\{(.*)\}", sub)
        fields = _split_fields(inner.group(1)) if inner else _split_fields(self.default_fields["comments"])
        rows = db.execute("select created_at, seq, payload from s_fb_comments where post_id = ? and "
                          "available_at <= ? order by created_at, seq limit 26", (post_id, self.clock)).fetchall()
        total = self.count(db, "select count(*) from s_fb_comments where post_id = ? and available_at <= ?",
                           (post_id, self.clock))
        data = [self._shape(json.loads(r[2]), fields, db) for r in rows[:25]]
        out: dict = {"data": data}
        if data:
            out["paging"] = {"cursors": {"before": _b64([rows[0][0], rows[0][1]]),
                                         "after": _b64([rows[min(24, len(rows) - 1)][0],
                                                        rows[min(24, len(rows) - 1)][1]])}}
            if len(rows) > 25:
                out["paging"]["next"] = (f"{self.base_url}/{FB_VERSION_DEFAULT}/{post_id}/comments?"
                                         + urlencode({"access_token": self.token, "limit": 25,
                                                      "after": out["paging"]["cursors"]["after"]}))
        if "summary(true)" in sub:
            out["summary"] = {"order": "chronological", "total_count": total, "can_comment": True}
        return out

    def _limit(self, req: Request) -> int:
        return max(1, min(100, int(req.query.get("limit", 25))))

    def feed(self, req: Request) -> Response:
        parts = req.path.strip("/").split("/")
        if parts[1] != self.page_id:
            return self.error(400, f"(#100) Unsupported get request. Object with ID '{parts[1]}' does not "
                                   "exist, cannot be loaded due to missing permissions", code=100)
        q = req.query
        try:
            n = self._limit(req)
            fields = _split_fields(q.get("fields") or self.default_fields["feed"])
            where = ["available_at <= ?", "created_at <= ?"]
            args: list[object] = [self.clock, self.clock]
            if q.get("since"):
                where.append("created_at >= ?")
                args.append(_parse_time(q["since"]))
            if q.get("__paging_token"):
                ts, key = _unb64(q["__paging_token"])  # type: ignore[misc]
                _resume_after(where, args, "created_at", "key", False, (ts, key))
            elif q.get("until"):
                where.append("created_at <= ?")
                args.append(_parse_time(q["until"]))
        except (ValueError, TypeError) as exc:
            return self.error(400, f"(#100) Invalid parameter: {exc}", code=100)
        with self.db() as db:
            rows = db.execute(f"select key, created_at, payload from s_fb_posts where {' and '.join(where)} "
                              "order by created_at desc, key desc limit ?", [*args, n + 1]).fetchall()
            more = len(rows) > n
            rows = rows[:n]
            data = [self._shape(json.loads(r[2]), fields, db) for r in rows]
        body: dict = {"data": data}
        if rows:
            paging = {"previous": self._next_url(req, ("until", "__paging_token", "since", "__previous"),
                                                 {"since": str(rows[0][1]), "__previous": "1"})}
            if more:
                last = rows[-1 - _back(req, len(rows))]
                paging["next"] = self._next_url(req, ("until", "__paging_token", "since", "__previous"),
                                                {"until": str(last[1]), "__paging_token": _b64([last[1], last[0]])})
            body["paging"] = paging
        return Response(200, body, records="data")

    def comments(self, req: Request) -> Response:
        post_id = req.path.strip("/").split("/")[1]
        q = req.query
        with self.db() as db:
            if not db.execute("select 1 from s_fb_posts where key = ? and available_at <= ?",
                              (post_id, self.clock)).fetchone():
                return self.error(400, f"(#100) Unsupported get request. Object with ID '{post_id}' does not "
                                       "exist, cannot be loaded due to missing permissions", code=100)
            try:
                n = self._limit(req)
                fields = _split_fields(q.get("fields") or self.default_fields["comments"])
                where = ["post_id = ?", "available_at <= ?"]
                args: list[object] = [post_id, self.clock]
                if q.get("since"):
                    where.append("created_at >= ?")
                    args.append(_parse_time(q["since"]))
                if q.get("until"):
                    where.append("created_at <= ?")
                    args.append(_parse_time(q["until"]))
                if q.get("filter") == "toplevel":
                    where.append("payload not like '%\"parent\":%'")
                order = "created_at, seq"
                if q.get("after"):
                    ts, seq = _unb64(q["after"])  # type: ignore[misc]
                    _resume_after(where, args, "created_at", "seq", True, (ts, seq))
                elif q.get("before"):
                    ts, seq = _unb64(q["before"])  # type: ignore[misc]
                    _resume_after(where, args, "created_at", "seq", False, (ts, seq))
                    order = "created_at desc, seq desc"
            except (ValueError, TypeError) as exc:
                return self.error(400, f"(#100) Invalid parameter: {exc}", code=100)
            rows = db.execute(f"select created_at, seq, payload from s_fb_comments where {' and '.join(where)} "
                              f"order by {order} limit ?", [*args, n + 1]).fetchall()
            more = len(rows) > n
            rows = rows[:n]
            if q.get("before"):
                rows.reverse()
            data = [self._shape(json.loads(r[2]), fields, db) for r in rows]
            total = self.count(db, "select count(*) from s_fb_comments where post_id = ? and available_at <= ?",
                               (post_id, self.clock))
        body: dict = {"data": data}
        if rows:
            last = rows[-1 - _back(req, len(rows))]
            cursors = {"before": _b64([rows[0][0], rows[0][1]]), "after": _b64([last[0], last[1]])}
            paging: dict = {"cursors": cursors}
            if more or q.get("before"):
                paging["next"] = self._next_url(req, ("after", "before"), {"after": cursors["after"]})
            if q.get("after"):
                paging["previous"] = self._next_url(req, ("after", "before"), {"before": cursors["before"]})
            body["paging"] = paging
        if q.get("summary") in ("true", "1") or "summary(true)" in q.get("fields", ""):
            body["summary"] = {"order": "chronological", "total_count": total, "can_comment": True}
        return Response(200, body, records="data")


FB_VERSION_DEFAULT = "v21.0"


# ----------------------------------------------------------------------------------------- LinkedIn

class LinkedInApp(VendorApp):
    name = "linkedin"
    oldest_version = "202405"

    def __init__(self, sandbox) -> None:  # noqa: ANN001
        super().__init__(sandbox)
        self.token = "AQV" + _secret(sandbox.seed, "linkedin", 60)
        self.org = sandbox.meta["li_org_urn"]

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["rest", "posts"]:
            return "linkedin.posts", self.posts
        if method == "GET" and len(parts) == 4 and parts[:2] == ["rest", "socialActions"] \
                and parts[3] == "comments":
            return "linkedin.comments", self.comments
        return None

    def error(self, status: int, message: str, code: str | None = None, service: int | None = None) -> Response:
        body: dict = {"status": status, "message": message}
        if code:
            body["code"] = code
        if service:
            body["serviceErrorCode"] = service
        return Response(status, body)

    def rate_limited(self, fault: dict) -> Response:
        return self.error(429, "Resource level throttle APPLICATION DAY limit for calls to this resource is "
                               "reached.", code="TOO_MANY_REQUESTS", service=101)

    def authorized(self, req: Request) -> Response | None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:].strip() != self.token:
            return self.error(401, "Invalid access token", code="INVALID_ACCESS_TOKEN", service=65600)
        version = req.header("linkedin-version")
        if not version:
            return self.error(400, "A version must be present. Please specify a version by adding the "
                                   "LinkedIn-Version header.", code="VERSION_MISSING")
        if not re.fullmatch(r"20\d{4}", version) or version < self.oldest_version or version > "209912":
            return self.error(426, f"Requested version {version} is not active", code="NONEXISTENT_VERSION")
        if req.header("x-restli-protocol-version") != "2.0.0":
            return self.error(400, "X-Restli-Protocol-Version 2.0.0 is required for this resource",
                              code="ILLEGAL_ARGUMENT")
        return None

    def _paging(self, req: Request, start: int, count: int, total: int, returned: int) -> dict:
        links = []
        keep = [(k, v) for k, v in req.query.items() if k not in ("start", "count")]
        if start + returned < total:
            nxt = start + returned - _back(req, returned)
            links.append({"type": "application/json", "rel": "next",
                          "href": f"{quote(req.path)}?" + urlencode(keep + [("start", nxt), ("count", count)])})
        if start > 0:
            links.append({"type": "application/json", "rel": "prev",
                          "href": f"{quote(req.path)}?" + urlencode(keep + [("start", max(0, start - count)),
                                                                          ("count", count)])})
        return {"start": start, "count": count, "total": total, "links": links}

    def _start_count(self, req: Request) -> tuple[int, int]:
        start = int(req.query.get("start", 0))
        count = int(req.query.get("count", 10))
        if start < 0 or not 1 <= count <= 100:
            raise ValueError("start must be >= 0 and count between 1 and 100")
        return start, count

    def posts(self, req: Request) -> Response:
        q = req.query
        if q.get("q") != "author" or not q.get("author"):
            return self.error(400, "q=author and author=<organization urn> are required", code="ILLEGAL_ARGUMENT")
        if q["author"] != self.org:
            return self.error(403, f"Not enough permissions to access posts of {q['author']}",
                              code="ACCESS_DENIED", service=100)
        try:
            start, count = self._start_count(req)
        except ValueError as exc:
            return self.error(400, str(exc), code="ILLEGAL_ARGUMENT")
        with self.db() as db:
            total = self.count(db, "select count(*) from s_li_posts where available_at <= ?", (self.clock,))
            rows = db.execute("select payload from s_li_posts where available_at <= ? order by created_at desc, "
                              "key desc limit ? offset ?", (self.clock, count, start)).fetchall()
        elements = [json.loads(r[0]) for r in rows]
        return Response(200, {"paging": self._paging(req, start, count, total, len(elements)),
                              "elements": elements}, records="elements")

    def comments(self, req: Request) -> Response:
        post = req.path.strip("/").split("/")[2]
        try:
            start, count = self._start_count(req)
        except ValueError as exc:
            return self.error(400, str(exc), code="ILLEGAL_ARGUMENT")
        with self.db() as db:
            if not db.execute("select 1 from s_li_posts where key = ? and available_at <= ?",
                              (post, self.clock)).fetchone():
                return self.error(404, f"Not Found: {post}", code="NOT_FOUND")
            total = self.count(db, "select count(*) from s_li_comments where post_urn = ? and available_at <= ?",
                               (post, self.clock))
            rows = db.execute("select payload from s_li_comments where post_urn = ? and available_at <= ? "
                              "order by created_at, key limit ? offset ?", (post, self.clock, count, start)
                              ).fetchall()
        elements = [json.loads(r[0]) for r in rows]
        return Response(200, {"paging": self._paging(req, start, count, total, len(elements)),
                              "elements": elements}, records="elements")
