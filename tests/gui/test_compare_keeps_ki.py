"""The Compare screen over a chain that has a saved Knowledge Index keeps it (issue 27, item 1)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from kiig_desktop.gui.compare.compare_view import KI_COLUMN
from kiig_desktop.store import SessionStore

from .conftest import load_default, wait_idle
from .records import QUESTION

pytestmark = pytest.mark.slow

KI_STEPS = [{"index": 0, "applicable": True, "ki": 0.75, "reason": None, "judge_p": 0.75,
             "evidence": [{"source": "clinical_facts.jsonl", "chunk": 1, "score": 3.5}]}]


def _compare(qtbot, window, info) -> object:
    window.compare.set_checked([info.id])
    window.compare.run_comparison()
    wait_idle(qtbot, window, timeout=180000)
    assert len(window.compare.results) == 1, window.message_bar.text()
    return window.compare.results[0][1]


def test_a_compare_run_again_over_a_chain_keeps_its_ki(qtbot, make_window):
    window = make_window()
    info = load_default(qtbot, window)
    window.analyze.form.set_question(QUESTION)
    window.analyze.max_tokens.setValue(40)
    first = _compare(qtbot, window, info)

    def judged(store):
        judge = store.ensure_model({"path": "/models/judge.gguf", "sha256": "a" * 64})
        store.save_ki(first.chain_id, judge, "clinical", KI_STEPS, 0.75)

    window.session.write(judged)
    window.compare.clear()
    again = _compare(qtbot, window, info)
    assert (again.run_id, again.chain_id) == (first.run_id, first.chain_id)
    ki_cell = window.compare.table.item(0, KI_COLUMN)
    assert ki_cell.data(Qt.ItemDataRole.UserRole) == 0.75 and ki_cell.text() == "0.750"
    with SessionStore.open(window.session.path, write=False) as store:
        [ev] = store.load_ki(first.chain_id)
        assert ev["ki_mean"] == 0.75 and ev["current"] and ev["steps"][0]["evidence"] == KI_STEPS[0]["evidence"]
