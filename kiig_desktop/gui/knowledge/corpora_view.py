"""Corpora: the session's reference corpora; import files or folders, remove, try a search.

Everything shown from a corpus (names, titles, passages) is plain text: tree items and labels
never interpret markup, the passage preview inserts text with character formats only, and
confirmations use a plain-text message box.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...events import CancelToken, Progress
from ...knowledge.chunking import SUPPORTED_SUFFIXES
from ...knowledge.corpus import ImportReport, Passage, list_files
from ...knowledge.search import match_spans
from ...units import human_bytes
from ..shared.corpora import DEMO_CORPUS, Corpora
from ..shared.theme import theme
from ..shared.widgets import compact_combo, confirm, make_tree, plain_label, rich_tooltip
from ..shared.workers import Task
from .evidence_panel import PassageItem, PassageView, passage_heading, shown_title

CORPUS, FILE, DOC, MORE = 1, 2, 3, 4
STATUS_COLORS = {"added": "good", "replaced": "accent", "unchanged": "muted", "skipped": "bad"}
DOC_LIMIT = 1000


def import_filter() -> str:
    """The file dialog's filter: every file type the importer reads, then all files."""
    return f"Reference documents ({' '.join('*' + s for s in sorted(SUPPORTED_SUFFIXES))});;All files (*)"


def supported_text() -> str:
    """The importer's file types in words: ".jsonl, .md, .pdf or .txt files"."""
    kinds = sorted({"." + kind for kind in SUPPORTED_SUFFIXES.values()})
    return (", ".join(kinds[:-1]) + " or " + kinds[-1]) if len(kinds) > 1 else kinds[0]


