"""Judge-check for the user's domain in the app: write or import labelled claims for a corpus of the
session, then check a judge against that corpus with progress and cancel (as ``kiig judge-check
--claims FILE --corpus NAME --db FILE``, :func:`kiig_desktop.runs.judge_check.iter_judge_check`).

Claims written here are saved owner-only in ``<data dir>/claims/<corpus>.jsonl`` (the file the
stored result is keyed by); claims and labels are plain text cells, never rich text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...config import ensure_private_dir
from ...errors import InputError, KiigError
from ...events import CancelToken, Message, Progress
from ...files import write_private_text
from ...runs import judge_check as jc
from ...runs.ki import CancellableJudge
from ...store import judge_validation
from ..shared.corpora import Corpora
from ..shared.engines import Engines
from ..shared.model_combo import ModelCombo
from ..shared.session_file import SessionFile
from ..shared.task_ui import button_row, labelled_row, primary_button, progress_line, run_busy
from ..shared.widgets import plain_label
from ..shared.workers import Task, TaskManager


def claims_file(data_dir: Path, corpus: str) -> Path:
    """Where the claims written for ``corpus`` are kept."""
    return data_dir / "claims" / (re.sub(r"[^\w.-]+", "_", corpus) + ".jsonl")


class JudgeCheckDialog(QDialog):
    """A table of labelled claims (claim text, supported or not) and a check of a judge against a corpus."""

    message = Signal(str, str)
    checked = Signal(object)  # the stored result

    def __init__(self, engines: Engines, session: SessionFile, tasks: TaskManager, corpora: Corpora,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Check a judge on your corpus")
        self.engines, self.session, self.tasks = engines, session, tasks
        self.task: Task | None = None
        self.result: dict | None = None
        self.corpus = QComboBox()
        for c in corpora.items:
            self.corpus.addItem(f"{c['name']}  ·  {c['documents']} documents", c["name"])
        self.judge = ModelCombo(engines)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Claim", "Supported"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.add_button, self.remove_button = QPushButton("Add claim"), QPushButton("Remove")
        self.import_button = QPushButton("Import JSONL…")
        self.run_button, self.cancel_button = primary_button("Check judge"), QPushButton("Cancel")
        self.progress, self.status = progress_line()
        self.outcome = plain_label("", wrap=True, selectable=True)
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label("Labelled claims of your domain: tick Supported when your corpus supports the claim, "
                                     "leave it empty when the corpus contradicts it or does not contain it. The judge "
                                     "reads the passages your corpus returns for each claim, as KI does.", "muted", wrap=True))
        layout.addLayout(labelled_row("Corpus", self.corpus))
        layout.addLayout(labelled_row("Judge", self.judge))
        layout.addWidget(self.table, 1)
        layout.addLayout(button_row(self.add_button, self.remove_button, self.import_button))
        layout.addLayout(button_row(self.run_button, self.cancel_button))
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.outcome)
        self.add_button.clicked.connect(lambda: self.add_claim("", False))
        self.remove_button.clicked.connect(self._remove)
        self.import_button.clicked.connect(self._import_chosen)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.resize(720, 520)
        self._set_busy(False)

    # ------------------------------------------------------------------ claims

    def add_claim(self, text: str, supported: bool) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(text))
        box = QTableWidgetItem()
        box.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        box.setCheckState(Qt.CheckState.Checked if supported else Qt.CheckState.Unchecked)
        self.table.setItem(row, 1, box)

    def _remove(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)

    def _import_chosen(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labelled claims", "", "JSON lines (*.jsonl)")
        if path:
            self.import_claims(path)

    def import_claims(self, path: str | Path) -> None:
        """Add the claims of a ``kiig judge-check --claims`` file (an invalid file is one error message)."""
        try:
            claims = jc.load_claims(path)
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return
        for c in claims:
            self.add_claim(c["claim"], c["label"])

    def claims(self) -> list[dict]:
        """The table's claims (empty rows left out)."""
        out = []
        for row in range(self.table.rowCount()):
            text = (self.table.item(row, 0).text() if self.table.item(row, 0) else "").strip()
            if text:
                label = self.table.item(row, 1).checkState() == Qt.CheckState.Checked
                out.append({"id": f"c{row + 1}", "claim": text, "label": label, "kind": "domain"})
        return out

    # ------------------------------------------------------------------ the check

    def _set_busy(self, busy: bool) -> None:
        for w in (self.corpus, self.judge, self.table, self.add_button, self.remove_button, self.import_button):
            w.setEnabled(not busy)
        self.run_button.setEnabled(not busy and self.corpus.count() > 0)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def run(self) -> Task | None:
        """Save the claims, then check the chosen judge against the chosen corpus; the result is stored."""
        corpus, info, claims = self.corpus.currentData(), self.judge.chosen(), self.claims()
        try:
            if not corpus:
                raise InputError("import a reference corpus first (Corpora tab)")
            if info is None:
                raise InputError("no judge model: add a GGUF model first")
            if {c["label"] for c in claims} != {True, False}:
                raise InputError("write claims of both kinds: some your corpus supports and some it does not")
            path = claims_file(self.engines.settings.data_dir, corpus)
            ensure_private_dir(path.parent)
            write_private_text(path, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in claims))
            session = self.session.hold()  # the corpus is read from this session, whatever opens meanwhile
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return None
        sha = jc.claims_fingerprint(path)

        def work(cancel: CancelToken):
            yield Message(f"Loading the judge {info.name}…")
            client = self.engines.acquire(info, cancel)
            reader = session.reader()
            try:
                result = yield from jc.iter_judge_check(CancellableJudge(client, cancel), claims, claims_sha256=sha,
                                                        cancel=cancel, db=reader.db, corpus=corpus)
            finally:
                reader.close()
            jc.store_result(result)
            return result

        self.outcome.setText("")
        self.progress.setRange(0, 0)
        task = run_busy(self.tasks, "Checking the judge", work, self._set_busy, message=self.message,
                        status=self.status, failed_text="Failed; nothing was stored.",
                        cancelled_text="Cancelled; nothing was stored.", engines=self.engines)
        self.task = session.release_when_done(task)
        task.progress.connect(self._event)
        task.succeeded.connect(self._done)
        task.finished.connect(self._finished)
        return task

    def _event(self, event: object) -> None:
        if isinstance(event, Message):
            self.status.setText(event.text)
        elif isinstance(event, Progress) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.status.setText(f"Judged {event.done} of {event.total} claims…")

    def _done(self, result: dict) -> None:
        self.result = result
        self.status.setText("Stored with the judge's validation.")
        self.outcome.setText(judge_validation.note(result))
        self.checked.emit(result)

    def _finished(self) -> None:
        self.task = None
