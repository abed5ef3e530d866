"""Small static SVG charts for reports: bars with interval whiskers, forest plots, a scatter.

No dependencies and no Qt: each function returns an ``<svg>`` element as text, ready to inline in
HTML. Every label is escaped (model names and item ids come from users and files). Colours are the
Okabe-Ito palette, distinguishable with colour-vision deficiencies and in greyscale print.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F7F", "#000000")
INK, MUTED, GRID, FONT = "#1f2328", "#59636e", "#e3e6ea", "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

Interval = tuple[float, float, float]  # (mean, lo, hi)
Fmt = Callable[[float], str]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _finite(*xs: float) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about ``count`` of them)."""
    if not _finite(lo, hi):
        return [0.0]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


class _Scale:
    def __init__(self, d0: float, d1: float, r0: float, r1: float) -> None:
        self.d0, self.d1, self.r0, self.r1 = d0, d1, r0, r1

    def __call__(self, v: float) -> float:
        span = self.d1 - self.d0 or 1.0
        return self.r0 + (v - self.d0) / span * (self.r1 - self.r0)


def _domain(values: Sequence[float], include_zero: bool = True, fixed: tuple[float, float] | None = None
            ) -> tuple[float, list[float], float]:
    vals = [v for v in values if _finite(v)] + ([0.0] if include_zero else []) + (list(fixed) if fixed else [])
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    ticks = nice_ticks(lo, hi)
    return ticks[0], ticks, ticks[-1]


def _text(x: float, y: float, s: str, *, size: int = 11, anchor: str = "start", fill: str = INK, weight: str = "normal",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{extra}>{escape(s)}</text>')


def text_width(s: str, size: float) -> float:
    """A generous estimate of the rendered width of ``s`` in a sans-serif font of ``size`` px."""
    narrow, wide = set("iljtfrI.,:;'|!() "), set("MWmw@%")
    return sum(size * (0.34 if ch in narrow else 0.9 if ch in wide else 0.72 if ch.isupper() else 0.62) for ch in s)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(title)}" font-family="{escape(FONT)}"><title>{escape(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>')


def _x_axis(sx: _Scale, ticks: list[float], y0: float, y1: float, fmt: Fmt) -> list[str]:
    out = []
    for t in ticks:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}" stroke="{GRID}" stroke-width="1"/>')
        out.append(_text(x, y1 + 13, fmt(t), size=10, anchor="middle", fill=MUTED))
    return out


_ROW, _TOP, _LABEL_W, _RIGHT = 24, 30, 118, 58  # row charts: row height, top margin, label column (at least), value column


def _label_width(title: str, labels: Sequence[str], unit: str, width: int) -> tuple[float, int]:
    """The label column that holds the longest label whole, and the chart width that keeps the plot
    area (and the title beside the unit) as wide as at ``width`` with the default label column."""
    label_w = max(_LABEL_W, math.ceil(max((text_width(lb, 11) for lb in labels), default=0.0)) + 14)
    grown = width + label_w - _LABEL_W
    return label_w, max(grown, math.ceil(text_width(title, 12) + (text_width(unit, 10) if unit else 0.0)) + 28)


def _row_chart(title: str, labels: Sequence[str], values: Sequence[Interval], fmt: Fmt, unit: str, width: int,
               domain: tuple[float, float] | None) -> tuple[list[str], _Scale, float, float, int]:
    """The frame shared by one-row-per-label charts: title, unit, x axis; returns (parts, scale, x of
    zero, label column width, chart width)."""
    label_w, width = _label_width(title, labels, unit, width)
    height = _TOP + _ROW * len(labels) + 26
    x0, ticks, x1 = _domain([v for m, lo, hi in values for v in (m, lo, hi)], fixed=domain)
    sx = _Scale(x0, x1, label_w, width - _RIGHT)
    parts = [_open(width, height, title), _text(8, 17, title, size=12, weight="600")]
    if unit:
        parts.append(_text(width - 8, 17, unit, size=10, anchor="end", fill=MUTED))
    parts += _x_axis(sx, ticks, _TOP - 4, _TOP + _ROW * len(labels), fmt)
    return parts, sx, sx(0.0), label_w, width


