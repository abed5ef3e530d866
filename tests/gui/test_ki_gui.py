"""Knowledge Index in the window: corpus management, KI scored on the real embedded model, the KI
column, the mean-KI card and compare cell, and the evidence panel (passages, highlights, plain text)."""

from __future__ import annotations

import json
import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from kiig_desktop.gui.compare.compare_view import KI_COLUMN
from kiig_desktop.gui.knowledge import corpora_view as corpora_view_module
from kiig_desktop.gui.shared.widgets import confirm
from kiig_desktop.knowledge.corpus import get_chunks
from kiig_desktop.knowledge.ki import build_query
from kiig_desktop.knowledge.search import content_terms, search
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.analysis import Question
from kiig_desktop.runs.ki import chain_question

from .conftest import load_default, wait_idle
from .records import fake_record, store_fake_chain

HOSTILE = '<img src="x" onerror="alert(1)"> Metformin <b>lowers</b> hepatic glucose &amp; output <script>x()</script>'


def reference_chain() -> tuple[Question, list[str], list[bool]]:
    """The demo chain on metformin, its steps and which ones make a factual claim (the labels)."""
    line = (resource_path("chains") / "clinical_chains.jsonl").read_text(encoding="utf-8").splitlines()[0]
    item = json.loads(line)
    q = Question(item["question"], item["answer"], item["options"], item["answer_idx"])
    return q, item["steps"], [lab["expected"] != "not_applicable" for lab in item["step_labels"]]


def ki_column(table) -> int:
    return next(i for i, c in enumerate(table.steps_model.columns) if c.key == "ki")


def check_highlights(view, n: int, text: str, query: str) -> None:
    """Every whole-word occurrence of a query term in the passage lies inside a highlighted range."""
    ranges = view.highlighted(n)
    assert ranges, f"passage {n} has no highlighted term for {query!r}"
    for a, b in ranges:
        assert re.fullmatch(r"[^\W_]+", text[a:b]), text[a:b]  # whole words only
    for term in content_terms(query):
        for m in re.finditer(rf"(?<![^\W_]){re.escape(term)}(?![^\W_])", text, re.IGNORECASE):
            assert any(a <= m.start() and m.end() <= b for a, b in ranges), (term, m.start())


def wait_corpora(qtbot, window, names: list[str]) -> None:
    qtbot.waitUntil(lambda: window.corpora.names() == names and not window.tasks.active(), timeout=20000)
    qtbot.wait(30)


