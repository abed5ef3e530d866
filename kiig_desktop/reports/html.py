"""A batch run's comparison as one self-contained HTML file (and as JSON or CSV).

The HTML has no script and loads nothing: inline CSS, inline SVG charts (``svg.py``), and a
Content-Security-Policy that forbids any fetch. Every piece of text is escaped -- model output,
item text and file names are untrusted. Sections: findings, per-model table, bar charts with 95%
intervals, paired differences (table and forest plots), accuracy against InfoGain, the per-item
table, and a drill-down per chain (reasoning, steps with InfoGain and KI, and the passages each KI
was judged on, named by file and page or heading path) as ``<details>``.
"""

from __future__ import annotations

import io
import math
from html import escape

from .. import __version__
from ..files import spreadsheet_writer
from ..knowledge.provenance import evidence_where
from ..store.ki_rows import step_evidence
from ..strict_json import dumps
from . import svg
from .review_html import reviews_section
from .summary import METRICS, BatchReport, Estimate, fmt_estimate, fmt_value, letter, metric, paper_note

DASH = "\u2013"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

# Colours of good/bad and higher/lower: blue/orange by default (colour-blind safe), red/green on request;
# the direction is also written out with ▲/▼, never colour alone.
PALETTES = {"blue-orange": ("#1f66b5", "#c75000"), "red-green": ("#1a7f37", "#cf222e")}
DIRECTION_MARK = {"higher": "\u25b2 ", "lower": "\u25bc ", "unclear": "\u2248 "}
SMALL_SAMPLE = 10  # fewer paired items than this: the interval is flagged as rough

CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d0d7de;--soft:#f6f8fa;--ok:#1a7f37;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 32px 48px}
header{border-bottom:2px solid var(--ink);padding-bottom:12px;margin-bottom:18px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:30px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:14px;margin:14px 0 6px}
.sub{color:var(--muted);margin:0}.muted{color:var(--muted)}.small{font-size:12px}
.findings{background:var(--soft);border-left:4px solid #0072B2;padding:10px 14px;margin:12px 0}
.findings p{margin:4px 0}
.warning{background:#fff8c5;border-left:4px solid #bf8700;padding:8px 14px;margin:12px 0}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;font-size:12px;text-transform:none}
td.num,th.num{text-align:right;white-space:nowrap}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px 18px}
.grid svg,.plot svg{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
.ok{color:var(--ok);font-weight:600}.bad{color:var(--bad);font-weight:600}.err{color:var(--bad)}
.higher{color:var(--ok)}.lower{color:var(--bad)}.unclear{color:var(--muted)}
details{border:1px solid var(--line);border-radius:4px;margin:6px 0;padding:4px 10px}
summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;background:var(--soft);padding:8px 10px;border-radius:4px;font-size:12.5px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
td.q{max-width:360px}ol.ev{margin:0;padding-left:18px;font-size:12px}td.evidence{min-width:200px}a{color:#0969da;text-decoration:none}
#summary-table td:first-child{min-width:220px}.ci{color:var(--muted);font-size:11.5px}tr.group td{border-top:2px solid var(--line)}
footer{margin-top:36px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:8px}
@media print{main{max-width:none;padding:0}details{break-inside:avoid}details:not([open]) > :not(summary){display:none}
 h2{break-after:avoid}.grid svg,.plot svg{border:none}}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _fmt_fn(key: str):
    m = metric(key)
    if m.percent:
        return lambda v: f"{100 * v:.0f}%"
    return lambda v: f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _diff_fmt(key: str):
    m = metric(key)
    if m.percent:
        return lambda v: f"{100 * v:+.0f}" if v else "0"
    return lambda v: f"{v:+.3g}" if v else "0"


def _iv(e: Estimate) -> tuple[float, float, float]:
    return (e.mean, e.lo, e.hi)


def _has(report: BatchReport, key: str) -> bool:
    return any(m.metrics[key].n for m in report.models)


def _letter(report: BatchReport, key: str) -> str:
    """Short model labels (A, B, ...) in the run's order, used by the difference tables and plots."""
    return letter(next(i for i, m in enumerate(report.models) if m.key == key))


def _model_cell(report: BatchReport, key: str) -> str:
    i = next(i for i, m in enumerate(report.models) if m.key == key)
    m = report.models[i]
    return (f'<span class="swatch" style="background:{svg.color(i)}"></span><b>{_letter(report, key)}</b>'
            f"&nbsp;{_e(m.name)}")


def render_html(report: BatchReport, details: dict[int, dict] | None = None, palette: str = "blue-orange") -> str:
    """The whole report; ``details`` (chain id -> ``dashboard.load_chain_detail``) adds the drill-down;
    ``palette``: ``blue-orange`` (default) or ``red-green`` for good/bad and higher/lower."""
    ok, bad = PALETTES.get(palette, PALETTES["blue-orange"])
    run, settings = report.run, report.run.get("settings") or {}
    metrics = [m for m in METRICS if _has(report, m.key) or m.key != "ki_mean"]
    title = f"KIIG batch report \u2014 {run.get('name') or 'run ' + str(run['id'])}"
    n_items = len(report.item_ids())
    roles = run.get("roles") or {}
    scoring = f"scorer {(roles.get('scorer') or {}).get('name')}"
    if settings.get("ki"):
        scoring += f" \u00b7 judge {(roles.get('judge') or {}).get('name')} with corpus \u201c{settings['ki'].get('corpus')}\u201d"
    body = [
        "<header>", f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Run {_e(run["id"])} ({_e(run.get("status"))}) \u00b7 {n_items} items \u00b7 '
        f'{len(report.models)} model{"s" if len(report.models) != 1 else ""} \u00b7 {_e(scoring)} \u00b7 '
        f'started {_e(str(run.get("started") or "")[:16].replace("T", " "))} UTC</p>', "</header>",
    ]
    body += _warnings(report)
    findings = [f"<p>{_e(f)}</p>" for f in _findings(report)]
    if findings:
        body += ['<section class="findings">', *findings, "</section>"]
    body += _summary_section(report, metrics)
    body += _pairs_section(report, metrics)
    body += _scatter_section(report)
    body += _items_section(report, details is not None)
    body += reviews_section(report.reviews)
    if details is not None:
        body += _chains_section(report, details)
    body += _method_section(report, settings)
    body.append(f"<footer>Generated by KIIG Desktop {_e(__version__)} from run {_e(run.get('uid'))}. "
                "Offline report: no scripts, no external resources.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS.replace('--ok:#1a7f37;--bad:#cf222e', f'--ok:{ok};--bad:{bad}')}</style>"
            "</head><body><main>"
            + "\n".join(body) + "</main></body></html>\n")


def _findings(report: BatchReport) -> list[str]:
    from .summary import finding

    if len(report.models) == 1:
        m = report.models[0]
        text = (f"{m.name}: accuracy {fmt_estimate('accuracy', m.metrics['accuracy'])} on {m.metrics['accuracy'].n} items, "
                f"mean InfoGain {fmt_estimate('info_gain_mean', m.metrics['info_gain_mean'])}")
        if m.metrics["ki_mean"].n:
            text += f", mean KI {fmt_estimate('ki_mean', m.metrics['ki_mean'])}"
        return [text + f" ({100 * report.level:.0f}% bootstrap intervals). Add a second model to compare."]
    return [finding(report, a.key, b.key) for i, a in enumerate(report.models) for b in report.models[i + 1:]]


def _summary_section(report: BatchReport, metrics) -> list[str]:
    level = f"{100 * report.level:.0f}%"
    head = "".join(f'<th class="num">{_e(m.label)}<br><span class="muted">{_e(m.unit)}</span></th>' for m in metrics)
    rows = []
    for m in report.models:
        cells = "".join(_estimate_cell(mt.key, m.metrics[mt.key]) for mt in metrics)
        rows.append(f'<tr><td>{_model_cell(report, m.key)}<br><span class="muted small">{_e(m.sha256[:12])}</span></td>'
                    f'<td class="num">{m.n_chains}</td><td class="num">{m.n_errors}</td>{cells}</tr>')
    out = ["<h2>Per-model summary</h2>",
           f'<p class="muted small">Mean [{level} bootstrap interval, {report.n_boot} resamples, seed {report.seed}] over '
           "the items with a value; a chain that failed has no InfoGain, KI or steps.</p>",
           f'<table id="summary-table"><thead><tr><th>Model</th><th class="num">Items</th><th class="num">Errors</th>{head}'
           f"</tr></thead><tbody>{''.join(rows)}</tbody></table>", f'<p id="paper-note" class="muted small">{_e(paper_note(report))}</p>', '<div class="grid">']
    labels = [m.name for m in report.models]
    colors = [svg.color(i) for i in range(len(report.models))]
    for mt in metrics:
        out.append(svg.bar_chart(mt.label, labels, [_iv(m.metrics[mt.key]) for m in report.models], fmt=_fmt_fn(mt.key),
                                 unit=mt.unit, colors=colors, domain=(0.0, 1.0) if mt.percent else None))
    out.append("</div>")
    return out


def _estimate_cell(key: str, e: Estimate) -> str:
    """The mean in bold with its interval below it (keeps the table narrow)."""
    if e.n == 0:
        return f'<td class="num muted">{DASH}</td>'
    return (f'<td class="num"><b>{_e(fmt_value(key, e.mean))}</b><br>'
            f'<span class="ci">[{_e(fmt_value(key, e.lo))}, {_e(fmt_value(key, e.hi))}]</span></td>')


def _n_cell(n: int) -> str:
    """The number of paired items, flagged when an interval rests on fewer than SMALL_SAMPLE."""
    if 0 < n < SMALL_SAMPLE:
        return f'{n} <span title="fewer than {SMALL_SAMPLE} paired items: a rough interval">\u26a0</span>'
    return str(n)


def _pairs_section(report: BatchReport, metrics) -> list[str]:
    if len(report.models) < 2:
        return []
    names = {m.key: m.name for m in report.models}
    rows = []
    shown = [p for p in report.pairs if p.metric in {m.key for m in metrics}]
    for n, p in enumerate(shown):
        first = n == 0 or (shown[n - 1].a, shown[n - 1].b) != (p.a, p.b)
        names_line = f'<br><span class="muted small">{_e(names[p.b])} minus {_e(names[p.a])}</span>' if first else ""
        tr = '<tr class="group">' if first else "<tr>"
        rows.append(f"{tr}<td><b>{_letter(report, p.b)} \u2212 {_letter(report, p.a)}</b>"
                    f"{names_line}</td><td>{_e(metric(p.metric).label)}</td>"
                    f'<td class="num">{_e(fmt_estimate(p.metric, p.diff, True))}</td><td class="num">{_n_cell(p.diff.n)}</td>'
                    f'<td class="{p.direction}">{DIRECTION_MARK.get(p.direction, "")}{_e(p.direction)}</td></tr>')
    out = ["<h2>Paired differences</h2>",
           '<p class="muted small">Each difference is computed per item (second model minus first, items matched by id) '
           "and bootstrapped over items, so item difficulty cancels. \u201chigher\u201d/\u201clower\u201d: the interval "
           "excludes zero; \u26a0: fewer than 10 paired items, a rough interval.</p>",
           '<table id="pairs-table"><thead><tr><th>Pair</th><th>Metric</th><th class="num">Difference [interval]</th>'
           f'<th class="num">Items</th><th>Direction</th></tr></thead><tbody>{"".join(rows)}</tbody></table>',
           '<div class="grid">']
    for mt in metrics:
        pairs = [p for p in report.pairs if p.metric == mt.key]
        labels = [f"{_letter(report, p.b)} \u2212 {_letter(report, p.a)}" for p in pairs]
        out.append(svg.forest_plot(f"{mt.label}: difference", labels, [_iv(p.diff) for p in pairs],
                                   fmt=_diff_fmt(mt.key), unit="pts" if mt.percent else mt.unit))
    out.append("</div>")
    return out


def _scatter_section(report: BatchReport) -> list[str]:
    plot = svg.scatter(
        "Accuracy against mean InfoGain", [m.name for m in report.models],
        [_iv(m.metrics["info_gain_mean"]) for m in report.models], [_iv(m.metrics["accuracy"]) for m in report.models],
        x_label="mean InfoGain (answer perplexity drop per step)", y_label="accuracy",
        x_fmt=lambda v: f"{v:.3g}", y_fmt=lambda v: f"{100 * v:.0f}%", y_domain=(0.0, 1.0))
    return ["<h2>Accuracy against InfoGain</h2>",
            '<p class="muted small">A model up and to the right both answers better and reasons more informatively; '
            "up and to the left answers better while its steps carry less information about the answer.</p>",
            f'<div class="plot">{plot}</div>']


def _items_section(report: BatchReport, linked: bool) -> list[str]:
    head = "".join(f'<th colspan="4">{_model_cell(report, m.key)}</th>' for m in report.models)
    sub = "".join('<th>Answer</th><th class="num">InfoGain</th><th class="num">KI</th><th class="num">Steps</th>'
                  for _ in report.models)
    rows = []
    for item_id in report.item_ids():
        first = next(r for r in report.items if r.item_id == item_id)
        cells = []
        for m in report.models:
            r = report.result(item_id, m.key)
            if r is None:
                cells.append('<td colspan="4" class="muted">not run</td>')
                continue
            mark = '<span class="ok">\u2713</span>' if r.correct else ('<span class="bad">\u2717</span>' if r.correct is False else "")
            answer = f"{mark} {_e(DASH if r.extracted_answer is None else r.extracted_answer)}"
            if linked:
                answer = f'<a href="#chain-{r.chain_id}">{answer}</a>'
            if r.error:
                answer += f'<br><span class="err small">{_e(_short(r.error, 80))}</span>'
            cells.append(f"<td>{answer}</td><td class=\"num\">{_e(fmt_value('info_gain_mean', r.info_gain_mean))}</td>"
                         f"<td class=\"num\">{_e(fmt_value('ki_mean', r.ki_mean))}</td>"
                         f"<td class=\"num\">{_e(DASH if r.n_steps is None else r.n_steps)}</td>")
        rows.append(f'<tr><td>{_e(item_id)}</td><td class="q">{_e(_short(first.question or "", 140))}</td>'
                    f"<td>{_e(first.gold)}</td>{''.join(cells)}</tr>")
    return ["<h2>Per-item results</h2>",
            '<table id="items-table"><thead><tr><th rowspan="2">Item</th><th rowspan="2">Question</th>'
            f'<th rowspan="2">Gold</th>{head}</tr><tr>{sub}</tr></thead><tbody>{"".join(rows)}</tbody></table>']


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _chains_section(report: BatchReport, details: dict[int, dict]) -> list[str]:
    out = ["<h2>Chains</h2>", '<p class="muted small">Each chain as generated and scored: the reasoning text, then '
           "its steps with the scorer's answer NLL after the step, InfoGain, \u0394NLL, the judge's KI and the "
           "passages it was judged on (file and page, or heading path).</p>"]
    for r in report.items:
        d = details.get(r.chain_id)
        if d is None:
            continue
        rec, gen = d.get("record") or {}, d.get("generation") or {}
        verdict = "correct" if r.correct else ("wrong" if r.correct is False else "not graded")
        out.append(f'<details id="chain-{r.chain_id}"><summary>{_e(r.item_id)} \u00b7 {_e(report.model(r.model).name)}'
                   f" \u00b7 {_e(verdict)} (answer {_e(r.extracted_answer or DASH)}, gold {_e(r.gold)})</summary>")
        if r.error:
            out.append(f'<p class="err">Error: {_e(r.error)}</p>')
        out.append(f'<p class="muted small">Question: {_e(r.question)}</p><pre>{_e(gen.get("text", ""))}</pre>')
        steps = rec.get("steps") or []
        if steps:
            evidence = step_evidence(rec, d.get("ki") or [])
            passages = d.get("passages") or {}
            rows = "".join(
                f'<tr><td class="num">{i + 1}</td><td>{_e(s.get("text"))}</td>'
                f'<td class="num">{_e(_num(s.get("answer_nll")))}</td><td class="num">{_e(_num(s.get("info_gain")))}</td>'
                f'<td class="num">{_e(_num(s.get("delta_nll")))}</td>'
                f'<td class="num">{_e(_num(s.get("ki")) if s.get("applicable") else "n/a")}</td>'
                f'<td class="evidence">{_evidence_cell(evidence.get(s.get("index", i)) or [], passages)}</td></tr>'
                for i, s in enumerate(steps))
            out.append('<table><thead><tr><th class="num">#</th><th>Step</th><th class="num">Answer NLL</th>'
                       '<th class="num">InfoGain</th><th class="num">\u0394NLL</th><th class="num">KI</th>'
                       f"<th>Evidence</th></tr></thead><tbody>{rows}</tbody></table>")
        out.append("</details>")
    return out


def _evidence_cell(evidence: list[dict], passages: dict) -> str:
    """The passages a step's KI was judged on, best first: where each comes from and its BM25 score."""
    items = []
    for ev in evidence:
        score = ev.get("score")
        bm25 = f' <span class="muted">BM25 {score:.2f}</span>' if isinstance(score, int | float) and math.isfinite(score) else ""
        items.append(f"<li>{_e(evidence_where(ev, passages.get(ev.get('chunk_id'))))}{bm25}</li>")
    return f'<ol class="ev">{"".join(items)}</ol>' if items else ""


def _num(v) -> str:
    if not isinstance(v, int | float) or not math.isfinite(v):
        return DASH
    return f"{0.0 if abs(v) < 5e-4 else v:.3f}"


def _warnings(report: BatchReport) -> list[str]:
    """Mixed llama.cpp builds, and the KI judge's validation (a warning when weak or never checked)."""
    out = []
    if report.build_warning:
        out.append(f'<p class="warning" role="alert"><strong>Different builds.</strong> {_e(report.build_warning)}</p>')
    jv = report.judge_validation
    if jv:
        cls = "warning" if jv.get("warning") else "sub"
        out.append(f'<p class="{cls} judge-validation">KI judge — {_e(jv["note"])}</p>')
    return out


def _method_section(report: BatchReport, settings: dict) -> list[str]:
    gen = settings.get("generation") or {}
    ki = settings.get("ki") or {}
    roles = report.run.get("roles") or {}
    rows = [
        ("Dataset sha256", settings.get("dataset_sha256")), ("Items", settings.get("n_items")),
        ("Scorer", (roles.get("scorer") or {}).get("name")), ("Judge", (roles.get("judge") or {}).get("name") or "none"),
        ("Corpus", f"{ki.get('corpus')} (k={ki.get('k')}, KI mode {ki.get('mode') or 'probability'})" if ki else "none (no KI)"),
        ("Generation", f"max {gen.get('max_tokens')} tokens, temperature {gen.get('temperature')}, seed {gen.get('seed')}, "
                       f"prompt {gen.get('prompt')}"),
        ("Scoring", f"InfoGain {settings.get('infogain')}, mode {settings.get('mode')}, split {settings.get('split')}"),
        ("Engine", ", ".join(f"{k}={v}" for k, v in (settings.get("engine") or {}).items())),
        ("Bootstrap", f"{report.n_boot} resamples, {100 * report.level:.0f}% percentile interval, seed {report.seed}"),
    ]
    timing = []
    for m in report.models:
        t = m.timing
        timing.append(f"<tr><td>{_model_cell(report, m.key)}</td>" + "".join(
            f'<td class="num">{_e(f"{t[k]:.2f}" if k in t else DASH)}</td>'
            for k in ("generation_s", "scoring_s", "ki_s", "total_s")) + "</tr>")
    defs = "".join(f"<dt>{_e(m.label)}</dt><dd>{_e(m.description)}</dd>" for m in METRICS)
    return ["<h2>Method and settings</h2>", '<dl class="kv">',
            *(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows), "</dl>", "<h3>Metrics</h3>",
            f'<dl class="kv">{defs}</dl>', "<h3>Median seconds per item</h3>",
            '<table id="timing-table"><thead><tr><th>Model</th><th class="num">Generation</th><th class="num">Scoring</th>'
            f'<th class="num">KI</th><th class="num">Total</th></tr></thead><tbody>{"".join(timing)}</tbody></table>']


# ------------------------------------------------------------------------------------ json / csv


def render_json(report: BatchReport) -> str:
    """The report as JSON (non-finite numbers become null)."""
    return dumps(report.to_dict(), indent=2) + "\n"


CSV_TABLES = ("models", "pairs", "items")


def render_csv(report: BatchReport, table: str = "models") -> str:
    """One table as CSV: ``models`` (mean, lo, hi, n per metric), ``pairs`` or ``items``."""
    buf = io.StringIO()
    w = spreadsheet_writer(buf)
    keys = [m.key for m in METRICS]
    if table == "models":
        w.writerow(["model", "sha256", "n_chains", "n_errors", "n_paper_excluded"] + [f"{k}_{p}" for k in keys for p in ("mean", "lo", "hi", "n")])
        for m in report.models:
            w.writerow([m.name, m.sha256, m.n_chains, m.n_errors, m.n_paper_excluded]
                       + [_c(getattr(m.metrics[k], p)) for k in keys for p in ("mean", "lo", "hi", "n")])
    elif table == "pairs":
        names = {m.key: m.name for m in report.models}
        w.writerow(["model_a", "model_b", "metric", "diff_b_minus_a", "lo", "hi", "n", "direction"])
        for p in report.pairs:
            w.writerow([names[p.a], names[p.b], p.metric, _c(p.diff.mean), _c(p.diff.lo), _c(p.diff.hi), p.diff.n, p.direction])
    elif table == "items":
        names = {m.key: m.name for m in report.models}
        w.writerow(["item_id", "model", "chain_id", "gold", "extracted_answer", "correct", *keys[1:], "error"])
        for r in report.items:
            w.writerow([r.item_id, names.get(r.model, r.model), r.chain_id, r.gold, r.extracted_answer,
                        "" if r.correct is None else int(r.correct), *(_c(getattr(r, k)) for k in keys[1:]), r.error or ""])
    else:
        raise ValueError(f"unknown table {table!r}; expected one of {CSV_TABLES}")
    return buf.getvalue()


def _c(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else repr(v) if isinstance(v, float) else str(v)
