"""Dashboard: run a batch evaluation and compare its models (does fine-tuning improve reasoning or just answers?).

Left: the batch-run form (:class:`BatchForm`). Right: the dashboard of one batch run of the session
(the latest unless another is chosen): the finding sentence, the per-model table (every metric as
"mean [lo, hi]" with its 95% bootstrap interval), the paired differences B − A of a chosen pair with
a forest chart, accuracy against mean InfoGain per model, and the per-item table whose cells open
their chain in the Results view. The numbers are ``dashboard.summarize`` (2,000 resamples, seed 0),
computed off the GUI thread; "Export HTML report…" writes exactly what ``kiig report`` writes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...errors import KiigError
from ...events import CancelToken
from ...files import write_private_text
from ...reports.html import render_html
from ...reports.summary import (
    METRICS,
    BatchReport,
    batch_runs,
    chain_details,
    finding,
    fmt_estimate,
    paper_note,
    summarize,
)
from ..review.review_summary import review_label, show_reviews
from ..shared.corpora import Corpora
from ..shared.engines import Engines
from ..shared.judge_note import gui_summary, show_validation, validation_label
from ..shared.session_file import SessionFile
from ..shared.theme import theme
from ..shared.widgets import EmptyState, FormArea, PlotFrame, compact_combo, plain_label, scrollable
from ..shared.workers import Task, TaskManager
from .batch_form import BatchForm
from .dashboard_figures import ForestFigure, ScatterFigure
from .dashboard_tables import ItemsTable, ModelsTable, PairsTable, letter

REFRESH_DEBOUNCE_MS = 800
READ_TITLE = "Reading the session's batch runs"


def finding_text(report: BatchReport, a: str | None, b: str | None) -> str:
    """The dashboard's headline: the comparison of B with A, or one model's numbers."""
    if not report.models:
        return "This run has no subject model."
    if len(report.models) == 1 or a is None or b is None:
        m = report.models[0]
        text = (f"{m.name}: accuracy {fmt_estimate('accuracy', m.metrics['accuracy'])} on {m.metrics['accuracy'].n} items, "
                f"mean InfoGain {fmt_estimate('info_gain_mean', m.metrics['info_gain_mean'])}")
        if m.metrics["ki_mean"].n:
            text += f", mean KI {fmt_estimate('ki_mean', m.metrics['ki_mean'])}"
        return text + f" ({100 * report.level:.0f}% bootstrap intervals). Run a second model to compare."
    if a == b:
        return "Choose two different models to compare."
    missing = [m.name for m in (report.model(b), report.model(a)) if m.n_chains == 0]
    if missing:
        status = report.run.get("status")
        why = "the run is still going" if status == "running" else f"the run is {status}; run it again to resume it"
        return f"No comparison yet: {' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} no results ({why})."
    return finding(report, a, b)


def html_report(store, run_id: int, report: BatchReport | None = None, palette: str = "blue-orange") -> str:
    """``kiig report --db FILE --run RUN --format html``: the same numbers, drill-down included.

    ``report``: the run's summary when the caller already has it (the bootstrap is not redone).
    """
    report = report if report is not None else summarize(store, run_id)
    return render_html(report, chain_details(store, report), palette)


class DashboardView(QWidget):
    """The batch form beside the dashboard of one batch run."""

    message = Signal(str, str)
    open_chain = Signal(int, int)  # run id, chain id

    def __init__(self, engines: Engines, session: SessionFile, tasks: TaskManager, corpora: Corpora,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engines, self.session, self.tasks = engines, session, tasks
        self.runs: list[dict] = []
        self.report: BatchReport | None = None
        self.run_id: int | None = None  # the run to show (None: the latest)
        self.pending = False
        self._serial = 0
        self._dirty = True
        self.form = BatchForm(engines, session, tasks, corpora)
        self._build()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.reload)
        self.form.message.connect(self.message)
        self.form.run_started.connect(self._run_started)
        self.form.item_done.connect(self._item_done)
        self.form.run_ended.connect(self._run_started)
        session.opened.connect(self._session_opened)
        session.changed.connect(self._session_changed)
        theme().changed.connect(self._theme_changed)  # a bound slot: disconnected when the view goes

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.run_combo = compact_combo(QComboBox(), 14)  # narrow: the Export button stays in view beside the Models dock
        self.run_combo.setToolTip("The session's batch runs, newest first")
        self.refresh_button = QPushButton("Refresh")
        self.export_button = QPushButton("Export HTML report…")
        self.export_button.setToolTip("The same self-contained report as `kiig report --format html`: tables, charts, "
                                      "per-item results and every chain")
        self.busy = plain_label("", "muted")
        head = QHBoxLayout()
        head.addWidget(plain_label("Batch run", "heading"))
        head.addWidget(self.run_combo, 1)
        head.addWidget(self.refresh_button)
        head.addWidget(self.busy)
        head.addStretch(0)
        head.addWidget(self.export_button)

        card = QFrame()
        card.setProperty("role", "card")
        c = QVBoxLayout(card)
        c.setContentsMargins(12, 8, 12, 8)
        self.finding = plain_label("", wrap=True, selectable=True)
        self.finding.setStyleSheet("font-size: 13.5px; font-weight: 600;")
        self.caption = plain_label("", "muted", wrap=True, selectable=True)
        c.addWidget(self.finding)
        c.addWidget(self.caption)
        self.build_warning = validation_label()  # different llama.cpp builds or backends in one run
        c.addWidget(self.build_warning)
        self.judge_note = validation_label()  # the KI judge's validation score, or a warning
        c.addWidget(self.judge_note)
        self.review_note = review_label()  # clinician review progress and agreement
        c.addWidget(self.review_note)

        self.models_table = ModelsTable()
        self.paper_note = plain_label("", "muted", wrap=True, selectable=True)
        self.pair_a, self.pair_b = compact_combo(QComboBox(), 12), compact_combo(QComboBox(), 12)
        self.pairs_table = PairsTable()
        self.forest = ForestFigure()
        self.forest.setMinimumHeight(250)
        self.forest_frame = PlotFrame("Paired differences, B − A",
                                      "Mean difference with its 95% interval, each metric on its own scale. Blue: higher, "
                                      "orange: lower, grey: the interval includes 0; ⚠ n: fewer than 10 paired items.", self.forest)
        self.scatter = ScatterFigure()
        self.scatter.setMinimumHeight(220)  # readable axes below its legend
        self.scatter_frame = PlotFrame("Accuracy against mean InfoGain",
                                       "One point per model with both 95% intervals. Up and to the right: answers better "
                                       "and reasons more informatively; up and to the left: answers better with less "
                                       "informative steps.", self.scatter)
        summary = QWidget()
        sv = QVBoxLayout(summary)
        sv.setContentsMargins(0, 6, 0, 0)
        sv.addWidget(self.models_table)
        sv.addWidget(self.paper_note)
        sv.addWidget(self.scatter_frame, 1)

        pair_box = QWidget()
        pv = QVBoxLayout(pair_box)
        pv.setContentsMargins(0, 6, 0, 0)
        row = QHBoxLayout()
        row.addWidget(plain_label("Compare B"))
        row.addWidget(self.pair_b, 1)
        row.addWidget(plain_label("with A"))
        row.addWidget(self.pair_a, 1)
        pv.addLayout(row)
        table_box = QWidget()
        tv = QVBoxLayout(table_box)
        tv.setContentsMargins(0, 0, 0, 0)
        tv.addWidget(self.pairs_table)
        tv.addWidget(plain_label("Each difference is B minus A per item (items matched by id), bootstrapped over the "
                                 "items, so item difficulty cancels. “higher” / “lower”: the 95% interval excludes 0. "
                                 "The finding above follows the chosen pair.", "muted", wrap=True))
        tv.addStretch(1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(table_box)
        split.addWidget(self.forest_frame)
        split.setSizes([500, 400])
        pv.addWidget(split, 1)
        self.one_model = EmptyState("One model in this run",
                                    "Paired differences need two models that answered the same items. Check two or more "
                                    "subject models on the left and run the batch again.")
        self.pair_stack = QStackedWidget()
        self.pair_stack.addWidget(pair_box)
        self.pair_stack.addWidget(self.one_model)

        self.items_table = ItemsTable()
        self.items_legend = plain_label("", "muted", wrap=True)
        items = QWidget()
        iv = QVBoxLayout(items)
        iv.setContentsMargins(0, 6, 0, 0)
        iv.addWidget(self.items_legend)
        iv.addWidget(self.items_table, 1)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # the summary scrolls on short windows: its table, note and plot keep their minimum heights
        # (a vertical layout squeezed below them drew the note over the table's last rows)
        self.tabs.addTab(scrollable(summary), "Models")
        self.tabs.addTab(self.pair_stack, "Paired differences")
        self.tabs.addTab(items, "Items")
        body = QWidget()
        bv = QVBoxLayout(body)
        bv.setContentsMargins(0, 0, 0, 0)
        bv.addWidget(card)
        bv.addWidget(self.tabs, 1)
        self.empty = EmptyState("No batch run in this session yet",
                                "Choose a dataset and the models to compare on the left, then Run batch. Every chain is "
                                "saved as it completes and the dashboard fills in as the run goes. Runs started with "
                                "`kiig run --db` on this session file show up here too.")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(body)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 0, 0, 0)
        rv.addLayout(head)
        rv.addWidget(self.stack, 1)

        form_area = FormArea(self.form)  # no control hides at the edge
        form_area.setMinimumWidth(340)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(form_area)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([370, 1000])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.addWidget(self.splitter)

        self.run_combo.activated.connect(lambda _i: self.select_run(self.run_combo.currentData()))
        self.refresh_button.clicked.connect(lambda: self.reload())
        self.export_button.clicked.connect(self.export_dialog)
        self.pair_a.activated.connect(lambda _i: self._show_pair())
        self.pair_b.activated.connect(lambda _i: self._show_pair())
        self.items_table.chain_activated.connect(self._chain_activated)
        self.forest_frame.export_requested.connect(lambda fmt: self.export_figure(self.forest, "differences", fmt))
        self.scatter_frame.export_requested.connect(lambda fmt: self.export_figure(self.scatter, "accuracy-infogain", fmt))
        self.show_report(None)

    # ------------------------------------------------------------------ loading

    def select_run(self, run_id: int | None) -> Task | None:
        self.run_id = run_id
        return self.reload()

    def reload(self) -> Task | None:
        """Reread the batch runs and summarize the chosen one (bootstrap included) off the GUI thread."""
        self._timer.stop()
        if self.session.store is None:
            self._loaded(self._serial, [], None)
            return None
        self._dirty = False
        self._serial += 1
        serial, wanted = self._serial, self.run_id

        def read(store) -> tuple[list[dict], BatchReport | None]:
            runs = batch_runs(store)
            ids = [r["id"] for r in runs]
            chosen = wanted if wanted in ids else (ids[-1] if ids else None)
            return runs, (summarize(store, chosen) if chosen is not None else None)

        self.pending = True
        self.busy.setText("Updating…")
        task = self.tasks.run(READ_TITLE, lambda _c: self.session.read(read), quiet=True)
        task.succeeded.connect(lambda out: self._loaded(serial, *out))
        task.failed.connect(lambda text: self._failed(serial, text))
        return task

    def _failed(self, serial: int, text: str) -> None:
        if serial == self._serial:
            self.pending = False
            self.busy.setText("")
            self.message.emit(text, "error")

    def _loaded(self, serial: int, runs: list[dict], report: BatchReport | None) -> None:
        if serial != self._serial:
            return  # a newer read is under way
        self.pending = False
        self.busy.setText("")
        self.runs = runs
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in reversed(runs):
            n = int(run.get("n_chains") or 0)
            when = str(run.get("started") or "")[:16].replace("T", " ")
            self.run_combo.addItem(f"{run.get('name') or 'batch'} · run {run['id']} · {run['status']} · "
                                   f"{n} chain{'' if n == 1 else 's'} · {when}", run["id"])
        if report is not None:
            self.run_combo.setCurrentIndex(self.run_combo.findData(report.run["id"]))
        self.run_combo.blockSignals(False)
        self.show_report(report)

    # ------------------------------------------------------------------ showing

    def show_report(self, report: BatchReport | None) -> None:
        previous = (self.pair_a.currentData(), self.pair_b.currentData())
        self.report = report
        self.stack.setCurrentIndex(1 if report is not None else 0)
        self.export_button.setEnabled(report is not None)
        self.run_combo.setEnabled(bool(self.runs))
        if report is None:
            return
        run, settings = report.run, report.run.get("settings") or {}
        scorer = ((run.get("roles") or {}).get("scorer") or {}).get("name")
        n_items = len(report.item_ids())
        ki = settings.get("ki")
        self.caption.setText(
            f"Run {run['id']} ({run.get('status')}) · {n_items} of {settings.get('n_items', '?')} items answered · "
            f"{len(report.models)} model{'s' if len(report.models) != 1 else ''} · scorer {scorer}"
            + (f" · KI with corpus {ki.get('corpus')}" if ki else " · no KI")
            + f" · {100 * report.level:.0f}% bootstrap intervals ({report.n_boot} resamples, seed {report.seed})")
        show_validation(self.build_warning, report.build_warning and {"note": report.build_warning, "warning": True})
        judge = gui_summary(report.judge_validation)
        show_validation(self.judge_note, judge and {**judge, "note": "KI judge — " + judge["note"]})
        show_reviews(self.review_note, report.reviews)
        self.models_table.set_report(report)
        self.paper_note.setText(paper_note(report))
        keys = [m.key for m in report.models]
        keep = previous[0] != previous[1] and all(k in keys for k in previous)  # the same pair in this run
        for combo, default, key in ((self.pair_a, 0, previous[0]), (self.pair_b, 1, previous[1])):
            combo.clear()
            for i, m in enumerate(report.models):
                combo.addItem(f"{letter(i)} · {m.name}", m.key)
            combo.setCurrentIndex(keys.index(key) if keep else min(default, combo.count() - 1))
        self.pair_stack.setCurrentIndex(0 if len(report.models) > 1 else 1)
        self.scatter.set_models([(m.name, m.metrics["accuracy"], m.metrics["info_gain_mean"]) for m in report.models])
        self.items_table.set_report(report)
        legend = " · ".join(f"{letter(i)} = {m.name}" for i, m in enumerate(report.models))
        self.items_legend.setText(f"{legend}. Double-click a cell to open that model's chain in Results; click a header "
                                  "to sort.")
        self._show_pair()

    def _theme_changed(self) -> None:
        self.show_report(self.report)

    def pair_keys(self) -> tuple[str | None, str | None]:
        """The chosen ``(A, B)`` model keys (B − A is shown)."""
        return self.pair_a.currentData(), self.pair_b.currentData()

    def _show_pair(self) -> None:
        report = self.report
        if report is None:
            return
        a, b = self.pair_keys()
        two = len(report.models) > 1 and a is not None and b is not None and a != b
        pairs = [p for p in (report.pair(a, b, m.key) for m in METRICS) if p is not None] if two else []
        self.pairs_table.set_pairs(pairs, report.level)
        self.forest.set_pairs(pairs)
        self.finding.setText(finding_text(report, a, b))

    # ------------------------------------------------------------------ events

    def _session_opened(self, _path: str) -> None:
        self.run_id = None
        self._session_changed()

    def _session_changed(self) -> None:
        if self.isVisible():
            self.reload()
        else:
            self._dirty = True

    def _run_started(self, run_id: int) -> None:
        self.run_id = run_id
        self._session_changed()

    def _item_done(self, run_id: int) -> None:
        if self.run_id in (None, run_id):
            if self.isVisible():
                self._timer.start(REFRESH_DEBOUNCE_MS)
            else:
                self._dirty = True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._dirty:
            self.reload()

    def _chain_activated(self, chain_id: int) -> None:
        if self.report is not None:
            self.open_chain.emit(int(self.report.run["id"]), chain_id)

    # ------------------------------------------------------------------ export

    def export_dialog(self) -> None:
        if self.report is None:
            return
        run_id = int(self.report.run["id"])
        path, _ = QFileDialog.getSaveFileName(self, "Export HTML report", f"kiig-report-run{run_id}.html",
                                              "HTML report (*.html)")
        if path:
            self.export_html(run_id, path if path.lower().endswith((".html", ".htm")) else path + ".html")

    def export_html(self, run_id: int, path: str) -> Task:
        """Write run ``run_id``'s report (as ``kiig report --format html``) to ``path`` off the GUI thread."""
        out = Path(path)

        def work(_c: CancelToken) -> str:
            shown = self.report if self.report is not None and int(self.report.run["id"]) == run_id else None
            palette = theme().palette  # the colours chosen in View → Colours
            text = self.session.read(lambda st: html_report(st, run_id, shown, palette))
            return str(write_private_text(out, text, keep=(self.session.path,)))

        task = self.tasks.run(f"Writing the report of run {run_id}", work)
        task.succeeded.connect(lambda p: self.message.emit(f"Report saved to {p}", "info"))
        task.failed.connect(lambda text: self.message.emit(text, "error"))
        return task

    def export_figure(self, figure, name: str, fmt: str) -> None:
        run = self.report.run["id"] if self.report is not None else 0
        path, _ = QFileDialog.getSaveFileName(self, f"Export plot as {fmt.upper()}", f"kiig-{name}-run{run}.{fmt}",
                                              "PNG image (*.png)" if fmt == "png" else "SVG drawing (*.svg)")
        if path:
            try:
                written = figure.export(path if path.lower().endswith("." + fmt) else path + "." + fmt)
            except KiigError as exc:  # an unwritable folder, a planted .part link
                self.message.emit(str(exc), "error")
                return
            self.message.emit(f"Plot saved to {written}", "info")
