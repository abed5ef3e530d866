"""``kiig-desktop --self-test``: a failure is one line and exit 1 (the passing run is in tests/packaging/test_bundle.py)."""

from __future__ import annotations

from kiig_desktop.gui.app import main


def test_self_test_reports_an_engine_failure_in_one_line(builtin_path, monkeypatch, capsys):
    monkeypatch.setenv("KIIG_CPU_VARIANT", "zen9")  # no build has it: the worker refuses to load
    assert main(["kiig-desktop", "--self-test"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("self-test failed: engine:") and "zen9" in err
    assert "\n" not in err and "Traceback" not in err
