"""The figures: answer NLL/perplexity with InfoGain bars, token surprisal/entropy, option
probabilities, and the comparison overlay. Each keeps the arrays it plotted in ``data``."""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from .plots import NAN, StepFigure, _num, _pen, prefix_ticks
from .theme import SERIES, theme

X_STEPS = "Reasoning step (Q = question only)"


def _prefix_values(record: dict, key: str) -> np.ndarray:
    """Baseline then every step's ``key`` (NaN where missing)."""
    base, steps = record.get("baseline") or {}, record.get("steps") or []
    return np.array([_num(base.get(key))] + [_num(s.get(key)) for s in steps])


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """The span of the finite values (a unit span around a single value; 0..1 without any)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)


class PrefixFigure(StepFigure):
    """A figure whose x axis is the prefix: 0 = question only, k = after step k."""

    n_steps = 0

    def step_span(self, step: int) -> tuple[float, float] | None:
        return (step + 0.5, step + 1.5) if 0 <= step < self.n_steps else None

    def step_at(self, x: float) -> int | None:
        k = int(round(x))
        return k - 1 if 1 <= k <= self.n_steps else None

    def _x_axis(self, panels, n: int) -> None:
        for panel in panels:
            panel.getAxis("bottom").setTicks([prefix_ticks(n)])
            panel.setXRange(-0.5, n + 0.5, padding=0)


class AnswerFigure(PrefixFigure):
    """Plot 1: answer NLL (or perplexity) at every prefix, and InfoGain bars per step."""

    def __init__(self, parent=None) -> None:
        super().__init__("Answer uncertainty across steps", parent)
        self.curve_metric = "nll"
        # short axis titles: the frame's title says "answer"; longer ones overprinted each other
        # on the two short panels of the presentation slide
        self.curve_panel = self.add_panel(0, "NLL (nats)", legend_cols=1)
        self.bar_panel = self.add_panel(1, "InfoGain", X_STEPS)
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 2)
        self.bar_panel.setXLink(self.curve_panel)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.62)
        self.bar_panel.addItem(self.bars)
        self.zero = pg.InfiniteLine(pos=0, angle=0, movable=False)
        self.bar_panel.addItem(self.zero, ignoreBounds=True)
        self._record: dict | None = None

    def set_metric(self, metric: str) -> None:
        self.curve_metric = metric if metric in ("nll", "ppl") else "nll"
        if self._record is not None:
            self.set_record(self._record)

    def set_record(self, record: dict | None) -> None:
        self._record = record
        self._begin()
        steps = (record or {}).get("steps") or []
        self.n_steps = len(steps)
        if not steps:
            self.data = {}
            self.bars.setOpts(x=[], height=[])
            self._end()
            return
        n = len(steps)
        x = np.arange(n + 1, dtype=float)
        nll, ppl = _prefix_values(record, "answer_nll"), _prefix_values(record, "answer_ppl")
        gain = np.array([_num(s.get("info_gain")) for s in steps])
        dnll = np.array([_num(s.get("delta_nll")) for s in steps])
        self.data = {"x": x, "answer_nll": nll, "answer_ppl": ppl, "info_gain": gain, "delta_nll": dnll}
        c = theme().colors()
        nll_mode = self.curve_metric == "nll"
        self.curve_panel.setLabel("left", "NLL (nats)" if nll_mode else "Perplexity")
        paper = record.get("mode") == "paper"
        curves = [nll if nll_mode else ppl]
        self._curve(self.curve_panel, "answer", x, curves[0],
                    name=("Answer NLL" if nll_mode else "Answer perplexity") if paper else None,
                    pen=_pen(SERIES[0], 2.4), symbol="o", symbolSize=7, symbolBrush=SERIES[0],
                    symbolPen=pg.mkPen(c["plot_bg"], width=1.2))
        if paper:
            seq = _prefix_values(record, "seq_ppl")
            self.data["seq_ppl"] = seq
            curves.append(np.log(seq) if nll_mode else seq)
            self._curve(self.curve_panel, "seq", x, curves[-1],
                        name="Sequence NLL (paper)" if nll_mode else "Sequence perplexity (paper)",
                        pen=_pen(SERIES[4], 1.6, Qt.PenStyle.DashLine))
        good, bad = QColor(c["good"]), QColor(c["bad"])
        brushes = [pg.mkBrush(good if (g >= 0 or math.isnan(g)) else bad) for g in gain]
        self.bars.setOpts(x=x[1:], height=np.nan_to_num(gain), width=0.62, brushes=brushes, pen=pg.mkPen(None))
        self.zero.setPen(_pen(c["muted"], 1))
        self._x_axis((self.curve_panel, self.bar_panel), n)
        finite = gain[np.isfinite(gain)]
        lim = float(np.max(np.abs(finite))) if finite.size else 1.0
        lim = lim or 1.0
        self.bar_panel.setYRange(-lim * 1.15 if (finite < 0).any() else 0, lim * 1.15 if (finite > 0).any() else lim * 0.1)
        # set, not auto: auto-range is resolved at the first paint, and its range change then asks
        # for a second full paint of both panels (twice the GUI-thread time per shown chain)
        self.curve_panel.setYRange(*finite_range(np.concatenate(curves)))
        self._end()

    def redraw(self) -> None:
        if self._record is not None:
            self.set_record(self._record)

    def _update_tooltip(self, x: float | None) -> None:
        step = self.step_at(x) if x is not None else None
        if step is None or not self.data:
            self.setToolTip("")
            return
        d = self.data
        self.setToolTip(
            f"<b>Step {step + 1}</b><br>Answer NLL {d['answer_nll'][step + 1]:.4f} nats<br>"
            f"Answer perplexity {d['answer_ppl'][step + 1]:.3f}<br>InfoGain {d['info_gain'][step]:+.3f}<br>"
            f"ΔNLL {d['delta_nll'][step]:+.4f} nats"
        )


class TokenFigure(StepFigure):
    """Plot 2: surprisal and entropy (bits) of every reasoning token, with step boundaries."""

    def __init__(self, parent=None) -> None:
        super().__init__("Token surprisal and entropy", parent)
        self.panel = self.add_panel(0, "bits", "Token position in the reasoning (scorer tokens)", legend_cols=2)
        self.panel.showAxis("top")
        self._record: dict | None = None
        self._bounds: list[tuple[int, int]] = []

    def set_record(self, record: dict | None) -> None:
        self._record = record
        self._bounds = []
        self._begin()
        curve = (record or {}).get("token_curve") or {}
        surprisal = np.array([_num(v) for v in curve.get("surprisal_bits") or []])
        if surprisal.size == 0:
            self.data = {}
            self.panel.getAxis("top").setTicks([[]])
            self._end()
            return
        entropy = np.array([_num(v) for v in curve.get("entropy_bits") or []])
        step = np.array(curve.get("step") or [], dtype=int)
        x = np.arange(surprisal.size, dtype=float)
        self.data = {"x": x, "surprisal_bits": surprisal, "entropy_bits": entropy, "step": step,
                     "pieces": list(curve.get("pieces") or [])}
        fill = QColor(SERIES[3])
        fill.setAlpha(45)
        self._curve(self.panel, "surprisal", x, surprisal, name="Surprisal −log₂ p(token)", short="Surprisal", pen=_pen(SERIES[3], 1.5),
                    fillLevel=0, brush=pg.mkBrush(fill))
        if entropy.size == surprisal.size:
            self._curve(self.panel, "entropy", x, entropy, name="Entropy of next-token distribution", short="Entropy",
                        pen=_pen(SERIES[0], 1.5, Qt.PenStyle.DashLine))
        c = theme().colors()
        ticks = []
        for k in np.unique(step):
            idx = np.nonzero(step == k)[0]
            lo, hi = int(idx[0]), int(idx[-1])
            self._bounds.append((lo, hi))
            ticks.append(((lo + hi) / 2, f"S{k + 1}"))
            if lo > 0:
                self._vline(self.panel, f"bound:{len(self._bounds)}", lo - 0.5, _pen(c["muted"], 1, Qt.PenStyle.DotLine))
        every = max(1, math.ceil(len(ticks) / 24))
        self.panel.getAxis("top").setTicks([[t for i, t in enumerate(ticks) if i % every == 0]])
        self.panel.setXRange(-0.5, surprisal.size - 0.5, padding=0)
        self.panel.setYRange(0, max(1.0, float(np.nanmax(surprisal)) * 1.05))
        self._end()

    def redraw(self) -> None:
        if self._record is not None:
            self.set_record(self._record)

    def step_span(self, step: int) -> tuple[float, float] | None:
        if 0 <= step < len(self._bounds):
            lo, hi = self._bounds[step]
            return lo - 0.5, hi + 0.5
        return None

    def step_at(self, x: float) -> int | None:
        steps = self.data.get("step")
        t = int(round(x))
        if steps is None or not 0 <= t < len(steps):
            return None
        return int(steps[t])

    def _update_tooltip(self, x: float | None) -> None:
        t = int(round(x)) if x is not None else -1
        pieces = self.data.get("pieces") or []
        if not 0 <= t < len(self.data.get("surprisal_bits", [])):
            self.setToolTip("")
            return
        piece = html.escape(repr(pieces[t]) if t < len(pieces) else "?")
        ent = self.data["entropy_bits"][t] if t < len(self.data["entropy_bits"]) else NAN
        self.setToolTip(f"<b>Token {t}</b> (step {int(self.data['step'][t]) + 1}): {piece}<br>"
                        f"surprisal {self.data['surprisal_bits'][t]:.2f} bits<br>entropy {ent:.2f} bits")


class OptionsFigure(PrefixFigure):
    """Plot 3 (multiple choice): the probability of each option letter at every prefix."""

    def __init__(self, parent=None) -> None:
        super().__init__("Option probabilities across steps", parent)
        self.panel = self.add_panel(0, "P(option)", X_STEPS, legend_cols=1)
        self._record: dict | None = None
        self._correct: str | None = None

    def set_record(self, record: dict | None, correct: str | None = None) -> None:
        self._record, self._correct = record, correct
        self._begin()
        base = (record or {}).get("baseline") or {}
        steps = (record or {}).get("steps") or []
        if not isinstance(base.get("option_probs"), dict):
            self.n_steps, self.data = 0, {}
            self._end()
            return
        letters = list(base["option_probs"])
        self.n_steps = len(steps)
        x = np.arange(len(steps) + 1, dtype=float)
        self.data = {"x": x, "letters": letters}
        for i, letter in enumerate(letters):
            y = np.array([_num(base["option_probs"].get(letter))] + [_num((s.get("option_probs") or {}).get(letter)) for s in steps])
            self.data[letter] = y
            right = letter == correct
            color = SERIES[i % len(SERIES)]
            self._curve(self.panel, f"option:{letter}", x, y, name=f"{letter} (correct)" if right else letter,
                        pen=_pen(color, 3.0 if right else 1.6, Qt.PenStyle.SolidLine if right else Qt.PenStyle.DashLine),
                        symbol="o" if right else None, symbolSize=6, symbolBrush=color)
        self._x_axis((self.panel,), len(steps))
        self.panel.setYRange(0, 1.0, padding=0.02)
        if self.panel.legend is not None:
            self.set_legend_columns(self.panel, len(letters))
        self._end()

    def redraw(self) -> None:
        if self._record is not None:
            self.set_record(self._record, self._correct)


class OverlayFigure(PrefixFigure):
    """Compare: several chains' answer NLL (and P(correct)) across steps in one view."""

    def __init__(self, parent=None) -> None:
        super().__init__("Comparison", parent)
        self.nll_panel = self.add_panel(0, "Answer NLL (nats)", X_STEPS, legend_cols=1)
        self.p_panel = self.add_panel(1, "P(correct option)", X_STEPS)
        self._series: list[tuple[str, dict]] = []

    def set_series(self, series: list[tuple[str, dict]]) -> None:
        self._series = list(series)
        self._begin()
        self.data = {"labels": [label for label, _ in series]}
        longest, any_options = 0, False
        for i, (label, record) in enumerate(series):
            steps = record.get("steps") or []
            longest = max(longest, len(steps))
            x = np.arange(len(steps) + 1, dtype=float)
            nll = _prefix_values(record, "answer_nll")
            color = SERIES[i % len(SERIES)]
            style = {"pen": _pen(color, 2.2), "symbol": "o", "symbolSize": 6, "symbolBrush": color}
            self._curve(self.nll_panel, f"nll:{i}", x, nll, name=label, **style)
            self.data[f"nll:{i}"] = nll
            if (record.get("baseline") or {}).get("p_correct") is not None:
                any_options = True
                p = _prefix_values(record, "p_correct")
                self._curve(self.p_panel, f"p:{i}", x, p, **style)
                self.data[f"p_correct:{i}"] = p
        self.n_steps = longest
        self.p_panel.setVisible(any_options)
        self._x_axis((self.nll_panel, self.p_panel), longest)
        nlls = [v[np.isfinite(v)] for k, v in self.data.items() if k.startswith("nll:")]
        finite = np.concatenate(nlls) if nlls else np.zeros(0)
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = max(hi - lo, 0.1)
        self.nll_panel.setYRange(lo - 0.05 * span, hi + 0.1 * span, padding=0)
        if self.nll_panel.legend is not None:
            self.set_legend_columns(self.nll_panel, min(3, len(series)))
        self.p_panel.setYRange(0, 1.02, padding=0)
        self._end()

    def redraw(self) -> None:
        if self._series:
            self.set_series(self._series)
