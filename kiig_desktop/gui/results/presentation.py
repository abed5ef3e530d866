"""Presentation mode (View → Present, F5): one chain's Results full screen, for reviews.

The window holds its own :class:`ResultsView` of the chain, drawn larger, and a strip that
states the current step's numbers in large type (ΔNLL, InfoGain, option probabilities, KI and
its evidence). The arrow keys walk the steps (each highlighted in the text, the table and every
plot at once); Home/End jump; Escape leaves. "Export slide" renders the slide at 1920x1080 as
PNG and SVG, and a one-page PDF of the chain (question, the slide with its steps, plots and
numbers, the full step list and the provenance) is drawn from the same rendering with Qt's
own PDF writer.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QMarginsF, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QFont,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QShortcut,
)
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QApplication, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ... import __version__
from ...knowledge.provenance import evidence_where
from ...runs.analysis import AnalysisResult
from ..shared.judge_note import caveat
from ..shared.session_file import SessionFile
from ..shared.theme import sign_symbol, theme
from ..shared.widgets import plain_label
from ..shared.workers import TaskManager
from .results_view import ResultsView

SLIDE = QSize(1920, 1080)
FONT_SCALE = 1.25
NEXT_KEYS = (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_PageDown, Qt.Key.Key_Space)
PREVIOUS_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_PageUp, Qt.Key.Key_Backspace)
PRESENTATION_STYLE = (
    "QWidget { font-size: 13pt; } QLabel[role='heading'] { font-size: 17pt; font-weight: 600; }"
    "QLabel[role='muted'] { font-size: 11pt; }"
    "QLabel[role='metric'] { font-size: 14pt; font-weight: 600; } QLabel[role='metric-sign'] { font-size: 13pt; }"
    "QLabel[role='metric-caption'] { font-size: 10pt; } QLabel[role='warning'] { font-size: 10pt; }"
    "QLabel[role='present-step'] { font-size: 16pt; font-weight: 600; }")
PLOT_HEIGHT = 150  # px: the least a presented plot gets (its axis labels apart, its legend beside the data)


def _fmt(value, spec: str) -> str:
    return "—" if not isinstance(value, (int, float)) or isinstance(value, bool) else format(value, spec)


def step_facts(result: AnalysisResult, ki_steps: dict[int, dict] | None, step: int,
               judge: dict | None = None) -> list[tuple[str, str]]:
    """The numbers the presentation states for ``step``: (name, text) pairs, signs shown by ▲/▼; with KI,
    the validity of its judge (``judge``: the judge_note summary) beside it."""
    steps = result.record.get("steps") or []
    s = steps[step]
    facts = []
    for key, name, spec in (("delta_nll", "ΔNLL", "+.4f"), ("info_gain", "InfoGain", "+.3f")):
        value = s.get(key)
        facts.append((name, f"{sign_symbol(value)} {_fmt(value, spec)}".strip()))
    probs = s.get("option_probs")
    if isinstance(probs, dict) and probs:
        facts.append(("Options", "  ".join(f"{k} {_fmt(v, '.2f')}" for k, v in sorted(probs.items()))))
    ks = (ki_steps or {}).get(int(s.get("index", step)))
    if ks is not None:
        if not ks.get("applicable"):
            facts.append(("KI", "n/a (no factual claim)"))
        else:
            evidence = ks.get("evidence") or []
            facts.append(("KI", f"{_fmt(ks.get('ki'), '.2f')} from {len(evidence)} passage{'' if len(evidence) == 1 else 's'}"))
            places = list(dict.fromkeys(evidence_where(e) for e in evidence if e.get("source")))  # best first
            reason = str(ks.get("reason") or "").strip()
            if places or reason:
                facts.append(("Evidence", " — ".join(t for t in ("; ".join(places[:3]), reason) if t)))
    if ki_steps is not None and judge is not None:
        facts.append(("Judge", caveat(judge, short=True)))
    return facts


class PresentationWindow(QWidget):
    """A full-screen review of one chain; arrow keys walk the steps, Escape leaves."""

    closed = Signal()

    def __init__(self, session: SessionFile, tasks: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("KIIG Desktop — Presentation")
        self.setAccessibleName("Presentation")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.result: AnalysisResult | None = None
        self.step = 0
        self.view = ResultsView(session, tasks)
        self.view.ki_button.hide()
        for fig in self.view.figures():
            fig.set_font_scale(FONT_SCALE)
        table = self.view.table
        table.width_scale = 1.15  # the columns measure their numbers in the larger type as well
        table.max_lines = 1  # one line a step: several rows show (the strip below states the step in full)
        table.setWordWrap(False)
        table.hide_by_default("answer_ppl", "answer_nll", "entropy_bits", "seq_ppl")
        for card in self.view.cards.values():  # room for one row of cards: the links live in the window
            if card.more is not None:
                card.more.hide()
        for caption in [*(f.caption for f in self.view.frames.values()), *self.view.pane_captions]:
            caption.hide()  # the panes and plots get the height their explanations took
        self.step_title = plain_label("", "present-step", wrap=True)
        self.step_title.setAccessibleName("Current step")
        self.facts = QLabel()
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.facts.setWordWrap(True)
        self.facts.setAccessibleName("Numbers of the current step")
        self.export_button = QPushButton("Export slide…")
        self.export_button.setToolTip("Write this view as PNG and SVG (1920x1080) and the chain as a one-page PDF (Ctrl+E)")
        self.export_button.clicked.connect(self.export_dialog)
        QShortcut(QKeySequence("Ctrl+E"), self, self.export_dialog)  # the keyboard's way to the button
        leave = QPushButton("Leave (Esc)")
        leave.clicked.connect(self.close)
        hint = plain_label("← → walk the steps · Home / End · Ctrl+E exports · Esc leaves", "muted")
        bar = QHBoxLayout()
        bar.addWidget(hint, 1)
        bar.addWidget(self.export_button)
        bar.addWidget(leave)
        self.slide = QWidget()  # what is exported: everything but the bar above
        self.slide.setObjectName("slide")
        slide = QVBoxLayout(self.slide)
        slide.setContentsMargins(0, 0, 0, 0)
        slide.setSpacing(4)
        slide.addWidget(self.view, 1)
        strip = QVBoxLayout()
        strip.setContentsMargins(16, 0, 16, 6)
        strip.setSpacing(2)
        strip.addWidget(self.step_title)
        strip.addWidget(self.facts)
        slide.addLayout(strip)
        self._arrange()
        # The large type lives on the window's body, not the window: the export dialog (a child of the
        # window) keeps the normal type, so its columns are not elided.
        self.body = QWidget()
        self.body.setObjectName("presentation-body")
        body = QVBoxLayout(self.body)
        body.setContentsMargins(8, 4, 8, 4)
        body.setSpacing(4)
        body.addLayout(bar)
        body.addWidget(self.slide, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.body)
        self.body.setStyleSheet(PRESENTATION_STYLE)
        # The window takes every key: the walk works wherever the mouse last clicked.
        for child in self.findChildren(QWidget):
            child.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.table.step_selected.connect(self._picked)
        for fig in self.view.figures():
            fig.step_clicked.connect(self._picked)
        self.view.text_view.step_clicked.connect(self._picked)

    def _arrange(self) -> None:
        """The presenter's layout: the text and the steps table side by side on top, the plots side by
        side below, each part with a least height, so the table shows several rows and every plot
        keeps readable axes on a 1366x768 or a 150% screen."""
        v = self.view
        main, left, right = (v.splitters[k] for k in ("results/main", "results/left", "results/right"))
        for splitter, orientation in ((main, Qt.Orientation.Vertical), (left, Qt.Orientation.Horizontal),
                                      (right, Qt.Orientation.Horizontal)):
            splitter.setOrientation(orientation)
            splitter.setChildrenCollapsible(False)
        left.setSizes([1, 2])  # proportions: the table holds the numbers
        right.setSizes([4, 5, 3])  # the token plot's two-column legend needs the width
        v.metric_combo.hide()  # NLL is what a review reads; the Results tab offers perplexity
        main.setSizes([1, 2])  # the plots take the larger share above their least heights
        for fig in v.figures():
            fig.setMinimumHeight(PLOT_HEIGHT)
        v.answer_fig.setMinimumHeight(PLOT_HEIGHT + 20)  # two panels share it
        content = v.stack.widget(1).layout()
        content.setContentsMargins(8, 4, 8, 4)
        content.setSpacing(4)
        v.card_strip.grid.setSpacing(6)  # six cards keep one row at 1280 px (150% of 1920)
        v.plots_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        v.plots_area.setMinimumHeight(v.plots_area.widget().minimumSizeHint().height())
        v.table.setMinimumHeight(v.table.horizontalHeader().sizeHint().height() + 3 * v.table.verticalHeader().defaultSectionSize())

    # ------------------------------------------------------------------ content

    def present(self, result: AnalysisResult, step: int = 0) -> None:
        """Show ``result`` full screen, at ``step``."""
        self.result = result
        self.view.show_result(result)
        self.showFullScreen()
        self.activateWindow()
        self.setFocus()
        self.view.shown.connect(lambda _r: self.show_step(self.step), Qt.ConnectionType.SingleShotConnection)
        self.step = max(0, min(step, self.n_steps() - 1))

    def n_steps(self) -> int:
        return len((self.result.record.get("steps") if self.result else None) or [])

    def show_step(self, step: int) -> None:
        """Highlight ``step`` everywhere and state its numbers in large type."""
        n = self.n_steps()
        if not n:
            return
        self.step = max(0, min(n - 1, step))
        self.view.select_step(self.step)
        s = self.result.record["steps"][self.step]
        self.step_title.setText(f"Step {self.step + 1} of {n}: {' '.join(str(s.get('text', '')).split())}")
        c = theme().colors()
        parts = []
        for name, text in step_facts(self.result, self.view.ki_steps(), self.step, self.view.judge_validation()):
            color = c["good"] if text.startswith("▲") else c["bad"] if text.startswith(("▼", "⚠")) else c["text"]
            size = "18pt" if name in ("ΔNLL", "InfoGain", "KI") else "13pt"
            parts.append(f"<span style='color:{c['muted']}'>{html.escape(name)}</span> "
                         f"<span style='font-size:{size}; font-weight:600; color:{color}'>{html.escape(text)}</span>")
        self.facts.setText("&nbsp;&nbsp;&nbsp;&nbsp;".join(parts))

    def _picked(self, step: int) -> None:
        if step is not None and step >= 0 and step != self.step:
            self.show_step(step)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.close()
        elif key in NEXT_KEYS:
            self.show_step(self.step + 1)
        elif key in PREVIOUS_KEYS:
            self.show_step(self.step - 1)
        elif key == Qt.Key.Key_Home:
            self.show_step(0)
        elif key == Qt.Key.Key_End:
            self.show_step(self.n_steps() - 1)
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.closed.emit()
        super().closeEvent(event)

    # ------------------------------------------------------------------ export

    def _render(self, painter: QPainter, target: QRectF) -> None:
        """Draw the slide laid out at 1920x1080 into ``target`` (the same rendering for every format)."""
        layout = self.body.layout()
        index = layout.indexOf(self.slide)
        layout.removeWidget(self.slide)  # laid out alone at the slide's size, then given back
        self.slide.resize(SLIDE)
        for _ in range(3):  # cards reflow and wrapped labels settle over a few layout passes
            QApplication.processEvents()
        try:
            painter.save()
            painter.translate(target.topLeft())
            painter.scale(target.width() / SLIDE.width(), target.height() / SLIDE.height())
            self.slide.render(painter, QPoint(0, 0))
            painter.restore()
        finally:
            layout.insertWidget(index, self.slide, 1)
            layout.activate()
            QApplication.processEvents()

    def export_png(self, path: str | Path) -> Path:
        image = QImage(SLIDE, QImage.Format.Format_ARGB32)
        image.fill(theme().color("window"))
        painter = QPainter(image)
        self._render(painter, QRectF(0, 0, SLIDE.width(), SLIDE.height()))
        painter.end()
        image.save(str(path))
        return Path(path)

    def export_svg(self, path: str | Path) -> Path:
        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(SLIDE)
        gen.setViewBox(QRect(0, 0, SLIDE.width(), SLIDE.height()))
        gen.setTitle(self.step_title.text() or "KIIG Desktop slide")
        gen.setDescription("Exported from KIIG Desktop's presentation mode")
        painter = QPainter(gen)
        self._render(painter, QRectF(0, 0, SLIDE.width(), SLIDE.height()))
        painter.end()
        return Path(path)

    def provenance(self) -> str:
        """Who computed the numbers: scorer file and hash, llama.cpp build, run and chain, app version."""
        if self.result is None:
            return ""
        r = self.result.record
        model = r.get("model") or {}
        build = r.get("build") or {}
        build_text = " ".join(f"{k} {v}" for k, v in build.items() if isinstance(v, (str, int))) if isinstance(build, dict) else str(build)
        sha = str(model.get("sha256") or "")[:12]
        return (f"Scorer {Path(str(model.get('path', '?'))).name}" + (f" (sha256 {sha}…)" if sha else "")
                + (f" · llama.cpp {build_text}" if build_text else "")
                + f" · mode {r.get('mode', 'answer')} · run {self.result.run_id} · chain {self.result.chain_id}"
                + f" · KIIG Desktop {__version__} · printed {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")

    def export_pdf(self, path: str | Path) -> Path:
        """One landscape A4 page: the question, the slide, every step with its numbers, the provenance."""
        writer = QPdfWriter(str(path))
        writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Landscape,
                                         QMarginsF(10, 10, 10, 10), QPageLayout.Unit.Millimeter))
        writer.setResolution(200)
        writer.setTitle(f"KIIG Desktop chain {self.result.chain_id if self.result else ''}")
        writer.setCreator(f"KIIG Desktop {__version__}")
        painter = QPainter(writer)
        try:
            page = QRectF(painter.viewport())
            ink = Qt.GlobalColor.black
            font = QFont()
            font.setPointSizeF(11)
            font.setBold(True)
            painter.setFont(font)
            painter.setPen(ink)
            question = self.view.title.text()
            head = painter.boundingRect(page, Qt.TextFlag.TextWordWrap, question)
            painter.drawText(QRectF(page.left(), page.top(), page.width(), head.height()), Qt.TextFlag.TextWordWrap, question)
            top = page.top() + head.height() + 8
            small = QFont()
            small.setPointSizeF(7)
            painter.setFont(small)
            line = painter.fontMetrics().height()
            foot = line * 2
            steps = (self.result.record.get("steps") if self.result else None) or []
            listing = min(len(steps), 18) * line + 2 * line  # the steps, "… more", the judge's caveat
            slide_h = max(page.height() * 0.4, page.bottom() - foot - listing - top - 8)
            slide_w = min(page.width(), slide_h * SLIDE.width() / SLIDE.height())
            slide_h = slide_w * SLIDE.height() / SLIDE.width()
            self._render(painter, QRectF(page.left(), top, slide_w, slide_h))
            painter.setFont(small)
            painter.setPen(ink)
            y = top + slide_h + 8
            shown = steps[:18]
            for i, s in enumerate(shown):
                text = (f"{i + 1}. ΔNLL {sign_symbol(s.get('delta_nll'))}{_fmt(s.get('delta_nll'), '+.4f')}  "
                        f"InfoGain {sign_symbol(s.get('info_gain'))}{_fmt(s.get('info_gain'), '+.3f')}  "
                        + " ".join(str(s.get("text", "")).split()))
                painter.drawText(QRectF(page.left(), y, page.width(), line), Qt.TextFlag.TextSingleLine,
                                 painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, int(page.width())))
                y += line
            if len(steps) > len(shown):
                painter.drawText(QRectF(page.left(), y, page.width(), line), Qt.TextFlag.TextSingleLine,
                                 f"… {len(steps) - len(shown)} more steps in the session")
                y += line
            judge = self.view.judge_validation()
            if judge is not None:  # the KI's caveat travels with the printed numbers
                painter.drawText(QRectF(page.left(), y, page.width(), line), Qt.TextFlag.TextSingleLine,
                                 painter.fontMetrics().elidedText("KI: " + judge["note"], Qt.TextElideMode.ElideRight,
                                                                  int(page.width())))
            painter.drawText(QRectF(page.left(), page.bottom() - foot, page.width(), foot), Qt.TextFlag.TextWordWrap,
                             self.provenance())
        finally:
            painter.end()
        return Path(path)

    def export_slide(self, base: str | Path) -> list[Path]:
        """PNG, SVG and PDF beside each other: ``base``.png, .svg, .pdf."""
        base = Path(base)
        base = base.with_suffix("") if base.suffix.lower() in (".png", ".svg", ".pdf") else base
        return [self.export_png(base.with_suffix(".png")), self.export_svg(base.with_suffix(".svg")),
                self.export_pdf(base.with_suffix(".pdf"))]

    def export_dialog(self) -> None:
        if self.result is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export slide (PNG, SVG and PDF)",
                                              f"kiig-chain{self.result.chain_id}-step{self.step + 1}.png",
                                              "PNG image, with SVG and PDF beside it (*.png)")
        if path:
            written = self.export_slide(path)
            self.step_title.setToolTip("Saved " + ", ".join(str(p) for p in written))
            self.view.message.emit("Slide saved: " + ", ".join(p.name for p in written), "info")
