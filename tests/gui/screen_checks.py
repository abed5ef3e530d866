"""What the screen tests check on every main screen, shared by the in-process tests and the run
under real 150% scaling (a subprocess started with ``QT_SCALE_FACTOR=1.5``, as a user gets it).

    QT_SCALE_FACTOR=1.5 QT_QPA_PLATFORM=offscreen python -m tests.gui.screen_checks OUT.json [SHOTS_DIR]

opens a long stored chain in a 1280x720 window (a 1920x1080 screen at 150%) and writes the
problems found on each screen, the window's device pixel ratio and the size of its grabbed image.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QApplication,
    QLabel,
    QScrollArea,
    QScrollBar,
    QSplitterHandle,
    QStackedWidget,
    QWidget,
)

from kiig_desktop.gui.results.plots_pane import PLOT_MIN_HEIGHT
from kiig_desktop.runs.analysis import Question

from .records import fake_record, store_fake_chain
from .test_dashboard import store_batch_run

SCALED_SIZE = (1280, 720)  # logical size of a 1920x1080 screen at 150%
RESULTS_DATA_HEIGHT = 90  # px: a Results plot's data area under its legend (the curves, not the frame)
PRESENT_PLOT_HEIGHT = 150  # px: a presented plot's least height (readable axes, legend beside the data)
LONG_STEPS = [
    "The patient is a 58-year-old with newly diagnosed type 2 diabetes, an HbA1c of 8.1% and normal kidney function.",
    "Guidelines recommend metformin as first-line therapy unless contraindicated, together with lifestyle changes.",
    "Insulin is kept for very high glucose, symptomatic hyperglycaemia, or when oral agents have failed.",
    "Sulfonylureas such as glipizide are second-line because of hypoglycaemia and weight gain.",
    "So the answer is B.",
]
FOUR = Question("Which drug is first-line for a newly diagnosed adult with type 2 diabetes and normal kidney function?",
                "Metformin", {"A": "Insulin", "B": "Metformin", "C": "Glipizide", "D": "Sitagliptin"}, "B")


def too_small(window) -> list[str]:
    """Visible widgets narrower or lower than their minimum size hint (what would clip or overprint)."""
    bad = []
    for w in window.findChildren(QWidget):
        # a stack's hint includes its hidden pages; the page on show is checked by itself
        if not w.isVisible() or w.window() is not window or isinstance(w, (QScrollBar, QSplitterHandle, QStackedWidget)):
            continue
        if w.objectName().startswith("qt_"):  # Qt's own parts (a spin box's line edit) follow their owner
            continue
        policy = w.sizePolicy()
        if QWidget in (type(w),) or w.parentWidget() is None:
            continue
        hint = w.minimumSizeHint()
        if not hint.isValid():
            continue
        # Ignored size policies shrink on purpose (they elide, e.g. ElidedLabel); scroll areas scroll.
        too_narrow = (w.width() + 1 < hint.width() and policy.horizontalPolicy().name != "Ignored"
                      and not isinstance(w.parentWidget(), QAbstractScrollArea))
        need = hint.height()
        # wrapped text: what it needs at its actual width (a stack inside counts its hidden pages: skip)
        if w.hasHeightForWidth() and not w.findChildren(QStackedWidget):
            need = (w.layout().totalMinimumHeightForWidth(w.width()) if w.layout() is not None
                    else w.heightForWidth(w.width()))
        too_low = (w.height() + 1 < max(need, w.minimumHeight()) and policy.verticalPolicy().name != "Ignored"
                   and not isinstance(w.parentWidget(), QAbstractScrollArea))
        if isinstance(w, QScrollArea) and w.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff \
                and w.widget() is not None and w.viewport().width() + 1 < w.widget().minimumSizeHint().width():
            bad.append(f"{type(w.widget()).__name__} cut at the right: {w.viewport().width()} < "
                       f"{w.widget().minimumSizeHint().width()}")
        if (too_narrow or too_low) and in_view(w):
            name = w.objectName() or type(w).__name__
            text = w.text()[:30] if isinstance(w, QLabel) else ""
            bad.append(f"{name} {text!r} {w.width()}x{w.height()} < {hint.width()}x{max(need, w.minimumHeight())}")
    return bad


def in_view(w: QWidget) -> bool:
    """Whether ``w`` lies inside the window (a widget scrolled out of a page is not clipped)."""
    return w.visibleRegion().boundingRect().width() > 0


def _layout_widgets(layout) -> list[QWidget]:
    out = []
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item.widget() is not None:
            out.append(item.widget())
        elif item.layout() is not None:
            out += _layout_widgets(item.layout())
    return out


def overlapping(window) -> list[str]:
    """Visible widgets laid out by the same layout that cover each other (a box squeezed below
    its minimum is moved over its neighbour, which no size check sees)."""
    bad = []
    for w in [window, *window.findChildren(QWidget)]:
        if w.layout() is None or not w.isVisible() or w.window() is not window:
            continue
        kids = [k for k in _layout_widgets(w.layout()) if k.isVisible()]
        for i, a in enumerate(kids):
            for b in kids[i + 1:]:
                if a.geometry().intersects(b.geometry()) and in_view(a) and in_view(b):
                    bad.append(f"{type(a).__name__} {a.geometry().getRect()} overlaps {type(b).__name__} {b.geometry().getRect()}")
    return bad


def open_long_chain(window, wait_until: Callable[[Callable[[], bool]], None]) -> None:
    """Store a five-step chain with long steps, open it in Results and set its question in Analyze;
    store a one-model batch run too, so the Dashboard shows its table, note and plot."""
    store_batch_run(window.session, ["SmolLM2-135M-Instruct Q4_1"], n_items=3)
    record = fake_record(LONG_STEPS, reasoning="\n".join(LONG_STEPS))
    run_id, chain_id = store_fake_chain(window.session, record, FOUR)
    window.sessions.open_requested.emit(run_id, chain_id)
    wait_until(lambda: window.results.result is not None and not window.results.pending)
    window.analyze.form.set_question(FOUR)


def add_ki(window, chain_id: int, auroc: float | None = 0.5, judge: dict | None = None) -> None:
    """A stored KI evaluation of the chain's steps by ``judge`` (a model's path and sha256), whose check
    measured ``auroc`` (0.5: chance; None: never checked), as ``kiig ki`` and ``kiig judge-check`` leave them."""
    from kiig_desktop.files import file_sha256
    from kiig_desktop.store import judge_validation

    judge = judge or {"path": "/models/judge-chance.gguf", "sha256": "9" * 64}

    def add(store):
        texts = [s["text"] for s in store.load_chain(chain_id, curve=False).get("steps") or []]
        ki_steps = [{"index": i, "text": t, "applicable": True, "ki": 0.55 + 0.05 * (i % 3),
                     "reason": "states a factual claim", "evidence": []} for i, t in enumerate(texts)]
        store.save_ki(chain_id, store.ensure_model(judge), "demo", ki_steps, 0.6, {"mode": "probability", "k": 3, "method": 1})

    window.session.write(add)
    if auroc is not None:
        judge_validation.save({"model": judge, "method": 1, "claims_sha256": file_sha256(judge_validation.claims_path()),
                               "auroc": auroc, "auroc_ci": [auroc - 0.12, auroc + 0.12], "accuracy": 0.5,
                               "accuracy_ci": [0.38, 0.62], "n": 64, "k": 3})


def screen_problems(window, settle: Callable[[], None], shots: str | None = None, tag: str = "") -> dict[str, list[str]]:
    """Show every main screen; what is clipped or scrolls sideways on each (saved as PNG to ``shots``)."""
    problems: dict[str, list[str]] = {}
    for key in window.views:
        window.show_view(key)
        settle()
        if shots:
            window.grab().save(os.path.join(shots, f"{key}-{tag}.png"))
        found = too_small(window) + overlapping(window)
        page = window.tabs.currentWidget()
        if page.horizontalScrollBar().maximum() > 0:  # a control behind a horizontal scroll bar
            found.append(f"the page scrolls sideways by {page.horizontalScrollBar().maximum()} px")
        if found:
            problems[key] = found
    return problems


def results_problems(window) -> list[str]:
    """On the Results screen: elided header cards, plots below their readable height, a narrow Step column."""
    results = window.results
    found = [f"card {key} elided: {card.value.text()!r} in {card.value.width()} px"
             for key, card in results.cards.items() if card.elided()]
    found += [f"{type(fig).__name__} only {fig.height()} px high" for fig in results.figures()
              if fig.isVisibleTo(results) and fig.height() < PLOT_MIN_HEIGHT]
    found += [f"{type(fig).__name__}'s data area only {panel.vb.sceneBoundingRect().height():.0f} px high"
              for fig in (results.token_fig, results.options_fig) for panel in fig.panels
              if fig.isVisibleTo(results) and panel.vb.sceneBoundingRect().height() < RESULTS_DATA_HEIGHT]
    table = results.table
    text_col = next(i for i, c in enumerate(table.steps_model.columns) if c.key == "text")
    if table.columnWidth(text_col) < 180:  # the Step column must read, not "1. T…"
        found.append(f"Step column {table.columnWidth(text_col)} px")
    return found


def present_long_chain(window, size: tuple[int, int], wait_until: Callable[[Callable[[], bool]], None], spin):
    """Present the long chain, its header numbers as wide as a real chain's (perplexities in the hundreds)
    and with KI from a judge at chance, in a window of ``size``, at step 3."""
    record = fake_record(LONG_STEPS, reasoning="\n".join(LONG_STEPS))
    record["baseline"]["answer_ppl"], record["steps"][-1]["answer_ppl"] = 393.07, 426.52
    record["info_gain_mean"], record["delta_nll_mean"] = -166.751, -0.6263
    record["id"] = "fake-wide"  # a chain of its own, not the one on display saved again
    run_id, chain_id = store_fake_chain(window.session, record, FOUR)
    window.sessions.open_requested.emit(run_id, chain_id)
    wait_until(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
               and not window.results.pending)
    add_ki(window, chain_id, 0.5)
    with window.session.reader() as store:
        window.results.set_ki(chain_id, store.load_ki(chain_id))
    show = window.present()
    wait_until(lambda: not show.view.pending and show.step_title.text().startswith("Step"))
    show.showNormal()  # the offscreen screen is not the size under test: the window takes it
    show.resize(*size)
    spin()
    show.show_step(2)
    spin()
    return show


def presentation_problems(show, size: tuple[int, int]) -> list[str]:
    """Presentation mode at ``size``: the window fits, nothing clipped or overlapping, the table shows
    several rows, the plots keep a real height, the KI caveat is on the card and the slide's strip."""
    found = too_small(show) + overlapping(show)
    if (show.width(), show.height()) != tuple(size):
        found.append(f"the window needs {show.width()}x{show.height()}, more than {size[0]}x{size[1]}")
    view = show.view
    table = view.table
    rows = table.viewport().height() / max(1, table.rowHeight(0))
    if rows < 3:
        found.append(f"the steps table shows {rows:.1f} rows")
    bar = table.horizontalScrollBar()
    if bar.maximum() > 0:
        found.append(f"the steps table scrolls sideways by {bar.maximum()} px")
    for fig in view.figures():
        visible = fig.visibleRegion().boundingRect().height()
        if fig.isVisibleTo(view) and min(fig.height(), visible) < PRESENT_PLOT_HEIGHT:
            found.append(f"{type(fig).__name__} shows {min(fig.height(), visible)} px")
    # the data area itself (legend and axes take the rest): a real height on a large screen, and enough
    # on a small one that the y-axis labels stay apart
    least = 150 if size[1] >= 1000 else 40
    for fig in (view.token_fig, view.options_fig):
        for panel in fig.panels:
            data = panel.vb.sceneBoundingRect().height()
            if fig.isVisibleTo(view) and data < least:
                found.append(f"{type(fig).__name__}'s data area is {data:.0f} px high")
    for button in (show.export_button, *(f.export_button for f in view.frames.values() if f.isVisibleTo(view))):
        if button.visibleRegion().boundingRect().width() < button.width():
            found.append(f"{button.text()} cut off")
    card = view.cards["ki"]
    note = getattr(card, "note", None)  # the caveat's line under the caption
    if note is None or "AUROC 0.50" not in note.text() or not note.isVisibleTo(card) or "AUROC 0.50" not in card.toolTip():
        found.append("the Mean KI card has no caveat")
    if "AUROC 0.50" not in show.facts.text():
        found.append("the slide's strip has no caveat")
    return found


