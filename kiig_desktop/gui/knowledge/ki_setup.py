"""Wires the Knowledge Index features into the main window through its extension points.

Adds the Corpora view (a tab), the Results view's KI side panel (controls + evidence) and the
links between them: a saved KI evaluation refreshes the Results and Compare views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..shared.corpora import Corpora
from .corpora_view import CorporaView
from .ki_panel import KiPanel

if TYPE_CHECKING:
    from ..main_window import MainWindow


def install_knowledge(window: MainWindow) -> None:
    """Create the corpus service, the Corpora view and the KI panel on ``window``."""
    window.corpora = Corpora(window.session, window.tasks, window)
    window.corpora_view = CorporaView(window.corpora)
    window.ki_panel = KiPanel(window.engines, window.session, window.tasks, window.corpora, window.results)
    window.results.attach_side_panel(window.ki_panel)
    window.add_view("corpora", "Corpora", window.corpora_view)
    window.splitters["corpora/main"] = window.corpora_view.splitter
    window.corpora.message.connect(window.show_message)
    window.ki_panel.message.connect(window.show_message)
    window.ki_panel.open_corpora.connect(lambda: window.show_view("corpora"))
    window.ki_panel.ki_saved.connect(window.compare.set_ki)
    window.corpora_view.imported.connect(lambda report: window.ki_panel.select_corpus(report.corpus))


def show_knowledge_index(window: MainWindow) -> None:
    """Analysis → Knowledge Index: the Results view with its KI panel open."""
    window.show_view("results")
    window.results.show_side_panel(True)