def _row_label(i: int, label: str, label_w: float) -> tuple[float, str]:
    """The y of row ``i``'s centre and its label, whole, right-aligned in the label column."""
    y = _TOP + i * _ROW + _ROW / 2
    return y, _text(label_w - 6, y + 4, label, size=11, anchor="end", extra=f' data-label="{escape(label)}"')


def bar_chart(title: str, labels: Sequence[str], values: Sequence[Interval], *, fmt: Fmt, unit: str = "",
              colors: Sequence[str] | None = None, width: int = 340, domain: tuple[float, float] | None = None) -> str:
    """Horizontal bars (one per label) from 0 to the mean, with a whisker for the interval."""
    parts, sx, zero, label_w, width = _row_chart(title, labels, values, fmt, unit, width, domain)
    parts.append(f'<line x1="{zero:.1f}" y1="{_TOP - 4}" x2="{zero:.1f}" y2="{_TOP + _ROW * len(labels)}" stroke="{MUTED}"/>')
    for i, (label, (mean, lo, hi)) in enumerate(zip(labels, values, strict=True)):
        y, label_text = _row_label(i, label, label_w)
        c = (colors or PALETTE)[i % len(colors or PALETTE)]
        parts.append(label_text)
        if not _finite(mean):
            parts.append(_text(zero + 4, y + 4, "no data", size=10, fill=MUTED))
            continue
        a, b = sorted((zero, sx(mean)))
        parts.append(f'<rect x="{a:.1f}" y="{y - 7:.1f}" width="{max(b - a, 1):.1f}" height="14" fill="{c}" fill-opacity="0.85" rx="2"/>')
        if _finite(lo, hi) and hi > lo:
            xl, xh = sx(lo), sx(hi)
            parts.append(f'<path d="M{xl:.1f},{y:.1f}H{xh:.1f}M{xl:.1f},{y - 5:.1f}V{y + 5:.1f}M{xh:.1f},{y - 5:.1f}V{y + 5:.1f}" '
                         f'stroke="{INK}" stroke-width="1.3" fill="none"/>')
        parts.append(_text(width - _RIGHT + 6, y + 4, fmt(mean), size=10))
    parts.append("</svg>")
    return "".join(parts)


def forest_plot(title: str, labels: Sequence[str], values: Sequence[Interval], *, fmt: Fmt, unit: str = "",
                width: int = 340) -> str:
    """Differences with intervals around a zero line; rows whose interval excludes 0 are drawn solid."""
    parts, sx, zero, label_w, width = _row_chart(title, labels, values, fmt, unit, width, None)
    parts.append(f'<line x1="{zero:.1f}" y1="{_TOP - 4}" x2="{zero:.1f}" y2="{_TOP + _ROW * len(labels)}" stroke="{INK}" '
                 'stroke-dasharray="3,3"/>')
    for i, (label, (mean, lo, hi)) in enumerate(zip(labels, values, strict=True)):
        y, label_text = _row_label(i, label, label_w)
        parts.append(label_text)
        if not _finite(mean):
            parts.append(_text(zero + 4, y + 4, "no pairs", size=10, fill=MUTED))
            continue
        clear = _finite(lo, hi) and (lo > 0 or hi < 0)
        c = INK if clear else MUTED
        if _finite(lo, hi):
            parts.append(f'<line x1="{sx(lo):.1f}" y1="{y:.1f}" x2="{sx(hi):.1f}" y2="{y:.1f}" stroke="{c}" stroke-width="2"/>')
        fill = c if clear else "#ffffff"
        parts.append(f'<rect x="{sx(mean) - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{fill}" stroke="{c}" stroke-width="1.5"/>')
        parts.append(_text(width - _RIGHT + 6, y + 4, fmt(mean), size=10, fill=c))
    parts.append("</svg>")
    return "".join(parts)


