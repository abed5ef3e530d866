"""The reasoning text a Results view shows for a chain, and where each step lies in it."""

from __future__ import annotations

from ...runs.analysis import AnalysisResult


def reasoning_of(result: AnalysisResult) -> tuple[str, list[tuple[int, int] | None]]:
    """The text to show and each step's span in it (rebuilt from the steps when no text was kept)."""
    record = result.record
    steps = record.get("steps") or []
    text = record.get("reasoning")
    if not isinstance(text, str):
        gen = result.generation or {}
        text = gen.get("text") if isinstance(gen.get("text"), str) else None
    if isinstance(text, str):
        spans = []
        for s in steps:
            start, end = s.get("start"), s.get("end")
            ok = isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text)
            spans.append((start, end) if ok else None)
        if all(span is not None and _same(text[span[0]:span[1]], s.get("text")) for span, s in zip(spans, steps, strict=True)):
            return text, spans
        # A step was edited before scoring: show the steps as scored, so the text pane, the table
        # and the plots all show the same words.
    parts, spans, pos = [], [], 0
    for s in steps:
        t = str(s.get("text", ""))
        parts.append(t)
        spans.append((pos, pos + len(t)))
        pos += len(t) + 1
    return "\n".join(parts), spans


def _same(a: str, b) -> bool:
    """Whether two step texts agree up to white space."""
    return isinstance(b, str) and a.split() == b.split()