@pytest.mark.slow
def test_ki_end_to_end_on_the_embedded_model(qtbot, window):
    win, view, panel = window, window.corpora_view, window.ki_panel
    qtbot.waitUntil(lambda: win.corpora.loaded, timeout=10000)
    win.show_view("corpora")
    assert view.stack.currentWidget() is view.empty and view.demo_button.isVisible()
    assert panel.no_corpus.isVisibleTo(panel)

    # import the demo corpus with the empty state's button
    qtbot.mouseClick(view.demo_button, Qt.MouseButton.LeftButton)
    wait_corpora(qtbot, win, ["clinical"])
    assert view.report_rows() == [("clinical_facts.jsonl", "added", [])]
    top = view.tree.topLevelItem(0)
    assert [top.text(c) for c in range(3)] == ["clinical", "55", "55"]
    assert view.stack.currentWidget() is view.tree and not panel.no_corpus.isVisibleTo(panel)
    assert panel.corpus.currentData() == "clinical"

    # score the reference chain's InfoGain on the embedded model
    info = load_default(qtbot, win)
    q, steps, applicable = reference_chain()
    win.analyze.form.set_question(q)
    win.analyze.set_reasoning_text("\n".join(steps))
    # the splitter keeps the final "So the answer is B." line as the answer, not as a step
    assert [s.text for s in win.analyze.steps_editor.steps()] == steps[:-1]
    steps, applicable = steps[:-1], applicable[:-1]
    win.analyze.score()
    wait_idle(qtbot, win)
    results = win.results
    result = results.result
    table, model = results.table, results.table.steps_model
    assert table.isColumnHidden(ki_column(table)) and results.cards["ki"].value.text() == "not scored"

    # Knowledge Index through the panel, the embedded model as judge
    results.ki_button.click()
    assert panel.isVisible() and panel.judge.currentData() == info.id
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, win)
    with win.session.reader() as reader:
        stored = reader.load_ki(result.chain_id)
        ev = stored[-1]
        chunks = {p.chunk_id: p for p in get_chunks(reader.db, [e["chunk_id"] for s in ev["steps"] for e in s["evidence"]])}
    assert len(stored) == 1 and ev["corpus"] == "clinical" and ev["judge"]["path"] == info.path
    assert [s["applicable"] for s in ev["steps"]] == applicable

    # the table's KI cells are the stored values; n/a steps carry their reason as tooltip
    col = ki_column(table)
    assert not table.isColumnHidden(col)
    for row, ks in enumerate(ev["steps"]):
        raw = model.data(model.index(row, col), Qt.ItemDataRole.UserRole)
        tip = model.data(model.index(row, col), Qt.ItemDataRole.ToolTipRole)
        if ks["applicable"]:
            assert isinstance(ks["ki"], float) and raw == ks["ki"]
            assert model.data(model.index(row, col)) == f"{ks['ki']:.2f}"
        else:
            assert raw == "n/a" and model.data(model.index(row, col)) == "n/a"
            assert ks["reason"] in tip and "n/a" in tip

    # the mean shown leaves the n/a steps out
    judged = [s["ki"] for s in ev["steps"] if s["applicable"]]
    assert ev["ki_mean"] == pytest.approx(sum(judged) / len(judged))
    assert results.cards["ki"].value.text() == f"{ev['ki_mean']:.3f}"
    assert f"{len(judged)} of {len(steps)} steps judged" in results.cards["ki"].caption.text()

    # the evidence panel lists exactly the stored passages, the query's terms highlighted
    question = chain_question(result.item)
    for row, ks in enumerate(ev["steps"]):
        results.select_step(row)
        shown = panel.evidence
        assert shown.step == row
        items = shown.passages.items
        if not ks["applicable"]:
            assert items == [] and "n/a" in shown.heading.text()
            continue
        assert ks["query"] == build_query(steps[row], None, question)
        assert shown.fields["query"].text() == ks["query"]
        assert f"P(yes) {ks['judge_p_yes']:.4f}" in shown.fields["judge"].text()
        assert len(items) == len(ks["evidence"]) > 0
        for n, e in enumerate(ks["evidence"]):
            assert items[n].heading == f"[{n + 1}]  {e['where']}  ·  chunk {e['chunk']}  ·  BM25 {e['score']:.2f}"
            assert e["where"].startswith(f"clinical_facts.jsonl > {e['source']}")
            text = chunks[e["chunk_id"]].text
            assert shown.passages.passage_text(n) == text
            check_highlights(shown.passages, n, text, ks["query"])
        assert [e["source"] for e in ks["evidence"]][0] == "cf-metformin"

    # hovering previews a step while none is selected
    results.select_step(-1)
    results.answer_fig.step_hovered.emit(3)
    assert panel.evidence.step == 3
    results.answer_fig.step_hovered.emit(-1)

    # compare: the chain's mean KI beside its InfoGain; blank for a chain without KI
    win.compare.add_result(result, "reference")
    run_id, chain_id = store_fake_chain(win.session, fake_record(["Metformin is first-line.", "So B."]))
    win.compare.add_chains([(run_id, chain_id)])
    qtbot.waitUntil(lambda: len(win.compare.results) == 2, timeout=10000)
    cells = [win.compare.table.item(r, KI_COLUMN) for r in range(2)]
    assert cells[0].data(Qt.ItemDataRole.UserRole) == ev["ki_mean"] and cells[0].text() == f"{ev['ki_mean']:.3f}"
    assert cells[1].data(Qt.ItemDataRole.UserRole) is None and cells[1].text() == ""


