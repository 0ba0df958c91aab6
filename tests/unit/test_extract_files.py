"""Unit tests of the vendor-file readers on crafted bytes: compression, encoding, delimiter, Qualtrics
three-header layout, line numbers, bad rows and unreadable files (no SFTP, no database)."""

from __future__ import annotations

import bz2
import gzip
import io
import zipfile

import pytest
from crm_warehouse.files.readers import (
    UnreadableFile,
    detect_delimiter,
    detect_encoding,
    is_data_file,
    is_temporary,
    parse_sidecar,
    read_rows,
)

CSV = "ResponseId,QID1,QID4_TEXT\r\nR_1,5,Très bien 😀\r\nR_2,1,\"late, and\r\nrude\"\r\n"


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rows_of(path, key="ResponseId"):
    layout, rows = read_rows(path, required_column=key)
    return layout, list(rows)


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("utf-16-le", "utf-16-le")],
)
def test_encodings_are_detected_and_decoded(tmp_path, encoding, expected):
    path = write(tmp_path, "f.csv", CSV.encode(encoding))
    layout, rows = rows_of(path)
    assert layout.encoding == expected
    assert layout.columns == ["ResponseId", "QID1", "QID4_TEXT"]
    assert rows[0].values == {"ResponseId": "R_1", "QID1": "5", "QID4_TEXT": "Très bien 😀"}


def test_windows_1252_is_the_fallback(tmp_path):
    text = "ResponseId;QID4_TEXT\r\nR_1;Caf\u00e9 \u2013 \u20ac5 na\u00efve\r\n"
    path = write(tmp_path, "f.csv", text.encode("cp1252"))
    layout, rows = rows_of(path)
    assert (layout.encoding, layout.delimiter) == ("cp1252", ";")
    assert rows[0].values["QID4_TEXT"] == "Café – €5 naïve"


def test_utf8_with_a_late_invalid_byte_is_not_utf8():
    data = ("ResponseId\n" + "R_x\n" * 30000 + "R_\xe9\n").encode("cp1252")
    assert detect_encoding(lambda: io.BytesIO(data)) == "cp1252"


@pytest.mark.parametrize(("sample", "delim"), [
    ("a,b,c\n1,2,3", ","), ("a;b;c\n1;2,5;3", ";"), ("a\tb\tc\n1\t2\t3", "\t"),
    ('name;note\n"x";"a,b,c,d"', ";"), ("single\nvalue", ","),
])
def test_delimiter_detection(sample, delim):
    assert detect_delimiter(sample) == delim


@pytest.mark.parametrize("wrap", ["gzip", "zip", "bz2", "none"])
def test_compressions_by_magic_bytes(tmp_path, wrap):
    raw = CSV.encode("utf-8")
    if wrap == "gzip":
        data = gzip.compress(raw)
    elif wrap == "bz2":
        data = bz2.compress(raw)
    elif wrap == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("inner.csv", raw)
        data = buf.getvalue()
    else:
        data = raw
    layout, rows = rows_of(write(tmp_path, "file.dat", data))
    assert layout.compression == wrap
    assert [r.values["ResponseId"] for r in rows] == ["R_1", "R_2"]


def test_multiline_cells_and_line_numbers(tmp_path):
    _, rows = rows_of(write(tmp_path, "f.csv", CSV.encode()))
    assert [r.line for r in rows] == [2, 3]
    assert rows[1].values["QID4_TEXT"] == "late, and\r\nrude"


def test_qualtrics_three_header_layout_skips_rows_2_and_3(tmp_path):
    text = (
        "StartDate,ResponseId,QID1\r\n"
        "Start Date,Response ID,How satisfied are you?\r\n"
        '"{""ImportId"":""startDate""}","{""ImportId"":""_recordId""}","{""ImportId"":""QID1""}"\r\n'
        "2026-09-01 10:00:00,R_a,4\r\n"
        "2026-09-01 11:00:00,R_b,2\r\n"
    )
    layout, rows = rows_of(write(tmp_path, "q.csv", text.encode("utf-8-sig")))
    assert layout.header_rows == 3
    assert [(r.line, r.values["ResponseId"]) for r in rows] == [(4, "R_a"), (5, "R_b")]


def test_single_header_with_one_data_row(tmp_path):
    layout, rows = rows_of(write(tmp_path, "f.csv", b"ResponseId,QID1\nR_1,3\n"))
    assert layout.header_rows == 1
    assert [r.values for r in rows] == [{"ResponseId": "R_1", "QID1": "3"}]


def test_ragged_row_is_an_error_row_and_the_rest_reads(tmp_path):
    data = b"call_id,agent_id,status\nC1,a1,completed\nC2,a2\nC3,a3,completed,\nC4,a4,busy\n"
    _, rows = rows_of(write(tmp_path, "f.csv", data), key="call_id")
    assert [r.error is None for r in rows] == [True, False, True, True]
    assert rows[1].error == "line 3 has 2 fields, the header has 3" and rows[1].raw == "C2,a2"
    assert rows[2].values == {"call_id": "C3", "agent_id": "a3", "status": "completed"}  # trailing delimiter


@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (b"call_id,call_id\n1,2\n", "more than once"),
    (b"foo,bar\n1,2\n", "no column 'call_id'"),
])
def test_unreadable_headers(tmp_path, data, why):
    with pytest.raises(UnreadableFile, match=why):
        read_rows(write(tmp_path, "f.csv", data), required_column="call_id")


def test_truncated_gzip_is_unreadable_while_iterating(tmp_path):
    data = gzip.compress(("call_id,status\n" + "C1,completed\n" * 20000).encode())
    path = write(tmp_path, "f.csv.gz", data[: len(data) // 2])
    with pytest.raises(UnreadableFile, match="truncated or damaged"):
        _, rows = read_rows(path, required_column="call_id")
        list(rows)


def test_zip_with_two_files_is_unreadable(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.csv", "call_id\n1\n")
        z.writestr("b.csv", "call_id\n2\n")
    with pytest.raises(UnreadableFile, match="exactly one file"):
        read_rows(write(tmp_path, "f.zip", buf.getvalue()), required_column="call_id")


def test_temporary_names_and_sidecars():
    assert is_temporary("responses.csv.filepart") and is_temporary("x.tmp") and is_temporary("x.part")
    assert not is_temporary("responses.csv")
    assert not is_data_file("responses.csv.sha256") and not is_data_file("bad.csv.rejected.txt")
    assert is_data_file("responses_20260901.csv.gz")
    digest = "a" * 64
    assert parse_sidecar(f"{digest}  responses.csv\n") == digest
    assert parse_sidecar(digest.upper()) == digest
    assert parse_sidecar("not a checksum") is None
