"""The evidence panel citing PDF pages, at 1366x768:

    xvfb-run -s "-screen 0 1366x768x24" python packaging/evidence_screenshot.py docs/screenshots

In a fresh data folder, a 20-page diabetes guideline written with Qt's QPdfWriter (NG28.pdf) and a
ward protocol written with python-docx are imported into corpus "guidelines" through the Corpora
screen; the demo reference chain on metformin is scored on the embedded model and its Knowledge
Index judged by it against that corpus; the evidence of the step "Metformin is the usual first-line
medicine ..." is saved as ``20-evidence-pdf-pages.png`` (the passages named by file and page, with
Open at page and Show in context) and that passage in context as ``21-evidence-in-context.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1366, 768)
sys.path.insert(0, str(ROOT))

TOPICS = [
    ("Scope", "This guideline covers the care of adults with type 2 diabetes in primary and hospital care."),
    ("Patient education", "Offer structured education at diagnosis and reinforce it at each annual review."),
    ("Diet", "Encourage a diet high in fibre with low glycaemic index carbohydrates; limit saturated fat."),
    ("Physical activity", "Advise at least 150 minutes of moderate activity each week, spread over the week."),
    ("Weight", "Offer weight management support to people with a body mass index above 25 kg/m2."),
    ("Blood pressure", "Aim for a clinic blood pressure below 140/90 mmHg in most adults with diabetes."),
    ("Lipids", "Offer atorvastatin 20 mg for primary prevention when the 10-year cardiovascular risk is 10% or more."),
    ("HbA1c measurement", "Measure HbA1c every 3 to 6 months until it is stable, then every 6 months."),
    ("HbA1c targets", "Agree an individual target; 48 mmol/mol is usual for people managed by diet or one drug."),
    ("Self-monitoring", "Do not routinely offer self-monitoring of blood glucose to adults on oral drugs alone."),
    ("Kidney function", "Check the estimated glomerular filtration rate before starting any glucose-lowering drug."),
    ("Choosing a drug", "Base the choice on effectiveness, safety, tolerability, the person's wishes and cost."),
    ("Before metformin", "Review kidney function first: metformin is not started when eGFR is below 30 ml/min."),
    ("First-line treatment", "Metformin is the usual first-line medicine for adults with type 2 diabetes. Start "
                             "500 mg once daily with the evening meal and increase the dose gradually over several "
                             "weeks to limit gastrointestinal side effects. Offer modified-release metformin when "
                             "the standard tablets are not tolerated."),
    ("How metformin works", "Metformin lowers blood glucose mainly by reducing glucose production in the liver; "
                            "it does not cause hypoglycaemia when taken alone."),
    ("Second drug", "Add a sulfonylurea, a DPP-4 inhibitor, pioglitazone or an SGLT2 inhibitor when HbA1c rises "
                    "above 58 mmol/mol on metformin alone."),
    ("SGLT2 inhibitors", "Offer an SGLT2 inhibitor to adults with heart failure or established cardiovascular disease."),
    ("Insulin", "Start insulin when HbA1c stays above target despite two or three oral agents."),
    ("Hypoglycaemia", "Explain the symptoms of hypoglycaemia to everyone on a sulfonylurea or insulin."),
    ("Review", "Review the treatment plan at least once a year with the person and their carers."),
]


# What fills the rest of each page, as on a real guideline's page (a passage is about a third of one)
FILLER = (
    "Recommendations on {topic} apply to every adult in the care of the diabetes service, whatever the setting. "
    "Discuss them with the person and, with their agreement, with their family or carers, and record the "
    "decisions in the shared care plan so that every team sees the same plan. Give information in a form the "
    "person can use: spoken, written or in pictures, in their own language, with an interpreter where needed, "
    "and check that it was understood. Revisit the plan when the person's circumstances change, for example "
    "after a hospital admission, a new diagnosis or a change of home, and at least once a year.",
    "Rationale: the committee reviewed randomised trials and cohort studies on {topic}. Most were of moderate "
    "quality; where the evidence was weak the committee agreed the recommendations by consensus, taking into "
    "account the experience of its lay members and the cost to the service.",
    "Implementation: services should audit {topic} once a year, report the results to the local diabetes "
    "network and agree the changes needed. Staff need time and training to put these recommendations into practice.",
    "Research recommendation: more evidence is needed on the long-term outcomes of different approaches to "
    "{topic} in older adults, in people from minority ethnic groups and in people with several long-term conditions.",
)


def _spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait(app, condition, what: str, timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"evidence_screenshot.py: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def write_guideline_pdf(path: Path) -> None:
    """NG28.pdf: one topic a page, a running header and a page footer, written by Qt's QPdfWriter."""
    from PySide6.QtCore import QMarginsF, QPointF
    from PySide6.QtGui import QFont, QPageLayout, QPageSize, QPainter, QPdfWriter

    writer = QPdfWriter(str(path))
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(0, 0, 0, 0)))
    writer.setResolution(72)
    writer.setCreator("KIIG screenshots (QPdfWriter)")
    painter = QPainter(writer)
    small, body, bold = QFont("DejaVu Sans", 7), QFont("DejaVu Sans", 10), QFont("DejaVu Sans", 13)
    bold.setBold(True)
    for n, (heading, text) in enumerate(TOPICS, 1):
        if n > 1:
            writer.newPage()
        painter.setFont(small)
        painter.drawText(QPointF(60, 40), "Type 2 diabetes in adults: management (example guideline)")
        painter.drawText(QPointF(480, 815), f"Page {n} of {len(TOPICS)}")
        painter.setFont(bold)
        painter.drawText(QPointF(60, 90), f"{n}. {heading}")
        painter.setFont(body)
        y = 120
        after = f"Next: section {n + 1}, {TOPICS[n][0].lower()}." if n < len(TOPICS) else "End of the guideline."
        for paragraph in (FILLER[0], text, *FILLER[1:], after):  # the last line differs from page to page
            for line in textwrap.wrap(paragraph.format(topic=heading.lower()), 84):
                painter.drawText(QPointF(60, y), line)
                y += 16
            y += 8
    painter.end()


