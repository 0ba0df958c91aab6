"""The dlt contender: the same records from the same sandbox, loaded by dlt into the same PostgreSQL.

Runs in its own environment (`.crm/bench/dlt-venv`, made by the benchmark; dlt is not a dependency of
the project), as a plain script that imports nothing of this repository:

    .crm/bench/dlt-venv/bin/python bench/dlt_pipeline.py calls '<json>'    # pages the Twilio Calls API
    .crm/bench/dlt-venv/bin/python bench/dlt_pipeline.py survey '<json>'   # reads the survey SFTP drops

Each record is landed as one JSON column (`payload`, jsonb in PostgreSQL) next to its natural key, as ours
lands it, with `write_disposition="append"` (dlt's cheapest: no staging table, no merge) and dlt's
default PostgreSQL file format. Prints one JSON line last: records and the seconds of `pipeline.run`.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import os
import sys
import tempfile
import time
import zipfile

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
import requests  # noqa: E402

PAGE_ROWS = 10_000


def calls_resource(args: dict):
    base, sid, token = args["base_url"], args["login"], args["password"]

    @dlt.resource(name="calls", columns={"payload": {"data_type": "json"}}, write_disposition="append")
    def calls():
        session = requests.Session()
        session.auth = (sid, token)
        url = f"{base}/2010-04-01/Accounts/{sid}/Calls.json"
        params = {"StartTime>": args["first_day"], "StartTime<": args["last_day"], "PageSize": 1000}
        while url:
            response = session.get(url, params=params, timeout=60)
            response.raise_for_status()
            body = response.json()
            yield [{"sid": c["sid"], "payload": c} for c in body["calls"]]
            nxt = body.get("next_page_uri")
            url, params = (base + nxt if nxt else None), None

    return calls


def _sftp(args: dict):
    import paramiko

    kind, key64 = args["host_key"].split()[:2]
    key = paramiko.PKey.from_type_string(kind, base64.b64decode(key64))
    transport = paramiko.Transport((args["host"], int(args["port"])))
    transport.connect(hostkey=key, username=args["login"], password=args["password"])  # verifies the host key
    return transport, paramiko.SFTPClient.from_transport(transport)


def _text(name: str, data: bytes) -> str:
    lower = name.lower()
    if lower.endswith(".gz"):
        data = gzip.decompress(data)
    elif lower.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            data = zf.read(zf.namelist()[0])
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def survey_resource(args: dict):
    @dlt.resource(name="responses", columns={"payload": {"data_type": "json"}}, write_disposition="append")
    def responses():
        transport, sftp = _sftp(args)
        try:
            folder = args["incoming"]
            names = sorted(n for n in sftp.listdir(folder)
                           if not n.endswith((".sha256", ".filepart", ".rejected.txt")))
            for name in names:
                with tempfile.TemporaryFile() as tmp:
                    sftp.getfo(f"{folder}/{name}", tmp)
                    tmp.seek(0)
                    text = _text(name, tmp.read())
                first = text.split("\n", 1)[0]
                delimiter = max(",;\t", key=first.count)
                reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
                header = next(reader)
                rows = []
                for n, row in enumerate(reader):
                    if n < 2 and row and row[0].startswith('{"ImportId"'):
                        continue
                    if n == 0 and row and row[0] == header[0]:  # Qualtrics: the question-text row
                        continue
                    if not row:
                        continue
                    record = dict(zip(header, row, strict=False))
                    rows.append({"response_id": record.get("ResponseId"), "payload": record})
                    if len(rows) >= PAGE_ROWS:
                        yield rows
                        rows = []
                if rows:
                    yield rows
        finally:
            sftp.close()
            transport.close()

    return responses


def _with_password(url: str) -> str:
    """dlt insists on a password; a trust-auth server (loopback) ignores the one given."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        user = parts.username or "postgres"
        parts = parts._replace(netloc=f"{user}:unused@{parts.hostname}:{parts.port or 5432}")
    return urlunsplit(parts)


def main(argv: list[str]) -> int:
    what, args = argv[0], json.loads(argv[1])
    args["url"] = _with_password(args["url"])
    resource = {"calls": calls_resource, "survey": survey_resource}[what](args)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{what}", pipelines_dir=args["pipelines_dir"], dataset_name=args["dataset"],
        destination=dlt.destinations.postgres(credentials=args["url"]),
    )
    t0 = time.perf_counter()
    info = pipeline.run(resource)
    seconds = time.perf_counter() - t0
    table = resource.name
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"select count(*) from {client.make_qualified_table_name(table)}")[0][0]
    print(info, file=sys.stderr)
    print(json.dumps({"records": rows, "seconds": seconds, "loaded": rows, "dlt": dlt.__version__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