def scatter(title: str, labels: Sequence[str], xs: Sequence[Interval], ys: Sequence[Interval], *, x_label: str,
            y_label: str, x_fmt: Fmt, y_fmt: Fmt, colors: Sequence[str] | None = None, width: int = 520,
            height: int = 340, y_domain: tuple[float, float] | None = None) -> str:
    """One point per label at (x mean, y mean), with interval bars in both directions."""
    left, right, top, bottom = 58, 24, 34, 46
    x0, xt, x1 = _domain([v for t in xs for v in t], include_zero=False)
    y0, yt, y1 = _domain([v for t in ys for v in t], include_zero=False, fixed=y_domain)
    sx, sy = _Scale(x0, x1, left, width - right), _Scale(y0, y1, height - bottom, top)
    parts = [_open(width, height, title), _text(8, 18, title, size=12, weight="600")]
    for t in xt:
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="{GRID}"/>')
        parts.append(_text(x, height - bottom + 14, x_fmt(t), size=10, anchor="middle", fill=MUTED))
    for t in yt:
        y = sy(t)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y + 3, y_fmt(t), size=10, anchor="end", fill=MUTED))
    parts.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="none" stroke="{MUTED}"/>')
    parts.append(_text((left + width - right) / 2, height - 10, x_label, size=11, anchor="middle"))
    parts.append(_text(14, (top + height - bottom) / 2, y_label, size=11, anchor="middle",
                       extra=f' transform="rotate(-90 14 {(top + height - bottom) / 2:.1f})"'))
    placed: list[tuple[float, float, float, float]] = []
    for i, (label, (xm, xl, xh), (ym, yl, yh)) in enumerate(zip(labels, xs, ys, strict=True)):
        if not _finite(xm, ym):
            continue
        c = (colors or PALETTE)[i % len(colors or PALETTE)]
        px, py = sx(xm), sy(ym)
        if _finite(xl, xh):
            parts.append(f'<line x1="{sx(xl):.1f}" y1="{py:.1f}" x2="{sx(xh):.1f}" y2="{py:.1f}" stroke="{c}" stroke-width="1.5"/>')
        if _finite(yl, yh):
            parts.append(f'<line x1="{px:.1f}" y1="{sy(yl):.1f}" x2="{px:.1f}" y2="{sy(yh):.1f}" stroke="{c}" stroke-width="1.5"/>')
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" fill="{c}" stroke="#ffffff" stroke-width="1.5"/>')
        x, y, anchor = _place_label(px, py, text_width(label, 11), placed, (left, top, width - right, height - bottom))
        parts.append(_text(x, y, label, size=11, anchor=anchor, weight="600", fill=c,
                           extra=' stroke="#ffffff" stroke-width="3" paint-order="stroke"'))
    parts.append("</svg>")
    return "".join(parts)


def _place_label(px: float, py: float, w: float, placed: list, box: tuple[float, float, float, float]
                 ) -> tuple[float, float, str]:
    """A label position next to a point that stays inside ``box`` and overlaps no label placed before."""
    x0, y0, x1, y1 = box
    candidates = []
    for dy in (-9, 18, -24, 33):
        for side in ("start", "end") if px < (x0 + x1) / 2 else ("end", "start"):
            lx = px + 10 if side == "start" else px - 10 - w
            candidates.append((lx, py + dy, side))
    for lx, ly, side in candidates:
        rect = (lx, ly - 11, lx + w, ly + 3)
        inside = rect[0] >= x0 + 2 and rect[2] <= x1 - 2 and rect[1] >= y0 + 2 and rect[3] <= y1 - 2
        if inside and not any(rect[0] < r[2] and r[0] < rect[2] and rect[1] < r[3] and r[1] < rect[3] for r in placed):
            placed.append(rect)
            return (lx if side == "start" else lx + w), ly, side
    lx, ly, side = candidates[0]
    lx = min(max(lx, 2.0), max(2.0, x1 - 2 - w))  # overlapping another label, but inside the chart
    placed.append((lx, ly - 11, lx + w, ly + 3))
    return (lx if side == "start" else lx + w), ly, side
