"""Results: the scored chain's text, steps table and three plots, linked by step.

Hovering a step anywhere (text, table, any plot) highlights it everywhere; clicking selects it.
What is shown always comes from the session (the record as stored), so reopening a chain later
draws exactly the same numbers. A chain's Knowledge Index evaluations (``result.ki``) fill the
table's KI column and the mean-KI card; a side panel (the KI controls and evidence, attached by
the main window as a second tab beside the plots) follows the focused step through
``focus_changed``.

The parts live beside it: the header cards in :mod:`.summary_cards`, the plots column in
:mod:`.plots_pane`, the text shown for a chain in :mod:`.chain_text`; this module lays them out
and links them by step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...errors import KiigError
from ...runs.analysis import AnalysisResult, Question, load_result
from ..shared.judge_note import evaluation_validation
from ..shared.plots import StepFigure
from ..shared.session_file import SessionFile
from ..shared.theme import theme
from ..shared.widgets import EmptyState, plain_label, scrollable
from ..shared.workers import TaskManager
from .chain_text import reasoning_of
from .plots_pane import PlotsPane
from .reasoning_view import ReasoningView
from .steps_table import StepsTable
from .summary_cards import SummaryCards

STAGE_PAUSE_MS = 12


class ResultsView(QWidget):
    """The linked results workspace for one chain."""

    message = Signal(str, str)  # text, level
    shown = Signal(object)  # the AnalysisResult now displayed
    focus_changed = Signal(int)  # the step to explain: the selected one, else the hovered one (-1: none)
    ki_shown = Signal()  # the KI evaluation on display changed (another one chosen, or new data)

    def __init__(self, session: SessionFile, tasks: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.result: AnalysisResult | None = None
        self.pending = False
        self._generation = 0
        self.selected: int | None = None
        self.hovered: int | None = None
        self.ki_index = -1  # which of the chain's KI evaluations is shown (-1: the latest)
        self._focus = -1
        self.side_panel: QWidget | None = None
        self._side_page: QWidget | None = None
        self.stack = QStackedWidget()
        self.empty = EmptyState(
            "No results yet",
            "Score a reasoning chain in the Analyze tab, or double-click a chain in the Sessions tab to reopen it "
            "with its plots exactly as computed.",
        )
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self._build_content())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        theme().changed.connect(self._refresh_colors)
        session.opened.connect(self.clear)  # another session: its chains are not the last one's

    # ------------------------------------------------------------------ layout

    def _build_content(self) -> QWidget:
        content = QWidget()
        outer = QVBoxLayout(content)
        outer.setContentsMargins(12, 10, 12, 10)
        outer.setSpacing(8)
        self.title = plain_label("", "heading", wrap=True)
        self.subtitle = plain_label("", "muted", wrap=True, selectable=True)
        self.ki_button = QPushButton("Knowledge Index")
        self.ki_button.setCheckable(True)
        self.ki_button.setToolTip("Show the Knowledge Index panel beside the steps: score this chain's steps against "
                                  "a reference corpus and read the evidence behind each step (Ctrl+K)")
        self.ki_button.hide()
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.ki_button, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(head)
        outer.addWidget(self.subtitle)
        self.summary = SummaryCards()
        self.cards, self.card_strip = self.summary.cards, self.summary.strip
        outer.addWidget(self.card_strip)

        self.pane_captions: list[QWidget] = []  # the Reasoning and Steps panes' explanations
        self.text_view = ReasoningView(read_only=True)
        self.table = StepsTable()
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self._framed("Reasoning", "Tokens tinted by the subject model's probability; the selected step is highlighted.", self.text_view))
        left.addWidget(self._framed("Steps", "▲ the step moved the scorer toward the answer, ▼ away from it "
                                                "(coloured by the palette in View → Colours).", self.table))
        left.setSizes([280, 440])

        self.plots = PlotsPane()
        self.answer_fig, self.token_fig, self.options_fig = self.plots.figures()
        self.metric_combo, self.frames, self.plots_area = self.plots.metric_combo, self.plots.frames, self.plots.area
        for key, frame in self.frames.items():
            frame.export_requested.connect(lambda fmt, k=key: self.export_dialog(k, fmt))
        self.right_tabs = QTabWidget()
        self.right_tabs.setDocumentMode(True)
        self.right_tabs.setTabBarAutoHide(True)
        self.right_tabs.addTab(self.plots_area, "Plots")
        self.right_tabs.currentChanged.connect(self._right_tab_changed)

        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(self.right_tabs)
        main.setStretchFactor(0, 11)  # the steps table gets the larger share: its columns fit at 1280 px
        main.setStretchFactor(1, 9)
        main.setSizes([660, 540])
        self.splitters = {"results/main": main, "results/left": left, "results/right": self.plots.splitter}
        outer.addWidget(main, 1)

        self._tab_order()
        for src in (self.text_view, self.table, self.answer_fig, self.token_fig, self.options_fig):
            src.step_hovered.connect(self._on_hover)
        for sig in (self.text_view.step_clicked, self.table.step_selected, self.answer_fig.step_clicked,
                    self.token_fig.step_clicked, self.options_fig.step_clicked):
            sig.connect(self.select_step)
        return content

    def _tab_order(self) -> None:
        """Tab follows the layout: header, cards left to right, text, table, then each plot's
        controls before the plot itself, top to bottom."""
        chain: list[QWidget] = [self.ki_button, *self.cards.values(), self.text_view, self.table]
        for frame in self.frames.values():
            if frame is self.frames["answer"]:
                chain.append(self.metric_combo)
            chain += [frame.export_button, frame.figure]
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)

    def _framed(self, title: str, caption: str, widget: QWidget) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        heading = plain_label(title)
        heading.setStyleSheet("font-weight: 600;")
        layout.addWidget(heading)
        cap = plain_label(caption, "muted", wrap=True)
        cap.setStyleSheet("font-size: 11px;")
        self.pane_captions.append(cap)
        layout.addWidget(cap)
        layout.addWidget(widget, 1)
        return box

    # ------------------------------------------------------------------ content

    def open_chain(self, run_id: int, chain_id: int) -> None:
        """Load a stored chain off the GUI thread and show it."""
        task = self.tasks.run("Opening chain", lambda _c: self.session.read(lambda st: load_result(st, run_id, chain_id)), quiet=True)
        task.succeeded.connect(self.show_result)
        task.failed.connect(lambda text: self.message.emit(text, "error"))

    def clear(self, *_args: object) -> None:
        """Show no chain (the empty state)."""
        self.result = None
        self.selected = self.hovered = None
        self.ki_index = -1
        self._generation += 1  # drops the stages of a chain still being drawn
        self.pending = False
        self.table.set_record(None)
        self.text_view.clear_all()
        for fig in self.figures():
            fig.clear_plot()
        self.stack.setCurrentIndex(0)
        self.ki_shown.emit()

    def show_result(self, result: AnalysisResult, first: Callable[[], None] | None = None) -> None:
        """Show a chain. The work is spread over a few event-loop turns (``first``, e.g. the switch
        to this page, then text and table, then each plot's data and its first paint) so the GUI
        thread never stalls; ``pending`` is True until the last plot is drawn, then ``shown`` is emitted."""
        self.result = result
        self.selected = self.hovered = None
        self.ki_index = -1
        self._generation += 1
        record, item = result.record, result.item or {}
        q = Question.from_item(item)
        letter = q.correct_letter() if q else None
        self.title.setText(" ".join(str(item.get("question") or record.get("id") or "Chain").split()))
        model = record.get("model") or {}
        scorer = Path(str(model.get("path", "?"))).name
        run = result.run or {}
        subject = (run.get("models") or {}).get("subject") or record.get("subject")  # batch: the chain's own model
        parts = [f"Ground truth: {item.get('answer', '?')}" + (f" ({letter})" if letter else ""),
                 f"scorer: {scorer}", f"reasoning: {Path(str(subject.get('path', '?'))).name if subject else 'imported text'}",
                 f"mode: {record.get('mode', 'answer')}", f"run {result.run_id} · chain {result.chain_id}"]
        self.subtitle.setText("   ·   ".join(parts))
        self._fill_cards(result)
        has_options = isinstance((record.get("baseline") or {}).get("option_probs"), dict)
        self.frames["options"].setVisible(has_options)
        self.text_view.clear_all()
        self.table.set_record(None)
        for fig in self.figures():
            # An empty plot still costs a full pyqtgraph paint, and the page's first show repaints
            # it several times while the layout settles: each plot appears in its own stage instead.
            fig.hide()
        self.stack.setCurrentIndex(1)
        self.pending = True
        stages = [lambda: self._show_text(result), lambda: self.table.set_record(record, self.ki_steps(), self.judge_validation()),
                  *self._draw(self.answer_fig, record), *self._draw(self.token_fig, record),
                  *self._draw(self.options_fig, record, letter)]
        if first is not None:
            stages.insert(0, first)
        QTimer.singleShot(STAGE_PAUSE_MS, self, lambda g=self._generation: self._run_stages(g, stages))

    def _show_text(self, result: AnalysisResult) -> None:
        text, spans = reasoning_of(result)
        gen = result.generation or {}
        if gen.get("tokens") and gen.get("text") == text:
            self.text_view.set_tokens(text, gen["tokens"])
        else:
            self.text_view.set_plain(text)
        self.text_view.set_spans(spans)

    @staticmethod
    def _draw(fig: StepFigure, *args) -> list:
        """Two stages: the data (while hidden), then the first paint, each in its own event-loop turn."""
        return [lambda: fig.set_record(*args), fig.show_laid_out]

    def _run_stages(self, generation: int, stages: list) -> None:
        if generation != self._generation:
            return  # a newer chain replaced this one
        if not stages:
            self.pending = False
            self._apply_highlight()
            self.shown.emit(self.result)
            return
        stages[0]()
        # a short pause lets Qt paint and other timers run between the plots
        QTimer.singleShot(STAGE_PAUSE_MS, self, lambda: self._run_stages(generation, stages[1:]))

    def warm_up(self) -> None:
        """Draw a tiny chain once, off screen, so the first real result pays no first-use costs
        (fonts, layouts, pyqtgraph items); called once at start-up."""
        steps = [{"index": i, "text": f"Step {i + 1}.", "answer_nll": 1.0 - 0.1 * i, "answer_ppl": 2.0 - 0.1 * i,
                  "delta_nll": 0.1, "info_gain": 0.1, "seq_ppl": 3.0, "option_probs": {"A": 0.5, "B": 0.5},
                  "entropy_bits": 1.0, "p_correct": 0.5} for i in range(3)]
        record = {"baseline": {"answer_nll": 1.1, "answer_ppl": 2.1, "option_probs": {"A": 0.5, "B": 0.5}},
                  "steps": steps, "token_curve": {"surprisal_bits": [1.0, 2.0, 3.0], "entropy_bits": [1.0, 1.0, 1.0],
                                                  "step": [0, 1, 2], "pieces": ["a", "b", "c"]}}
        content = self.stack.widget(1)
        self.table.set_record(record)
        self.text_view.set_tokens("abc", [{"text": c, "logprob": -1.0} for c in "abc"])
        self.answer_fig.set_record(record)
        self.token_fig.set_record(record)
        self.options_fig.set_record(record, "A")
        content.resize(self.size())
        content.grab()
        for fig in self.figures():
            fig.clear_plot()
        self.table.set_record(None)
        self.text_view.clear_all()

    def _fill_cards(self, result: AnalysisResult) -> None:
        self.summary.fill(result, self.ki_evaluation(), self.judge_validation())

    def _fill_ki_card(self) -> None:
        self.summary.fill_ki(self.ki_evaluation(), self.judge_validation())

    # ------------------------------------------------------------------ Knowledge Index

    def ki_evaluation(self) -> dict | None:
        """The KI evaluation on display (the latest unless another was chosen), or None."""
        ki = self.result.ki if self.result is not None else []
        if not ki:
            return None
        return ki[self.ki_index] if -len(ki) <= self.ki_index < len(ki) else ki[-1]

    def judge_validation(self) -> dict | None:
        """The validation of the judge behind the KI evaluation on display (None without KI)."""
        return evaluation_validation(self.ki_evaluation())

    def ki_steps(self) -> dict[int, dict] | None:
        """Step index -> KI step of the evaluation on display (None without KI data)."""
        ev = self.ki_evaluation()
        if ev is None:
            return None
        return {int(s.get("index", i)): s for i, s in enumerate(ev.get("steps") or [])}

    def set_ki(self, chain_id: int, ki: list[dict], index: int = -1) -> None:
        """New KI evaluations of chain ``chain_id`` (shown if it is on display), keeping the selection."""
        if self.result is None or self.result.chain_id != chain_id:
            return
        self.result.ki = list(ki)
        self.show_ki_evaluation(index)

    def show_ki_evaluation(self, index: int) -> None:
        """Show another of the chain's KI evaluations in the table and the card."""
        if self.result is None:
            return
        self.ki_index = index
        selected = self.selected
        self.table.set_record(self.result.record, self.ki_steps(), self.judge_validation())
        self.table.select_step(selected)
        self._fill_ki_card()
        self.ki_shown.emit()

    def attach_side_panel(self, panel: QWidget, title: str = "Knowledge Index") -> None:
        """Add ``panel`` as a tab beside the plots; the header's Knowledge Index button switches to it."""
        self.side_panel = panel
        self._side_page = scrollable(panel)  # short screens scroll the panel rather than squeeze the plots
        self.right_tabs.addTab(self._side_page, title)
        self.ki_button.show()
        self.ki_button.toggled.connect(self.show_side_panel)

    def show_side_panel(self, on: bool = True) -> None:
        """Show the side panel (or the plots) beside the steps."""
        if self.side_panel is not None:
            self.right_tabs.setCurrentWidget(self._side_page if on else self.right_tabs.widget(0))

    def side_panel_shown(self) -> bool:
        return self.side_panel is not None and self.right_tabs.currentWidget() is self._side_page

    def _right_tab_changed(self, _index: int) -> None:
        self.ki_button.blockSignals(True)
        self.ki_button.setChecked(self.side_panel_shown())
        self.ki_button.blockSignals(False)

    def _refresh_colors(self) -> None:
        if self.result is not None:
            self._fill_cards(self.result)
            self.table.viewport().update()

    # ------------------------------------------------------------------ linking

    def figures(self) -> list[StepFigure]:
        return self.plots.figures()

    def _on_hover(self, step: int) -> None:
        self.hovered = step if step >= 0 else None
        self._apply_highlight()

    def select_step(self, step: int) -> None:
        self.selected = step if step is not None and step >= 0 else None
        self.table.select_step(self.selected)
        self._apply_highlight()

    def _apply_highlight(self) -> None:
        for fig in self.figures():
            fig.set_highlight(self.selected, self.hovered)
        self.text_view.set_highlight(self.selected, self.hovered)
        self.table.set_hovered(self.hovered)
        focus = self.selected if self.selected is not None else self.hovered if self.hovered is not None else -1
        if focus != self._focus:
            self._focus = focus
            self.focus_changed.emit(focus)

    def focused_step(self) -> int | None:
        """The step the side panel explains: the selected one, else the hovered one."""
        return None if self._focus < 0 else self._focus

    # ------------------------------------------------------------------ export

    def copy_table(self) -> str:
        text = self.table.to_tsv()
        QGuiApplication.clipboard().setText(text)
        self.message.emit(f"Copied {self.table.steps_model.rowCount()} steps to the clipboard as TSV", "info")
        return text

    def export_dialog(self, key: str, fmt: str) -> None:
        if self.result is None:
            return
        suggested = f"kiig-{key}-chain{self.result.chain_id}.{fmt}"
        path, _ = QFileDialog.getSaveFileName(self, f"Export plot as {fmt.upper()}", suggested,
                                              "PNG image (*.png)" if fmt == "png" else "SVG drawing (*.svg)")
        if path:
            if not path.lower().endswith("." + fmt):
                path += "." + fmt
            try:
                written = self.frames[key].figure.export(path)
            except KiigError as exc:  # an unwritable folder, a planted .part link
                self.message.emit(str(exc), "error")
                return
            self.message.emit(f"Plot saved to {written}", "info")
