"""Reading dataset files: JSON Lines streamed line by line, CSV/TSV with line numbers, file checks.

Every problem becomes a :class:`RowError` carrying its line number, so the layer above can report
each bad row and import nothing silently wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError
from ..strict_json import JSONProblem, bad_lines_error, jsonl_lines, loads

T = TypeVar("T")

_SNIFF_BYTES = 8192
MAX_LINE_BYTES = 8 << 20  # a longer line is a bad line, never read whole (a 200 MB line took 660 MB)
_LETTER_COLUMN = re.compile(r"^(?:option[ _-]?)?([a-z])$")


@dataclass
class RowError:
    """A rejected row: its line number in the file (0 = the whole file) and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _is_wide_encoding(encoding: str) -> bool:
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _open_checked(path: str | Path, encoding: str) -> tuple[Path, bytes]:
    """Check the file exists, is not binary and the encoding is known; return the first bytes."""
    p = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown text encoding {encoding!r}") from None
    if not p.exists():
        raise InputError(f"dataset file not found: {p}")
    if p.is_dir():
        raise InputError(f"dataset path is a folder, not a file: {p}")
    try:
        with p.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read dataset file {p}: {exc.strerror or exc}") from None
    if not _is_wide_encoding(encoding):
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise InputError(f"{p} is UTF-16 encoded", hint="re-save it as UTF-8 (most editors: Save As, encoding UTF-8)")
        if b"\x00" in head:
            raise InputError(f"{p} looks like a binary file, not JSON Lines or CSV text")
    return p, head


def _decoded_lines(p: Path, encoding: str) -> Iterator[tuple[int, str | RowError]]:
    """Number and decode each physical line; an undecodable line yields a RowError instead."""
    if _is_wide_encoding(encoding):
        try:
            text = p.read_bytes().decode(encoding)
        except UnicodeDecodeError as exc:
            raise InputError(f"{p} is not valid {encoding}: {exc.reason}") from None
        yield from jsonl_lines(text)
        return
    with p.open("rb") as fh:
        for n, raw in enumerate(_bounded_lines(fh), start=1):
            if raw is None:
                yield n, RowError(n, f"line longer than {MAX_LINE_BYTES >> 20} MiB (the limit for one input line)")
                continue
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield n, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as exc:
                where = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                yield (
                    n,
                    RowError(n, f"not valid {encoding} text ({where}); re-save as UTF-8 or pass the right encoding"),
                )


def _bounded_lines(fh) -> Iterator[bytes | None]:
    """The physical lines of a binary file, each read at most :data:`MAX_LINE_BYTES` at a time;
    an over-long line is skipped to its end in bounded chunks and comes back as None."""
    while raw := fh.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n") and len(raw) == MAX_LINE_BYTES + 1:
            yield raw
            continue
        while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
            pass
        yield None


def iter_jsonl(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Stream ``(line_number, object_or_error)`` from a JSON Lines file, one line at a time.

    Blank lines are skipped. Invalid JSON, non-objects and undecodable lines come back as
    ``RowError``. A missing, unreadable or binary file raises ``InputError`` at call time.
    """
    p, _ = _open_checked(path, encoding)
    return _iter_jsonl(p, encoding)


def _iter_jsonl(p: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for n, text in _decoded_lines(p, encoding):
        if isinstance(text, RowError):
            yield n, text
            continue
        if not text.strip():
            continue
        try:
            obj = loads(text)
        except JSONProblem as exc:
            yield n, RowError(n, f"invalid JSON: {str(exc).removeprefix('not valid JSON').strip(' :()')}")
            continue
        if not isinstance(obj, dict):
            yield n, RowError(n, f"not a JSON object (got {_type_name(obj)})")
            continue
        yield n, obj


def read_checked_jsonl(path: str | Path, parse: Callable[[dict[str, Any], int], T], key: Callable[[T], str]) -> list[T]:
    """Every line of a JSONL input file through ``parse`` (an InputError marks a bad line), keys unique.

    The one policy of docs/cli.md for ``score``, ``ki``, ``run`` and ``import``: the whole
    file is checked before any model work; if any line is bad, one InputError lists every bad line.
    """
    items: list[T] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        if isinstance(obj, RowError):
            problems.append((n, obj.message))
            continue
        try:
            item = parse(obj, n)
        except InputError as exc:
            problems.append((n, re.sub(rf"^(?:input )?line {n}: ", "", exc.message)))
            continue
        if key(item) in seen:
            problems.append((n, f"id {key(item)!r} already used on line {seen[key(item)]}; ids must be unique"))
            continue
        seen[key(item)] = n
        items.append(item)
    if problems:
        raise bad_lines_error(path, problems)
    return items


def _csv_rows(
    p: Path, encoding: str, delimiter: str
) -> tuple[list[tuple[int, dict[str, Any] | RowError]], list[RowError], int]:
    """CSV rows as generic row dicts (or errors), file-level errors, and the header's line (0: none)."""
    physical = list(_decoded_lines(p, encoding))
    bad_lines = {n for n, t in physical if isinstance(t, RowError)}
    errors = [t for _, t in physical if isinstance(t, RowError)]
    text = "\n".join("" if isinstance(t, RowError) else t for _, t in physical)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, dict[str, Any] | RowError]] = []
    header: list[str] | None = None
    header_line = prev_end = 0
    try:
        for record in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if bad_lines.intersection(range(start, prev_end + 1)) or not any(c.strip() for c in record):
                continue
            if header is None:
                header = [c.strip().lower() for c in record]
                header_line = start
                continue
            if len(record) != len(header):
                rows.append((start, RowError(start, f"row has {len(record)} fields but the header has {len(header)}")))
                continue
            rows.append((start, _csv_record_to_obj(dict(zip(header, record, strict=True)), start)))
    except csv.Error as exc:
        errors.append(RowError(reader.line_num, f"CSV syntax error: {exc}"))
    if header is not None and "question" not in header:
        errors.append(RowError(header_line, f"CSV header has no 'question' column (found: {', '.join(header)})"))
        rows = []
    return rows, errors, header_line


def _csv_record_to_obj(rec: dict[str, str], line: int) -> dict[str, Any] | RowError:
    obj: dict[str, Any] = {}
    letters: dict[str, str] = {}
    for col, value in rec.items():
        if not value.strip():
            continue
        m = _LETTER_COLUMN.match(col)
        if col in ("id", "question", "answer", "answer_idx", "reasoning"):
            obj[col] = value
        elif col in ("options", "steps"):
            try:
                obj[col] = loads(value)
            except JSONProblem as exc:
                return RowError(line, f"{col} column is not valid JSON: {exc}")
        elif m:
            letters[m.group(1).upper()] = value
    if letters:
        if "options" in obj:
            return RowError(line, "options given both as an 'options' column and as letter columns")
        obj["options"] = letters
    return obj


def _file_format(p: Path, head: bytes, encoding: str) -> str:
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    start = head.decode(encoding, errors="ignore").lstrip("\ufeff \t\r\n")
    return "jsonl" if start.startswith("{") else "csv"