def write_protocol_docx(path: Path) -> None:
    """A ward protocol with headings, written by python-docx."""
    import docx

    doc = docx.Document()
    doc.add_heading("Diabetes on the ward", 1)
    doc.add_heading("Starting treatment", 2)
    doc.add_paragraph("Newly diagnosed type 2 diabetes: start metformin 500 mg with the evening meal unless the "
                      "eGFR is below 30 ml/min; the diabetes nurse reviews the dose after two weeks.")
    doc.add_heading("Insulin", 2)
    doc.add_paragraph("Insulin is prescribed by the diabetes team; never stop basal insulin in type 1 diabetes.")
    doc.save(str(path))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    outdir = Path(argv[0]).absolute()
    outdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="kiig-evidence-screens-"))
    os.environ["KIIG_DATA_DIR"] = str(data / "data")
    docs = data / "Documents" / "guidelines"
    docs.mkdir(parents=True)

    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QScrollArea

    from kiig_desktop.gui.app import create_application
    from kiig_desktop.gui.main_window import MainWindow
    from kiig_desktop.runs.analysis import Question

    app = create_application([sys.argv[0]])
    write_guideline_pdf(docs / "NG28.pdf")
    write_protocol_docx(docs / "ward-protocol.docx")
    window = MainWindow()
    window.set_theme("light")
    window.resize(*SIZE)
    window.show()
    window.start([])
    _wait(app, lambda: window.engines.models and window.engines.loaded_ids(), "the embedded model to load")
    window.save_session_as(str(data / "Documents" / "ward-round.kiig"))
    _wait(app, lambda: not window.tasks.active(), "the session")

    view = window.corpora_view
    window.show_view("corpora")
    view.import_paths("guidelines", [str(docs)])
    _wait(app, lambda: window.corpora.names() == ["guidelines"] and not window.tasks.active(), "the import")
    report = {name: status for name, status, _m in view.report_rows()}
    if report != {"NG28.pdf": "added", "ward-protocol.docx": "added"}:
        raise SystemExit(f"evidence_screenshot.py: the import gave {report} (does this build read PDF and DOCX?)")

    ref = json.loads((ROOT / "resources" / "chains" / "clinical_chains.jsonl").read_text().splitlines()[0])
    window.show_view("analyze")
    window.analyze.form.set_question(Question(ref["question"], ref["answer"], ref["options"], ref["answer_idx"]))
    window.analyze.set_reasoning_text("\n".join(ref["steps"]))
    window.analyze.score()
    _wait(app, lambda: not window.tasks.active() and not window.results.pending and window.results.result is not None,
          "the InfoGain scoring")
    results, panel = window.results, window.ki_panel
    results.show_side_panel(True)
    panel.select_corpus("guidelines")
    panel.run()
    _wait(app, lambda: not window.tasks.active() and results.ki_evaluation() is not None, "the Knowledge Index")
    window.show_view("results")
    window.message_bar.hide()
    step = next(n for n, s in enumerate(ref["steps"]) if s.startswith("Metformin is the usual first-line"))
    results.select_step(step)
    _wait(app, lambda: panel.evidence.step == step and bool(panel.evidence.passages.items), "the evidence")
    shown = panel.evidence.shown_evidence()
    if not any("NG28.pdf, page 14" in h for h in shown):
        raise SystemExit(f"evidence_screenshot.py: page 14 is not among the evidence: {shown}")
    shots = []

    def shot(name: str, widget) -> None:
        _spin(app, 0.6)
        path = outdir / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise SystemExit(f"evidence_screenshot.py: cannot write {path}")
        shots.append(path.name)

    window.toggle_models_strip()  # room for the evidence: the Models panel collapsed to its strip
    area = panel.evidence.parentWidget()
    while area is not None and not isinstance(area, QScrollArea):
        area = area.parentWidget()
    if area is not None:  # the side panel scrolled down to the passages
        _spin(app, 0.3)
        top = panel.evidence.heading.mapTo(area.widget(), QPoint(0, 0)).y()
        area.verticalScrollBar().setValue(top - 8)
    shot("20-evidence-pdf-pages", window)
    first = next(n for n, h in enumerate(shown) if "NG28.pdf, page 14" in h)
    panel.show_context(panel.evidence.shown[first])
    _wait(app, lambda: panel.context_dialog is not None and panel.context_dialog.isVisible(), "the context dialog")
    shot("21-evidence-in-context", panel.context_dialog)
    panel.context_dialog.close()
    window.close()
    _spin(app, 0.3)
    shutil.rmtree(data, ignore_errors=True)
    print(f"{len(shots)} screenshots in {outdir}: {', '.join(shots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
