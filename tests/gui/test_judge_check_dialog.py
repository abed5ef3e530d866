"""The judge-check screen: write or import labelled claims for a corpus of the session, check the
embedded judge against that corpus with progress, cancel, and the result stored for the KI views."""

from __future__ import annotations

import json
import stat

import pytest

from kiig_desktop.knowledge.corpus import corpus_fingerprint
from kiig_desktop.resources import resource_path
from kiig_desktop.runs import judge_check as jc
from kiig_desktop.store import judge_validation

from .conftest import wait_idle

CLAIMS = [("Metformin is a first-line drug for type 2 diabetes.", True), ("Warfarin is monitored with the INR.", True),
          ("Heparin is reversed with vitamin K.", False), ("Aspirin raises the platelet count.", False)]


def _corpus(qtbot, window) -> None:
    from kiig_desktop.knowledge.corpus import add_documents

    window.session.write(lambda store: add_documents(store.db, "clinical", [resource_path("corpus", "clinical_facts.jsonl")]))
    window.corpora.refresh()
    qtbot.waitUntil(lambda: bool(window.corpora.items), timeout=10000)


@pytest.mark.slow  # the real judge over real claims: 20-30 s on the loaded 2-core machine
def test_write_claims_and_check_the_judge_on_the_sessions_corpus(qtbot, window, data_dir, tmp_path):
    _corpus(qtbot, window)
    dialog = window.ki_panel.open_judge_check()
    assert dialog.isVisible() and dialog.corpus.currentData() == "clinical"
    dialog.add_claim(*CLAIMS[0])
    imported = tmp_path / "more.jsonl"  # a `kiig judge-check --claims` file
    imported.write_text("".join(json.dumps({"claim": t, "label": y}) + "\n" for t, y in CLAIMS[1:]))
    dialog.import_claims(imported)
    assert [(c["claim"], c["label"]) for c in dialog.claims()] == CLAIMS
    with qtbot.waitSignal(dialog.checked, timeout=300000) as got:
        task = dialog.run()
        assert task is not None and not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    result = got.args[0]
    wait_idle(qtbot, window)
    path = data_dir / "claims" / "clinical.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().splitlines()) == 4
    fingerprint = window.session.read(lambda store: corpus_fingerprint(store.db, "clinical"))
    assert result["corpus"] == {"name": "clinical", "fingerprint": fingerprint, "demo": False} and result["n"] == 4
    stored = judge_validation.lookup_for_corpus(result["model"]["sha256"], 1, fingerprint)
    assert stored is not None and stored["claims_file_sha256"] == jc.claims_fingerprint(path)
    assert "AUROC" in dialog.outcome.text() and "against corpus 'clinical'" in dialog.outcome.text()
    assert dialog.run_button.isEnabled() and not dialog.progress.isVisible()


def test_cancel_stores_nothing_and_one_sided_claims_are_refused(qtbot, window, data_dir):
    _corpus(qtbot, window)
    dialog = window.ki_panel.open_judge_check()
    dialog.add_claim(CLAIMS[0][0], True)
    with qtbot.waitSignal(window.ki_panel.message, timeout=5000) as msg:
        assert dialog.run() is None
    assert "both kinds" in msg.args[0]
    for text, label in CLAIMS[1:]:
        dialog.add_claim(text, label)
    task = dialog.run()
    task.cancel()
    wait_idle(qtbot, window)
    assert dialog.status.text() == "Cancelled; nothing was stored." and dialog.result is None
    assert not (data_dir / judge_validation.FILE_NAME).exists()
