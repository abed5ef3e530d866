"""Issue 14 in the desktop app: plot exports go through the one output writer."""

from __future__ import annotations

import stat

import pytest

from kiig_desktop.errors import KiigError


@pytest.fixture
def figure(gui_app, qtbot):
    from kiig_desktop.gui.shared.plots import StepFigure

    fig = StepFigure("answer NLL")
    qtbot.addWidget(fig)
    fig.resize(600, 400)
    fig.show()
    return fig


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_exports_are_owner_only_and_refuse_a_planted_part_link(tmp_path, figure, suffix):
    out = figure.export(tmp_path / f"plot.{suffix}")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.stat().st_size > 200
    assert out.read_bytes().startswith(b"\x89PNG") if suffix == "png" else b"<svg" in out.read_bytes()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    (tmp_path / f"again.{suffix}.part").symlink_to(victim)
    with pytest.raises(KiigError, match="symbolic link"):
        figure.export(tmp_path / f"again.{suffix}")
    assert victim.read_text(encoding="utf-8") == "precious\n" and not (tmp_path / f"again.{suffix}").exists()
