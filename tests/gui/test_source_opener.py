"""Opening a reference file at a PDF page: which viewer is told the page and how, read from the
desktop's own settings (xdg-mime) -- only the final hand-over to the system is replaced."""

from __future__ import annotations

import os
import stat

from kiig_desktop.gui.knowledge import source_opener as so
from tests.support.paged_corpus import write_pdf_file


def test_each_known_viewer_is_told_the_page_and_others_get_the_file_url(tmp_path):
    pdf = write_pdf_file(tmp_path / "NG28.pdf")
    assert so.plan(pdf, 14, "/usr/bin/evince").argv == ["/usr/bin/evince", "--page-index=14", str(pdf)]
    assert so.plan(pdf, 14, "/usr/bin/okular").argv == ["/usr/bin/okular", "--page", "14", str(pdf)]
    assert so.plan(pdf, 14, "/usr/bin/zathura").argv == ["/usr/bin/zathura", "--page=14", str(pdf)]
    assert so.plan(pdf, 14, "/usr/bin/mupdf").argv == ["/usr/bin/mupdf", str(pdf), "14"]
    browser = so.plan(pdf, 14, "/usr/bin/chromium")
    assert browser.argv == ["/usr/bin/chromium", browser.url.toString()] and browser.url.toString().endswith("#page=14")
    unknown = so.plan(pdf, 14, "/usr/bin/some-viewer")
    assert unknown.argv is None and not unknown.at_page and unknown.url.fragment() == "page=14"
    assert unknown.url.toLocalFile() == str(pdf)
    docx = tmp_path / "guide.docx"
    assert so.plan(docx, None, "/usr/bin/evince").argv is None and so.plan(docx, None, None).url.fragment() == ""


def test_the_desktop_default_pdf_viewer_is_started_at_the_page(tmp_path, monkeypatch):
    bin_dir, config, data = tmp_path / "bin", tmp_path / "config", tmp_path / "data"
    (data / "applications").mkdir(parents=True)
    bin_dir.mkdir()
    config.mkdir()
    viewer = bin_dir / "evince"
    viewer.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    viewer.chmod(viewer.stat().st_mode | stat.S_IXUSR)
    (config / "mimeapps.list").write_text("[Default Applications]\napplication/pdf=my-evince.desktop\n", encoding="utf-8")
    (data / "applications" / "my-evince.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Evince\nExec=evince %U\nMimeType=application/pdf;\n", encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert so.default_pdf_viewer() == str(viewer)

    pdf = write_pdf_file(tmp_path / "NG28.pdf")
    handed: list[so.OpenPlan] = []
    monkeypatch.setattr(so, "system_open", lambda how: handed.append(how) or True)
    assert so.open_source(pdf, 14, "NG28.pdf", so.default_pdf_viewer()) == (True, "Opened NG28.pdf at page 14 in evince.")
    assert handed[0].argv == [str(viewer), "--page-index=14", str(pdf)]

    # no default viewer known: the file URL with #page=14, and the user is told where to go
    (config / "mimeapps.list").write_text("[Default Applications]\n", encoding="utf-8")
    (data / "applications" / "my-evince.desktop").unlink()
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path / "no-shared-data"))
    opened, text = so.open_source(pdf, 14, "NG28.pdf", so.default_pdf_viewer())
    assert opened and handed[1].argv is None and handed[1].url.fragment() == "page=14"
    assert text.startswith("Opened NG28.pdf in the system viewer; go to page 14 there")
    assert so.open_source(tmp_path / "gone.pdf", 3, "gone.pdf", None)[0] is False and len(handed) == 2
