"""The Dashboard tab: a batch run started from the window on the embedded model (progress, cancel,
resume), the dashboard's numbers against ``dashboard.summarize``, the paired differences of any two
models, the per-item drill-down into the Results view, the HTML export, hostile text shown literally,
and the dataset check of the batch form."""

from __future__ import annotations

import argparse
import math

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from kiig_desktop.commands.report import build as build_report
from kiig_desktop.events import ItemDone
from kiig_desktop.gui.dashboard.batch_task import RunStarted, fmt_duration, progress_text
from kiig_desktop.gui.dashboard.dashboard_view import finding_text
from kiig_desktop.reports.summary import METRICS, fmt_estimate, summarize
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import BatchProgress, BatchSummary
from kiig_desktop.store import SessionStore

from .conftest import wait_idle, wait_no_workers, worker_processes
from .records import fake_record

HOSTILE = '<img src="x" onerror="alert(1)"><b>B</b>'
HOSTILE_NAME = "<i>evil</i> & model"


# ------------------------------------------------------------------------------------ helpers


def store_batch_run(session, names: list[str], n_items: int = 3, hostile: bool = False, running: bool = False) -> int:
    """A finished batch run of ``len(names)`` models x ``n_items`` MCQ items, saved as ``kiig run`` saves it
    (``running``: still under way, the last model without any chain yet)."""
    shas = [f"{i + 1:x}" * 64 for i in range(len(names))]

    def build(st) -> int:
        ids = [st.ensure_model({"path": f"/models/m{i}.gguf", "sha256": sha, "name": name})
               for i, (name, sha) in enumerate(zip(names, shas, strict=True))]
        scorer = st.ensure_model({"path": "/models/scorer.gguf", "sha256": "e" * 64, "name": "scorer"})
        settings = {"method": "test", "dataset_sha256": "d" * 64, "n_items": n_items, "subjects": shas,
                    "generation": {"max_tokens": 64}, "mode": "answer", "split": "auto", "ki": None}
        run_id, _ = st.find_or_create_run("batch", settings, {"scorer": scorer}, {"kiig": "test"}, seed=0,
                                          name="synthetic.jsonl")
        for m, (name, sha) in enumerate(zip(names, shas, strict=True)):
            if running and m == len(names) - 1:
                break
            for i in range(n_items):
                item_id = f"it-{i + 1:02d}"
                steps = [f"Step {k + 1} of model {m} on item {i}." for k in range(2 + (i + m) % 3)]
                rec = fake_record(steps, seed=1 + 3 * m + i)
                correct = (i + m) % 2 == 0
                answer = HOSTILE if hostile and m == 0 and i == 0 else ("B" if correct else "A")
                rec.update(id=item_id, subject={"path": f"/models/m{m}.gguf", "sha256": sha, "name": name},
                           extracted_answer=answer, correct=correct, n_generated_tokens=30 + 5 * i + m)
                question = f"Question {i + 1}: which drug?" + (f" {HOSTILE}" if hostile and i == 0 else "")
                item = {"id": item_id, "question": question, "answer": "Metformin", "kind": "mcq",
                        "options": {"A": "Insulin", "B": "Metformin"}, "answer_idx": "B"}
                gen = {"text": rec["reasoning"], "tokens": [], "extracted_answer": answer, "correct": correct,
                       "model_id": ids[m]}
                st.save_chain(run_id, f"{sha[:12]}:{item_id}", rec, item=item, generation=gen)
        if not running:
            st.set_run_status(run_id, "finished")
        return run_id

    return session.write(build)


def show_dashboard(qtbot, window):
    window.show_view("dashboard")
    view = window.dashboard
    qtbot.waitUntil(lambda: not view.pending and not window.tasks.active(), timeout=30000)
    return view


def cell(table, row: int, col: int) -> str:
    return table.item(row, col).text()


