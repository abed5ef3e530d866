"""Analyze: question and ground truth, reasoning (generated live or imported), steps, scoring.

Generation streams tokens into the reasoning view as the subject model produces them; scoring
runs the scorer over every prefix, saves the chain to the session in the same worker thread and
hands the stored result to the Results view. Every model call runs in a Task and can be stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ...chains.steps import MODES as SPLIT_MODES
from ...chains.steps_llm import split_with_model
from ...errors import InputError, KiigError
from ...events import CancelToken, Message, Progress, Token
from ...metrics.infogain import MODE_NAMES, MODES
from ...runs.analysis import (
    AnalysisResult,
    GenerationSettings,
    Question,
    StepDraft,
    iter_generate,
    iter_score_steps,
    locate_steps,
    save_result,
    split_text,
)
from ...runs.compare import CompareRequest
from ..results.reasoning_view import ReasoningView
from ..shared.engines import Engines
from ..shared.model_combo import ModelCombo
from ..shared.session_file import SessionFile, SessionHandle
from ..shared.task_ui import button_row, labelled_row, primary_button, run_busy
from ..shared.widgets import ElidedLabel, compact_combo, plain_label
from ..shared.workers import Task, TaskManager
from .question_form import QuestionForm
from .steps_editor import StepsEditor

MAX_IMPORT_BYTES = 2 << 20


class AnalyzeView(QWidget):
    """The analysis workspace."""

    result_ready = Signal(object)  # AnalysisResult, saved in the session
    message = Signal(str, str)  # text, level

    def __init__(self, engines: Engines, session: SessionFile, tasks: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engines, self.session, self.tasks = engines, session, tasks
        self.generation: dict | None = None
        self.generation_model = None
        self.generation_settings: GenerationSettings | None = None
        self.generation_edited = False
        self.task: Task | None = None
        self._streaming = False
        self._split_text = ""
        self._started = 0.0
        self._n_tokens = 0
        self._build()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.form = QuestionForm()
        q_box = QGroupBox("1 · Question and ground truth")
        q_layout = QVBoxLayout(q_box)
        q_layout.addWidget(self.form)
        q_layout.setSizeConstraint(q_layout.SizeConstraint.SetMinimumSize)  # options never under the buttons

        self.subject = ModelCombo(self.engines)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 4096)
        self.max_tokens.setValue(160)
        self.max_tokens.setSuffix(" tok")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setPrefix("T ")
        self.temperature.setToolTip("Sampling temperature: 0 = greedy (reproducible)")
        self.max_tokens.setToolTip("Maximum number of tokens to generate")
        self.generate_button = primary_button("Generate", "Let the subject model write a step-by-step reasoning (Ctrl+G)")
        self.stop_button = QPushButton("Stop")
        self.import_button = QPushButton("Import text…")
        self.import_button.setToolTip("Load a reasoning from a .txt or .md file (or paste it below)")
        self.gen_status = ElidedLabel("")
        self.gen_status.setProperty("role", "muted")
        self.reasoning = ReasoningView()
        self.reasoning.setPlaceholderText("Generate a reasoning with the subject model, or paste / import one here.")
        # One line (elided when narrow, full text on hover): a word-wrapped label would make the box
        # height-for-width, and a vertical box layout takes such a box's preferred height as its
        # minimum; on a 720 px high window the Reasoning box then covered the Question box's last row.
        legend = ElidedLabel("Token tint: none = confident (p ≥ 0.9) · the stronger the tint, the less likely the token")
        legend.setProperty("role", "muted")
        legend.setStyleSheet("font-size: 11px;")
        r_box = QGroupBox("2 · Reasoning")
        r = QVBoxLayout(r_box)
        r.addLayout(labelled_row("Model", self.subject, self.max_tokens, self.temperature,
                                 tip="The subject model that writes the reasoning"))
        r.addLayout(button_row(self.generate_button, self.stop_button, self.import_button))
        r.addWidget(self.gen_status)
        r.addWidget(self.reasoning, 1)
        r.addWidget(legend)

        self.split_mode = compact_combo(QComboBox())
        for mode, label in (("auto", "Automatic"), ("lines", "Lines / list items"), ("sentences", "Sentences"),
                            ("llm", "LLM decomposition (scorer model)")):
            if mode in SPLIT_MODES:
                self.split_mode.addItem(label, mode)
        self.split_button = QPushButton("Split into steps")
        self.split_note = plain_label("", "muted", wrap=True)
        self.steps_editor = StepsEditor()
        s_box = QGroupBox("3 · Steps")
        s = QVBoxLayout(s_box)
        s.addLayout(labelled_row("Split", self.split_mode, self.split_button))
        s.addWidget(self.split_note)
        s.addWidget(self.steps_editor, 1)

        self.scorer = ModelCombo(self.engines)
        self.lead_mode = compact_combo(QComboBox())
        for mode in MODES:  # both are always computed; this picks which one the plots lead with
            self.lead_mode.addItem(MODE_NAMES[mode][0].upper() + MODE_NAMES[mode][1:], mode)
        self.score_button = primary_button("Score chain", "Measure InfoGain of every step with the scorer model (Ctrl+Return)")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.setValue(0)
        self.progress.setVisible(False)
        self.score_status = plain_label("", "muted", wrap=True)
        sc_box = QGroupBox("4 · Score")
        sc = QVBoxLayout(sc_box)
        sc.addLayout(labelled_row("Scorer", self.scorer))
        sc.addLayout(labelled_row("Lead metric", self.lead_mode))
        row = button_row(self.score_button, self.cancel_button, stretch=False)
        row.addWidget(self.progress, 1)
        sc.addLayout(row)
        sc.addWidget(self.score_status)
        self._busy_kind: str | None = None
        self.steps_editor.changed.connect(self._steps_changed)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(q_box)
        lv.addWidget(r_box, 1)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(s_box, 1)
        rv.addWidget(sc_box)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 11)
        self.splitter.setStretchFactor(1, 9)
        self.splitter.setSizes([660, 540])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.addWidget(self.splitter)

        self.generate_button.clicked.connect(self.generate)
        self.stop_button.clicked.connect(self.cancel)
        self.cancel_button.clicked.connect(self.cancel)
        self.import_button.clicked.connect(self.import_dialog)
        self.split_button.clicked.connect(self.split)
        self.score_button.clicked.connect(self.score)
        self.reasoning.textChanged.connect(self._text_changed)
        self.session.opened.connect(self._steps_changed)  # "saved to the session (run, chain)" was the last session's
        self._set_busy(None)

    # ------------------------------------------------------------------ state

    def _steps_changed(self, *_args: object) -> None:
        """A score status belongs to the steps it scored: new or edited steps clear it."""
        if self._busy_kind != "score":
            self.progress.setVisible(False)
            self.score_status.setText("")

    def _set_busy(self, kind: str | None) -> None:
        self._busy_kind = kind
        idle = kind is None
        for w in (self.generate_button, self.import_button, self.split_button, self.score_button, self.subject,
                  self.scorer, self.split_mode, self.steps_editor):
            w.setEnabled(idle)
        self.reasoning.setReadOnly(not idle)
        self.stop_button.setEnabled(kind in ("generate", "split"))
        self.cancel_button.setEnabled(kind == "score")

    @property
    def busy(self) -> bool:
        return self.task is not None and self.task.running

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _fail(self, text: str) -> None:
        self.message.emit(text, "error")

    def _start(self, kind: str, title: str, work) -> Task:
        self.task = run_busy(self.tasks, title, work, lambda on: self._set_busy(kind if on else None),
                             message=self.message, engines=self.engines)
        return self.task

    # ------------------------------------------------------------------ reasoning

    def set_reasoning_text(self, text: str) -> None:
        """Show an imported/pasted reasoning (no generation behind it) and split it."""
        self.generation = None
        self.generation_model = None
        self.generation_edited = False
        self.gen_status.set_full_text("Imported text (no token probabilities)")
        self.reasoning.set_plain(text)
        self.split()

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a reasoning text", "", "Text (*.txt *.md);;All files (*)")
        if path:
            self.import_text(path)

    def import_text(self, path: str) -> None:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_IMPORT_BYTES:
                raise InputError(f"{p.name} is larger than 2 MB; a reasoning chain is expected")
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self._fail(f"Cannot read {p}: {exc.strerror or exc}")
            return
        except KiigError as exc:
            self._fail(str(exc))
            return
        self.set_reasoning_text(text)
        self.message.emit(f"Imported {p.name} ({len(text):,} characters)", "info")

    def _text_changed(self) -> None:
        if self._streaming:
            return
        if self.generation is not None and self.reasoning.toPlainText() != self.generation["text"]:
            if not self.generation_edited:
                self.generation_edited = True
                self.reasoning.strip_token_colors()
                self.gen_status.set_full_text("Edited after generation")
        if self.steps_editor.steps() and self.reasoning.toPlainText() != self._split_text:
            self.split_note.setText("The reasoning changed since it was split: split again, or edit the steps.")

    def generate(self) -> None:
        if self.busy:
            return
        q = self.form.question()
        subject = self.subject.chosen()
        if not q.question:
            self._fail("Enter a question first.")
            return
        if subject is None:
            self._fail("No usable model: add a GGUF model in the Models panel.")
            return
        settings = GenerationSettings(self.max_tokens.value(), self.temperature.value(), 0)
        self.generation, self.generation_model, self.generation_edited = None, None, False
        self.reasoning.clear_all()
        self.steps_editor.set_steps([])
        self._streaming = True
        self._started, self._n_tokens = time.monotonic(), 0
        self.gen_status.set_full_text(f"Loading {subject.name}…" if not self.engines.is_loaded(subject.id) else "Generating…")

        def work(cancel: CancelToken):
            client = self.engines.acquire(subject, cancel)
            yield Message("Generating…")
            return (yield from iter_generate(client, q, settings, cancel))

        task = self._start("generate", f"Generating with {subject.name}", work)
        task.progress.connect(self._gen_event)
        task.succeeded.connect(lambda gen: self._generated(gen, subject, settings))
        task.cancelled.connect(self._gen_stopped)
        task.finished.connect(self._gen_finished)

    def _gen_event(self, event: object) -> None:
        if isinstance(event, Token):
            self.reasoning.append_token(event.text, event.logprob)
            self._n_tokens += 1
            if self._n_tokens % 8 == 0:
                rate = self._n_tokens / max(1e-6, time.monotonic() - self._started)
                self.gen_status.set_full_text(f"Generating… {self._n_tokens} tokens · {rate:.0f} tok/s")
        elif isinstance(event, Message):
            self.gen_status.set_full_text(event.text)
            self._started = time.monotonic()

    def _generated(self, gen: dict, subject, settings: GenerationSettings) -> None:
        self.generation, self.generation_model, self.generation_settings = gen, subject, settings
        verdict = {True: " · ✓ correct", False: " · ✗ wrong"}.get(gen.get("correct"), "")
        answer = gen.get("extracted_answer")
        if answer is None:
            answer, verdict = "none found", (" (counts as wrong)" if gen.get("correct") is False else "")
        self.gen_status.set_full_text(f"{len(gen['tokens'])} tokens written · {gen.get('tokens_per_s') or 0:.0f} tok/s · "
                                f"stop: {gen.get('stop')} · answer: {answer}{verdict}")

    def _gen_stopped(self) -> None:
        self.gen_status.set_full_text(f"Stopped after {self._n_tokens} tokens (kept as text)")

    def _gen_finished(self) -> None:
        self._streaming = False
        if self.reasoning.toPlainText().strip():
            self.split()

    # ------------------------------------------------------------------ steps

    def split(self) -> None:
        text = self.reasoning.toPlainText()
        self._split_text = text
        mode = self.split_mode.currentData()
        if not text.strip():
            self.steps_editor.set_steps([])
            self.split_note.setText("")
            return
        if mode == "llm":
            self._split_llm(text)
            return
        outcome = split_text(text, mode)
        self.steps_editor.set_steps(outcome.steps)
        note = f"{len(outcome.steps)} steps ({outcome.mode})"
        if outcome.final_answer:
            answer = " ".join(outcome.final_answer.split())
            note += f" · final answer kept aside: {answer if len(answer) <= 80 else answer[:79] + '…'}"
        if outcome.note:
            note += f" · {outcome.note}"
        self.split_note.setText(note + ("" if note.endswith((".", "!", "?", "…")) else ".") + " Double-click a step to edit it.")

    def _split_llm(self, text: str) -> None:
        model = self.scorer.chosen()
        if model is None or self.busy:
            return
        question = self.form.question().question

        def work(cancel: CancelToken):
            client = self.engines.acquire(model, cancel)
            result = split_with_model(client, text, question, cancel)
            return [StepDraft(s.text, s.start, s.end) for s in result.steps], result.fallback_reason

        self.split_note.setText(f"Decomposing with {model.name}…")
        task = self._start("split", "Splitting with the LLM", work)
        task.succeeded.connect(self._llm_split_done)

    def _llm_split_done(self, out: tuple[list[StepDraft], str | None]) -> None:
        steps, fallback = out
        self.steps_editor.set_steps(steps)
        self.split_note.setText(f"{len(steps)} steps (LLM)" + (f" · fell back to rules: {fallback}" if fallback else ""))

    # ------------------------------------------------------------------ scoring

    def score(self) -> None:
        if self.busy:
            return
        q = self.form.question()
        scorer = self.scorer.chosen()
        text = self.reasoning.toPlainText()
        try:
            q.validate()
            if scorer is None:
                raise InputError("no usable scorer model: add a GGUF model in the Models panel")
            steps = locate_steps(text, self.steps_editor.steps())
            if not steps:
                raise InputError("there are no steps to score: generate or paste a reasoning and split it")
            session = self.session.hold()  # the result goes where the scoring started, whatever opens meanwhile
        except KiigError as exc:
            self._fail(str(exc))
            return
        mode = self.lead_mode.currentData()
        split_mode = self.split_mode.currentData()
        gen = dict(self.generation) if self.generation is not None else None
        if gen is not None and self.generation_edited:
            gen["edited"] = True
        subject, gen_settings = self.generation_model, self.generation_settings
        self.progress.setRange(0, len(steps) + 1)
        self.progress.setVisible(True)
        self.progress.setFormat("%v / %m prefixes")
        self.progress.setValue(0)
        self.score_status.setText(f"Loading {scorer.name}…" if not self.engines.is_loaded(scorer.id) else "Scoring…")
        started = time.monotonic()

        def work(cancel: CancelToken):
            client = self.engines.acquire(scorer, cancel)
            record = yield from iter_score_steps(client, q, steps, mode=mode, reasoning=text, cancel=cancel)
            subject_ref = None
            if subject is not None and gen is not None:
                loaded = self.engines.client(subject.id)
                subject_ref = loaded.model_ref() if loaded else {"path": subject.path, "sha256": subject.sha256()}
            name = f"{subject.name if gen is not None and subject else 'Imported text'} → {scorer.name}"

            backend = client.backend_ref()
            return session.write(lambda store: save_result(
                store, q=q, record=record, scorer=scorer, scorer_backend=backend, split_mode=split_mode,
                subject=subject if gen is not None else None, subject_ref=subject_ref, generation=gen,
                generation_settings=gen_settings, name=name))

        task = session.release_when_done(self._start("score", f"Scoring with {scorer.name}", work))
        task.progress.connect(self._score_progress)
        task.succeeded.connect(lambda result: self._scored(result, started, session))
        task.cancelled.connect(lambda: self.score_status.setText("Scoring cancelled; nothing was saved."))
        task.failed.connect(lambda text: self.score_status.setText("Scoring failed (see the message above)."))

    def _score_progress(self, event: object) -> None:
        if isinstance(event, Progress):
            self.progress.setRange(0, event.total or 0)
            self.progress.setValue(event.done)
            self.score_status.setText(f"Scoring… {event.tokens} tokens · {event.tokens_per_s:.0f} tok/s")

    def _scored(self, result: AnalysisResult, started: float, session: SessionHandle) -> None:
        n = len(result.record.get("steps") or [])
        if not session.current:  # another session opened meanwhile: its screens show nothing of this one
            self.message.emit(f"Scored {n} steps · saved to the session {session.name} (run {result.run_id}, "
                              f"chain {result.chain_id}), which is no longer open", "info")
            return
        self.progress.setValue(self.progress.maximum())
        self.score_status.setText(f"Scored {n} steps in {time.monotonic() - started:.1f} s · saved to the session "
                                  f"(run {result.run_id}, chain {result.chain_id})")
        self.session.notify_changed()
        self.result_ready.emit(result)

    # ------------------------------------------------------------------ state for other views

    def current_question(self) -> Question:
        return self.form.question()

    def compare_request(self) -> CompareRequest:
        """The question and the generation, split and lead settings, as the Compare screen runs them."""
        return CompareRequest(self.form.question(), GenerationSettings(self.max_tokens.value(), self.temperature.value(), 0),
                              self.split_mode.currentData(), self.lead_mode.currentData())
