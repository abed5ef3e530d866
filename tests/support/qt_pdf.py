"""Write a test PDF with Qt's QPdfWriter: ``python qt_pdf.py SPEC.json OUT.pdf`` (QT_QPA_PLATFORM=offscreen).

SPEC: ``{"kind": "text" | "image", "header": str, "pages": [[[kind, text], ...], ...]}``: "text"
draws the lines as text (a header and "Page N of M" footer on each page); "image" draws each page
as a picture of that text, so the PDF has no text layer (a scan).
"""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QMarginsF, QPointF, Qt
from PySide6.QtGui import QFont, QGuiApplication, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter


def main(spec_path: str, out: str) -> None:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    writer = QPdfWriter(out)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
    writer.setResolution(72)
    writer.setCreator("KIIG test documents (QPdfWriter)")
    painter = QPainter(writer)
    pages = spec["pages"]
    for n, lines in enumerate(pages, 1):
        if n > 1:
            writer.newPage()
        if spec["kind"] == "image":
            image = QImage(595, 842, QImage.Format.Format_Grayscale8)
            image.fill(Qt.GlobalColor.white)
            p = QPainter(image)
            _draw(p, spec["header"], lines, n, len(pages))
            p.end()
            painter.drawImage(QPointF(0, 0), image)
        else:
            _draw(painter, spec["header"], lines, n, len(pages))
    painter.end()
    del app


def _draw(painter: QPainter, header: str, lines: list, number: int, total: int) -> None:
    small, body, bold = QFont("DejaVu Sans", 7), QFont("DejaVu Sans", 9), QFont("DejaVu Sans", 10)
    bold.setBold(True)
    painter.setFont(small)
    painter.drawText(QPointF(60, 40), header)
    painter.drawText(QPointF(470, 815), f"Page {number} of {total}")
    y = 70
    for kind, text in lines:
        if text:
            painter.setFont(bold if kind == "h" else body)
            painter.drawText(QPointF(60, y), text)
        y += 15


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
