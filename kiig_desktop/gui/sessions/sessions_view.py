"""Session browser: the runs of the open session with their chains; open, compare, export, delete."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...events import CancelToken
from ...store.export import export_run
from ..shared.metric_help import fmt_metric
from ..shared.session_file import SessionFile, SessionHandle
from ..shared.theme import theme
from ..shared.widgets import EmptyState, make_tree, plain_label
from ..shared.workers import TaskManager

RUN, CHAIN = 1, 2
COLUMNS = ("Run / chain", "Status", "Models", "Mean InfoGain", "Steps", "Correct", "Saved")


def read_session(store) -> list[dict]:
    """Runs with their light chain rows and each chain's question (runs in a worker thread)."""
    runs = store.list_runs()
    for run in runs:
        run["chains"] = store.chains_for_run(run["id"])
        for chain in run["chains"]:
            item = store.load_item(chain["id"]) or {}
            chain["question"] = item.get("question")
    return runs


def run_title(run: dict) -> str:
    """A run as the session browser lists it: its number first (two runs may share a name)."""
    return f"Run {run['id']} · {run.get('name') or run['kind']}"


class SessionsView(QWidget):
    """Lists runs and chains; double-click a chain to reopen it."""

    open_requested = Signal(int, int)  # run id, chain id
    compare_requested = Signal(list)  # [(run id, chain id)]
    message = Signal(str, str)

    def __init__(self, session: SessionFile, tasks: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.tasks = session, tasks
        self.runs: list[dict] = []
        self.path_label = plain_label("", "muted", selectable=True)
        self.tree = make_tree(list(COLUMNS), widths={1: 130, 2: 300, 3: 110, 4: 60, 5: 70, 6: 150})
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setAlternatingRowColors(True)
        buttons = QHBoxLayout()
        self.buttons = {}
        for key, text in (("open", "Open in Results"), ("compare", "Compare selected"), ("export", "Export run…"),
                          ("delete", "Delete run"), ("refresh", "Refresh")):
            b = QPushButton(text)
            buttons.addWidget(b)
            self.buttons[key] = b
        self.buttons["open"].setProperty("role", "primary")
        buttons.insertStretch(4, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(EmptyState("This session has no runs yet",
                                        "Every chain you score is saved here as it completes. Score one in the Analyze "
                                        "tab, or open another session with File → Open Session…"))
        self.stack.addWidget(self.tree)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        head = QHBoxLayout()
        head.addWidget(plain_label("Session", "heading"))
        head.addWidget(self.path_label, 1)
        layout.addLayout(head)
        layout.addWidget(self.stack, 1)
        layout.addLayout(buttons)

        self.tree.itemDoubleClicked.connect(lambda item, _c: self._open_item(item))
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.buttons["open"].clicked.connect(self._open_selected)
        self.buttons["compare"].clicked.connect(self._compare_selected)
        self.buttons["export"].clicked.connect(self._export_selected)
        self.buttons["delete"].clicked.connect(self._delete_selected)
        self.buttons["refresh"].clicked.connect(self.refresh)
        session.changed.connect(self.refresh)
        self._update_buttons()

    # ------------------------------------------------------------------ loading

    def refresh(self) -> None:
        """Reread the session in a worker thread (its own read-only connection)."""
        self.path_label.setText(str(self.session.path) if self.session.path else "no session open")
        if self.session.store is None:
            self._fill([])
            return
        task = self.tasks.run("Reading the session", lambda _c: self.session.read(read_session), quiet=True)
        task.succeeded.connect(self._fill)
        task.failed.connect(lambda text: self.message.emit(text, "error"))

    def _fill(self, runs: list[dict]) -> None:
        self.runs = runs
        expanded = {self.tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole)
                    for i in range(self.tree.topLevelItemCount()) if self.tree.topLevelItem(i).isExpanded()}
        self.tree.clear()
        good, bad = theme().color("good"), theme().color("bad")
        for run in reversed(runs):
            models = run.get("models") or {}
            names = " → ".join(Path(m["path"]).stem for role in ("subject", "scorer", "judge") if (m := models.get(role)))
            title = run_title(run)
            n = int(run.get("n_chains", 0))
            item = QTreeWidgetItem([f"{title}", f"{run['status']} · {n} chain{'' if n == 1 else 's'}", names, "", "", "",
                                    (run.get("finished") or run.get("started") or "")[:19].replace("T", " ")])
            item.setData(0, Qt.ItemDataRole.UserRole, (RUN, run["id"]))
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            self.tree.addTopLevelItem(item)
            for chain in run["chains"]:
                question = " ".join(str(chain.get("question") or chain["key"]).split())
                gain = chain.get("info_gain_mean")
                correct = chain.get("correct")
                child = QTreeWidgetItem([question[:160], chain["status"], "", fmt_metric("info_gain_mean", gain),
                                         str(chain.get("n_steps") or 0),
                                         "—" if correct is None else ("✓" if correct else "✗"),
                                         (chain.get("saved") or "")[:19].replace("T", " ")])
                child.setData(0, Qt.ItemDataRole.UserRole, (CHAIN, run["id"], chain["id"]))
                child.setToolTip(0, chain["key"])
                if correct is not None:
                    child.setForeground(5, good if correct else bad)
                if chain.get("error"):
                    child.setToolTip(1, str(chain["error"]))
                item.addChild(child)
            if (RUN, run["id"]) in expanded or len(runs) <= 6:
                item.setExpanded(True)
        self.stack.setCurrentIndex(1 if runs else 0)
        self._update_buttons()

    # ------------------------------------------------------------------ selection

    def _selected(self, kind: int) -> list[tuple]:
        out = []
        for item in self.tree.selectedItems():
            data = item.data(0, Qt.ItemDataRole.UserRole)
            if data and data[0] == kind:
                out.append(tuple(data[1:]))
        return out

    def selected_chains(self) -> list[tuple[int, int]]:
        chains = self._selected(CHAIN)
        for (run_id,) in self._selected(RUN):
            run = next((r for r in self.runs if r["id"] == run_id), None)
            for chain in (run or {}).get("chains", []):
                if (run_id, chain["id"]) not in chains:
                    chains.append((run_id, chain["id"]))
        return chains

    def _update_buttons(self) -> None:
        chains = self.selected_chains()
        self.buttons["open"].setEnabled(len(self._selected(CHAIN)) == 1 or len(chains) == 1)
        self.buttons["compare"].setEnabled(len(chains) >= 1)
        self.buttons["export"].setEnabled(len(self._run_ids()) == 1)
        self.buttons["delete"].setEnabled(len(self._selected(RUN)) >= 1)

    def _run_ids(self) -> list[int]:
        ids = [r[0] for r in self._selected(RUN)] + [c[0] for c in self._selected(CHAIN)]
        return sorted(set(ids))

    def _open_item(self, item: QTreeWidgetItem) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if data and data[0] == CHAIN:
            self.open_requested.emit(data[1], data[2])

    def _open_selected(self) -> None:
        chains = self.selected_chains()
        if chains:
            self.open_requested.emit(*chains[0])

    def _compare_selected(self) -> None:
        self.compare_requested.emit(self.selected_chains())

    def _export_selected(self) -> None:
        run_ids = self._run_ids()
        if len(run_ids) != 1:
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export run", f"kiig-run-{run_ids[0]}.csv",
                                                   "CSV for spreadsheets (*.csv);;JSONL, complete (*.jsonl)")
        if path:
            self.export_run(run_ids[0], path, "jsonl" if path.endswith(".jsonl") or "jsonl" in chosen else "csv")

    def export_run(self, run_id: int, path: str, fmt: str) -> None:
        def work(_c: CancelToken) -> int:
            return self.session.read(lambda st: export_run(st, run_id, fmt, Path(path), None))

        task = self.tasks.run("Exporting run", work)
        task.succeeded.connect(lambda n: self.message.emit(f"Exported {n} rows to {path}", "info"))
        task.failed.connect(lambda text: self.message.emit(text, "error"))

    def _delete_selected(self) -> None:
        run_ids = [r[0] for r in self._selected(RUN)]
        if not run_ids:
            return
        answer = QMessageBox.question(self, "Delete runs", f"Delete {len(run_ids)} run(s) with all their chains from "
                                      "this session? This cannot be undone.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_runs(run_ids)

    def delete_runs(self, run_ids: list[int]) -> None:
        def work(session: SessionHandle, _c: CancelToken) -> int:  # the runs' own session, never a later one
            return session.write(lambda st: [st.delete_run(r) for r in run_ids] and len(run_ids))

        task = self.session.run("Deleting runs", work)
        task.succeeded.connect(lambda _n: self.session.notify_changed())
        task.failed.connect(lambda text: self.message.emit(text, "error"))
