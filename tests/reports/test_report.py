"""Batch comparison summary and report: statistics match stats.py, hostile text is escaped, the HTML
opens in a real headless browser. Uses a synthetic batch run (no model needed)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kiig_desktop import cli
from kiig_desktop.reports.html import render_csv, render_html, render_json
from kiig_desktop.reports.stats import bootstrap_mean_ci, paired_diff_ci
from kiig_desktop.reports.summary import METRIC_KEYS, chain_details, finding, summarize
from kiig_desktop.runs.batch import batch_key
from kiig_desktop.store import SessionStore
from tests.support.batch_records import HOSTILE, SHA_A, SHA_B, batch_record
from tests.support.require import require

N_ITEMS = 12


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """A batch run with two models: B answers more items but with lower InfoGain; one error, one unmatched item."""
    path = tmp_path_factory.mktemp("report") / "synthetic.kiig"
    rng = random.Random(3)
    with SessionStore.open(path) as store:
        ids = {}
        for sha, name in ((SHA_A, f"model-A {HOSTILE}"), (SHA_B, "model-B")):
            ids[sha] = store.ensure_model({"path": f"/m/{sha[:4]}.gguf", "sha256": sha, "name": name})
        scorer = store.ensure_model({"path": "/m/scorer.gguf", "sha256": "c" * 64, "name": "scorer"})
        settings = {"method": "kiig-batch-1", "subjects": [SHA_A, SHA_B], "dataset_sha256": "d" * 64, "n_items": N_ITEMS}
        run_id, _ = store.find_or_create_run("batch", settings, {"scorer": scorer}, {"kiig": "test"}, seed=0, name=HOSTILE)
        for sha, name in ((SHA_A, f"model-A {HOSTILE}"), (SHA_B, "model-B")):
            for i in range(N_ITEMS):
                if sha == SHA_B and i == N_ITEMS - 1:
                    continue  # B never ran the last item: pairs must match by id
                item_id = f"it-{i}" if i else f"it-0{HOSTILE}"
                correct = rng.random() < (0.3 if sha == SHA_A else 0.8)
                error = f"context overflow {HOSTILE}" if (sha == SHA_A and i == 4) else None
                rec = batch_record(item_id, sha, name, rng, correct=correct, error=error, ki=None if i == 5 else rng.random())
                if sha == SHA_B and rec.get("steps"):
                    rec["info_gain_mean"] -= 1.5
                gen = {"text": f"Reasoning {HOSTILE}\nThe answer is (C).", "tokens": [], "model_id": ids[sha],
                       "extracted_answer": rec["extracted_answer"], "correct": correct}
                item = {"id": item_id, "question": f"Question {i} {HOSTILE}", "answer": "Metformin", "kind": "mcq",
                        "options": {"A": "x", "B": "Metformin"}, "answer_idx": "B"}
                store.save_chain(run_id, batch_key(sha, item_id), rec, item=item, generation=gen)
        store.set_run_status(run_id, "finished")
    return path


def _direct(store: SessionStore, run_id: int, sha: str, metric_key: str) -> dict[str, float]:
    """item id -> value, straight from the stored chains (save order)."""
    out = {}
    records = store.load_run_records(run_id)
    for chain in store.chains_for_run(run_id):
        if not chain["key"].startswith(sha[:12] + ":"):
            continue
        rec = records[chain["key"]]
        failed = chain["status"] == "error"
        value = {
            "accuracy": None if chain["correct"] is None else float(chain["correct"]),
            "info_gain_mean": None if failed else chain["info_gain_mean"],
            "delta_nll_mean": None if failed else chain["delta_nll_mean"],
            "ki_mean": None if failed else chain["ki_mean"],
            "n_steps": None if failed else chain["n_steps"],
            "n_tokens": rec["n_generated_tokens"],
            "paper_info_gain": None if failed else rec.get("paper_info_gain"),
            "paper_mean": None if failed else rec.get("paper_mean"),
        }[metric_key]
        out[rec["id"]] = float("nan") if value is None else float(value)
    return out


def test_summary_equals_direct_computation_with_stats(session):
    with SessionStore.open(session, write=False) as store:
        run_id = store.list_runs()[-1]["id"]
        report = summarize(store, run_id, n_boot=500, seed=11)
        assert [m.key for m in report.models] == [SHA_A[:12], SHA_B[:12]]
        a, b = report.models
        assert (a.n_chains, a.n_errors, b.n_chains, b.n_errors) == (N_ITEMS, 1, N_ITEMS - 1, 0)
        for m, sha in ((a, SHA_A), (b, SHA_B)):
            for key in METRIC_KEYS:
                values = list(_direct(store, run_id, sha, key).values())
                mean, lo, hi = bootstrap_mean_ci(values, n_boot=500, seed=11)
                e = m.metrics[key]
                assert (e.mean, e.lo, e.hi) == pytest.approx((mean, lo, hi), rel=1e-12, abs=1e-12), key
        assert a.metrics["info_gain_mean"].n == N_ITEMS - 1  # the failed chain is left out, not counted as 0
        assert a.metrics["ki_mean"].n == N_ITEMS - 2
        for m, sha in ((a, SHA_A), (b, SHA_B)):  # short chains: counted as left out of paper mode, not as 0
            recs = [r for k, r in store.load_run_records(run_id).items() if k.startswith(sha[:12]) and not r.get("error")]
            short = sum(1 for r in recs if len(r["steps"]) < 3)
            assert m.n_paper_excluded == short > 0
            assert m.metrics["paper_mean"].n == len(recs) - short
        assert f"model-B {b.n_paper_excluded} of {b.n_chains - b.n_errors}." in render_html(report)
        for key in METRIC_KEYS:
            va, vb = _direct(store, run_id, SHA_A, key), _direct(store, run_id, SHA_B, key)
            common = [i for i in va if i in vb]
            assert len(common) == N_ITEMS - 1
            mean, lo, hi, n = paired_diff_ci([vb[i] for i in common], [va[i] for i in common], n_boot=500, seed=11)
            p = report.pair(SHA_A[:12], SHA_B[:12], key)
            assert (p.diff.mean, p.diff.lo, p.diff.hi, p.diff.n) == pytest.approx((mean, lo, hi, n), rel=1e-12, abs=1e-12)
        assert report.pair(SHA_A[:12], SHA_B[:12], "info_gain_mean").direction == "lower"
        text = finding(report, SHA_A[:12], SHA_B[:12])
        assert "model-B" in text and "less information" in text
        # restricting and reordering models
        only_b = summarize(store, run_id, models=["model-B"], n_boot=100)
        assert [m.name for m in only_b.models] == ["model-B"] and not only_b.pairs


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs
        self.ids |= {v for k, v in attrs if k == "id" and v}


@pytest.fixture(scope="module")
def html_file(session, tmp_path_factory) -> Path:
    with SessionStore.open(session, write=False) as store:
        report = summarize(store, n_boot=200)
        details = chain_details(store, report)
        html = render_html(report, details)
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_html_escapes_hostile_text_and_is_self_contained(html_file):
    html = html_file.read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<img" not in html.lower() and "</details></table>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    parser = _Tags()
    parser.feed(html)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "p", "b",
                           "section", "table", "thead", "tbody", "tr", "th", "td", "span", "br", "div", "svg", "rect",
                           "line", "path", "text", "circle", "details", "summary", "pre", "a", "dl", "dt", "dd", "footer",
                           "ol", "li"}
    assert not [k for k, _ in parser.attrs if k.startswith("on")]
    assert not [v for k, v in parser.attrs if k in ("src", "href") and v and not v.startswith("#")]
    assert "http://" not in html and "https://" not in html
    assert {"summary-table", "pairs-table", "items-table", "timing-table"} <= parser.ids
    assert html.count("<details") == 2 * N_ITEMS - 1


def test_json_and_csv(session, capsys):
    code = cli.main(["report", "--db", str(session), "--format", "json", "--n-boot", "100"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [m["name"] for m in data["models"]][1] == "model-B"
    assert {p["metric"] for p in data["pairs"]} == set(METRIC_KEYS)
    assert len(data["items"]) == 2 * N_ITEMS - 1 and data["findings"]
    with SessionStore.open(session, write=False) as store:
        report = summarize(store, n_boot=100)
    assert json.loads(render_json(report)) == data  # the CLI's JSON is the library's, bootstrap seed included
    models_csv = render_csv(report, "models").splitlines()
    assert len(models_csv) == 3 and models_csv[0].startswith("model,sha256,n_chains")
    assert len(render_csv(report, "items").splitlines()) == 2 * N_ITEMS
    assert len(render_csv(report, "pairs").splitlines()) == 1 + len(METRIC_KEYS)


def test_report_cli_errors(tmp_path, capsys, session):
    assert cli.main(["report", "--db", str(tmp_path / "missing.kiig")]) == 2
    empty = tmp_path / "empty.kiig"
    SessionStore.open(empty).close()
    assert cli.main(["report", "--db", str(empty)]) == 2
    assert "no batch run" in capsys.readouterr().err
    out = tmp_path / "r.html"
    assert cli.main(["report", "--db", str(session), "--output", str(out), "--no-chains", "--n-boot", "50"]) == 0
    assert 'id="summary-table"' in out.read_text() and "<details" not in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600  # the report holds question text
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("r.")) == ["r.html"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium_flags(tmp_path) -> list[str]:
    """Headless chromium with a private profile and its console on stderr (fails naming it when absent)."""
    browser = _chromium()
    require("chromium", browser is not None, "Debian: apt-get install chromium; `make test` installs it")
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0"]


def chromium_dom(html_file, tmp_path) -> tuple[str, str]:
    """The DOM chromium built from ``html_file`` after its scripts ran, and chromium's stderr."""
    r = subprocess.run([*chromium_flags(tmp_path), "--dump-dom", html_file.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, r.stderr


@pytest.mark.slow
def test_report_opens_in_headless_chromium(html_file, tmp_path):
    flags = chromium_flags(tmp_path)
    dom, stderr = chromium_dom(html_file, tmp_path)
    assert 'id="summary-table"' in dom and "model-B" in dom and "<svg" in dom
    assert "&lt;script&gt;" in dom and "<script>alert" not in dom
    problems = [ln for ln in stderr.splitlines()
                if "CONSOLE" in ln or "Uncaught" in ln or "Refused to" in ln or "Content Security Policy" in ln]
    assert not problems, problems
    png = tmp_path / "report.png"
    r = subprocess.run([*flags, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={png}", html_file.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and png.stat().st_size > 20_000, r.stderr[-2000:]