def double_click(qtbot, view, row: int, col: int) -> None:
    """Double-click a cell of the per-item table (its tab shown, the cell scrolled into view)."""
    view.tabs.setCurrentIndex(view.tabs.indexOf(view.items_table.parentWidget()))
    table = view.items_table
    index = table.model().index(row, col)
    table.scrollTo(index)
    qtbot.wait(20)
    rect = table.visualRect(index)
    assert table.viewport().rect().contains(rect.center())
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # Qt wants the press first
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def check_models_table(view, report) -> None:
    """Every cell of the per-model table is summarize's estimate, formatted as the report formats it."""
    table = view.models_table
    assert table.columnCount() == 1 + len(report.models)
    for col, m in enumerate(report.models, start=1):
        head = table.horizontalHeaderItem(col).text()
        assert head.startswith(f"{chr(64 + col)} · {m.name}\n{m.n_chains} items")
        for mt in METRICS:
            row = table.metric_row(mt.key)
            few = 0 < m.metrics[mt.key].n < 10  # a rough interval carries a warning
            assert cell(table, row, col) == fmt_estimate(mt.key, m.metrics[mt.key]) + (" ⚠" if few else "")
            shown, want = table.item(row, col).data(Qt.ItemDataRole.UserRole), m.metrics[mt.key]
            assert shown.n == want.n
            for a, b in ((shown.mean, want.mean), (shown.lo, want.lo), (shown.hi, want.hi)):
                assert (math.isnan(a) and math.isnan(b)) or a == b
        # chains too short for the paper-mode numbers are counted and shown, never silently 0
        assert f"{m.name} {m.n_paper_excluded} of {m.n_chains - m.n_errors}" in view.paper_note.text()


# ------------------------------------------------------------------------------------ the real run


