"""The offline bundle needs nothing from the machine: unpacked into a temporary folder and run with
an empty environment (``env -i HOME=<fresh> PATH=/nonexistent``) it self-tests, scores like the
venv, opens its window on a bare X server, finds every library it links, and installs/uninstalls.

Runs the archive ``make bundle`` leaves in dist/. ``make test`` builds it first (cached by a hash of
its inputs) and sets KIIG_REQUIRE_ALL=1, so there a missing archive (or Xvfb, or root with mount
namespaces) fails instead of skipping (tests/support/require.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bundle import unpack
from tests.support.paths import ROOT
from tests.support.process import wait_until
from tests.support.require import require

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle is built and tested on Linux"), pytest.mark.slow]  # runs the frozen bundle, its installer and a bare X server


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    """The unpacked bundle's folder (holding kiig-desktop, kiig, install.sh, _internal/)."""
    (folder,) = list(unpack(tmp_path_factory.mktemp("unpacked")).iterdir())
    return folder


def _bare(home: Path, **extra: str) -> dict[str, str]:
    """The empty environment of the issue: a fresh HOME, a PATH that finds nothing."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": "/nonexistent", **extra}


def _run(cmd: list, env: dict, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout, **kw)


def test_self_test_in_an_empty_environment(app, tmp_path):
    r = _run([app / "kiig-desktop", "--self-test"], _bare(tmp_path / "home"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "self-test OK" in r.stdout


def test_no_library_is_missing(app):
    """ldd (with the loader path the bundle's launcher sets) resolves every library of every ELF file."""
    internal = app / "_internal"
    missing: dict[str, list[str]] = {}
    for path in sorted(p for p in app.rglob("*") if p.is_file() and not p.is_symlink()):
        with path.open("rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        r = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env={"LD_LIBRARY_PATH": str(internal)})
        lost = [line.split()[0] for line in r.stdout.splitlines() if "not found" in line]
        if lost:
            missing[str(path.relative_to(app))] = lost
    assert not missing, missing


def _chains(tmp_path: Path, n: int = 2) -> Path:
    lines = (ROOT / "resources" / "chains" / "clinical_chains.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _gains(path: Path) -> dict[str, list[float]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out[rec["id"]] = [s["info_gain"] for s in rec["steps"]]
    return out


def test_kiig_score_equals_the_venv_with_the_same_variant(app, tmp_path):
    from kiig_desktop.engine import variants

    require("llama.cpp CPU variants in the venv", "x64" in variants.available(), "make install builds them")
    chains = _chains(tmp_path)
    frozen_out, venv_out = tmp_path / "frozen.jsonl", tmp_path / "venv.jsonl"
    args = ["score", "--model", "default", "--input", chains]
    r = _run([app / "kiig", *args, "--output", frozen_out], _bare(tmp_path / "home", KIIG_CPU_VARIANT="x64"))
    assert r.returncode == 0, r.stderr[-2000:]
    env = {**os.environ, "KIIG_CPU_VARIANT": "x64", "PYTHONPATH": str(ROOT)}
    r = _run([sys.executable, "-m", "kiig_desktop", *args, "--output", venv_out], env)
    assert r.returncode == 0, r.stderr[-2000:]
    frozen, venv = _gains(frozen_out), _gains(venv_out)
    assert frozen.keys() == venv.keys() and len(frozen) == 2
    for key in frozen:
        assert len(frozen[key]) == len(venv[key])
        assert max(abs(a - b) for a, b in zip(frozen[key], venv[key], strict=True)) <= 1e-4, key


@pytest.fixture
def xserver(tmp_path):
    """A bare Xvfb display (no window manager, nothing else installed into it)."""
    xvfb = shutil.which("Xvfb")
    require("Xvfb", xvfb is not None, "apt-get install xvfb; make test installs it as root")
    for n in range(90, 120):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: Path(f"/tmp/.X11-unix/X{n}").exists(), f"Xvfb listened on display :{n}", proc, poll=0.1)
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=10)


def test_gui_on_a_bare_x_server_with_a_screenshot(app, tmp_path, xserver):
    """Qt's xcb plugin loads from the bundle's own X libraries; the window is grabbed as PNG."""
    shot = tmp_path / "window.png"
    env = _bare(tmp_path / "home", DISPLAY=xserver, QT_QPA_PLATFORM="xcb")
    r = _run([app / "kiig-desktop", "--self-test", "--screenshot", shot], env)
    assert r.returncode == 0, r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    keep = os.environ.get("KIIG_BUNDLE_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _usb(tmp_path: Path, good: bool = True) -> Path:
    """A folder like a USB stick: one GGUF (the embedded model's bytes) and its SHA256SUMS."""
    usb = tmp_path / "usb"
    usb.mkdir()
    from kiig_desktop.engine.models import builtin_model_path

    model = usb / "extra-model.gguf"
    shutil.copyfile(builtin_model_path(), model)
    digest = _sha(model) if good else "0" * 64
    (usb / "SHA256SUMS").write_text(f"{digest}  extra-model.gguf\n", encoding="utf-8")
    return usb


def test_installer_with_prefix_and_models_then_uninstall_keeps_sessions(app, tmp_path):
    home, prefix = tmp_path / "home", tmp_path / "prefix"
    env = {**_bare(home), "PATH": "/usr/bin:/bin"}  # the installer is a shell script: it needs cp, sed, sha256sum
    data = home / ".local" / "share" / "kiig-desktop"
    (data / "sessions").mkdir(parents=True)
    session = data / "sessions" / "mine.kiig"
    session.write_bytes(b"user data")
    own_model = data / "models" / "users-own.gguf"
    own_model.parent.mkdir()
    own_model.write_bytes(b"GGUF")

    r = _run(["sh", app / "install.sh", "--prefix", prefix, "--models-from", _usb(tmp_path), "--no-self-test"], env)
    assert r.returncode == 0, r.stderr
    installed = prefix / "lib" / "kiig-desktop"
    for name in ("kiig", "kiig-desktop"):
        assert (prefix / "bin" / name).is_symlink() and (prefix / "bin" / name).resolve() == installed / name
    entry = (prefix / "share" / "applications" / "kiig-desktop.desktop").read_text(encoding="utf-8")
    assert f"Exec={installed}/kiig-desktop" in entry
    assert (prefix / "share" / "icons" / "hicolor" / "scalable" / "apps" / "kiig-desktop.svg").is_file()
    assert (installed / "licenses" / "python-pyside6-essentials" / "QT-LGPL-NOTICE.txt").is_file()  # the SBOM and licences go along
    assert (installed / f"{app.name}.cdx.json").is_file()
    added = data / "models" / "extra-model.gguf"
    assert _sha(added) == _sha(tmp_path / "usb" / "extra-model.gguf")
    r = _run([prefix / "bin" / "kiig", "--version"], _bare(home))
    assert r.returncode == 0 and r.stdout.startswith("kiig "), r.stderr
    manifest = (installed / "install-manifest.txt").read_text(encoding="utf-8").split()

    r = _run(["sh", installed / "uninstall.sh"], env)
    assert r.returncode == 0, r.stderr
    assert not any(Path(p).exists() or Path(p).is_symlink() for p in manifest)
    assert session.read_bytes() == b"user data" and own_model.is_file()


def test_installer_refuses_a_model_with_a_wrong_checksum_and_writes_nothing(app, tmp_path):
    home, prefix = tmp_path / "home", tmp_path / "prefix"
    r = _run(["sh", app / "install.sh", "--prefix", prefix, "--models-from", _usb(tmp_path, good=False), "--no-self-test"],
             {**_bare(home), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "SHA-256 mismatch" in r.stderr
    assert not prefix.exists()


def _private_system_dirs() -> bool:
    """Whether this process may give a child its own /opt and /usr/local (root with mount namespaces)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /opt"], capture_output=True)
    return probe.returncode == 0


def test_installer_as_root_installs_for_everyone_then_uninstalls(app, tmp_path):
    """As root with no --prefix: /opt/kiig-desktop, /usr/local/bin links, a system menu entry -- run in
    a private mount namespace whose /opt and /usr/local are empty tmpfs, so the real ones stay untouched."""
    require("root with mount namespaces (unshare -m)", _private_system_dirs(),
            "run the tests as root in a container that allows unshare -m, as CI's `make test` does")
    home = tmp_path / "home"
    session = home / ".local" / "share" / "kiig-desktop" / "sessions" / "mine.kiig"
    session.parent.mkdir(parents=True)
    session.write_bytes(b"user data")
    script = f"""set -e
mount -t tmpfs none /opt && mount -t tmpfs none /usr/local
sh '{app}/install.sh' --no-self-test
test -x /opt/kiig-desktop/kiig-desktop
for n in kiig kiig-desktop; do test "$(readlink /usr/local/bin/$n)" = /opt/kiig-desktop/$n; done
grep -q '^Exec=/opt/kiig-desktop/kiig-desktop' /usr/local/share/applications/kiig-desktop.desktop
test -f /usr/local/share/icons/hicolor/scalable/apps/kiig-desktop.svg
/usr/local/bin/kiig --version
sh /opt/kiig-desktop/uninstall.sh
test ! -e /opt/kiig-desktop && test ! -e /usr/local/bin/kiig && test ! -e /usr/local/share/applications/kiig-desktop.desktop
echo root-install-ok
"""
    r = _run(["unshare", "-m", "sh", "-c", script], {**_bare(home), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "KIIG Desktop installed in /opt/kiig-desktop" in r.stdout and "root-install-ok" in r.stdout
    assert r.stdout.count("kiig ") >= 1 and session.read_bytes() == b"user data"


def test_the_app_leaves_ray_out_and_its_cluster_option_says_so(app, tmp_path):
    """The frozen app is for one machine: Ray (the cluster extra) is not bundled, and `kiig run
    --cluster` says in one line where the cluster path is available instead of failing on an import."""
    assert not list((app / "_internal").glob("ray")), "Ray was bundled"
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "What is 2 + 3?", "answer": "5"}) + "\n")
    r = _run([app / "kiig", "run", "--dataset", data, "--models", "default", "--scorer", "default", "--db", tmp_path / "s.kiig",
              "--cluster", "10.0.0.1:6379"], _bare(tmp_path / "home"))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "the installed app does not include" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_help_and_the_readmes_bundle_example_work_from_the_folder(app, tmp_path):
    """`./kiig --help` and `./kiig-desktop --help` (no display) exit 0; the sample data the README's
    bundle example points at is where it says, and its first command runs."""
    import re

    env = _bare(tmp_path / "home")
    for exe in ("kiig", "kiig-desktop"):
        r = _run([app / exe, "--help"], env)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: {exe}"), r.stderr[-2000:]
    block = next(b for b in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
                 if b.startswith("S="))
    samples = app / block.split()[0].removeprefix("S=")
    for name in ("datasets/clinical_mcq.jsonl", "datasets/arithmetic.jsonl", "corpus/clinical_facts.jsonl"):
        assert (samples / name).is_file(), f"the README's bundle example names {samples / name}, which the archive lacks"
    r = _run([app / "kiig", "corpus", "add", "--db", tmp_path / "example.kiig", "--name", "clinical",
              samples / "corpus" / "clinical_facts.jsonl"], env)
    assert r.returncode == 0, r.stderr[-2000:]

def test_the_metric_definitions_ship_inside_the_archive(app):
    """The help window's docs/metrics.md (and the other docs) are in the bundle, where docs_path finds them."""
    shipped = app / "_internal" / "kiig_desktop" / "_docs"
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert (shipped / doc.name).read_bytes() == doc.read_bytes(), doc.name
    assert not list(shipped.glob("screenshots")), "the screenshots are not help: leave them out"


def test_the_frozen_kiig_imports_pdf_word_and_html_references_with_pages(app, tmp_path, request):
    """The document readers (PDFium, python-docx) travel in the archive: the frozen `kiig corpus
    add` imports a Qt-written PDF, a python-docx file and an HTML page, and search names the page."""
    from tests.support import documents as docs

    folder = docs.documents(Path(request.config.cache.mkdir("kiig-documents")))
    env, db = _bare(tmp_path / "home"), tmp_path / "s.kiig"
    picked = [folder / "qt_guideline.pdf", folder / "pydocx_guide.docx", folder / "page.html"]
    r = _run([app / "kiig", "corpus", "add", "--db", db, "--name", "guides", "--json", *picked], env)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert sorted(f["status"] for f in report["files"]) == ["added"] * 3, report
    fact = docs.facts()[0]
    r = _run([app / "kiig", "corpus", "search", "--db", db, "--name", "guides", "--query", fact["title"], "--json"], env)
    assert r.returncode == 0, r.stderr[-2000:]
    pdf_hits = [h for h in json.loads(r.stdout)["results"] if h.get("file") == "qt_guideline.pdf"]
    assert pdf_hits and pdf_hits[0]["page"] == docs.page_of(docs.guideline_pages(), fact["title"]), pdf_hits

