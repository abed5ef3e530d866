"""Calibrated KI: Platt scaling of the judge's p(yes) on its log-odds, against a hand-computed fit, the
optimality conditions, a synthetic judge of known calibration; k-fold cross-validation; `kiig
judge-check --calibrate` storing the fit with the validation and `kiig ki --calibrated` using it."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.engine.models import resolve_model
from kiig_desktop.metrics import calibration as C
from kiig_desktop.resources import resource_path
from kiig_desktop.runs import judge_check as jc
from kiig_desktop.store import SessionStore
from kiig_desktop.store import judge_validation as validation
from tests.support.paths import ROOT


def _two_groups() -> tuple[list[float], list[bool]]:
    # p = 0.8 (log-odds ln 4): 3 supported, 1 not; p = 0.2 (log-odds -ln 4): 1 supported, 3 not
    return [0.8] * 4 + [0.2] * 4, [True, True, True, False, True, False, False, False]


def test_a_hand_computed_fit():
    """Two values of x = logit(p): the fit makes sigmoid(a x + b) equal each group's mean target.

    Smoothed targets (N+ = N- = 4): t+ = 5/6, t- = 1/6, so the groups' means are 2/3 and 1/3:
    a ln 4 + b = ln 2 and -a ln 4 + b = -ln 2, hence a = 1/2, b = 0. Plain 0/1 targets: means 3/4
    and 1/4, a = ln 3 / ln 4, b = 0."""
    probs, labels = _two_groups()
    assert C.targets(labels) == [5 / 6 if y else 1 / 6 for y in labels]
    a, b = C.fit_platt(probs, labels)
    assert a == pytest.approx(0.5, abs=1e-9) and b == pytest.approx(0.0, abs=1e-9)
    a, b = C.fit_platt(probs, labels, smooth=False)
    assert a == pytest.approx(math.log(3) / math.log(4), abs=1e-9) and b == pytest.approx(0.0, abs=1e-9)
    assert C.apply(0.8, a, b) == pytest.approx(0.75) and C.apply(None, a, b) is None


def test_the_gradient_is_zero_at_the_fit_and_every_nearby_point_is_worse():
    rng = random.Random(7)
    probs = [rng.random() for _ in range(60)]
    labels = [rng.random() < p ** 0.5 for p in probs]
    a, b = C.fit_platt(probs, labels)
    xs, ts = [C.logit(p) for p in probs], C.targets(labels)
    ga, gb = C.gradient(a, b, xs, ts)
    assert abs(ga) < 1e-8 and abs(gb) < 1e-8  # sum (q - t) x = 0 and sum (q - t) = 0
    best = C._loss(a, b, xs, ts)
    for da, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert C._loss(a + da, b + db, xs, ts) > best


def test_a_synthetic_judge_of_known_calibration():
    """p_true = sigmoid(2 logit(p) + 0.5): the fit recovers a = 2, b = 0.5, and calibrating lowers the
    out-of-sample Brier score."""
    rng = random.Random(1)
    probs, labels = [], []
    for _ in range(20000):
        x = rng.gauss(0.0, 1.5)
        probs.append(C.sigmoid(x))
        labels.append(rng.random() < C.sigmoid(2.0 * x + 0.5))
    a, b = C.fit_platt(probs, labels)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(0.5, abs=0.1)
    fit = C.calibrate(probs, labels, k=5)
    assert fit["a"] == pytest.approx(a) and fit["brier_after"] < fit["brier_before"]
    assert fit["log_loss_after"] < fit["log_loss_before"]
    bins = fit["reliability_after"]
    assert sum(b["n"] for b in bins) == 20000 and all(abs(b["mean_p"] - b["frac_true"]) < 0.05 for b in bins if b["n"] > 500)


def test_cross_validation_scores_each_claim_with_a_fit_that_never_saw_it():
    rng = random.Random(3)
    probs = [rng.random() for _ in range(40)]
    labels = [rng.random() < p for p in probs]
    held_out = C.cross_validated(probs, labels, k=4, seed=0)
    folds = C.folds_of(labels, 4, 0)
    assert sorted(set(folds)) == [0, 1, 2, 3]
    for f in range(4):
        a, b = C.fit_platt([p for p, g in zip(probs, folds, strict=True) if g != f],
                           [y for y, g in zip(labels, folds, strict=True) if g != f])
        for i in (i for i, g in enumerate(folds) if g == f):
            assert held_out[i] == pytest.approx(C.apply(probs[i], a, b), abs=1e-12)
    with pytest.raises(ValueError, match="both labels"):
        C.calibrate([0.5, 0.6, 0.7, 0.8], [True] * 4)


def _kiig(data_dir: Path, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIIG_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_judge_check_calibrates_a_stored_check_and_ki_uses_it(tmp_path):
    data = tmp_path / "data"
    claims = jc.load_claims()
    path = tmp_path / "claims.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in claims), encoding="utf-8")
    rng = random.Random(5)  # a stored check whose p(yes) leans the right way: no model is needed to calibrate it
    rows = [{"id": c["id"], "kind": c["kind"], "label": c["label"], "p_yes": min(0.99, max(0.01, rng.gauss(0.6 if c["label"] else 0.4, 0.15)))}
            for c in claims]
    sha = resolve_model("default").sha256()
    stored = {"model": {"path": "x", "sha256": sha}, "method": 1, "mode": "probability", "k": 3, "claims": rows,
              "claims_sha256": jc.claims_fingerprint(path), "checked": "2026-01-01T00:00:00+00:00", "auroc": 0.8,
              "auroc_ci": [0.7, 0.9], "accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "n": len(rows),
              "engine_options": {"chat_template": None, "n_gpu_layers": 0}}
    validation.save(stored, data_dir=data)
    missing = _kiig(tmp_path / "other", "ki", "--model", "default", "--db", tmp_path / "nothing.kiig", "--corpus", "c",
                    "--input", path, "--output", tmp_path / "o.jsonl", "--calibrated", "--ki-mode", "passages-true-false")
    assert missing.returncode == 2 and "--calibrated is only for --ki-mode probability" in missing.stderr
    done = _kiig(data, "judge-check", "--model", "default", "--claims", path, "--calibrate", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["cached"] is True  # calibrated from the stored p(yes), without loading the judge
    fit = out["calibration"]
    expected = C.calibrate([r["p_yes"] for r in rows], [r["label"] for r in rows], k=5)
    assert fit["a"] == pytest.approx(expected["a"]) and fit["b"] == pytest.approx(expected["b"])
    assert fit["brier_before"] == pytest.approx(C.brier([r["p_yes"] for r in rows], [r["label"] for r in rows]))
    assert validation.latest_calibration(sha, 1, data_dir=data)["a"] == pytest.approx(fit["a"])
    text = _kiig(data, "judge-check", "--model", "default", "--claims", path)
    assert "Brier" in text.stdout and "-fold cross-validated" in text.stdout

    db = tmp_path / "s.kiig"
    assert _kiig(data, "corpus", "add", "--db", db, "--name", "clinical", resource_path("corpus", "clinical_facts.jsonl")).returncode == 0
    chain = {"id": "c1", "question": "Which test monitors warfarin therapy?", "steps": ["Warfarin therapy is monitored with the INR."]}
    (tmp_path / "in.jsonl").write_text(json.dumps(chain) + "\n")
    ki = _kiig(data, "ki", "--model", "default", "--db", db, "--corpus", "clinical", "--input", tmp_path / "in.jsonl",
               "--output", tmp_path / "ki.jsonl", "--calibrated", "--k", "2")
    assert ki.returncode == 0, ki.stderr
    record = json.loads((tmp_path / "ki.jsonl").read_text())
    step = record["steps"][0]
    assert step["ki"] is not None and step["ki_calibrated"] == pytest.approx(C.apply(step["ki"], fit["a"], fit["b"]))
    assert record["ki_calibrated_mean"] == pytest.approx(step["ki_calibrated"]) and record["calibration"]["a"] == pytest.approx(fit["a"])
    with SessionStore.open(db, create=False, write=False) as store:
        run = next(r for r in store.list_runs() if r["kind"] == "ki")
        (evaluation,) = store.load_ki(store.chains_for_run(run["id"])[0]["id"])
    assert evaluation["steps"][0]["ki"] == step["ki"] and evaluation["steps"][0]["ki_calibrated"] == pytest.approx(step["ki_calibrated"])
    plain = _kiig(tmp_path / "fresh", "ki", "--model", "default", "--db", db, "--corpus", "clinical", "--input",
                  tmp_path / "in.jsonl", "--output", tmp_path / "ki2.jsonl", "--calibrated")
    assert plain.returncode == 2 and "no calibration is stored for this judge" in plain.stderr