@pytest.mark.slow
def test_batch_run_from_the_window_with_cancel_and_resume(qtbot, window, tmp_path):
    earlier = set(worker_processes())  # workers of other test modules' shared engines, not this window's
    win = window
    view = show_dashboard(qtbot, win)
    form = view.form
    assert view.stack.currentWidget() is view.empty  # empty-state hint until a batch run exists
    assert not view.export_button.isEnabled()

    # the sample clinical MCQ set is offered and checked; the embedded model is checked by default
    qtbot.waitUntil(lambda: form.dataset_ready(), timeout=10000)
    assert form.validation.text().startswith("✓ 22 valid items")
    default = win.engines.default_model()
    assert form.checked_ids() == [default.id]
    form.limit.setValue(2)
    form.max_tokens.setValue(64)
    form.parallel.setValue(1)  # one item at a time: a group's chains are saved together, leaving no moment to cancel

    # run, and cancel once the first chain is saved
    task = form.run()
    assert task is not None and not form.run_button.isEnabled() and form.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: any(isinstance(e, ItemDone) for e in form.events), timeout=90000)
    form.cancel()
    wait_idle(qtbot, win)
    run_id = form.run_id
    assert run_id is not None and isinstance(form.events[0], RunStarted)
    assert "marked cancelled" in form.status.text() and "resume" in form.status.text()
    with win.session.reader() as st:
        assert st.get_run(run_id)["status"] == "cancelled"
        done_before = len(st.chains_for_run(run_id))
    assert done_before >= 1

    # progress events: items done / total, phase, model, item; the bar follows them
    progress = [e for e in form.events if isinstance(e, BatchProgress)]
    assert {p.phase for p in progress} >= {"loading", "generating", "scoring", "done"}
    assert all(p.total == 2 for p in progress)
    assert any(p.model == default.name and p.item_id == "cm-01" for p in progress)
    assert [p.done for p in progress if p.phase == "done"][0] == 1
    assert len({id(p) for p in progress}) == len(progress)  # snapshots, not the core's one mutable object
    assert "generating" in progress_text(next(p for p in progress if p.phase == "generating"))
    assert fmt_duration(75) == "1 min 15 s"

    # the same settings again resume the run
    task = form.run()
    seen, notes = [], []
    task.succeeded.connect(seen.append)
    task.progress.connect(lambda _e: notes.append(form.resume_note.text()))
    wait_idle(qtbot, win)
    summary = seen[0]
    assert isinstance(summary, BatchSummary) and summary.run_id == run_id
    assert summary.reloaded == done_before and summary.reloaded + summary.done == 2
    assert f"Resuming: {done_before} of 2 already done" in notes  # while it runs
    assert form.resume_note.text() == "" and f"{done_before} from before" in form.status.text()  # and not after
    assert form.progress.value() == form.progress.maximum() == 2
    with win.session.reader() as st:
        assert st.get_run(run_id)["status"] == "finished"

    # the dashboard shows that run, with summarize's numbers
    qtbot.waitUntil(lambda: view.report is not None and view.report.run["status"] == "finished" and not view.pending,
                    timeout=30000)
    assert view.stack.currentIndex() == 1 and view.run_combo.currentData() == run_id
    with win.session.reader() as st:
        report = summarize(st, run_id)
    check_models_table(view, report)
    assert view.pair_stack.currentWidget() is view.one_model  # one model: no pairs, and a hint
    assert view.finding.text() == finding_text(report, None, None)
    assert view.items_table.items_model.rowCount() == 2

    # double-click an item: Results shows that chain's stored numbers
    table = view.items_table
    col = 3  # the model's answer column
    chain_id = table.chain_at(1, col)
    double_click(qtbot, view, 1, col)
    qtbot.waitUntil(lambda: win.results.result is not None and win.results.result.chain_id == chain_id
                    and not win.results.pending, timeout=20000)
    assert win.current_view() is win.results
    with win.session.reader() as st:
        record = st.load_chain(chain_id)
    assert win.results.result.record["info_gain_mean"] == record["info_gain_mean"]
    assert win.results.table.steps_model.rowCount() == len(record["steps"])
    gain = record["info_gain_mean"]
    assert win.results.cards["info_gain"].value.text() == f"{gain:+.3f}"
    assert default.name in win.results.subtitle.text() or "SmolLM2" in win.results.subtitle.text()

    # closing the window while a batch runs marks that run cancelled and leaves no model worker behind
    win.show_view("dashboard")
    form.limit.setValue(1)
    form.seed.setValue(7)  # another run
    form.run()
    qtbot.waitUntil(lambda: any(isinstance(e, BatchProgress) and e.phase == "generating" for e in form.events),
                    timeout=60000)
    other, path = form.run_id, win.session.path
    assert other is not None and other != run_id
    assert set(worker_processes()) - earlier  # this window's workers are running
    win.close()
    assert not wait_no_workers(ignore=earlier)
    with SessionStore.open(path, create=False, write=False) as st:
        assert st.get_run(other)["status"] == "cancelled"
        assert st.get_run(run_id)["status"] == "finished"


# ------------------------------------------------------------------------------------ no model needed