def _spin(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait_until(app: QApplication, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("screen_checks: timed out")
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    """The scaled run (see the module docstring); the pytest side reads its JSON."""
    from kiig_desktop.config import Settings
    from kiig_desktop.gui.app import create_application
    from kiig_desktop.gui.main_window import MainWindow
    from kiig_desktop.gui.shared.theme import theme

    out, shots = Path(argv[0]), (argv[1] if len(argv) > 1 else None)
    app = create_application([])
    theme().apply("light")
    data = Path(tempfile.mkdtemp(prefix="kiig-scaled-"))
    window = MainWindow(Settings(data_dir=data, discover_lmstudio=False, discover_ollama=False), autoload=False)
    window.resize(*SCALED_SIZE)
    window.show()
    window.start([])
    _wait_until(app, lambda: bool(window.engines.models) and not window.tasks.active())
    open_long_chain(window, lambda cond: _wait_until(app, cond))
    window.resize(*SCALED_SIZE)

    def settle() -> None:
        _wait_until(app, lambda: not window.tasks.active() and not window.results.pending and not window.dashboard.pending)
        _spin(app, 0.1)

    problems = screen_problems(window, settle, shots, "1920x1080-150pct")
    window.show_view("results")
    settle()
    image = window.grab()
    report = {"problems": problems, "results": results_problems(window), "ratio": window.devicePixelRatioF(),
              "logical": [window.width(), window.height()],
              "image": [image.width(), image.height()]}
    show = present_long_chain(window, SCALED_SIZE, lambda cond: _wait_until(app, cond), lambda: _spin(app, 0.3))
    if shots:
        show.grab().save(os.path.join(shots, "presentation-1920x1080-150pct.png"))
    report["presentation"] = presentation_problems(show, SCALED_SIZE)
    show.close()
    out.write_text(json.dumps(report, indent=1))
    window.close()
    _spin(app, 0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
