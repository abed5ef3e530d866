"""Turn reference files into passages: sniffing, tolerant decoding and streamed chunking.

Nothing here touches the database; :mod:`kiig_desktop.knowledge.corpus` stores what this yields.

Chunking rules (``.txt`` and ``.md``; each ``.jsonl`` record's ``text`` is treated like a ``.txt``):

- Paragraphs are separated by blank lines. In Markdown, ATX (``# Title``) and setext headings
  start a new section; a chunk never spans two sections, and its ``title`` is the heading path
  (``"Diabetes > Treatment"``, as for Word and HTML documents; a file imported when the separator
  was ``" / "`` keeps its titles until it changes), or the file name's stem when there is no heading. YAML front
  matter is skipped and ``[text](url)`` links keep only their text.
- Paragraphs are packed greedily into chunks of at most ``max_chunk_chars`` characters. A
  paragraph longer than that is cut at sentence ends (then at spaces, then anywhere).
- When a section continues into a new chunk, the new chunk starts with up to ``overlap_chars``
  characters from the end of the previous one (from a sentence or word start), so a fact cut at
  a boundary is still found whole.
- Files are read line by line with a bounded line length and paragraph buffer, so memory stays
  bounded whatever the file size or shape (one 1 GB line included).
- ``char_start``/``char_end`` are the span of the decoded document (newlines normalised to
  ``\\n``) that a chunk was built from.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..strict_json import JSONProblem, loads

SUPPORTED_SUFFIXES = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".jsonl": "jsonl",
                      ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html"}  # the last three: documents.py

HEADING_SEPARATOR = " > "  # between the headings of a section's path in a passage's title
TEXT_LINE_LIMIT = 64 * 1024  # characters read at once from a .txt/.md line
JSONL_LINE_LIMIT = 8 * 1024 * 1024  # a longer .jsonl line is skipped with a warning
SNIFF_BYTES = 8192
CHUNKER_VERSION = 1

_BINARY_MAGIC = (
    (b"%PDF", "a PDF file; name it .pdf to import its text"),
    (b"PK\x03\x04", "a ZIP archive or Office document; a Word document imports as .docx"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"\xd0\xcf\x11\xe0", "an old Office document; save it as .txt first"),
)

# -- tolerant decoding -------------------------------------------------------------------------

_decode_state = threading.local()


def _count_and_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _decode_state.count = getattr(_decode_state, "count", 0) + (exc.end - exc.start)
    return "\ufffd", exc.end


codecs.register_error("kiig-count-replace", _count_and_replace)


def reset_replacements() -> None:
    """Start counting undecodable bytes afresh (per thread)."""
    _decode_state.count = 0


def replacements() -> int:
    """Bytes replaced by U+FFFD since the last reset_replacements() in this thread."""
    return getattr(_decode_state, "count", 0)


def sniff(head: bytes) -> tuple[str | None, str | None]:
    """Look at a file's first bytes: ``(encoding, None)`` or ``(None, why it is not text)``."""
    if not head:
        return None, "empty file"
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32", None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", None
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", None
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            return None, f"not a text file: looks like {what}"
    if b"\x00" in head:
        return None, "not a text file: it contains NUL bytes (binary data, or UTF-16 without a byte-order mark)"
    control = sum(1 for b in head if (b < 32 and b not in (9, 10, 12, 13)) or b == 127)
    if control > len(head) * 0.05:
        return None, "not a text file: too many control bytes (binary data)"
    return "utf-8", None


def open_text(path: Path, encoding: str) -> TextIO:
    """Open ``path`` for streamed reading; undecodable bytes become U+FFFD and are counted."""
    return open(path, encoding=encoding, errors="kiig-count-replace", newline=None)  # noqa: SIM115


# -- chunking ----------------------------------------------------------------------------------


@dataclass
class Chunk:
    """One passage: its text, section title, span in the decoded document, and pages (PDF only)."""

    text: str
    title: str | None
    start: int
    end: int
    page: int | None = None
    page_end: int | None = None


@dataclass
class DocStart:
    """Marks the start of a document in a chunk stream; the chunks that follow belong to it."""

    source: str
    title: str | None
    line: int | None = None  # .jsonl line number


_SENTENCE_END = re.compile(r"[.!?;:][\"')\]]*\s+")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"\n]*\")?\)")
_BLANK_SPLIT = re.compile(r"\n[ \t]*\n\s*")


def check_chunk_settings(max_chunk_chars: int, overlap_chars: int) -> str | None:
    """Why the chunk settings are unusable, or None."""
    if not isinstance(max_chunk_chars, int) or not 100 <= max_chunk_chars <= 100_000:
        return f"max_chunk_chars must be an integer from 100 to 100000, got {max_chunk_chars!r}"
    if not isinstance(overlap_chars, int) or not 0 <= overlap_chars <= max_chunk_chars // 2:
        return f"overlap_chars must be an integer from 0 to max_chunk_chars/2 ({max_chunk_chars // 2}), got {overlap_chars!r}"
    return None