def test_corpus_import_report_search_and_removal(qtbot, window, tmp_path, monkeypatch):
    folder = tmp_path / "refs"
    folder.mkdir()
    (folder / "ace.md").write_text("# ACE inhibitors\n\nACE inhibitors such as lisinopril cause a dry cough because "
                                   "bradykinin accumulates.\n", encoding="utf-8")
    (folder / "thyroid.txt").write_text("Levothyroxine treats hypothyroidism.\n", encoding="utf-8")
    (folder / "drugs.jsonl").write_text("\n".join(json.dumps({"id": f"d{i}", "title": f"Drug {i}", "text": t}) for i, t in
                                                  enumerate(["Warfarin needs INR monitoring.", "Insulin lowers glucose.",
                                                             "Statins lower LDL cholesterol."])) + "\n", encoding="utf-8")
    (folder / "blank.txt").write_text("   \n\n", encoding="utf-8")
    (folder / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    view = window.corpora_view
    qtbot.waitUntil(lambda: window.corpora.loaded, timeout=10000)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    view.target.setEditText("refs")
    view.folder_button.click()
    wait_corpora(qtbot, window, ["refs"])
    rows = {name: (status, messages) for name, status, messages in view.report_rows()}
    assert {n: s for n, (s, _m) in rows.items()} == {"ace.md": "added", "blank.txt": "skipped", "drugs.jsonl": "added",
                                                    "image.txt": "skipped", "thyroid.txt": "added"}
    assert "empty" in rows["blank.txt"][1][0] and rows["image.txt"][1]
    assert "3 added" in view.report_summary.text() and "2 skipped" in view.report_summary.text()
    top = view.tree.topLevelItem(0)
    assert [top.text(c) for c in range(3)] == ["refs", "5", "5"]

    # importing the same folder again changes nothing
    view.import_paths("refs", [str(folder)])
    wait_corpora(qtbot, window, ["refs"])
    assert {s for _n, s, _m in view.report_rows()} == {"unchanged", "skipped"}

    # the jsonl file lists its documents; removing one (confirmed) updates the list
    top = view.tree.topLevelItem(0)
    jsonl = next(top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == "drugs.jsonl")
    jsonl.setExpanded(True)
    qtbot.waitUntil(lambda: jsonl.childCount() == 3 and jsonl.child(0).text(0) == "d0  —  Drug 0", timeout=10000)
    asked = []
    monkeypatch.setattr(corpora_view_module, "confirm", lambda _p, _t, text: asked.append(text) or True)
    view.tree.setCurrentItem(jsonl.child(1))
    view.remove_button.click()
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 1 and view.tree.topLevelItem(0).text(1) == "4", timeout=10000)
    assert "“d1”" in asked[-1]
    top = view.tree.topLevelItem(0)
    jsonl = next(top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == "drugs.jsonl")
    assert jsonl.text(1) == "2"
    jsonl.setExpanded(True)
    qtbot.waitUntil(lambda: [jsonl.child(i).text(0)[:2] for i in range(jsonl.childCount())] == ["d0", "d2"], timeout=10000)

    # a quick search shows ranked passages and the matching terms in the preview
    view.search_corpus.setCurrentIndex(view.search_corpus.findData("refs"))
    view.query.setText("Why does lisinopril cause a cough?")
    view.search_button.click()
    qtbot.waitUntil(lambda: view.hits_tree.topLevelItemCount() > 0, timeout=10000)
    hit = view.hits_tree.topLevelItem(0)
    assert (hit.text(1), hit.text(2)) == ("ace.md > ACE inhibitors", "0")
    text = view.hits[0].text
    assert view.preview.passage_text(0) == text
    check_highlights(view.preview, 0, text, view.query.text())

    # removing the corpus needs a yes; afterwards the empty state offers the demo again
    view.select(1, "refs")
    monkeypatch.setattr(corpora_view_module, "confirm", lambda *_a: False)
    view.remove_button.click()
    wait_idle(qtbot, window)
    assert window.corpora.names() == ["refs"]
    monkeypatch.setattr(corpora_view_module, "confirm", lambda *_a: True)
    view.remove_button.click()
    wait_corpora(qtbot, window, [])
    assert view.stack.currentWidget() is view.empty and window.ki_panel.no_corpus.isVisibleTo(window.ki_panel)
    assert not window.ki_panel.run_button.isEnabled()


def test_cancelled_import_leaves_the_corpus_unchanged(qtbot, window, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} about metformin, insulin and glucose control." * 4 for i in range(40000)),
                   encoding="utf-8")
    view = window.corpora_view
    qtbot.waitUntil(lambda: window.corpora.loaded, timeout=10000)
    task = view.import_paths("big", [str(big)])
    view.cancel_button.click()
    wait_idle(qtbot, window)
    assert task.token.cancelled and "cancelled" in view.status.text()
    assert window.corpora.names() == [] and view.stack.currentWidget() is view.empty


