"""The batch-run form of the Dashboard: dataset (checked row by row), models, settings, run and cancel.

The dataset is validated off the GUI thread as soon as it is chosen; its bad rows are listed by
line and Run stays disabled until the file holds valid items and no bad row (``kiig run`` refuses
such a file too). Running starts :func:`batch_task.batch_work` in a Task; every chain is saved to
the session as it completes. Cancel marks the run cancelled; running the same settings again
resumes it ("Resuming: N of M already done").
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...chains.datasets import Dataset, load_dataset
from ...errors import InputError, KiigError
from ...events import ItemDone, Message
from ...resources import resource_path
from ...runs.batch import BatchConfig, BatchProgress, BatchSummary
from ...runs.cluster import ClusterProgress
from ...runs.parallel import MAX_PARALLEL, SETTING_KEY, default_parallel
from ..shared.corpora import Corpora
from ..shared.engines import Engines
from ..shared.model_combo import ModelCheckList, ModelCombo
from ..shared.session_file import SessionFile, SessionHandle
from ..shared.theme import theme
from ..shared.widgets import ElidedLabel, compact_combo, plain_label, rich_tooltip
from ..shared.workers import Task, TaskManager
from .batch_task import BatchRequest, RunStarted, batch_work, node_lines, progress_text

SAMPLES = (("Clinical MCQ (sample)", "clinical_mcq.jsonl"), ("Arithmetic (sample)", "arithmetic.jsonl"))
LAYOUT_CHOICES = (("Detect the layout", "auto"), ("Multiple choice (MedQA-style)", "mcq"),
                  ("Word problems (GSM8K-style)", "gsm8k"), ("Generic (mixed)", "generic"))
KINDS = {"mcq": "multiple choice", "numeric": "numeric answers", "open": "open answers"}
MAX_ERRORS_SHOWN = 200


def sample_path(file_name: str) -> str:
    return str(resource_path("datasets", file_name))


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def dataset_summary(ds: Dataset) -> str:
    kinds = sorted({KINDS.get(i.kind, i.kind) for i in ds.items})
    return f"{len(ds.items)} valid item{'s' if len(ds.items) != 1 else ''} · {', '.join(kinds) or 'no items'}"


class BatchForm(QWidget):
    """Choose a dataset and models, run the batch, follow its progress."""

    message = Signal(str, str)  # text, level
    run_started = Signal(int)  # run id (new or resumed)
    item_done = Signal(int)  # run id: a chain was saved
    run_ended = Signal(int)  # run id: finished, cancelled or failed
    open_corpora = Signal()

    def __init__(self, engines: Engines, session: SessionFile, tasks: TaskManager, corpora: Corpora,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engines, self.session, self.tasks, self.corpora = engines, session, tasks, corpora
        self.dataset: Dataset | None = None
        self.dataset_error: str | None = None
        self.task: Task | None = None
        self.held: SessionHandle | None = None  # the session the running (or last) batch writes to
        self.run_id: int | None = None
        self.events: list[object] = []  # what the running batch reported (tests read it)
        self._check_serial = 0
        self._build()
        engines.models_changed.connect(self._fill_models)
        corpora.changed.connect(self._fill_corpora)
        theme().changed.connect(self._show_validation)
        self._fill_models()
        self._fill_corpora()
        self._set_busy(False)
        self.choose_dataset(sample_path(SAMPLES[0][1]))

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        ds_box = QGroupBox("1 · Dataset")
        d = QVBoxLayout(ds_box)
        self.dataset_combo = compact_combo(QComboBox(), 14)
        for title, name in SAMPLES:
            self.dataset_combo.addItem(title, sample_path(name))
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("A JSON Lines (.jsonl, .json, .ndjson), .csv or .tsv file: MedQA-style multiple choice, GSM8K-style or generic rows (docs/datasets.md)")
        row = QHBoxLayout()
        row.addWidget(self.dataset_combo, 1)
        row.addWidget(self.browse_button)
        d.addLayout(row)
        self.layout_combo = compact_combo(QComboBox(), 14)
        for title, key in LAYOUT_CHOICES:
            self.layout_combo.addItem(title, key)
        d.addWidget(self.layout_combo)
        self.dataset_path = ElidedLabel("")
        self.dataset_path.setProperty("role", "muted")
        d.addWidget(self.dataset_path)
        self.validation = plain_label("", wrap=True)
        d.addWidget(self.validation)
        self.error_list = QListWidget()
        self.error_list.setMaximumHeight(120)
        self.error_list.setToolTip("Rows that cannot be used, by line number in the file")
        d.addWidget(self.error_list)

        m_box = QGroupBox("2 · Models")
        m = QVBoxLayout(m_box)
        m.addWidget(plain_label("Subject models (each answers every item)", "muted", wrap=True))
        self.model_list = ModelCheckList()
        self.model_list.setMinimumHeight(52)
        self.model_list.setMaximumHeight(104)
        m.addWidget(self.model_list)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.scorer = ModelCombo(self.engines)
        self.scorer.setToolTip("The model whose log-probabilities measure InfoGain (one scorer for every subject)")
        form.addRow("Scorer", self.scorer)
        m.addLayout(form)
        self.use_ki = QCheckBox("Knowledge Index (judge each step against a corpus)")
        m.addWidget(self.use_ki)
        ki_form = QFormLayout()
        ki_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.judge = ModelCombo(self.engines)
        self.corpus = compact_combo(QComboBox(), 10)
        self.ki_mode = QComboBox()
        self.ki_mode.addItem("Probability: p(yes), N/A steps left out (3 passages)", "probability")
        self.ki_mode.addItem("Passages, True/False: N/A counts 1.0 (12 passages)", "passages-true-false")
        self.ki_mode.addItem("ReasoningEval pipeline: query, RAG answer, True/False (12 passages)", "reasoningeval-pipeline")
        ki_form.addRow("Judge", self.judge)
        ki_form.addRow("Corpus", self.corpus)
        ki_form.addRow("Rule", self.ki_mode)
        self.ki_box = QWidget()
        self.ki_box.setLayout(ki_form)
        ki_form.setContentsMargins(18, 0, 0, 0)
        m.addWidget(self.ki_box)
        self.no_corpus = QWidget()
        nc = QHBoxLayout(self.no_corpus)
        nc.setContentsMargins(18, 0, 0, 0)
        nc.addWidget(plain_label("No reference corpus in this session.", "muted", wrap=True), 1)
        self.corpora_button = QPushButton("Open Corpora…")
        nc.addWidget(self.corpora_button)
        m.addWidget(self.no_corpus)

        s_box = QGroupBox("3 · Settings")
        s = QFormLayout(s_box)
        self.limit = QSpinBox()
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("All items")
        self.limit.setToolTip("Only the first N items of the dataset (0 = all)")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 8192)
        self.max_tokens.setValue(BatchConfig.max_tokens)
        self.max_tokens.setSuffix(" tokens")
        self.max_tokens.setToolTip("Longest reasoning each model may write per item")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setToolTip("0 = greedy and reproducible; above 0 each item samples with its own seed")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Sampling seed of the run (each item derives its own from it)")
        self.parallel = QSpinBox()
        self.parallel.setRange(1, MAX_PARALLEL)
        stored = self.engines.qsettings.value(SETTING_KEY)
        self.parallel.setValue(int(stored) if stored is not None and str(stored).isdigit() else default_parallel())
        self.parallel.setToolTip("Items generated, scored and judged at once in each model's context: faster, "
                                 "the same numbers as one at a time, more memory")
        self.parallel.valueChanged.connect(lambda n: self.engines.qsettings.setValue(SETTING_KEY, int(n)))
        s.addRow("Items", self.limit)
        s.addRow("Max tokens", self.max_tokens)
        s.addRow("Temperature", self.temperature)
        s.addRow("Seed", self.seed)
        s.addRow("Parallel items", self.parallel)
        self.cluster = QLineEdit()
        self.cluster.setPlaceholderText("empty = this computer")
        self.cluster.setToolTip("HOST:PORT of a Ray head (`ray start --head`) to run the items on its nodes "
                                "(make install-cluster). Ray has no authentication by default: private network only.")
        s.addRow("Cluster address", self.cluster)

        self.run_button = QPushButton("Run batch")
        self.run_button.setProperty("role", "primary")
        self.run_button.setToolTip("Generate, grade and score every item with every checked model; each chain is "
                                   "saved to the session as it completes. The same settings again resume the run.")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m chains")
        self.progress.setValue(0)
        self.progress.hide()  # shown from the first run on
        self.status = plain_label("", "muted", wrap=True)
        self.resume_note = plain_label("", wrap=True)
        run_box = QGroupBox("4 · Run")
        r = QVBoxLayout(run_box)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        r.addLayout(row)
        r.addWidget(self.progress)
        self.nodes = QListWidget()
        self.nodes.setToolTip("Cluster nodes: what each does and the chains it finished")
        self.nodes.setMaximumHeight(90)
        self.nodes.hide()  # shown while a cluster run reports its nodes
        r.addWidget(self.nodes)
        r.addWidget(self.resume_note)
        r.addWidget(self.status)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 4, 0)
        for box in (ds_box, m_box, s_box, run_box):
            layout.addWidget(box)
        layout.addStretch(1)

        self.dataset_combo.activated.connect(lambda _i: self.choose_dataset(self.dataset_combo.currentData()))
        self.layout_combo.activated.connect(lambda _i: self.check_dataset())
        self.browse_button.clicked.connect(self.browse)
        self.use_ki.toggled.connect(lambda _on: self._update_ki())
        self.corpora_button.clicked.connect(self.open_corpora)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)

    # ------------------------------------------------------------------ models and corpora

    def _fill_models(self) -> None:
        checked = set(self.checked_ids())
        default = self.engines.default_model()
        if self.model_list.count() == 0 and not checked and default is not None:
            checked = {default.id}  # the first fill checks the default model
        self.model_list.fill(self.engines, checked, tooltip=lambda info: rich_tooltip(info.path))

    def checked_ids(self) -> list[str]:
        return self.model_list.checked_ids()

    def set_checked(self, ids: list[str]) -> None:
        self.model_list.set_checked(ids)

    def _fill_corpora(self) -> None:
        current = self.corpus.currentData()
        self.corpus.clear()
        for c in self.corpora.items:
            self.corpus.addItem(f"{c['name']}  ·  {c['documents']} documents", c["name"])
        index = self.corpus.findData(current)
        self.corpus.setCurrentIndex(index if index >= 0 else 0)
        self._update_ki()

    def _update_ki(self) -> None:
        on = self.use_ki.isChecked()
        self.ki_box.setVisible(on)
        self.no_corpus.setVisible(on and self.corpora.loaded and not self.corpora.items)

    # ------------------------------------------------------------------ dataset

    def browse(self) -> None:
        start = str(Path(self.dataset_combo.currentData() or Path.home()).parent)
        path, _ = QFileDialog.getOpenFileName(self, "Choose a dataset", start,
                                              "Datasets (*.jsonl *.json *.ndjson *.csv *.tsv);;All files (*)")
        if path:
            self.choose_dataset(path)

    def choose_dataset(self, path: str) -> Task:
        """Select ``path`` (added to the list when new) and check it off the GUI thread."""
        index = next((i for i in range(self.dataset_combo.count()) if _same_file(self.dataset_combo.itemData(i), path)), -1)
        if index < 0:
            self.dataset_combo.addItem(Path(path).name, path)
            index = self.dataset_combo.count() - 1
            self.dataset_combo.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
        self.dataset_combo.setCurrentIndex(index)
        return self.check_dataset()

    def check_dataset(self) -> Task:
        path, layout = self.dataset_combo.currentData(), self.layout_combo.currentData()
        self._check_serial += 1
        serial = self._check_serial
        self.dataset, self.dataset_error = None, None
        self.dataset_path.set_full_text(path)
        self.validation.setText("Checking the dataset…")
        self.validation.setStyleSheet("")
        self.error_list.clear()
        self.error_list.hide()
        self._set_busy(self.task is not None)
        task = self.tasks.run("Reading the dataset", lambda _c: load_dataset(path, layout))
        task.succeeded.connect(lambda ds: self._checked(serial, ds, None))
        task.failed.connect(lambda text: self._checked(serial, None, text))
        return task

    def _checked(self, serial: int, ds: Dataset | None, error: str | None) -> None:
        if serial != self._check_serial:
            return  # another file was chosen meanwhile
        self.dataset, self.dataset_error = ds, error
        self._show_validation()
        self._set_busy(self.task is not None)

    def _show_validation(self) -> None:
        ds, c = self.dataset, theme().colors()
        if ds is None and self.dataset_error is None:
            return
        self.error_list.clear()
        if ds is None:
            self.validation.setText(f"✗ {self.dataset_error}")
            self.validation.setStyleSheet(f"color: {c['bad']};")
            self.error_list.hide()
            return
        if not ds.errors:
            self.validation.setText(f"✓ {dataset_summary(ds)}")
            self.validation.setStyleSheet(f"color: {c['good']};")
            self.error_list.hide()
            return
        n = len(ds.errors)
        what = (f"{len(ds.items)} valid item{'s' if len(ds.items) != 1 else ''} and " if ds.items else "No valid item; ")
        self.validation.setText(f"✗ {what}{n} row{'s' if n != 1 else ''} with errors. Fix or remove "
                                f"{'them' if n != 1 else 'it'} and choose the file again: a batch runs only when every "
                                "row is valid.")
        self.validation.setStyleSheet(f"color: {c['bad']};")
        for err in ds.errors[:MAX_ERRORS_SHOWN]:
            self.error_list.addItem(QListWidgetItem(str(err)))
        if n > MAX_ERRORS_SHOWN:
            self.error_list.addItem(QListWidgetItem(f"… and {n - MAX_ERRORS_SHOWN} more"))
        self.error_list.show()

    def dataset_ready(self) -> bool:
        return self.dataset is not None and bool(self.dataset.items) and not self.dataset.errors

    # ------------------------------------------------------------------ running

    def _set_busy(self, busy: bool) -> None:
        # the button that disables itself hands the keyboard focus to the other one (Qt would pass it on
        # to whatever comes next in the chain, or drop it)
        leaving = self.run_button if busy else self.cancel_button
        had_focus = leaving.hasFocus()
        self.cancel_button.setEnabled(busy)
        self.run_button.setEnabled(not busy and self.dataset_ready())
        if had_focus:
            (self.cancel_button if busy else self.run_button).setFocus(Qt.FocusReason.OtherFocusReason)
        for w in (self.dataset_combo, self.browse_button, self.layout_combo, self.model_list, self.scorer, self.use_ki,
                  self.ki_box, self.limit, self.max_tokens, self.temperature, self.seed, self.parallel,
                  self.cluster):
            w.setEnabled(not busy)

    def request(self) -> BatchRequest:
        """The batch the form describes; raises InputError when something is missing."""
        if not self.dataset_ready():
            raise InputError("choose a dataset whose rows are all valid first")
        models = [m for m in (self.engines.find(i) for i in self.checked_ids()) if m is not None]
        if not models:
            raise InputError("check at least one subject model (two or more to compare them)")
        scorer = self.scorer.chosen()
        if scorer is None:
            raise InputError("no scorer model: add a GGUF model in the Models panel")
        judge = corpus = None
        if self.use_ki.isChecked():
            judge, corpus = self.judge.chosen(), self.corpus.currentData()
            if judge is None or not corpus:
                raise InputError("the Knowledge Index needs a judge model and a reference corpus (Corpora tab)")
        config = BatchConfig(max_tokens=self.max_tokens.value(), temperature=self.temperature.value(),
                             seed=self.seed.value(), limit=self.limit.value() or None,
                             layout=self.layout_combo.currentData(), ki_mode=self.ki_mode.currentData())
        return BatchRequest(self.dataset.path, models, scorer, judge, corpus, config, parallel=self.parallel.value(),
                            cluster=self.cluster.text().strip() or None)

    def run(self) -> Task | None:
        """Start (or resume) the batch described by the form."""
        if self.task is not None:
            return None
        try:
            request = self.request()
            session = self.session.hold()  # every chain goes where the batch started, whatever opens meanwhile
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return None
        self.events, self.run_id = [], None
        total = len(request.models) * min(len(self.dataset.items), request.config.limit or len(self.dataset.items))
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.progress.show()
        self.resume_note.setText("")
        self.nodes.clear()
        self.nodes.hide()
        self.status.setText("Starting…")
        task = self.tasks.run(f"Batch evaluation of {Path(request.dataset).name}",
                              batch_work(session, self.engines, request))
        self.task, self.held = session.release_when_done(task), session
        self._set_busy(True)
        task.progress.connect(lambda event: self._event(event, session))
        task.succeeded.connect(self._succeeded)
        task.cancelled.connect(self._cancelled)
        task.failed.connect(self._failed)
        task.finished.connect(self._finished)
        return task

    def cancel(self) -> None:
        if self.task is not None:
            self.status.setText("Cancelling…")
            self.task.cancel()

    def _event(self, event: object, session: SessionHandle | None = None) -> None:
        self.events.append(event)
        elsewhere = session is not None and not session.current  # the Dashboard shows the open session's runs
        if isinstance(event, RunStarted) and elsewhere:
            self.run_id = event.run_id
        elif isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.run_started.emit(event.run_id)
        elif isinstance(event, BatchProgress):
            self.progress.setRange(0, max(1, event.total or 0))
            self.progress.setValue(event.done)
            if event.reloaded and not self.resume_note.text():
                self.resume_note.setText(f"Resuming: {event.reloaded} of {event.total} already done")
            self.status.setText(progress_text(event))
            if isinstance(event, ClusterProgress) and event.nodes:
                self.nodes.clear()
                self.nodes.addItems(node_lines(event))
                self.nodes.show()
        elif isinstance(event, ItemDone):
            err = event.result.get("error")
            if err:
                self.message.emit(f"Item {event.result.get('id')} ({(event.result.get('subject') or {}).get('name')}): "
                                  f"{err}", "error")
            if self.run_id is not None and not elsewhere:
                self.item_done.emit(self.run_id)
        elif isinstance(event, Message):
            self.message.emit(event.text[:1].upper() + event.text[1:], event.level)

    def _succeeded(self, summary: BatchSummary) -> None:
        self.run_id = summary.run_id
        self.progress.setRange(0, max(1, summary.total))
        self.progress.setValue(summary.total)
        errors = f", {summary.errors} with errors" if summary.errors else ""
        self.status.setText(f"Run {summary.run_id} finished: {summary.done} chains now, {summary.reloaded} from "
                            f"before{errors}. Every chain is saved in the session"
                            + ("." if self.held is None or self.held.current else f" {self.held.name}, which is no longer open."))

    def _cancelled(self) -> None:
        done = self.progress.value()
        where = f"Run {self.run_id} is marked cancelled" if self.run_id is not None else "Nothing was started"
        self.status.setText(f"Cancelled. {where} ({done} of {self.progress.maximum()} chains saved); "
                            "Run batch again with the same settings to resume it.")

    def _failed(self, text: str) -> None:
        self.status.setText("The batch stopped with an error (see the message above); finished chains are saved.")
        self.message.emit(text, "error")

    def _finished(self) -> None:
        self.task = None
        self.resume_note.setText("")  # the status line now says how many chains came from before
        self._set_busy(False)
        self.engines.sync()
        self._fill_models()
        if self.run_id is not None and (self.held is None or self.held.current):
            self.run_ended.emit(self.run_id)
        self.session.notify_changed()
