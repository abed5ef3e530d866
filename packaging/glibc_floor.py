"""The newest glibc/libstdc++/libgcc symbol versions the ELF files of an archive or folder need.

    python packaging/glibc_floor.py ARCHIVE.tar.gz|FOLDER [--all] [--floor 2.31]

Reads each ELF file's version-needs table (.gnu.version_r, what ``objdump -p`` lists under
"Version References"), so only what a file *requires* from other libraries counts, never the
versions a bundled libstdc++ itself defines. Prints, per file, the highest GLIBC_, GLIBCXX_,
CXXABI_ and GCC_ version it needs (only files at the maximum unless --all) and the maximum over
all files. With --floor X.Y it exits 1 when a file needs a GLIBC_ version above X.Y, naming it.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

PREFIXES = ("GLIBC_", "GLIBCXX_", "CXXABI_", "GCC_")
_SHT_GNU_VERNEED = 0x6FFFFFFE


def _version_key(version: str) -> tuple[int, ...]:
    """'GLIBC_2.31' -> (2, 31); a non-numeric tail (GLIBC_PRIVATE) sorts lowest."""
    tail = version.split("_", 1)[1]
    try:
        return tuple(int(x) for x in tail.split("."))
    except ValueError:
        return (-1,)


def needed_versions(data: bytes) -> set[str]:
    """The symbol versions a 64-bit little-endian ELF image requires (empty for anything else)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return set()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out: set[str] = set()
    for _name, sh_type, _flags, _addr, offset, _size, link, info, _align, _entsize in sections:
        if sh_type != _SHT_GNU_VERNEED:
            continue
        strtab = sections[link][4]
        pos = offset
        for _ in range(info):  # sh_info = number of Verneed entries
            _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", data, pos)
            apos = pos + aux
            for _ in range(cnt):
                _hash, _flags2, _other, name, anext = struct.unpack_from("<IHHII", data, apos)
                end = data.index(b"\0", strtab + name)
                out.add(data[strtab + name:end].decode("ascii", "replace"))
                apos += anext
            pos += nxt
    return out


def highest(versions: set[str]) -> dict[str, str]:
    """The highest version per prefix in PREFIXES, e.g. {'GLIBC_': 'GLIBC_2.31', ...}."""
    best: dict[str, str] = {}
    for v in versions:
        for prefix in PREFIXES:
            if v.startswith(prefix) and _version_key(v) > _version_key(best.get(prefix, prefix + "0")):
                best[prefix] = v
    return best


def _elf_files(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.is_symlink():
                with p.open("rb") as f:
                    if f.read(4) == b"\x7fELF":
                        yield str(p.relative_to(path)), p.read_bytes()
        return
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member).read()
                if data[:4] == b"\x7fELF":
                    yield member.name, data


def floors(path: Path) -> dict[str, dict[str, str]]:
    """{file (relative): {prefix: highest version it needs}} for every ELF file under ``path``."""
    return {name: highest(needed_versions(data)) for name, data in _elf_files(path)}


def maximum(per_file: dict[str, dict[str, str]]) -> dict[str, tuple[str, str]]:
    """{prefix: (highest version over all files, one file that needs it)}."""
    out: dict[str, tuple[str, str]] = {}
    for name, best in per_file.items():
        for prefix, v in best.items():
            if prefix not in out or _version_key(v) > _version_key(out[prefix][0]):
                out[prefix] = (v, name)
    return out


def above(per_file: dict[str, dict[str, str]], prefix: str, floor: str) -> dict[str, str]:
    """{file: version} for the files needing a ``prefix`` version newer than ``floor`` ('2.31')."""
    limit = _version_key(prefix + floor)
    return {n: b[prefix] for n, b in sorted(per_file.items()) if prefix in b and _version_key(b[prefix]) > limit}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", type=Path, help="a .tar.gz archive or an unpacked folder")
    p.add_argument("--all", action="store_true", help="list every ELF file, not only those at the maximum")
    p.add_argument("--floor", help="exit 1 when a file needs a GLIBC_ version above this one (e.g. 2.31)")
    args = p.parse_args(argv)
    if not args.path.exists():
        print(f"glibc_floor: no such file or folder: {args.path}", file=sys.stderr)
        return 2
    per_file = floors(args.path)
    top = maximum(per_file)
    tops = {v for v, _ in top.values()}
    for name, best in sorted(per_file.items()):
        if args.all or tops & set(best.values()):
            print(f"{name}: {' '.join(best[k] for k in PREFIXES if k in best) or '-'}")
    print(f"maximum over {len(per_file)} ELF files: "
          + ", ".join(f"{v} ({n})" for v, n in (top[k] for k in PREFIXES if k in top)))
    if args.floor:
        bad = above(per_file, "GLIBC_", args.floor)
        for name, v in bad.items():
            print(f"above GLIBC_{args.floor}: {name} needs {v}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