@pytest.mark.slow
def test_hostile_passage_text_is_shown_literally(qtbot, window, tmp_path, monkeypatch):
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({"id": "<b>src</b>", "title": "<i>Title</i>", "text": HOSTILE}) + "\n", encoding="utf-8")
    view = window.corpora_view
    qtbot.waitUntil(lambda: window.corpora.loaded, timeout=10000)
    view.import_paths("evil <u>corpus</u>", [str(path)])
    wait_corpora(qtbot, window, ["evil <u>corpus</u>"])
    assert view.tree.topLevelItem(0).text(0) == "evil <u>corpus</u>"
    passage = window.session.read(lambda st: search(st.db, "evil <u>corpus</u>", "metformin glucose", 3))[0]

    # a chain whose KI cites that passage: one judged step, one not applicable
    steps = ["Metformin lowers hepatic glucose output.", "Let us think step by step."]
    run_id, chain_id = store_fake_chain(window.session, fake_record(steps))
    ki_steps = [{"index": 0, "text": steps[0], "applicable": True, "ki": 0.8, "reason": "states a factual claim",
                 "judge_p_yes": 0.4, "judge_p_no": 0.1, "query": "metformin lowers hepatic glucose output",
                 "claim": steps[0], "evidence": [{"source": passage.source, "chunk": passage.chunk,
                                                  "score": passage.score, "chunk_id": passage.chunk_id}]},
                {"index": 1, "text": steps[1], "applicable": False, "ki": None, "reason": "planning or meta statement",
                 "evidence": []}]

    def add_ki(store):
        judge = store.ensure_model({"path": "/models/judge.gguf", "sha256": "a" * 64})
        store.save_ki(chain_id, judge, "evil <u>corpus</u>", ki_steps, 0.8)

    window.session.write(add_ki)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
                    and not window.results.pending, timeout=10000)
    panel = window.ki_panel
    assert not panel.isVisibleTo(window.results)  # the plots stay in front until asked for
    window.results.ki_button.click()
    assert panel.isVisibleTo(window.results) and window.results.ki_button.isChecked()
    window.results.select_step(0)
    qtbot.waitUntil(lambda: panel.evidence.step == 0, timeout=5000)
    passages = panel.evidence.passages
    assert passages.items[0].heading.startswith("[1]  hostile.jsonl > <b>src</b> > <i>Title</i>  ·  chunk 0")
    assert passages.passage_text(0) == HOSTILE
    assert "<i>Title</i>" in passages.toPlainText() and HOSTILE in passages.toPlainText()
    html = passages.toHtml()
    assert "<img" not in html and "<script>" not in html and "<b>src" not in html
    check_highlights(passages, 0, HOSTILE, ki_steps[0]["query"])
    assert window.results.cards["ki"].value.text() == "0.800"
    model, col = window.results.table.steps_model, ki_column(window.results.table)
    assert model.data(model.index(1, col)) == "n/a"
    window.results.select_step(1)
    assert passages.items == [] and "planning or meta statement" in panel.evidence.fields["verdict"].text()

    # the search box shows the same passage literally
    window.corpora_view.query.setText("metformin glucose")
    window.corpora_view.run_search()
    qtbot.waitUntil(lambda: window.corpora_view.hits_tree.topLevelItemCount() == 1, timeout=10000)
    assert window.corpora_view.hits_tree.topLevelItem(0).text(1) == "hostile.jsonl > <b>src</b> > <i>Title</i>"
    assert window.corpora_view.preview.passage_text(0) == HOSTILE

    # confirmations show corpus names as plain text
    shown = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: shown.append((box.textFormat(), box.text())) or 0)
    assert confirm(window, "Remove", "Remove “evil <u>corpus</u>”?") is False
    assert shown == [(Qt.TextFormat.PlainText, "Remove “evil <u>corpus</u>”?")]


def test_several_evaluations_can_be_shown(qtbot, window):
    steps = ["Metformin lowers hepatic glucose output.", "Insulin lowers blood glucose."]
    run_id, chain_id = store_fake_chain(window.session, fake_record(steps))

    def add_ki(store):
        for n, (judge, values) in enumerate((("a", [0.9, 0.7]), ("b", [0.2, 0.4]))):
            model = store.ensure_model({"path": f"/models/judge-{judge}.gguf", "sha256": judge * 64})
            ki_steps = [{"index": i, "text": t, "applicable": True, "ki": v, "reason": "states a factual claim",
                         "evidence": []} for i, (t, v) in enumerate(zip(steps, values, strict=True))]
            store.save_ki(chain_id, model, f"corpus-{n}", ki_steps, sum(values) / 2)

    window.session.write(add_ki)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
                    and not window.results.pending, timeout=10000)
    results, panel = window.results, window.ki_panel
    model, col = results.table.steps_model, ki_column(results.table)
    combo = panel.evaluation
    assert combo.count() == 2 and combo.currentIndex() == 1 and not combo.isHidden()
    assert "corpus-1 · judge-b · KI 0.300" in combo.itemText(1)
    assert [model.data(model.index(r, col), Qt.ItemDataRole.UserRole) for r in range(2)] == [0.2, 0.4]
    assert results.cards["ki"].value.text() == "0.300"
    results.select_step(1)
    combo.activated.emit(0)  # the user picks the first evaluation
    assert [model.data(model.index(r, col), Qt.ItemDataRole.UserRole) for r in range(2)] == [0.9, 0.7]
    assert results.cards["ki"].value.text() == "0.800" and results.selected == 1
    assert panel.evidence.step == 1 and panel.evidence.heading.text() == "Step 2  ·  KI 0.700"
