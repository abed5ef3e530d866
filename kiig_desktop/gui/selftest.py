"""``kiig-desktop --self-test``: does this installation work end to end on this machine?

Loads the llama.cpp backend (its CPU variant), decodes with the embedded model, scores one sample
chain and opens and closes the main window (offscreen unless ``QT_QPA_PLATFORM`` says otherwise). Exit 0 with a one-line summary, else exit 1
with a one-line reason. The offline bundle's tests and installers run it first.
"""

from __future__ import annotations

import math
import os
import sys
import time


class SelfTestFailed(Exception):
    """One step failed; the message is the one-line reason."""


def _engine_checks() -> str:
    from ..engine.client import EngineClient
    from ..engine.models import BUILTIN_ID
    from ..errors import KiigError
    from ..events import ItemDone, run_to_end
    from ..resources import resource_path
    from ..runs.score import ScoreConfig, iter_score_file, read_score_input

    try:
        with EngineClient(BUILTIN_ID) as client:
            client.start()
            smoke = client.call("smoke")
            if not smoke.get("finite"):
                raise SelfTestFailed("the embedded model decoded to non-finite logits on this CPU")
            jobs = read_score_input(resource_path("chains", "clinical_chains.jsonl"))[:1]
            done: list[dict] = []
            run_to_end(iter_score_file(client, jobs, ScoreConfig()),
                       lambda e: done.append(e.result) if isinstance(e, ItemDone) else None)
            build = client.build() or {}
    except KiigError as exc:
        raise SelfTestFailed(f"engine: {exc.message}") from None
    if not done or done[0].get("error"):
        raise SelfTestFailed(f"scoring the sample chain failed: {(done[0].get('error') if done else 'no result')}")
    gains = [s.get("info_gain") for s in done[0].get("steps", [])]
    if not gains or not all(isinstance(g, float) and math.isfinite(g) for g in gains):
        raise SelfTestFailed("the sample chain scored to missing or non-finite InfoGain")
    return f"CPU variant {build.get('cpu_variant', '?')}, {len(gains)} steps scored"


def _window_check(screenshot: str | None) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("KIIG")
    app.setApplicationName("KIIG Desktop")
    window = MainWindow()
    window.show()
    app.processEvents()
    if not window.isVisible():
        raise SelfTestFailed("the main window did not open")
    if screenshot and not window.grab().save(screenshot):
        raise SelfTestFailed(f"could not save the screenshot {screenshot}")
    window.close()
    app.processEvents()


def main(args: list[str] | None = None) -> int:
    """Run every check; ``--screenshot PATH`` also saves the main window as PNG."""
    args = list(args or [])
    shot = args[args.index("--screenshot") + 1] if "--screenshot" in args[:-1] else None
    started = time.monotonic()
    try:
        engine = _engine_checks()
        _window_check(shot)
    except SelfTestFailed as exc:
        print(f"self-test failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the self-test reports any failure as one line
        print(f"self-test failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"self-test OK in {time.monotonic() - started:.1f} s: {engine}, main window opened and closed")
    return 0
