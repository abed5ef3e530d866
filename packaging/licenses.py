"""Licence data of the bundle's components, for the SBOM (packaging/sbom.py) and the archive's licenses/ folder.

Where the texts come from (nothing third-party is committed to this repository):

- a Python distribution: the licence files in its installed ``*.dist-info`` (``License-File`` entries,
  ``licenses/``, and files named LICENSE/LICENCE/COPYING/NOTICE/AUTHORS);
- a Debian package: ``/usr/share/doc/<package>/copyright``;
- CPython: ``LICENSE.txt`` of the running interpreter's standard library;
- llama.cpp: ``vendor/llama.cpp/LICENSE`` of the llama-cpp-python sdist, which ``make vocab``
  keeps in the vocab cache (``KIIG_VOCAB_DIR``, default ``~/.cache/kiig-desktop/vocab/VERSION``);
- a component that declares an SPDX licence but ships no text of it (KIIG Desktop, PySide6,
  shiboken6, the embedded model): the text in ``/usr/share/common-licenses`` (Debian's base-files),
  for the licences that have one there;
- Qt's LGPL notice: ``packaging/notices/qt-lgpl.txt`` (ours).
"""

from __future__ import annotations

import re
from pathlib import Path

COMMON_LICENSES = Path("/usr/share/common-licenses")
# SPDX id -> file in /usr/share/common-licenses (licences whose text carries no copyright holder)
COMMON_TEXT = {
    "Apache-2.0": "Apache-2.0", "GPL-2.0-only": "GPL-2", "GPL-2.0-or-later": "GPL-2", "GPL-3.0-only": "GPL-3",
    "GPL-3.0-or-later": "GPL-3", "LGPL-2.1-only": "LGPL-2.1", "LGPL-2.1-or-later": "LGPL-2.1",
    "LGPL-3.0-only": "LGPL-3", "LGPL-3.0-or-later": "LGPL-3", "MPL-2.0": "MPL-2.0", "CC0-1.0": "CC0-1.0",
}
_NAMES = re.compile(r"(?i)^(licen[cs]e|copying|notice|authors)")
_SPDX_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_DEP5_LICENSE = re.compile(r"^License:\s*(\S.*)$", re.MULTILINE)


def looks_spdx(text: str | None) -> bool:
    """Whether ``text`` has the form of an SPDX licence expression: ids joined by AND/OR/WITH."""
    if not text:
        return False
    tokens = text.replace("(", " ").replace(")", " ").split()
    if not tokens or len(tokens) % 2 == 0:
        return False
    ids, ops = tokens[::2], tokens[1::2]
    return all(_SPDX_TOKEN.match(t) for t in ids) and all(op in ("AND", "OR", "WITH") for op in ops)


def spdx_ids(expression: str) -> list[str]:
    """The licence ids of an SPDX expression (exceptions after WITH left out)."""
    tokens = expression.replace("(", " ").replace(")", " ").split()
    out, skip = [], False
    for tok in tokens:
        if tok == "WITH":
            skip = True
        elif tok not in ("AND", "OR"):
            if not skip:
                out.append(tok)
            skip = False
    return out


def choice(expression: str | None, names: list[str] | None = None) -> list[dict]:
    """A CycloneDX ``licenses`` array: one SPDX expression, else named licences, else []."""
    if expression and looks_spdx(expression):
        return [{"expression": expression, "acknowledgement": "declared"}]
    named = [n for n in (names or []) if n]
    if expression and not named:
        named = [expression.strip().splitlines()[0][:200]]
    return [{"license": {"name": n, "acknowledgement": "declared"}} for n in named]


def distribution_license(metadata) -> list[dict]:
    """The licence a distribution's core metadata declares (License-Expression, License, classifiers)."""
    expr = metadata.get("License-Expression")
    if expr:
        return choice(expr)
    field = (metadata.get("License") or "").strip()
    if looks_spdx(field):
        return choice(field)
    if field:
        return choice(field)
    classifiers = [c.split("::")[-1].strip() for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    return choice(None, classifiers)


def distribution_files(dist) -> list[tuple[str, Path]]:
    """(name under licenses/<component>/, source path) of each licence file in a dist-info folder."""
    declared = set(dist.metadata.get_all("License-File") or [])
    out = {}
    for rel in dist.files or []:
        parts = Path(str(rel)).parts
        if not parts or not parts[0].endswith(".dist-info"):
            continue
        inner = Path(*parts[1:])
        if str(inner) in declared or (inner.parts and inner.parts[0] == "licenses") or _NAMES.match(inner.name):
            if inner.name in ("RECORD", "METADATA"):
                continue
            path = Path(dist.locate_file(rel))
            if path.is_file():
                out[str(inner)] = path
    return sorted(out.items())


def common_texts(expression: str) -> list[tuple[str, Path]]:
    """The texts in /usr/share/common-licenses of the ids in an SPDX expression that have one there."""
    out = {}
    for lid in spdx_ids(expression):
        name = COMMON_TEXT.get(lid)
        if name and (COMMON_LICENSES / name).is_file():
            out[f"{lid}.txt"] = COMMON_LICENSES / name
    return sorted(out.items())


def debian_copyright(package: str, doc_root: Path = Path("/usr/share/doc")) -> Path | None:
    """``/usr/share/doc/<package>/copyright`` (the arch qualifier dropped), or None."""
    path = doc_root / package.split(":")[0] / "copyright"
    return path if path.is_file() else None


def debian_license(copyright_file: Path | None) -> list[dict]:
    """The licence short names of a machine-readable (DEP-5) copyright file, as named licences."""
    if copyright_file is None:
        return []
    text = copyright_file.read_text(encoding="utf-8", errors="replace")
    if "copyright-format" not in text.split("\n", 1)[0]:
        return [{"license": {"name": "see the Debian copyright file", "acknowledgement": "declared"}}]
    names = sorted({m.group(1).strip() for m in _DEP5_LICENSE.finditer(text)})
    return [{"license": {"name": f"Debian copyright: {', '.join(names)}"[:500], "acknowledgement": "declared"}}]


def gguf_license(value: str | None) -> str | None:
    """A GGUF ``general.license`` value (e.g. ``apache-2.0``) as an SPDX id where it names a common one."""
    if not value:
        return None
    known = {k.lower(): k for k in (*COMMON_TEXT, "MIT", "BSD-3-Clause", "BSD-2-Clause")}
    return known.get(value.strip().lower(), value.strip())
