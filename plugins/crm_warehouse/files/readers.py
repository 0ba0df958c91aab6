"""Reading vendor files (pure functions, no SFTP, no database): decompression, encoding and dialect
detection, the Qualtrics three-header layout, and rows as {header: text} with their line numbers.

A file that cannot be read raises `UnreadableFile` with a reason a vendor can act on; a single bad row
(wrong number of fields) is yielded as an error row, to be quarantined while the rest of the file loads.

Hostile input is bounded: a compressed file may expand to at most `EXPANSION_RATIO` times its size
(beyond `EXPANSION_FLOOR`) and never beyond `MAX_EXPANDED` bytes, so a zip/gzip/bz2 bomb is refused
instead of filling memory or disk; a physical line longer than `MAX_LINE` characters and a header of
more than `MAX_COLUMNS` columns are refused. Archive members are read in memory, never extracted, so
their names (`../../etc/x`) cannot write anywhere.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import os
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

TEMPORARY_SUFFIXES = (".filepart", ".tmp", ".part", ".partial", ".crdownload")
SIDECAR_SUFFIX = ".sha256"
REPORT_SUFFIX = ".rejected.txt"
DELIMITERS = (",", ";", "\t")
SAMPLE_BYTES = 1 << 16
MAX_FIELD = 16 * 1024 * 1024
MAX_LINE = MAX_FIELD  # characters in one physical line
MAX_COLUMNS = 10_000
EXPANSION_RATIO = 200  # real CSV compresses 5-20 times; a bomb, hundreds to millions of times
EXPANSION_FLOOR = 64 * 1024 * 1024  # any file may expand to this size, whatever its ratio
MAX_EXPANDED = 16 * 1024 * 1024 * 1024

# What a damaged or hostile file can raise while it is decompressed, decoded or parsed (not MemoryError).
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, struct.error, csv.Error,
               ValueError, RuntimeError)

csv.field_size_limit(MAX_FIELD)


class UnreadableFile(ValueError):
    """The file as a whole cannot be read; the message is written for the vendor."""


def is_temporary(name: str) -> bool:
    """Uploads in progress (`.filepart`, `.tmp`, `.part`...) and hidden files are not ready."""
    lower = name.lower()
    return lower.startswith(".") or lower.endswith(TEMPORARY_SUFFIXES) or lower.startswith("~$")


def is_safe_name(name: str) -> bool:
    """A plain file name: no folder separator, not `.` or `..`, no NUL or line breaks. A listing that
    names `../../etc/x` comes from a broken or hostile server; such a file is neither read nor moved."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\x00\r\n")


def local_suffix(name: str, keep: int = 48) -> str:
    """A short, harmless local file-name suffix derived from a remote name (for temp files)."""
    tail = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name[-keep:])
    return "_" + tail.lstrip(".")


def is_data_file(name: str) -> bool:
    lower = name.lower()
    return not (is_temporary(name) or lower.endswith(SIDECAR_SUFFIX) or lower.endswith(REPORT_SUFFIX))


def parse_sidecar(text: str) -> str | None:
    """The sha256 hex in a `.sha256` sidecar (`<hex>` or `<hex>  <name>`), or None."""
    for token in text.replace("*", " ").split():
        token = token.strip().lower()
        if len(token) == 64 and all(c in "0123456789abcdef" for c in token):
            return token
    return None


def compression_of(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"BZh"):
        return "bz2"
    return "none"


def expansion_limit(compressed_size: int) -> int:
    """The most bytes a compressed file of `compressed_size` bytes may expand to."""
    return min(MAX_EXPANDED, max(EXPANSION_FLOOR, EXPANSION_RATIO * compressed_size))


def _bomb_message(kind: str, compressed_size: int, limit: int, declared: int | None = None) -> str:
    expands = f"declares {declared} bytes of content, more than" if declared is not None else "expands beyond"
    return (f"the {kind} file of {compressed_size} bytes {expands} the {limit} bytes allowed for its "
            f"size ({EXPANSION_RATIO} times the compressed size, at least {EXPANSION_FLOOR} and at most "
            f"{MAX_EXPANDED} bytes): refused as a possible decompression bomb. Send the file uncompressed or split "
            "it into smaller files")


