"""The model comparison of a batch run: per-model means with bootstrap intervals, paired differences.

Shared by the GUI dashboard and ``kiig report`` (pure core, no Qt). :func:`summarize` reads a
``batch`` run from a session and returns a :class:`BatchReport`:

- ``models``: one :class:`ModelSummary` per subject model (in the order the run named them) with an
  :class:`Estimate` ``(mean, lo, hi, n)`` for each metric of :data:`METRICS`;
- ``pairs``: for every two models ``a`` (named first) and ``b``, a :class:`PairDiff` per metric on
  the items both have (matched by item id): ``b - a`` with its paired bootstrap interval;
- ``items``: one :class:`ItemResult` per chain (per model and item), with the chain id for the
  drill-down into the chain view (:func:`load_chain_detail`).

Per-chain values: ``accuracy`` is 1/0 for a graded answer; ``info_gain_mean``, ``delta_nll_mean``,
``paper_info_gain``, ``paper_mean`` and ``n_steps`` come from the scored chain (the paper-mode numbers
are missing for chains of 2 steps or fewer, which ModelSummary counts in ``n_paper_excluded``); ``ki_mean`` from its KI (missing when no applicable step was
judged); ``n_tokens`` is the number of tokens the subject model generated. A missing value (a chain
with an error, no KI) is left out of that metric's mean, never counted as 0. Every interval is
``stats.bootstrap_mean_ci`` / ``stats.paired_diff_ci`` with the same ``seed``, so numbers are
reproducible.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..errors import InputError
from ..store import judge_validation
from .builds import chain_build_id, record_build, split_by_build
from .review_stats import run_review_stats
from .stats import bootstrap_mean_ci, paired_diff_ci


def letter(i: int) -> str:
    """Short model labels in the run's order: A, B, C, ... (tables, plots and the report use them)."""
    return chr(ord("A") + i) if i < 26 else f"M{i + 1}"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    description: str
    percent: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "Accuracy", "%", "share of items whose extracted final answer is correct", percent=True),
    Metric("info_gain_mean", "Mean InfoGain", "ppl/step",
           "answer-perplexity drop per reasoning step -- answer perplexity, as the paper defines it (higher: more informative)"),
    Metric("delta_nll_mean", "Mean \u0394NLL", "nats/step", "answer negative log-likelihood drop per step"),
    Metric("paper_info_gain", "Paper InfoGain", "ppl",
           "whole-sequence perplexity, as ReasoningEval's code computes it: the sum of the sequence-perplexity drops "
           "over the steps divided by steps + 1; chains of 2 steps or fewer are excluded (its code gives them 0)"),
    Metric("paper_mean", "Paper mean PPL", "ppl",
           "whole-sequence perplexity, as ReasoningEval's code computes it: the sum of the steps' sequence perplexities "
           "divided by steps + 1 (the baseline only in the denominator); chains of 2 steps or fewer are excluded"),
    Metric("ki_mean", "Mean KI", "0-1", "Knowledge Index: judged support of each step's claim by the corpus"),
    Metric("n_steps", "Steps", "per chain", "reasoning steps per chain"),
    Metric("n_tokens", "Tokens", "per chain", "tokens the subject model generated"),
)
METRIC_KEYS = tuple(m.key for m in METRICS)


def metric(key: str) -> Metric:
    return next(m for m in METRICS if m.key == key)


