"""Issue 28 B and M in the desktop app: the data folder it starts on is tightened, and its Threads
setting is bounded like ``--threads`` (a hand-edited gui.ini cannot ask for 100,000 threads)."""

from __future__ import annotations

import os
import stat

from kiig_desktop.config import max_threads


def test_threads_setting_is_bounded_and_a_0777_data_folder_tightened(make_window, data_dir):
    cache = data_dir / "cache"
    cache.mkdir()
    for path in (data_dir, cache):
        os.chmod(path, 0o777)
    window = make_window()
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700 and stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert window.models_panel.threads.maximum() == max_threads()
    window.qsettings.setValue("models/options/default/n_threads", 100_000)
    assert window.engines.options("default").n_threads == max_threads()
    window.qsettings.setValue("models/options/default/n_threads", 0)
    assert window.engines.options("default").n_threads is None
