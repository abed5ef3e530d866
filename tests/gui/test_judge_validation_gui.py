"""KI views say how far the judge can be trusted (steps table, evidence panel, dashboard), the KI panel
offers both KI rules, and Compare and the dashboard warn when numbers come from different builds."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from kiig_desktop.engine import build_info
from kiig_desktop.store import judge_validation

from .records import fake_record, store_fake_chain
from .test_dashboard import show_dashboard, store_batch_run
from .test_ki_gui import ki_column

STEPS = ["Metformin lowers hepatic glucose output.", "Insulin lowers blood glucose."]


def _add_ki(window, chain_id: int, judge: str) -> None:
    def add(store):
        model = store.ensure_model({"path": f"/models/judge-{judge}.gguf", "sha256": judge * 64})
        ki_steps = [{"index": i, "text": t, "applicable": True, "ki": 0.6, "reason": "states a factual claim", "evidence": []}
                    for i, t in enumerate(STEPS)]
        store.save_ki(chain_id, model, "demo", ki_steps, 0.6, {"mode": "probability", "k": 3, "method": 1})

    window.session.write(add)


def _validate(judge: str, auroc: float) -> None:
    judge_validation.save({"model": {"path": f"/models/judge-{judge}.gguf", "sha256": judge * 64}, "method": 1,
                           "claims_sha256": build_info_claims_sha(), "auroc": auroc, "auroc_ci": [auroc - 0.1, auroc + 0.05],
                           "accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "n": 64, "k": 3})


def build_info_claims_sha() -> str:
    from kiig_desktop.files import file_sha256

    return file_sha256(judge_validation.claims_path())


def _open(qtbot, window, run_id: int, chain_id: int) -> None:
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
                    and not window.results.pending, timeout=10000)


def _header(window) -> tuple[str, str]:
    model = window.results.table.steps_model
    col = ki_column(window.results.table)
    return (model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole),
            model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole))


def test_ki_views_warn_about_an_unvalidated_or_weak_judge(qtbot, window):
    run_id, chain_id = store_fake_chain(window.session, fake_record(STEPS))
    _add_ki(window, chain_id, "7")  # a judge nobody has checked
    _open(qtbot, window, run_id, chain_id)
    panel = window.ki_panel
    title, tip = _header(window)
    assert title.endswith("\u26a0") and "not validated" in tip and "Check judge" in tip and "kiig judge-check" not in tip
    assert panel.validation.isVisibleTo(panel) and panel.validation.property("role") == "warning"
    assert "not validated" in panel.validation.text()

    _validate("8", 0.91)  # a good judge
    _add_ki(window, chain_id, "8")
    with window.session.reader() as store:  # as the KI panel shows a new evaluation once saved
        window.results.set_ki(chain_id, store.load_ki(chain_id))
    title, tip = _header(window)
    assert not title.endswith("\u26a0") and "AUROC 0.91" in tip
    assert panel.validation.property("role") == "muted" and "AUROC 0.91" in panel.validation.text()

    _validate("7", 0.55)  # now checked, and weak
    panel.evaluation.activated.emit(0)
    title, tip = _header(window)
    assert title.endswith("\u26a0") and "AUROC 0.55" in tip and "barely" in tip
    assert panel.validation.property("role") == "warning" and "barely" in panel.validation.text()


def test_ki_panel_offers_the_rules_with_their_default_passages(qtbot, window):
    panel = window.ki_panel
    assert panel.mode.currentData() == "probability" and panel.k.value() == 3
    panel.mode.setCurrentIndex(panel.mode.findData("passages-true-false"))
    assert panel.k.value() == 12
    panel.mode.setCurrentIndex(panel.mode.findData("reasoningeval-pipeline"))
    assert panel.k.value() == 12
    form = window.dashboard.form  # the batch form offers the same rules
    assert [form.ki_mode.itemData(i) for i in range(form.ki_mode.count())] == [
        "probability", "passages-true-false", "reasoningeval-pipeline"]


def test_dashboard_warns_when_a_run_mixes_builds_and_shows_the_judge(qtbot, window):
    cpu = build_info.describe(llama_cpp_python="0.3.36", system_info="CPU : AVX2 = 1 |", gpu_offload=False, n_gpu_layers=0,
                              n_batch=512, flash_attn=False, repack=False, n_threads=2, libraries=[])
    gpu = {**cpu, "backend": "CUDA", "n_gpu_layers": 99}
    run_id = store_batch_run(window.session, ["base-model", "tuned-model"], n_items=4)

    def mix(store):
        for n, (key, record) in enumerate(store.load_run_records(run_id).items()):
            store.save_chain(run_id, key, {**record, "build": gpu if n % 4 == 3 else cpu})

    window.session.write(mix)
    view = show_dashboard(qtbot, window)
    assert view.build_warning.isVisibleTo(view) and view.build_warning.property("role") == "warning"
    assert "backend: CPU vs CUDA" in view.build_warning.text() and "GPU layers: 0 vs 99" in view.build_warning.text()
    assert len(view.report.models) == 4  # each model's CPU and GPU chains in groups of their own
    assert not view.judge_note.isVisibleTo(view)  # this run has no judge


def test_compare_warns_when_chains_come_from_different_builds(qtbot, window):
    cpu = build_info.describe(llama_cpp_python="0.3.36", system_info="CPU : AVX2 = 1 |", gpu_offload=False, n_gpu_layers=0,
                              n_batch=512, flash_attn=False, repack=False, n_threads=2, libraries=[])
    ids = []
    for seed, build in enumerate((cpu, {**cpu, "n_batch": 256}), 1):
        ids.append(store_fake_chain(window.session, {**fake_record(STEPS, seed=seed), "build": build}))
    window.compare.add_chains(ids)
    qtbot.waitUntil(lambda: len(window.compare.results) == 2 and not window.tasks.active(), timeout=10000)
    label = window.compare.build_warning
    assert label.isVisibleTo(window.compare) and "batch size: 512 vs 256" in label.text()
    assert window.compare.table.item(1, 0).text().endswith("build 2")
    window.compare.clear()
    window.compare.add_chains(ids[:1])
    qtbot.waitUntil(lambda: len(window.compare.results) == 1 and not window.tasks.active(), timeout=10000)
    assert not label.isVisibleTo(window.compare)


@pytest.mark.slow  # the real judge over real claims: 20-30 s on the loaded 2-core machine
def test_check_judge_runs_the_validation_from_the_gui(qtbot, window, monkeypatch):
    """Check judge validates the judge behind the shown KI on the embedded model (real llama.cpp), with
    progress and Cancel; afterwards the KI header, the Mean KI card and the panel show its AUROC."""
    from kiig_desktop.runs import judge_check

    claims = judge_check.load_claims()
    subset = [c for c in claims if c["label"]][:3] + [c for c in claims if not c["label"]][:3]
    monkeypatch.setattr(judge_check, "load_claims", lambda path=None: subset)  # six claims keep it short
    info = window.engines.default_model()
    judge = {"path": info.path, "sha256": info.sha256()}
    run_id, chain_id = store_fake_chain(window.session, fake_record(STEPS))

    def add(store):
        ki_steps = [{"index": i, "text": t, "applicable": True, "ki": 0.6, "reason": "a claim", "evidence": []}
                    for i, t in enumerate(STEPS)]
        store.save_ki(chain_id, store.ensure_model(judge), "demo", ki_steps, 0.6, {"mode": "probability", "k": 3, "method": 1})

    window.session.write(add)
    _open(qtbot, window, run_id, chain_id)
    panel, card = window.ki_panel, window.results.cards["ki"]
    assert panel.check_button.text() == "Check judge" and "not validated" in card.note.text()

    progress = []
    task = panel.check_judge()
    task.progress.connect(progress.append)
    assert not panel.check_button.isEnabled() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: any(getattr(e, "done", 0) >= 1 for e in progress), timeout=120000)
    panel.cancel()
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    assert panel.status.text() == "Cancelled; nothing was stored."
    assert judge_validation.lookup(judge["sha256"], 1) is None and "not validated" in card.note.text()

    panel.check_button.click()
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=300000)
    stored = judge_validation.lookup(judge["sha256"], 1)
    assert stored is not None and stored["n"] == 6
    value = f"AUROC {stored['auroc']:.2f}"
    assert value in card.note.text() and value in card.toolTip() and value in panel.validation.text()
    assert value in _header(window)[1] and panel.check_button.text() == "Check judge again"
