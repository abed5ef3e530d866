"""Screenshots of clinician review at 1366x768: a batch run's chains reviewed in the real window by key presses.

    kiig run --dataset kiig_desktop/_resources/datasets/clinical_mcq.jsonl --models default --scorer default \\
        --db ten.kiig --limit 10
    QT_QPA_PLATFORM=offscreen python packaging/review_screenshots.py docs/screenshots ten.kiig [REVIEWED.kiig]

A copy of SESSION is opened in a fresh data folder; "Dr Ada" reviews every chain of its latest batch
run with the keys alone (1/2/3, H/I/M, N, Down, S/F, Page Down), a second reviewer's reviews
("Dr Ben", made on a copy and brought in as `kiig review import` does) are imported, and the Review
tab and the Dashboard are saved as ``review-*.png``. With REVIEWED.kiig the reviewed session is kept
there (``kiig review stats --db REVIEWED.kiig`` prints the numbers the Dashboard shows).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1366, 768)
sys.path.insert(0, str(ROOT))


def _spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait(app, condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"review_screenshots.py: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def _colleague(session: Path, data: Path, run: int) -> Path:
    """Dr Ben's reviews on a copy of the session, exported as `kiig review export` writes them."""
    from kiig_desktop.store import SessionStore, reviews
    from kiig_desktop.store.review_files import export_reviews

    copy = data / "colleague.kiig"
    shutil.copyfile(session, copy)
    with SessionStore.open(copy) as s:
        for n, c in enumerate(c for c in s.chains_for_run(run) if c["n_steps"]):
            for pos in range(c["n_steps"]):
                k = ("correct", "incorrect", "cannot_tell")[(n + 2 * pos) % 3]
                reviews.review_step(s, run, c["key"], pos, "Dr Ben", knowledge=k, role=("helps", "misleading")[(n + pos) % 2])
        out = data / "ben.jsonl"
        with open(out, "w", encoding="utf-8") as fh:
            export_reviews(s, [run], "jsonl", None, fh)
    return out


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    outdir, source = Path(argv[0]).absolute(), Path(argv[1]).absolute()
    outdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="kiig-review-screens-"))
    os.environ["KIIG_DATA_DIR"] = str(data)
    session = data / "reviewed.kiig"
    shutil.copyfile(source, session)
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from kiig_desktop.gui.app import create_application
    from kiig_desktop.gui.main_window import MainWindow
    from kiig_desktop.reports.summary import latest_batch_run
    from kiig_desktop.store.review_files import import_reviews

    app = create_application([sys.argv[0]])
    window = MainWindow()
    window.set_theme("light")
    window.resize(*SIZE)
    window.show()
    window.start([str(session)])
    _wait(app, lambda: not window.tasks.active(), "start-up")
    run = window.session.read(latest_batch_run)
    chains = window.session.read(lambda st: [c for c in st.chains_for_run(run) if c["n_steps"]])
    ben = _colleague(session, data, run)
    window.session.write(lambda st: import_reviews(st, ben))
    panel, results = window.review_panel, window.results
    panel.reviewer_edit.setText("Dr Ada")
    panel._reviewer_changed()
    window._open_chain(run, chains[0]["id"])
    shots = []

    def shot(name: str) -> None:
        _spin(app, 0.5)
        path = outdir / f"{name}.png"
        if not window.grab().save(str(path)):
            raise SystemExit(f"review_screenshots.py: cannot write {path}")
        shots.append(path.name)

    for n, chain in enumerate(chains):
        _wait(app, lambda c=chain: results.result is not None and results.result.chain_id == c["id"] and not results.pending,
              f"chain {chain['key']}")
        results.right_tabs.setCurrentIndex(results.right_tabs.count() - 1)
        results.table.setFocus()
        _spin(app, 0.1)
        for pos in range(chain["n_steps"]):
            if pos:
                QTest.keyClick(results.table, Qt.Key.Key_Down)
            QTest.keyClick(results.table, (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3)[(n + pos) % 3])
            QTest.keyClick(results.table, (Qt.Key.Key_H, Qt.Key.Key_I, Qt.Key.Key_M)[(n * pos) % 3])
            if n == 0 and pos == 1:
                QTest.keyClick(results.table, Qt.Key.Key_N)
                QTest.keyClicks(panel.note_edit, "dose is right, the reason given is not")
                QTest.keyClick(panel.note_edit, Qt.Key.Key_Return)
        QTest.keyClick(results.table, Qt.Key.Key_F if n % 3 == 1 else Qt.Key.Key_S)
        if n == 0:
            QTest.keyClick(results.table, Qt.Key.Key_Up)
            shot("review-results-step")
        if n + 1 < len(chains):
            QTest.keyClick(results.table, Qt.Key.Key_PageDown)
    shot("review-results-last-chain")
    window.show_view("dashboard")
    _wait(app, lambda: not window.tasks.active() and "chains reviewed" in window.dashboard.review_note.text(), "the dashboard")
    shot("review-dashboard")
    window.close()
    if len(argv) == 3:
        shutil.copyfile(session, argv[2])
    shutil.rmtree(data, ignore_errors=True)
    print(f"{len(shots)} screenshots in {outdir}: {', '.join(shots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