@dataclass(frozen=True)
class Estimate:
    """A mean (or mean difference) with its bootstrap interval over ``n`` values; NaN when n = 0."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.lo > 0 or self.hi < 0)

    def to_dict(self) -> dict:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return clean


@dataclass
class ModelSummary:
    key: str  # sha256[:12], the chain-key prefix
    name: str
    path: str
    sha256: str
    n_chains: int
    n_errors: int
    metrics: dict[str, Estimate]
    timing: dict[str, float] = field(default_factory=dict)  # median seconds per item: generation_s, scoring_s, ki_s, total_s
    n_paper_excluded: int = 0  # scored chains too short for ReasoningEval's paper-mode numbers

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "metrics"}
        out["metrics"] = {k: e.to_dict() for k, e in self.metrics.items()}
        return out


@dataclass
class PairDiff:
    """``b - a`` for one metric over the items both models answered."""

    a: str
    b: str
    metric: str
    diff: Estimate

    @property
    def direction(self) -> str:
        """``higher`` / ``lower`` when the interval excludes 0, else ``unclear``."""
        if not self.diff.excludes_zero:
            return "unclear"
        return "higher" if self.diff.mean > 0 else "lower"

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "metric": self.metric, "direction": self.direction, **self.diff.to_dict()}


@dataclass
class ItemResult:
    """One chain of the run: a model's answer to one item, with its chain-level numbers."""

    item_id: str
    model: str  # ModelSummary.key
    chain_id: int
    key: str
    question: str | None
    gold: str | None
    extracted_answer: str | None
    correct: bool | None
    info_gain_mean: float | None
    delta_nll_mean: float | None
    ki_mean: float | None
    n_steps: int | None
    n_tokens: int | None
    error: str | None = None
    timing: dict = field(default_factory=dict)
    build: str | None = None  # id of the llama.cpp build that scored the chain (reports.builds)
    paper_info_gain: float | None = None
    paper_mean: float | None = None
    paper_excluded: bool = False

    def value(self, key: str) -> float:
        """The chain's value for a metric of :data:`METRICS` (NaN when missing)."""
        v = (None if self.correct is None else float(self.correct)) if key == "accuracy" else getattr(self, key)
        return float("nan") if v is None else float(v)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BatchReport:
    run: dict
    models: list[ModelSummary]
    pairs: list[PairDiff]
    items: list[ItemResult]
    n_boot: int
    level: float
    seed: int
    build_warning: str | None = None  # several llama.cpp builds or backends in this run: what differs
    judge_validation: dict | None = None  # the KI judge's stored validation (``store.judge_validation``)
    reviews: dict | None = None  # clinician review progress and agreement (``review_stats.run_review_stats``)

    def model(self, key: str) -> ModelSummary:
        return next(m for m in self.models if m.key == key)

    def item_ids(self) -> list[str]:
        """Item ids in first-seen (dataset) order."""
        return list(dict.fromkeys(r.item_id for r in self.items))

    def result(self, item_id: str, model_key: str) -> ItemResult | None:
        return next((r for r in self.items if r.item_id == item_id and r.model == model_key), None)

    def pair(self, a: str, b: str, metric_key: str) -> PairDiff | None:
        """``b − a`` for any two models (``pairs`` holds each pair once, in run order)."""
        for p in self.pairs:
            if p.metric == metric_key and (p.a, p.b) == (a, b):
                return p
            if p.metric == metric_key and (p.a, p.b) == (b, a):
                d = p.diff
                return PairDiff(a, b, metric_key, Estimate(-d.mean, -d.hi, -d.lo, d.n))
        return None

    def to_dict(self) -> dict:
        return {
            "run": self.run, "n_boot": self.n_boot, "level": self.level, "seed": self.seed,
            "build_warning": self.build_warning, "judge_validation": self.judge_validation,
            "metrics": [asdict(m) for m in METRICS],
            "models": [m.to_dict() for m in self.models], "pairs": [p.to_dict() for p in self.pairs],
            "findings": [finding(self, a.key, b.key) for i, a in enumerate(self.models) for b in self.models[i + 1:]],
            "items": [r.to_dict() for r in self.items], "reviews": self.reviews,
        }


# ------------------------------------------------------------------------------------ reading


def batch_runs(store) -> list[dict]:
    """Every batch run of the session (oldest first), as ``SessionStore.list_runs`` gives them."""
    return [r for r in store.list_runs() if r["kind"] == "batch"]


def latest_batch_run(store) -> int | None:
    runs = batch_runs(store)
    return runs[-1]["id"] if runs else None


def _item_rows(store, run_id: int) -> dict[str, dict]:
    rows = store.conn.execute(
        "SELECT c.key, i.question, i.answer, i.answer_idx FROM chains c LEFT JOIN items i ON i.id = c.item_id "
        "WHERE c.run_id = ?", (run_id,)).fetchall()
    return {k: {"question": q, "gold": idx or ans} for k, q, ans, idx in rows}


def _load(store, run_id: int) -> tuple[list[ItemResult], dict[str, dict], dict]:
    records = store.load_run_records(run_id)
    ids = {r["key"]: r["id"] for r in store.chains_for_run(run_id)}
    items = _item_rows(store, run_id)
    out, subjects, builds = [], {}, {}
    for key, rec in records.items():
        build = chain_build_id(rec)
        builds.setdefault(build, record_build(rec))
        subject = rec.get("subject") or {}
        model = str(subject.get("sha256") or key.split(":", 1)[0])[:12]
        subjects.setdefault(model, subject)
        meta = items.get(key, {})
        failed = bool(rec.get("error"))
        out.append(ItemResult(
            item_id=str(rec.get("id")), model=model, chain_id=ids[key], key=key, question=meta.get("question"),
            gold=meta.get("gold"), extracted_answer=rec.get("extracted_answer"), correct=rec.get("correct"),
            info_gain_mean=None if failed else rec.get("info_gain_mean"),
            delta_nll_mean=None if failed else rec.get("delta_nll_mean"), ki_mean=None if failed else rec.get("ki_mean"),
            n_steps=None if failed else len(rec.get("steps") or []), n_tokens=rec.get("n_generated_tokens"),
            error=rec.get("error"), timing=rec.get("timing") or {}, build=build,
            paper_info_gain=None if failed else rec.get("paper_info_gain"), paper_mean=None if failed else rec.get("paper_mean"),
            paper_excluded=not failed and bool(rec.get("paper_excluded")),
        ))
    return out, subjects, builds


