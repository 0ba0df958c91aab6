"""Qualtrics response export: start an export, poll its progress, download a zip holding one file.

As at Qualtrics, the file is prepared while the export is in progress (a thread started with the export) and
the progress says `complete` only when it is ready, so the download answers at once however many responses
the file holds (at a million responses, building it when asked made the download wait past the client's
read timeout)."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
import zipfile
from collections.abc import Callable

from sandbox import world as W
from sandbox.serve import Request, Response, VendorApp, _b64, _drift, _parse_time, _secret, _unb64


class QualtricsApp(VendorApp):
    name = "qualtrics"
    polls_until_complete = 1  # the first poll says inProgress, the next one complete

    def __init__(self, sandbox) -> None:  # noqa: ANN001
        super().__init__(sandbox)
        self.token = _secret(sandbox.seed, "qualtrics", 40)
        self.surveys = {sandbox.meta["survey_id"]}
        self.jobs: dict[str, dict] = {}
        self.files: dict[str, dict] = {}
        self._lock = threading.Lock()

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response]] | None:
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[:3] != ["API", "v3", "surveys"] or parts[4] != "export-responses":
            return None
        if method == "POST" and len(parts) == 5:
            return "qualtrics.export", self.start_export
        if method == "GET" and len(parts) == 6:
            return "qualtrics.export", self.progress
        if method == "GET" and len(parts) == 7 and parts[6] == "file":
            return "qualtrics.export", self.download
        return None

    def error(self, status: int, message: str) -> Response:
        text = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "")
        code = {401: "AUTH_6.0", 404: "RP_0.1", 429: "RATE_1.0", 400: "RP_0.2"}.get(status, "SYS_1.0")
        return Response(status, {"meta": {"httpStatus": f"{status} - {text}", "requestId": str(uuid.uuid4()),
                                          "error": {"errorMessage": message, "errorCode": code}}})

    def rate_limited(self, fault: dict) -> Response:
        r = self.error(429, "Too many requests: slow down and retry after the Retry-After seconds")
        r.headers["Retry-After"] = str(fault.get("retry_after", 1))
        return r

    def authorized(self, req: Request) -> Response | None:
        tok = req.header("x-api-token")
        if not tok or tok != self.token:
            return self.error(401, "Invalid API token: send your token in the X-API-TOKEN header")
        return None

    @staticmethod
    def _ok(result: dict) -> dict:
        return {"result": result, "meta": {"requestId": str(uuid.uuid4()), "httpStatus": "200 - OK"}}

    def start_export(self, req: Request) -> Response:
        survey = req.path.strip("/").split("/")[3]
        if survey not in self.surveys:
            return self.error(404, f"Survey {survey} not found")
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            return self.error(400, "The request body is not valid JSON")
        fmt = body.get("format")
        if fmt not in ("json", "csv"):
            return self.error(400, "format is required: json or csv")
        lo: int | None = None
        hi: int | None = None
        try:
            if body.get("continuationToken"):
                tok = _unb64(str(body["continuationToken"]))
                if not isinstance(tok, dict) or tok.get("s") != survey:
                    return self.error(400, "Invalid continuationToken for this survey")
                lo = int(tok["after"]) + 1
                if body.get("startDate") or body.get("endDate"):
                    return self.error(400, "continuationToken cannot be combined with startDate/endDate")
            if body.get("startDate"):
                lo = _parse_time(body["startDate"])
            if body.get("endDate"):
                hi = _parse_time(body["endDate"]) - 1  # endDate is exclusive
        except (ValueError, KeyError, TypeError) as exc:
            return self.error(400, f"Invalid date or token: {exc}")
        progress_id = "ES_" + uuid.uuid4().hex[:15]
        job = {"survey": survey, "format": fmt, "lo": lo, "hi": hi, "clock": self.clock,
               "compress": body.get("compress", True) is not False,
               "continuation": bool(body.get("allowContinuation") or body.get("continuationToken")),
               "polls": 0, "file_id": None, "fault": getattr(req, "fault", None)}
        job["ready"] = threading.Event()
        with self._lock:
            self.jobs[progress_id] = job
        threading.Thread(target=self._prepare, args=(job,), name=f"qualtrics-{progress_id}", daemon=True).start()
        return Response(200, self._ok({"progressId": progress_id, "percentComplete": 0.0,
                                       "status": "inProgress"}))

    def progress(self, req: Request) -> Response:
        progress_id = req.path.strip("/").split("/")[5]
        with self._lock:
            job = self.jobs.get(progress_id)
            if job is None:
                return self.error(404, f"Export {progress_id} not found: start a new export")
            job["polls"] += 1
            if job["polls"] <= self.polls_until_complete or not job["ready"].is_set():
                return Response(200, self._ok({"percentComplete": 50.0, "status": "inProgress"}))
            if job["file_id"] is None:
                job["file_id"] = str(uuid.uuid4()) + "-file"
                self.files[job["file_id"]] = job
        result = {"fileId": job["file_id"], "percentComplete": 100.0, "status": "complete"}
        if job["continuation"]:
            result["continuationToken"] = _b64({"s": job["survey"], "after": job["clock"],
                                                "n": uuid.uuid4().hex[:8]})
        return Response(200, self._ok(result))

    def download(self, req: Request) -> Response:
        file_id = req.path.strip("/").split("/")[5]
        job = self.files.get(file_id)
        if job is None:
            if file_id in self.jobs:
                return self.error(404, "This is a progressId: download with the fileId from the progress answer")
            return self.error(404, f"File {file_id} not found")
        if getattr(req, "fault", None):  # a fault of this request changes what it serves: built for it
            return self._build(job, req.fault)
        job["ready"].wait()
        return job["file"]

    def _prepare(self, job: dict) -> None:
        try:
            job["file"] = self._build(job, job.get("fault"))
        except Exception as exc:  # noqa: BLE001 - the download answers 500 with the reason
            job["file"] = self.error(500, f"The export could not be prepared: {exc}")
        job["ready"].set()

    def _build(self, job: dict, fault: dict | None) -> Response:
        """The export's file, as the download serves it (`fault`: a content fault to apply)."""
        where = ["survey_id = ?", "available_at <= ?"]
        args: list[object] = [job["survey"], job["clock"]]
        if job["lo"] is not None:
            where.append("recorded_at >= ?")
            args.append(job["lo"])
        if job["hi"] is not None:
            where.append("recorded_at <= ?")
            args.append(job["hi"])
        with self.db() as db:
            rows = db.execute(f"select payload from s_survey_responses where {' and '.join(where)} "
                              "order by recorded_at, key", args).fetchall()
        responses = self.sb.data_faults.apply("qualtrics.export", [json.loads(r[0]) for r in rows])
        kind = fault["fault"] if fault else None
        if kind and kind.startswith("drift_"):
            _drift({"r": [r["values"] for r in responses]}, "r", kind)
        if kind == "repeat" and len(responses) > 2:
            responses += responses[:2]
        if job["format"] == "json":
            name = "Customer Satisfaction.json"
            data = json.dumps({"responses": responses}, ensure_ascii=False).encode()
        else:
            name = "Customer Satisfaction.csv"
            data = _csv(responses).encode("utf-8-sig")
        if kind == "malformed":
            data = data[: len(data) // 2]
        if not job["compress"]:
            return Response(200, data, content_type="application/json" if job["format"] == "json" else "text/csv")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, data)
        return Response(200, buf.getvalue(), {"Content-Disposition": 'attachment; filename="export.zip"'},
                        content_type="application/zip")


def _csv(responses: list[dict]) -> str:
    """The Qualtrics CSV layout: three header rows, CRLF, quoted multi-line cells."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for header in W.qualtrics_header_rows():
        w.writerow(header)
    for r in responses:
        row = W._qualtrics_csv_row(r["responseId"], r["values"])
        w.writerow([row[c] for c in W.QUALTRICS_COLUMNS])
    return out.getvalue()