def _cut_point(text: str, limit: int) -> int:
    """Index <= limit at which to cut ``text``: after a sentence end, else at a space, else at limit."""
    best = 0
    for m in _SENTENCE_END.finditer(text, 0, limit + 1):
        if m.end() <= limit:
            best = m.end()
    if best >= limit // 3:
        return best
    space = text.rfind(" ", limit // 3, limit + 1)
    if space > 0:
        return space + 1
    space = max(text.rfind("\n", limit // 3, limit + 1), text.rfind("\t", limit // 3, limit + 1))
    return space + 1 if space > 0 else limit


def _split_long(text: str, start: int, limit: int) -> Iterator[tuple[str, int, int]]:
    """Cut ``text`` (starting at document offset ``start``) into stripped pieces of <= limit chars."""
    pos = 0
    while pos < len(text):
        rest = text[pos:]
        cut = len(rest) if len(rest) <= limit else _cut_point(rest, limit)
        piece = rest[:cut]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            yield stripped, start + pos + lead, start + pos + lead + len(stripped)
        pos += cut


def _overlap_tail(text: str, overlap: int) -> str:
    """Up to ``overlap`` characters from the end of ``text``, starting at a sentence or word start."""
    if overlap <= 0:
        return ""
    if len(text) <= overlap:
        return text
    tail = text[-overlap:]
    m = _SENTENCE_END.search(tail)
    if m and len(tail) - m.end() >= overlap // 4:
        return tail[m.end():]
    space = tail.find(" ")
    return tail[space + 1:] if 0 <= space < len(tail) - 1 else tail


class Packer:
    """Greedy packer of paragraphs into chunks of bounded size with overlap inside a section."""

    def __init__(self, max_chars: int, overlap: int) -> None:
        self.max = max_chars
        self.overlap = overlap
        self.piece_max = max_chars - overlap - 2
        self.parts: list[tuple[str, int, int, str]] = []  # text, start, end, joiner before it
        self.size = 0
        self.fresh = False  # holds text not yet emitted (beyond the seeded overlap)
        self.title: str | None = None

    def add(self, text: str, start: int, end: int, title: str | None, joiner: str = "\n\n") -> list[Chunk]:
        out: list[Chunk] = []
        if title != self.title:
            out.extend(self.finish())
            self.title = title
        for i, (piece, p_start, p_end) in enumerate(_split_long(text, start, self.piece_max)):
            j = joiner if i == 0 else " "
            if self.parts and self.size + len(j) + len(piece) > self.max:
                out.append(self._emit())
                tail = _overlap_tail(self.parts[-1][0], self.overlap)
                last_end = self.parts[-1][2]
                self.parts = [(tail, last_end - len(tail), last_end, "")] if tail else []
                self.size = len(tail)
                self.fresh = False
            sep = j if self.parts else ""
            self.parts.append((piece, p_start, p_end, sep))
            self.size += len(sep) + len(piece)
            self.fresh = True
        return out

    def _emit(self) -> Chunk:
        text = "".join(j + t for t, _s, _e, j in self.parts)
        return Chunk(text=text, title=self.title, start=self.parts[0][1], end=self.parts[-1][2])

    def finish(self) -> list[Chunk]:
        """Emit what is pending (if it holds new text) and forget the overlap."""
        out = [self._emit()] if self.parts and self.fresh else []
        self.parts, self.size, self.fresh = [], 0, False
        return out


def _lines(fh: TextIO, limit: int) -> Iterator[tuple[int, str]]:
    """(offset, line) pairs; a line longer than ``limit`` comes in several pieces."""
    pos = 0
    while True:
        line = fh.readline(limit)
        if not line:
            return
        yield pos, line
        pos += len(line)


def _skip_front_matter(lines: Iterator[tuple[int, str]]) -> Iterable[tuple[int, str]]:
    """Drop a leading YAML front-matter block (``---`` ... ``---``) of at most 200 lines."""
    first = next(lines, None)
    if first is None:
        return []
    if first[1].strip() != "---":
        return _chain([first], lines)
    held = [first]
    for item in lines:
        held.append(item)
        if item[1].strip() in ("---", "..."):
            return lines
        if len(held) > 200:
            break
    return _chain(held, lines)


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


def text_blocks(lines: Iterable[tuple[int, str]], *, markdown: bool, para_limit: int) -> Iterator[tuple]:
    """Yield ``("heading", level, text)`` and ``("para", text, start, end, joiner)`` blocks."""
    buf: list[str] = []
    buf_start = 0
    size = 0
    joiner = "\n\n"
    in_fence = False

    def para() -> tuple | None:
        raw = "".join(buf)
        stripped = raw.strip()
        if not stripped:
            return None
        lead = len(raw) - len(raw.lstrip())
        text = _LINK.sub(r"\1", stripped) if markdown else stripped
        return ("para", text, buf_start + lead, buf_start + lead + len(stripped), joiner)

    for pos, line in lines:
        stripped = line.strip()
        if markdown and _FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = None
        if markdown and not in_fence:
            m = _ATX.match(line.rstrip("\n"))
            if m:
                heading = (len(m.group(1)), (m.group(2) or "").strip())
            elif len(buf) == 1 and buf[0].strip() and _SETEXT.match(line):
                heading = (1 if stripped.startswith("=") else 2, buf[0].strip())
                buf, size = [], 0
            elif _RULE.match(line):
                stripped = ""  # a thematic break ends the paragraph like a blank line
        if heading is not None or not stripped:
            block = para()
            if block:
                yield block
            buf, size, joiner = [], 0, "\n\n"
            if heading is not None:
                yield ("heading", heading[0], _LINK.sub(r"\1", heading[1]))
            continue
        if not buf:
            buf_start = pos
        buf.append(line)
        size += len(line)
        while size > para_limit:  # bound memory: emit the head of a huge paragraph, keep its tail
            raw = "".join(buf)
            cut = _cut_point(raw, para_limit // 2)
            buf = [raw[:cut]]
            block = para()
            if block:
                yield block
            buf, buf_start, size, joiner = [raw[cut:]], buf_start + cut, len(raw) - cut, " "
    block = para()
    if block:
        yield block


def title_from_name(name: str) -> str:
    stem = Path(name).stem
    return re.sub(r"[_\-]+", " ", stem).strip() or name


def chunk_text_stream(
    fh: TextIO, name: str, kind: str, *, max_chunk_chars: int, overlap_chars: int,
    tick: Callable[[], None] | None = None,
) -> Iterator[DocStart | Chunk]:
    """Chunks of one ``.txt``/``.md`` file, preceded by its DocStart."""
    fallback = title_from_name(name)
    yield DocStart(source=name, title=fallback)
    packer = Packer(max_chunk_chars, overlap_chars)
    lines: Iterable[tuple[int, str]] = _lines(fh, TEXT_LINE_LIMIT)
    markdown = kind == "md"
    if markdown:
        lines = _skip_front_matter(iter(lines))
    headings: list[str] = []
    n = 0
    for block in text_blocks(lines, markdown=markdown, para_limit=max(8 * max_chunk_chars, 8192)):
        n += 1
        if tick and n % 256 == 0:
            tick()
        if block[0] == "heading":
            level, text = block[1], block[2]
            headings = headings[: level - 1] + [""] * max(0, level - 1 - len(headings)) + [text]
            continue
        _, text, start, end, joiner = block
        title = HEADING_SEPARATOR.join(h for h in headings if h) or fallback
        yield from packer.add(text, start, end, title, joiner)
    yield from packer.finish()


def chunk_record_text(text: str, title: str | None, *, max_chunk_chars: int, overlap_chars: int) -> list[Chunk]:
    """Chunks of one ``.jsonl`` record's text (paragraphs split at blank lines)."""
    packer = Packer(max_chunk_chars, overlap_chars)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[Chunk] = []
    pos = 0
    for m in [*_BLANK_SPLIT.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[pos:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.extend(packer.add(stripped, pos + lead, pos + lead + len(stripped), title))
        if m:
            pos = m.end()
    out.extend(packer.finish())
    return out


def chunk_jsonl_stream(
    fh: TextIO, name: str, *, max_chunk_chars: int, overlap_chars: int, warn: Callable[[str], None],
    tick: Callable[[], None] | None = None, bad: Callable[[int, str], None] | None = None,
) -> Iterator[DocStart | Chunk]:
    """DocStart + chunks for each valid ``{"id", "title"?, "text"}`` line.

    A malformed line goes to ``bad(line, reason)`` when given (the import then refuses the file),
    else it is skipped with a warning.
    """
    if bad is None:
        def bad(n: int, reason: str) -> None:
            warn(f"line {n}: {reason}; skipped")

    lineno = 0
    while True:
        line = fh.readline(JSONL_LINE_LIMIT)
        if not line:
            return
        lineno += 1
        if tick and lineno % 256 == 0:
            tick()
        if len(line) >= JSONL_LINE_LIMIT and not line.endswith("\n"):
            while True:  # drain the rest of an over-long line without holding it
                more = fh.readline(JSONL_LINE_LIMIT)
                if not more or more.endswith("\n"):
                    break
            bad(lineno, f"longer than {JSONL_LINE_LIMIT // (1024 * 1024)} MiB")
            continue
        if not line.strip():
            continue
        try:
            rec = loads(line)
        except JSONProblem as exc:
            bad(lineno, str(exc))
            continue
        if not isinstance(rec, dict):
            bad(lineno, "expected a JSON object with \"text\"")
            continue
        text = rec.get("text")
        if not isinstance(text, str) or not text.strip():
            bad(lineno, "no \"text\" string")
            continue
        rid = rec.get("id")
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
            rid = f"{name}:{lineno}"
            warn(f"line {lineno}: no usable \"id\"; named {rid!r}")
        title = rec.get("title")
        title = title.strip() or None if isinstance(title, str) else None
        yield DocStart(source=str(rid).strip(), title=title, line=lineno)
        yield from chunk_record_text(text, title, max_chunk_chars=max_chunk_chars, overlap_chars=overlap_chars)