class CorporaView(QWidget):
    """Corpus list with import / remove, the last import's per-file report, and a search box."""

    message = Signal(str, str)
    imported = Signal(object)  # the ImportReport of a finished import

    def __init__(self, corpora: Corpora, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.corpora = corpora
        self.files: dict[str, list[dict]] = {}
        self.report: ImportReport | None = None
        self.hits: list[Passage] = []
        self.hits_query = ""
        self.import_task: Task | None = None
        self._serial = 0
        self._pending_select: str | None = None  # a corpus to select once the tree shows it

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.addWidget(plain_label("Reference corpora", "heading"))
        layout.addWidget(plain_label("Passages the Knowledge Index checks reasoning steps against, kept in this session "
                                     "file and searched with BM25. Nothing leaves this machine.", "muted", wrap=True))
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_list())
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self._build_report())
        right.addWidget(self._build_search())
        right.setSizes([240, 520])
        split.addWidget(right)
        split.setSizes([560, 640])
        split.setStretchFactor(1, 1)
        self.splitter = split
        layout.addWidget(split, 1)
        corpora.changed.connect(self._corpora_changed)
        self._corpora_changed()
        self._set_importing(False)

    # ------------------------------------------------------------------ layout

    def _build_list(self) -> QWidget:
        box = QGroupBox("Corpora in this session")
        v = QVBoxLayout(box)
        self.tree = make_tree(["Corpus / file / document", "Documents", "Chunks", "Size"], widths={1: 84, 2: 64, 3: 76})
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAlternatingRowColors(True)
        self.empty = QWidget()
        ev = QVBoxLayout(self.empty)
        ev.addStretch(1)
        title = plain_label("No reference corpus yet", "heading")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint = hint = plain_label(f"Import {supported_text()} files (or a folder of them) to check reasoning steps against. "
                           "To try the Knowledge Index right away, start with the demo: 55 short clinical reference "
                           "passages written for this app.", "muted", wrap=True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo_button = QPushButton("Import the demo clinical corpus")
        self.demo_button.setProperty("role", "primary")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.demo_button)
        row.addStretch(1)
        for w in (title, hint):
            ev.addWidget(w)
        ev.addSpacing(8)
        ev.addLayout(row)
        ev.addStretch(2)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.tree)
        v.addWidget(self.stack, 1)

        self.target = compact_combo(QComboBox(), 14)
        self.target.setEditable(True)
        self.target.setToolTip("The corpus to import into (a new name creates a corpus)")
        self.target.setEditText("reference")
        row = QHBoxLayout()
        row.addWidget(plain_label("Import into"))
        row.addWidget(self.target, 1)
        self.files_button = QPushButton("Import Files…")
        self.folder_button = QPushButton("Import Folder…")
        row.addWidget(self.files_button)
        row.addWidget(self.folder_button)
        v.addLayout(row)
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(8)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        v.addLayout(row)
        self.status = plain_label("", "muted", wrap=True)
        self.status.hide()
        v.addWidget(self.status)
        row = QHBoxLayout()
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setToolTip("Remove the selected corpus, file or document from this session")
        self.refresh_button = QPushButton("Refresh")
        row.addWidget(self.remove_button)
        row.addStretch(1)
        row.addWidget(self.refresh_button)
        v.addLayout(row)

        self.demo_button.clicked.connect(self.import_demo)
        self.files_button.clicked.connect(self._import_files_dialog)
        self.folder_button.clicked.connect(self._import_folder_dialog)
        self.cancel_button.clicked.connect(self.cancel_import)
        self.remove_button.clicked.connect(self._remove_selected)
        self.refresh_button.clicked.connect(self.corpora.refresh)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        return box

    def _build_report(self) -> QWidget:
        box = QGroupBox("Last import")
        v = QVBoxLayout(box)
        self.report_summary = plain_label("Nothing imported yet in this window.", "muted", wrap=True, selectable=True)
        v.addWidget(self.report_summary)
        self.report_tree = make_tree(["File", "Outcome", "Documents", "Chunks"], widths={1: 90, 2: 84, 3: 64},
                                     uniform_rows=False)
        self.report_tree.setWordWrap(True)
        v.addWidget(self.report_tree, 1)
        return box

    def _build_search(self) -> QWidget:
        box = QGroupBox("Try a search")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.search_corpus = compact_combo(QComboBox(), 10)
        self.query = QLineEdit()
        self.query.setPlaceholderText("A question or a reasoning step, e.g. why does an ACE inhibitor cause a dry cough")
        self.query.setClearButtonEnabled(True)
        self.k = QSpinBox()
        self.k.setRange(1, 50)
        self.k.setValue(5)
        self.k.setToolTip("Passages to return")
        self.search_button = QPushButton("Search")
        row.addWidget(self.search_corpus)
        row.addWidget(self.query, 1)
        row.addWidget(self.k)
        row.addWidget(self.search_button)
        v.addLayout(row)
        self.hits_tree = make_tree(["#", "Source", "Chunk", "Score"], stretch=1, widths={0: 34, 2: 60, 3: 70})
        self.hits_tree.setRootIsDecorated(False)
        self.preview = PassageView()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.hits_tree)
        split.addWidget(self.preview)
        split.setSizes([150, 220])
        v.addWidget(split, 1)
        self.search_button.clicked.connect(self.run_search)
        self.query.returnPressed.connect(self.run_search)
        self.hits_tree.itemSelectionChanged.connect(self._show_hit)
        self.preview.set_items([], "Search results appear here, with the query's matching terms highlighted.")
        return box

    # ------------------------------------------------------------------ list

    def _corpora_changed(self) -> None:
        names = self.corpora.names()
        for combo in (self.search_corpus, self.target):
            current = combo.currentData() if combo is self.search_corpus else combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            for name in names:
                combo.addItem(name, name)
            if combo is self.search_corpus:
                combo.setCurrentIndex(max(0, combo.findData(current)))
            else:
                combo.setEditText(current or (names[0] if names else "reference"))
            combo.blockSignals(False)
        self.search_button.setEnabled(bool(names))
        self.stack.setCurrentIndex(1 if names or not self.corpora.loaded else 0)
        self._serial += 1
        serial = self._serial
        if not names:
            self._fill_tree({}, serial)
            return

        def work(_c: CancelToken) -> dict[str, list[dict]]:
            return self.corpora.session.read(lambda st: {n: list_files(st.db, n) for n in names})

        task = self.corpora.tasks.run("Reading the session's corpora", work, quiet=True)
        task.succeeded.connect(lambda files: self._fill_tree(files, serial))
        task.failed.connect(lambda text: self.message.emit(text, "error"))

    def _fill_tree(self, files: dict[str, list[dict]], serial: int) -> None:
        if serial != self._serial:
            return
        self.files = files
        expanded = {self.tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole)[1]
                    for i in range(self.tree.topLevelItemCount()) if self.tree.topLevelItem(i).isExpanded()}
        selected = self.selected_key()
        if self._pending_select is not None:
            selected, self._pending_select = (CORPUS, self._pending_select, None), None
        self.tree.clear()
        for c in self.corpora.items:
            item = QTreeWidgetItem([c["name"], str(c["documents"]), str(c["chunks"]), human_bytes(int(c["bytes"] or 0))])
            item.setData(0, Qt.ItemDataRole.UserRole, (CORPUS, c["name"], None))
            item.setToolTip(0, rich_tooltip(f"{c['name']}\n{c['files']} files · created {c['created']}"))
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            self._align(item)
            self.tree.addTopLevelItem(item)
            for f in files.get(c["name"], []):
                child = QTreeWidgetItem([f["name"], str(f["documents"]), str(f["chunks"]), human_bytes(int(f["bytes"] or 0))])
                child.setData(0, Qt.ItemDataRole.UserRole, (FILE, c["name"], f["name"]))
                tip = f"{f['name']} ({f['kind']}) · imported {f['imported']}" + "".join(f"\n- {w}" for w in f["warnings"])
                child.setToolTip(0, rich_tooltip(tip))
                self._align(child)
                item.addChild(child)
                if f["kind"] == "jsonl" and f["documents"]:
                    loading = QTreeWidgetItem(["Reading…"])
                    loading.setData(0, Qt.ItemDataRole.UserRole, (MORE, c["name"], None))
                    child.addChild(loading)
            item.setExpanded(c["name"] in expanded or len(self.corpora.items) == 1)
        if selected is not None:
            self.select(*selected)

    @staticmethod
    def _align(item: QTreeWidgetItem) -> None:
        for col in (1, 2, 3):
            item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def _expanded(self, item: QTreeWidgetItem) -> None:
        kind, corpus, name = item.data(0, Qt.ItemDataRole.UserRole)
        if kind != FILE or item.childCount() != 1 or item.child(0).data(0, Qt.ItemDataRole.UserRole)[0] != MORE:
            return
        task = self.corpora.documents(corpus, name, DOC_LIMIT)
        task.succeeded.connect(lambda out, item=item, corpus=corpus: self._fill_documents(item, corpus, *out))
        task.failed.connect(lambda text: self.message.emit(text, "error"))

    def _fill_documents(self, item: QTreeWidgetItem, corpus: str, docs: list[dict], total: int) -> None:
        try:
            item.takeChildren()
        except RuntimeError:
            return  # the tree was refilled meanwhile
        for d in docs:
            label = f"{d['source']}  —  {d['title']}" if d["title"] and d["title"] != d["source"] else d["source"]
            child = QTreeWidgetItem([label, "", str(d["chunks"]), ""])
            child.setData(0, Qt.ItemDataRole.UserRole, (DOC, corpus, d["source"]))
            child.setToolTip(0, rich_tooltip(f"{d['source']}\n{d['title'] or ''}".strip()))
            self._align(child)
            item.addChild(child)
        if total > len(docs):
            more = QTreeWidgetItem([f"… and {total - len(docs)} more documents"])
            more.setData(0, Qt.ItemDataRole.UserRole, (MORE, corpus, None))
            item.addChild(more)

    def selected_key(self) -> tuple[int, str, str | None] | None:
        items = self.tree.selectedItems()
        return tuple(items[0].data(0, Qt.ItemDataRole.UserRole)) if items else None

    def select(self, kind: int, corpus: str, name: str | None = None) -> bool:
        """Select a corpus (or one of its files) in the tree."""
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top.data(0, Qt.ItemDataRole.UserRole)[1] != corpus:
                continue
            candidates = [top] + [top.child(j) for j in range(top.childCount())]
            for item in candidates:
                if tuple(item.data(0, Qt.ItemDataRole.UserRole)) == (kind, corpus, name):
                    self.tree.setCurrentItem(item)
                    return True
        return False

    def _selection_changed(self) -> None:
        key = self.selected_key()
        self.remove_button.setEnabled(key is not None and key[0] in (CORPUS, FILE, DOC))
        if key is not None:
            self.target.setEditText(key[1])
            self.search_corpus.setCurrentIndex(max(0, self.search_corpus.findData(key[1])))

    # ------------------------------------------------------------------ import

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _set_importing(self, busy: bool) -> None:
        for w in (self.files_button, self.folder_button, self.demo_button, self.target, self.remove_button):
            w.setEnabled(not busy)
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy)
        if not busy:
            self._selection_changed()

    def _import_files_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Import reference files", "",
                                                import_filter())
        if paths:
            self.import_paths(self.target.currentText(), paths)

    def _import_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import a folder of reference documents")
        if path:
            self.import_paths(self.target.currentText(), [path])

    def import_demo(self) -> Task:
        """Import the shipped demo corpus (a Task)."""
        return self._start(self.corpora.import_demo(self._progress), DEMO_CORPUS)

    def import_paths(self, name: str, paths: list[str]) -> Task:
        """Import files/folders into corpus ``name`` in the background (a Task)."""
        return self._start(self.corpora.import_paths(name.strip(), paths, self._progress), name.strip())

    def _start(self, task: Task, name: str) -> Task:
        self.import_task = task
        self._set_importing(True)
        self.progress.setRange(0, 0)
        self._set_status(f"{task.title}…")
        task.succeeded.connect(lambda report: self.show_report(report))
        task.succeeded.connect(lambda report: setattr(self, "_pending_select", report.corpus))
        task.succeeded.connect(self.imported)
        task.failed.connect(lambda text: (self._set_status("Import failed; the corpus is unchanged."),
                                          self.message.emit(text, "error")))
        task.cancelled.connect(lambda: self._set_status(f"Import into {name!r} cancelled; the corpus is unchanged."))
        task.finished.connect(self._import_finished)
        return task

    def _import_finished(self) -> None:
        self.import_task = None
        self._set_importing(False)

    def cancel_import(self) -> None:
        if self.import_task is not None:
            self.import_task.cancel()

    def _progress(self, p: Progress) -> None:
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        if p.message and p.message != "done":
            self._set_status(f"Reading {p.message} ({p.done} of {p.total} KiB)…")

    def show_report(self, report: ImportReport) -> None:
        """Show an import's outcome file by file, each message under its file."""
        self.report = report
        self.report_summary.setText(report.summary()[0].upper() + report.summary()[1:])
        self._set_status("")
        self.report_tree.clear()
        colors = theme().colors()
        for f in report.files:
            counted = f.status != "skipped"
            item = QTreeWidgetItem([f.name, f.status, str(f.n_documents) if counted else "",
                                    str(f.n_chunks) if counted else ""])
            item.setForeground(1, QColor(colors[STATUS_COLORS.get(f.status, "text")]))
            item.setToolTip(0, rich_tooltip(f.path))
            self._align(item)
            for m in f.messages:
                child = QTreeWidgetItem([m])
                child.setFirstColumnSpanned(True)
                child.setToolTip(0, rich_tooltip(m))
                item.addChild(child)
            self.report_tree.addTopLevelItem(item)
            item.setFirstColumnSpanned(False)
            item.setExpanded(True)
        level = "error" if report.skipped and not (report.added or report.replaced or report.unchanged) else "info"
        self.message.emit(report.summary()[0].upper() + report.summary()[1:], level)

    def report_rows(self) -> list[tuple[str, str, list[str]]]:
        """(file, outcome, messages) as the report list shows them."""
        out = []
        for i in range(self.report_tree.topLevelItemCount()):
            item = self.report_tree.topLevelItem(i)
            out.append((item.text(0), item.text(1), [item.child(j).text(0) for j in range(item.childCount())]))
        return out

    # ------------------------------------------------------------------ remove

    def _remove_selected(self) -> None:
        key = self.selected_key()
        if key is None or key[0] not in (CORPUS, FILE, DOC):
            return
        kind, corpus, name = key
        if kind == CORPUS:
            c = self.corpora.find(corpus) or {}
            text = (f"Remove the corpus “{corpus}” with its {c.get('documents', 0)} documents and {c.get('chunks', 0)} "
                    "chunks from this session?\n\nKnowledge Index results already saved keep their numbers, but their "
                    "passages can no longer be shown.")
        else:
            what = "file" if kind == FILE else "document"
            text = f"Remove the {what} “{name}” from the corpus “{corpus}”?"
        if confirm(self, "Remove from corpus", text):
            self.corpora.remove(corpus, None if kind == CORPUS else name)

    # ------------------------------------------------------------------ search

    def run_search(self) -> Task | None:
        name, query = self.search_corpus.currentData(), self.query.text()
        if not name or not query.strip():
            return None
        task = self.corpora.search(name, query, self.k.value())
        task.succeeded.connect(lambda hits, q=query: self._show_hits(hits, q))
        task.failed.connect(lambda text: self.message.emit(text, "error"))
        return task

    def _show_hits(self, hits: list[Passage], query: str) -> None:
        self.hits, self.hits_query = list(hits), query
        self.hits_tree.clear()
        for rank, h in enumerate(hits, 1):
            item = QTreeWidgetItem([str(rank), h.where(), str(h.chunk), f"{h.score:.2f}"])
            item.setToolTip(1, rich_tooltip(f"{h.where()}\n{h.title or ''}".strip()))
            for col in (0, 2, 3):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.hits_tree.addTopLevelItem(item)
        if hits:
            self.hits_tree.setCurrentItem(self.hits_tree.topLevelItem(0))
        else:
            self.preview.set_items([], "No passage matches this query.")

    def _show_hit(self) -> None:
        row = self.hits_tree.indexOfTopLevelItem(self.hits_tree.currentItem()) if self.hits_tree.currentItem() else -1
        if not 0 <= row < len(self.hits):
            return
        h = self.hits[row]
        q = self.hits_query
        title = shown_title(h)
        self.preview.set_items([PassageItem(passage_heading(row + 1, h), h.text, title, match_spans(h.text, q),
                                            match_spans(title or "", q))])
