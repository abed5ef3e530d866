"""The Models panel shows the load-time batch-invariance verdict of the selected, loaded model."""

from __future__ import annotations

import pytest

from kiig_desktop.gui.models.models_panel import exactness_text
from tests.gui.conftest import load_default

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_models_panel_shows_the_verdict_once_the_model_is_loaded(qtbot, window):
    panel = window.models_panel
    info = window.engines.default_model()
    panel.select(info.id)
    assert panel.fields["exactness"].full_text == "measured at load"
    load_default(qtbot, window)
    panel.select(info.id)
    text = panel.fields["exactness"].full_text
    assert text.startswith("batch invariance verified") and "incremental scoring is exact" in text, text


def test_exactness_text_names_each_scoring_path():
    inv = {"verdict": "failed", "seconds": 0.4}
    assert "from scratch" in exactness_text({"invariance": inv, "scoring": "from-scratch"})
    assert "NOT exact" in exactness_text({"invariance": inv, "scoring": "fast-not-exact"})
