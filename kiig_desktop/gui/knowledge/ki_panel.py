"""The Knowledge Index side panel of the Results view: score the shown chain, read the evidence.

Scoring runs :func:`kiig_desktop.knowledge.ki.iter_chain_ki` in a Task (retrieval on a
read-only connection of the worker thread, the judge through its EngineClient, which the
task's CancelToken interrupts), then saves the evaluation with ``SessionStore.save_ki`` and
reloads it, so the table, the card and the evidence show what the session holds.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...engine.models import ModelInfo
from ...errors import InputError, KiigError
from ...events import CancelToken, Message, Progress
from ...knowledge.corpus import Passage, get_chunks, source_path
from ...knowledge.ki_rules import DEFAULT_MODE, MAX_K, REPLY_MODES, default_k
from ...knowledge.provenance import passage_context
from ...runs import judge_check
from ...runs.analysis import AnalysisResult
from ...runs.ki import CancellableJudge, chain_question, iter_stored_chain_ki, save_chain_ki, step_query
from ...runs.score import model_row
from ...store.judge_validation import note as validation_note
from ..results.results_view import ResultsView
from ..shared.corpora import Corpora
from ..shared.engines import Engines
from ..shared.judge_note import show_validation, validation_label
from ..shared.model_combo import ModelCombo
from ..shared.session_file import SessionFile, SessionHandle
from ..shared.task_ui import button_row, labelled_row, primary_button, progress_line, run_busy
from ..shared.widgets import compact_combo, plain_label
from ..shared.workers import Task, TaskManager
from . import source_opener
from .calibration_view import CalibrationView
from .context_dialog import ContextDialog
from .evidence_panel import EvidencePanel
from .judge_check_dialog import JudgeCheckDialog


def evaluation_label(ev: dict) -> str:
    judge = Path(str((ev.get("judge") or {}).get("path", "?"))).stem
    mean = ev.get("ki_mean")
    when = str(ev.get("created") or "")[:16].replace("T", " ")
    rule = "" if ev.get("mode", DEFAULT_MODE) == DEFAULT_MODE else f" ({ev['mode']}, k={ev.get('k')})"
    earlier = "" if ev.get("current", True) else " · made on an earlier version of this chain"
    return f"{ev.get('corpus')} · {judge}{rule} · {'KI —' if mean is None else f'KI {mean:.3f}'} · {when}{earlier}"


class KiPanel(QWidget):
    """Knowledge Index controls (corpus, judge, run) above the evidence of the focused step."""

    message = Signal(str, str)
    open_corpora = Signal()
    ki_saved = Signal(int, object)  # chain id, its KI evaluations as stored

    def __init__(self, engines: Engines, session: SessionFile, tasks: TaskManager, corpora: Corpora,
                 results: ResultsView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engines, self.session, self.tasks, self.corpora, self.results = engines, session, tasks, corpora, results
        self.task: Task | None = None
        self.chunks: dict[int, Passage] = {}
        self._chunks_serial = 0
        self._chunks_pending = False
        self.setMinimumWidth(320)

        box = QGroupBox("Knowledge Index")
        b = QVBoxLayout(box)
        b.setSpacing(6)
        b.addWidget(plain_label("Checks each step's knowledge against a reference corpus: the best passages (BM25) "
                                "go to a judge model, whose Yes/No probability is the step's KI.", "muted", wrap=True))
        self.corpus = compact_combo(QComboBox(), 10)
        self.judge = ModelCombo(engines)
        self.k = QSpinBox()
        self.k.setRange(1, MAX_K)
        self.k.setValue(default_k(DEFAULT_MODE))
        self.k.setToolTip("Passages retrieved per step and shown to the judge")
        self.mode = QComboBox()
        self.mode.addItem("Probability: p(yes), N/A steps left out", "probability")
        self.mode.addItem("Passages, True/False: N/A counts 1.0", "passages-true-false")
        self.mode.addItem("ReasoningEval pipeline: query, RAG answer, True/False", "reasoningeval-pipeline")
        self.mode.setToolTip("How answers become KI: the judge's Yes/No probability (default); the judge's True/False on "
                             "the passages (N/A steps count 1.0; mean over all steps); or ReasoningEval's pipeline (an LLM "
                             "writes the query or None, a RAG answer from 12 passages, the judge's True/False against it)")
        self.mode.currentIndexChanged.connect(lambda _i: self.k.setValue(default_k(self.mode.currentData())))
        b.addLayout(labelled_row("Corpus", self.corpus, plain_label("Passages"), self.k))
        b.addLayout(labelled_row("Judge", self.judge))
        b.addLayout(labelled_row("Rule", self.mode))
        self.no_corpus = QWidget()
        nc = QHBoxLayout(self.no_corpus)
        nc.setContentsMargins(0, 0, 0, 0)
        nc.addWidget(plain_label("This session has no reference corpus yet.", "muted", wrap=True), 1)
        self.corpora_button = QPushButton("Open Corpora…")
        nc.addWidget(self.corpora_button)
        b.addWidget(self.no_corpus)
        self.run_button = primary_button("Score KI")
        self.cancel_button = QPushButton("Cancel")
        self.claims_button = QPushButton("Your claims…")
        self.claims_button.setToolTip("Write or import labelled claims for a corpus and check how well a judge tells "
                                      "supported from unsupported ones on your own domain (AUROC)")
        b.addLayout(button_row(self.run_button, self.cancel_button, self.claims_button))
        self.check_dialog: JudgeCheckDialog | None = None
        self.progress, self.status = progress_line()
        b.addWidget(self.progress)
        b.addWidget(self.status)

        evidence_box = QGroupBox("Evidence")
        e = QVBoxLayout(evidence_box)
        self.evaluation = compact_combo(QComboBox(), 16)
        self.evaluation.setToolTip("This chain's KI evaluations (corpus · judge · mean KI · when)")
        e.addWidget(self.evaluation)
        self.validation = validation_label()
        self.check_button = QPushButton("Check judge")
        self.check_button.setToolTip("Measure how well the judge behind this KI tells supported from unsupported claims: "
                                     "it judges the bundled labelled claims against the demo corpus (AUROC, accuracy; "
                                     "Ctrl+Shift+J). The result is kept for every session.")
        check_row = QHBoxLayout()
        check_row.addWidget(self.validation, 1)
        check_row.addWidget(self.check_button, 0, Qt.AlignmentFlag.AlignTop)
        e.addLayout(check_row)
        self.calibration = CalibrationView(engines.qsettings)
        e.addWidget(self.calibration)
        self.evidence = EvidencePanel()
        self.context_dialog: ContextDialog | None = None
        e.addWidget(self.evidence, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addWidget(box)
        layout.addWidget(evidence_box, 1)

        self.run_button.clicked.connect(self.run)
        self.check_button.clicked.connect(self.check_judge)
        self.cancel_button.clicked.connect(self.cancel)
        self.claims_button.clicked.connect(self.open_judge_check)
        self.corpora_button.clicked.connect(self.open_corpora)
        self.evaluation.activated.connect(self._evaluation_chosen)
        self.calibration.changed.connect(self.show_focus)
        self.evidence.open_requested.connect(self.open_source)
        self.evidence.context_requested.connect(self.show_context)
        corpora.changed.connect(self._fill_corpora)
        results.shown.connect(self._chain_shown)
        results.ki_shown.connect(self._evaluation_shown)
        results.focus_changed.connect(self._focus_changed)
        self._fill_corpora()
        self._set_busy(False)
        self._evaluation_shown()

    # ------------------------------------------------------------------ corpora

    def _fill_corpora(self) -> None:
        current = self.corpus.currentData()
        self.corpus.clear()
        for c in self.corpora.items:
            self.corpus.addItem(f"{c['name']}  ·  {c['documents']} documents", c["name"])
            self.corpus.setItemData(self.corpus.count() - 1, f"{c['documents']} documents, {c['chunks']} chunks",
                                    Qt.ItemDataRole.ToolTipRole)
        index = self.corpus.findData(current)
        self.corpus.setCurrentIndex(index if index >= 0 else 0)
        self.no_corpus.setVisible(self.corpora.loaded and not self.corpora.items)
        self._set_busy(self.task is not None)

    def select_corpus(self, name: str) -> None:
        index = self.corpus.findData(name)
        if index >= 0:
            self.corpus.setCurrentIndex(index)

    # ------------------------------------------------------------------ scoring

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy and self.corpus.count() > 0)
        self.cancel_button.setEnabled(busy)
        for w in (self.corpus, self.judge, self.k, self.mode, self.claims_button, self.check_button):
            w.setEnabled(not busy)
        self.progress.setVisible(busy)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def open_judge_check(self) -> JudgeCheckDialog:
        """The judge-check screen for the session's corpora (one, shown again when asked again)."""
        if self.check_dialog is None:
            self.check_dialog = JudgeCheckDialog(self.engines, self.session, self.tasks, self.corpora, self)
            self.check_dialog.message.connect(self.message)
            self.check_dialog.checked.connect(lambda _r: self._evaluation_shown())
            self.check_dialog.finished.connect(self.check_dialog.cancel)  # closing it stops a check (kept for reuse)
            index = self.check_dialog.corpus.findData(self.corpus.currentData())
            if index >= 0:
                self.check_dialog.corpus.setCurrentIndex(index)
        self.check_dialog.show()
        self.check_dialog.raise_()
        return self.check_dialog


    def run(self) -> Task | None:
        """Score the shown chain's KI with the chosen corpus and judge, then save and show it."""
        result, corpus, info = self.results.result, self.corpus.currentData(), self.judge.chosen()
        try:
            if result is None:
                raise InputError("open or score a chain first: the Knowledge Index checks a chain's steps")
            if not corpus:
                raise InputError("import a reference corpus first (Corpora tab)")
            if info is None:
                raise InputError("no judge model: add a GGUF model first")
            if not result.record.get("steps"):
                raise InputError("this chain has no steps to check")
            session = self.session.hold()  # the chain's session, whatever opens while the judge runs
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return None
        chain_id, record, item, k, mode = result.chain_id, result.record, result.item, self.k.value(), self.mode.currentData()

        def work(cancel: CancelToken):
            yield Message(f"Loading the judge {info.name}…")
            client = self.engines.acquire(info, cancel)
            yield Message(f"Judging {len(record['steps'])} steps against corpus {corpus!r}…")
            reader = session.reader()
            try:
                out = yield from iter_stored_chain_ki(reader.db, corpus, CancellableJudge(client, cancel), record, item,
                                                      k=k, cancel=cancel, mode=mode)
            finally:
                reader.close()
            row = model_row(client.model, client.model_ref())
            return chain_id, session.write(lambda store: save_chain_ki(store, chain_id, row, corpus, out)), out

        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        task = run_busy(self.tasks, "Scoring the Knowledge Index", work, self._set_busy, message=self.message,
                        status=self.status, failed_text="Failed; nothing was saved.",
                        cancelled_text="Cancelled; nothing was saved.", engines=self.engines)
        self.task = session.release_when_done(task)
        task.progress.connect(self._event)
        task.succeeded.connect(lambda payload: self._saved(payload, session))
        task.finished.connect(self._finished)
        return task

    def _event(self, event: object, unit: str = "steps") -> None:
        if isinstance(event, Message):
            self.status.setText(event.text)
        elif isinstance(event, Progress):
            self.progress.setRange(0, max(1, event.total or 0))
            self.progress.setValue(event.done)
            if event.total:
                self.status.setText(f"Judged {event.done} of {event.total} {unit}…")

    # ------------------------------------------------------------------ judge validation

    def judge_info(self) -> ModelInfo | None:
        """The model file of the judge behind the KI on display (matched by SHA-256, else by path)."""
        judge = ((self.results.ki_evaluation() or {}).get("judge")) or {}
        models = self.engines.models
        by_path = next((m for m in models if judge.get("path") and m.path == judge.get("path")), None)
        if by_path is not None or not judge.get("sha256"):
            return by_path
        return next((m for m in models if m.error is None and m.sha256() == judge.get("sha256")), None)

    def check_judge(self) -> Task | None:
        """Validate the judge behind the shown KI on the bundled labelled claims (what ``kiig judge-check``
        does), with progress and Cancel; the table, the Mean KI card and this panel then show its AUROC."""
        try:
            if self.task is not None:
                raise InputError("wait for the running Knowledge Index task to finish (or cancel it)")
            if self.results.ki_evaluation() is None:
                raise InputError("score this chain's Knowledge Index first: the check validates the judge behind it")
            info = self.judge_info()
            if info is None:
                path = ((self.results.ki_evaluation() or {}).get("judge") or {}).get("path", "?")
                raise InputError(f"the judge model {Path(str(path)).name} is not among the models: add its file first")
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return None

        def work(cancel: CancelToken):
            claims, claims_sha = judge_check.load_claims(), judge_check.claims_fingerprint()
            yield Message(f"Loading the judge {info.name}…")
            client = self.engines.acquire(info, cancel)
            yield Message(f"Judging {len(claims)} labelled claims…")
            result = yield from judge_check.iter_judge_check(CancellableJudge(client, cancel), claims,
                                                            claims_sha256=claims_sha, cancel=cancel)
            judge_check.store_result(result)
            return result

        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        task = run_busy(self.tasks, "Checking the KI judge", work, self._set_busy, message=self.message,
                        status=self.status, failed_text="Failed; nothing was stored.",
                        cancelled_text="Cancelled; nothing was stored.", engines=self.engines)
        self.task = task
        task.progress.connect(lambda event: self._event(event, "claims"))
        task.succeeded.connect(self._judge_checked)
        task.finished.connect(self._finished)
        return task

    def _judge_checked(self, result: dict) -> None:
        self.status.setText(validation_note(result))
        self.results.show_ki_evaluation(self.results.ki_index)  # table header, Mean KI card and this panel

    def _saved(self, payload: tuple, session: SessionHandle) -> None:
        chain_id, ki, out = payload
        mean = out.get("ki_mean")
        n = len(out.get("steps") or [])
        if not session.current:  # the chain on display now belongs to another session
            self.message.emit(f"Knowledge Index of chain {chain_id} saved to the session {session.name}, "
                              "which is no longer open", "info")
            return
        text = (f"Mean KI {mean:.3f} over all {n} steps ({out.get('ki_mode')}); saved in the session."
                if mean is not None and out.get("ki_mode") in REPLY_MODES else
                f"Mean KI {mean:.3f} over {out.get('n_judged', 0)} judged of {n} steps "
                f"({n - int(out.get('n_applicable', 0))} not applicable); saved in the session."
                if mean is not None else f"No step could be judged ({n - int(out.get('n_applicable', 0))} of {n} not "
                                         "applicable); saved in the session.")
        self.status.setText(text)
        self.results.set_ki(chain_id, ki)
        self.results.show_side_panel(True)
        self.ki_saved.emit(chain_id, ki)
        self.session.notify_changed()

    def _finished(self) -> None:
        self.task = None

    # ------------------------------------------------------------------ evidence

    def _chain_shown(self, _result: AnalysisResult) -> None:
        self._evaluation_shown()

    def _evaluation_chosen(self, index: int) -> None:
        self.results.show_ki_evaluation(index)

    def _evaluation_shown(self) -> None:
        """Refill the evaluation list and load the passages the shown evaluation cites."""
        result = self.results.result
        evaluations = result.ki if result is not None else []
        self.evaluation.blockSignals(True)
        self.evaluation.clear()
        for ev in evaluations:
            self.evaluation.addItem(evaluation_label(ev))
        if evaluations:
            self.evaluation.setCurrentIndex(self.results.ki_index % len(evaluations))
        self.evaluation.blockSignals(False)
        self.evaluation.setVisible(len(evaluations) > 1)
        ev = self.results.ki_evaluation()
        show_validation(self.validation, self.results.judge_validation())
        self.calibration.set_evaluation(ev)
        self.check_button.setVisible(ev is not None)
        self.check_button.setText("Check judge again" if (self.results.judge_validation() or {}).get("validated")
                                  else "Check judge")
        ids = sorted({e["chunk_id"] for s in (ev or {}).get("steps") or [] for e in s.get("evidence") or []
                      if isinstance(e.get("chunk_id"), int)})
        self._chunks_serial += 1
        serial = self._chunks_serial
        self.chunks = {}
        self._chunks_pending = bool(ids)
        if ids:
            task = self.tasks.run("Reading the session's corpora",
                                  lambda _c: self.session.read(lambda st: get_chunks(st.db, ids)), quiet=True)
            task.succeeded.connect(lambda passages: self._chunks_loaded(serial, passages))
            task.failed.connect(lambda text: self._chunks_loaded(serial, []))
        self.show_focus()

    def _chunks_loaded(self, serial: int, passages: list[Passage]) -> None:
        if serial != self._chunks_serial:
            return
        self.chunks = {p.chunk_id: p for p in passages}
        self._chunks_pending = False
        self.show_focus()

    def open_source(self, passage: Passage) -> Task:
        """Open the file a shown passage comes from in the system's viewer, at its page (PDF)."""
        def work(_c: CancelToken) -> tuple[Path | None, str | None]:
            path = self.session.read(lambda st: source_path(st.db, passage.chunk_id))
            return path, source_opener.default_pdf_viewer() if passage.page is not None else None

        task = self.tasks.run("Finding the source file", work, quiet=True)
        task.succeeded.connect(lambda found: self._open_path(*found, passage))
        task.failed.connect(lambda text: self.message.emit(text, "error"))
        return task

    def _open_path(self, path: Path | None, viewer: str | None, passage: Passage) -> None:
        opened, text = source_opener.open_source(path, passage.page, passage.file or passage.source, viewer)
        self.message.emit(text, "info" if opened else "error")

    def show_context(self, passage: Passage) -> Task:
        """A dialog with a shown passage among its neighbours in its document."""
        query = self.evidence.fields["query"].text()
        task = self.tasks.run("Reading the passage's document",
                              lambda _c: self.session.read(lambda st: passage_context(st.db, passage.chunk_id)), quiet=True)
        task.succeeded.connect(lambda passages: self._context_loaded(passage, passages, query))
        task.failed.connect(lambda text: self.message.emit(text, "error"))
        return task

    def _context_loaded(self, passage: Passage, passages: list[Passage], query: str) -> None:
        if self.context_dialog is not None:
            self.context_dialog.close()
        dialog = ContextDialog(passage, passages, query, self)
        dialog.open_requested.connect(self.open_source)
        self.context_dialog = dialog
        dialog.show()

    def _focus_changed(self, _step: int) -> None:
        self.show_focus()

    def show_focus(self) -> None:
        """Show the evidence of the focused step (selected, else hovered)."""
        result, ev = self.results.result, self.results.ki_evaluation()
        if result is None:
            self.evidence.show_hint("Open or score a chain first.")
            return
        if ev is None:
            self.evidence.show_hint("This chain has no Knowledge Index yet. Choose a corpus and a judge model above, "
                                    "then Score KI.")
            return
        row = self.results.focused_step()
        steps = result.record.get("steps") or []
        if row is None or not 0 <= row < len(steps):
            self.evidence.show_hint("Select a step (in the table, the text or a plot) to see the passages the judge "
                                    "read, the matching terms highlighted.")
            return
        if self._chunks_pending:
            self.evidence.show_hint("Reading the passages…")
            return
        step = steps[row]
        ks = (self.results.ki_steps() or {}).get(int(step.get("index", row)))
        if ks is None:
            self.evidence.show_hint(f"Step {row + 1} is not part of this KI evaluation.")
            return
        claim, query = step_query(ks, step, chain_question(result.item))
        self.evidence.show_step(row, ks, self.chunks, claim, query, calibration=self.calibration.calibration())
