"""A longer fuzzing run over the vendor-file reader and the Qualtrics export parser (random mutation).

    python tools/fuzz_readers.py --seconds 60 [--seed 7] [--json]

Seeds are well-formed vendor files in every variant the SFTP feeds accept (plain, gzip, zip, bz2; UTF-8,
BOM, UTF-16, Windows-1252; comma, semicolon, tab; the Qualtrics three-header layout) carrying hostile
cells (formulas, NULs, quotes). Each input is a seed mutated at random (truncated, bytes flipped, chunks
repeated or deleted, junk inserted, a hostile archive member name, a decompression bomb) and read in a
folder of its own. Outcomes are counted: read (with good and error rows) or refused (by reason). Any other
exception, or a file written outside the input's folder, is a failure: printed with the seed that
reproduces it, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import io
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from crm_warehouse.files.readers import UnreadableFile, read_rows  # noqa: E402
from crm_warehouse.http import MalformedResponse  # noqa: E402
from crm_warehouse.sources.survey_vendor import read_export  # noqa: E402

KEY = "ResponseId"
CELLS = ["=cmd|' /C calc'!A0", "+1+1", "-1+cmd|' /C x'!A", "@SUM(A1)", "Très bien 😀", "late, and\nrude",
         'say "hi"', "\x00", "", "   ", "\\N", "'; drop table raw.x; --", "€ – naïve"]
MEMBERS = ["export.csv", "../../etc/x.csv", "/etc/passwd", "..\\..\\x.csv", "a/../../b.csv"]


def seed_file(rng: random.Random) -> bytes:
    rows = [[f"R_{i}", str(rng.randint(0, 10)), rng.choice(CELLS)] for i in range(rng.randint(0, 30))]
    delimiter = rng.choice([",", ";", "\t"])
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=rng.choice(["\r\n", "\n"]))
    writer.writerow([KEY, "QID1", "QID4_TEXT"])
    if rng.random() < 0.3:  # Qualtrics: question texts, then ImportIds
        writer.writerow(["Response ID", "How satisfied?", "Anything else?"])
        writer.writerow(['{"ImportId":"_recordId"}', '{"ImportId":"QID1"}', '{"ImportId":"QID4_TEXT"}'])
    writer.writerows(rows)
    encoding = rng.choice(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252"])
    data = buf.getvalue().encode(encoding, errors="replace")
    return compress(data, rng.choice(["none", "gzip", "bz2", "zip"]), rng.choice(MEMBERS))


def compress(data: bytes, kind: str, member: str = "export.csv") -> bytes:
    if kind == "gzip":
        return gzip.compress(data, 9)
    if kind == "bz2":
        return bz2.compress(data)
    if kind == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.writestr(member, data)
        return out.getvalue()
    return data


_BOMBS: dict[str, bytes] = {}


def bomb(rng: random.Random) -> bytes:
    """A small file expanding to 96 MiB (made once per kind: compressing is the slow part)."""
    kind = rng.choice(["gzip", "bz2", "zip"])
    if kind not in _BOMBS:
        _BOMBS[kind] = compress(b"ResponseId,Q1\n" + b"\0" * (96 << 20), kind, "../../bomb.csv")
    return _BOMBS[kind]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf += rng.randbytes(rng.randint(1, 64))
            continue
        op = rng.choice(["truncate", "flip", "insert", "delete", "repeat", "junk_tail", "none"])
        at = rng.randrange(len(buf))
        if op == "truncate":
            del buf[at:]
        elif op == "flip":
            buf[at] = rng.randrange(256)
        elif op == "insert":
            buf[at:at] = rng.choice([b"\x00", b"\r", b"\n", b'"', b",", b";", b"\xff\xfe", b"\xef\xbb\xbf",
                                     rng.randbytes(rng.randint(1, 16))])
        elif op == "delete":
            del buf[at: at + rng.randint(1, 32)]
        elif op == "repeat":
            buf[at:at] = buf[at: at + rng.randint(1, 256)] * rng.randint(2, 50)
        elif op == "junk_tail":
            buf += rng.randbytes(rng.randint(1, 128))
    return bytes(buf)


def files_under(folder: str) -> set[str]:
    return {os.path.join(d, f) for d, _, names in os.walk(folder) for f in names}


def reason(message: str) -> str:
    """A refusal's reason without its numbers, to count refusals by kind."""
    return re.sub(r"\d+", "N", message.split(";")[0].split(" (")[0])[:80]