@pytest.mark.slow
def test_dashboard_numbers_pairs_and_drill_down(qtbot, window, tmp_path):
    win = window
    run_id = store_batch_run(win.session, ["base-model", "tuned-model", "third"], n_items=4)
    view = show_dashboard(qtbot, win)
    assert view.report is not None and view.report.run["id"] == run_id
    with win.session.reader() as st:
        report = summarize(st, run_id)
    check_models_table(view, report)
    assert view.caption.text().startswith(f"Run {run_id} (finished) · 4 of 4 items answered · 3 models")

    # paired differences B − A for a chosen pair, in run order and reversed
    keys = [m.key for m in report.models]
    assert view.pair_keys() == (keys[0], keys[1])
    for a, b in ((keys[0], keys[1]), (keys[2], keys[0])):
        view.pair_a.setCurrentIndex(keys.index(a))
        view.pair_b.setCurrentIndex(keys.index(b))
        view._show_pair()
        assert view.pairs_table.rowCount() == len(METRICS)
        for row, mt in enumerate(METRICS):
            p = report.pair(a, b, mt.key)
            assert cell(view.pairs_table, row, 1) == fmt_estimate(mt.key, p.diff, True)
            assert p.direction in cell(view.pairs_table, row, 3)
            if mt.key == "accuracy":
                lo, hi = view.forest.data["accuracy"][1:]
                assert (lo, hi) == pytest.approx((100 * p.diff.lo, 100 * p.diff.hi))
        assert view.finding.text() == finding_text(report, a, b)
    forward = report.pair(keys[0], keys[2], "info_gain_mean").diff
    reverse = report.pair(keys[2], keys[0], "info_gain_mean").diff
    assert (reverse.mean, reverse.lo, reverse.hi) == (-forward.mean, -forward.hi, -forward.lo)
    assert view.finding.text().startswith(f"Compared with {report.models[2].name}, {report.models[0].name}")

    # scatter: one point per model at (mean InfoGain, accuracy %)
    assert view.scatter.data["names"] == [m.name for m in report.models]
    assert list(view.scatter.data["accuracy_pct"]) == pytest.approx([100 * m.metrics["accuracy"].mean for m in report.models])
    for fig, name in ((view.scatter, "scatter"), (view.forest, "forest")):
        assert fig.export(tmp_path / f"{name}.png").stat().st_size > 2000
        assert "<svg" in fig.export(tmp_path / f"{name}.svg").read_text()

    # the per-item table sorts; a double-click opens that model's chain in Results
    table = view.items_table
    assert table.model().rowCount() == 4 and table.model().columnCount() == 3 + 4 * 3
    ig_col = 3 + 4 * 1 + 1  # model B's InfoGain
    table.sortByColumn(ig_col, Qt.SortOrder.DescendingOrder)
    values = [table.items_model.result(table.source_index(r, ig_col).row(), ig_col).info_gain_mean for r in range(4)]
    assert values == sorted(values, reverse=True)
    answer_col = 3 + 4 * 1
    chain_id = table.chain_at(0, answer_col)
    expected = next(r for r in report.items if r.chain_id == chain_id)
    assert expected.model == keys[1]
    double_click(qtbot, view, 0, answer_col)
    qtbot.waitUntil(lambda: win.results.result is not None and win.results.result.chain_id == chain_id
                    and not win.results.pending, timeout=20000)
    assert win.current_view() is win.results
    shown = win.results.result.record
    assert shown["info_gain_mean"] == expected.info_gain_mean and shown["id"] == expected.item_id
    assert "m1.gguf" in win.results.subtitle.text()  # the chain's own subject model (a batch has several)
    assert win.results.cards["info_gain"].value.text() == f"{expected.info_gain_mean:+.3f}"

    # Export HTML report… writes exactly what `kiig report --format html` writes
    out = tmp_path / "report.html"
    task = view.export_html(run_id, str(out))
    qtbot.waitUntil(lambda: not task.running, timeout=30000)
    cli = build_report(argparse.Namespace(db=str(win.session.path), run=run_id, format="html", table="models",
                                          models=None, n_boot=2000, seed=0, no_chains=False))
    assert out.read_text(encoding="utf-8") == cli

    # dark theme: tables and figures follow (colours from the palette, numbers unchanged)
    win.set_theme("dark")
    check_models_table(view, report)
    assert view.scatter.backgroundBrush().color().name() == "#171a1f"
    win.set_theme("light")


def test_hostile_text_in_answers_shows_literally(qtbot, window):
    win = window
    store_batch_run(win.session, [HOSTILE_NAME, "plain"], n_items=2, hostile=True)
    view = show_dashboard(qtbot, win)
    report = view.report
    assert report is not None and report.models[0].name == HOSTILE_NAME
    table = view.items_table
    src = table.items_model
    row = src.item_ids.index("it-01")
    answer = src.data(src.index(row, 3), Qt.ItemDataRole.DisplayRole)
    assert answer == f"✓ {HOSTILE}"  # the raw text, not rendered
    question = src.data(src.index(row, 1), Qt.ItemDataRole.DisplayRole)
    assert HOSTILE in question
    for role_col in (1, 3):
        tip = src.data(src.index(row, role_col), Qt.ItemDataRole.ToolTipRole)
        assert "<img" not in tip and "&lt;img" in tip  # escaped before Qt sees it
    assert view.models_table.horizontalHeaderItem(1).text().startswith(f"A · {HOSTILE_NAME}\n")
    assert HOSTILE_NAME in view.finding.text() and HOSTILE_NAME in view.items_legend.text()
    for label in view.findChildren(QLabel):
        if HOSTILE_NAME in label.text() or "<img" in label.text():
            assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
    assert HOSTILE_NAME in view.scatter.data["names"]
    for i in range(view.pair_a.count()):
        assert view.pair_a.itemText(i).endswith((HOSTILE_NAME, "plain"))


