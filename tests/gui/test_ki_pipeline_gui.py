"""The evidence panel shows every stage of ReasoningEval's pipeline: the query its LLM wrote, the
RAG answer (as plain text) and the judge's True/False reply; the RAG row is hidden for other modes."""

from __future__ import annotations

from kiig_desktop.gui.knowledge.evidence_panel import EvidencePanel


def test_the_rag_answer_is_shown_as_plain_text(qtbot):
    panel = EvidencePanel()
    qtbot.addWidget(panel)
    ks = {"index": 1, "text": "Warfarin is monitored with the INR.", "applicable": True, "ki": 1.0,
          "reason": "judged against the RAG answer", "query_reply": "What monitors warfarin?", "query": "What monitors warfarin?",
          "rag_answer": "<b>The INR</b> monitors warfarin.", "judge_reply": "True", "evidence": []}
    panel.show_step(0, ks, {}, "Warfarin is monitored with the INR.", "What monitors warfarin?")
    assert panel.form.isRowVisible(panel.fields["rag"])
    assert panel.fields["rag"].text() == "<b>The INR</b> monitors warfarin."  # markup shown literally
    assert "Reply 'True'" in panel.fields["judge"].text() and "KI 1" in panel.fields["judge"].text()
    none = {**ks, "applicable": False, "query_reply": "None", "query": None, "rag_answer": None, "judge_reply": None}
    panel.show_step(1, none, {}, "Let us think.", "")
    assert "replied None" in panel.fields["rag"].text() and "no query" in panel.fields["judge"].text()
    plain = {"index": 1, "text": "x", "applicable": True, "ki": 0.7, "judge_p_yes": 0.7, "judge_p_no": 0.3, "evidence": []}
    panel.show_step(0, plain, {}, "x", "x")
    assert not panel.form.isRowVisible(panel.fields["rag"])