def _model_meta(store, run: dict, subjects: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """``(key, name, path, sha256)`` per subject model: the run's order, then any other model found."""
    shas = list(run["settings"].get("subjects") or [])
    shas += [k for k in subjects if not any(s[:12] == k for s in shas)]
    out = []
    for sha in shas:
        sub = subjects.get(sha[:12])
        if sub and sub.get("sha256"):
            out.append((sha[:12], sub.get("name") or sha[:12], sub.get("path") or "", sub["sha256"]))
            continue
        row = store.conn.execute("SELECT name, path, sha256 FROM models WHERE substr(sha256, 1, 12) = ? ORDER BY id LIMIT 1",
                                 (sha[:12],)).fetchone()
        name, path, full = row if row else (sha[:12], "", sha)
        out.append((sha[:12], name or sha[:12], path, full))
    return out


def _median_timing(results: list[ItemResult]) -> dict[str, float]:
    out = {}
    for k in ("generation_s", "scoring_s", "ki_s", "total_s"):
        vals = [r.timing[k] for r in results if isinstance(r.timing.get(k), int | float) and not r.error]
        if vals:
            out[k] = float(statistics.median(vals))
    return out


def summarize(store, run_id: int | None = None, *, models: Sequence[str] | None = None, n_boot: int = 2000,
              level: float = 0.95, seed: int = 0) -> BatchReport:
    """The comparison of a batch run (the latest one when ``run_id`` is None).

    ``models`` restricts (and orders) the models by key (sha256 prefix) or name.
    """
    if run_id is None:
        run_id = latest_batch_run(store)
        if run_id is None:
            raise InputError(f"{store.path} holds no batch run (start one with `kiig run`)")
    run = store.get_run(run_id)
    if run["kind"] != "batch":
        raise InputError(f"run {run_id} is a {run['kind']} run, not a batch run")
    results, subjects, builds = _load(store, run_id)
    meta = _model_meta(store, run, subjects)
    if models:
        wanted = []
        for spec in models:
            hit = [m for m in meta if spec in (m[0], m[1]) or m[3].startswith(spec)]
            if not hit:
                raise InputError(f"run {run_id} has no model {spec!r}; models: {', '.join(m[1] for m in meta)}")
            wanted += [m for m in hit if m not in wanted]
        meta = wanted
    results = [r for r in results if r.model in {m[0] for m in meta}]
    results, meta, build_warning = split_by_build(results, meta, builds)
    keys = [m[0] for m in meta]
    summaries = []
    for key, name, path, sha in meta:
        mine = [r for r in results if r.model == key]
        est = {mk: Estimate(*_mean_ci([r.value(mk) for r in mine], n_boot, level, seed)) for mk in METRIC_KEYS}
        summaries.append(ModelSummary(key, name, path, sha, len(mine), sum(1 for r in mine if r.error), est,
                                      _median_timing(mine), sum(1 for r in mine if r.paper_excluded)))
    pairs = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            for mk in METRIC_KEYS:
                va, vb = paired_values(results, a, b, mk)
                mean, lo, hi, n = paired_diff_ci(vb, va, n_boot=n_boot, level=level, seed=seed)
                pairs.append(PairDiff(a, b, mk, Estimate(mean, lo, hi, n)))
    run_out = {k: run[k] for k in ("id", "uid", "name", "status", "started", "finished", "seed", "settings", "versions")}
    run_out["roles"] = {role: {"name": m.get("name"), "sha256": m.get("sha256")} for role, m in run["models"].items()}
    judge = run["models"].get("judge") or {}
    checked = judge_validation.lookup(judge.get("sha256"), ((run["settings"].get("ki") or {}).get("method")))
    return BatchReport(run_out, summaries, pairs, results, n_boot, level, seed, build_warning,
                       judge_validation.summary(checked, judge.get("name"), judge_validation.lookup_reviews(
                           judge.get("sha256"), (run["settings"].get("ki") or {}).get("method"))) if judge else None,
                       run_review_stats(store, run_id, n_boot=n_boot))


def _mean_ci(values: list[float], n_boot: int, level: float, seed: int) -> tuple[float, float, float, int]:
    mean, lo, hi = bootstrap_mean_ci(values, n_boot=n_boot, level=level, seed=seed)
    return mean, lo, hi, sum(1 for v in values if not math.isnan(v))


def paired_values(results: Sequence[ItemResult], a: str, b: str, metric_key: str) -> tuple[list[float], list[float]]:
    """Values of models ``a`` and ``b`` on the items both have, in item order (for paired statistics)."""
    by_a = {r.item_id: r.value(metric_key) for r in results if r.model == a}
    by_b = {r.item_id: r.value(metric_key) for r in results if r.model == b}
    common = [i for i in by_a if i in by_b]
    return [by_a[i] for i in common], [by_b[i] for i in common]


def load_chain_detail(store, chain_id: int) -> dict:
    """What the report's drill-down shows for one item: ``{"record", "item", "generation", "ki",
    "passages"}`` (token curves left out: the report does not draw them); ``passages`` are the
    corpus passages the KI evidence cites, by chunk id, for evidence stored without its place."""
    from ..knowledge.corpus import get_chunks

    ki = store.load_ki(chain_id)
    ids = sorted({e["chunk_id"] for ev in ki for s in ev["steps"] for e in s.get("evidence") or []
                  if isinstance(e.get("chunk_id"), int) and not e.get("where")})
    return {"record": store.load_chain(chain_id, curve=False), "item": store.load_item(chain_id),
            "generation": store.load_generation(chain_id), "ki": ki,
            "passages": {p.chunk_id: p for p in get_chunks(store.db, ids)}}


def chain_details(store, report: BatchReport) -> dict[int, dict]:
    """The drill-down of every item of ``report``, by chain id."""
    return {r.chain_id: load_chain_detail(store, r.chain_id) for r in report.items}


# ------------------------------------------------------------------------------------ wording


def fmt_value(metric_key: str, value: float | None, signed: bool = False) -> str:
    """A metric value as the dashboard shows it (accuracy in percent or percentage points)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    m = metric(metric_key)
    if abs(value) < 5e-4:
        value = 0.0  # never "-0.000"
    sign = "+" if signed and value > 0 else ""
    if m.percent:
        return f"{sign}{100 * value:.1f}" + (" pts" if signed else "%")
    if metric_key in ("n_steps", "n_tokens"):
        return f"{sign}{value:.1f}"
    return f"{sign}{value:.3f}"


def fmt_estimate(metric_key: str, e: Estimate, signed: bool = False) -> str:
    if e.n == 0:
        return "\u2013"
    return f"{fmt_value(metric_key, e.mean, signed)} [{fmt_value(metric_key, e.lo, signed)}, {fmt_value(metric_key, e.hi, signed)}]"


def paper_note(report: BatchReport) -> str:
    """What the two InfoGain modes are, and how many chains each model's paper-mode numbers leave out."""
    counts = ", ".join(f"{m.name} {m.n_paper_excluded} of {m.n_chains - m.n_errors}" for m in report.models)
    return ("Mean InfoGain is answer perplexity, as the paper defines it; Paper InfoGain and Paper mean PPL are "
            "whole-sequence perplexity, as ReasoningEval's code computes it, over chains of 3 or more steps only "
            f"(its code gives shorter chains 0; they are left out here, never counted as 0). Chains left out: {counts}.")


def finding(report: BatchReport, a: str, b: str) -> str:
    """One sentence answering "does b reason better than a, or only answer better?"."""
    ma, mb = report.model(a), report.model(b)
    acc, ig = report.pair(a, b, "accuracy"), report.pair(a, b, "info_gain_mean")
    if acc is None or ig is None or acc.diff.n == 0:
        return f"{mb.name} and {ma.name} have no items in common."
    level = f"{100 * report.level:.0f}%"
    acc_text = {"higher": "answers more items correctly", "lower": "answers fewer items correctly",
                "unclear": "shows no clear accuracy difference"}[acc.direction]
    ig_text = {"higher": "its reasoning steps carry more information about the answer (higher InfoGain)",
               "lower": "its reasoning steps carry less information about the answer (lower InfoGain)",
               "unclear": "there is no clear InfoGain difference"}[ig.direction]
    joiner = "and" if acc.direction in ("unclear", ig.direction) else "but"
    return (f"Compared with {ma.name}, {mb.name} {acc_text} ({fmt_estimate('accuracy', acc.diff, True)}, {acc.diff.n} items) "
            f"{joiner} {ig_text} ({fmt_estimate('info_gain_mean', ig.diff, True)}, {ig.diff.n} items); "
            f"intervals are {level} paired bootstrap.")
