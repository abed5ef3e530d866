"""install.sh checks what it installs: every file of the unpacked folder against the MANIFEST.sha256
inside it (a changed, missing or added file is refused with one line and nothing is written) and, with
``--key FILE``, the archive's detached GPG signature (a key made here, in a temporary GNUPGHOME).

Runs the real packaging/offline/install.sh from a folder laid out like the archive
(tests/support/offline.py) packed by the real packaging/archive.py; no PyInstaller build needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.offline import archive_module, bundle_folder
from tests.support.require import require


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", **extra}  # the installer needs cp, sed, sha256sum, gpg


def _install(app: Path, prefix: Path, env: dict[str, str], *extra: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(app / "install.sh"), "--prefix", str(prefix), "--no-self-test", *map(str, extra)],
                          env=env, capture_output=True, text=True, timeout=300)


def _flip_a_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _refused(r: subprocess.CompletedProcess, prefix: Path, *words: str) -> None:
    """One line on stderr naming what is wrong, exit 2, nothing installed."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("install.sh: ") and r.stderr.rstrip().endswith("refused"), r.stderr
    for word in words:
        assert word in r.stderr, r.stderr
    assert not prefix.exists()


def test_an_untouched_folder_installs(tmp_path):
    app, prefix = bundle_folder(tmp_path), tmp_path / "prefix"
    r = _install(app, prefix, _env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (prefix / "lib" / "kiig-desktop" / "_internal" / "lib" / "libstand-in.so.1").is_file()


@pytest.mark.parametrize("damage", ["changed", "missing", "added", "relinked", "installer changed"])
def test_a_damaged_folder_is_refused_before_anything_is_written(tmp_path, damage):
    app, prefix = bundle_folder(tmp_path), tmp_path / "prefix"
    named = {"changed": "_internal/lib/libstand-in.so.1", "missing": "kiig", "added": "_internal/libextra.so",
             "relinked": "_internal/libstand-in.so.1", "installer changed": "uninstall.sh"}[damage]
    if damage in ("changed", "installer changed"):
        _flip_a_byte(app / named, at=10)
    elif damage == "missing":
        (app / named).unlink()
    elif damage == "added":
        (app / named).write_bytes(b"\x7fELF planted")
    else:  # the link now points at another file
        (app / named).unlink()
        (app / named).symlink_to("../kiig")
    r = _install(app, prefix, _env(tmp_path))
    why = {"missing": "is missing", "added": "is not in MANIFEST.sha256"}.get(damage, "SHA-256 mismatch")
    _refused(r, prefix, named, why)


def test_a_folder_without_its_manifest_is_refused(tmp_path):
    app, prefix = bundle_folder(tmp_path), tmp_path / "prefix"
    (app / "MANIFEST.sha256").unlink()
    _refused(_install(app, prefix, _env(tmp_path)), prefix, "MANIFEST.sha256 is missing")


# ------------------------------------------------------------------ detached GPG signature

def _gpg(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--quiet", *args], env={**os.environ, "GNUPGHOME": str(home)},
                          capture_output=True, text=True, timeout=300, check=check)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two signing keys without passphrase, each in its own GNUPGHOME: (home, public key file) by name."""
    require("gpg", shutil.which("gpg") is not None and shutil.which("gpgconf") is not None, "apt-get install gpg")
    made = {}
    for who in ("vendor", "stranger"):
        home = tmp_path_factory.mktemp(f"gnupg-{who}")
        home.chmod(0o700)
        _gpg(home, "--passphrase", "", "--quick-gen-key", f"KIIG {who} <{who}@example.org>", "ed25519", "sign", "never")
        public = home.parent / f"{who}.pub.asc"
        public.write_text(_gpg(home, "--armor", "--export", f"{who}@example.org").stdout)
        made[who] = (home, public)
    yield made
    for home, _ in made.values():  # the agents gpg started for these homes
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)}, check=False)


def _signed_archive(tmp_path: Path, signer: Path) -> tuple[Path, Path]:
    """The stand-in folder, its archive packed beside it as make_bundle does, and ARCHIVE.asc by ``signer``."""
    app = bundle_folder(tmp_path)
    archive = tmp_path / f"{app.name}.tar.gz"
    archive_module().pack(app, archive, 1_700_000_000)
    _gpg(signer, "--armor", "--detach-sign", "--output", f"{archive}.asc", str(archive))
    return app, archive


def test_a_good_signature_installs(tmp_path, keys):
    vendor_home, vendor_key = keys["vendor"]
    app, _ = _signed_archive(tmp_path, vendor_home)
    r = _install(app, tmp_path / "prefix", _env(tmp_path), "--key", vendor_key)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "prefix" / "lib" / "kiig-desktop" / "kiig").is_file()


def test_a_signature_by_another_key_is_refused(tmp_path, keys):
    app, archive = _signed_archive(tmp_path, keys["stranger"][0])
    _refused(_install(app, tmp_path / "prefix", _env(tmp_path), "--key", keys["vendor"][1]), tmp_path / "prefix",
             f"{archive}.asc is not a valid signature")


def test_a_tampered_archive_is_refused(tmp_path, keys):
    app, archive = _signed_archive(tmp_path, keys["vendor"][0])
    _flip_a_byte(archive, at=archive.stat().st_size // 2)
    _refused(_install(app, tmp_path / "prefix", _env(tmp_path), "--key", keys["vendor"][1]), tmp_path / "prefix",
             "is not a valid signature")


def test_a_folder_that_is_not_the_signed_archive_is_refused(tmp_path, keys):
    """A signed archive beside a folder changed after unpacking, with a MANIFEST.sha256 made to match."""
    app, _ = _signed_archive(tmp_path, keys["vendor"][0])
    _flip_a_byte(app / "_internal" / "lib" / "libstand-in.so.1")
    archive_module().write_manifest(app)
    _refused(_install(app, tmp_path / "prefix", _env(tmp_path), "--key", keys["vendor"][1]), tmp_path / "prefix",
             "does not hold the files of")


def test_a_key_without_a_signature_beside_the_archive_is_refused(tmp_path, keys):
    app, archive = _signed_archive(tmp_path, keys["vendor"][0])
    Path(f"{archive}.asc").unlink()
    _refused(_install(app, tmp_path / "prefix", _env(tmp_path), "--key", keys["vendor"][1]), tmp_path / "prefix",
             f"{archive}.asc is missing")


def test_the_archive_can_be_named_and_its_signature_is_checked_there(tmp_path, keys):
    """--archive FILE: the archive kept elsewhere than beside the unpacked folder (FILE.asc beside it)."""
    app, archive = _signed_archive(tmp_path, keys["vendor"][0])
    elsewhere = tmp_path / "usb"
    elsewhere.mkdir()
    for path in (archive, Path(f"{archive}.asc")):
        path.rename(elsewhere / path.name)
    r = _install(app, tmp_path / "prefix", _env(tmp_path), "--key", keys["vendor"][1], "--archive", elsewhere / archive.name)
    assert r.returncode == 0, r.stderr
