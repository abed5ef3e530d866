"""Start the real KIIG Desktop under Xvfb, walk through its main screens and save PNG screenshots.

    python packaging/screenshots.py OUTDIR [--extra-model PATH.gguf ...] [--batch-limit N] [--keep-data]

Without a display it starts its own Xvfb (Debian: ``apt-get install xvfb``). It runs again in a
private mount namespace where the user's home is /home/analyst (packaging/screenshot_home.py: the
session is ~/Documents/ward-round.kiig, the dataset ~/Documents/datasets/clinical_mcq.jsonl, a copy
of the embedded model in ~/models, tiny random-weight test models in LM Studio's and Ollama's
folders), so the pictures show a user's paths. The app runs on the embedded model: it generates a
reasoning and scores it, scores a reference reasoning of the same question and its Knowledge Index
(the Results screenshots show that chain), imports the demo reference corpus in the Corpora view
and tries a search, compares the two chains (and any ``--extra-model`` files) with their KI, scores
a reference chain's KI and shows its evidence panel, opens the session browser, the About box and
an error message, runs a batch evaluation from the Dashboard (the sample clinical MCQ set, the
embedded model and the Ollama test model, ``--batch-limit`` items each; shot while it runs, held
after the first model's chains) and shows its dashboard and the Models panel, opens the
presentation mode (shot at 1366x768 and 1920x1080) and exports a slide, then shoots every main
screen again at 1920x1080, light and dark, and closes cleanly. The walkthrough itself runs at
1366x768, the everyday laptop size; its KI is shown with the judge checked by the GUI's Check judge.

Last, the 150% screenshots: the app is started again in a subprocess with ``QT_SCALE_FACTOR=1.5``
(how a user gets 150% scaling) on a private 1920x1080 X screen, reopens the session the walkthrough
wrote, and fills that screen: a 1280x720 window in logical pixels, saved as 1920x1080 PNGs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import screenshot_home  # noqa: E402 - beside this script
from screenshot_hooks import held_batch, reveal  # noqa: E402

WALK_SIZE = (1366, 768)
FULL_HD = (1920, 1080)
SCALE = 1.5  # 150%: a 1920x1080 screen is 1280x720 logical pixels
SCALED_NAME = "1920x1080-150pct"
MAIN_SCREENS = ("analyze", "results", "compare", "sessions", "corpora", "dashboard")


def start_xvfb(screen: tuple[int, int] = (1920, 1200), private: bool = False) -> subprocess.Popen | None:
    """A private X server when there is no display, or always with ``private`` (returns None when
    the display at hand is used)."""
    if not private and os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb":
        return None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("screenshots.py: no DISPLAY and no Xvfb (install it: apt-get install xvfb)")
    for n in range(90, 110):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", f"{screen[0]}x{screen[1]}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{n}").exists():
            break
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{n}"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return proc


class Walkthrough:
    """Drives the window step by step, spinning the event loop while it waits."""

    def __init__(self, outdir: Path, extra_models: list[str], batch_limit: int = 4, home: dict | None = None) -> None:
        from kiig_desktop.gui.app import create_application

        self.app = create_application([sys.argv[0]])
        from kiig_desktop.gui.main_window import MainWindow

        self.outdir = outdir
        self.extra_models = extra_models
        self.batch_limit = batch_limit
        self.home = home or {}  # screenshot_home.make_home's paths (the walkthrough's; not the 150% run's)
        self.window = MainWindow()
        self.window.set_theme("light")
        self.window.resize(*WALK_SIZE)
        self.window.show()
        self.shots: list[str] = []
        self.session_path = ""  # what the 150% run reopens (set at the end of run)
        self.chains: list[tuple[int, int]] = []

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def wait(self, condition, what: str, timeout: float = 240.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit(f"screenshots.py: timed out waiting for {what}")
            self.app.processEvents()
            time.sleep(0.01)

    def idle(self, timeout: float = 240.0) -> None:
        self.wait(lambda: not self.window.tasks.active(), "background work to finish", timeout)
        self.spin(0.3)

    def shot(self, name: str, widget=None) -> None:
        self.spin(0.4)
        path = self.outdir / f"{name}.png"
        (widget or self.window).grab().save(str(path))
        self.shots.append(path.name)
        print(f"  saved {path}", flush=True)

    def score_ki(self, result) -> None:
        """Show ``result`` and score its Knowledge Index with the demo corpus, judged by the embedded model."""
        w = self.window
        w.results.show_result(result)
        self.wait(lambda: not w.results.pending, "the results")
        w.results.show_side_panel(True)
        w.ki_panel.select_corpus("clinical")
        w.ki_panel.run()
        self.idle()

    def corpora(self) -> None:
        """The Corpora view after importing the demo corpus, with a search tried."""
        w = self.window
        view = w.corpora_view
        w.show_view("corpora")
        view.import_demo()
        self.idle()
        top = view.tree.topLevelItem(0)
        top.setExpanded(True)
        top.child(0).setExpanded(True)
        self.idle()
        view.query.setText("Why does lisinopril cause a dry cough?")
        view.run_search()
        self.idle()
        view.hits_tree.setCurrentItem(view.hits_tree.topLevelItem(0))
        w.message_bar.hide()  # the import's notice would hide itself a few seconds later
        self.shot("10-corpora")

    def ki_evidence(self) -> None:
        """A reference chain with one wrong claim: KI column, mean KI card and the evidence of that step."""
        from kiig_desktop.runs.analysis import Question

        w = self.window
        lines = (ROOT / "resources" / "chains" / "clinical_chains.jsonl").read_text().splitlines()
        ref = next(json.loads(line) for line in lines if json.loads(line)["id"] == "demo-warfarin")
        w.analyze.form.set_question(Question(ref["question"], ref["answer"], ref["options"], ref["answer_idx"]))
        w.analyze.set_reasoning_text("\n".join(ref["steps"]))
        w.analyze.score()
        self.idle()
        self.score_ki(w.results.result)
        w.ki_panel.check_judge()  # Check judge: the embedded judge's AUROC on the labelled claims, beside its KI
        self.idle(900)
        w.show_view("results")
        w.results.select_step(1)
        self.shot("11-results-ki")

    def dashboard(self) -> None:
        """A batch run over two models started from the Dashboard's form, shot while it runs (held after
        the first model's items and one of the second's), then its dashboard tabs and the Models panel."""
        from kiig_desktop.engine.models import BUILTIN_ID
        from kiig_desktop.events import ItemDone

        w = self.window
        view, form = w.dashboard, w.dashboard.form
        w.message_bar.hide()
        w.show_view("dashboard")
        self.fill_batch_form(Path(self.home["dataset"]), [BUILTIN_ID, self.home["ollama_id"]])
        hold_after = self.batch_limit + 1
        gate = threading.Event()
        with held_batch(gate, hold_after):
            form.run()
        try:
            self.wait(lambda: sum(isinstance(e, ItemDone) for e in form.events) >= hold_after, "the batch to get to "
                      f"chain {hold_after}", 1800)
            self.spin(0.2)  # the events queued behind it (none: the batch waits on the gate)
            view.reload()
            self.wait(lambda: not view.pending, "the dashboard to update")
            reveal(form.status)  # the form scrolled down to its progress bar and status line
            self.shot("12-dashboard-batch-running")
        finally:
            gate.set()
        self.idle(1800)
        self.wait(lambda: not view.pending and view.report is not None and view.report.run["status"] == "finished",
                  "the dashboard")
        w.message_bar.hide()
        reveal(form.status)
        for index, name in ((0, "13-dashboard"), (1, "14-dashboard-differences"), (2, "15-dashboard-items")):
            view.tabs.setCurrentIndex(index)
            self.shot(name)
        view.tabs.setCurrentIndex(0)
        w.models_panel.select(self.home["lmstudio_id"])
        w.models_panel.compute_sha()
        self.idle()
        self.shot("19-models-lmstudio-ollama")
        w.models_panel.select(self.own_model_id())

    def fill_batch_form(self, dataset: Path, models: list[str]) -> None:
        """The Dashboard's form set for the batch the screenshots show."""
        form = self.window.dashboard.form
        form.choose_dataset(str(dataset))
        self.idle()
        form.set_checked(models)
        form.limit.setValue(self.batch_limit)
        form.max_tokens.setValue(320)

    def presentation(self) -> None:
        """View → Present on the chain shown, two steps on, and its exported slide."""
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        w = self.window
        w.show_view("results")
        show = w.present()
        self.wait(lambda: not show.view.pending, "the presentation")
        self.spin(0.3)
        QTest.keyClick(show, Qt.Key.Key_Right)
        self.spin(0.3)
        path = self.outdir / "17-presentation-slide.png"
        show.export_png(path)
        self.shots.append(path.name)
        print(f"  saved {path}", flush=True)
        self.present_at(show, WALK_SIZE, "18-presentation-1366x768")
        self.present_at(show, FULL_HD, "size-1920x1080-presentation")
        show.close()
        self.spin(0.3)

    def present_at(self, show, size: tuple[int, int], name: str) -> None:
        """The presentation window as a screen of ``size`` (logical pixels) shows it."""
        show.showNormal()
        show.resize(*size)
        self.spin(0.5)
        self.shot(name, show)

    def screens(self, name: str, screens: tuple[str, ...] = MAIN_SCREENS) -> None:
        """Every main screen as it is now, light and dark (dark: Results and Dashboard)."""
        w = self.window
        for mode in ("light", "dark"):
            w.set_theme(mode)
            for key in screens:
                if mode == "dark" and key not in ("results", "dashboard"):
                    continue
                w.show_view(key)
                w.message_bar.hide()
                self.spin(0.5)
                self.shot(f"size-{name}-{key}{'-dark' if mode == 'dark' else ''}")
        w.set_theme("light")

    def sizes(self) -> None:
        """Every main screen at 1920x1080 (the 150% ones come from :meth:`scaled`, in a subprocess)."""
        self.window.resize(*FULL_HD)
        self.screens("1920x1080")
        self.window.resize(*WALK_SIZE)

    def scaled(self, session: str, chains: list[tuple[int, int]]) -> None:
        """Under QT_SCALE_FACTOR=1.5: reopen the walkthrough's session, show its chains and shoot
        every main screen filling the 1920x1080 screen."""
        from kiig_desktop.engine.models import BUILTIN_ID
        from kiig_desktop.runs.analysis import Question

        w = self.window
        ratio = w.devicePixelRatioF()
        if abs(ratio - SCALE) > 1e-6:
            raise SystemExit(f"screenshots.py: expected {SCALE} device pixels per pixel, got {ratio} (QT_SCALE_FACTOR?)")
        w.resize(round(FULL_HD[0] / SCALE), round(FULL_HD[1] / SCALE))
        w.start([session])
        self.wait(lambda: w.engines.models and w.engines.loaded_ids(), "the embedded model to load")
        self.idle()
        w.compare.add_chains(chains)
        w.results.open_chain(*chains[-1])
        self.idle()
        self.wait(lambda: w.results.result is not None and not w.results.pending, "the results")
        w.sessions.refresh()
        item = json.loads((ROOT / "resources" / "datasets" / "clinical_mcq.jsonl").read_text().splitlines()[0])
        w.analyze.form.set_question(Question(item["question"], item["answer"], item["options"], item["answer_idx"]))
        self.fill_batch_form(Path.home() / "Documents" / "datasets" / "clinical_mcq.jsonl",
                             [m.id for m in w.engines.models if m.id == BUILTIN_ID or m.source == "ollama"])
        self.screens(SCALED_NAME)
        w.show_view("results")
        show = w.present()
        self.wait(lambda: not show.view.pending, "the presentation")
        show.show_step(1)
        self.present_at(show, (round(FULL_HD[0] / SCALE), round(FULL_HD[1] / SCALE)), f"size-{SCALED_NAME}-presentation")
        show.close()
        w.close()
        self.spin(0.3)

    def own_model_id(self) -> str | None:
        """The id of the user's copy of the embedded model in ~/models (what the Models panel shows)."""
        own = str(self.home["own_model"])
        return next((m.id for m in self.window.engines.models if m.path == own), None)

    def start(self) -> None:
        """The app on the embedded model, its session saved as ~/Documents/ward-round.kiig, the user's
        ~/models copy added and shown in the Models panel (with its SHA-256)."""
        w = self.window
        w.start([])
        self.wait(lambda: w.engines.models and w.engines.loaded_ids(), "the embedded model to load")
        w.save_session_as(str(self.home["session"]))
        self.wait(lambda: str(w.session.path) == str(self.home["session"]), "the session to be saved")
        w.engines.add_model_file(str(self.home["own_model"]))
        for path in self.extra_models:
            w.engines.add_model_file(path)
        self.idle()
        self.wait(lambda: self.own_model_id() is not None, "the ~/models file in the Models panel")
        w.models_panel.select(self.own_model_id())
        w.models_panel.compute_sha()
        self.idle()
        w.message_bar.hide()

    def run(self) -> None:
        from kiig_desktop.runs.analysis import Question

        w = self.window
        self.start()
        w.show_view("results")
        self.shot("01-results-empty-state")

        w.show_view("analyze")
        ref = json.loads((ROOT / "resources" / "chains" / "clinical_chains.jsonl").read_text().splitlines()[0])
        question = Question(ref["question"], ref["answer"], ref["options"], ref["answer_idx"])
        w.analyze.form.set_question(question)
        w.analyze.max_tokens.setValue(160)
        w.analyze.generate()
        self.wait(lambda: w.analyze._n_tokens >= 45 or not w.analyze.busy, "tokens to stream")
        self.shot("02-analyze-generating")
        self.idle()
        self.shot("03-analyze-steps")
        w.analyze.score()
        self.idle()
        self.wait(lambda: w.results.result is not None, "the results")
        generated = w.results.result
        # the Results screenshots show a reference reasoning for the same question (the tiny model's own
        # reasoning rarely reaches an answer), with its Knowledge Index scored
        w.analyze.set_reasoning_text("\n".join(ref["steps"]))
        w.analyze.score()
        self.idle()
        self.wait(lambda: w.results.result is not None and w.results.result is not generated, "the reference's results")
        reference = w.results.result
        self.corpora()

        compare = w.compare
        compare.add_result(generated, "SmolLM2 generated")
        compare.add_result(reference, "Reference reasoning")
        if self.extra_models:
            extra = {str(Path(e).expanduser().resolve()) for e in self.extra_models}
            compare.set_checked([m.id for m in w.engines.models if not m.error
                                 and (m.source == "builtin" or str(Path(m.path).resolve()) in extra)])
            w.show_view("compare")
            compare.run_comparison()
            self.idle(600)
        for _label, result in list(compare.results):
            self.score_ki(result)
        w.show_view("compare")
        self.shot("06-compare")

        w.results.open_chain(reference.run_id, reference.chain_id)
        self.idle()
        self.wait(lambda: w.results.result is not None and w.results.result.chain_id == reference.chain_id
                  and not w.results.pending, "the reference chain")
        w.show_view("results")
        w.results.show_side_panel(False)
        w.results.select_step(2)
        w.results._on_hover(0)
        self.shot("04-results")
        w.set_theme("dark")
        self.shot("05-results-dark")
        w.set_theme("light")
        w.results._on_hover(-1)
        self.ki_evidence()

        w.show_view("sessions")
        w.sessions.refresh()
        self.idle()
        w.sessions.tree.setCurrentItem(w.sessions.tree.topLevelItem(0).child(0))
        self.shot("07-sessions")

        from kiig_desktop.gui.shared.dialogs import AboutDialog

        about = AboutDialog(w.icon, w.engines.build_info, w)
        about.show()
        self.shot("08-about", about)
        about.close()

        bad = Path(self.home["downloads"]) / "downloaded-model.gguf"
        bad.write_bytes(b"<html>404 Not Found</html>" * 8)
        w.show_view("analyze")
        w.open_paths([str(bad)])
        self.idle()
        self.shot("09-error-bad-model")
        self.dashboard()
        w.results.open_chain(w.results.result.run_id, w.results.result.chain_id)
        self.idle()
        self.presentation()
        self.sizes()
        self.session_path = str(w.session.path)
        self.chains = [(r.run_id, r.chain_id) for _label, r in w.compare.results]
        shown = w.results.result
        if shown is not None and (shown.run_id, shown.chain_id) not in self.chains:
            self.chains.append((shown.run_id, shown.chain_id))
        w.close()
        self.spin(0.3)


