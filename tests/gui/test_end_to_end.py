"""End to end on the real embedded model: generate, split, score, check every number shown against
the session, save as, reopen in a new window, and compare two runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

from kiig_desktop.runs.analysis import Question
from kiig_desktop.store import SessionStore

from .conftest import load_default, start_generation, wait_idle

pytestmark = pytest.mark.slow

QUESTION = Question(
    "A 52-year-old man is newly diagnosed with type 2 diabetes and has normal kidney function. "
    "Which medication is the usual first-line therapy?",
    "Metformin",
    {"A": "Insulin glargine", "B": "Metformin", "C": "Glipizide", "D": "Pioglitazone"},
    "B",
)
REFERENCE = (
    "Type 2 diabetes is usually treated with lifestyle change and metformin first.\n"
    "Metformin lowers glucose production in the liver and does not cause weight gain.\n"
    "Insulin is kept for later or for very high glucose.\n"
    "So the answer is B."
)


def metric_columns(table) -> list[tuple[int, str]]:
    return [(i, c.key) for i, c in enumerate(table.steps_model.columns) if c.key not in ("index", "text", "ki")]


def check_shown_equals_stored(results, stored: dict) -> None:
    """Table cells, plot arrays, cards and text spans of the Results view == the stored record."""
    table, model = results.table, results.table.steps_model
    steps = stored["steps"]
    assert model.rowCount() == len(steps)
    for row, step in enumerate(steps):
        assert model.data(model.index(row, 1), Qt.ItemDataRole.DisplayRole) == step["text"].replace("\n", " ⏎ ")
        for col, key in metric_columns(table):
            raw = model.data(model.index(row, col), Qt.ItemDataRole.UserRole)
            assert raw == step.get(key), (row, key)
            if raw is not None:
                assert model.data(model.index(row, col)) == model.columns[col].display(raw)  # ▲/▼ on signed ones
    for key in ("delta_nll", "info_gain", "answer_ppl", "entropy_bits", "p_correct"):
        col = next(i for i, c in enumerate(model.columns) if c.key == key)
        assert not table.isColumnHidden(col), key
    ki_col = next(i for i, c in enumerate(model.columns) if c.key == "ki")
    assert table.isColumnHidden(ki_col)  # no KI data for this chain

    base = stored["baseline"]
    fig = results.answer_fig.data
    np.testing.assert_array_equal(fig["answer_nll"], [base["answer_nll"]] + [s["answer_nll"] for s in steps])
    np.testing.assert_array_equal(fig["answer_ppl"], [base["answer_ppl"]] + [s["answer_ppl"] for s in steps])
    np.testing.assert_array_equal(fig["info_gain"], [s["info_gain"] for s in steps])
    np.testing.assert_array_equal(results.answer_fig.bars.opts["height"], [s["info_gain"] for s in steps])
    curve = stored["token_curve"]
    tok = results.token_fig.data
    np.testing.assert_array_equal(tok["surprisal_bits"], curve["surprisal_bits"])
    np.testing.assert_array_equal(tok["entropy_bits"], curve["entropy_bits"])
    np.testing.assert_array_equal(tok["step"], curve["step"])
    for letter in QUESTION.options:
        expected = [base["option_probs"][letter]] + [s["option_probs"][letter] for s in steps]
        np.testing.assert_array_equal(results.options_fig.data[letter], expected)
    assert results.frames["options"].isVisibleTo(results)
    assert results.cards["info_gain"].value.text() == f"{stored['info_gain_mean']:+.3f}"
    assert results.cards["delta_nll"].value.text() == f"{stored['delta_nll_mean']:+.4f}"
    assert results.cards["steps"].value.text() == f"{len(steps)} · {stored['n_tokens']}"


def check_linking(qtbot, results, stored: dict) -> None:
    """Selecting / hovering a step highlights it in the text, the table and every plot."""
    steps = stored["steps"]
    k = min(1, len(steps) - 1)
    results.table.step_selected.emit(k)  # as a click in the table does
    assert results.selected == k
    assert [i.row() for i in results.table.selectionModel().selectedRows()] == [k]
    assert results.answer_fig.highlighted()[0] == (k + 0.5, k + 1.5)
    assert results.options_fig.highlighted()[0] == (k + 0.5, k + 1.5)
    token_steps = np.array(stored["token_curve"]["step"])
    idx = np.nonzero(token_steps == k)[0]
    assert results.token_fig.highlighted()[0] == (idx[0] - 0.5, idx[-1] + 0.5)
    if "start" in steps[k]:
        assert results.text_view.highlighted_text() == steps[k]["text"]
    results.answer_fig.step_hovered.emit(0)  # the mouse over step 1 in plot 1
    assert results.token_fig.highlighted()[1] is not None
    assert results.table.steps_model.hovered_row == 0
    results.answer_fig.step_hovered.emit(-1)
    assert results.table.steps_model.hovered_row is None
    results.token_fig.step_clicked.emit(0)  # a click on a token of step 1
    assert results.selected == 0 and results.answer_fig.highlighted()[0] == (0.5, 1.5)


def check_exports(results, tmp_path) -> None:
    tsv = results.copy_table()
    assert QGuiApplication.clipboard().text() == tsv
    lines = tsv.rstrip("\n").split("\n")
    steps = results.result.record["steps"]
    assert len(lines) == len(steps) + 1
    header = lines[0].split("\t")
    col = header.index("InfoGain")
    assert [float(line.split("\t")[col]) for line in lines[1:]] == [s["info_gain"] for s in steps]
    for key in ("answer", "tokens", "options"):
        png = results.frames[key].figure.export(tmp_path / f"{key}.png")
        image = QImage(str(png))
        assert not image.isNull() and image.width() >= 400
        svg = results.frames[key].figure.export(tmp_path / f"{key}.svg")
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg") and len(list(root.iter())) > 20


def test_generate_score_save_reopen_compare(qtbot, make_window, tmp_path):
    win = make_window()
    load_default(qtbot, win)
    # generate: tokens stream in, coloured by probability
    analyze = start_generation(win, QUESTION, 64)
    wait_idle(qtbot, win)
    gen = analyze.generation
    assert gen is not None and gen["tokens"], "the generation did not finish"
    assert analyze.reasoning.toPlainText() == gen["text"]
    assert len(analyze.reasoning.tokens) == len(gen["tokens"])
    assert analyze.steps_editor.steps(), "the generated reasoning was not split"

    # score: saved to the session, shown in Results
    analyze.score()
    wait_idle(qtbot, win)
    first = win.results.result
    assert first is not None and win.current_view() is win.results
    with win.session.reader() as reader:
        stored = reader.load_chain(first.chain_id)
        generation = reader.load_generation(first.chain_id)
    assert stored == first.record
    assert generation["text"] == gen["text"]
    check_shown_equals_stored(win.results, stored)
    check_linking(qtbot, win.results, stored)
    check_exports(win.results, tmp_path)

    # a second chain on the same question: a pasted reference reasoning
    analyze.set_reasoning_text(REFERENCE)
    assert [s.text for s in analyze.steps_editor.steps()] == REFERENCE.splitlines()[:3]
    analyze.score()
    wait_idle(qtbot, win)
    second = win.results.result
    assert second.chain_id != first.chain_id and second.record["correct"] is True

    # save as: the session is copied (SQLite backup) and the window continues in the copy
    target = tmp_path / "saved-analysis.kiig"
    win.save_session_as(str(target))
    wait_idle(qtbot, win)
    assert win.session.path == target and target.is_file()
    win.close()
    with SessionStore.open(target, write=False) as check:
        assert check.check() == []
        assert len(check.list_runs()) == 2

    # reopen in a fresh window: the sessions view lists both runs and chains
    win2 = make_window([str(target)], data=tmp_path / "data2")
    wait_idle(qtbot, win2)
    assert win2.session.path == target
    sessions = win2.sessions
    qtbot.waitUntil(lambda: sessions.tree.topLevelItemCount() == 2, timeout=10000)
    chains = [(sessions.tree.topLevelItem(i).child(j)) for i in range(2) for j in range(sessions.tree.topLevelItem(i).childCount())]
    assert len(chains) == 2
    first_item = next(c for c in chains if c.data(0, Qt.ItemDataRole.UserRole)[2] == first.chain_id)
    sessions.tree.itemDoubleClicked.emit(first_item, 0)
    qtbot.waitUntil(lambda: win2.results.result is not None and not win2.results.pending, timeout=10000)
    assert win2.results.result.record == stored
    check_shown_equals_stored(win2.results, stored)
    for key in ("answer_nll", "info_gain"):
        np.testing.assert_array_equal(win2.results.answer_fig.data[key], first_fig_data(stored)[key])

    # compare the two runs side by side
    sessions.tree.clearSelection()
    for item in chains:
        item.setSelected(True)
    assert sorted(sessions.selected_chains()) == sorted([(first.run_id, first.chain_id), (second.run_id, second.chain_id)])
    sessions.buttons["compare"].click()
    qtbot.waitUntil(lambda: len(win2.compare.results) == 2, timeout=10000)
    assert win2.current_view() is win2.compare
    table = win2.compare.table
    for row, (_label, result) in enumerate(win2.compare.results):
        record = result.record
        values = [table.item(row, c).data(Qt.ItemDataRole.UserRole) for c in range(table.columnCount())]
        assert values[4] == record["info_gain_mean"] and values[6] == record["delta_nll_mean"]
        assert values[7] == len(record["steps"]) and values[8] == record["n_tokens"]
        assert values[3] == record.get("correct")
        assert values[5] is None and table.item(row, 5).text() == ""  # no KI evaluation: the KI cell is blank
        nll = [record["baseline"]["answer_nll"]] + [s["answer_nll"] for s in record["steps"]]
        np.testing.assert_array_equal(win2.compare.figure.data[f"nll:{row}"], nll)
    assert {r.chain_id for _l, r in win2.compare.results} == {first.chain_id, second.chain_id}


def first_fig_data(record: dict) -> dict:
    base, steps = record["baseline"], record["steps"]
    return {"answer_nll": [base["answer_nll"]] + [s["answer_nll"] for s in steps],
            "info_gain": [s["info_gain"] for s in steps]}


def test_compare_runs_the_question_with_two_models(qtbot, make_window, tmp_path, builtin_path):
    """Two model files: a copy of the embedded model with 64 padding bytes appended (same weights, a
    different SHA-256, so a different model to the session) stands in for a second quantization."""
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(builtin_path, models / "SmolLM2-copy.gguf")
    with open(models / "SmolLM2-copy.gguf", "ab") as fh:
        fh.write(b"\0" * 64)
    win = make_window()
    win.engines.add_model_file(str(models / "SmolLM2-copy.gguf"))
    wait_idle(qtbot, win)
    ids = [m.id for m in win.engines.models if not m.error]
    assert len(ids) == 2
    win.analyze.form.set_question(QUESTION)
    win.analyze.max_tokens.setValue(40)
    win.compare.set_checked(ids)
    assert win.compare.checked_ids() == ids
    win.compare.run_comparison()
    wait_idle(qtbot, win, timeout=180000)
    results = win.compare.results
    assert len(results) == 2, win.message_bar.text()
    assert results[0][1].run_id != results[1][1].run_id  # one run per (subject, scorer) pair
    with win.session.reader() as reader:
        for row, (_label, result) in enumerate(results):
            stored = reader.load_chain(result.chain_id)
            assert stored == result.record
            assert win.compare.table.item(row, 4).data(Qt.ItemDataRole.UserRole) == stored["info_gain_mean"]
    # both files hold the same weights: the same greedy reasoning and the same numbers
    a, b = results[0][1].record, results[1][1].record
    assert [s["text"] for s in a["steps"]] == [s["text"] for s in b["steps"]]
    assert a["info_gain_mean"] == pytest.approx(b["info_gain_mean"], abs=1e-9)
    assert sorted(win.engines.loaded_ids()) == sorted(ids)
