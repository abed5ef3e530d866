"""The offline archive is reproducible and says what it holds: packaging/archive.py packs a folder into
the same bytes whatever the files' times, modes and owners; the archive `make bundle` leaves in dist/
has sorted members owned by 0/0 with one time (SOURCE_DATE_EPOCH), a gzip header without time or
name, a MANIFEST.sha256 that lists exactly its files, and dist/SHA256SUMS beside it; two --force
builds of this tree give byte-identical archives (slow: two PyInstaller runs, in a private cache).

Under ``make test`` (KIIG_REQUIRE_ALL=1) a missing archive or PyInstaller fails (tests/support/require.py)."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.offline import archive_module, bundle_folder
from tests.support.require import require

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
ARCHIVE_GLOB = "kiig-desktop-*-linux-x86_64.tar.gz"
archive = archive_module()


def _dist_archive() -> Path:
    found = sorted(DIST.glob(ARCHIVE_GLOB), key=lambda p: p.stat().st_mtime)
    require("the bundle dist/kiig-desktop-*-linux-x86_64.tar.gz", bool(found), "run `make bundle`")
    return found[-1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gzip_header_is_bare(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(10)
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] & 0x08 == 0, "the gzip header holds a file name"
    assert head[4:8] == b"\0\0\0\0", "the gzip header holds a timestamp"


def _members_are_normalised(path: Path, epoch: int) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=str.encode), "members are not sorted"
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
        assert m.mtime == epoch, m.name
        allowed = (0o755,) if m.isdir() else (0o777,) if m.issym() else (0o755, 0o644)
        assert m.mode in allowed, (m.name, oct(m.mode))
    return members


def test_pack_gives_the_same_bytes_whatever_the_files_times_modes_and_owners(tmp_path):
    app = bundle_folder(tmp_path / "a")
    first, second = tmp_path / "first.tar.gz", tmp_path / "second.tar.gz"
    archive.pack(app, first, 1_700_000_000)
    for n, path in enumerate(sorted(app.rglob("*"))):
        if path.is_symlink():
            continue
        os.utime(path, (1_000_000 + n, 2_000_000 + n))
        path.chmod(0o700 if path.is_dir() or os.access(path, os.X_OK) else 0o600)
        if os.geteuid() == 0:
            os.chown(path, 1234, 5678)
    archive.pack(app, second, 1_700_000_000)
    assert first.read_bytes() == second.read_bytes()
    _gzip_header_is_bare(first)
    members = _members_are_normalised(first, 1_700_000_000)
    exe = next(m for m in members if m.name.endswith("/kiig"))
    assert exe.mode == 0o755 and next(m for m in members if m.name.endswith("/README-offline.txt")).mode == 0o644


def test_the_member_time_comes_from_the_environment_the_last_input_commit_or_1980(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    assert archive.source_date_epoch(ROOT) == 1234567890
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    r = subprocess.run(["git", "log", "-1", "--format=%ct", "--", *archive.GIT_INPUTS], cwd=ROOT,
                       capture_output=True, text=True)
    require("a git checkout", r.returncode == 0 and r.stdout.strip().isdigit(), "run the tests in a git clone")
    assert archive.source_date_epoch(ROOT) == int(r.stdout)
    assert archive.source_date_epoch(tmp_path) == archive.OUTSIDE_GIT_EPOCH == 315532800
    assert "no commit time for" in capsys.readouterr().err


@pytest.mark.slow
def test_the_archive_in_dist_is_normalised_and_its_manifest_lists_exactly_its_files():
    path = _dist_archive()
    _gzip_header_is_bare(path)
    _members_are_normalised(path, archive.source_date_epoch(ROOT))
    with tarfile.open(path) as tar:
        top = tar.next().name
        manifest = {}
        content: dict[str, str] = {}
        links: dict[str, str] = {}
        for m in tar:
            rel = m.name.removeprefix(f"{top}/")
            if m.isreg():
                data = tar.extractfile(m).read()
                if rel == archive.MANIFEST:
                    manifest = {line[66:]: line[:64] for line in data.decode().splitlines()}
                else:
                    content[rel] = _sha(data)
            elif m.issym():
                links[rel] = str(Path(rel).parent / m.linkname)
    assert manifest, f"{path.name} holds no {archive.MANIFEST}"
    resolved = {rel: content[os.path.normpath(target)] for rel, target in links.items()}
    assert manifest == {**content, **resolved}


def test_sha256sums_beside_the_archive_matches_it():
    path = _dist_archive()
    sums = path.parent / "SHA256SUMS"
    require("dist/SHA256SUMS", sums.is_file(), "run `make bundle`, which writes it")
    lines = {line[66:]: line[:64] for line in sums.read_text(encoding="utf-8").splitlines()}
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    assert lines.get(path.name) == h.hexdigest()
    r = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=path.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_two_builds_of_this_tree_are_byte_identical(tmp_path):
    """Two `make bundle` builds (packaging/compat/build.py --force: PyInstaller in the Debian 11 root),
    each in its own archive cache and dist folder (the user's stay untouched) and with another
    PYTHONHASHSEED in the caller's environment, give the same archive bytes."""
    require("root and debootstrap (the Debian 11 build root)", os.geteuid() == 0 and shutil.which("debootstrap") is not None,
            "run as root; `make bundle` installs debootstrap")
    built = []
    for n in (1, 2):
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        env.update(KIIG_BUNDLE_CACHE=str(tmp_path / f"cache{n}"), PYTHONHASHSEED=str(n))
        r = subprocess.run([sys.executable, str(ROOT / "packaging" / "compat" / "build.py"), "--force",
                            "--dist", str(tmp_path / f"dist{n}")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=3600)
        assert r.returncode == 0, r.stderr[-3000:]
        (cached,) = (tmp_path / f"cache{n}").glob("*.tar.gz")
        assert (tmp_path / f"dist{n}" / "SHA256SUMS").is_file()
        built.append(cached)
    a, b = (p.read_bytes() for p in built)
    if a != b:
        differ = []
        with tarfile.open(built[0]) as ta, tarfile.open(built[1]) as tb:
            ma, mb = {m.name: m for m in ta}, {m.name: m for m in tb}
            for name in sorted(ma.keys() | mb.keys()):
                if name not in ma or name not in mb or ma[name].get_info() != mb[name].get_info() or (
                        ma[name].isreg() and ta.extractfile(ma[name]).read() != tb.extractfile(mb[name]).read()):
                    differ.append(name)
        pytest.fail(f"two builds differ in {len(differ)} members: {differ[:20]}"
                    + ("" if differ else f" (only in the gzip stream: {gzip.decompress(a) == gzip.decompress(b)=})"))
