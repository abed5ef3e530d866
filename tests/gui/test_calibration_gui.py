"""The KI panel shows the judge's stored calibration: its Brier score before and after, a reliability
diagram, and (a setting, off by default) each step's calibrated KI beside the raw one."""

from __future__ import annotations

import random

import pytest

from kiig_desktop.metrics import calibration as C
from kiig_desktop.store import judge_validation

from .records import fake_record, store_fake_chain
from .test_judge_validation_gui import _add_ki, _open, build_info_claims_sha

STEPS = ["Metformin lowers hepatic glucose output.", "Insulin lowers blood glucose."]


def _calibrate(judge: str) -> dict:
    rng = random.Random(2)
    probs = [rng.random() for _ in range(200)]
    labels = [rng.random() < C.sigmoid(2 * C.logit(p)) for p in probs]
    fit = C.calibrate(probs, labels)
    judge_validation.save({"model": {"path": f"/models/judge-{judge}.gguf", "sha256": judge * 64}, "method": 1,
                           "claims_sha256": build_info_claims_sha(), "auroc": 0.8, "auroc_ci": [0.7, 0.9],
                           "accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "n": 200, "k": 3,
                           "calibration": {**fit, "fitted": "2026-12-05T20:00:00+00:00"}})
    return fit


@pytest.mark.slow
def test_calibrated_ki_is_a_setting_off_by_default_with_its_reliability_diagram(qtbot, window):
    run_id, chain_id = store_fake_chain(window.session, fake_record(STEPS))
    _add_ki(window, chain_id, "5")  # a judge without a calibration
    _open(qtbot, window, run_id, chain_id)
    panel = window.ki_panel
    view = panel.calibration
    assert view.isVisibleTo(panel) and "No calibration stored" in view.summary.text() and not view.check.isEnabled()

    fit = _calibrate("6")
    _add_ki(window, chain_id, "6")
    with window.session.reader() as store:
        window.results.set_ki(chain_id, store.load_ki(chain_id))
    assert view.check.isEnabled() and not view.check.isChecked()  # uncalibrated stays the default
    assert f"Brier {fit['brier_before']:.3f} → {fit['brier_after']:.3f}" in view.summary.text()
    window.results.select_step(1)
    assert panel.evidence.heading.text() == "Step 2  ·  KI 0.600"  # raw, as stored
    view.check.setChecked(True)
    expected = C.apply(0.6, fit["a"], fit["b"])
    assert panel.evidence.heading.text() == f"Step 2  ·  KI 0.600  ·  calibrated {expected:.3f}"
    assert f"calibrated {expected:.3f}" in panel.evidence.fields["judge"].text()
    assert view.plot.isVisibleTo(panel)
    points = view.drawn_points()
    assert points["raw"] == len(fit["reliability_before"]) and points["calibrated (out of sample)"] == len(fit["reliability_after"])
    assert window.engines.qsettings.value("ki/show_calibrated") == "true"  # remembered
    view.check.setChecked(False)
    assert panel.evidence.heading.text() == "Step 2  ·  KI 0.600"


@pytest.mark.parametrize("mode", ["passages-true-false", "reasoningeval-pipeline"])
def test_no_calibration_for_the_true_false_modes(qtbot, window, mode):
    from kiig_desktop.gui.knowledge.calibration_view import evaluation_calibration

    _calibrate("6")
    assert evaluation_calibration({"judge": {"sha256": "6" * 64}, "method": 1, "mode": mode}) is None
    assert evaluation_calibration({"judge": {"sha256": "6" * 64}, "method": 1, "mode": "probability"}) is not None