def shoot_scaled(outdir: Path, session: str, chains: list[tuple[int, int]]) -> None:
    """The 150% screenshots: this script again, under QT_SCALE_FACTOR=1.5 on its own 1920x1080 screen."""
    env = {**os.environ, "QT_SCALE_FACTOR": str(SCALE)}
    cmd = [sys.executable, str(Path(__file__).resolve()), str(outdir), "--scaled", session]
    for run_id, chain_id in chains:
        cmd += ["--chain", f"{run_id}:{chain_id}"]
    print(f"150% screenshots (QT_SCALE_FACTOR={SCALE}, a {FULL_HD[0]}x{FULL_HD[1]} screen)", flush=True)
    if subprocess.run(cmd, env=env, check=False).returncode != 0:
        raise SystemExit("screenshots.py: the 150% screenshots failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="folder for the PNG files")
    parser.add_argument("--extra-model", action="append", default=[], help="another .gguf to compare with")
    parser.add_argument("--batch-limit", type=int, default=4, help="items of the sample set the batch screenshot runs")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary home folder (session, settings, models)")
    parser.add_argument("--scaled", metavar="SESSION", help=argparse.SUPPRESS)  # the 150% subprocess
    parser.add_argument("--chain", action="append", default=[], help=argparse.SUPPRESS)  # RUN:CHAIN, with --scaled
    args = parser.parse_args(argv)
    outdir = Path(args.outdir).expanduser().absolute()
    outdir.mkdir(parents=True, exist_ok=True)
    if args.scaled:  # started by shoot_scaled, on the walkthrough's data folder
        xvfb = start_xvfb(FULL_HD, private=True)
        try:
            walk = Walkthrough(outdir, [], args.batch_limit)
            walk.scaled(args.scaled, [tuple(int(n) for n in c.split(":")) for c in args.chain])
            print(f"{len(walk.shots)} screenshots at 150% in {outdir}")
        finally:
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(5)
        return 0
    if screenshot_home.ENV_MARK in os.environ:  # the re-run in the private mount namespace
        return walkthrough(outdir, args, Path(os.environ[screenshot_home.ENV_MARK]))
    root = Path(tempfile.mkdtemp(prefix="kiig-screens-"))
    try:
        code = screenshot_home.reexec_in_home(root, [str(Path(__file__).resolve()), *(sys.argv[1:] if argv is None else argv)])
        if code is None:
            print("screenshots.py: no private mount namespace (unshare): the home shown is a temporary folder", flush=True)
            code = walkthrough(outdir, args, root / "home" / "analyst")
        return code
    finally:
        if args.keep_data:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def walkthrough(outdir: Path, args: argparse.Namespace, home: Path) -> int:
    """The walkthrough and the 150% run, with ``home`` as the user's home folder."""
    from kiig_desktop.engine.models import builtin_model_path

    builtin = builtin_model_path()
    if builtin is None:
        raise SystemExit("screenshots.py: the embedded model is not installed (make install)")
    layout = screenshot_home.make_home(home, builtin, ROOT / "resources" / "datasets" / "clinical_mcq.jsonl")
    screenshot_home.use_home(home)  # a clean app: no recent files, default layout, the user's paths
    xvfb = start_xvfb()
    try:
        walk = Walkthrough(outdir, args.extra_model, args.batch_limit, layout)
        walk.run()
        print(f"{len(walk.shots)} screenshots in {outdir}: {', '.join(walk.shots)}")
        shoot_scaled(outdir, walk.session_path, walk.chains)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
