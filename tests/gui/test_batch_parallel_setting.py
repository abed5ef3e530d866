"""The batch form's "Parallel items" setting: its default, that it is kept, and that it reaches the run.

A real batch (embedded model, real Qt offscreen) whose ``iter_batch`` is wrapped only to see the
``parallel`` it is given.
"""

from __future__ import annotations

import pytest

from kiig_desktop.gui.dashboard import batch_task
from kiig_desktop.runs.batch import BatchSummary
from kiig_desktop.runs.parallel import SETTING_KEY, default_parallel

from .conftest import wait_idle
from .test_dashboard import show_dashboard


@pytest.mark.slow
def test_parallel_items_default_is_kept_and_reaches_the_run(qtbot, make_window, monkeypatch):
    win = make_window()
    form = show_dashboard(qtbot, win).form
    assert form.parallel.value() == default_parallel() and win.engines.qsettings.value(SETTING_KEY) is None
    qtbot.waitUntil(lambda: form.dataset_ready(), timeout=10000)

    seen = []
    real = batch_task.iter_batch

    def spy(*args, **kwargs):
        seen.append(kwargs.get("parallel"))
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_task, "iter_batch", spy)
    form.limit.setValue(2)
    form.max_tokens.setValue(24)
    form.parallel.setValue(2)
    assert int(win.engines.qsettings.value(SETTING_KEY)) == 2  # stored as soon as it is changed
    assert form.request().parallel == 2
    done = []
    task = form.run()
    assert not form.parallel.isEnabled()  # locked while the run goes
    task.succeeded.connect(done.append)
    wait_idle(qtbot, win)
    assert seen == [2]
    assert isinstance(done[0], BatchSummary) and done[0].done == 2 and done[0].errors == 0

    assert form.parallel.isEnabled()
    # a new window on the same settings starts from the stored choice
    win.close()
    again = show_dashboard(qtbot, make_window()).form
    assert again.parallel.value() == 2