class _Limited(io.RawIOBase):
    """The decompressed stream of a file, refusing to expand beyond `limit` bytes (decompression bombs)."""

    def __init__(self, inner: IO[bytes], limit: int, kind: str, compressed_size: int,
                 closing: tuple = ()) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.kind = kind
        self.compressed_size = compressed_size
        self.closing = closing
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        data = self.inner.read(min(len(buffer), self.limit - self.count + 1))
        self.count += len(data)
        if self.count > self.limit:
            raise UnreadableFile(_bomb_message(self.kind, self.compressed_size, self.limit))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self.inner.close()
                for other in self.closing:
                    other.close()
            finally:
                super().close()


def _limited(inner: IO[bytes], kind: str, compressed_size: int, closing: tuple = ()) -> IO[bytes]:
    raw = _Limited(inner, expansion_limit(compressed_size), kind, compressed_size, closing)
    return io.BufferedReader(raw, buffer_size=1 << 16)


def opener(path: str | Path) -> tuple[Callable[[], IO[bytes]], str]:
    """A function opening the decompressed content of a local file (callable again for a second pass),
    and the compression found by magic bytes (not by the file's name). Decompressed content is bounded
    (`expansion_limit`): reading past the bound raises UnreadableFile."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    kind = compression_of(head)
    size = os.path.getsize(path)
    if kind == "gzip":
        return (lambda: _limited(gzip.open(path, "rb"), kind, size)), kind
    if kind == "bz2":
        return (lambda: _limited(bz2.open(path, "rb"), kind, size)), kind
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")]
        except zipfile.BadZipFile as exc:
            raise UnreadableFile(f"the zip archive is damaged ({exc})") from exc
        if len(members) != 1:
            raise UnreadableFile(f"the zip archive must hold exactly one file, it holds {len(members)}: "
                                 f"{', '.join(m.filename for m in members) or 'nothing'}")
        member = members[0].filename
        limit = expansion_limit(size)
        if members[0].file_size > limit:
            raise UnreadableFile(_bomb_message(kind, size, limit, members[0].file_size))

        def open_member() -> IO[bytes]:
            archive = zipfile.ZipFile(path)
            try:
                inner = archive.open(member)
            except BaseException:
                archive.close()
                raise
            return _limited(inner, kind, size, closing=(archive,))

        return open_member, kind
    return (lambda: open(path, "rb")), kind


def detect_encoding(open_binary: Callable[[], IO[bytes]]) -> str:
    """BOM UTF-8 / UTF-16 (LE or BE), else UTF-8 if the whole content decodes, else Windows-1252
    (Latin-1 when bytes undefined in Windows-1252 occur). UTF-16 without a BOM is recognised by its NULs."""
    with open_binary() as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        return "utf-16-be"
    for candidate in ("utf-8", "cp1252"):
        if _decodes(open_binary, candidate):
            return candidate
    return "latin-1"


def _decodes(open_binary: Callable[[], IO[bytes]], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open_binary() as fh:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_delimiter(sample: str) -> str:
    """Comma, semicolon or tab: the one that splits the header line into the most fields, preferring
    one that splits the next line into as many (ties go to comma)."""
    lines = [line for line in sample.splitlines() if line.strip()][:2]
    if not lines:
        return ","
    best, best_score = ",", (-1, -1)
    for delim in DELIMITERS:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
        except csv.Error:
            continue
        width = len(rows[0]) if rows else 0
        consistent = 1 if len(rows) < 2 or len(rows[1]) == width else 0
        score = (consistent if width > 1 else 0, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def is_qualtrics_import_row(row: list[str]) -> bool:
    """The third Qualtrics header row: one JSON ImportId object per column."""
    cells = [c.strip() for c in row if c.strip()]
    return bool(cells) and sum(c.startswith("{") and "ImportId" in c for c in cells) >= max(1, len(cells) // 2)


@dataclass
class Row:
    line: int  # physical line where the row starts (1-based, header rows included)
    values: dict[str, str] | None
    error: str | None = None
    raw: str | None = None


@dataclass
class Layout:
    compression: str
    encoding: str
    delimiter: str
    header_rows: int
    columns: list[str]


def read_rows(path: str | Path, *, required_column: str | None = None) -> tuple[Layout, Iterator[Row]]:
    """Open a vendor file and return its layout and an iterator of its data rows.

    Raises UnreadableFile (now, or while iterating) when the file cannot be read as a whole."""
    try:
        open_binary, compression = opener(path)
        encoding = detect_encoding(open_binary)
        with open_binary() as fh:
            sample = fh.read(SAMPLE_BYTES).decode(encoding, errors="ignore")
    except UnreadableFile:
        raise
    except READ_ERRORS as exc:
        raise UnreadableFile(f"the file could not be decompressed ({type(exc).__name__}: {exc}); it may be "
                             "truncated or damaged (or encrypted)") from exc
    if not sample.strip():
        raise UnreadableFile("the file is empty (no header row)")
    delimiter = detect_delimiter(sample.lstrip("\ufeff"))

    try:
        binary = open_binary()
    except READ_ERRORS as exc:
        raise UnreadableFile(f"the file could not be decompressed ({type(exc).__name__}: {exc}); it may be "
                             "truncated or damaged (or encrypted)") from exc
    text = io.TextIOWrapper(binary, encoding=encoding, newline="")
    reader = csv.reader(_lines(text), delimiter=delimiter)
    try:
        header = next(reader)
    except UnreadableFile:
        text.close()
        raise
    except (StopIteration, *READ_ERRORS) as exc:
        text.close()
        raise UnreadableFile(f"the header row could not be read ({exc})") from exc
    header = [h.strip().lstrip("\ufeff") for h in header]
    problems = _header_problems(header, required_column)
    if problems:
        text.close()
        raise UnreadableFile(problems)
    layout = Layout(compression, encoding, delimiter, 1, header)
    return layout, _rows(text, reader, header, layout, delimiter)


def _lines(text: io.TextIOWrapper) -> Iterator[str]:
    """The physical lines of a text stream, refusing a line longer than MAX_LINE (memory stays bounded)."""
    readline = text.readline
    number = 0
    while line := readline(MAX_LINE):
        number += 1
        if len(line) >= MAX_LINE and line[-1] not in "\r\n":
            raise UnreadableFile(f"line {number} is longer than {MAX_LINE} characters; check the file is a CSV "
                                 "export with line breaks between rows")
        yield line


def _header_problems(header: list[str], required: str | None) -> str | None:
    if not any(header):
        return "the first row (header) is empty"
    if len(header) > MAX_COLUMNS:
        return (f"the header has {len(header)} columns, more than the {MAX_COLUMNS} accepted; check the delimiter "
                "and the export settings")
    named = [h for h in header if h]
    dupes = sorted(h for h, n in Counter(named).items() if n > 1)
    if dupes:
        return f"the header names these columns more than once: {', '.join(dupes)}"
    if required and required not in header:
        shown = ", ".join(header[:12]) + (" ..." if len(header) > 12 else "")
        return (f"the header has no column {required!r}, which identifies each row (columns found: {shown}); "
                "check the delimiter and the export settings")
    return None


def _rows(text: io.TextIOWrapper, reader, header: list[str], layout: Layout, delimiter: str) -> Iterator[Row]:  # noqa: ANN001
    width = len(header)
    first_data = True
    try:
        with text:
            previous_end = reader.line_num
            for row in reader:
                start = previous_end + 1
                previous_end = reader.line_num
                if first_data and layout.header_rows == 1:
                    first_data = False
                    second = row
                    try:
                        third = next(reader)
                    except StopIteration:
                        third = None
                    if third is not None and is_qualtrics_import_row(third):
                        layout.header_rows = 3  # skip question texts (row 2) and ImportIds (row 3)
                        previous_end = reader.line_num
                        continue
                    yield _row(start, second, header, width, delimiter)
                    if third is None:
                        return
                    start, previous_end = previous_end + 1, reader.line_num
                    row = third
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                yield _row(start, row, header, width, delimiter)
    except UnreadableFile:
        raise
    except READ_ERRORS as exc:
        raise UnreadableFile(f"the file could not be read past line {reader.line_num} ({type(exc).__name__}: "
                             f"{exc}); it may be truncated or damaged") from exc


def _row(line: int, row: list[str], header: list[str], width: int, delimiter: str) -> Row:
    if len(row) != width:
        if len(row) > width and not any(c.strip() for c in row[width:]):
            row = row[:width]  # trailing empty fields (a trailing delimiter)
        else:
            return Row(line, None, f"line {line} has {len(row)} fields, the header has {width}",
                       delimiter.join(row))
    return Row(line, dict(zip(header, row, strict=True)))
