"""The message bar moves nothing when it appears and goes (issue 27, item 9: a click on Score KI
missed because the whole layout shifted down under the pointer)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

from .conftest import wait_idle
from .records import fake_record, store_fake_chain

LONG = ("Cannot open /home/analyst/sessions/ward-7/2025-05-01-review.kiig: it was written by a newer version of "
        "KIIG Desktop (session schema 9; this version reads up to 3). Update KIIG Desktop to open it; the file was "
        "not changed.")


def _where(window, widget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def _settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def test_showing_and_hiding_the_bar_moves_no_button(qtbot, window):
    bar = window.message_bar
    run_id, chain_id = store_fake_chain(window.session, fake_record(["Metformin is first-line.", "So B."]))
    window.results.open_chain(run_id, chain_id)
    wait_idle(qtbot, window)
    window.show_knowledge_index()
    for key, button in (("analyze", window.analyze.generate_button), ("analyze", window.analyze.score_button),
                        ("results", window.results.ki_button), ("results", window.ki_panel.run_button)):
        window.show_view(key)
        _settle()
        before = _where(window, button)
        assert button.isVisible() and before.width() > 0
        window.show_message(LONG, "error")
        _settle()
        assert bar.isVisible() and bar.text() == LONG
        assert _where(window, button) == before, key
        # the banner floats inside the window, below the tabs, tall enough for its wrapped text
        tabs_bar = _where(window, window.tabs.tabBar())
        shown = _where(window, bar)
        assert shown.top() >= tabs_bar.bottom() and window.rect().contains(shown)
        assert bar.label.height() >= bar.label.heightForWidth(bar.label.width())
        bar.hide()
        _settle()
        assert _where(window, button) == before, key
    window.show_message(LONG, "error")
    window.resize(window.width() - 160, window.height())
    _settle()
    assert window.rect().contains(_where(window, bar))  # it follows the window
