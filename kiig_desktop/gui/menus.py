"""The main window's menu bar: every command, its shortcut and status tip, in one place.

Menu commands call the views' own methods (after showing their tab), so the menus hold no logic
of their own; ``build_menus`` also keeps the menus the window reads later (recent sessions, the
View menu that docks add to, the checkable theme and palette actions).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QApplication, QMainWindow, QMenu, QWidget

from .shared.help_dialog import open_metric_help

# ``window`` below is the MainWindow (typed by its Qt base: this module must not import main_window,
# which imports it).
MainWindow = QMainWindow


def add_action(owner: QWidget, menu: QMenu, text: str, slot: Callable, shortcut=None, tip: str = "") -> QAction:
    """A menu command owned by ``owner`` (so its shortcut works wherever the window has focus)."""
    action = QAction(text, owner)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


def _on_tab(window: MainWindow, key: str, command: Callable[[], object]) -> None:
    """Show the tab a command acts on, then run it (a menu command run from another tab)."""
    window.show_view(key)
    command()


def step_delta(window: MainWindow, delta: int) -> None:
    """Edit → Previous / Next Step: move the Results selection (from either end when none)."""
    results = window.results
    if results.result is None:
        return
    n = len(results.result.record.get("steps") or [])
    current = results.selected if results.selected is not None else (-1 if delta > 0 else n)
    results.select_step(max(0, min(n - 1, current + delta)))


def build_menus(window: MainWindow) -> None:
    """File, Edit, Analysis, View and Help."""

    def add(menu: QMenu, text: str, slot: Callable, shortcut=None, tip: str = "") -> QAction:
        return add_action(window, menu, text, slot, shortcut, tip)

    mb = window.menuBar()
    f = mb.addMenu("&File")
    add(f, "&New Session", window.new_session, QKeySequence.StandardKey.New, "Start a new session file")
    add(f, "&Open Session…", window.open_session_dialog, QKeySequence.StandardKey.Open)
    window.recent_menu = f.addMenu("Open &Recent")
    add(f, "Save Session &As…", window.save_as_dialog, QKeySequence.StandardKey.SaveAs,
        "Copy the session to a file of your choice and continue there")
    f.addSeparator()
    add(f, "Add &Model…", window.models_panel.add_dialog, "Ctrl+Shift+M", "Add a GGUF model file")
    add(f, "&Import Reasoning Text…", window.analyze.import_dialog, "Ctrl+I")
    export = f.addMenu("&Export")
    for key, title in (("answer", "Answer Plot"), ("tokens", "Token Plot"), ("options", "Options Plot")):
        add(export, f"{title} as PNG…", lambda _=False, k=key: window.results.export_dialog(k, "png"))
        add(export, f"{title} as SVG…", lambda _=False, k=key: window.results.export_dialog(k, "svg"))
    export.addSeparator()
    add(export, "Steps Table as TSV…", window.export_table_dialog)
    add(export, "Current Run as CSV / JSONL…", window.export_run_dialog)
    f.addSeparator()
    add(f, "&Quit", window.close, "Ctrl+Q")

    e = mb.addMenu("&Edit")
    add(e, "&Copy Steps Table (TSV)", window.results.copy_table, "Ctrl+Shift+C")
    add(e, "Previous Step", lambda: step_delta(window, -1), "Ctrl+Up")
    add(e, "Next Step", lambda: step_delta(window, 1), "Ctrl+Down")
    e.addSeparator()
    add(e, "Cancel Running Task", window.cancel_current, "Esc")

    a = mb.addMenu("&Analysis")
    add(a, "&Generate Reasoning", lambda: _on_tab(window, "analyze", window.analyze.generate), "Ctrl+G")
    add(a, "&Split into Steps", lambda: _on_tab(window, "analyze", window.analyze.split), "Ctrl+L")
    add(a, "S&core Chain", lambda: _on_tab(window, "analyze", window.analyze.score), "Ctrl+Return")
    add(a, "Run &Comparison", lambda: _on_tab(window, "compare", window.compare.run_comparison), "Ctrl+Shift+Return")
    add(a, "&Knowledge Index…", window.show_knowledge_index, "Ctrl+K",
        "Score the shown chain's steps against a reference corpus and read the evidence")
    add(a, "Check KI &Judge", lambda: (window.show_knowledge_index(), window.ki_panel.check_judge()), "Ctrl+Shift+J",
        "Measure how well the judge behind the shown KI tells supported from unsupported claims (AUROC)")
    a.addSeparator()
    add(a, "Run &Batch", lambda: _on_tab(window, "dashboard", window.dashboard.form.run), "Ctrl+B",
        "Run the batch the Dashboard's form describes (or resume it)")
    add(a, "Export HTML &Report…", lambda: _on_tab(window, "dashboard", window.dashboard.export_dialog), "Ctrl+Shift+H",
        "The Dashboard's batch run as a self-contained HTML report")

    window.view_menu = v = mb.addMenu("&View")
    for i, (key, title) in enumerate((("analyze", "Analyze"), ("results", "Results"), ("compare", "Compare"),
                                      ("sessions", "Sessions"), ("corpora", "Corpora"), ("dashboard", "Dashboard"))):
        add(v, title, lambda _=False, k=key: window.show_view(k), f"Ctrl+{i + 1}")
    v.addSeparator()
    for dock in window.docks.values():
        v.addAction(dock.toggleViewAction())
    themes = v.addMenu("&Theme")
    group = QActionGroup(window)
    window.theme_actions = {}
    for mode, title in (("system", "Follow System"), ("light", "Light"), ("dark", "Dark")):
        act = add(themes, title, lambda _=False, m=mode: window.set_theme(m))
        act.setCheckable(True)
        group.addAction(act)
        window.theme_actions[mode] = act
    colours = v.addMenu("&Colours for Signed Metrics")
    group = QActionGroup(window)
    window.palette_actions = {}
    for name, title in (("blue-orange", "Blue / Orange (colour-blind safe)"), ("red-green", "Red / Green")):
        act = add(colours, title, lambda _=False, n=name: window.set_palette(n))
        act.setCheckable(True)
        group.addAction(act)
        window.palette_actions[name] = act
    v.addSeparator()
    add(v, "&Present Chain", window.present, "F5",
        "The shown chain full screen for a review: arrow keys walk the steps, Esc leaves")
    add(v, "Collapse / Expand Models Panel", window.toggle_models_strip, "Ctrl+Shift+D")
    add(v, "Reset Layout", window.reset_layout)

    h = mb.addMenu("&Help")
    add(h, "&Metric Definitions", lambda: open_metric_help(window),
        tip="What InfoGain, ΔNLL, perplexity, option entropy and KI measure (shipped with the app, offline)")
    add(h, "&About KIIG Desktop", window.about, "F1")
    add(h, "About &Qt", QApplication.aboutQt)
    rebuild_recent(window)


def rebuild_recent(window: MainWindow) -> None:
    """File → Open Recent from the session's list of recent files."""
    window.recent_menu.clear()
    recent = window.session.recent()
    for path in recent:
        add_action(window, window.recent_menu, path, lambda _=False, p=path: window.open_session(p))
    if recent:
        window.recent_menu.addSeparator()
        add_action(window, window.recent_menu, "Clear Recent", window.session.clear_recent)
    window.recent_menu.setEnabled(bool(recent))