def read_one(data: bytes, root: str) -> str:
    folder = tempfile.mkdtemp(dir=root)
    path = os.path.join(folder, "drop.csv")
    with open(path, "wb") as fh:
        fh.write(data)
    before = files_under(root)
    try:
        _, rows = read_rows(path, required_column=KEY)
        good = bad = 0
        for row in rows:
            if row.error is None:
                good += 1
            else:
                assert f"line {row.line}" in row.error, row.error
                bad += 1
        outcome = "read" + (" with error rows" if bad else "")
    except UnreadableFile as exc:
        assert str(exc).strip(), "a refusal without a reason"
        outcome = "refused: " + reason(str(exc))
    after = files_under(root)
    assert after == before, f"files written while reading: {sorted(after - before)}"
    os.remove(path)
    os.rmdir(folder)
    return outcome


def export_one(data: bytes, rng: random.Random) -> str:
    if rng.random() < 0.5:
        data = compress(data, "zip", rng.choice(["export.json", "../../etc/x.json"]))
    try:
        read_export(mutate(data, rng) if rng.random() < 0.7 else data, "SV_fuzz")
        return "export read"
    except MalformedResponse as exc:
        assert "SV_fuzz" in str(exc)
        return "export refused: " + reason(str(exc))


def export_seed(rng: random.Random) -> bytes:
    depth = rng.choice([0, 0, 0, 10, 900, 5000])
    responses = [{"responseId": f"R_{i}", "values": {"QID1": rng.randint(0, 10), "t": rng.choice(CELLS)}}
                 for i in range(rng.randint(0, 20))]
    return b"[" * depth + json.dumps({"responses": responses}).encode() + b"]" * depth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="master seed (default: random, printed)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    master = args.seed if args.seed is not None else random.randrange(1 << 32)
    outcomes: Counter[str] = Counter()
    failures: list[dict] = []
    started = time.monotonic()
    n = 0
    with tempfile.TemporaryDirectory(prefix="crm_fuzz_") as root:
        while time.monotonic() - started < args.seconds:
            case_seed = master * 1_000_003 + n
            rng = random.Random(case_seed)
            n += 1
            try:
                roll = rng.random()
                if roll < 0.02:
                    outcomes[read_one(bomb(rng), root)] += 1
                elif roll < 0.25:
                    outcomes[export_one(export_seed(rng), rng)] += 1
                else:
                    outcomes[read_one(mutate(seed_file(rng), rng) if roll > 0.3 else seed_file(rng), root)] += 1
            except Exception as exc:  # noqa: BLE001 - every other exception is a finding
                outcomes["FAILED"] += 1
                failures.append({"case_seed": case_seed, "error": f"{type(exc).__name__}: {exc}"[:500],
                                 "traceback": traceback.format_exc()[-2000:]})
    elapsed = time.monotonic() - started
    summary = {"inputs": n, "seconds": round(elapsed, 1), "master_seed": master, "failures": len(failures),
               "outcomes": dict(outcomes.most_common())}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"fuzz_readers: {n} inputs in {elapsed:.1f}s (master seed {master}), {len(failures)} failures")
        for name, count in outcomes.most_common():
            print(f"  {count:7d}  {name}")
    for failure in failures[:5]:
        print(f"\nFAILURE (case seed {failure['case_seed']}): {failure['error']}\n{failure['traceback']}",
              file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