def test_a_run_under_way_and_a_one_model_run(qtbot, window):
    win = window
    store_batch_run(win.session, ["solo"], n_items=2)
    view = show_dashboard(qtbot, win)
    assert view.pair_stack.currentWidget() is view.one_model  # a hint instead of an empty pair table
    assert view.finding.text().startswith("solo: accuracy 50.0% [0.0%, 100.0%] on 2 items")
    run_id = store_batch_run(win.session, ["base", "tuned"], n_items=2, running=True)
    win.session.notify_changed()
    qtbot.waitUntil(lambda: not view.pending and view.report is not None and view.report.run["id"] == run_id,
                    timeout=10000)
    assert view.run_combo.count() == 2 and view.run_combo.currentData() == run_id  # the latest run, listed first
    assert view.finding.text() == "No comparison yet: tuned has no results (the run is still going)."
    assert view.models_table.item(view.models_table.metric_row("accuracy"), 2).text() == "\u2013"
    assert view.items_table.items_model.data(view.items_table.items_model.index(0, 7)) == "not run"
    view.select_run(view.run_combo.itemData(1))  # choose the older run
    qtbot.waitUntil(lambda: not view.pending and view.report.run["id"] != run_id, timeout=10000)
    assert view.report.models[0].name == "solo"


@pytest.mark.slow
def test_dataset_check_lists_bad_rows_and_blocks_the_run(qtbot, window, tmp_path):
    win = window
    view = show_dashboard(qtbot, win)
    form = view.form
    bad = tmp_path / "bad.jsonl"
    good_line = (resource_path("datasets") / "clinical_mcq.jsonl").read_text(encoding="utf-8").splitlines()[0]
    bad.write_text("\n".join([good_line, '{"id": "x2", "question": "no answer"}', "not json", ""]), encoding="utf-8")
    form.choose_dataset(str(bad))
    qtbot.waitUntil(lambda: form.dataset is not None, timeout=10000)
    assert not form.dataset_ready() and not form.run_button.isEnabled()
    assert form.validation.text().startswith("✗ 1 valid item and 2 rows with errors")
    rows = [form.error_list.item(i).text() for i in range(form.error_list.count())]
    assert len(rows) == 2 and rows[0].startswith("line 2:") and rows[1].startswith("line 3:")
    assert form.run() is None  # nothing runs
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    form.choose_dataset(str(empty))
    qtbot.waitUntil(lambda: form.dataset is not None or form.dataset_error is not None, timeout=10000)
    assert not form.run_button.isEnabled() and form.validation.text().startswith("✗")
    missing = tmp_path / "missing.jsonl"
    form.choose_dataset(str(missing))
    qtbot.waitUntil(lambda: form.dataset_error is not None, timeout=10000)
    assert not form.run_button.isEnabled() and "missing.jsonl" in form.validation.text()
    form.choose_dataset(str(resource_path("datasets", "arithmetic.jsonl")))
    qtbot.waitUntil(lambda: form.dataset_ready(), timeout=10000)
    assert form.run_button.isEnabled() and "numeric answers" in form.validation.text()
    assert form.error_list.isHidden()
    # the sample sets are offered by name
    titles = [form.dataset_combo.itemText(i) for i in range(form.dataset_combo.count())]
    assert titles[:2] == ["Clinical MCQ (sample)", "Arithmetic (sample)"]
    # shortcut: View → Dashboard (Ctrl+6)
    win.show_view("analyze")
    action = next(a for a in win.view_menu.actions() if a.text() == "Dashboard")
    assert action.shortcut().toString() == "Ctrl+6"
    action.trigger()
    assert win.current_view() is view
    wait_idle(qtbot, win)
