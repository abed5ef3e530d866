"""Results: the scored chain's text, steps table and three plots, linked by step.

Hovering a step anywhere (text, table, any plot) highlights it everywhere; clicking selects it.
What is shown always comes from the session (the record as stored), so reopening a chain later
draws exactly the same numbers. A chain's Knowledge Index evaluations (``result.ki``) fill the
table's KI column and the mean-KI card; a side panel (the KI controls and evidence, attached by
the main window as a second tab beside the plots) follows the focused step through
``focus_changed``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...errors import KiigError
from ...runs.analysis import AnalysisResult, Question, load_result
from ..shared.figures import AnswerFigure, OptionsFigure, TokenFigure
from ..shared.judge_note import caveat, evaluation_validation
from ..shared.metric_help import fmt_metric, metric_tip
from ..shared.plots import StepFigure
from ..shared.session_file import SessionFile
from ..shared.theme import theme
from ..shared.widgets import CardStrip, EmptyState, MetricCard, PlotFrame, compact_combo, plain_label, scrollable
from ..shared.workers import TaskManager
from .reasoning_view import ReasoningView
from .steps_table import StepsTable

STAGE_PAUSE_MS = 12
PLOT_MIN_HEIGHT = 220  # px: a data area of about 100 px below the legend, between the axes' titles


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


SCORER_TOKENS_TIP = ("Steps scored, and the tokens the scorer read for the whole chain: the question, its options, "
                     "every step and the answer, in the scorer's own tokenizer. The generation line in Analyze counts "
                     "the tokens the subject model wrote, so the two numbers differ.")


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
        self.cards = {
            "info_gain": MetricCard("Mean InfoGain (Δ PPL per step)", help_key="info_gain"),
            "ki": MetricCard("Mean KI (applicable steps)", help_key="ki"),
            "delta_nll": MetricCard("Mean ΔNLL (nats per step)", help_key="delta_nll"),
            "ppl": MetricCard("Answer PPL: question → final", help_key="answer_ppl"),
            "answer": MetricCard("Final answer", "The answer the reasoning states, graded against the ground truth"),
            "steps": MetricCard("Steps · scorer tokens", SCORER_TOKENS_TIP),
        }
        self.card_strip = CardStrip(list(self.cards.values()))
        outer.addWidget(self.card_strip)

        self.pane_captions: list[QWidget] = []  # the Reasoning and Steps panes' explanations
        self.text_view = ReasoningView(read_only=True)
        self.table = StepsTable()
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self._framed("Reasoning", "Tokens tinted by the subject model's probability; the selected step is highlighted.", self.text_view))
        left.addWidget(self._framed("Steps", "▲ the step moved the scorer toward the answer, ▼ away from it "
                                                "(coloured by the palette in View → Colours).", self.table))
        left.setSizes([280, 440])

        self.answer_fig = AnswerFigure()
        self.token_fig = TokenFigure()
        self.options_fig = OptionsFigure()
        metric = compact_combo(QComboBox(), 8)
        metric.addItem("NLL (nats)", "nll")
        metric.addItem("Perplexity", "ppl")
        metric.currentIndexChanged.connect(lambda _i: self.answer_fig.set_metric(metric.currentData()))
        self.metric_combo = metric
        self.frames = {
            "answer": PlotFrame("Answer uncertainty across steps",
                                "Answer NLL after each prefix; bars: InfoGain per step (up helped, down hurt).",
                                self.answer_fig, extra=metric, help_key="info_gain"),
            "tokens": PlotFrame("Token surprisal and entropy",
                                "Per reasoning token, as the scorer read it; dotted lines are step boundaries.", self.token_fig,
                                help_key="surprisal"),
            "options": PlotFrame("Option probabilities across steps",
                                 "The scorer's probability of each option after each prefix (correct option bold).",
                                 self.options_fig, help_key="option_probs"),
        }
        for key, frame in self.frames.items():
            frame.export_requested.connect(lambda fmt, k=key: self.export_dialog(k, fmt))
        right = QSplitter(Qt.Orientation.Vertical)
        right.setChildrenCollapsible(False)
        for fig in (self.answer_fig, self.token_fig, self.options_fig):
            fig.setMinimumHeight(PLOT_MIN_HEIGHT)  # readable axes and legends; the column scrolls instead
            policy = fig.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # hidden until drawn (show_result) without a relayout
            fig.setSizePolicy(policy)
        self.answer_fig.setMinimumHeight(PLOT_MIN_HEIGHT + 90)  # two panels share it
        for frame in self.frames.values():
            right.addWidget(frame)
        right.setSizes([380, 260, 260])
        self.plots_area = QScrollArea()  # on short screens the plots keep their height and scroll
        self.plots_area.setWidget(right)
        self.plots_area.setWidgetResizable(True)
        self.plots_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.plots_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plots_area.setMinimumWidth(320)
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
        self.splitters = {"results/main": main, "results/left": left, "results/right": right}
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

    def show_result(self, result: AnalysisResult) -> None:
        """Show a chain. The work is spread over a few event-loop turns (header, text and table
        first, then one plot per turn) so the GUI thread never stalls; ``pending`` is True until
        the last plot is drawn, then ``shown`` is emitted."""
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
                  lambda: self._draw(self.answer_fig, record), lambda: self._draw(self.token_fig, record),
                  lambda: self._draw(self.options_fig, record, letter)]
        QTimer.singleShot(STAGE_PAUSE_MS, lambda g=self._generation: self._run_stages(g, stages))

    def _show_text(self, result: AnalysisResult) -> None:
        text, spans = reasoning_of(result)
        gen = result.generation or {}
        if gen.get("tokens") and gen.get("text") == text:
            self.text_view.set_tokens(text, gen["tokens"])
        else:
            self.text_view.set_plain(text)
        self.text_view.set_spans(spans)

    @staticmethod
    def _draw(fig: StepFigure, *args) -> None:
        fig.set_record(*args)
        fig.show()

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
        QTimer.singleShot(STAGE_PAUSE_MS, lambda: self._run_stages(generation, stages[1:]))

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
        r = result.record
        c = theme().colors()
        gain, dnll = r.get("info_gain_mean"), r.get("delta_nll_mean")
        self.cards["info_gain"].set_value(fmt_metric("info_gain", gain),
                                          None if gain is None else c["good"] if gain > 0 else c["bad"], gain)
        self.cards["delta_nll"].set_value(fmt_metric("delta_nll", dnll),
                                          None if dnll is None else c["good"] if dnll > 0 else c["bad"], dnll)
        steps = r.get("steps") or []
        base = (r.get("baseline") or {}).get("answer_ppl")
        last = steps[-1].get("answer_ppl") if steps else None
        self.cards["ppl"].set_value("—" if base is None or last is None else f"{base:.2f} → {last:.2f}")
        gen = result.generation or {}
        extracted = r.get("extracted_answer", gen.get("extracted_answer"))
        correct = r.get("correct", gen.get("correct"))
        if correct is None:
            self.cards["answer"].set_value(extracted or "not graded")
        else:
            mark = "✓ correct" if correct else "✗ wrong"
            text = f"{extracted} · {mark}" if extracted else "no answer found"
            self.cards["answer"].set_value(text, c["good"] if correct else c["bad"])
        self.cards["steps"].set_value(f"{len(steps)} · {r.get('n_tokens', '—')}")
        self._fill_ki_card()

    def _fill_ki_card(self) -> None:
        card, ev = self.cards["ki"], self.ki_evaluation()
        summary = self.judge_validation()
        card.set_note(caveat(summary), bool(summary and summary.get("warning")),
                      metric_tip("ki", summary["note"] if summary else ""))
        if ev is None:
            card.set_value("not scored", theme().colors()["muted"])
            card.caption.setText("Mean KI (applicable steps)")
            return
        steps = ev.get("steps") or []
        judged = sum(1 for s in steps if s.get("applicable") and s.get("ki") is not None)
        mean = ev.get("ki_mean")
        c = theme().colors()
        card.set_value("—" if mean is None else f"{mean:.3f}", None if mean is None else c["good"] if mean >= 0.5 else c["bad"])
        earlier = "" if ev.get("current", True) else " · on an earlier version of this chain"
        card.caption.setText(f"Mean KI · {judged} of {len(steps)} steps judged{earlier}")

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
        return [self.answer_fig, self.token_fig, self.options_fig]

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
