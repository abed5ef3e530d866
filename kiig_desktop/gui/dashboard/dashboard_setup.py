"""Wires the Dashboard (batch runs and the model comparison) into the main window.

Adds the Dashboard tab through ``add_view`` and links it to the rest of the window: a double-clicked
item opens its chain in the Results view, "Open Corpora…" shows the Corpora tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dashboard_view import DashboardView

if TYPE_CHECKING:
    from ..main_window import MainWindow


def install_dashboard(window: MainWindow) -> None:
    """Create the Dashboard view on ``window`` (needs the Corpora service of ``install_knowledge``)."""
    window.dashboard = DashboardView(window.engines, window.session, window.tasks, window.corpora)
    window.add_view("dashboard", "Dashboard", window.dashboard)
    window.splitters["dashboard/main"] = window.dashboard.splitter
    window.dashboard.open_chain.connect(lambda run_id, chain_id: open_chain(window, run_id, chain_id))
    window.dashboard.form.open_corpora.connect(lambda: window.show_view("corpora"))


def open_chain(window: MainWindow, run_id: int, chain_id: int) -> None:
    """Show a stored chain in the Results view (the chain view)."""
    window.results.open_chain(run_id, chain_id)
    window.show_view("results")
