"""Survey vendor (Qualtrics response export): per survey id in `extra.survey_ids`, start a JSON export
for the window (`startDate` inclusive, `endDate` exclusive), poll its progress, download the zip by
its fileId (not the progressId) and land `responses[]`.
"""

from __future__ import annotations

import io
import lzma
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator

import msgspec

from crm_warehouse.http import HttpClient, MalformedResponse, RetryPolicy
from crm_warehouse.load import Record
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, Stream, StreamContext, iso

# --- settings --------------------------------------------------------------------------------------
START_PATH = "/API/v3/surveys/{survey_id}/export-responses"
PROGRESS_PATH = "/API/v3/surveys/{survey_id}/export-responses/{progress_id}"
FILE_PATH = "/API/v3/surveys/{survey_id}/export-responses/{file_id}/file"
RECORDS = "responses"
MAX_POLLS = 600
POLL_FIRST_SECONDS = 0.25  # then doubling up to POLL_MAX_SECONDS
POLL_MAX_SECONDS = 10.0
DOWNLOAD_ATTEMPTS = 4
# The export's JSON is decoded in memory: a zip whose file declares more than this (or more than
# EXPANSION_RATIO times the zip) is refused as a decompression bomb rather than read.
MAX_EXPORT_BYTES = 2 * 1024 * 1024 * 1024
EXPANSION_RATIO = 200
EXPANSION_FLOOR = 64 * 1024 * 1024


def make_client(conn: ConnInfo, policy: RetryPolicy | None) -> HttpClient:
    if not conn.password:
        raise ValueError(f"Airflow connection {conn.conn_id!r} needs the Qualtrics API token as its password")
    return HttpClient(conn.base_url, conn_id=conn.conn_id, allow_insecure_http=conn.allow_insecure_http, policy=policy,
                      headers={"X-API-TOKEN": conn.password, "Accept": "application/json"})


def _result(data: object, what: str, conn_id: str) -> dict:
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise MalformedResponse(f"Qualtrics {what}: the answer has no `result` object (connection {conn_id!r})",
                                conn_id=conn_id)
    return result


def run_export(ctx: StreamContext, survey_id: str) -> tuple[str, str]:
    """Start an export and poll it to completion; returns (fileId, progressId)."""
    body = {"format": "json", "startDate": iso(ctx.window_start), "endDate": iso(ctx.window_end),
            "compress": True}
    data, _ = ctx.client.request("POST", START_PATH.format(survey_id=survey_id), json=body)
    progress_id = _result(data, "export start", ctx.conn.conn_id).get("progressId")
    if not progress_id:
        raise MalformedResponse(f"Qualtrics export of survey {survey_id} started without a progressId",
                                conn_id=ctx.conn.conn_id)
    wait = POLL_FIRST_SECONDS
    for _ in range(MAX_POLLS):
        data = ctx.client.get_json(PROGRESS_PATH.format(survey_id=survey_id, progress_id=progress_id))
        result = _result(data, "export progress", ctx.conn.conn_id)
        status = result.get("status")
        if status == "complete":
            if not result.get("fileId"):
                raise MalformedResponse(f"Qualtrics export {progress_id} of survey {survey_id} is complete but "
                                        "has no fileId", conn_id=ctx.conn.conn_id)
            return str(result["fileId"]), progress_id
        if status == "failed":
            raise RuntimeError(f"Qualtrics export {progress_id} of survey {survey_id} failed at the vendor; "
                               "re-run the task (a new export is started)")
        ctx.client.sleep(wait)
        wait = min(POLL_MAX_SECONDS, wait * 2)
    raise TimeoutError(f"Qualtrics export {progress_id} of survey {survey_id} did not complete after "
                       f"{MAX_POLLS} polls; re-run the task")


def _read_single_member(handle: io.IOBase, survey_id: str) -> bytes:
    """The content of the one file in an export zip, read in memory (never extracted: a member's name
    cannot write anywhere), refusing a member that declares more than the bomb limit."""
    zipped = handle.seek(0, io.SEEK_END)
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise MalformedResponse(f"Qualtrics export of survey {survey_id}: expected one file in the zip, "
                                    f"found {[m.filename for m in members]}")
        limit = min(MAX_EXPORT_BYTES, max(EXPANSION_FLOOR, EXPANSION_RATIO * zipped))
        if members[0].file_size > limit:
            raise MalformedResponse(
                f"Qualtrics export of survey {survey_id}: the zip of {zipped} bytes declares a file of "
                f"{members[0].file_size} bytes, more than the {limit} allowed; refused as a possible "
                "decompression bomb")
        return archive.read(members[0])


def read_export(blob: bytes | io.IOBase, survey_id: str) -> list:
    """The `responses` list of an export zip holding one JSON file (or of a plain JSON body)."""
    handle = io.BytesIO(blob) if isinstance(blob, bytes) else blob
    if zipfile.is_zipfile(handle):
        handle.seek(0)
        try:
            data = _read_single_member(handle, survey_id)
        except MalformedResponse:
            raise
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError, struct.error, zlib.error,
                lzma.LZMAError) as exc:
            raise MalformedResponse(f"Qualtrics export of survey {survey_id}: the zip cannot be read "
                                    f"({type(exc).__name__}: {exc})") from exc
    else:
        handle.seek(0)
        data = handle.read()
    try:
        decoded = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:  # bad UTF-8, nested too deeply
        raise MalformedResponse(f"Qualtrics export of survey {survey_id}: the file is not valid JSON ({exc})") \
            from exc
    responses = decoded.get(RECORDS) if isinstance(decoded, dict) else None
    if not isinstance(responses, list):
        raise MalformedResponse(f"Qualtrics export of survey {survey_id}: no `responses` list in the file")
    return responses


def extract_responses(ctx: StreamContext) -> Iterator[Chunk]:
    survey_ids = [str(s) for s in ctx.conn.require("survey_ids")]
    first = int((ctx.resume or {}).get("survey_index", 0))
    for index in range(first, len(survey_ids)):
        survey_id = survey_ids[index]
        responses = None
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            file_id, _ = run_export(ctx, survey_id)
            path = FILE_PATH.format(survey_id=survey_id, file_id=file_id)
            with tempfile.TemporaryFile() as tmp:
                _, response = ctx.client.request("GET", path, stream_to=tmp)
                try:
                    responses = read_export(tmp, survey_id)
                    break
                except (MalformedResponse, zipfile.BadZipFile) as exc:
                    if attempt == DOWNLOAD_ATTEMPTS:
                        raise MalformedResponse(
                            f"{exc}; {DOWNLOAD_ATTEMPTS} exports in a row were unreadable. Check the survey "
                            "vendor's status; re-run the task later.", conn_id=ctx.conn.conn_id) from exc
                    ctx.client.sleep(ctx.client.policy.backoff(attempt))
        uri = ctx.client.url(path)
        records = [Record(r, survey_id, uri, str(i + 1)) for i, r in enumerate(responses or [])]
        position = {"survey_index": index + 1} if index + 1 < len(survey_ids) else None
        yield Chunk({"responses": records}, position)


SOURCE = Source(
    name="survey_vendor",
    make_client=make_client,
    stream_list=(Stream("responses", extract_responses, {"responses": "responseId"}),),
)
